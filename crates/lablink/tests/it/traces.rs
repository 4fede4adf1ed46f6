//! Request ids in a real `lablink serve` process's log: every response names its request in
//! `X-Request-Id`, error pages show it as the reference, and the lines the use case logs while
//! handling the request carry it, in JSON and in text. An id sent by the client is taken only
//! from a trusted proxy. (Request ids do not depend on the database: SQLite only.)

use lablink_core::{Plan, Role};
use serde_json::{Value, json};

use crate::support::{Backend, Browser, PASSWORD, Page, ServeProcess, TestApp};

const HEADER: &str = "x-request-id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_names_the_log_lines_of_its_use_case() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    // No trusted proxy: the test is an ordinary client.
    let serve = app
        .serve_process(&[("roles", "web"), ("log_format", "json")])
        .await;
    let (b, csrf) = sign_in(&serve.base, "dev@acme.test").await;

    // Without an id, lablink makes one (a UUID) and returns it.
    let (res, project) = create_project(&b, &serve.base, &csrf, None).await;
    let id = res.header(HEADER).expect("X-Request-Id").to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id);
    let line = json_line(&serve, &project);
    let spans = line["spans"].as_array().expect("the spans of the line");
    assert_eq!(
        spans[0],
        json!({"name": "request", "id": id, "method": "POST", "route": "/api/v1/projects"}),
        "{line}"
    );
    assert_eq!(spans[1]["name"], "create_project", "{line}");
    assert_eq!(spans[1]["user_id"].as_str().unwrap().len(), 36, "{line}");
    assert_eq!(
        line["span"]["name"], "create_project",
        "the innermost: {line}"
    );

    // A client's own id is not taken: it could name another request's lines.
    let (res, project) = create_project(&b, &serve.base, &csrf, Some("client-chosen-1")).await;
    let id = res.header(HEADER).unwrap().to_owned();
    assert_ne!(id, "client-chosen-1");
    assert_eq!(json_line(&serve, &project)["spans"][0]["id"], id.as_str());
    assert!(!serve.log().contains("client-chosen-1"), "{}", serve.log());

    // An error page names its request as the reference.
    let page = b.get("/no-such-page").await;
    assert_eq!(page.status, 404);
    let id = page.header(HEADER).unwrap();
    assert!(
        page.body.contains(&format!("Reference: <code>{id}</code>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("There is no page at this address."));
    // Every response has one, API errors and health checks too.
    let health = reqwest::get(format!("{}/healthz", serve.base))
        .await
        .unwrap();
    assert!(health.headers().contains_key(HEADER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_request_id_is_kept_in_text_logs_too() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("Acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    // The test's address is the proxy's.
    let serve = app
        .serve_process(&[("roles", "web"), ("trusted_proxies", "127.0.0.1/32")])
        .await;
    let (b, csrf) = sign_in(&serve.base, "dev@acme.test").await;

    let (res, project) = create_project(&b, &serve.base, &csrf, Some("proxy-req-42")).await;
    assert_eq!(res.header(HEADER), Some("proxy-req-42"));
    let log = serve.log();
    let line = log
        .lines()
        .find(|l| l.contains("project created") && l.contains(&project))
        .unwrap_or_else(|| panic!("no line for project {project}:\n{log}"));
    assert!(
        line.contains(
            "request{id=proxy-req-42 method=POST route=/api/v1/projects}:create_project{"
        ),
        "{line}"
    );

    // An id that could break a log line or a page is not taken, even from the proxy.
    let (res, _) = create_project(&b, &serve.base, &csrf, Some("a b\" <x>")).await;
    let id = res.header(HEADER).unwrap();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
}

/// A browser signed in at `base`, and its CSRF token (also the API's `X-CSRF-Token`).
async fn sign_in(base: &str, email: &str) -> (Browser, String) {
    let b = Browser::new(base);
    let page = b.get("/login").await;
    let form = [
        ("csrf_token", page.csrf()),
        ("email", email.to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post_form("/login", &form).await.status, 303);
    let csrf = b.get("/profile").await.csrf();
    (b, csrf)
}

/// Creates a project through the JSON API, sending `request_id` as `X-Request-Id` when given;
/// the response and the new project's id.
async fn create_project(
    b: &Browser,
    base: &str,
    csrf: &str,
    request_id: Option<&str>,
) -> (Page, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/v1/projects"))
        .header("x-csrf-token", csrf)
        .json(&json!({
            "name": format!("Analytics {}", uuid::Uuid::new_v4()),
            "subdirectory": "",
            "target_branch": "main"
        }));
    if let Some(id) = request_id {
        req = req.header(HEADER, id);
    }
    let res = b.send(req).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let project = res.json()["id"].as_str().unwrap().to_owned();
    (res, project)
}

/// The JSON log line in which the use case said it created `project`.
fn json_line(serve: &ServeProcess, project: &str) -> Value {
    let log = serve.log();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"] == "project created" && l["fields"]["project_id"] == project
        })
        .unwrap_or_else(|| panic!("no line for project {project}:\n{log}"))
}
