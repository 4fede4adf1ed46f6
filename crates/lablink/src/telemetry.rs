//! Logs (tracing, pretty or JSON) and the Prometheus recorder behind `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber. `RUST_LOG` overrides the default level (info).
///
/// Every line carries the spans it was written in, with their fields: the request's
/// `request{id, method, route}`, the use case's ids (`create_project{account_id, user_id}`), a
/// run's `run{run_id}`. The text format writes them before the message
/// (`request{id=… method=POST route=/projects}:create_project{…}: lablink_service::projects:
/// project created`); JSON writes the innermost as `span` and all of them, outermost first, as
/// `spans`. Colours only on a terminal: a journal or a file gets plain text to search.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second installation (tests start several servers in one process) keeps the first.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Buckets of `lablink_run_duration_seconds`: dbt runs take seconds to an hour.
const RUN_SECONDS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                // A histogram (not a summary): quantiles across replicas need buckets.
                .set_buckets_for_metric(
                    Matcher::Full("lablink_run_duration_seconds".into()),
                    RUN_SECONDS,
                )
                .expect("the buckets are not empty")
                .install_recorder()
                .expect("the Prometheus recorder is installed once per process")
        })
        .clone()
}

/// The tiny app served on the metrics listener.
pub fn metrics_app() -> Router {
    let handle = metrics_handle();
    Router::new().route("/metrics", get(move || async move { handle.render() }))
}
