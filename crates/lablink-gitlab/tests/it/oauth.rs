use lablink_gitlab::error::OAuthErrorCode;
use lablink_gitlab::oauth::{self, AppCredentials, Pkce};
use secrecy::{ExposeSecret as _, SecretString};

use crate::server::{Reply, fixture, serve};

fn app() -> AppCredentials {
    AppCredentials {
        client_id: "app-id".to_owned(),
        client_secret: SecretString::from("app-secret"),
        redirect_uri: "https://lablink.example.com/complete/gitlab".to_owned(),
    }
}

#[tokio::test]
async fn exchange_code_posts_a_form_with_secret_and_verifier() {
    let server =
        serve(|_, _| Reply::json(200, fixture("api.oauth.token.authorization_code.json"))).await;
    let pkce = Pkce::generate();
    let tokens = oauth::exchange_code(&server.instance(), &app(), "the-code", &pkce.verifier)
        .await
        .unwrap();
    assert!(tokens.access_token.expose_secret().starts_with("de6780bc"));
    assert_eq!(tokens.expires_at_unix, 1607635748 + 7200);

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/oauth/token");
    assert_eq!(request.query, "", "nothing secret in the URL");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.form_value("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(request.form_value("code").as_deref(), Some("the-code"));
    assert_eq!(
        request.form_value("code_verifier").as_deref(),
        Some(pkce.verifier.expose_secret())
    );
    assert_eq!(request.form_value("client_id").as_deref(), Some("app-id"));
    assert_eq!(
        request.form_value("client_secret").as_deref(),
        Some("app-secret")
    );
    assert_eq!(
        request.form_value("redirect_uri").as_deref(),
        Some("https://lablink.example.com/complete/gitlab")
    );
}

#[tokio::test]
async fn refresh_sends_the_refresh_token_and_maps_invalid_grant() {
    let server = serve(|_, index| match index {
        0 => Reply::json(200, fixture("api.oauth.token.refresh.json")),
        _ => Reply::json(400, fixture("api.oauth.error.invalid_grant.json")),
    })
    .await;
    let old = SecretString::from("old-refresh");
    let tokens = oauth::refresh(&server.instance(), &app(), &old)
        .await
        .unwrap();
    assert!(tokens.refresh_token.expose_secret().starts_with("803c1fd4"));
    let request = &server.requests()[0];
    assert_eq!(
        request.form_value("grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(
        request.form_value("refresh_token").as_deref(),
        Some("old-refresh")
    );

    let err = oauth::refresh(&server.instance(), &app(), &old)
        .await
        .unwrap_err();
    assert_eq!(err.oauth_code(), Some(&OAuthErrorCode::InvalidGrant));
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("old-refresh"));
    assert!(!format!("{err:?}").contains("old-refresh"));
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let server = serve(|_, _| {
        Reply::json(
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}"#,
        )
    })
    .await;
    let err = oauth::exchange_code(&server.instance(), &app(), "c", &SecretString::from("v"))
        .await
        .unwrap_err();
    assert_eq!(err.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
    assert!(err.to_string().contains("Client authentication failed"));
}

#[tokio::test]
async fn revoke_posts_the_token_in_a_form() {
    let server = serve(|_, _| Reply::json(200, "{}")).await;
    oauth::revoke(&server.instance(), &app(), &SecretString::from("tok"))
        .await
        .unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.path, "/oauth/revoke");
    assert_eq!(request.form_value("token").as_deref(), Some("tok"));
    assert_eq!(
        request.form_value("client_secret").as_deref(),
        Some("app-secret")
    );
}

#[tokio::test]
async fn token_info_reads_the_owner_and_reports_revoked_tokens() {
    let server = serve(|request, _| match request.header("authorization") {
        Some("Bearer good") => Reply::json(200, fixture("api.oauth.token_info.json")),
        _ => Reply::json(
            401,
            r#"{"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."}"#,
        ),
    })
    .await;
    let info = oauth::token_info(&server.instance(), &SecretString::from("good"))
        .await
        .unwrap();
    assert_eq!(info.resource_owner_id, 1);
    assert_eq!(server.requests()[0].path, "/oauth/token/info");
    let err = oauth::token_info(&server.instance(), &SecretString::from("old"))
        .await
        .unwrap_err();
    assert_eq!(
        err.token_problem(),
        Some(lablink_gitlab::error::TokenProblem::Revoked)
    );
}
