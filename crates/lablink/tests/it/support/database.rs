use std::path::Path;

use lablink_testkit::ThrowawayDatabase;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test, dropped with it: a SQLite file in the test's directory, or a
/// PostgreSQL database of its own.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<ThrowawayDatabase>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, dir: &Path) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.join("lablink.db").display()),
                postgres: None,
            },
            Backend::Postgres => {
                let database = ThrowawayDatabase::create("lablink_t").await;
                TestDatabase {
                    url: database.url.clone(),
                    postgres: Some(database),
                }
            }
        }
    }

    /// Drops the PostgreSQL database now (it is dropped with `self` anyway).
    pub fn drop_now(&mut self) {
        if let Some(mut database) = self.postgres.take() {
            database.drop_now();
        }
    }
}
