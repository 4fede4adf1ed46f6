//! Webhook deliveries refused because they came from outside the account's allowed source
//! ranges: counted per repository and address, for the doctor's report.

use crate::{Db, StoreError, now_ms, on_db};

/// Refusals of one address's deliveries to one repository.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRefusal {
    pub address: String,
    pub refusals: i64,
    pub first_at: i64,
    pub last_at: i64,
}

/// Most addresses one report lists.
const LISTED: i64 = 20;

impl Db {
    /// Counts one refused delivery from `address`.
    pub async fn count_webhook_refusal(
        &self,
        repository_id: &str,
        address: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO webhook_refusals (repository_id, address, refusals, first_at, \
                 last_at) VALUES ($1, $2, 1, $3, $3) ON CONFLICT (repository_id, address) \
                 DO UPDATE SET refusals = webhook_refusals.refusals + 1, last_at = $3",
            )
            .bind(repository_id)
            .bind(address)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// The addresses refused since `since`, the latest first (at most 20).
    pub async fn webhook_refusals_since(
        &self,
        repository_id: &str,
        since: i64,
    ) -> Result<Vec<WebhookRefusal>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT address, refusals, first_at, last_at FROM webhook_refusals \
                 WHERE repository_id = $1 AND last_at >= $2 ORDER BY last_at DESC LIMIT $3",
            )
            .bind(repository_id)
            .bind(since)
            .bind(LISTED)
            .fetch_all(pool)
            .await
        })?)
    }
}
