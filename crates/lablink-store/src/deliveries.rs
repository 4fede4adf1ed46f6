//! Webhook deliveries (`webhook_deliveries`) and what intake needs of a repository: its webhook
//! secrets. A delivery row is also its own queue item (claimed in batches with a lease, retried
//! with backoff), so intake writes one row per delivery and a 2xx answer always means the event
//! will be handled, exactly once per delivery key.

mod packed;

use secrecy::SecretString;

pub use packed::PackedBody;

use crate::crypto::KeyRing;
use crate::sealed::repository_aad;
use crate::{Db, StoreError, new_id, now_ms};

/// Attempts at processing a delivery before it is marked failed.
pub const PROCESS_ATTEMPTS: i64 = 10;

lablink_core::text_enum! {
    /// Where a stored delivery is: waiting for a processor, or how processing ended.
    pub enum DeliveryStatus ("delivery status") {
        Received = "received",
        Processed = "processed",
        Ignored = "ignored",
        /// Processing kept failing; `note` holds the last error.
        Failed = "failed",
    }
}

/// How handling a claimed delivery ended; the text is the delivery's note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// It was acted on: what it did.
    Processed(String),
    /// Nothing to do: why.
    Ignored(String),
}

impl DeliveryOutcome {
    fn status(&self) -> DeliveryStatus {
        match self {
            DeliveryOutcome::Processed(_) => DeliveryStatus::Processed,
            DeliveryOutcome::Ignored(_) => DeliveryStatus::Ignored,
        }
    }

    fn note(&self) -> &str {
        match self {
            DeliveryOutcome::Processed(note) | DeliveryOutcome::Ignored(note) => note,
        }
    }
}

/// Claims and outcomes of processing need not wait for the disk on PostgreSQL: if a crash loses
/// them, the delivery is processed again, which is harmless, and PostgreSQL writes its log in
/// order, so nothing committed after them survives without them. Not waiting keeps these commits
/// from queueing in front of intake's, which must wait. (SQLite in WAL mode with
/// `synchronous=NORMAL` does not flush on commit anyway.)
const NO_FLUSH: &str = "SET LOCAL synchronous_commit TO OFF";

const COLUMNS: &str = "id, repository_id, delivery_key, event, body, body_encoding, received_at, status, note, \
     attempts";

/// What verifies a repository's deliveries.
pub struct HookSecrets {
    /// The account the repository belongs to, whose webhook source ranges apply.
    pub account_id: String,
    pub secret: SecretString,
    /// The secret before the last rotation, while its grace window lasts.
    pub previous: Option<SecretString>,
    /// `None` while the previous secret's grace window lasts (see `hook_secrets`).
    pub signing_token: Option<SecretString>,
}

/// A delivery as intake hands it over.
pub struct NewDelivery<'a> {
    pub repository_id: &'a str,
    pub delivery_key: &'a str,
    pub event: Option<&'a str>,
    pub body: &'a PackedBody,
    /// `Some(reason)` for events lablink does not act on: stored as ignored, with no job.
    pub ignored: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New { delivery_id: String },
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub repository_id: String,
    pub delivery_key: String,
    pub event: Option<String>,
    pub body: Vec<u8>,
    pub received_at: i64,
    pub status: DeliveryStatus,
    pub note: Option<String>,
    /// Processing attempts so far, this one included for a claimed delivery.
    pub attempts: i64,
}

/// A stored delivery before its body is unpacked.
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    repository_id: String,
    delivery_key: String,
    event: Option<String>,
    body: Vec<u8>,
    body_encoding: String,
    received_at: i64,
    #[sqlx(try_from = "String")]
    status: DeliveryStatus,
    note: Option<String>,
    attempts: i64,
}

impl DeliveryRow {
    fn open(self) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            body: packed::unpack(&self.body_encoding, self.body)?,
            id: self.id,
            repository_id: self.repository_id,
            delivery_key: self.delivery_key,
            event: self.event,
            received_at: self.received_at,
            status: self.status,
            note: self.note,
            attempts: self.attempts,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: String,
    account_id: String,
    hook_secret: Option<Vec<u8>>,
    hook_secret_previous: Option<Vec<u8>>,
    hook_secret_grace_until: Option<i64>,
    signing_token: Option<Vec<u8>>,
}

