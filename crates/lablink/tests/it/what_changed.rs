//! What a merge request changed, end to end through gitlab-sim with real dbt: the project's
//! merge job makes production, a merge request that changes models, adds a column, removes rows
//! and breaks a test gets one note (edited in place on the next push) with the comparison
//! computed in the warehouse, on DuckDB and on a real PostgreSQL warehouse; schemas leaked
//! while lablink was down are swept when it starts again; a job's watched paths skip merge
//! requests that change nothing under them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::PgPool;

use crate::ci::{GOOD_MODEL, MODEL_PATH, PATIENCE, World, duckdb_job};
use crate::support::connected::Linked;
use crate::support::{Backend, Browser, Page, TestDatabase};
use lablink_core::Role;

crate::on_both_backends!(
    the_note_says_what_changed_against_production_on_duckdb,
    schemas_leaked_while_lablink_was_down_are_swept_when_it_starts,
    a_custom_generate_schema_name_is_what_gets_dropped,
    merge_requests_outside_the_watched_paths_are_skipped_with_the_reason,
    on_gitlab_com_free_a_chosen_maintainer_posts_statuses_and_the_note,
);

const STG_PATH: &str = "models/staging/stg_orders.sql";

/// Drops returned orders (two of the sample's seventeen) and adds a column.
const STG_WITHOUT_RETURNS: &str = "select id as order_id, customer_id, \
    cast(order_date as date) as order_date, status, cast(amount as decimal(10, 2)) as amount, \
    cast(amount * 100 as integer) as amount_cents \
    from {{ ref('raw_orders') }} where status <> 'returned'\n";

/// One row per customer and status: customers with two statuses break `unique(customer_id)`.
const CUSTOMERS_BY_STATUS: &str = "select customer_id, status, count(*) as number_of_orders \
    from {{ ref('stg_orders') }} group by customer_id, status\n";

/// The sample's `customer_orders`, as production has it.
fn customers() -> String {
    std::fs::read_to_string(crate::ci::sample_project().join(MODEL_PATH)).unwrap()
}

impl World {
    /// Adds the project's merge job (`prod`, with the warehouse of `job`) and runs it on a push
    /// to main: production.
    pub(crate) async fn make_production(&self, job: &Value) -> String {
        let mut merge = job.clone();
        merge["name"] = json!("prod");
        merge["kind"] = json!("merge");
        self.create_job(merge).await;
        let sha = self
            .commit("main", &[("README.md", "The sample project.\n")])
            .await;
        self.wait_for_named_status("lablink/prod", &sha, "success")
            .await;
        sha
    }

    /// The run of `ci` at `sha` once its final status and note are delivered.
    async fn delivered_run(&self, sha: &str, state: &str) -> Value {
        self.wait_for_status(sha, state).await;
        let run = self.runs_at(sha).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.wait_for_delivered(&run, state).await
    }

    /// The one note of `iid`.
    async fn only_note(&self, iid: i64) -> Value {
        let notes = self.notes(iid).await;
        assert_eq!(notes.len(), 1, "one note: {notes:#?}");
        notes[0].clone()
    }
}

