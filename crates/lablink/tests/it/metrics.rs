//! The metrics of a fleet, scraped from a worker's own `/metrics` while it runs CI for real: the
//! worker is `lablink serve` in its own process (roles worker and scheduler), the pages and
//! intake are the test's server, all on one database and one gitlab-sim.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::ci::{GOOD_MODEL, MODEL_PATH, PATIENCE, World, duckdb_job};
use crate::fleet::SLOW_MODEL;
use crate::support::{Backend, sample};

crate::on_both_backends!(a_workers_metrics_show_its_runs_backlog_and_gitlab_calls);

async fn a_workers_metrics_show_its_runs_backlog_and_gitlab_calls(backend: Backend) {
    let w = World::with_job_and(backend, duckdb_job("ci"), &[("roles", "web, intake")]).await;
    // GitLab tells how many requests are left in its window.
    w.gitlab
        .control(
            Method::PUT,
            "/settings",
            json!({"rate_limit": {"limit": 100000, "period_secs": 60}}),
        )
        .await;
    let mut worker = w.app.serve_process(&[("roles", "worker, scheduler")]).await;
    let good = w.commit("good", &[(MODEL_PATH, GOOD_MODEL)]).await;
    w.open_mr("good", "Good").await;
    w.wait_for_status(&good, "success").await;
    // A run that stays running while the metrics are read.
    w.commit("slow", &[("models/slow.py", SLOW_MODEL)]).await;
    w.open_mr("slow", "Slow").await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let metrics = loop {
        // The backlog gauges are refreshed every 15 s: wait for a reading taken after the good
        // run ended and while the slow one runs.
        let metrics = worker.metrics().await.unwrap_or_default();
        let runs = |state| sample(&metrics, "lablink_runs", &[("state", state)]);
        if runs("running") == Some(1.0) && runs("success") == Some(1.0) {
            break metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&metrics, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}:\n{metrics}"))
    };

    // Runs: by state in the database, and this worker's executions.
    assert_eq!(value("lablink_runs", &[("state", "error")]), 0.0);
    assert_eq!(
        value("lablink_runs_finished_total", &[("outcome", "success")]),
        1.0
    );
    let success = [("outcome", "success")];
    assert_eq!(value("lablink_run_duration_seconds_count", &success), 1.0);
    assert!(value("lablink_run_duration_seconds_sum", &success) > 0.0);
    assert_eq!(
        value(
            "lablink_run_duration_seconds_bucket",
            &[("outcome", "success"), ("le", "+Inf")]
        ),
        1.0
    );
    // The backlog.
    assert!(value("lablink_deliveries_waiting", &[]) >= 0.0);
    assert!(value("lablink_deliveries_oldest_waiting_seconds", &[]) >= 0.0);
    assert!(value("lablink_statuses_unsent", &[]) >= 0.0);
    // GitLab: commit statuses posted by route template, and the rate-limit headroom.
    let statuses = [
        ("endpoint", "api/v4/projects/:id/statuses/:id"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert!(value("lablink_gitlab_requests_total", &statuses) >= 2.0);
    assert!(
        !metrics.contains(&format!("statuses/{good}")),
        "a raw path is a label"
    );
    let remaining = value("lablink_gitlab_ratelimit_remaining", &[]);
    assert!((0.0..100000.0).contains(&remaining), "{remaining}");
    // The scheduler's passes.
    assert_eq!(
        value(
            "lablink_periodic_passes_total",
            &[("pass", "reconciliation")]
        ),
        1.0
    );
    worker.kill().await;
}
