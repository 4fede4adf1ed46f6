//! Every request's id, so that an operator can find what a request did across the log: it is
//! returned in the `X-Request-Id` response header, named on error pages ("Reference: …"), and
//! every log line written while the request is handled — in the handler, the use case and below
//! — carries it in the span `request{id, method, route}`.
//!
//! An incoming `X-Request-Id` is taken only from one of the operator's `trusted_proxies` (so a
//! proxy's id and lablink's name the same request) and only when it is well formed; anyone else
//! could choose the id of a log line or write into the log with it, so they get a fresh one.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::client_address::TrustedProxies;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a proxy (a UUID is 36 characters, nginx's `$request_id` 32).
const MAX_LEN: usize = 64;

tokio::task_local! {
    /// The id of the request being handled, for error pages rendered anywhere below.
    static CURRENT: String;
}

/// The id of the request this task is handling, if it is handling one.
pub fn current() -> Option<String> {
    CURRENT.try_with(String::clone).ok()
}

/// Runs the request with its id: in the log span around it, for [`current`], and in the
/// response's `X-Request-Id`.
pub async fn scope(req: Request, next: Next, trusted: TrustedProxies) -> Response {
    let from_proxy = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| trusted.trusts(c.0.ip()));
    let id = from_proxy
        .then(|| well_formed(req.headers()))
        .flatten()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // The route's pattern, never the raw path or query (an OAuth callback's code is in it).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!("request", id = %id, method = %req.method(), route = %route);
    let mut res = CURRENT
        .scope(id.clone(), next.run(req).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, value);
    }
    res
}

/// The incoming `X-Request-Id` when it is one short token of letters, digits and `-_.:`, which
/// cannot break a log line, a header or a page.
fn well_formed(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(HEADER).iter();
    let value = values.next()?.to_str().ok()?;
    let ok = values.next().is_none()
        && (1..=MAX_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_one_short_plain_token_is_an_id() {
        assert_eq!(
            well_formed(&with(&["0190d8a0-0000-7000-8000-000000000000"])).as_deref(),
            Some("0190d8a0-0000-7000-8000-000000000000")
        );
        assert_eq!(
            well_formed(&with(&["Root=1-5759e988"])),
            None,
            "'=' is not taken"
        );
        assert_eq!(well_formed(&with(&["a b"])), None);
        assert_eq!(well_formed(&with(&["<script>"])), None);
        assert_eq!(well_formed(&with(&[&"x".repeat(MAX_LEN + 1)])), None);
        assert_eq!(well_formed(&with(&["", "b"])), None);
        assert_eq!(well_formed(&with(&["a", "b"])), None, "two ids is none");
        assert_eq!(well_formed(&HeaderMap::new()), None);
    }
}
