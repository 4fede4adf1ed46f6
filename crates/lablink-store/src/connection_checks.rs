//! The doctor's last verdict on each project's connection (what the project page and the
//! dashboard show without calling GitLab).

use crate::{Db, StoreError, on_db};

/// What the last full check of a project's connection found.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionCheck {
    pub project_id: String,
    pub checked_at: i64,
    pub errors: i64,
    pub warnings: i64,
    /// The most serious finding's message; empty when nothing was found.
    pub headline: String,
    /// What to do about it.
    pub remedy: String,
}

impl Db {
    /// Replaces the project's last check.
    pub async fn record_connection_check(&self, check: &ConnectionCheck) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO connection_checks (project_id, checked_at, errors, warnings, \
                 headline, remedy) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id) \
                 DO UPDATE SET checked_at = $2, errors = $3, warnings = $4, headline = $5, \
                 remedy = $6",
            )
            .bind(&check.project_id)
            .bind(check.checked_at)
            .bind(check.errors)
            .bind(check.warnings)
            .bind(&check.headline)
            .bind(&check.remedy)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// The project's last check, if it was ever checked.
    pub async fn connection_check(
        &self,
        project_id: &str,
    ) -> Result<Option<ConnectionCheck>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT project_id, checked_at, errors, warnings, headline, remedy \
                 FROM connection_checks WHERE project_id = $1",
            )
            .bind(project_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// The account's projects whose last check found an error, the latest first.
    pub async fn broken_connections(
        &self,
        account_id: &str,
    ) -> Result<Vec<ConnectionCheck>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT c.project_id, c.checked_at, c.errors, c.warnings, c.headline, c.remedy \
                 FROM connection_checks c JOIN projects p ON p.id = c.project_id \
                 WHERE p.account_id = $1 AND c.errors > 0 ORDER BY c.checked_at DESC",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
        })?)
    }
}