/// The whole story on the warehouse of `job`: production first; a merge request that changes
/// both models, adds a column, removes rows and breaks a test; then a push that fixes the test.
async fn what_changed_story(w: &World, job: &Value) {
    let production = w.make_production(job).await;

    let sha1 = w
        .commit(
            "feature",
            &[
                (STG_PATH, STG_WITHOUT_RETURNS),
                (MODEL_PATH, CUSTOMERS_BY_STATUS),
            ],
        )
        .await;
    let iid = w.open_mr("feature", "No returns").await;
    let run = w.delivered_run(&sha1, "failed").await;
    let note = w.only_note(iid).await;
    let body = note["body"].as_str().unwrap();
    let summary = body.lines().next().unwrap();
    for expected in [
        "lablink/ci: failed",
        "2 models changed",
        "1 test failing",
        "`stg_orders`: -2 rows",
        "`stg_orders`: column `amount_cents` added",
        "`customer_orders`: column `status` added",
        "`customer_orders`: column `lifetime_value` removed",
    ] {
        assert!(
            summary.contains(expected),
            "`{expected}` missing from: {summary}"
        );
    }
    for expected in [
        &production[..8],
        "<details>",
        "- `stg_orders`: modified (body)",
        "- `customer_orders`: modified (body)",
        "- `stg_orders`: changed itself",
        "- `unique_customer_orders_customer_id`: test failed",
        // Keyed by order_id (unique + not_null): the two returned orders are gone.
        "| `stg_orders` | 15 | 17 | `+amount_cents` | 0 / 2 / 0 |",
        "| `customer_orders` |",
        "no primary key",
    ] {
        assert!(body.contains(expected), "`{expected}` missing from: {body}");
    }
    // The run page shows the same report and the merge request's schema in the ledger.
    assert_eq!(run["report"]["production"]["sha"], production.as_str());
    let schemas = run["schemas"].as_array().unwrap();
    assert!(
        schemas.iter().any(
            |s| s["schema"] == format!("lablink_pr_{}_{iid}", w.job_id) && s["state"] == "live"
        ),
        "{schemas:#?}"
    );
    let page = w
        .browser
        .get(&format!("/runs/{}", run["run"]["id"].as_str().unwrap()))
        .await;
    assert!(page.body.contains("What changed"), "{}", page.body);
    assert!(page.body.contains("amount_cents"), "{}", page.body);

    // The next push fixes the test: the same note is edited, now a success.
    let sha2 = w
        .commit(
            "feature",
            &[(STG_PATH, STG_WITHOUT_RETURNS), (MODEL_PATH, &customers())],
        )
        .await;
    w.delivered_run(&sha2, "success").await;
    let edited = w.only_note(iid).await;
    assert_eq!(edited["id"], note["id"], "edited in place");
    let body = edited["body"].as_str().unwrap();
    let summary = body.lines().next().unwrap();
    for expected in [
        "lablink/ci: success",
        &sha2[..8],
        "1 model changed",
        "`customer_orders`: -2 rows",
    ] {
        assert!(
            summary.contains(expected),
            "`{expected}` missing from: {summary}"
        );
    }
    assert!(!summary.contains("failing"), "{summary}");
    assert!(
        body.contains("- `customer_orders`: downstream of stg_orders"),
        "{body}"
    );
}

async fn the_note_says_what_changed_against_production_on_duckdb(backend: Backend) {
    let mut job = duckdb_job("ci");
    job.as_object_mut().unwrap().remove("mr_note");
    let w = World::with_job(backend, job.clone()).await;
    what_changed_story(&w, &job).await;
}

/// The same on a real PostgreSQL warehouse (a database of the test's own): production and the
/// merge request's schema side by side, compared by the warehouse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_note_says_what_changed_against_production_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let dbname = warehouse.url.rsplit('/').next().unwrap().to_owned();
    let job = json!({"name": "ci", "timeout_secs": 600,
                     "warehouse": {"type": "postgres", "host": "127.0.0.1", "port": 5432,
                                   "user": "postgres", "dbname": dbname},
                     "warehouse_password": "unused with trust auth"});
    let w = World::with_job(Backend::Sqlite, job.clone()).await;
    what_changed_story(&w, &job).await;
    let pg = PgPool::connect(&warehouse.url).await.unwrap();
    let production: String = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata \
         WHERE schema_name LIKE 'lablink_merge_%'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    let production_rows: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {production}.stg_orders"))
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(production_rows, 17, "production was compared, not changed");
    pg.close().await;
}

/// lablink is down when a merge request is closed (GitLab's webhook fails and is never sent
/// again): when lablink starts, reconciliation finds the merge request closed and the sweep
/// drops its schema, recorded in the ledger.
async fn schemas_leaked_while_lablink_was_down_are_swept_when_it_starts(backend: Backend) {
    let mut w = World::start(backend).await;
    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;
    w.wait_for_status(&sha, "success").await;
    w.wait_until_settled().await;
    let schema = format!("lablink_pr_{}_{iid}", w.job_id);
    assert!(w.schemas().contains(&schema));

    w.app.stop_server().await;
    w.mr_action(iid, "close").await;
    assert!(
        w.schemas().contains(&schema),
        "nothing dropped it while lablink was down"
    );
    w.app.start_server_again().await;

    assert!(
        dropped(&w, iid, &schema).await,
        "the leaked schema was not swept"
    );
    let ledger = w.app.db.schemas_of_mr(w.job_id, iid).await.unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert!(ledger[0].dropped_at.is_some(), "{ledger:#?}");
    assert!(ledger[0].mr_closed_at.is_some(), "{ledger:#?}");
}

