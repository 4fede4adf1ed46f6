//! What the benchmarks that run lablink on PostgreSQL share.

use lablink_testkit::ThrowawayDatabase;

/// A new empty database on the local PostgreSQL.
pub async fn pg_database() -> ThrowawayDatabase {
    ThrowawayDatabase::create("lablink_bench").await
}

/// Drops the database once the server that used it has stopped (its pool closes as it stops;
/// `FORCE` ends what is left of it), so that benchmark runs do not fill the disk.
pub async fn drop_pg_database(mut database: ThrowawayDatabase) {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    database.drop_now();
}
