//! The OAuth provider, driven through its HTML pages like a browser would.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{PASSWORD, TestSim, TestUser, expect, form, header, query_param};

const REDIRECT: &str = "https://lablink.example/complete/gitlab";
const VERIFIER: &str = "ks02i3jdikdo2k0dkfodf3m39rjfjsdk0wk349rj3jrhf";

pub struct App {
    pub client_id: String,
    pub secret: String,
    pub confidential: bool,
}

pub fn app(t: &TestSim, confidential: bool) -> App {
    let (app, secret) = t
        .handle()
        .create_oauth_application(
            "lablink",
            vec![REDIRECT.into()],
            vec!["api".into(), "read_user".into()],
            confidential,
        )
        .expect("app");
    App {
        client_id: app.uid,
        secret,
        confidential,
    }
}

fn authorize_url(t: &TestSim, app: &App, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "xyz-state"),
        ("scope", "api"),
    ];
    pairs.extend_from_slice(extra);
    format!(
        "{}?{}",
        t.url("/oauth/authorize"),
        serde_urlencoded::to_string(&pairs).expect("query")
    )
}

/// Signs in through the sign-in page and returns the session cookie and where it redirects.
async fn sign_in(t: &TestSim, authorize: &str, user: &TestUser) -> (String, String) {
    let first = t.http.get(authorize).send().await.expect("authorize");
    assert_eq!(first.status(), StatusCode::FOUND);
    let sign_in_location = header(&first, "location").expect("redirect to sign in");
    assert!(
        sign_in_location.starts_with("/users/sign_in?"),
        "{sign_in_location}"
    );
    let page = t
        .http
        .get(t.url(&sign_in_location))
        .send()
        .await
        .expect("page");
    let html = page.text().await.expect("html");
    let mut f = form(&html, "new_user");
    f.fields.insert("user[login]".into(), user.username.clone());
    f.fields.insert("user[password]".into(), PASSWORD.into());
    let response = t
        .http
        .post(t.url(&f.action))
        .form(&f.fields)
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::FOUND);
    let cookie = header(&response, "set-cookie").expect("cookie");
    let cookie = cookie.split(';').next().expect("cookie pair").to_owned();
    let back = header(&response, "location").expect("back to authorize");
    (cookie, back)
}

/// Full browser flow: sign in, consent page, Authorize button. Returns the redirect location.
async fn authorize_via_pages(
    t: &TestSim,
    app: &App,
    user: &TestUser,
    extra: &[(&str, &str)],
    button: &str,
) -> String {
    let url = authorize_url(t, app, extra);
    let (cookie, back) = sign_in(t, &url, user).await;
    assert!(back.starts_with("/oauth/authorize?"), "{back}");
    let consent = t
        .http
        .get(t.url(&back))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("consent");
    // A confidential app the user already holds a live token for skips the consent page.
    if app.confidential && consent.status() == StatusCode::FOUND && button == "authorize" {
        return header(&consent, "location").expect("redirect");
    }
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.expect("html");
    assert!(html.contains("lablink"));
    let f = form(&html, button);
    let response = t
        .http
        .post(t.url(&f.action))
        .header("cookie", &cookie)
        .form(&f.fields)
        .send()
        .await
        .expect("decide");
    assert_eq!(response.status(), StatusCode::FOUND);
    header(&response, "location").expect("redirect")
}

pub async fn exchange(t: &TestSim, form_body: &[(&str, &str)]) -> reqwest::Response {
    t.http
        .post(t.url("/oauth/token"))
        .form(form_body)
        .send()
        .await
        .expect("token")
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn invalid_grant() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/api.oauth.error.invalid_grant.json",
            crate::fixtures::DIR
        ))
        .expect("fixture"),
    )
    .expect("json")
}

