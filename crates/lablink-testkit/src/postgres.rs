//! A database of its own on the local PostgreSQL (127.0.0.1:5432, trust authentication) for one
//! test or benchmark, dropped with it. PostgreSQL being unreachable fails the caller: never skipped.

use sqlx::{Connection, Executor, PgConnection};

/// The server's maintenance database, for creating and dropping the others.
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct ThrowawayDatabase {
    pub url: String,
    name: Option<String>,
}

async fn admin() -> PgConnection {
    PgConnection::connect(PG_ADMIN).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running at 127.0.0.1:5432 (trust auth for postgres): {e}")
    })
}

impl ThrowawayDatabase {
    /// Creates `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> ThrowawayDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin().await;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        ThrowawayDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name: Some(name),
        }
    }

    /// Drops the database now. `WITH (FORCE)` ends what is left of its users' connections (a pool
    /// that cannot be closed from here). Runs on a thread and runtime of its own, so it may be
    /// called from `Drop` inside a test's runtime.
    pub fn drop_now(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let mut admin = admin().await;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .expect("DROP DATABASE");
                admin.close().await.ok();
            });
        })
        .join()
        .expect("the drop thread");
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        self.drop_now();
    }
}
