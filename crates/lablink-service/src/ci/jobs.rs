//! Managing CI jobs: validation of what users type, authorization, and the warehouse settings
//! stored beside the sealed secrets.

use lablink_store::audit::AuditEvent;
use std::collections::BTreeMap;

use lablink_core::ci::{BranchFilter, CiJobSpec, ForkPolicy, JobKind};
use lablink_exec::dbt::{DbtCommand, PostgresProfile, WarehouseProfile};
use lablink_store::Principal;
use lablink_store::ci_jobs::{CiJob, CiJobInput};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::require;
use crate::settings::RunSettings;
use crate::{ServiceError, Services};

const MAX_NAME_CHARS: usize = 100;
const MAX_TIMEOUT_SECS: i64 = 24 * 3600;
pub const DEFAULT_TIMEOUT_SECS: i64 = 30 * 60;

/// The warehouse a job builds in, without secrets (stored as JSON, shown as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum WarehouseSettings {
    /// dbt-duckdb with the project's database file, which lablink keeps (one directory per
    /// project below the setting `warehouse_root`); runs see that file and nothing else of the
    /// host.
    DuckDb {},
    /// dbt-postgres; the password is given separately and sealed.
    Postgres {
        host: String,
        port: u16,
        user: String,
        dbname: String,
    },
}

/// A job as users write it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CiJobForm {
    pub name: String,
    /// `ci` (merge requests, the default) or `merge` (pushes to the default branch).
    #[serde(default = "default_kind")]
    #[schema(value_type = String)]
    pub kind: JobKind,
    /// dbt command lines; empty for `dbt build --select state:modified+` with deferral to
    /// production (or `dbt build` when there is no production run yet).
    #[serde(default)]
    pub commands: Vec<String>,
    /// A branch name or glob (`release/*`); empty for the project's target branch.
    #[serde(default)]
    pub target_branch_filter: Option<String>,
    #[serde(default)]
    pub run_on_draft: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: i64,
    /// Environment variables; values of `DBT_ENV_SECRET_*` are redacted from logs.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub env: BTreeMap<String, SecretString>,
    pub warehouse: WarehouseSettings,
    /// The warehouse password (PostgreSQL); omitted on update to keep the stored one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub warehouse_password: Option<SecretString>,
    /// Keep one note on the merge request that says what changed (nodes, tests, data against
    /// production), edited after each run. On unless turned off.
    #[serde(default = "yes")]
    pub mr_note: bool,
    /// Merge requests from forks: `approval` (the default: a Maintainer approves each commit in
    /// lablink before it runs with the job's secrets) or `without_secrets` (`dbt parse` at once,
    /// with no warehouse and none of the job's variables).
    #[serde(default = "default_forks")]
    #[schema(value_type = String)]
    pub forks: ForkPolicy,
    /// Paths in the repository (prefixes) a merge request must change for the job to run;
    /// empty: the project's dbt directory (every path when it is the repository's root). A
    /// merge request that changes none of them gets a `skipped` status with the reason.
    #[serde(default)]
    pub watch_paths: Vec<String>,
    /// The comparison with production compares at most this many models (1–200)…
    #[serde(default = "default_compare_models")]
    pub compare_max_models: i64,
    /// …in at most this many seconds (1–3600); what is left is listed as not compared.
    #[serde(default = "default_compare_secs")]
    pub compare_timeout_secs: i64,
}

fn default_compare_models() -> i64 {
    20
}

fn default_compare_secs() -> i64 {
    300
}

fn default_forks() -> ForkPolicy {
    ForkPolicy::Approval
}

fn default_kind() -> JobKind {
    JobKind::Ci
}
fn yes() -> bool {
    true
}
fn default_timeout() -> i64 {
    DEFAULT_TIMEOUT_SECS
}

/// A job as shown: secrets are never returned, only the names of the variables.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CiJobView {
    pub id: i64,
    pub project_id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub kind: JobKind,
    pub commands: Vec<String>,
    pub target_branch_filter: Option<String>,
    pub run_on_draft: bool,
    pub enabled: bool,
    pub timeout_secs: i64,
    pub env_names: Vec<String>,
    pub warehouse: WarehouseSettings,
    pub has_warehouse_password: bool,
    pub mr_note: bool,
    #[schema(value_type = String)]
    pub forks: ForkPolicy,
    pub watch_paths: Vec<String>,
    pub compare_max_models: i64,
    pub compare_timeout_secs: i64,
    /// The commit status name in GitLab.
    pub status_name: String,
}

