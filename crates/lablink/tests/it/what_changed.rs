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
use crate::support::{Backend, TestDatabase};

crate::on_both_backends!(
    the_note_says_what_changed_against_production_on_duckdb,
    schemas_leaked_while_lablink_was_down_are_swept_when_it_starts,
    merge_requests_outside_the_watched_paths_are_skipped_with_the_reason,
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
    async fn make_production(&self, job: &Value) -> String {
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

    let gone = tokio::time::timeout(PATIENCE, async {
        loop {
            let ledger = w.app.db.schemas_of_mr(w.job_id, iid).await.unwrap();
            if ledger.iter().all(|s| s.dropped_at.is_some())
                && w.try_schemas().is_some_and(|s| !s.contains(&schema))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the leaked schema was not swept");
    let ledger = w.app.db.schemas_of_mr(w.job_id, iid).await.unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert!(ledger[0].dropped_at.is_some(), "{ledger:#?}");
    assert!(ledger[0].mr_closed_at.is_some(), "{ledger:#?}");
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
