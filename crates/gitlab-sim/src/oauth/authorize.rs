//! `GET/POST /oauth/authorize` and the sign-in page: plain HTML forms a browser or a scripted
//! client can submit. The sim's session cookie is `_gitlab_session`.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::describe;
use crate::params::Params;
use crate::render::html_escape;
use crate::secrets;
use crate::state::{Id, OAuthApplication, SimHandle, State as SimState};
use crate::web::{
    SESSION_COOKIE, authentic, authenticity_token, found, hidden, page, session_user,
    sign_in_redirect,
};

const CODE_CHALLENGE_METHODS: [&str; 2] = ["plain", "S256"];

/// A validated authorization request (Doorkeeper's pre-authorization).
struct PreAuth {
    app: OAuthApplication,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

enum Refusal {
    /// Unknown client or bad redirect URI: an error page, never a redirect.
    Page(StatusCode, &'static str),
    /// Everything else goes back to the (valid) redirect URI.
    Redirect(String),
}

fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>) -> Refusal {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return Refusal::Page(StatusCode::BAD_REQUEST, "invalid_redirect_uri"),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", describe(error));
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    Refusal::Redirect(url.into())
}

fn pre_authorize(state: &SimState, params: &Params) -> Result<PreAuth, Refusal> {
    let app = params
        .str("client_id")
        .and_then(|id| state.oauth_application_by_uid(&id).cloned())
        .ok_or(Refusal::Page(StatusCode::UNAUTHORIZED, "invalid_client"))?;
    let redirect_uri = params
        .str("redirect_uri")
        .filter(|uri| app.redirect_uris.contains(uri))
        .ok_or(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
        ))?;
    let client_state = params.str("state");
    let refuse = |error: &str| error_redirect(&redirect_uri, error, client_state.as_deref());
    if params.str("response_type").as_deref() != Some("code") {
        return Err(refuse("unsupported_response_type"));
    }
    let scopes: Vec<String> = match params.str("scope") {
        Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_owned).collect(),
        _ => vec!["api".into()],
    };
    if !scopes.iter().all(|s| app.scopes.contains(s)) {
        return Err(refuse("invalid_scope"));
    }
    let code_challenge = params.str("code_challenge").filter(|c| !c.is_empty());
    let code_challenge_method = match (&code_challenge, params.str("code_challenge_method")) {
        (None, _) => None,
        (Some(_), None) => Some("plain".to_owned()),
        (Some(_), Some(m)) if CODE_CHALLENGE_METHODS.contains(&m.as_str()) => Some(m),
        (Some(_), Some(_)) => return Err(refuse("invalid_request")),
    };
    Ok(PreAuth {
        app,
        redirect_uri,
        state: client_state,
        scopes,
        code_challenge,
        code_challenge_method,
    })
}

/// GitLab skips consent for confidential apps when the user already holds a non-revoked token
/// with the same scopes (Doorkeeper's `matching_token?`).
fn has_matching_token(state: &SimState, user_id: Id, pre: &PreAuth) -> bool {
    state.oauth_tokens.values().any(|t| {
        t.user_id == user_id && t.application_id == pre.app.id && !t.revoked && {
            let mut a = t.scopes.clone();
            let mut b = pre.scopes.clone();
            a.sort();
            b.sort();
            a == b
        }
    })
}

fn refusal_response(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(status, error) => page(
            status,
            "An error has occurred",
            &format!(
                "<p class=\"error\" data-error=\"{error}\">{}</p>",
                html_escape(describe(error))
            ),
        ),
        Refusal::Redirect(url) => found(&url),
    }
}

fn code_redirect(state: &mut SimState, user_id: Id, pre: &PreAuth) -> Response {
    let code = state.create_oauth_code(
        user_id,
        pre.app.id,
        &pre.redirect_uri,
        pre.scopes.clone(),
        pre.code_challenge.clone(),
        pre.code_challenge_method.clone(),
    );
    let Ok(mut url) = url::Url::parse(&pre.redirect_uri) else {
        return refusal_response(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
        ));
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &pre.state {
            q.append_pair("state", s);
        }
    }
    found(url.as_str())
}