impl CiJobView {
    fn from_job(job: &CiJob) -> Result<CiJobView, ServiceError> {
        Ok(CiJobView {
            id: job.id,
            project_id: job.project_id.clone(),
            name: job.input.name.clone(),
            kind: job.input.kind,
            commands: job.input.commands.clone(),
            target_branch_filter: job.input.target_branch_filter.clone(),
            run_on_draft: job.input.run_on_draft,
            enabled: job.input.enabled,
            timeout_secs: job.input.timeout_secs,
            env_names: job.input.env.keys().cloned().collect(),
            warehouse: warehouse_settings(job)?,
            has_warehouse_password: job.input.warehouse_secret.is_some(),
            mr_note: job.input.mr_note,
            forks: job.input.forks,
            watch_paths: job.input.watch_paths.clone(),
            compare_max_models: job.input.compare_max_models,
            compare_timeout_secs: job.input.compare_timeout_secs,
            status_name: lablink_core::names::commit_status_name(&job.input.name),
        })
    }
}

pub(crate) fn warehouse_settings(job: &CiJob) -> Result<WarehouseSettings, ServiceError> {
    serde_json::from_str(&job.input.warehouse)
        .map_err(|e| ServiceError::Internal(format!("job {}: stored warehouse: {e}", job.id)))
}

/// The dbt adapter profile of a job, with its secret.
pub(crate) fn warehouse_profile(
    job: &CiJob,
    runs: &RunSettings,
) -> Result<WarehouseProfile, ServiceError> {
    Ok(match warehouse_settings(job)? {
        WarehouseSettings::DuckDb {} => WarehouseProfile::DuckDb {
            path: runs.duckdb_file(&job.project_id),
        },
        WarehouseSettings::Postgres {
            host,
            port,
            user,
            dbname,
        } => WarehouseProfile::Postgres(PostgresProfile {
            host,
            port,
            user,
            dbname,
            password: job
                .input
                .warehouse_secret
                .clone()
                .unwrap_or_else(|| SecretString::from("")),
        }),
    })
}

/// The domain's view of a job, with its effective target-branch filter.
pub(crate) fn job_spec(job: &CiJob, default_filter: &str) -> Result<CiJobSpec, ServiceError> {
    let filter = job
        .input
        .target_branch_filter
        .as_deref()
        .unwrap_or(default_filter);
    Ok(CiJobSpec {
        id: job.id,
        name: job.input.name.clone(),
        target_branch_filter: BranchFilter::new(filter)
            .map_err(|e| ServiceError::Internal(format!("job {}: {e}", job.id)))?,
        run_on_draft: job.input.run_on_draft,
        enabled: job.input.enabled,
        kind: job.input.kind,
        forks: job.input.forks,
    })
}

fn bad(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField {
        field,
        message: message.into(),
    }
}

fn validate(form: &CiJobForm) -> Result<(), ServiceError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(
            "name",
            format!("The job name must be 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(
            "name",
            "The job name may not contain control characters.",
        ));
    }
    for line in form.commands.iter().filter(|l| !l.trim().is_empty()) {
        DbtCommand::parse(line).map_err(|e| bad("commands", e.to_string()))?;
    }
    if let Some(filter) = form
        .target_branch_filter
        .as_deref()
        .filter(|f| !f.is_empty())
    {
        BranchFilter::new(filter).map_err(|e| bad("target_branch_filter", e.to_string()))?;
    }
    if !(1..=MAX_TIMEOUT_SECS).contains(&form.timeout_secs) {
        return Err(bad(
            "timeout_secs",
            format!("The timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds."),
        ));
    }
    for name in form.env.keys() {
        lablink_exec::dbt::check_env_name(name).map_err(|e| bad("env", format!("{e}.")))?;
    }
    for path in &form.watch_paths {
        let path = path.trim().trim_start_matches("./");
        if path.starts_with('/') || path.split('/').any(|seg| seg == "..") {
            return Err(bad(
                "watch_paths",
                format!(
                    "`{path}` is not a path inside the repository: give it relative to the repository's root, without `..`."
                ),
            ));
        }
    }
    if !(1..=200).contains(&form.compare_max_models) {
        return Err(bad(
            "compare_max_models",
            "Compare between 1 and 200 models.",
        ));
    }
    if !(1..=3600).contains(&form.compare_timeout_secs) {
        return Err(bad(
            "compare_timeout_secs",
            "The comparison's time budget is between 1 and 3600 seconds.",
        ));
    }
    match &form.warehouse {
        WarehouseSettings::Postgres {
            host, user, dbname, ..
        } if host.is_empty() || user.is_empty() || dbname.is_empty() => Err(bad(
            "warehouse",
            "PostgreSQL needs a host, a user and a database name.",
        )),
        _ => Ok(()),
    }
}

