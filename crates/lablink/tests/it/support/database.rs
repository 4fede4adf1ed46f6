use std::path::Path;

use lablink_store::Db;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test, dropped with it. PostgreSQL being unreachable fails the test:
/// never skipped.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, dir: &Path) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.join("lablink.db").display()),
                pg_name: None,
            },
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
                TestDatabase {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Drops the PostgreSQL database. Runs on its own thread and runtime because it is called
    /// from `Drop` inside the test's runtime; `WITH (FORCE)` ends the app's connections, whose
    /// pool cannot be closed from here.
    pub fn drop_now(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
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

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.drop_now();
    }
}
