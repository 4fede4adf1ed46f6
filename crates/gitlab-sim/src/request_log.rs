//! Counts every request GitLab answers (not the control API), by method, route pattern and
//! status, so tests can assert how many GitLab calls a client made, not just their effects.

use std::collections::BTreeMap;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::middleware::CONTROL_PREFIX;
use crate::state::SimHandle;

/// What one request was: `route` is the router's pattern, e.g.
/// `/api/v4/projects/{id}/access_tokens/{token_id}/rotate`, or `(unmatched)` for unknown routes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestKey {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// How many requests of each kind arrived since the start or the last reset.
pub type RequestCounts = BTreeMap<RequestKey, u64>;

/// Outermost layer: sees the final status, including injected faults and rate limiting.
pub async fn count_requests(
    State(sim): State<SimHandle>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let key = RequestKey {
        method,
        route,
        status: response.status().as_u16(),
    };
    *sim.lock().request_counts.entry(key).or_default() += 1;
    response
}

impl SimHandle {
    pub fn request_counts(&self) -> RequestCounts {
        self.lock().request_counts.clone()
    }

    /// Requests with this method and route pattern, whatever their status.
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        self.lock()
            .request_counts
            .iter()
            .filter(|(k, _)| k.method == method && k.route == route)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset_request_counts(&self) {
        self.lock().request_counts.clear();
    }
}
