//! A fresh database per test: a temporary SQLite file, or a new PostgreSQL database on
//! 127.0.0.1:5432 dropped when the test ends. PostgreSQL being unreachable fails the test.

use lablink_store::Db;
use lablink_testkit::ThrowawayDatabase;

pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<ThrowawayDatabase>,
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
                    _postgres: None,
                }
            }
            Backend::Postgres => {
                let database = ThrowawayDatabase::create("lablink_t").await;
                TestDb {
                    db: Db::connect(&database.url).await.unwrap(),
                    _dir: None,
                    _postgres: Some(database),
                }
            }
        };
        t.db.migrate().await.unwrap();
        t
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
