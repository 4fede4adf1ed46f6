//! What users see around the flows: the project hub's navigation, post/redirect/get with a
//! message, a form mistake shown next to its field with everything typed kept, error pages that
//! keep the navigation, repositories already connected marked and refused, cancelling a run.

use lablink_core::{Plan, Role};
use reqwest::Method;
use serde_json::json;

use crate::ci::{GOOD_MODEL, MODEL_PATH, World};
use crate::support::Backend;
use crate::support::connected::{Connected, create_project};

crate::on_both_backends!(
    a_form_mistake_is_shown_by_its_field_and_loses_nothing,
    a_repository_has_one_project,
    a_person_cancels_a_waiting_run,
    an_ended_run_runs_again_from_the_beginning,
);

async fn a_form_mistake_is_shown_by_its_field_and_loses_nothing(backend: Backend) {
    let c = Connected::start(backend, &[], None).await;
    let jobs = format!("/projects/{}/ci-jobs", c.project);
    let page = c.browser.get(&jobs).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The project's pages share breadcrumbs and a sub-navigation that marks where one is.
    assert!(
        page.body.contains("aria-label=\"Breadcrumb\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "href=\"/projects/{}/ci-jobs\" aria-current=\"page\"",
            c.project
        )),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("href=\"/projects\" aria-current=\"page\"")
    );

    // A timeout that is not a number and a branch filter that is not one: the page comes back
    // with both messages next to their fields and every value as typed.
    let csrf = page.csrf();
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "nightly checks"),
        ("kind", "ci"),
        ("commands", "dbt build --select tag:nightly"),
        ("target_branch_filter", ""),
        ("timeout_secs", "ten minutes"),
        ("env", "DBT_TARGET_NAME=ci"),
        ("mr_note", "on"),
        ("forks", "approval"),
        ("watch_paths", ""),
        ("compare_max_models", "20"),
        ("compare_timeout_secs", "300"),
    ];
    let refused = c.browser.post_form(&jobs, &form).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"timeout-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("“ten minutes” is not"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("aria-invalid=\"true\""));
    for kept in [
        "value=\"nightly checks\"",
        "dbt build --select tag:nightly</textarea>",
        "DBT_TARGET_NAME=ci</textarea>",
        "value=\"ten minutes\"",
    ] {
        assert!(
            refused.body.contains(kept),
            "{kept} lost:\n{}",
            refused.body
        );
    }
    // The navigation stays, on the page of the mistake.
    assert!(refused.body.contains("aria-label=\"Main\""));

    // A mistake the service finds (a watched path outside the repository) lands by its field.
    let mut outside = form;
    outside[5] = ("timeout_secs", "600");
    outside[9] = ("watch_paths", "../elsewhere");
    let refused = c.browser.post_form(&jobs, &outside).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"watch-error\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("../elsewhere</textarea>"));

    // Corrected: added, and the list says so once (post/redirect/get with a message).
    let mut good = outside;
    good[9] = ("watch_paths", "");
    let added = c.browser.post_form(&jobs, &good).await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.location.as_deref(), Some(jobs.as_str()));
    let shown = c.browser.get(&jobs).await;
    assert!(shown.body.contains("id=\"flash\""), "{}", shown.body);
    assert!(shown.body.contains("Added the CI job nightly checks"));
    let again = c.browser.get(&jobs).await;
    assert!(
        !again.body.contains("id=\"flash\""),
        "the message shows once"
    );

    // Deleting asks first (the button sits behind a disclosure) and says what it did.
    assert!(
        again.body.contains("<summary>Delete…</summary>"),
        "{}",
        again.body
    );
    let job_id = c
        .browser
        .api(
            Method::GET,
            &format!("/api/v1/projects/{}/ci-jobs", c.project),
            None,
            None,
        )
        .await
        .json()[0]["id"]
        .as_i64()
        .unwrap();
    let project = c.project.clone();
    let deleted = c
        .browser
        .post_form(
            &format!("/ci-jobs/{job_id}/delete"),
            &[
                ("csrf_token", csrf.as_str()),
                ("project_id", project.as_str()),
            ],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let shown = c.browser.get(&jobs).await;
    assert!(
        shown.body.contains("Deleted the CI job nightly checks"),
        "{}",
        shown.body
    );

    // The same on an admin's form: a refused new user comes back as typed.
    c.app
        .create_user(
            "acme",
            Plan::Enterprise,
            "admin@acme.test",
            Role::AccountAdmin,
        )
        .await;
    let admin = c.app.login("admin@acme.test").await;
    let settings = admin.get("/settings").await;
    let refused = admin
        .post_form(
            "/settings/users",
            &[
                ("csrf_token", &settings.csrf()),
                ("email", "erin@acme.test"),
                ("username", "erin"),
                ("password", "short"),
                ("role", "read_only"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    for kept in [
        "value=\"erin@acme.test\"",
        "value=\"erin\"",
        "value=\"short\"",
        "value=\"read_only\" selected",
    ] {
        assert!(
            refused.body.contains(kept),
            "{kept} lost:\n{}",
            refused.body
        );
    }

    // Error pages keep the signed-in navigation.
    let missing = c.browser.get("/projects/no-such-project").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.body.contains("aria-label=\"Main\""),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("Skip to content"));
    c.app.stop().await;
}

async fn a_repository_has_one_project(backend: Backend) {
    let c = Connected::start(backend, &[], None).await;
    let second = create_project(&c.browser, &c.csrf, "Second", "").await;
    // The import list marks the repository as connected to Analytics and offers no Connect.
    let page = c
        .browser
        .get(&format!("/projects/{second}/repository"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("analytics/warehouse"), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "to <a href=\"/projects/{}\">Analytics</a>",
            c.project
        )),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!(
            "name=\"gitlab_project_id\" value=\"{}\"",
            c.gitlab_project
        )),
        "{}",
        page.body
    );
    // And the server refuses to connect it twice, saying where it is connected.
    let refused = c
        .browser
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{second}/repository"),
            Some(json!({"gitlab_project_id": c.gitlab_project})),
            Some(&c.csrf),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("already connected to the project Analytics")
    );
    let hooks = c.gitlab.project_state(c.gitlab_project).await["hooks"].clone();
    assert_eq!(hooks.as_array().map(Vec::len), Some(1), "{hooks:#}");
    c.app.stop().await;
}

