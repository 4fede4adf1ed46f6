//! `TestApp::spawn(backend)` starts the real server on port 0 against a fresh SQLite file or a
//! fresh PostgreSQL database (dropped at the end). [`Browser`] keeps cookies like a browser and
//! reads CSRF tokens from forms.

mod browser;
pub mod connected;
mod database;
pub mod gitlab;
pub mod guide;
mod serve_process;
pub mod webdriver;
pub mod webhooks;

pub use browser::{Browser, Page};
pub use database::{Backend, TestDatabase};
pub use serve_process::{ServeProcess, sample};

use lablink::startup::Application;
use lablink_core::{Plan, Role};
use lablink_service::Services;
use lablink_service::accounts::UserInput;
use lablink_store::Db;
use lablink_store::crypto::KeyRing;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub metrics_base: String,
    pub setup_link: Option<String>,
    pub services: Services,
    /// The server's database and master key, opened by the test itself to inspect and arrange
    /// what is stored (the service keeps its own to itself).
    pub db: Db,
    pub keys: KeyRing,
    pub database_url: String,
    pub secret_key: String,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// What the server was started with (`listen` pinned to the port it got), to start it again.
    settings: Vec<(String, String)>,
    dir: tempfile::TempDir,
    database: database::TestDatabase,
}