/// Waits until the ledger says every schema of merge request `iid` is dropped and `schema` is
/// gone from the warehouse; whether that happened in time.
async fn dropped(w: &World, iid: i64, schema: &str) -> bool {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let ledger = w.app.db.schemas_of_mr(w.job_id, iid).await.unwrap();
            if ledger.iter().all(|s| s.dropped_at.is_some())
                && w.try_schemas()
                    .is_some_and(|s| !s.iter().any(|s| s == schema))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .is_ok()
}

/// A project whose `generate_schema_name` puts a merge request's models somewhere else than
/// lablink's own name for it: the ledger records the schema dbt built (from the run's manifest),
/// and closing the merge request drops that one.
async fn a_custom_generate_schema_name_is_what_gets_dropped(backend: Backend) {
    const MACRO: &str = "{% macro generate_schema_name(custom_schema_name, node) -%}\n\
        {{ target.schema | replace('lablink_pr', 'review') }}\n{%- endmacro %}\n";
    let w = World::start(backend).await;
    let sha = w
        .commit(
            "custom",
            &[
                (MODEL_PATH, GOOD_MODEL),
                ("macros/generate_schema_name.sql", MACRO),
            ],
        )
        .await;
    let iid = w.open_mr("custom", "Custom schemas").await;
    w.wait_for_status(&sha, "success").await;
    w.wait_until_settled().await;
    let custom = format!("review_{}_{iid}", w.job_id);
    let assumed = format!("lablink_pr_{}_{iid}", w.job_id);
    let built = w.schemas();
    assert!(built.contains(&custom), "{built:?}");
    assert!(!built.contains(&assumed), "{built:?}");
    let ledger = w.app.db.schemas_of_mr(w.job_id, iid).await.unwrap();
    let names: Vec<&str> = ledger.iter().map(|s| s.schema_name.as_str()).collect();
    assert_eq!(names, [custom.as_str()]);

    w.mr_action(iid, "close").await;
    assert!(
        dropped(&w, iid, &custom).await,
        "the schema dbt built was not dropped"
    );
}

/// A job that watches `models/staging`: a merge request that changes only the marts gets a
/// `skipped` status with the reason and runs no dbt; one that changes staging runs.
async fn merge_requests_outside_the_watched_paths_are_skipped_with_the_reason(backend: Backend) {
    let mut job = duckdb_job("ci");
    job["watch_paths"] = json!(["models/staging"]);
    let w = World::with_job(backend, job).await;
    let sha1 = w.commit("marts", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("marts", "Marts only").await;
    let status = w.wait_for_status(&sha1, "skipped").await;
    let description = status["description"].as_str().unwrap();
    assert!(
        description.contains("changes nothing under models/staging"),
        "{description}"
    );
    let run = w.runs_at(&sha1).await[0].clone();
    assert_eq!(run["state"], "skipped");
    let detail = w
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/runs/{}", run["id"].as_str().unwrap()),
            None,
            None,
        )
        .await
        .json();
    assert!(
        detail["steps"].as_array().unwrap().is_empty(),
        "no dbt ran: {detail:#}"
    );

    let sha2 = w
        .commit("staging", &[(STG_PATH, STG_WITHOUT_RETURNS)])
        .await;
    w.open_mr("staging", "Staging").await;
    w.wait_for_status(&sha2, "success").await;
}

/// The project's repository as the API shows it.
async fn repository(w: &World) -> Value {
    w.browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{}/repository", w.project),
            None,
            None,
        )
        .await
        .json()
}

