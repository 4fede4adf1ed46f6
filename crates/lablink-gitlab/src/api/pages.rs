//! Pagination by following GitLab's `Link: <…>; rel="next"` header verbatim (keyset and offset
//! alike, gitlab-api.md §7.2).

use futures::Stream;
use reqwest::Method;
use reqwest::header::{HeaderMap, LINK};
use serde::de::DeserializeOwned;
use url::Url;

use super::{Api, retry_idempotent};
use crate::error::GitLabError;

/// One page of a list and where the next one is.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The URL GitLab gave for the next page; `None` at the end. Can be stored and resumed with
    /// [`Pager::resume`].
    pub next: Option<Url>,
}

/// Walks a list page by page.
#[derive(Debug, Clone)]
pub struct Pager<T> {
    api: Api,
    next: Option<Url>,
    _items: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<T> {
    pub(crate) fn new(api: &Api, first: Url) -> Pager<T> {
        Pager::resume(api, Some(first))
    }

    /// Continues from a page's `next` URL (for "show the first page now, load the rest later").
    pub fn resume(api: &Api, next: Option<Url>) -> Pager<T> {
        Pager {
            api: api.clone(),
            next,
            _items: std::marker::PhantomData,
        }
    }

    /// The next page, or `None` when the list is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, GitLabError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page = self.api.page(url).await?;
        self.next.clone_from(&page.next);
        Ok(Some(page))
    }

    /// Every remaining item, page after page.
    pub async fn collect_all(mut self) -> Result<Vec<T>, GitLabError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page.items);
        }
        Ok(all)
    }

    /// The remaining pages as a stream (ends after the first error).
    pub fn into_stream(self) -> impl Stream<Item = Result<Page<T>, GitLabError>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut pager = state?;
            match pager.next_page().await {
                Ok(Some(page)) => Some((Ok(page), Some(pager))),
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        })
    }
}

impl Api {
    /// Fetches one page of a list at `url`.
    pub(crate) async fn page<T: DeserializeOwned>(&self, url: Url) -> Result<Page<T>, GitLabError> {
        let reply = retry_idempotent(&self.retry, || {
            self.execute(self.request(Method::GET, url.clone()))
        })
        .await?;
        let items = reply.json()?;
        let next = next_link(&reply.headers, self.instance.base_url())?;
        Ok(Page { items, next })
    }
}

/// The `rel="next"` target of a `Link` header. It must stay on the instance's origin: the token
/// goes wherever the link points.
fn next_link(headers: &HeaderMap, base: &Url) -> Result<Option<Url>, GitLabError> {
    let Some(target) = headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(find_next)
    else {
        return Ok(None);
    };
    let url = base.join(target).map_err(|e| GitLabError::Decode {
        context: "the Link header".to_owned(),
        cause: e.to_string(),
    })?;
    if url.origin() != base.origin() {
        return Err(GitLabError::Decode {
            context: "the Link header".to_owned(),
            cause: format!(
                "the next page points to another site ({})",
                url.origin().ascii_serialization()
            ),
        });
    }
    Ok(Some(url))
}

/// Parses `<url>; rel="next", <url>; rel="first"` (RFC 8288), tolerating commas inside `<…>`.
fn find_next(header: &str) -> Option<&str> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = &after[..close];
        let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
        let params = after[close + 1..params_end]
            .trim_end()
            .trim_end_matches(',');
        let is_next = params.split(';').any(|param| {
            let mut kv = param.splitn(2, '=');
            let key = kv.next().unwrap_or_default().trim();
            let value = kv.next().unwrap_or_default().trim().trim_matches('"');
            key.eq_ignore_ascii_case("rel")
                && value
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target);
        }
        rest = &after[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(link: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(link).unwrap());
        headers
    }

    #[test]
    fn finds_next_among_several_relations() {
        let link = r#"<https://gitlab.example.com/api/v4/projects?id_after=42&membership=true&order_by=id&pagination=keyset&per_page=2&sort=asc>; rel="next""#;
        assert_eq!(
            find_next(link),
            Some(
                "https://gitlab.example.com/api/v4/projects?id_after=42&membership=true&order_by=id&pagination=keyset&per_page=2&sort=asc"
            )
        );
        let offset = r#"<https://x/api/v4/p?page=1&per_page=3>; rel="prev", <https://x/api/v4/p?page=3&per_page=3>; rel="next", <https://x/api/v4/p?page=1&per_page=3>; rel="first""#;
        assert_eq!(
            find_next(offset),
            Some("https://x/api/v4/p?page=3&per_page=3")
        );
        assert_eq!(
            find_next(r#"<https://x/a,b>; rel="next""#),
            Some("https://x/a,b")
        );
        assert_eq!(find_next(r#"<https://x/a>; rel="first""#), None);
        assert_eq!(find_next("garbage"), None);
        assert_eq!(find_next("<unterminated"), None);
    }

    #[test]
    fn next_link_must_stay_on_the_instance() {
        let base = Url::parse("https://gitlab.example.com/").unwrap();
        let ok = next_link(
            &headers(r#"<https://gitlab.example.com/api/v4/projects?id_after=5>; rel="next""#),
            &base,
        )
        .unwrap();
        assert_eq!(
            ok.unwrap().as_str(),
            "https://gitlab.example.com/api/v4/projects?id_after=5"
        );
        let err = next_link(
            &headers(r#"<https://169.254.169.254/latest>; rel="next""#),
            &base,
        )
        .unwrap_err();
        assert!(matches!(err, GitLabError::Decode { .. }));
        assert!(next_link(&HeaderMap::new(), &base).unwrap().is_none());
    }
}
