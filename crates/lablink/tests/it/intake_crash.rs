//! Crash safety of webhook intake: the real `lablink serve` binary is SIGKILLed in the middle of
//! a burst of deliveries and restarted on the same database; every delivery that got a 2xx must
//! then be stored once and processed once, and replaying it must change nothing.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lablink_core::{Plan, Role};
use lablink_store::Db;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::support::gitlab::{GitLab, free_port, link};
use crate::support::{Backend, TestApp};

mod burst_survives_sigkill {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::burst_survives_sigkill(crate::support::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::burst_survives_sigkill(crate::support::Backend::Postgres).await;
    }
}

const DELIVERIES: usize = 2_000;
const CLIENTS: usize = 32;
/// The server is killed once this many deliveries were acknowledged: mid-burst.
const KILL_AFTER: usize = 1_000;
/// Every this many acknowledged deliveries is sent again after the restart.
const REPLAY_EVERY: usize = 10;
/// Upper bound for waiting on the server and its queue; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A lablink project whose repository is connected to a GitLab project of the simulator (so it
/// has a webhook secret) and which has no CI jobs: processing a delivery decides "nothing".
struct Connected {
    _gitlab: GitLab,
    app: TestApp,
    /// `LABLINK_*` settings (without `listen`) for the binary, the same the harness used.
    settings: Vec<(&'static str, String)>,
    repository_id: String,
    gitlab_project: u64,
    secret: String,
    /// The hook's signing token (GitLab 19 signs every delivery of a hook that has one).
    signing: Option<String>,
}

async fn connect(backend: Backend) -> Connected {
    let gitlab = GitLab::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let oauth = gitlab.app(&[&base]).await;
    let shared = [
        ("public_url", base.clone()),
        ("allow_http_loopback_gitlab", "true".to_owned()),
        ("gitlab_url", gitlab.base.clone()),
        ("gitlab_app_id", oauth.client_id.clone()),
        ("gitlab_app_secret", oauth.secret.clone()),
    ];
    let listen = format!("127.0.0.1:{port}");
    let mut pairs: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("listen", &listen));
    let app = TestApp::spawn_with(backend, &pairs).await;

