//! The protective layers around every route: body size limit, request timeout, panics turned
//! into a 500 page, request metrics and tracing with sensitive headers hidden.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::{AppState, HtmlError};

/// Largest request body accepted (forms and JSON are small).
const BODY_LIMIT: usize = 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn apply(router: Router<AppState>) -> Router<AppState> {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            HtmlError::internal("handler panicked".into()).into_response()
        }))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::SET_COOKIE,
            // GitLab's webhook secret and its signature, sent with every delivery.
            header::HeaderName::from_static("x-gitlab-token"),
            header::HeaderName::from_static("webhook-signature"),
        ]))
}

/// Counts requests and their latency by method, route pattern (never the raw path, which may
/// hold ids) and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("lablink_http_requests_total", &labels).increment(1);
    metrics::histogram!("lablink_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}
