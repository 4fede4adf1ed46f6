//! dbt projects of an account (`projects`): name, the dbt directory inside the repository, the CI
//! target branch, and the repository currently connected.

use crate::{Db, StoreError, new_id, now_ms, on_db};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub subdirectory: String,
    pub target_branch: Option<String>,
    pub repository_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The editable fields of a project, already validated.
#[derive(Debug, Clone)]
pub struct ProjectFields<'a> {
    pub name: &'a str,
    pub subdirectory: &'a str,
    pub target_branch: Option<&'a str>,
}

const COLUMNS: &str =
    "id, account_id, name, subdirectory, target_branch, repository_id, created_at, updated_at";

fn name_taken(err: StoreError, name: &str) -> StoreError {
    if err.is_unique_violation() {
        StoreError::Conflict(format!(
            "A project named “{name}” already exists in this account."
        ))
    } else {
        err
    }
}

impl Db {
    pub async fn create_project(
        &self,
        account_id: &str,
        fields: &ProjectFields<'_>,
    ) -> Result<Project, StoreError> {
        let id = new_id();
        let now = now_ms();
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO projects (id, account_id, name, subdirectory, target_branch, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(account_id)
            .bind(fields.name)
            .bind(fields.subdirectory)
            .bind(fields.target_branch)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|e| name_taken(e.into(), fields.name))?;
        self.project(account_id, &id)
            .await?
            .ok_or(StoreError::NotFound("project"))
    }

    pub async fn update_project(
        &self,
        account_id: &str,
        id: &str,
        fields: &ProjectFields<'_>,
    ) -> Result<Project, StoreError> {
        let n = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE projects SET name = $1, subdirectory = $2, target_branch = $3, updated_at = $4 \
                 WHERE id = $5 AND account_id = $6",
            )
            .bind(fields.name)
            .bind(fields.subdirectory)
            .bind(fields.target_branch)
            .bind(now_ms())
            .bind(id)
            .bind(account_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| name_taken(e.into(), fields.name))?;
        if n == 0 {
            return Err(StoreError::NotFound("project"));
        }
        self.project(account_id, id)
            .await?
            .ok_or(StoreError::NotFound("project"))
    }

    /// A project of the account (`None` for another account's project).
    pub async fn project(&self, account_id: &str, id: &str) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1 AND account_id = $2");
        let row = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(account_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    pub async fn projects_of_account(&self, account_id: &str) -> Result<Vec<Project>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM projects WHERE account_id = $1 ORDER BY name, id");
        let rows = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await
        })?;
        Ok(rows)
    }
}