fn input(form: CiJobForm, kept_secret: Option<SecretString>) -> Result<CiJobInput, ServiceError> {
    validate(&form)?;
    let warehouse = serde_json::to_string(&form.warehouse)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let warehouse_secret = match form.warehouse {
        WarehouseSettings::DuckDb { .. } => None,
        WarehouseSettings::Postgres { .. } => form.warehouse_password.or(kept_secret),
    };
    Ok(CiJobInput {
        name: form.name.trim().to_owned(),
        kind: form.kind,
        commands: form
            .commands
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect(),
        target_branch_filter: form.target_branch_filter.filter(|f| !f.is_empty()),
        run_on_draft: form.run_on_draft,
        enabled: form.enabled,
        timeout_secs: form.timeout_secs,
        env: form.env,
        warehouse,
        warehouse_secret,
        mr_note: form.mr_note,
        forks: form.forks,
        watch_paths: form
            .watch_paths
            .iter()
            .map(|p| p.trim().trim_start_matches("./").to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        compare_max_models: form.compare_max_models,
        compare_timeout_secs: form.compare_timeout_secs,
    })
}

impl Services {
    async fn job_of_account(&self, caller: &Principal, job_id: i64) -> Result<CiJob, ServiceError> {
        self.db
            .ci_job(&self.keys, job_id)
            .await?
            .filter(|job| job.account_id == caller.account_id)
            .ok_or_else(|| ServiceError::NotFound("No such CI job.".into()))
    }

    async fn require_project(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(), ServiceError> {
        self.db
            .project(&caller.account_id, project_id)
            .await?
            .map(drop)
            .ok_or_else(|| ServiceError::NotFound("No such project.".into()))
    }

    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn list_ci_jobs(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Vec<CiJobView>, ServiceError> {
        self.require_project(caller, project_id).await?;
        let jobs = self.db.ci_jobs_of_project(&self.keys, project_id).await?;
        jobs.iter().map(CiJobView::from_job).collect()
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, ci_job_id = job_id),
    )]
    pub async fn get_ci_job(
        &self,
        caller: &Principal,
        job_id: i64,
    ) -> Result<CiJobView, ServiceError> {
        CiJobView::from_job(&self.job_of_account(caller, job_id).await?)
    }

    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn create_ci_job(
        &self,
        caller: &Principal,
        project_id: &str,
        form: CiJobForm,
    ) -> Result<CiJobView, ServiceError> {
        require(
            caller.role.can_write(),
            "Only developers and admins can manage CI jobs.",
        )?;
        self.require_project(caller, project_id).await?;
        let input = input(form, None)?;
        let id = self
            .db
            .create_ci_job(&self.keys, &caller.account_id, project_id, &input)
            .await?;
        self.audit_ci_job(caller, "ci_job.created", id, &input.name)
            .await?;
        self.get_ci_job(caller, id).await
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, ci_job_id = job_id),
    )]
    pub async fn update_ci_job(
        &self,
        caller: &Principal,
        job_id: i64,
        form: CiJobForm,
    ) -> Result<CiJobView, ServiceError> {
        require(
            caller.role.can_write(),
            "Only developers and admins can manage CI jobs.",
        )?;
        let existing = self.job_of_account(caller, job_id).await?;
        let input = input(form, existing.input.warehouse_secret)?;
        self.db.update_ci_job(&self.keys, job_id, &input).await?;
        self.audit_ci_job(caller, "ci_job.changed", job_id, &input.name)
            .await?;
        self.get_ci_job(caller, job_id).await
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, ci_job_id = job_id),
    )]
    pub async fn delete_ci_job(&self, caller: &Principal, job_id: i64) -> Result<(), ServiceError> {
        require(
            caller.role.can_write(),
            "Only developers and admins can manage CI jobs.",
        )?;
        let job = self.job_of_account(caller, job_id).await?;
        self.db.delete_ci_job(job_id).await?;
        self.audit_ci_job(caller, "ci_job.deleted", job_id, &job.input.name)
            .await
    }

    async fn audit_ci_job(
        &self,
        caller: &Principal,
        action: &str,
        job_id: i64,
        name: &str,
    ) -> Result<(), ServiceError> {
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action,
            target: Some(format!("CI job {name} (#{job_id})")),
            ..AuditEvent::default()
        })
        .await
    }
}