fn consent_page(pre: &PreAuth, cookie: &str) -> Response {
    let mut fields = vec![
        hidden("authenticity_token", &authenticity_token(cookie)),
        hidden("client_id", &pre.app.uid),
        hidden("redirect_uri", &pre.redirect_uri),
        hidden("response_type", "code"),
        hidden("scope", &pre.scopes.join(" ")),
    ];
    if let Some(s) = &pre.state {
        fields.push(hidden("state", s));
    }
    if let (Some(c), Some(m)) = (&pre.code_challenge, &pre.code_challenge_method) {
        fields.push(hidden("code_challenge", c));
        fields.push(hidden("code_challenge_method", m));
    }
    let fields = fields.join("\n");
    let body = format!(
        "<p>An application called <strong>{name}</strong> is requesting access to your GitLab account.</p>\n\
         <p>Scopes: {scopes}</p>\n\
         <form id=\"authorize\" action=\"/oauth/authorize\" method=\"post\">\n{fields}\n<button type=\"submit\" name=\"commit\" value=\"Authorize\">Authorize {name}</button>\n</form>\n\
         <form id=\"deny\" action=\"/oauth/authorize\" method=\"post\">\n{deny_method}\n{fields}\n<button type=\"submit\" name=\"commit\" value=\"Deny\">Deny</button>\n</form>",
        name = html_escape(&pre.app.name),
        scopes = html_escape(&pre.scopes.join(", ")),
        deny_method = hidden("_method", "delete"),
    );
    page(
        StatusCode::OK,
        &format!("Authorize {}", pre.app.name),
        &body,
    )
}

pub async fn show(
    State(sim): State<SimHandle>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let mut state = sim.lock();
    let pre = match pre_authorize(&state, &params) {
        Ok(pre) => pre,
        Err(refusal) => return refusal_response(refusal),
    };
    let Some((user_id, cookie)) = session_user(&state, &headers) else {
        return sign_in_redirect(&uri);
    };
    if pre.app.trusted
        || state.oauth_approvals.contains(&(user_id, pre.app.id))
        || (pre.app.confidential && has_matching_token(&state, user_id, &pre))
    {
        return code_redirect(&mut state, user_id, &pre);
    }
    consent_page(&pre, &cookie)
}

pub async fn decide(State(sim): State<SimHandle>, headers: HeaderMap, params: Params) -> Response {
    let mut state = sim.lock();
    let Some((user_id, cookie)) = session_user(&state, &headers) else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in required",
            "<p>You need to sign in.</p>",
        );
    };
    if !authentic(&cookie, params.str("authenticity_token").as_deref()) {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The change you requested was rejected",
            "<p>Invalid authenticity token.</p>",
        );
    }
    let pre = match pre_authorize(&state, &params) {
        Ok(pre) => pre,
        Err(refusal) => return refusal_response(refusal),
    };
    if params.str("_method").as_deref() == Some("delete") {
        return refusal_response(error_redirect(
            &pre.redirect_uri,
            "access_denied",
            pre.state.as_deref(),
        ));
    }
    code_redirect(&mut state, user_id, &pre)
}

fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\')
}

fn sign_in_form(redirect_to: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"flash-alert\">{}</p>\n", html_escape(e))
    });
    format!(
        "{error}<form id=\"new_user\" action=\"/users/sign_in\" method=\"post\">\n\
         {redirect}\n\
         <label>Username or primary email <input type=\"text\" name=\"user[login]\"></label>\n\
         <label>Password <input type=\"password\" name=\"user[password]\"></label>\n\
         <button type=\"submit\" name=\"commit\" value=\"Sign in\">Sign in</button>\n</form>",
        redirect = hidden("redirect_to", redirect_to)
    )
}

pub async fn sign_in_page(params: Params) -> Response {
    let redirect_to = params
        .str("redirect_to")
        .filter(|p| is_local_path(p))
        .unwrap_or_else(|| "/".into());
    page(StatusCode::OK, "Sign in", &sign_in_form(&redirect_to, None))
}

pub async fn sign_in(State(sim): State<SimHandle>, params: Params) -> Response {
    let redirect_to = params
        .str("redirect_to")
        .filter(|p| is_local_path(p))
        .unwrap_or_else(|| "/".into());
    let login = params.str("user[login]").unwrap_or_default();
    let password = params.str("user[password]").unwrap_or_default();
    let mut state = sim.lock();
    let user = state
        .users
        .values()
        .find(|u| (u.username == login || u.email == login) && u.state == "active" && !u.bot)
        .filter(|u| {
            u.password_digest
                .as_deref()
                .is_some_and(|d| secrets::constant_time_eq(d, &secrets::digest(&password)))
        })
        .map(|u| u.id);
    let Some(user_id) = user else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            &sign_in_form(&redirect_to, Some("Invalid login or password.")),
        );
    };
    let cookie = state.create_web_session(user_id);
    let mut response = found(&redirect_to);
    if let Ok(value) = format!("{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax").parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
