//! Request-level behaviour in front of every route: injected faults and GitLab's rate limiter.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::auth::presented_token;
use crate::state::{Fault, SimHandle, State as SimState};

pub const CONTROL_PREFIX: &str = "/-/sim";

/// `*` matches any run of characters; everything else literally.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn matching_fault(state: &SimState, method: &str, path: &str) -> Option<Fault> {
    state
        .faults
        .iter()
        .find(|f| {
            f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path_matches(&f.path, path)
        })
        .cloned()
}

/// A response whose body fails at once: the client sees the connection cut mid-response.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault injection: connection dropped",
        ))
    });
    Response::new(Body::from_stream(stream))
}

fn http_date(t: crate::state::Time) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

struct Throttle {
    name: &'static str,
    limit: u32,
    observed: u32,
    reset_at: i64,
    now: crate::state::Time,
}

impl Throttle {
    fn exceeded(&self) -> bool {
        self.observed > self.limit
    }

    fn apply(&self, response: &mut Response) {
        let headers = [
            ("ratelimit-name", self.name.to_owned()),
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-observed", self.observed.to_string()),
            (
                "ratelimit-remaining",
                self.limit.saturating_sub(self.observed).to_string(),
            ),
            ("ratelimit-reset", self.reset_at.to_string()),
        ];
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), v);
            }
        }
    }
}

fn too_many_requests(retry_after: i64, reset_time: &str) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain")],
        "Retry later\n",
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        headers.insert(header::RETRY_AFTER, v);
    }
    if let Ok(v) = HeaderValue::from_str(reset_time) {
        headers.insert(HeaderName::from_static("ratelimit-resettime"), v);
    }
    response
}

/// Fixed-window counter per user (authenticated) or per IP, on the sim clock.
fn throttle(state: &mut SimState, token: Option<String>, ip: String) -> Option<Throttle> {
    let limit = state.settings.rate_limit.clone()?;
    let user = token.and_then(|t| state.user_of_secret(&t));
    let (name, key) = match user {
        Some(uid) => ("throttle_authenticated_api", format!("user:{uid}")),
        None => ("throttle_unauthenticated_api", format!("ip:{ip}")),
    };
    let now = state.now();
    let period = i64::from(limit.period_secs.max(1));
    let window = now.timestamp() / period * period;
    let entry = state.rate_windows.entry(key).or_insert((window, 0));
    if entry.0 != window {
        *entry = (window, 0);
    }
    entry.1 += 1;
    Some(Throttle {
        name,
        limit: limit.limit,
        observed: entry.1,
        reset_at: window + period,
        now,
    })
}

pub async fn faults_and_limits(
    State(sim): State<SimHandle>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let fault = matching_fault(&sim.lock(), &method, &path);
    if let Some(fault) = fault {
        if fault.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(fault.latency_ms)).await;
        }
        if fault.drop_connection {
            return dropped_connection();
        }
        if fault.rate_limited {
            let now = sim.now();
            return too_many_requests(60, &http_date(now + chrono::Duration::seconds(60)));
        }
        if fault.error_rate > 0.0 && rand::thread_rng().gen_bool(fault.error_rate.clamp(0.0, 1.0)) {
            let status = StatusCode::from_u16(fault.error_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error")
            );
            return (
                status,
                axum::Json(serde_json::json!({ "message": message })),
            )
                .into_response();
        }
    }
    if !path.starts_with("/api/v4") {
        return next.run(request).await;
    }
    let token = presented_token(request.headers(), request.uri());
    let throttle = throttle(&mut sim.lock(), token, peer.ip().to_string());
    match throttle {
        Some(t) if t.exceeded() => {
            let retry_after = (t.reset_at - t.now.timestamp()).max(1);
            let reset = chrono::DateTime::from_timestamp(t.reset_at, 0).unwrap_or(t.now);
            let mut response = too_many_requests(retry_after, &http_date(reset));
            t.apply(&mut response);
            response
        }
        Some(t) => {
            let mut response = next.run(request).await;
            t.apply(&mut response);
            response
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn glob_patterns() {
        assert!(path_matches("/api/v4/projects", "/api/v4/projects"));
        assert!(path_matches("/api/v4/*", "/api/v4/projects/1"));
        assert!(path_matches("*/hooks", "/api/v4/projects/1/hooks"));
        assert!(path_matches(
            "/api/*/projects/*/hooks",
            "/api/v4/projects/1/hooks"
        ));
        assert!(!path_matches("/api/v4/projects", "/api/v4/projects/1"));
        assert!(!path_matches("/oauth/*", "/api/v4/user"));
    }
}
