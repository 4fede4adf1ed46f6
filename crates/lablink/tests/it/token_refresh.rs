//! Token freshness against gitlab-sim: refresh ahead of expiry, a truly dead refresh token, and
//! the race — many requests on two lablink servers sharing one PostgreSQL database need a token
//! at the moment it expires, and exactly one refresh reaches GitLab.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lablink_core::{Plan, Role};
use reqwest::Method;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::support::gitlab::{
    GitLab, SimApp, SimUser, free_port, lablink_with_operator_app, link, text,
};
use crate::support::{Backend, Browser, TestApp, TestUser};

on_both_backends!(
    refreshes_ahead_of_expiry,
    a_dead_refresh_token_asks_to_link_again
);

/// A reverse proxy in front of gitlab-sim that counts refresh requests reaching GitLab.
struct CountingProxy {
    base: String,
    refreshes: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl CountingProxy {
    async fn start(target: &str) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let refreshes = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (target, counter) = (target.to_owned(), refreshes.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            forward(client.clone(), target.clone(), counter.clone(), req)
        });
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await
                .unwrap();
        });
        CountingProxy {
            base,
            refreshes,
            stop,
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(
    client: reqwest::Client,
    target: String,
    refreshes: Arc<AtomicUsize>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let is_refresh = parts.method == Method::POST
        && parts.uri.path() == "/oauth/token"
        && url::form_urlencoded::parse(&bytes)
            .any(|(k, v)| k == "grant_type" && v == "refresh_token");
    if is_refresh {
        refreshes.fetch_add(1, Ordering::SeqCst);
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = client
        .request(parts.method.clone(), format!("{target}{path}"))
        .body(bytes.to_vec());
    for (name, value) in &parts.headers {
        if name != reqwest::header::HOST {
            out = out.header(name, value);
        }
    }
    let res = out.send().await.unwrap();
    let mut reply = axum::response::Response::builder().status(res.status());
    for (name, value) in res.headers() {
        if name != reqwest::header::TRANSFER_ENCODING && name != reqwest::header::CONTENT_LENGTH {
            reply = reply.header(name, value);
        }
    }
    reply
        .body(axum::body::Body::from(res.bytes().await.unwrap()))
        .unwrap()
}

/// A personal API token of the signed-in browser's user.
async fn api_token(browser: &Browser) -> String {
    let csrf = browser.get("/profile").await.csrf();
    let res = browser
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "refresh test"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.json()["value"].as_str().unwrap().to_owned()
}

async fn check(base: &str, token: &str) -> crate::support::Page {
    Browser::bearer(
        base,
        token,
        Method::POST,
        "/api/v1/linked-accounts/gitlab/check",
        None,
    )
    .await
}

async fn stored_version(app: &TestApp, user: &TestUser) -> i64 {
    app.db
        .gitlab_link_of_user(&app.keys, &user.id)
        .await
        .unwrap()
        .unwrap()
        .token_version
}

async fn linked_developer(
    app: &TestApp,
    gitlab: &GitLab,
    name: &str,
) -> (TestUser, Browser, SimUser) {
    let user = app
        .create_user(
            "acme",
            Plan::Starter,
            &format!("{name}@acme.test"),
            Role::Developer,
        )
        .await;
    let browser = app.login(&user.email).await;
    let sim_user = gitlab.user(name).await;
    let page = link(&browser, gitlab, &sim_user).await;
    assert!(
        page.body
            .contains(&format!("Linked as <strong>@{name}</strong>")),
        "{}",
        page.body
    );
    (user, browser, sim_user)
}

async fn refreshes_ahead_of_expiry(backend: Backend) {
    let gitlab = GitLab::start().await;
    // Tokens that live 2 minutes are always within lablink's 5-minute refresh margin.
    gitlab
        .control(
            Method::PUT,
            "/settings",
            serde_json::json!({"access_token_lifetime_secs": 120}),
        )
        .await;
    let (app, _) = lablink_with_operator_app(backend, &gitlab).await;
    let (user, browser, sim_user) = linked_developer(&app, &gitlab, "erin").await;
    assert_eq!(stored_version(&app, &user).await, 1);
    let token = api_token(&browser).await;
    // GitLab unreachable while a refresh is due: an error that says so, and no lockout.
    gitlab.drop_connections("/oauth/token").await;
    let res = check(&app.base, &token).await;
    assert_eq!(res.status, 502, "{}", res.body);
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach GitLab"),
        "{}",
        res.body
    );
    assert_eq!(stored_version(&app, &user).await, 1);
    gitlab.clear_faults().await;

    let res = check(&app.base, &token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["username"], "erin");
    // Exactly one refresh: GitLab issued a second pair and revoked the first.
    let tokens = gitlab.oauth_tokens_of(sim_user.id).await;
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(tokens.iter().filter(|t| t["revoked"] == true).count(), 1);
    assert_eq!(stored_version(&app, &user).await, 2);
}

async fn a_dead_refresh_token_asks_to_link_again(backend: Backend) {
    let gitlab = GitLab::start().await;
    let (app, sim_app) = lablink_with_operator_app(backend, &gitlab).await;
    let (user, browser, _) = linked_developer(&app, &gitlab, "frank").await;
    // The user revokes lablink in GitLab: both tokens of the pair die.
    let stored = app
        .db
        .gitlab_link_of_user(&app.keys, &user.id)
        .await
        .unwrap()
        .unwrap();
    revoke_at_gitlab(&gitlab, &sim_app, stored.refresh_token.expose_secret()).await;

    let token = api_token(&browser).await;
    let res = check(&app.base, &token).await;
    assert_eq!(res.status, 409, "{}", res.body);
    let error = res.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("no longer works"), "{error}");
    assert!(error.contains("Link again"), "{error}");
    let page = browser.get("/profile/linked-accounts").await;
    let shown = text(&page.body);
    assert!(shown.contains("no longer works"), "{shown}");
    assert!(shown.contains(">Link again</button>"), "{shown}");
    let status = browser
        .api(Method::GET, "/api/v1/linked-accounts/gitlab", None, None)
        .await
        .json();
    assert_eq!(status["status"], "dead");
    assert!(
        status["reason"].as_str().unwrap().contains("link again"),
        "{status}"
    );
}