/// Runs the browser flow with PKCE S256 and exchanges the code; returns the token response.
pub async fn tokens_for(t: &TestSim, app: &App, user: &TestUser) -> Value {
    let challenge = s256(VERIFIER);
    let location = authorize_via_pages(
        t,
        app,
        user,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "authorize",
    )
    .await;
    let code = query_param(&location, "code").expect("code");
    let response = exchange(
        t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    expect(response, StatusCode::OK).await
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_s256_through_html_pages() {
    let t = TestSim::start().await;
    let user = t.user("alice");
    let app = app(&t, true);
    let challenge = s256(VERIFIER);
    assert_eq!(challenge, "2i0WFA-0AerkjQm4X4oDEhqA17QIAKNjXpagHBXmO_U");
    let location = authorize_via_pages(
        &t,
        &app,
        &user,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "authorize",
    )
    .await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("xyz-state")
    );
    let code = query_param(&location, "code").expect("code");
    let body = [
        ("grant_type", "authorization_code"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let token = expect(exchange(&t, &body).await, StatusCode::OK).await;
    assert_eq!(token["expires_in"], 7200);
    assert!(
        token["token_type"]
            .as_str()
            .expect("type")
            .eq_ignore_ascii_case("bearer")
    );
    let access = token["access_token"].as_str().expect("access");
    let me = t
        .http
        .get(t.api("/user"))
        .bearer_auth(access)
        .send()
        .await
        .expect("user");
    assert_eq!(expect(me, StatusCode::OK).await["username"], "alice");
    let info = t
        .http
        .get(t.url("/oauth/token/info"))
        .bearer_auth(access)
        .send()
        .await
        .expect("info");
    let info = expect(info, StatusCode::OK).await;
    assert_eq!(info["resource_owner_id"], user.id);
    assert_eq!(info["scope"], json!(["api"]));
    assert_eq!(info["application"]["uid"], app.client_id.as_str());
    // Codes are single-use.
    let again = exchange(&t, &body).await;
    assert_eq!(
        expect(again, StatusCode::BAD_REQUEST).await,
        invalid_grant()
    );
}

#[tokio::test]
async fn pkce_plain_and_wrong_or_missing_verifier() {
    let t = TestSim::start().await;
    let user = t.user("bob");
    let app = app(&t, false);
    let plain = authorize_via_pages(
        &t,
        &app,
        &user,
        &[
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
        "authorize",
    )
    .await;
    let code = query_param(&plain, "code").expect("code");
    // Non-confidential: no secret needed.
    let ok = exchange(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    expect(ok, StatusCode::OK).await;

    let challenge = s256(VERIFIER);
    for verifier in [
        Some("wrong-verifier-wrong-verifier-wrong-verifier-00"),
        None,
    ] {
        let location = authorize_via_pages(
            &t,
            &app,
            &user,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "authorize",
        )
        .await;
        let code = query_param(&location, "code").expect("code");
        let mut body = vec![
            ("grant_type", "authorization_code"),
            ("client_id", app.client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            body.push(("code_verifier", v));
        }
        assert_eq!(
            expect(exchange(&t, &body).await, StatusCode::BAD_REQUEST).await,
            invalid_grant()
        );
    }
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let t = TestSim::start().await;
    let user = t.user("carol");
    let app = app(&t, true);
    let location = authorize_via_pages(&t, &app, &user, &[], "deny").await;
    assert!(location.starts_with(REDIRECT));
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("xyz-state")
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn unknown_client_and_bad_redirect_show_error_page_without_redirect() {
    let t = TestSim::start().await;
    let app = app(&t, true);
    let unknown = App {
        client_id: "nope".into(),
        secret: String::new(),
        confidential: true,
    };
    let r = t
        .http
        .get(authorize_url(&t, &unknown, &[]))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&r, "location").is_none());
    assert!(r.text().await.expect("html").contains("invalid_client"));

    let bad_redirect = format!(
        "{}?{}",
        t.url("/oauth/authorize"),
        serde_urlencoded::to_string([
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "code")
        ])
        .expect("q")
    );
    let r = t.http.get(bad_redirect).send().await.expect("authorize");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(header(&r, "location").is_none());
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("invalid_redirect_uri")
    );

    // A scope the application does not have goes back to the client as invalid_scope.
    let r = t
        .http
        .get(authorize_url(&t, &app, &[("scope", "sudo")]))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = header(&r, "location").expect("location");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("xyz-state")
    );
}

#[tokio::test]
async fn confidential_clients_must_authenticate() {
    let t = TestSim::start().await;
    let user = t.user("dave");
    let app = app(&t, true);
    let code_for = || async {
        let cookie = t.handle().create_web_session(user.id);
        let app_id = t
            .handle()
            .lock()
            .oauth_application_by_uid(&app.client_id)
            .expect("app")
            .id;
        t.handle().preapprove_oauth(user.id, app_id);
        let r = t
            .http
            .get(authorize_url(&t, &app, &[]))
            .header("cookie", format!("_gitlab_session={cookie}"))
            .send()
            .await
            .expect("authorize");
        assert_eq!(r.status(), StatusCode::FOUND);
        query_param(&header(&r, "location").expect("location"), "code").expect("code")
    };
    let code = code_for().await;
    let missing = exchange(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&missing, "www-authenticate")
            .expect("header")
            .contains("invalid_client")
    );
    assert_eq!(json_error(missing).await, "invalid_client");
    let wrong = exchange(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", "wrong"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // HTTP Basic works, and the redirect_uri must match exactly.
    let basic = STANDARD.encode(format!("{}:{}", app.client_id, app.secret));
    let mismatch = t
        .http
        .post(t.url("/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://lablink.example/complete/gitlab/"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(
        expect(mismatch, StatusCode::BAD_REQUEST).await,
        invalid_grant()
    );
    let ok = t
        .http
        .post(t.url("/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token");
    expect(ok, StatusCode::OK).await;
    let unsupported = exchange(
        &t,
        &[
            ("grant_type", "password"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
        ],
    )
    .await;
    assert_eq!(json_error(unsupported).await, "unsupported_grant_type");
}

async fn json_error(r: reqwest::Response) -> String {
    let v: Value = r.json().await.expect("json");
    v["error"].as_str().expect("error").to_owned()
}

#[tokio::test]
async fn refresh_tokens_work_once_and_revoke_the_previous_pair() {
    let t = TestSim::start().await;
    let user = t.user("erin");
    let app = app(&t, true);
    let first = tokens_for(&t, &app, &user).await;
    let refresh = first["refresh_token"].as_str().expect("refresh");
    let body = [
        ("grant_type", "refresh_token"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.secret.as_str()),
        ("refresh_token", refresh),
    ];
    let second = expect(exchange(&t, &body).await, StatusCode::OK).await;
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    // The old access token is revoked at once.
    let old = t
        .http
        .get(t.api("/user"))
        .bearer_auth(first["access_token"].as_str().expect("a"))
        .send()
        .await
        .expect("user");
    let old_body = expect(old, StatusCode::UNAUTHORIZED).await;
    assert_eq!(old_body["error"], "invalid_token");
    assert_eq!(
        old_body["error_description"],
        "Token was revoked. You have to re-authorize from the user."
    );
    // Reuse of the refresh token: 400 invalid_grant with Doorkeeper's body and header.
    let reuse = exchange(&t, &body).await;
    assert!(
        header(&reuse, "www-authenticate")
            .expect("header")
            .contains("invalid_grant")
    );
    assert_eq!(
        expect(reuse, StatusCode::BAD_REQUEST).await,
        invalid_grant()
    );
    // The new pair works.
    let me = t
        .http
        .get(t.api("/user"))
        .bearer_auth(second["access_token"].as_str().expect("a"))
        .send()
        .await
        .expect("user");
    expect(me, StatusCode::OK).await;
}

#[tokio::test]
async fn access_tokens_expire_on_the_sim_clock_and_codes_after_ten_minutes() {
    let t = TestSim::start().await;
    let user = t.user("frank");
    let app = app(&t, true);
    let token = tokens_for(&t, &app, &user).await;
    let access = token["access_token"].as_str().expect("a");
    t.handle().advance_clock(7199);
    expect(
        t.http
            .get(t.api("/user"))
            .bearer_auth(access)
            .send()
            .await
            .expect("u"),
        StatusCode::OK,
    )
    .await;
    t.handle().advance_clock(1);
    let expired = expect(
        t.http
            .get(t.api("/user"))
            .bearer_auth(access)
            .send()
            .await
            .expect("u"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        expired["error_description"],
        "Token is expired. You can either do re-authorization or token refresh."
    );
    // Refresh still works after expiry.
    let refreshed = exchange(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
            ("refresh_token", token["refresh_token"].as_str().expect("r")),
        ],
    )
    .await;
    expect(refreshed, StatusCode::OK).await;

    // Configurable lifetime.
    let r = t
        .http
        .put(t.url("/-/sim/settings"))
        .json(&json!({"access_token_lifetime_secs": 60}))
        .send()
        .await
        .expect("settings");
    expect(r, StatusCode::OK).await;
    let short = tokens_for(&t, &app, &user).await;
    assert_eq!(short["expires_in"], 60);

    // An authorization code older than 10 minutes is refused.
    let r = t
        .http
        .post(t.url("/-/sim/oauth/codes"))
        .json(&json!({"user_id": user.id, "client_id": app.client_id, "redirect_uri": REDIRECT}))
        .send()
        .await
        .expect("code");
    let code = expect(r, StatusCode::CREATED).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    t.handle().advance_clock(600);
    let late = exchange(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(expect(late, StatusCode::BAD_REQUEST).await, invalid_grant());
}

#[tokio::test]
async fn revoke_kills_the_pair_and_answers_empty_object() {
    let t = TestSim::start().await;
    let user = t.user("grace");
    let app = app(&t, true);
    let token = tokens_for(&t, &app, &user).await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.secret.as_str()),
            ("token", token["refresh_token"].as_str().expect("r")),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(expect(r, StatusCode::OK).await, json!({}));
    let me = t
        .http
        .get(t.api("/user"))
        .bearer_auth(token["access_token"].as_str().expect("a"))
        .send()
        .await
        .expect("u");
    assert_eq!(
        expect(me, StatusCode::UNAUTHORIZED).await["error"],
        "invalid_token"
    );
    let info = t
        .http
        .get(t.url("/oauth/token/info"))
        .query(&[("access_token", token["access_token"].as_str().expect("a"))])
        .send()
        .await
        .expect("info");
    assert_eq!(
        expect(info, StatusCode::UNAUTHORIZED).await["error"],
        "invalid_token"
    );
    // Without client authentication a confidential app's token cannot be revoked.
    let other = tokens_for(&t, &app, &user).await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .form(&[("token", other["access_token"].as_str().expect("a"))])
        .send()
        .await
        .expect("revoke");
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn preapproval_skips_consent_for_a_signed_in_user() {
    let t = TestSim::start().await;
    let user = t.user("heidi");
    let app = app(&t, true);
    let r = t
        .http
        .post(t.url("/-/sim/oauth/approvals"))
        .json(&json!({"user_id": user.id, "client_id": app.client_id}))
        .send()
        .await
        .expect("approve");
    expect(r, StatusCode::CREATED).await;
    let r = t
        .http
        .post(t.url(&format!("/-/sim/users/{}/sessions", user.id)))
        .send()
        .await
        .expect("session");
    let session = expect(r, StatusCode::CREATED).await;
    let cookie = format!(
        "_gitlab_session={}",
        session["cookie_value"].as_str().expect("cookie")
    );
    let r = t
        .http
        .get(authorize_url(&t, &app, &[]))
        .header("cookie", cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = header(&r, "location").expect("location");
    assert!(location.starts_with(REDIRECT));
    assert!(query_param(&location, "code").is_some());
    // Wrong password on the sign-in page is refused.
    let r = t
        .http
        .post(t.url("/users/sign_in"))
        .form(&[("user[login]", "heidi"), ("user[password]", "wrong")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&r, "set-cookie").is_none());
}

#[tokio::test]
async fn oauth_tokens_work_as_access_token_param_but_not_as_private_token() {
    let t = TestSim::start().await;
    let user = t.user("ivan");
    let app = app(&t, true);
    let token = tokens_for(&t, &app, &user).await;
    let access = token["access_token"].as_str().expect("a");
    let by_param = t
        .http
        .get(t.api("/user"))
        .query(&[("access_token", access)])
        .send()
        .await
        .expect("u");
    assert_eq!(expect(by_param, StatusCode::OK).await["id"], user.id);
    let as_private = t.get("/user", access).await;
    assert_eq!(
        expect(as_private, StatusCode::UNAUTHORIZED).await["error"],
        "invalid_token"
    );
    let missing_grant = exchange(
        &t,
        &[
            ("client_id", &app.client_id),
            ("client_secret", &app.secret),
        ],
    )
    .await;
    assert_eq!(json_error(missing_grant).await, "invalid_request");
    let unknown_client = exchange(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nope"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_eq!(unknown_client.status(), StatusCode::UNAUTHORIZED);
}
