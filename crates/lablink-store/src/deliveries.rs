//! Webhook deliveries (`webhook_deliveries`) and what intake needs of a repository: its webhook
//! secrets. A delivery and the job that processes it are written in one transaction, so a 2xx
//! answer always means the event will be handled, exactly once per delivery key.

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::{Db, StoreError, new_id, now_ms};

/// The job kind that processes a received delivery; its payload is `{"delivery_id": ...}`.
pub const PROCESS_DELIVERY_JOB: &str = "ci.process_delivery";
/// Attempts of the processing job before it is marked failed.
const PROCESS_ATTEMPTS: i64 = 10;

pub const RECEIVED: &str = "received";
pub const PROCESSED: &str = "processed";
pub const IGNORED: &str = "ignored";

/// What verifies a repository's deliveries.
pub struct HookSecrets {
    pub secret: SecretString,
    /// The secret before the last rotation, while its grace window lasts.
    pub previous: Option<SecretString>,
    pub signing_token: Option<SecretString>,
}

/// A delivery as intake hands it over.
pub struct NewDelivery<'a> {
    pub repository_id: &'a str,
    pub delivery_key: &'a str,
    pub event: Option<&'a str>,
    pub body: &'a [u8],
    /// `Some(reason)` for events lablink does not act on: stored as ignored, with no job.
    pub ignored: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New { delivery_id: String },
    Duplicate,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub repository_id: String,
    pub delivery_key: String,
    pub event: Option<String>,
    pub body: Vec<u8>,
    pub received_at: i64,
    pub status: String,
    pub note: Option<String>,
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
            signing_token: row
                .signing_token
                .as_deref()
                .map(|blob| open("signing_token", blob))
                .transpose()?,
        }))
    }

    /// Stores a delivery unless one with the same key was stored for the repository, and, for an
    /// event to act on, its processing job, both in one transaction.
    pub async fn record_delivery(&self, new: &NewDelivery<'_>) -> Result<Recorded, StoreError> {
        let mut recorded = self.record_deliveries(std::slice::from_ref(new)).await?;
        recorded
            .pop()
            .ok_or(StoreError::Corrupt("no delivery recorded".into()))
    }

    /// Like [`Db::record_delivery`] for a batch, in one transaction (one commit for all: the
    /// group commit that keeps intake fast). The answers are in the batch's order.
    pub async fn record_deliveries(
        &self,
        batch: &[NewDelivery<'_>],
    ) -> Result<Vec<Recorded>, StoreError> {
        let now = now_ms();
        let recorded = crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut recorded = Vec::with_capacity(batch.len());
            for new in batch {
                let id = new_id();
                let status = if new.ignored.is_some() {
                    IGNORED
                } else {
                    RECEIVED
                };
                let inserted = sqlx::query(
                    "INSERT INTO webhook_deliveries (id, repository_id, delivery_key, event, body, \
                     received_at, status, note, processed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, CASE WHEN $8 IS NULL THEN NULL ELSE $6 END) \
                     ON CONFLICT (repository_id, delivery_key) DO NOTHING",
                )
                .bind(&id)
                .bind(new.repository_id)
                .bind(new.delivery_key)
                .bind(new.event)
                .bind(new.body)
                .bind(now)
                .bind(status)
                .bind(new.ignored)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted && new.ignored.is_none() {
                    sqlx::query(
                        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, \
                         run_after, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6, \
                         $6, $6)",
                    )
                    .bind(new_id())
                    .bind(PROCESS_DELIVERY_JOB)
                    .bind(serde_json::json!({ "delivery_id": id }).to_string())
                    .bind(crate::jobs::QUEUED)
                    .bind(PROCESS_ATTEMPTS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                recorded.push(if inserted {
                    Recorded::New { delivery_id: id }
                } else {
                    Recorded::Duplicate
                });
            }
            tx.commit().await?;
            Ok::<Vec<Recorded>, sqlx::Error>(recorded)
        })?;
        Ok(recorded)
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let row = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, repository_id, delivery_key, event, body, received_at, status, note \
                 FROM webhook_deliveries WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Records how a delivery was handled (`processed` or `ignored`) and why.
    pub async fn finish_delivery(
        &self,
        id: &str,
        status: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, note = $2, processed_at = $3 \
                 WHERE id = $4",
            )
            .bind(status)
            .bind(note)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
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
