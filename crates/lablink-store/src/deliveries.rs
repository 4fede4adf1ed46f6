//! Webhook deliveries (`webhook_deliveries`) and what intake needs of a repository: its webhook
//! secrets. A delivery row is also its own queue item (claimed in batches with a lease, retried
//! with backoff), so intake writes one row per delivery and a 2xx answer always means the event
//! will be handled, exactly once per delivery key.

mod packed;

use secrecy::SecretString;

pub use packed::PackedBody;

use crate::crypto::KeyRing;
use crate::{Db, StoreError, new_id, now_ms};

/// Attempts at processing a delivery before it is marked failed.
pub const PROCESS_ATTEMPTS: i64 = 10;

pub const RECEIVED: &str = "received";
pub const PROCESSED: &str = "processed";
pub const IGNORED: &str = "ignored";
/// Processing kept failing; `note` holds the last error.
pub const FAILED: &str = "failed";

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
    pub status: String,
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
    status: String,
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
                "SELECT id, hook_secret, hook_secret_previous, hook_secret_grace_until, \
                 signing_token FROM repositories \
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
        let open = |column: &str, blob: &[u8]| {
            keys.open_str(&format!("repositories.{column}:{}", row.id), blob)
        };
        let in_grace = row.hook_secret_grace_until.is_some_and(|t| t > now_ms());
        Ok(Some(HookSecrets {
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
        let mut sql = String::from(
            "INSERT INTO webhook_deliveries (id, repository_id, delivery_key, event, body, \
             body_encoding, received_at, status, note, processed_at) VALUES ",
        );
        for i in 0..batch.len() {
            let p = 3 + i * 8;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, $2, $1, ${}, ${}, ${})",
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
        sql.push_str(" ON CONFLICT (repository_id, delivery_key) DO NOTHING RETURNING id");
        // Rows go in key order: two batches committing at once with overlapping keys (a
        // re-sent delivery) then wait for each other in one direction only, never deadlock.
        let mut rows: Vec<(&String, &NewDelivery<'_>)> = ids.iter().zip(batch).collect();
        rows.sort_by_key(|(_, new)| (new.repository_id, new.delivery_key));
        let inserted: Vec<String> = crate::on_db!(self, |pool| {
            let mut query = sqlx::query_scalar(&sql).bind(now).bind(packed::ZSTD);
            for (id, new) in &rows {
                let (status, processed_at) = match new.ignored {
                    Some(_) => (IGNORED, Some(now)),
                    None => (RECEIVED, None),
                };
                query = query
                    .bind(id)
                    .bind(new.repository_id)
                    .bind(new.delivery_key)
                    .bind(new.event)
                    .bind(new.body.bytes())
                    .bind(status)
                    .bind(new.ignored)
                    .bind(processed_at);
            }
            query.fetch_all(pool).await
        })?;
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
        // that concurrent replicas take different rows; SQLite has a single writer.
        const PICK: &str = "SELECT id FROM webhook_deliveries \
             WHERE status = $1 AND locked_until <= $2 ORDER BY received_at, id LIMIT $5";
        let update = |pick: &str| {
            format!(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, locked_by = $3, \
                 locked_until = $4 WHERE id IN ({pick}) RETURNING {COLUMNS}"
            )
        };
        let claimed: Vec<DeliveryRow> = match self {
            Db::Sqlite(pool) => {
                sqlx::query_as(&update(PICK))
                    .bind(RECEIVED)
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
                    .bind(RECEIVED)
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

    /// Records how deliveries were handled, each `(id, status, note)` with status `processed` or
    /// `ignored`, in one transaction.
    pub async fn finish_deliveries(
        &self,
        worker: &str,
        outcomes: &[(String, &str, String)],
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // One statement for the batch: VALUES rows joined on the id (`columnN` are the names both
        // SQLite and PostgreSQL give VALUES columns).
        let rows = (0..outcomes.len())
            .map(|i| format!("(${}, ${}, ${})", 3 + i * 3, 4 + i * 3, 5 + i * 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE webhook_deliveries SET status = v.column2, note = v.column3, \
             processed_at = $1, locked_by = NULL FROM (VALUES {rows}) AS v \
             WHERE webhook_deliveries.id = v.column1 AND webhook_deliveries.locked_by = $2"
        );
        let now = now_ms();
        crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Db::Postgres(_) = self {
                sqlx::query(NO_FLUSH).execute(&mut *tx).await?;
            }
            let mut query = sqlx::query(&sql).bind(now).bind(worker);
            for (id, status, note) in outcomes {
                query = query.bind(id).bind(*status).bind(note);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await
        })?;
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
            .bind(FAILED)
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

    /// How many deliveries a repository has in each status, for tests and the repository page.
    pub async fn count_deliveries(
        &self,
        repository_id: &str,
        status: &str,
    ) -> Result<i64, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE repository_id = $1 AND status = $2",
            )
            .bind(repository_id)
            .bind(status)
            .fetch_one(pool)
            .await
        })?;
        Ok(n)
    }
}
