//! CI jobs of a dbt project (`ci_jobs`). Environment variables and the warehouse password are
//! sealed with the job's id as associated data; the rest is plain.

use lablink_core::ci::{ForkPolicy, JobKind};
use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::KeyRing;
use crate::sealed::{JOB_ENV, JOB_WAREHOUSE_SECRET};
use crate::{Db, StoreError, now_ms};

/// A job's settings as the service writes them.
pub struct CiJobInput {
    pub name: String,
    pub kind: JobKind,
    pub commands: Vec<String>,
    pub target_branch_filter: Option<String>,
    pub run_on_draft: bool,
    pub enabled: bool,
    pub timeout_secs: i64,
    pub env: BTreeMap<String, SecretString>,
    /// JSON of the warehouse's non-secret settings.
    pub warehouse: String,
    pub warehouse_secret: Option<SecretString>,
    pub mr_note: bool,
    pub forks: ForkPolicy,
    /// Paths (prefixes in the repository) a merge request must change for the job to run; empty:
    /// the project's subdirectory, or everything.
    pub watch_paths: Vec<String>,
    /// The comparison with production: at most this many models, in at most this long.
    pub compare_max_models: i64,
    pub compare_timeout_secs: i64,
}

/// A stored job with its secrets opened.
pub struct CiJob {
    pub id: i64,
    pub account_id: String,
    pub project_id: String,
    pub input: CiJobInput,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    account_id: String,
    project_id: String,
    name: String,
    #[sqlx(try_from = "String")]
    kind: JobKind,
    commands: String,
    target_branch_filter: Option<String>,
    run_on_draft: bool,
    enabled: bool,
    timeout_secs: i64,
    env_enc: Option<Vec<u8>>,
    warehouse: String,
    warehouse_secret_enc: Option<Vec<u8>>,
    mr_note: bool,
    #[sqlx(try_from = "String")]
    fork_policy: ForkPolicy,
    watch_paths: String,
    compare_max_models: i64,
    compare_timeout_secs: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, account_id, project_id, name, kind, commands, target_branch_filter, \
    run_on_draft, enabled, timeout_secs, env_enc, warehouse, warehouse_secret_enc, mr_note, fork_policy, \
    watch_paths, compare_max_models, compare_timeout_secs, \
    created_at, updated_at";

impl Row {
    fn open(self, keys: &KeyRing) -> Result<CiJob, StoreError> {
        let env = match &self.env_enc {
            None => BTreeMap::new(),
            Some(blob) => {
                let plain = keys.open(&JOB_ENV.aad(self.id), blob)?;
                let map: BTreeMap<String, String> = serde_json::from_slice(&plain)
                    .map_err(|e| StoreError::Corrupt(format!("ci_jobs.env: {e}")))?;
                map.into_iter()
                    .map(|(k, v)| (k, SecretString::from(v)))
                    .collect()
            }
        };
        let warehouse_secret = self
            .warehouse_secret_enc
            .as_deref()
            .map(|blob| keys.open_str(&JOB_WAREHOUSE_SECRET.aad(self.id), blob))
            .transpose()?;
        let commands: Vec<String> = serde_json::from_str(&self.commands)
            .map_err(|e| StoreError::Corrupt(format!("ci_jobs.commands: {e}")))?;
        Ok(CiJob {
            id: self.id,
            account_id: self.account_id,
            project_id: self.project_id,
            input: CiJobInput {
                name: self.name,
                kind: self.kind,
                commands,
                target_branch_filter: self.target_branch_filter,
                run_on_draft: self.run_on_draft,
                enabled: self.enabled,
                timeout_secs: self.timeout_secs,
                env,
                warehouse: self.warehouse,
                warehouse_secret,
                mr_note: self.mr_note,
                forks: self.fork_policy,
                watch_paths: serde_json::from_str(&self.watch_paths).map_err(|e| {
                    StoreError::Corrupt(format!("ci job {}: watch paths: {e}", self.id))
                })?,
                compare_max_models: self.compare_max_models,
                compare_timeout_secs: self.compare_timeout_secs,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A job's columns as stored: lists as JSON, secrets sealed.
struct Sealed {
    commands: String,
    watch_paths: String,
    env: Option<Vec<u8>>,
    warehouse_secret: Option<Vec<u8>>,
}

fn seal(keys: &KeyRing, id: i64, input: &CiJobInput) -> Sealed {
    let env = (!input.env.is_empty()).then(|| {
        let plain: BTreeMap<&str, &str> = input
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        let json = zeroize::Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default());
        keys.seal(&JOB_ENV.aad(id), &json)
    });
    Sealed {
        commands: serde_json::Value::from(input.commands.clone()).to_string(),
        watch_paths: serde_json::Value::from(input.watch_paths.clone()).to_string(),
        env,
        warehouse_secret: input
            .warehouse_secret
            .as_ref()
            .map(|s| keys.seal_str(&JOB_WAREHOUSE_SECRET.aad(id), s)),
    }
}

impl Db {
    /// Creates a job; its id is the next integer. A name already used in the project is a
    /// [`StoreError::Conflict`].
    pub async fn create_ci_job(
        &self,
        keys: &KeyRing,
        account_id: &str,
        project_id: &str,
        input: &CiJobInput,
    ) -> Result<i64, StoreError> {
        // Two creators may pick the same next id; the loser's insert fails on the primary key
        // and tries the following one.
        for _ in 0..5 {
            let id: i64 = crate::on_db!(self, |pool| {
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM ci_jobs")
                    .fetch_one(pool)
                    .await
            })?;
            let sealed = seal(keys, id, input);
            let now = now_ms();
            let result = crate::on_db!(self, |pool| {
                sqlx::query(
                    "INSERT INTO ci_jobs (id, account_id, project_id, name, kind, commands, \
                     target_branch_filter, run_on_draft, enabled, timeout_secs, env_enc, \
                     warehouse, warehouse_secret_enc, mr_note, fork_policy, watch_paths, \
                     compare_max_models, compare_timeout_secs, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16, $17, \
                     $18, $19, $15, $15)",
                )
                .bind(id)
                .bind(account_id)
                .bind(project_id)
                .bind(&input.name)
                .bind(input.kind.as_str())
                .bind(&sealed.commands)
                .bind(&input.target_branch_filter)
                .bind(input.run_on_draft)
                .bind(input.enabled)
                .bind(input.timeout_secs)
                .bind(&sealed.env)
                .bind(&input.warehouse)
                .bind(&sealed.warehouse_secret)
                .bind(input.mr_note)
                .bind(now)
                .bind(input.forks.as_str())
                .bind(&sealed.watch_paths)
                .bind(input.compare_max_models)
                .bind(input.compare_timeout_secs)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            });
            match result.map_err(StoreError::from) {
                Ok(_) => return Ok(id),
                Err(e) if e.is_unique_violation() => {
                    if self
                        .ci_job_by_name(keys, project_id, &input.name)
                        .await?
                        .is_some()
                    {
                        return Err(StoreError::Conflict(format!(
                            "a job named `{}` already exists in this project",
                            input.name
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "too many jobs were created at once; try again".into(),
        ))
    }

    /// Replaces a job's settings. `false` when there is no such job.
    pub async fn update_ci_job(
        &self,
        keys: &KeyRing,
        id: i64,
        input: &CiJobInput,
    ) -> Result<bool, StoreError> {
        let sealed = seal(keys, id, input);
        let result = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE ci_jobs SET name = $1, kind = $2, commands = $3, target_branch_filter = $4, \
                 run_on_draft = $5, enabled = $6, timeout_secs = $7, env_enc = $8, warehouse = $9, \
                 warehouse_secret_enc = $10, mr_note = $11, updated_at = $12, fork_policy = $14, \
                 watch_paths = $15, compare_max_models = $16, compare_timeout_secs = $17 \
                 WHERE id = $13",
            )
            .bind(&input.name)
            .bind(input.kind.as_str())
            .bind(&sealed.commands)
            .bind(&input.target_branch_filter)
            .bind(input.run_on_draft)
            .bind(input.enabled)
            .bind(input.timeout_secs)
            .bind(&sealed.env)
            .bind(&input.warehouse)
            .bind(&sealed.warehouse_secret)
            .bind(input.mr_note)
            .bind(now_ms())
            .bind(id)
            .bind(input.forks.as_str())
            .bind(&sealed.watch_paths)
            .bind(input.compare_max_models)
            .bind(input.compare_timeout_secs)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::from);
        match result {
            Ok(r) => Ok(r == 1),
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(format!(
                "a job named `{}` already exists in this project",
                input.name
            ))),
            Err(e) => Err(e),
        }
    }

    /// The ids of every CI job, of every account (to find what belongs to deleted jobs).
    pub async fn ci_job_ids(&self) -> Result<std::collections::HashSet<i64>, StoreError> {
        let ids: Vec<i64> = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM ci_jobs")
                .fetch_all(pool)
                .await
        })?;
        Ok(ids.into_iter().collect())
    }

    /// Deletes a job and, with it, its runs.
    pub async fn delete_ci_job(&self, id: i64) -> Result<bool, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query("DELETE FROM ci_jobs WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    pub async fn ci_job(&self, keys: &KeyRing, id: i64) -> Result<Option<CiJob>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM ci_jobs WHERE id = $1");
        let row: Option<Row> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(|r| r.open(keys)).transpose()
    }

    async fn ci_job_by_name(
        &self,
        keys: &KeyRing,
        project_id: &str,
        name: &str,
    ) -> Result<Option<CiJob>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM ci_jobs WHERE project_id = $1 AND name = $2");
        let row: Option<Row> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_id)
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|r| r.open(keys)).transpose()
    }

    /// A project's jobs, by id.
    pub async fn ci_jobs_of_project(
        &self,
        keys: &KeyRing,
        project_id: &str,
    ) -> Result<Vec<CiJob>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM ci_jobs WHERE project_id = $1 ORDER BY id");
        let rows: Vec<Row> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(project_id).fetch_all(pool).await
        })?;
        rows.into_iter().map(|r| r.open(keys)).collect()
    }
}
