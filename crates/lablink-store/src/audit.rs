//! The audit log of security-relevant actions. Entries are only ever added (and, past the
//! retention setting, pruned): the store has no statement that changes one.

use crate::{Db, StoreError, new_id, now_ms, on_db};

lablink_core::text_enum! {
    /// How an audited action ended.
    pub enum AuditOutcome ("outcome") {
        Success = "success",
        /// Tried and failed (a wrong password).
        Failure = "failure",
        /// Refused by a rule (IP restrictions).
        Denied = "denied",
    }
}

/// One thing that happened, by whom, to what, from where.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub account_id: Option<&'a str>,
    pub actor_user_id: Option<&'a str>,
    pub action: &'a str,
    /// What was acted on, in words a person recognises (`repository acme/analytics`).
    pub target: Option<String>,
    pub detail: String,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub outcome: AuditOutcome,
}

impl Default for AuditEvent<'_> {
    fn default() -> Self {
        AuditEvent {
            account_id: None,
            actor_user_id: None,
            action: "",
            target: None,
            detail: String::new(),
            client_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
        }
    }
}

/// An entry as read back, with its actor's email when the actor still exists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: String,
    pub account_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    #[sqlx(try_from = "String")]
    pub outcome: AuditOutcome,
    pub created_at: i64,
}

/// Which entries of an account to read; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Part of the actor's email or username.
    pub actor: Option<String>,
    /// An action, or the start of one (`repository.` for all repository actions).
    pub action: Option<String>,
    /// Part of the target.
    pub target: Option<String>,
    /// From this moment (inclusive, Unix ms).
    pub from: Option<i64>,
    /// Until this moment (exclusive, Unix ms).
    pub until: Option<i64>,
    /// Entries older than this one (`created_at`, `id`): the next page.
    pub before: Option<(i64, String)>,
}

const COLUMNS: &str = "a.id, a.account_id, a.actor_user_id, u.email AS actor_email, a.action, \
     a.target, a.detail, a.client_ip, a.user_agent, a.outcome, a.created_at";

/// A value bound to the filter's statement.
enum Bind {
    Text(String),
    Number(i64),
}

impl Db {
    pub async fn record_audit(&self, event: AuditEvent<'_>) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (id, account_id, actor_user_id, action, target, detail, \
                 client_ip, user_agent, outcome, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new_id())
            .bind(event.account_id)
            .bind(event.actor_user_id)
            .bind(event.action)
            .bind(event.target.as_deref())
            .bind(&event.detail)
            .bind(event.client_ip)
            .bind(event.user_agent)
            .bind(event.outcome.as_str())
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// An account's entries matching `filter`, newest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        account_id: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id \
             WHERE a.account_id = $1"
        );
        let mut binds = vec![Bind::Text(account_id.to_owned())];
        let next = |binds: &mut Vec<Bind>, bind: Bind| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        if let Some(actor) = filter
            .actor
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let p = next(
                &mut binds,
                Bind::Text(format!("%{}%", actor.to_lowercase())),
            );
            sql.push_str(&format!(
                " AND (LOWER(u.email) LIKE {p} OR LOWER(u.username) LIKE {p})"
            ));
        }
        if let Some(action) = filter
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let p = next(&mut binds, Bind::Text(format!("{action}%")));
            sql.push_str(&format!(" AND a.action LIKE {p}"));
        }
        if let Some(target) = filter
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let p = next(
                &mut binds,
                Bind::Text(format!("%{}%", target.to_lowercase())),
            );
            sql.push_str(&format!(" AND LOWER(a.target) LIKE {p}"));
        }
        if let Some(from) = filter.from {
            let p = next(&mut binds, Bind::Number(from));
            sql.push_str(&format!(" AND a.created_at >= {p}"));
        }
        if let Some(until) = filter.until {
            let p = next(&mut binds, Bind::Number(until));
            sql.push_str(&format!(" AND a.created_at < {p}"));
        }
        if let Some((at, id)) = &filter.before {
            let at = next(&mut binds, Bind::Number(*at));
            let id = next(&mut binds, Bind::Text(id.clone()));
            sql.push_str(&format!(
                " AND (a.created_at < {at} OR (a.created_at = {at} AND a.id < {id}))"
            ));
        }
        let p = next(&mut binds, Bind::Number(limit));
        sql.push_str(&format!(" ORDER BY a.created_at DESC, a.id DESC LIMIT {p}"));
        let rows = on_db!(self, |pool| {
            let mut query = sqlx::query_as::<_, AuditEntry>(&sql);
            for bind in &binds {
                query = match bind {
                    Bind::Text(t) => query.bind(t.as_str()),
                    Bind::Number(n) => query.bind(*n),
                };
            }
            query.fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Entries about no account (operators' actions from a shell, such as a rekey), newest first.
    pub async fn operator_audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id \
             WHERE a.account_id IS NULL ORDER BY a.created_at DESC, a.id DESC LIMIT $1"
        );
        Ok(on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
        })?)
    }
}