/// Turns posting as the user of `browser` on or off.
async fn post_as(w: &World, browser: &Browser, csrf: &str, enabled: bool) -> Page {
    browser
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{}/repository/post-as", w.project),
            Some(json!({ "enabled": enabled })),
            Some(csrf),
        )
        .await
}

/// gitlab.com Free has no project access tokens: nothing reaches the merge request, and the run
/// page says why. A Developer in GitLab may not have statuses posted as themselves; the
/// Maintainer may, and then statuses and the note appear as that person. Unlinking their account
/// stops it, with a warning on the repository page and on the run.
async fn on_gitlab_com_free_a_chosen_maintainer_posts_statuses_and_the_note(backend: Backend) {
    let mut job = duckdb_job("ci");
    job.as_object_mut().unwrap().remove("mr_note");
    let w = World::on_gitlab_com_free(backend, job).await;
    assert_eq!(repository(&w).await["posted_by"], "nobody");

    // Nothing is posted; the run says why.
    let sha1 = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    let iid = w.open_mr("feature", "Count orders").await;
    let run1 = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(run) = w.runs_at(&sha1).await.first() {
                return run["id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("no run for the merge request");
    let shown = w.wait_for_delivered(&run1, "success").await;
    assert!(
        shown["run"]["status_note"]
            .as_str()
            .is_some_and(|n| n.contains("project access tokens are not available")),
        "{shown:#}"
    );
    assert!(
        w.sim_state().await["commit_statuses"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(w.notes(iid).await.is_empty());
    let page = w
        .browser
        .get(&format!("/projects/{}/repository", w.project))
        .await;
    assert!(page.body.contains("Post them as me"), "{}", page.body);

    // A Developer in GitLab is refused, in words.
    let bob_gitlab = w.gitlab.user("bob").await;
    w.gitlab.member(w.gitlab_project, bob_gitlab.id, 30).await;
    let bob = Linked::new(
        &w.app,
        &w.gitlab,
        "bob@acme.test",
        Role::Developer,
        &bob_gitlab,
    )
    .await;
    let refused = post_as(&w, &bob.browser, &bob.csrf, true).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Developer role"), "{}", refused.body);

    // Alice, a Maintainer, chooses to post as herself.
    let chosen = post_as(&w, &w.browser, &w.csrf, true).await;
    assert_eq!(chosen.status, 200, "{}", chosen.body);
    assert_eq!(chosen.json()["posted_by"], "maintainer");
    assert_eq!(chosen.json()["posted_by_username"], "alice");
    let page = w
        .browser
        .get(&format!("/projects/{}/repository", w.project))
        .await;
    assert!(
        page.body.contains("GitLab shows every commit status"),
        "{}",
        page.body
    );

    let sha2 = w
        .commit("feature", &[(MODEL_PATH, &GOOD_MODEL.replace('2', "3"))])
        .await;
    let status = w.wait_for_status(&sha2, "success").await;
    assert_eq!(status["author_id"], w.alice.id, "{status:#}");
    let run2 = w.runs_at(&sha2).await[0]["id"].as_str().unwrap().to_owned();
    w.wait_for_delivered(&run2, "success").await;
    let note = w.only_note(iid).await;
    assert_eq!(note["author_id"], w.alice.id, "{note:#}");
    assert!(
        note["body"]
            .as_str()
            .unwrap()
            .contains("lablink/ci: success")
    );

    // Alice unlinks her GitLab account: posting stops, visibly.
    let unlinked = w
        .browser
        .api(
            Method::DELETE,
            "/api/v1/linked-accounts/gitlab",
            None,
            Some(&w.csrf),
        )
        .await;
    assert_eq!(unlinked.status, 200, "{}", unlinked.body);
    assert_eq!(unlinked.json()["stopped_posting"], 1);
    let repo = repository(&w).await;
    assert_eq!(repo["posted_by"], "nobody");
    assert!(
        repo["post_as_warning"]
            .as_str()
            .is_some_and(|t| t.contains("@alice")),
        "{repo:#}"
    );
    let page = w
        .browser
        .get(&format!("/projects/{}/repository", w.project))
        .await;
    assert!(page.body.contains("no longer posted"), "{}", page.body);
}