    let alice = gitlab.user("alice").await;
    let group = gitlab
        .control(Method::POST, "/groups", json!({"path": "analytics"}))
        .await["id"]
        .as_u64()
        .unwrap();
    let gitlab_project = gitlab
        .control(
            Method::POST,
            "/projects",
            json!({"path": "warehouse", "namespace": {"kind": "group", "id": group}}),
        )
        .await["id"]
        .as_u64()
        .unwrap();
    gitlab
        .control(
            Method::POST,
            &format!("/projects/{gitlab_project}/members"),
            json!({"user_id": alice.id, "access_level": 40}),
        )
        .await;
    gitlab
        .control(
            Method::POST,
            &format!("/projects/{gitlab_project}/repository/seed"),
            json!({"dir": Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jaffle_shop_duckdb"),
                   "user_id": alice.id}),
        )
        .await;
    app.create_user("acme", Plan::Enterprise, "dev@acme.test", Role::Developer)
        .await;
    let browser = app.login("dev@acme.test").await;
    link(&browser, &gitlab, &alice).await;
    let csrf = browser.get("/profile/linked-accounts").await.csrf();
    let res = browser
        .api(
            Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "Analytics", "subdirectory": "", "target_branch": "main"})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let project = res.json()["id"].as_str().unwrap().to_owned();
    let res = browser
        .api(
            Method::PUT,
            &format!("/api/v1/projects/{project}/repository"),
            Some(json!({"gitlab_project_id": gitlab_project})),
            Some(&csrf),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let repository_id = res.json()["id"].as_str().unwrap().to_owned();
    let secrets = app
        .db
        .hook_secrets(&app.keys, &repository_id)
        .await
        .unwrap()
        .expect("a connected repository has a webhook secret");
    let secret = secrets.secret.expose_secret().to_owned();
    let signing = secrets.signing_token.map(|t| t.expose_secret().to_owned());
    let mut settings: Vec<(&'static str, String)> = shared.into_iter().collect();
    settings.push(("database_url", app.database_url.clone()));
    settings.push(("secret_key", app.secret_key.clone()));
    Connected {
        _gitlab: gitlab,
        app,
        settings,
        signing,
        repository_id,
        gitlab_project,
        secret,
    }
}

/// `lablink serve` as a child process, configured only through `LABLINK_*` variables (the
/// secret key never appears in its arguments).
struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    async fn start(settings: &[(&'static str, String)], data_dir: &Path, name: &str) -> Server {
        let port = free_port();
        let log = data_dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_lablink"));
        command
            .arg("serve")
            // No `lablink.toml` is found here, so only the variables below configure it.
            .current_dir(data_dir)
            .env("LABLINK_LISTEN", format!("127.0.0.1:{port}"))
            .env("LABLINK_METRICS_LISTEN", "127.0.0.1:0")
            .env("LABLINK_DATA_DIR", data_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(data_dir.join(format!("{name}.err"))).unwrap())
            .kill_on_drop(true);
        for (key, value) in settings {
            command.env(format!("LABLINK_{}", key.to_uppercase()), value);
        }
        let mut server = Server {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_until_ready().await;
        server
    }

    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(res) = http.get(format!("{}/healthz", self.base)).send().await
                && res.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("lablink serve exited with {status}: {}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "lablink serve did not come up: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn output(&self) -> String {
        let err = self.log.with_extension("err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }
}

/// One merge-request delivery as GitLab sends it: a title edit (an `update` without `oldrev`),
/// which lablink stores, queues and processes to "nothing to run".
fn delivery(
    http: &reqwest::Client,
    c: &Connected,
    base: &str,
    i: usize,
) -> reqwest::RequestBuilder {
    let body = json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "project": {"id": c.gitlab_project, "path_with_namespace": "analytics/warehouse"},
        "object_attributes": {
            "iid": i + 1, "action": "update", "state": "opened", "draft": false,
            "target_project_id": c.gitlab_project, "source_project_id": c.gitlab_project,
            "source_branch": format!("feature-{i}"), "target_branch": "main",
            "title": format!("change {i}"),
            "last_commit": {"id": format!("{i:040x}")}
        },
        "changes": {"title": {"previous": "old", "current": format!("change {i}")}}
    });
    let body = serde_json::to_vec(&body).unwrap();
    let mut req = http
        .post(format!("{base}/webhooks/gitlab/{}", c.repository_id))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", "Merge Request Hook")
        .header("X-Gitlab-Token", &c.secret)
        .header("Idempotency-Key", key(i));
    if let Some(signing) = &c.signing {
        let timestamp = chrono::Utc::now().timestamp();
        let signature =
            gitlab_sim::webhooks::delivery::signature(signing, &key(i), timestamp, &body).unwrap();
        req = req
            .header("webhook-id", key(i))
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature);
    }
    req.body(body)
}

fn key(i: usize) -> String {
    format!("crash-burst-{i}")
}

/// Fires the deliveries with [`CLIENTS`] concurrent clients and SIGKILLs the server once
/// [`KILL_AFTER`] were acknowledged. Returns the indexes of the deliveries that got a 2xx.
async fn burst_until_killed(c: &Arc<Connected>, mut server: Server) -> HashSet<usize> {
    let http = reqwest::Client::new();
    let next = Arc::new(Mutex::new(0..DELIVERIES));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (http, c, next, acknowledged, enough) = (
            http.clone(),
            Arc::clone(c),
            Arc::clone(&next),
            Arc::clone(&acknowledged),
            Arc::clone(&enough),
        );
        let base = server.base.clone();
        clients.push(tokio::spawn(async move {
            loop {
                let Some(i) = next.lock().unwrap().next() else {
                    return;
                };
                match delivery(&http, &c, &base, i).send().await {
                    Ok(res) if res.status().is_success() => {
                        let mut acked = acknowledged.lock().unwrap();
                        acked.insert(i);
                        if acked.len() >= KILL_AFTER {
                            enough.notify_one();
                        }
                    }
                    Ok(res) => panic!("delivery {i} refused before the crash: {res:?}"),
                    // The server is gone: this client's burst is over.
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::timeout(PATIENCE, enough.notified())
        .await
        .unwrap_or_else(|_| panic!("the burst stalled: {}", server.output()));
    server.child.kill().await.unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(acknowledged.len() >= KILL_AFTER);
    assert!(
        acknowledged.len() < DELIVERIES,
        "the kill did not land mid-burst"
    );
    acknowledged
}

macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

async fn execute(db: &Db, sql: &str) {
    on_pool!(db, |pool| sqlx::query(sql).execute(pool).await.map(drop)).unwrap();
}

async fn count(db: &Db, sql: &str) -> i64 {
    on_pool!(db, |pool| sqlx::query_scalar(sql).fetch_one(pool).await).unwrap()
}

async fn ids(db: &Db, sql: &str) -> HashSet<String> {
    let rows: Vec<String> =
        on_pool!(db, |pool| sqlx::query_scalar(sql).fetch_all(pool).await).unwrap();
    rows.into_iter().collect()
}

/// A stored delivery: (delivery key, status, processing attempts).
type Row = (String, String, i64);

async fn deliveries(db: &Db, repository_id: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT delivery_key, status, attempts FROM webhook_deliveries \
         WHERE repository_id = '{repository_id}'"
    );
    let mut rows: Vec<Row> =
        on_pool!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await).unwrap();
    rows.sort();
    rows
}

async fn wait_until_drained(db: &Db, server: &Server) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count(
        db,
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'received'",
    )
    .await
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery queue did not drain: {}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn burst_survives_sigkill(backend: Backend) {
    let mut c = connect(backend).await;
    c.app.stop_server().await;
    let c = Arc::new(c);
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(&c.settings, data_dir.path(), "first").await;
    let acknowledged = burst_until_killed(&c, server).await;

    let db = Db::connect(&c.app.database_url).await.unwrap();
    // Deliveries the dead server had claimed keep their lease (a minute) although nobody holds
    // them; ending the leases stands for that minute passing, so the restarted server may take
    // them over at once.
    let interrupted = ids(
        &db,
        "SELECT delivery_key FROM webhook_deliveries \
         WHERE status = 'received' AND locked_by IS NOT NULL",
    )
    .await;
    execute(
        &db,
        "UPDATE webhook_deliveries SET locked_until = 0 WHERE status = 'received'",
    )
    .await;

    let server = Server::start(&c.settings, data_dir.path(), "second").await;
    wait_until_drained(&db, &server).await;

    let rows = deliveries(&db, &c.repository_id).await;
    let mut stored: HashMap<String, usize> = HashMap::new();
    for (key, status, attempts) in &rows {
        *stored.entry(key.clone()).or_default() += 1;
        assert_eq!(status, "processed", "delivery {key}");
        // One completed attempt; a delivery the crash interrupted has that one attempt more.
        let expected = if interrupted.contains(key) { 2 } else { 1 };
        assert_eq!(*attempts, expected, "attempts of delivery {key}");
    }
    for (key, n) in &stored {
        assert_eq!(*n, 1, "delivery {key} is stored {n} times");
        assert!(key.starts_with("crash-burst-"), "unexpected delivery {key}");
    }
    for i in &acknowledged {
        assert!(
            stored.contains_key(&key(*i)),
            "delivery {i} got a 2xx but is lost"
        );
    }

    // GitLab retrying acknowledged deliveries after the restart changes nothing.
    let http = reqwest::Client::new();
    for i in acknowledged.iter().step_by(REPLAY_EVERY) {
        let res = delivery(&http, &c, &server.base, *i).send().await.unwrap();
        assert!(res.status().is_success(), "{res:?}");
        assert_eq!(res.text().await.unwrap(), "duplicate", "delivery {i}");
    }
    wait_until_drained(&db, &server).await;
    assert_eq!(deliveries(&db, &c.repository_id).await, rows);
    db.close().await;
}
