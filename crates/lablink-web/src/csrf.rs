//! CSRF protection. Signed-in forms carry a token derived from the session id; sign-in and setup
//! forms (no session yet) carry one derived from a random pre-session cookie. Either way the
//! token is checked in constant time on every POST.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use lablink_service::secrets::secrets_equal;
use lablink_service::sessions::csrf_token;

use crate::{AppState, HtmlError};

/// The pre-session cookie's name: `__Host-` prefixed over https, so that browsers accept it only
/// from this host, over https, for the whole site (never planted by a sibling subdomain). Over
/// plain http (the demo, a loopback address) browsers refuse that prefix, so it goes without.
pub fn pre_session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-lablink_pre"
    } else {
        "lablink_pre"
    }
}

/// Checks a submitted CSRF token against the expected one.
pub fn check_csrf(expected: &str, submitted: &str) -> Result<(), HtmlError> {
    if secrets_equal(expected, submitted) {
        Ok(())
    } else {
        Err(HtmlError::csrf())
    }
}

/// The pre-session of an anonymous browser: a random cookie set with the first form.
pub struct PreSession {
    /// Set when the cookie is new and must be sent with the response.
    pub jar: CookieJar,
    pub csrf_token: String,
    existed: bool,
}

impl PreSession {
    /// For a POST: the cookie must already exist and the token must match.
    pub fn check(&self, submitted: &str) -> Result<(), HtmlError> {
        if !self.existed {
            return Err(HtmlError::csrf());
        }
        check_csrf(&self.csrf_token, submitted)
    }
}

impl FromRequestParts<AppState> for PreSession {
    type Rejection = HtmlError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HtmlError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let secure = state.services.settings.secure_cookies();
        let name = pre_session_cookie(secure);
        if let Some(c) = jar
            .get(name)
            .filter(|c| state.services.pre_session_is_ours(c.value()))
        {
            let csrf_token = csrf_token(c.value());
            return Ok(PreSession {
                jar,
                csrf_token,
                existed: true,
            });
        }
        let secret = state.services.new_pre_session();
        let csrf_token = csrf_token(&secret);
        let jar = jar.add(secure_cookie(name, secret, secure));
        Ok(PreSession {
            jar,
            csrf_token,
            existed: false,
        })
    }
}

/// HttpOnly, SameSite=Lax, path `/`, no domain (host-only), and `Secure` when lablink is served
/// over https.
pub fn secure_cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .build()
}
