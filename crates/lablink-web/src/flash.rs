//! Post/redirect/get with a message: an action answers with a redirect that carries a one-time
//! message in a cookie; the next page shows it (base layout) and the response clears it, so a
//! refresh neither resends the form nor shows the message twice.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;

use crate::csrf::secure_cookie;

const FLASH_COOKIE: &str = "lablink_flash";
/// Longer messages are cut: the message is only ever our own words plus a name or two.
const MAX_CHARS: usize = 600;

/// A message waiting for the next page: what was done, or what went wrong (shown as an alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub problem: bool,
}

/// Marks a message that says something went wrong.
const PROBLEM: char = '!';

/// Redirects to `to` (303, so the browser GETs it) and shows `message` there.
pub fn redirect(to: &str, message: impl AsRef<str>, secure: bool) -> Response {
    redirect_with(to, message.as_ref(), false, secure)
}

/// Like [`redirect`], for a message that says something did not work.
pub fn redirect_problem(to: &str, message: impl AsRef<str>, secure: bool) -> Response {
    redirect_with(to, message.as_ref(), true, secure)
}

fn redirect_with(to: &str, message: &str, problem: bool, secure: bool) -> Response {
    let text: String = problem
        .then_some(PROBLEM)
        .into_iter()
        .chain(message.chars().take(MAX_CHARS))
        .collect();
    let value: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let cookie = secure_cookie(FLASH_COOKIE, value, secure);
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The message waiting in the request's cookies, if any.
pub fn read(headers: &HeaderMap) -> Option<Flash> {
    let jar = CookieJar::from_headers(headers);
    let raw = jar.get(FLASH_COOKIE)?.value().to_owned();
    let text: String = url::form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    let (problem, text) = match text.strip_prefix(PROBLEM) {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let text: String = text.chars().take(MAX_CHARS).collect();
    (!text.trim().is_empty()).then_some(Flash { text, problem })
}

/// Clears the message once a page other than a redirect has answered the request that carried it.
pub async fn clear_after_showing(req: Request, next: Next) -> Response {
    let had_flash = CookieJar::from_headers(req.headers())
        .get(FLASH_COOKIE)
        .is_some();
    let mut res = next.run(req).await;
    if had_flash && !res.status().is_redirection() {
        let removal = Cookie::build((FLASH_COOKIE, ""))
            .path("/")
            .removal()
            .build();
        if let Ok(v) = HeaderValue::from_str(&removal.to_string()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip_through_the_cookie() {
        let res = redirect(
            "/projects/1",
            "Saved «x»; deleted 2 jobs, 100% = done",
            false,
        );
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
        let pair = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        let shown = read(&headers).unwrap();
        assert_eq!(shown.text, "Saved «x»; deleted 2 jobs, 100% = done");
        assert!(!shown.problem);
        let res = redirect_problem("/x", "GitLab did not answer", false);
        let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(set.split(';').next().unwrap()).unwrap(),
        );
        let shown = read(&headers).unwrap();
        assert_eq!(
            (shown.text.as_str(), shown.problem),
            ("GitLab did not answer", true)
        );
    }

    #[test]
    fn garbage_or_empty_cookies_show_nothing() {
        for value in ["", "%", "%ZZ", "+++"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("{FLASH_COOKIE}={value}")).unwrap(),
            );
            let shown = read(&headers);
            assert!(shown.is_none_or(|s| !s.text.trim().is_empty()));
        }
    }
}
