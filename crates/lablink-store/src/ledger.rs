//! The schema ledger (`warehouse_schemas`): every schema a merge request's run made in a
//! warehouse, as dbt actually named it, with when it was made and last used, whether its merge
//! request is closed, and whether (and how) it was dropped. The sweep drops what is due, even
//! after lablink was down or a drop failed; one merge request's note per CI job (`mr_notes`).

use crate::{Db, StoreError, new_id, now_ms};

/// A schema lablink made in a warehouse.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerSchema {
    pub id: String,
    pub project_id: String,
    pub ci_job_id: i64,
    pub repository_id: String,
    pub mr_iid: i64,
    /// Empty when the adapter has no databases.
    pub database_name: String,
    pub schema_name: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub mr_closed_at: Option<i64>,
    pub dropped_at: Option<i64>,
    pub drop_error: Option<String>,
}

const COLUMNS: &str = "id, project_id, ci_job_id, repository_id, mr_iid, database_name, schema_name, \
     created_at, last_used_at, mr_closed_at, dropped_at, drop_error";

/// Whose schemas these are.
pub struct SchemaOwner<'a> {
    pub project_id: &'a str,
    pub ci_job_id: i64,
    pub repository_id: &'a str,
    pub mr_iid: i64,
}

impl Db {
    /// Records that a run of `owner` used `schemas` (database, schema) now: new ones are added,
    /// known ones are marked used (and live again, if they had been dropped).
    pub async fn record_schemas(
        &self,
        owner: &SchemaOwner<'_>,
        schemas: &[(String, String)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for (database, schema) in schemas {
            crate::on_db!(self, |pool| {
                sqlx::query(
                    "INSERT INTO warehouse_schemas (id, project_id, ci_job_id, repository_id, mr_iid, \
                     database_name, schema_name, created_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                     ON CONFLICT (ci_job_id, mr_iid, database_name, schema_name) DO UPDATE SET \
                     last_used_at = excluded.last_used_at, dropped_at = NULL, drop_error = NULL, \
                     mr_closed_at = NULL",
                )
                .bind(new_id())
                .bind(owner.project_id)
                .bind(owner.ci_job_id)
                .bind(owner.repository_id)
                .bind(owner.mr_iid)
                .bind(database)
                .bind(schema)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }

    /// The merge request was closed or merged: its schemas are due.
    pub async fn mark_mr_schemas_closed(
        &self,
        repository_id: &str,
        mr_iid: i64,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE warehouse_schemas SET mr_closed_at = $1 \
                 WHERE repository_id = $2 AND mr_iid = $3 AND mr_closed_at IS NULL",
            )
            .bind(now_ms())
            .bind(repository_id)
            .bind(mr_iid)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Merge requests of a repository whose schemas are live and not known to be closed.
    pub async fn mrs_with_open_schemas(&self, repository_id: &str) -> Result<Vec<i64>, StoreError> {
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT DISTINCT mr_iid FROM warehouse_schemas WHERE repository_id = $1 \
                 AND dropped_at IS NULL AND mr_closed_at IS NULL ORDER BY mr_iid",
            )
            .bind(repository_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Every schema of one job's merge request, dropped ones included (for its run pages).
    pub async fn schemas_of_mr(
        &self,
        ci_job_id: i64,
        mr_iid: i64,
    ) -> Result<Vec<LedgerSchema>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM warehouse_schemas WHERE ci_job_id = $1 AND mr_iid = $2 \
             ORDER BY schema_name"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(ci_job_id)
                .bind(mr_iid)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Undropped schemas of one job's merge request.
    pub async fn live_schemas_of(
        &self,
        ci_job_id: i64,
        mr_iid: i64,
    ) -> Result<Vec<LedgerSchema>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM warehouse_schemas WHERE ci_job_id = $1 AND mr_iid = $2 \
             AND dropped_at IS NULL ORDER BY schema_name"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(ci_job_id)
                .bind(mr_iid)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Undropped schemas that are due: their merge request is closed, or they were last used
    /// before `unused_since` (Unix ms).
    pub async fn schemas_due(&self, unused_since: i64) -> Result<Vec<LedgerSchema>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM warehouse_schemas WHERE dropped_at IS NULL \
             AND (mr_closed_at IS NOT NULL OR last_used_at < $1) ORDER BY last_used_at LIMIT 500"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(unused_since)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Every schema of a project, newest first (for its pages).
    pub async fn schemas_of_project(
        &self,
        project_id: &str,
    ) -> Result<Vec<LedgerSchema>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM warehouse_schemas WHERE project_id = $1 \
             ORDER BY last_used_at DESC LIMIT 200"
        );
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(project_id).fetch_all(pool).await
        })?)
    }

    /// The outcome of one drop: dropped now, or the reason it was not.
    pub async fn schema_drop_outcome(
        &self,
        id: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let dropped_at = error.is_none().then(now_ms);
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE warehouse_schemas SET dropped_at = $1, drop_error = $2 WHERE id = $3",
            )
            .bind(dropped_at)
            .bind(error)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The note lablink keeps on a merge request for a CI job, if it made one.
    pub async fn mr_note_id(
        &self,
        repository_id: &str,
        mr_iid: i64,
        ci_job_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT note_id FROM mr_notes WHERE repository_id = $1 AND mr_iid = $2 \
                 AND ci_job_id = $3",
            )
            .bind(repository_id)
            .bind(mr_iid)
            .bind(ci_job_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    pub async fn set_mr_note_id(
        &self,
        repository_id: &str,
        mr_iid: i64,
        ci_job_id: i64,
        note_id: i64,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO mr_notes (repository_id, mr_iid, ci_job_id, note_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repository_id, mr_iid, ci_job_id) \
                 DO UPDATE SET note_id = excluded.note_id, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(mr_iid)
            .bind(ci_job_id)
            .bind(note_id)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
