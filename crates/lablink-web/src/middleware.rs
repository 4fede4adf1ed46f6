//! The protective layers around every route: the request's id and log span (outermost, so that
//! every other layer's log lines and responses have it), body size limit, request timeout,
//! panics turned into a 500 page, request metrics and tracing with sensitive headers hidden, the
//! headers that tell browsers what a page may do, and the request's origin (client address, user
//! agent) for the audit trail.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lablink_service::audit::RequestOrigin;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::client_address::{TrustedProxies, client_address};
use crate::request_id;
use crate::{AppState, HtmlError};

/// Largest request body accepted (forms and JSON are small).
const BODY_LIMIT: usize = 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a lablink page may load and do: its own stylesheet, scripts and images, no inline code
/// (except the one `<style>` element the workspace's editor, CodeMirror, writes, marked with the
/// response's nonce), no frames around it, no plugins, forms posting back to it.
fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self' 'nonce-{nonce}'; script-src 'self'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// A fresh value per response that lets the workspace editor's own `<style>` element through
/// the Content-Security-Policy (pages read it with `Extension<StyleNonce>`).
#[derive(Debug, Clone)]
pub struct StyleNonce(pub String);

pub fn apply(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let https = state.services.settings.secure_cookies();
    let trusted = state.trusted_proxies.clone();
    let proxies = state.trusted_proxies.clone();
    router
        .layer(axum::middleware::from_fn(move |req, next| {
            browser_headers(req, next, https)
        }))
        .layer(axum::middleware::from_fn(move |req, next| {
            with_origin(req, next, trusted.clone())
        }))
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
        // Its events (a failed response, latencies at debug level) go into the request's own
        // span (`request_id`); its span would repeat it with the raw URI, queries and all.
        .layer(TraceLayer::new_for_http().make_span_with(|_: &Request| tracing::Span::none()))
        .layer(SetSensitiveHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::SET_COOKIE,
            // GitLab's webhook secret and its signature, sent with every delivery.
            header::HeaderName::from_static("x-gitlab-token"),
            header::HeaderName::from_static("webhook-signature"),
        ]))
        .layer(axum::middleware::from_fn(move |req, next| {
            request_id::scope(req, next, proxies.clone())
        }))
}

/// Runs the request with its origin known to the use cases, which record it in audit entries.
async fn with_origin(req: Request, next: Next, trusted: TrustedProxies) -> Response {
    let origin = RequestOrigin {
        client_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_address(c.0.ip(), req.headers(), &trusted).to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    origin.scope(next.run(req)).await
}

/// The browser-facing security headers of every response; HSTS only when lablink is served over
/// https (the public URL says so), where a browser must never fall back to http.
async fn browser_headers(mut req: Request, next: Next, https: bool) -> Response {
    let nonce = lablink_service::secrets::random_secret();
    req.extensions_mut().insert(StyleNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if let Ok(policy) = header::HeaderValue::from_str(&content_security_policy(&nonce)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, header::HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "same-origin");
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    res
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
