//! IP restrictions as stored: an account's rules and the switch that enforces them, and the
//! ranges its webhook deliveries may come from. Every change bumps the account's `version` in the
//! same transaction, which is how replicas notice it.

use lablink_core::ip_range::{IpNet, parse_ip_range};
use lablink_core::ip_rules::{Rule, RuleKind};

use crate::{Db, StoreError, new_id, now_ms, on_db};

/// A rule with what people wrote about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRule {
    pub rule: Rule,
    pub description: String,
    pub updated_at: i64,
}

/// An account's rules and whether they are enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRestrictions {
    pub enabled: bool,
    /// 0 before the first change.
    pub version: i64,
    pub rules: Vec<IpRule>,
    pub webhook_sources: WebhookSources,
}

/// Where the account's webhook deliveries may come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSources {
    /// Deliveries from outside `ranges` are refused only while this is on.
    pub enabled: bool,
    pub ranges: Vec<IpNet>,
}

/// A rule to create or to replace another with.
pub struct IpRuleFields<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub kind: RuleKind,
    pub ranges: &'a [IpNet],
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    name: String,
    description: String,
    kind: String,
    ranges: String,
    updated_at: i64,
}

impl RuleRow {
    fn into_rule(self) -> Result<IpRule, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("IP rule {}: {what}", self.id));
        let kind = self
            .kind
            .parse()
            .map_err(|_| corrupt(format!("kind `{}`", self.kind)))?;
        let ranges = self
            .ranges
            .lines()
            .map(|r| parse_ip_range(r).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(IpRule {
            rule: Rule {
                id: self.id,
                name: self.name,
                kind,
                ranges,
            },
            description: self.description,
            updated_at: self.updated_at,
        })
    }
}

fn ranges_text(ranges: &[IpNet]) -> String {
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn name_taken(err: sqlx::Error, name: &str) -> StoreError {
    let err = StoreError::from(err);
    if err.is_unique_violation() {
        StoreError::Conflict(format!(
            "A rule named “{name}” already exists; choose another name."
        ))
    } else {
        err
    }
}

/// Creates the account's set on its first change and bumps its version; `enabled` is set when
/// given.
const BUMP: &str = "INSERT INTO ip_restriction_sets (account_id, enabled, version, updated_at) \
     VALUES ($1, COALESCE($2, FALSE), 1, $3) ON CONFLICT (account_id) DO UPDATE SET \
     enabled = COALESCE($2, ip_restriction_sets.enabled), \
     version = ip_restriction_sets.version + 1, updated_at = $3";

impl Db {
    pub async fn ip_restrictions(&self, account_id: &str) -> Result<IpRestrictions, StoreError> {
        let set: Option<(bool, i64, bool, String)> = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT enabled, version, webhook_sources_enabled, webhook_sources \
                 FROM ip_restriction_sets WHERE account_id = $1",
            )
            .bind(account_id)
            .fetch_optional(pool)
            .await
        })?;
        let rows: Vec<RuleRow> = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, description, kind, ranges, updated_at FROM ip_rules \
                 WHERE account_id = $1 ORDER BY name",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
        })?;
        let (enabled, version, sources_enabled, sources) = set.unwrap_or_default();
        let sources = sources
            .lines()
            .map(|r| {
                parse_ip_range(r).map_err(|e| {
                    StoreError::Corrupt(format!("webhook sources of account {account_id}: {e}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(IpRestrictions {
            enabled,
            version,
            webhook_sources: WebhookSources {
                enabled: sources_enabled,
                ranges: sources,
            },
            rules: rows
                .into_iter()
                .map(RuleRow::into_rule)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Every account's version of its restrictions, for replicas to see what changed.
    pub async fn ip_restriction_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as("SELECT account_id, version FROM ip_restriction_sets")
                .fetch_all(pool)
                .await
        })?)
    }

    pub async fn create_ip_rule(
        &self,
        account_id: &str,
        fields: &IpRuleFields<'_>,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let now = now_ms();
        on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO ip_rules (id, account_id, name, description, kind, ranges, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&id)
                .bind(account_id)
                .bind(fields.name)
                .bind(fields.description)
                .bind(fields.kind.as_str())
                .bind(ranges_text(fields.ranges))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(BUMP)
                    .bind(account_id)
                    .bind(None::<bool>)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        })
        .map_err(|e| name_taken(e, fields.name))?;
        Ok(id)
    }

    /// Replaces a rule of the account; false when it has no such rule.
    pub async fn update_ip_rule(
        &self,
        account_id: &str,
        id: &str,
        fields: &IpRuleFields<'_>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE ip_rules SET name = $1, description = $2, kind = $3, ranges = $4, \
                     updated_at = $5 WHERE id = $6 AND account_id = $7",
                )
                .bind(fields.name)
                .bind(fields.description)
                .bind(fields.kind.as_str())
                .bind(ranges_text(fields.ranges))
                .bind(now)
                .bind(id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 {
                    sqlx::query(BUMP)
                        .bind(account_id)
                        .bind(None::<bool>)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            }
            .await
        })
        .map_err(|e| name_taken(e, fields.name))
    }

    /// Deletes a rule of the account; false when it has no such rule.
    pub async fn delete_ip_rule(&self, account_id: &str, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let deleted = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("DELETE FROM ip_rules WHERE id = $1 AND account_id = $2")
                    .bind(id)
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(BUMP)
                        .bind(account_id)
                        .bind(None::<bool>)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n == 1)
            }
            .await
        })?;
        Ok(deleted)
    }

    /// Turns enforcement of the account's rules on or off.
    pub async fn set_ip_restrictions_enabled(
        &self,
        account_id: &str,
        enabled: bool,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(BUMP)
                .bind(account_id)
                .bind(Some(enabled))
                .bind(now_ms())
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Replaces where the account's webhook deliveries may come from.
    pub async fn set_webhook_sources(
        &self,
        account_id: &str,
        sources: &WebhookSources,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(BUMP)
                    .bind(account_id)
                    .bind(None::<bool>)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE ip_restriction_sets SET webhook_sources_enabled = $1, \
                     webhook_sources = $2 WHERE account_id = $3",
                )
                .bind(sources.enabled)
                .bind(ranges_text(&sources.ranges))
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await
        })?;
        Ok(())
    }
}
