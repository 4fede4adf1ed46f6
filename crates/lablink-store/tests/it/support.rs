//! A fresh database per test: a temporary SQLite file, or a new PostgreSQL database on
//! 127.0.0.1:5432 dropped when the test ends. PostgreSQL being unreachable fails the test.

use lablink_store::Db;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let t = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                TestDb {
                    db: Db::connect(&url).await.unwrap(),
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("lablink_t_{}", uuid::Uuid::new_v4().simple());
                let admin = Db::connect(PG_ADMIN).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL must be running at 127.0.0.1:5432 for the tests: {e}")
                });
                let Db::Postgres(pool) = &admin else {
                    unreachable!()
                };
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(pool)
                    .await
                    .unwrap();
                admin.close().await;
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                TestDb {
                    db: Db::connect(&url).await.unwrap(),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        };
        t.db.migrate().await.unwrap();
        t
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's (blocked) runtime, so the cleanup runs on its own thread
        // and runtime; `WITH (FORCE)` ends the test's connections, whose pool cannot be closed
        // from here.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = Db::connect(PG_ADMIN).await.unwrap();
                let Db::Postgres(pool) = &admin else {
                    unreachable!()
                };
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(pool)
                    .await
                    .unwrap();
                admin.close().await;
            });
        })
        .join()
        .unwrap();
    }
}

/// Generates `<name>_sqlite` and `<name>_postgres` tests from `async fn <name>(db: Db)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod both {
            $(
                mod $name {
                    #[tokio::test]
                    async fn sqlite() {
                        let t = $crate::support::TestDb::new($crate::support::Backend::Sqlite).await;
                        super::super::$name(t.db.clone()).await;
                    }
                    #[tokio::test]
                    async fn postgres() {
                        let t = $crate::support::TestDb::new($crate::support::Backend::Postgres).await;
                        super::super::$name(t.db.clone()).await;
                    }
                }
            )*
        }
    };
}
