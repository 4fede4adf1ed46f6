use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

/// This release's migrations. A database may hold migrations this release does not know: while
/// a fleet rolls to the next release, the first new replica applies the next release's
/// migrations and the replicas of this release keep running on that database (they are written
/// to allow it: add first, remove in a later release; `migrations/RELEASED`). sqlx refuses such
/// a database unless told to ignore them ("migration N was previously applied but is missing in
/// the resolved migrations"); a migration this release knows that was changed, or a newer one
/// that failed half-way, is still refused.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// The database, SQLite or PostgreSQL, chosen by the URL scheme.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one body against whichever backend `db` is. The body is compiled once per backend, so each
/// arm is monomorphised for its own driver (no `Any` driver).
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Keeps a webhook delivery's row in the table itself up to a full page (`toast_tuple_target`),
/// and never has PostgreSQL try to compress its body (`STORAGE EXTERNAL`). Bodies are already
/// compressed (`PackedBody`), about 3 KB for a typical event: by default PostgreSQL moves any row
/// over 2 KB into the TOAST table (a second heap and index write per delivery) after running its
/// own compression on the body in vain, which was a tenth of PostgreSQL's time during intake.
/// These are PostgreSQL's own words, so they are not in the shared migrations; applying them
/// again is harmless (replicas starting together), but they are applied only when missing so
/// that a restart takes no table lock.
async fn keep_delivery_rows_inline(pool: &PgPool) -> Result<(), StoreError> {
    let applied: bool = sqlx::query_scalar(
        "SELECT COALESCE('toast_tuple_target=8160' = ANY(reloptions), FALSE) FROM pg_class \
         WHERE oid = 'webhook_deliveries'::regclass",
    )
    .fetch_one(pool)
    .await?;
    if !applied {
        sqlx::query(
            "ALTER TABLE webhook_deliveries SET (toast_tuple_target = 8160), \
             ALTER COLUMN body SET STORAGE EXTERNAL",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Why the database refuses to change an audit entry. Entries are only ever added (and deleted
/// past their retention); a trigger makes that hold for every statement, not only lablink's.
const AUDIT_UNCHANGED: &str = "audit entries cannot be changed";

/// PostgreSQL's trigger for [`AUDIT_UNCHANGED`] (its own words, so not in the shared migrations),
/// created once under an advisory lock so that replicas starting together do not race.
async fn keep_audit_entries_unchanged_pg(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7305441)")
        .execute(&mut *tx)
        .await?;
    let present: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_log_unchanged' \
         AND tgrelid = 'audit_log'::regclass)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !present {
        sqlx::query(&format!(
            "CREATE OR REPLACE FUNCTION lablink_audit_log_unchanged() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{AUDIT_UNCHANGED}'; END $$"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "CREATE TRIGGER audit_log_unchanged BEFORE UPDATE ON audit_log FOR EACH ROW \
             EXECUTE FUNCTION lablink_audit_log_unchanged()",
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Db {
    /// Connects to `url`: `sqlite://path` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl(format!("{url}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Checkpoints run in `Db::checkpoint`, never as part of a commit.
                .pragma("wal_autocheckpoint", "0");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| Box::pin(crate::sqlite_busy::install(conn)))
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(format!("{e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(StoreError::BadUrl(
                "expected a URL starting with sqlite: or postgres:".into(),
            ))
        }
    }

    /// Applies every pending migration. On PostgreSQL sqlx holds an advisory lock meanwhile,
    /// so replicas starting together are safe.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_db!(self, |pool| MIGRATOR.run(pool).await)?;
        match self {
            Db::Postgres(pool) => {
                keep_delivery_rows_inline(pool).await?;
                keep_audit_entries_unchanged_pg(pool).await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query(&format!(
                    "CREATE TRIGGER IF NOT EXISTS audit_log_unchanged BEFORE UPDATE ON audit_log \
                     BEGIN SELECT RAISE(ABORT, '{AUDIT_UNCHANGED}'); END"
                ))
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// How many known migrations are not applied yet (0 when the schema is current).
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        // No migration table yet (a fresh database) means every migration is pending.
        let applied: Vec<i64> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(pool)
                .await
        })
        .unwrap_or_default();
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    /// Copies what SQLite's write-ahead log holds into the database file, without blocking
    /// writers or waiting for readers (`PASSIVE`), so the log restarts from its beginning
    /// instead of growing. Connections never do this on commit (`wal_autocheckpoint = 0`): the
    /// commit that crossed the log's size limit would write the whole log back and sync the
    /// file before its transaction returned, which made the latency tail of webhook intake.
    /// `lablink serve` calls this every [`Db::CHECKPOINT_EVERY`]; on PostgreSQL it does nothing.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(pool) = self {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// How often [`Db::checkpoint`] should run: often enough that the log stays a few
    /// megabytes at the highest intake rate.
    pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Which backend this is, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }
}
