//! Offset and keyset pagination headers (gitlab-api.md §7.2).

use axum::http::{HeaderName, Uri};

use crate::error::ApiError;
use crate::params::Params;

/// Above this many records GitLab omits `x-total`, `x-total-pages` and `rel="last"`.
const COUNT_LIMIT: usize = 10_000;

pub type Headers = Vec<(HeaderName, String)>;

/// `page` (default 1) and `per_page` (default 20, at most 100).
pub fn page_params(params: &Params) -> Result<(usize, usize), ApiError> {
    let page = params.int("page")?.unwrap_or(1).max(1) as usize;
    let per_page = match params.int("per_page")? {
        Some(n) if n >= 1 => (n as usize).min(100),
        _ => 20,
    };
    Ok((page, per_page))
}

/// The request URL with some query parameters replaced (used for `Link` headers).
pub fn url_with(base_url: &str, uri: &Uri, replace: &[(&str, String)]) -> String {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let mut kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| {
            !replace.iter().any(|(r, _)| r == k) && k != "private_token" && k != "access_token"
        })
        .collect();
    kept.extend(replace.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    format!("{base_url}{}?{query}", uri.path())
}

/// Cuts one page out of `items` and builds GitLab's offset pagination headers.
pub fn offset<T>(
    items: Vec<T>,
    page: usize,
    per_page: usize,
    base_url: &str,
    uri: &Uri,
) -> (Vec<T>, Headers) {
    let total = items.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let page_items: Vec<T> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let link = |p: usize| {
        url_with(
            base_url,
            uri,
            &[("page", p.to_string()), ("per_page", per_page.to_string())],
        )
    };
    let counted = total <= COUNT_LIMIT;
    let next = (page < total_pages).then_some(page + 1);
    let prev = (page > 1).then(|| (page - 1).min(total_pages));
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("<{}>; rel=\"prev\"", link(p)));
    }
    if let Some(n) = next {
        links.push(format!("<{}>; rel=\"next\"", link(n)));
    }
    links.push(format!("<{}>; rel=\"first\"", link(1)));
    if counted {
        links.push(format!("<{}>; rel=\"last\"", link(total_pages)));
    }
    let mut headers: Headers = vec![
        (HeaderName::from_static("link"), links.join(", ")),
        (
            HeaderName::from_static("x-next-page"),
            next.map(|n| n.to_string()).unwrap_or_default(),
        ),
        (HeaderName::from_static("x-page"), page.to_string()),
        (HeaderName::from_static("x-per-page"), per_page.to_string()),
        (
            HeaderName::from_static("x-prev-page"),
            prev.map(|p| p.to_string()).unwrap_or_default(),
        ),
    ];
    if counted {
        headers.push((HeaderName::from_static("x-total"), total.to_string()));
        headers.push((
            HeaderName::from_static("x-total-pages"),
            total_pages.to_string(),
        ));
    }
    (page_items, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn totals_and_last_link_are_omitted_above_ten_thousand() {
        let uri: Uri = "/api/v4/projects?per_page=100".parse().expect("uri");
        let (page, headers) = offset((0..10_001).collect(), 2, 100, "http://sim", &uri);
        assert_eq!(page.first(), Some(&100));
        assert!(header(&headers, "x-total").is_none());
        assert!(header(&headers, "x-total-pages").is_none());
        let link = header(&headers, "link").expect("link");
        assert!(!link.contains("rel=\"last\""));
        assert!(link.contains("rel=\"next\""));

        let (_, headers) = offset((0..10_000).collect::<Vec<_>>(), 1, 100, "http://sim", &uri);
        assert_eq!(header(&headers, "x-total"), Some("10000"));
        assert_eq!(header(&headers, "x-total-pages"), Some("100"));
        assert!(
            header(&headers, "link")
                .expect("link")
                .contains("rel=\"last\"")
        );
    }

    #[test]
    fn links_keep_the_query_and_drop_secrets() {
        let uri: Uri = "/api/v4/projects?membership=true&private_token=s3cret&page=1"
            .parse()
            .expect("uri");
        let (_, headers) = offset(vec![1, 2, 3], 1, 2, "http://sim", &uri);
        let link = header(&headers, "link").expect("link");
        assert!(link.contains("membership=true"));
        assert!(link.contains("page=2"));
        assert!(!link.contains("s3cret"));
    }
}