async fn revoke_at_gitlab(gitlab: &GitLab, app: &SimApp, token: &str) {
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", gitlab.base))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", &app.secret),
            ("token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// A second lablink server on the same database and master key, with its own address.
struct Replica {
    base: String,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn replica(first: &TestApp, pairs: &[(&str, &str)]) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let mut all = vec![
        ("database_url", first.database_url.as_str()),
        ("metrics_listen", "127.0.0.1:0"),
        ("data_dir", &data_dir),
        ("secret_key", &first.secret_key),
    ];
    all.extend_from_slice(pairs);
    let settings = lablink::config::from_pairs(&all).unwrap();
    let app = lablink::startup::Application::build(settings)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    Replica {
        base,
        stop,
        server,
        _dir: dir,
    }
}

/// Two servers (or one) with requests spread over them, all needing a token the moment GitLab
/// considers it expired.
async fn race(backend: Backend, replicas: usize) {
    let gitlab = GitLab::start().await;
    let proxy = CountingProxy::start(&gitlab.base).await;
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let sim_app = gitlab.app(&[&bases[0], &bases[1]]).await;
    let settings = |i: usize| {
        vec![
            ("listen".to_owned(), format!("127.0.0.1:{}", ports[i])),
            ("public_url".to_owned(), bases[i].clone()),
            ("allow_http_loopback_gitlab".to_owned(), "true".to_owned()),
            ("gitlab_url".to_owned(), proxy.base.clone()),
            ("gitlab_app_id".to_owned(), sim_app.client_id.clone()),
            ("gitlab_app_secret".to_owned(), sim_app.secret.clone()),
        ]
    };
    let owned: Vec<Vec<(String, String)>> = (0..2).map(settings).collect();
    let pairs = |i: usize| -> Vec<(&str, &str)> {
        owned[i]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let app = TestApp::spawn_with(backend, &pairs(0)).await;
    let second = match replicas {
        2 => Some(replica(&app, &pairs(1)).await),
        _ => None,
    };

    // Link through the proxy: GitLab's pages are the sim's own.
    let user = app
        .create_user("acme", Plan::Starter, "gina@acme.test", Role::Developer)
        .await;
    let browser = app.login(&user.email).await;
    let gina = gitlab.user("gina").await;
    let authorize = crate::support::gitlab::start_link(&browser).await;
    let authorize = authorize.replacen(&proxy.base, &gitlab.base, 1);
    let back = gitlab.consent(&gina, &authorize, "Authorize").await;
    assert_eq!(browser.get(&back).await.status, 303);
    let token = api_token(&browser).await;
    assert_eq!(proxy.refreshes.load(Ordering::SeqCst), 0);

    // The access token expires at GitLab now.
    gitlab.advance_clock(2 * 60 * 60 + 1).await;
    let mut servers = vec![app.base.clone()];
    if let Some(r) = &second {
        servers.push(r.base.clone());
    }
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let base = servers[i % servers.len()].clone();
            let token = token.clone();
            tokio::spawn(async move { check(&base, &token).await })
        })
        .collect();
    for request in requests {
        let page = request.await.unwrap();
        assert_eq!(page.status, 200, "a request was locked out: {}", page.body);
        assert_eq!(page.json()["username"], "gina");
    }
    assert_eq!(
        proxy.refreshes.load(Ordering::SeqCst),
        1,
        "exactly one refresh must reach GitLab"
    );
    assert_eq!(gitlab.oauth_tokens_of(gina.id).await.len(), 2);
    let status = browser
        .api(Method::GET, "/api/v1/linked-accounts/gitlab", None, None)
        .await
        .json();
    assert_eq!(status["status"], "linked");
    if let Some(r) = second {
        r.stop.cancel();
        r.server.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_refresh_once_for_fifty_requests() {
    race(Backend::Postgres, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_server_on_sqlite_refreshes_once_for_fifty_requests() {
    race(Backend::Sqlite, 1).await;
}