impl Db {
    /// The webhook secrets of a connected (or connecting) repository; `None` when the repository
    /// is unknown, disconnected or has no secret.
    pub async fn hook_secrets(
        &self,
        keys: &KeyRing,
        repository_id: &str,
    ) -> Result<Option<HookSecrets>, StoreError> {
        let row: Option<SecretRow> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, account_id, hook_secret, hook_secret_previous, \
                 hook_secret_grace_until, signing_token FROM repositories \
                 WHERE id = $1 AND status IN ('connected', 'connecting')",
            )
            .bind(repository_id)
            .fetch_optional(pool)
            .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let Some(secret) = &row.hook_secret else {
            return Ok(None);
        };
        let open =
            |column: &str, blob: &[u8]| keys.open_str(&repository_aad(column, &row.id), blob);
        let in_grace = row.hook_secret_grace_until.is_some_and(|t| t > now_ms());
        Ok(Some(HookSecrets {
            account_id: row.account_id.clone(),
            secret: open("hook_secret", secret)?,
            previous: match (&row.hook_secret_previous, in_grace) {
                (Some(blob), true) => Some(open("hook_secret_previous", blob)?),
                _ => None,
            },
            // A reset replaced the signing token with the secret: while the replaced secret is
            // accepted, deliveries GitLab signed with the replaced token must pass as well, so
            // the secret token alone decides (GitLab sends it with every delivery).
            signing_token: match (&row.signing_token, in_grace) {
                (Some(blob), false) => Some(open("signing_token", blob)?),
                _ => None,
            },
        }))
    }

    /// Stores a delivery unless one with the same key was stored for the repository.
    pub async fn record_delivery(&self, new: &NewDelivery<'_>) -> Result<Recorded, StoreError> {
        let mut recorded = self.record_deliveries(std::slice::from_ref(new)).await?;
        recorded
            .pop()
            .ok_or(StoreError::Corrupt("no delivery recorded".into()))
    }

    /// Like [`Db::record_delivery`] for a batch, in one multi-row statement and one commit (the
    /// group commit that keeps intake fast). A delivery is its own queue item, so this is the
    /// only write intake makes. The answers are in the batch's order.
    pub async fn record_deliveries(
        &self,
        batch: &[NewDelivery<'_>],
    ) -> Result<Vec<Recorded>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let ids: Vec<String> = batch.iter().map(|_| new_id()).collect();
        // Rows go in key order: two batches committing at once with overlapping keys (a
        // re-sent delivery) then wait for each other in one direction only, never deadlock.
        let mut rows: Vec<(&String, &NewDelivery<'_>)> = ids.iter().zip(batch).collect();
        rows.sort_by_key(|(_, new)| (new.repository_id, new.delivery_key));
        let inserted = match self {
            Db::Postgres(pool) => insert_unnested(pool, now, &rows).await?,
            Db::Sqlite(pool) => insert_values(pool, now, &rows).await?,
        };
        let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
        Ok(ids
            .into_iter()
            .map(|id| {
                if inserted.contains(&id) {
                    Recorded::New { delivery_id: id }
                } else {
                    Recorded::Duplicate
                }
            })
            .collect())
    }

    /// Takes up to `limit` received deliveries, oldest first, for `worker` with a lease of
    /// `lease_ms` (a crashed processor's deliveries are taken again when it ends). Each claim
    /// counts an attempt.
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now_ms();
        // Written twice like the job queue's claim: PostgreSQL needs `FOR UPDATE SKIP LOCKED` so
        // that concurrent replicas take different rows; SQLite has a single writer. The status
        // is written out, not bound: only then may either database use the partial queue index
        // (`status = 'received'`), whatever plan it caches.
        const PICK: &str = "SELECT id FROM webhook_deliveries \
             WHERE status = 'received' AND locked_until <= $1 ORDER BY received_at, id LIMIT $4";
        let update = |pick: &str| {
            format!(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, locked_by = $2, \
                 locked_until = $3 WHERE id IN ({pick}) RETURNING {COLUMNS}"
            )
        };
        let claimed: Vec<DeliveryRow> = match self {
            Db::Sqlite(pool) => {
                sqlx::query_as(&update(PICK))
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(NO_FLUSH).execute(&mut *tx).await?;
                let claimed = sqlx::query_as(&update(&format!("{PICK} FOR UPDATE SKIP LOCKED")))
                    .bind(now)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                claimed
            }
        };
        let mut claimed = claimed
            .into_iter()
            .map(DeliveryRow::open)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order; events of one merge request must be handled in order.
        claimed.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(claimed)
    }

    /// Records how deliveries were handled, each `(id, outcome)`, in one transaction.
    pub async fn finish_deliveries(
        &self,
        worker: &str,
        outcomes: &[(String, DeliveryOutcome)],
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        match self {
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(NO_FLUSH).execute(&mut *tx).await?;
                // Arrays, like intake's insert: one statement text for every batch size.
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = v.status, note = v.note, \
                     processed_at = $1, locked_by = NULL \
                     FROM UNNEST($3::text[], $4::text[], $5::text[]) AS v(id, status, note) \
                     WHERE webhook_deliveries.id = v.id AND webhook_deliveries.locked_by = $2",
                )
                .bind(now)
                .bind(worker)
                .bind(
                    outcomes
                        .iter()
                        .map(|(id, ..)| id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    outcomes
                        .iter()
                        .map(|(_, outcome)| outcome.status().as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    outcomes
                        .iter()
                        .map(|(_, outcome)| outcome.note())
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Db::Sqlite(pool) => {
                // VALUES rows joined on the id (`columnN` is what SQLite names VALUES columns).
                let rows = (0..outcomes.len())
                    .map(|i| format!("(${}, ${}, ${})", 3 + i * 3, 4 + i * 3, 5 + i * 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "UPDATE webhook_deliveries SET status = v.column2, note = v.column3, \
                     processed_at = $1, locked_by = NULL FROM (VALUES {rows}) AS v \
                     WHERE webhook_deliveries.id = v.column1 AND webhook_deliveries.locked_by = $2"
                );
                let mut query = sqlx::query(&sql).bind(now).bind(worker);
                for (id, outcome) in outcomes {
                    query = query
                        .bind(id)
                        .bind(outcome.status().as_str())
                        .bind(outcome.note());
                }
                query.execute(pool).await?;
            }
        }
        Ok(())
    }

    /// A failed attempt: the delivery is taken again after `retry_ms`, or, after
    /// [`PROCESS_ATTEMPTS`] attempts, marked `failed` with the error.
    pub async fn retry_delivery(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        retry_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE webhook_deliveries SET locked_by = NULL, locked_until = $1, note = $2, \
                 status = CASE WHEN attempts >= $3 THEN $4 ELSE status END, \
                 processed_at = CASE WHEN attempts >= $3 THEN $5 ELSE processed_at END \
                 WHERE id = $6 AND locked_by = $7",
            )
            .bind(now + retry_ms)
            .bind(error)
            .bind(PROCESS_ATTEMPTS)
            .bind(DeliveryStatus::Failed.as_str())
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE id = $1");
        let row: Option<DeliveryRow> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(DeliveryRow::open).transpose()
    }

    /// Repacks up to `batch` bodies stored with zstd or deflate by earlier versions as LZ4,
    /// the rows after id `after` in id order; the last id looked at, `None` when none were left.
    /// A body that cannot be unpacked is left as it is (processing it fails with its own error).
    pub async fn repack_legacy_delivery_bodies(
        &self,
        after: &str,
        batch: i64,
    ) -> Result<Option<String>, StoreError> {
        let rows: Vec<(String, Vec<u8>, String)> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, body, body_encoding FROM webhook_deliveries \
                 WHERE body_encoding IN ($1, $2) AND id > $3 ORDER BY id LIMIT $4",
            )
            .bind(packed::ZSTD)
            .bind(packed::DEFLATE)
            .bind(after)
            .bind(batch)
            .fetch_all(pool)
            .await
        })?;
        let last = rows.last().map(|(id, ..)| id.clone());
        for (id, body, encoding) in rows {
            let raw = match packed::unpack(&encoding, body) {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::warn!(delivery = %id, error = %e, "cannot repack a delivery body");
                    continue;
                }
            };
            crate::on_db!(self, |pool| {
                sqlx::query(
                    "UPDATE webhook_deliveries SET body = $1, body_encoding = $2 \
                     WHERE id = $3 AND body_encoding = $4",
                )
                .bind(PackedBody::pack(&raw).bytes())
                .bind(packed::LZ4)
                .bind(&id)
                .bind(&encoding)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(last)
    }

    /// How many deliveries a repository has in each status, for tests and the repository page.
    pub async fn count_deliveries(
        &self,
        repository_id: &str,
        status: DeliveryStatus,
    ) -> Result<i64, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE repository_id = $1 AND status = $2",
            )
            .bind(repository_id)
            .bind(status.as_str())
            .fetch_one(pool)
            .await
        })?;
        Ok(n)
    }
}

