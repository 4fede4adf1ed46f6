//! Every request to GitLab counted by endpoint and status, and GitLab's rate-limit headroom, in
//! the `metrics` facade (the binary decides where they go). An endpoint is its route template
//! (`api/v4/projects/:id/merge_requests/:id/notes`), never the raw path, so that ids, commit
//! hashes and branch names do not become label values.

use reqwest::header::HeaderMap;
use url::Url;

/// Collections whose next path segment is one item's id (or name, or commit).
const COLLECTIONS: &[&str] = &[
    "projects",
    "groups",
    "users",
    "merge_requests",
    "notes",
    "statuses",
    "commits",
    "branches",
    "hooks",
    "access_tokens",
    "personal_access_tokens",
    "deploy_tokens",
    "deploy_keys",
    "all",
];

/// `url`'s path below `base` with every item segment replaced by `:id` (`self` stays).
pub(crate) fn endpoint(base: &Url, url: &Url) -> String {
    let skip = base
        .path_segments()
        .map_or(0, |s| s.filter(|s| !s.is_empty()).count());
    let mut template = Vec::new();
    let mut item_next = false;
    for segment in url.path_segments().into_iter().flatten().skip(skip) {
        if item_next && segment != "self" {
            template.push(":id");
            item_next = false;
        } else {
            item_next = COLLECTIONS.contains(&segment);
            template.push(segment);
        }
    }
    template.join("/")
}

/// Counts one request: its HTTP status, or `error` when none came back.
pub(crate) fn record(endpoint: String, method: &str, status: Option<u16>, host: &str) {
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    metrics::counter!(
        "lablink_gitlab_requests_total",
        "endpoint" => endpoint,
        "method" => method.to_owned(),
        "status" => status,
        "host" => host.to_owned()
    )
    .increment(1);
}

/// GitLab's `RateLimit-Remaining` (requests left in the current window), when it sent one.
pub(crate) fn record_rate_limit(headers: &HeaderMap, host: &str) {
    let remaining = headers
        .get("ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(remaining) = remaining {
        metrics::gauge!("lablink_gitlab_ratelimit_remaining", "host" => host.to_owned())
            .set(remaining);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_route_templates() {
        let base = Url::parse("https://gitlab.example/gitlab/").unwrap();
        let at = |path: &str| endpoint(&base, &base.join(path).unwrap());
        assert_eq!(
            at("api/v4/projects/42/merge_requests/7/notes"),
            "api/v4/projects/:id/merge_requests/:id/notes"
        );
        assert_eq!(
            at("api/v4/projects/42/statuses/0123456789abcdef0123456789abcdef01234567"),
            "api/v4/projects/:id/statuses/:id"
        );
        assert_eq!(
            at("api/v4/projects/42/repository/branches/feature%2Fx"),
            "api/v4/projects/:id/repository/branches/:id"
        );
        assert_eq!(
            at("api/v4/projects/42/access_tokens/self/rotate"),
            "api/v4/projects/:id/access_tokens/self/rotate"
        );
        assert_eq!(
            at("api/v4/projects/42/members/all/9"),
            "api/v4/projects/:id/members/all/:id"
        );
        assert_eq!(at("api/v4/projects"), "api/v4/projects");
        assert_eq!(at("api/v4/user"), "api/v4/user");
        assert_eq!(at("oauth/token"), "oauth/token");
        let root = Url::parse("https://gitlab.com").unwrap();
        assert_eq!(
            endpoint(
                &root,
                &root.join("api/v4/projects/group%2Fsub/hooks").unwrap()
            ),
            "api/v4/projects/:id/hooks"
        );
    }
}
