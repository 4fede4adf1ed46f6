//! The audit log of security-relevant actions.

use crate::{Db, StoreError, new_id, now_ms, on_db};

/// One thing that happened, by whom, from where.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    pub account_id: Option<&'a str>,
    pub actor_user_id: Option<&'a str>,
    pub action: &'a str,
    pub detail: String,
    pub client_ip: Option<&'a str>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: String,
    pub account_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub action: String,
    pub detail: String,
    pub client_ip: Option<String>,
    pub created_at: i64,
}

impl Db {
    pub async fn record_audit(&self, event: AuditEvent<'_>) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (id, account_id, actor_user_id, action, detail, client_ip, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id())
            .bind(event.account_id)
            .bind(event.actor_user_id)
            .bind(event.action)
            .bind(&event.detail)
            .bind(event.client_ip)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The newest entries of an account, newest first.
    pub async fn audit_of_account(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, account_id, actor_user_id, action, detail, client_ip, created_at \
                 FROM audit_log WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(account_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