const INSERT_INTO: &str = "INSERT INTO webhook_deliveries (id, repository_id, delivery_key, event, \
     body, body_encoding, received_at, status, note, processed_at) ";
const ON_CONFLICT: &str = " ON CONFLICT (repository_id, delivery_key) DO NOTHING RETURNING id";

/// The status, note and `processed_at` a new delivery is stored with.
fn outcome(new: &NewDelivery<'_>, now: i64) -> (&'static str, Option<i64>) {
    match new.ignored {
        Some(_) => (DeliveryStatus::Ignored.as_str(), Some(now)),
        None => (DeliveryStatus::Received.as_str(), None),
    }
}

/// Built once: it is on intake's path.
static UNNESTED_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{INSERT_INTO}SELECT d.id, d.repository_id, d.delivery_key, d.event, d.body, $1, $2, \
         d.status, d.note, d.processed_at FROM UNNEST($3::text[], $4::text[], $5::text[], \
         $6::text[], $7::bytea[], $8::text[], $9::text[], $10::bigint[]) \
         AS d(id, repository_id, delivery_key, event, body, status, note, processed_at)\
         {ON_CONFLICT}"
    )
});

/// PostgreSQL: the batch as one array per column, so that every batch size is the same statement,
/// parsed and planned once per connection (a `VALUES` list per size made PostgreSQL plan a
/// statement of up to 2,000 parameters for most batches).
async fn insert_unnested(
    pool: &sqlx::PgPool,
    now: i64,
    rows: &[(&String, &NewDelivery<'_>)],
) -> Result<Vec<String>, sqlx::Error> {
    let outcomes: Vec<_> = rows.iter().map(|(_, new)| outcome(new, now)).collect();
    sqlx::query_scalar(&UNNESTED_INSERT)
        .bind(packed::LZ4)
        .bind(now)
        .bind(rows.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, n)| n.repository_id)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, n)| n.delivery_key).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, n)| n.event).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, n)| n.body.bytes()).collect::<Vec<_>>())
        .bind(
            outcomes
                .iter()
                .map(|(status, _)| *status)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, n)| n.ignored).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
}

/// SQLite: a multi-row `VALUES` list (SQLite has no arrays; preparing it is cheap).
async fn insert_values(
    pool: &sqlx::SqlitePool,
    now: i64,
    rows: &[(&String, &NewDelivery<'_>)],
) -> Result<Vec<String>, sqlx::Error> {
    let mut sql = format!("{INSERT_INTO}VALUES ");
    for i in 0..rows.len() {
        let p = 3 + i * 8;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, $1, $2, ${}, ${}, ${})",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7
        ));
    }
    sql.push_str(ON_CONFLICT);
    let mut query = sqlx::query_scalar(&sql).bind(packed::LZ4).bind(now);
    for (id, new) in rows {
        let (status, processed_at) = outcome(new, now);
        query = query
            .bind(id.as_str())
            .bind(new.repository_id)
            .bind(new.delivery_key)
            .bind(new.event)
            .bind(new.body.bytes())
            .bind(status)
            .bind(new.ignored)
            .bind(processed_at);
    }
    query.fetch_all(pool).await
}
