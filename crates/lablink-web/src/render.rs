use askama::Template;
use axum::response::Html;

use crate::HtmlError;

/// Renders a template into an HTML response; a template failure becomes the 500 page.
pub fn render<T: Template>(template: &T) -> Result<Html<String>, HtmlError> {
    template
        .render()
        .map(Html)
        .map_err(|e| HtmlError::internal(format!("template: {e}")))
}

/// Template filters (templates of a module that does `use crate::render::filters;`).
pub mod filters {
    /// A link that came from GitLab, as the `href` of a link: only http(s) URLs are linked;
    /// anything else (`javascript:`, `data:`, garbage) becomes a link to nowhere.
    pub fn http_href(
        url: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::http_link(&url.to_string()).unwrap_or("#").to_owned())
    }

    /// Text written for a Markdown note (the merge request's) shown on a page: its `code`
    /// marks would show as stray backticks, so they go.
    pub fn unmark(text: impl std::fmt::Display, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(text.to_string().replace('`', ""))
    }
}

/// A message in lablink's words for a page, as HTML: escaped, with the names it marks as
/// `code` (setting names, paths, commands) shown as code rather than as stray backticks.
pub fn words(text: impl AsRef<str>) -> String {
    let mut html = String::with_capacity(text.as_ref().len() + 16);
    for (i, part) in text.as_ref().split('`').enumerate() {
        let code = i % 2 == 1;
        if code {
            html.push_str("<code>");
        }
        for c in part.chars() {
            match c {
                '&' => html.push_str("&amp;"),
                '<' => html.push_str("&lt;"),
                '>' => html.push_str("&gt;"),
                '"' => html.push_str("&quot;"),
                '\'' => html.push_str("&#39;"),
                c => html.push(c),
            }
        }
        if code {
            html.push_str("</code>");
        }
    }
    html
}

/// `url` when it is an absolute http(s) URL.
pub fn http_link(url: &str) -> Option<&str> {
    let lower = url.trim_start().to_ascii_lowercase();
    ((lower.starts_with("https://") || lower.starts_with("http://"))
        && !url.chars().any(char::is_control))
    .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::{http_link, words};

    #[test]
    fn words_escape_and_show_names_as_code() {
        assert_eq!(
            words("Set `ci_schema_ttl_days` <now> & \"then\""),
            "Set <code>ci_schema_ttl_days</code> &lt;now&gt; &amp; &quot;then&quot;"
        );
        assert_eq!(words("a `b"), "a <code>b</code>");
        assert_eq!(
            words("<script>`</script>`"),
            "&lt;script&gt;<code>&lt;/script&gt;</code>"
        );
    }

    #[test]
    fn only_http_links_are_linked() {
        assert_eq!(
            http_link("https://gitlab.com/acme/x"),
            Some("https://gitlab.com/acme/x")
        );
        assert_eq!(
            http_link("HTTP://gitlab.local/x"),
            Some("HTTP://gitlab.local/x")
        );
        for bad in [
            "javascript:alert(1)",
            " data:text/html,x",
            "/relative",
            "https://x\n/y",
            "",
        ] {
            assert_eq!(http_link(bad), None, "{bad}");
        }
    }
}