async fn a_person_cancels_a_waiting_run(backend: Backend) {
    let w = World::start(backend).await;
    // A fork's commit waits for an approval: a run nobody holds, as long as no one acts.
    let (sha, _) = w.fork_merge_request().await;
    w.wait_for_status(&sha, "pending").await;
    let run_id = w.runs_at(&sha).await[0]["id"].as_str().unwrap().to_owned();

    let page = w.browser.get(&format!("/runs/{run_id}")).await;
    assert!(page.body.contains("Waiting for approval"), "{}", page.body);
    assert!(
        page.body.contains("data-live"),
        "an active run refreshes in place"
    );
    assert!(!page.body.contains("http-equiv=\"refresh\""));
    assert!(page.body.contains("Cancel this run…"), "{}", page.body);
    let cancelled = w
        .browser
        .post_form(
            &format!("/runs/{run_id}/cancel"),
            &[("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    let page = w.browser.get(&format!("/runs/{run_id}")).await;
    assert!(page.body.contains("Cancelling the run"), "{}", page.body);
    assert!(page.body.contains("Cancelled"), "{}", page.body);
    assert!(page.body.contains("cancelled by"), "{}", page.body);
    assert!(
        !page.body.contains("data-live"),
        "an ended run stops refreshing"
    );
    w.wait_for_status(&sha, "canceled").await;
    // Once ended, there is nothing to cancel.
    let again = w
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/cancel"),
            None,
            Some(&w.csrf),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let audit = w.app.table_text("audit_log").await;
    assert!(audit.contains("ci.run.cancelled"), "{audit}");

    // Run again: a fork's commit nobody approved waits for a Maintainer again, never runs with
    // the job's secrets by itself.
    let page = w.browser.get(&format!("/runs/{run_id}")).await;
    assert!(page.body.contains("id=\"rerun\""), "{}", page.body);
    let again = w
        .browser
        .post_form(
            &format!("/runs/{run_id}/rerun"),
            &[("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    let page = w.browser.get(&format!("/runs/{run_id}")).await;
    assert!(
        page.body.contains("waits for a Maintainer"),
        "{}",
        page.body
    );
    assert_eq!(w.runs_at(&sha).await[0]["state"], "awaiting_approval");
    w.wait_for_status(&sha, "pending").await;
    assert!(w.app.table_text("audit_log").await.contains("ci.run.rerun"));
}

async fn an_ended_run_runs_again_from_the_beginning(backend: Backend) {
    let w = World::start(backend).await;
    let sha = w.commit("feature", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("feature", "Count orders").await;
    w.wait_for_status(&sha, "success").await;
    let first = w.runs_at(&sha).await[0].clone();
    let run_id = first["id"].as_str().unwrap().to_owned();
    // A run that has not ended cannot run again; an ended one can, from the beginning.
    let again = w
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/runs/{run_id}/rerun"),
            None,
            Some(&w.csrf),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["state"], "queued");
    let rerun = tokio::time::timeout(crate::ci::PATIENCE, async {
        loop {
            let run = w.runs_at(&sha).await[0].clone();
            if run["state"] == "success"
                && run["started_at"].as_i64() > first["finished_at"].as_i64()
            {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the run ran again");
    assert_eq!(rerun["id"], first["id"], "the same run, run again");
    // GitLab got a new status for the commit: pending, then success again.
    let statuses = w.sim_state().await["commit_statuses"].clone();
    let ours = statuses
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sha"] == sha && s["name"] == "lablink/ci")
        .count();
    assert!(ours >= 2, "{statuses:#}");
    // The log is the new attempt's alone.
    let log = w.run_log(&run_id).await;
    assert_eq!(log.matches("Running with dbt=").count(), 1, "{log}");
}
