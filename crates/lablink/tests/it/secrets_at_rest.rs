//! After the GitLab flows (an admin's application, a developer's link, a refresh), neither the
//! SQLite file, nor a `pg_dump` of the PostgreSQL database, nor the logs contain any of the
//! tokens, secrets or passwords in plain text.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lablink_core::{Plan, Role};
use reqwest::Method;
use secrecy::ExposeSecret;

use crate::on_both_backends;
use crate::support::gitlab::{GitLab, callback, link};
use crate::support::{Backend, PASSWORD, TestApp, TestUser};

on_both_backends!(no_secret_in_the_database_or_the_logs);

/// Every log line of this test process, at debug level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .try_init()
            .expect("this test must install the process's log subscriber to read the logs");
        logs
    })
    .clone()
}

async fn stored_tokens(app: &TestApp, user: &TestUser) -> [String; 2] {
    let link = app
        .db
        .gitlab_link_of_user(&app.keys, &user.id)
        .await
        .unwrap()
        .unwrap();
    [
        link.access_token.expose_secret().to_owned(),
        link.refresh_token.expose_secret().to_owned(),
    ]
}

/// The database as stored at rest: the SQLite files, or a data-only `pg_dump`.
pub(crate) async fn database_bytes(app: &TestApp) -> Vec<u8> {
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let mut bytes = std::fs::read(path).unwrap();
        for suffix in ["-wal", "-shm"] {
            if let Ok(more) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(more);
            }
        }
        bytes
    } else {
        let dump = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&app.database_url)
            .output()
            .expect("pg_dump must be installed (apt-get install -y postgresql-client)");
        assert!(
            dump.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
        assert!(
            String::from_utf8_lossy(&dump.stdout).contains("gitlab_links"),
            "the dump does not hold the links table"
        );
        dump.stdout
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn no_secret_in_the_database_or_the_logs(backend: Backend) {
    let logs = captured_logs();
    let gitlab = GitLab::start().await;
    // Short-lived access tokens, so the check below refreshes and stores a second pair.
    gitlab
        .control(
            Method::PUT,
            "/settings",
            serde_json::json!({"access_token_lifetime_secs": 120}),
        )
        .await;
    let app = TestApp::spawn_with(backend, &[("allow_http_loopback_gitlab", "true")]).await;
    let admin_user = app
        .create_user(
            "vault",
            Plan::Enterprise,
            "admin@vault.test",
            Role::AccountAdmin,
        )
        .await;
    let dev_user = app
        .create_user("vault", Plan::Enterprise, "dev@vault.test", Role::Developer)
        .await;

    // The admin registers the account's application and authorizes it.
    let admin = app.login(&admin_user.email).await;
    let sim_app = gitlab.app(&[&app.base]).await;
    let root = gitlab.user("root").await;
    let page = admin.get("/settings/integrations/gitlab").await;
    let saved = admin
        .post_form(
            "/settings/integrations/gitlab",
            &[
                ("csrf_token", &page.csrf()),
                ("instance_url", &gitlab.base),
                ("application_id", &sim_app.client_id),
                ("secret", &sim_app.secret),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let back = gitlab
        .consent(&root, &saved.location.unwrap(), "Authorize")
        .await;
    assert_eq!(callback(&admin, &back).await.status, 303);

    // A developer links, and a refresh replaces the pair.
    let dev = app.login(&dev_user.email).await;
    let vera = gitlab.user("vera").await;
    link(&dev, &gitlab, &vera).await;
    let first_pair = stored_tokens(&app, &dev_user).await;
    let csrf = dev.get("/profile/linked-accounts").await.csrf();
    let check = dev
        .api(
            Method::POST,
            "/api/v1/linked-accounts/gitlab/check",
            None,
            Some(&csrf),
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.body);
    let second_pair = stored_tokens(&app, &dev_user).await;
    assert_ne!(first_pair, second_pair, "the check must have refreshed");
    let admin_pair = stored_tokens(&app, &admin_user).await;

    let mut secrets: Vec<(&str, String)> = vec![
        ("application secret", sim_app.secret.clone()),
        ("lablink password", PASSWORD.to_owned()),
        ("GitLab password", vera.password.clone()),
        ("GitLab session", vera.session.clone()),
    ];
    for (what, pair) in [
        ("first", &first_pair),
        ("refreshed", &second_pair),
        ("admin's", &admin_pair),
    ] {
        secrets.push((what, pair[0].clone()));
        secrets.push((what, pair[1].clone()));
    }

    let stored = database_bytes(&app).await;
    let logged = logs.0.lock().unwrap().clone();
    assert!(
        contains(&logged, "GitLab token refreshed"),
        "the logs were not captured"
    );
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for");
        assert!(
            !contains(&stored, secret),
            "the {what} secret is stored in plain text"
        );
        assert!(
            !contains(&logged, secret),
            "the {what} secret is in the logs"
        );
    }
}