/// A user created for a test.
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub account_id: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Like [`TestApp::spawn`], with more settings (`key`, `value`) that override the defaults.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = database::TestDatabase::create(backend, dir.path()).await;
        let secret_key = KeyRing::generate_key().to_string();
        let data_dir = dir.path().display().to_string();
        let mut pairs = vec![
            ("database_url", database.url.as_str()),
            ("listen", "127.0.0.1:0"),
            ("metrics_listen", "127.0.0.1:0"),
            ("data_dir", &data_dir),
            ("secret_key", &secret_key),
        ];
        pairs.extend_from_slice(extra);
        let settings = lablink::config::from_pairs(&pairs).unwrap();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let listen = format!("127.0.0.1:{}", app.port());
        let settings = pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    if *k == "listen" {
                        listen.clone()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect();
        let metrics_base = format!("http://127.0.0.1:{}", app.metrics_port());
        let setup_link = app.setup_link().map(str::to_owned);
        let services = app.services().clone();
        let db = Db::connect(&database.url).await.unwrap();
        let keys = KeyRing::new(&KeyRing::decode_key(&secret_key).unwrap(), &[]);
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        TestApp {
            base,
            metrics_base,
            setup_link,
            services,
            db,
            keys,
            database_url: database.url.clone(),
            secret_key,
            stop,
            server: Some(server),
            settings,
            dir,
            database,
        }
    }

    /// Moves an account to another plan (an upgrade or downgrade after setup).
    pub async fn set_account_plan(&self, account_id: &str, plan: Plan) {
        let sql = "UPDATE accounts SET plan = $1 WHERE id = $2";
        match &self.db {
            Db::Sqlite(pool) => sqlx::query(sql)
                .bind(plan.as_str())
                .bind(account_id)
                .execute(pool)
                .await
                .map(drop),
            Db::Postgres(pool) => sqlx::query(sql)
                .bind(plan.as_str())
                .bind(account_id)
                .execute(pool)
                .await
                .map(drop),
        }
        .unwrap();
    }

    /// The server's `data_dir`.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The DuckDB file lablink keeps for a project (setting `warehouse_root`'s default).
    pub fn duckdb_file(&self, project_id: &str) -> std::path::PathBuf {
        self.data_dir()
            .join(format!("warehouses/project-{project_id}/warehouse.duckdb"))
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A user made the way `lablink admin create-user` makes one (the account is created with
    /// `plan` when new).
    pub async fn create_user(
        &self,
        account: &str,
        plan: Plan,
        email: &str,
        role: Role,
    ) -> TestUser {
        let (account, user) = self
            .services
            .create_user_in_account(
                account,
                plan,
                UserInput {
                    email: email.into(),
                    username: email.split('@').next().unwrap().into(),
                    password: SecretString::from(PASSWORD),
                    role,
                },
            )
            .await
            .unwrap();
        TestUser {
            id: user.id,
            email: user.email,
            account_id: account.id,
        }
    }

    /// A browser signed in as `email`.
    pub async fn login(&self, email: &str) -> Browser {
        let b = self.browser();
        let page = b.get("/login").await;
        let res = b
            .post_form(
                "/login",
                &[
                    ("csrf_token", &page.csrf()),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status, 303, "sign-in of {email} failed: {}", res.body);
        b
    }

    /// Runs a statement directly on the database (to age sessions, to inspect stored values).
    pub async fn execute(&self, sql: &str) {
        match &self.db {
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// The first column of a query's rows, as text (NULL as the empty text).
    pub async fn column(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        macro_rules! first {
            ($pool:expr) => {
                sqlx::query(sql)
                    .fetch_all($pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get::<Option<String>, _>(0).unwrap_or_default())
                    .collect()
            };
        }
        match &self.db {
            Db::Sqlite(pool) => first!(pool),
            Db::Postgres(pool) => first!(pool),
        }
    }

    /// Every text value of a table, for checking what is stored at rest.
    pub async fn table_text(&self, table: &str) -> String {
        let sql = format!("SELECT * FROM {table}");
        use sqlx::Row;
        let mut out = String::new();
        macro_rules! dump {
            ($pool:expr) => {{
                for row in sqlx::query(&sql).fetch_all($pool).await.unwrap() {
                    for i in 0..row.columns().len() {
                        if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                            out.push_str(&v);
                            out.push('\n');
                        }
                    }
                }
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => dump!(pool),
            Db::Postgres(pool) => dump!(pool),
        }
        out
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.stop_server().await;
    }

    /// Stops the in-process server but keeps its database (and `database_url`, `secret_key`)
    /// for the test, e.g. to run the `lablink` binary on it. The test's own `db` stays open.
    pub async fn stop_server(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl TestApp {
    /// Starts the stopped server again on the same port, database and data directory, as a
    /// restart of the service after it was down.
    pub async fn start_server_again(&mut self) {
        assert!(self.server.is_none(), "the server is still running");
        let pairs: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let settings = lablink::config::from_pairs(&pairs).unwrap();
        let app = Application::build(settings).await.unwrap();
        self.services = app.services().clone();
        self.stop = CancellationToken::new();
        self.server = Some(tokio::spawn(app.run_until_stopped(self.stop.clone())));
    }
}

/// Another replica of a [`TestApp`]'s lablink: the same database and master key, its own data
/// directory and ports, in this process.
pub struct Replica {
    pub base: String,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts a replica with this server's settings and `extra` on top (e.g. its `roles`).
    pub async fn replica(&self, extra: &[(&str, &str)]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().display().to_string();
        let mut pairs: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.extend([
            ("listen", "127.0.0.1:0"),
            ("metrics_listen", "127.0.0.1:0"),
            ("data_dir", data_dir.as_str()),
        ]);
        pairs.extend_from_slice(extra);
        // Later pairs win.
        let settings = lablink::config::from_pairs(&pairs).unwrap();
        let app = Application::build(settings).await.unwrap();
        let stop = CancellationToken::new();
        Replica {
            base: format!("http://127.0.0.1:{}", app.port()),
            stop: stop.clone(),
            server: Some(tokio::spawn(app.run_until_stopped(stop))),
            _dir: dir,
        }
    }
}

impl Replica {
    /// Stops the replica as SIGTERM does, and waits until it stopped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        self.database.drop_now();
    }
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests from `async fn <name>(app: TestApp)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod both {
            $(
                mod $name {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        let app = $crate::support::TestApp::spawn($crate::support::Backend::Sqlite).await;
                        super::super::$name(app).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        let app = $crate::support::TestApp::spawn($crate::support::Backend::Postgres).await;
                        super::super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// The rows of `sql` on the DuckDB file `file` (read-only), each row's values joined with `.`;
/// `None` while a dbt process holds the file's lock.
pub fn duckdb_rows(file: &std::path::Path, sql: &str) -> Option<Vec<String>> {
    let venv = std::env::var("LABLINK_DBT_VENV").map_or_else(
        |_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lablink/venv"),
        std::path::PathBuf::from,
    );
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); \
             print('\\n'.join('.'.join(str(v) for v in r) for r in c.execute(sys.argv[2]).fetchall()))",
        )
        .arg(file)
        .arg(sql)
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stderr).contains("Could not set lock") {
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}
