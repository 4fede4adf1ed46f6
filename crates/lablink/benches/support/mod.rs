//! What the benchmarks that run lablink on PostgreSQL share.

use lablink_store::Db;

/// The server's maintenance database, for creating and dropping throw-away databases.
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A new empty database on the local PostgreSQL; returns its name.
pub async fn pg_database() -> String {
    let name = format!("lablink_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Db::connect(PG_ADMIN)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .unwrap();
    }
    name
}

/// The URL of database `name` on the local PostgreSQL.
pub fn pg_url(name: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

/// Drops database `name` once the server that used it has stopped (its pool closes as it stops;
/// `FORCE` ends what is left of it), so that benchmark runs do not fill the disk.
pub async fn drop_pg_database(name: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    if let Ok(Db::Postgres(pool)) = Db::connect(PG_ADMIN).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
    }
}
