//! A fleet on one database: replicas with different roles (setting `roles`) serve only their
//! faces and do only their work; the fleet's periodic passes run once whatever the number of
//! schedulers; a stopping worker hands its run back to the queue for another worker.

use std::time::Duration;

use crate::ci::{PATIENCE, World, duckdb_job};
use crate::support::{Backend, TestApp};

crate::on_both_backends!(
    replicas_serve_only_their_faces_and_only_workers_work,
    two_schedulers_run_each_periodic_pass_once,
    a_stopping_worker_hands_its_run_back_to_another,
);

/// How long a test watches for work that must not happen. Work that does happen here takes a
/// poll interval (50 ms), so a second shows it; slowness can only hide a failure, never cause
/// one.
const WATCH: Duration = Duration::from_secs(1);

async fn status(client: &reqwest::Client, method: reqwest::Method, url: String) -> u16 {
    client
        .request(method, url)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn replicas_serve_only_their_faces_and_only_workers_work(backend: Backend) {
    use reqwest::Method;
    let web = TestApp::spawn_with(backend, &[("roles", "web")]).await;
    let intake = web.replica(&[("roles", "intake")]).await;
    let http = reqwest::Client::new();
    let hook = "/webhooks/gitlab/0190d8a0-0000-7000-8000-000000000000";

    assert_eq!(
        status(&http, Method::GET, format!("{}/login", web.base)).await,
        200
    );
    assert_eq!(
        status(&http, Method::POST, format!("{}{hook}", web.base)).await,
        404
    );
    assert_eq!(
        status(&http, Method::GET, format!("{}/login", intake.base)).await,
        404
    );
    assert_eq!(
        status(&http, Method::GET, format!("{}/api/v1/me", intake.base)).await,
        404
    );
    // Intake answers (an unknown repository is a refusal, not a missing route).
    assert_eq!(
        status(&http, Method::POST, format!("{}{hook}", intake.base)).await,
        401
    );
    for base in [&web.base, &intake.base] {
        assert_eq!(
            status(&http, Method::GET, format!("{base}/healthz")).await,
            200
        );
    }

    // Neither works: the task the migrations queued waits, and no periodic pass ran.
    let queue = "SELECT status FROM jobs";
    tokio::time::sleep(WATCH).await;
    assert_eq!(web.column(queue).await, ["queued"]);
    assert!(web.db.periodic_passes().await.unwrap().is_empty());

    // A worker takes the queued task; being no scheduler, it runs no periodic pass.
    let worker = web.replica(&[("roles", "worker")]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while web.column(queue).await != ["done"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not take the task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(WATCH).await;
    assert!(web.db.periodic_passes().await.unwrap().is_empty());
    worker.stop().await;
    intake.stop().await;
}

async fn two_schedulers_run_each_periodic_pass_once(backend: Backend) {
    let first = TestApp::spawn_with(backend, &[("roles", "scheduler")]).await;
    let second = first.replica(&[("roles", "scheduler")]).await;
    let passes = ["pruning", "reconciliation", "token rotation"];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let done = first.db.periodic_passes().await.unwrap();
        if done.len() == passes.len() && done.iter().all(|p| p.times_run > 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{done:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both schedulers look for every pass when they start; the pass is not due again for an
    // hour (two minutes for reconciliation), so whoever looked second found it done.
    tokio::time::sleep(WATCH).await;
    let done = first.db.periodic_passes().await.unwrap();
    let names: Vec<&str> = done.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, passes);
    for pass in &done {
        assert_eq!(pass.times_run, 1, "{pass:#?}");
        assert_eq!(pass.locked_by, None, "{pass:#?}");
        assert!(pass.due_at > pass.last_finished_at.unwrap(), "{pass:#?}");
    }
    second.stop().await;
}

/// A Python model that keeps dbt busy until it is stopped.
pub(crate) const SLOW_MODEL: &str = "import time\n\
    def model(dbt, session):\n\
    \x20   time.sleep(600)\n\
    \x20   return session.sql('select 1 as x')\n";

async fn a_stopping_worker_hands_its_run_back_to_another(backend: Backend) {
    let w = World::with_job_and(
        backend,
        duckdb_job("ci"),
        &[("roles", "web, intake, scheduler")],
    )
    .await;
    let leaving = w
        .app
        .replica(&[("roles", "worker"), ("shutdown_grace_seconds", "0")])
        .await;
    let sha = w.commit("slow", &[("models/slow.py", SLOW_MODEL)]).await;
    w.open_mr("slow", "Slow").await;
    let run = wait_for_run(&w, &sha, |run| run["state"] == "running").await;
    let id = run["id"].as_str().unwrap().to_owned();

    // SIGTERM with no grace: the run is stopped and queued again, not failed or cancelled.
    leaving.stop().await;
    let run = &w.run(&id).await["run"];
    assert_eq!(run["state"], "queued", "{run:#}");
    assert_eq!(run["reason"], "the worker was shutting down; queued again");

    // Another worker takes it up.
    let taking_over = w
        .app
        .replica(&[("roles", "worker"), ("shutdown_grace_seconds", "0")])
        .await;
    let run = wait_for_run(&w, &sha, |run| run["state"] == "running").await;
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["attempts"], 2, "{run:#}");
    assert_eq!(w.runs_at(&sha).await.len(), 1, "still one run");
    taking_over.stop().await;
}

/// The merge request's one run at `sha`, once `ready` says so.
async fn wait_for_run(
    w: &World,
    sha: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(run) = w.runs_at(sha).await.into_iter().find(&ready) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:#}",
            w.runs().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
