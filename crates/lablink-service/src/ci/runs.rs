//! What users see of runs: lists per project and merge request, one run with its steps, log and
//! artifacts. Every read checks that the run belongs to the caller's account.

use lablink_core::ci::RunMode;
use lablink_core::report::Report;
use lablink_core::run::{CancelReason, RunEvent, RunState};
use lablink_exec::sandbox::Isolation;
use lablink_store::Principal;
use lablink_store::audit::AuditEvent;
use lablink_store::ledger::LedgerSchema;
use lablink_store::queue::Task;
use lablink_store::runs::{Holder, LogLine, Run, RunStep, Trigger};
use serde::Serialize;

use super::report::REPORT_ARTIFACT;
use crate::error::require;
use crate::repositories::posting::require_gitlab_maintainer;
use crate::{ServiceError, Services};

/// Artifacts a run may have.
pub const ARTIFACT_NAMES: [&str; 3] = ["run_results.json", "manifest.json", REPORT_ARTIFACT];
const LIST_LIMIT: i64 = 100;
const MAX_LOG_PAGE: i64 = 5000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub ci_job_id: i64,
    pub job_name: String,
    pub project_id: String,
    pub sha: String,
    pub ref_name: String,
    pub mr_iid: Option<i64>,
    /// webhook or reconciliation
    #[schema(value_type = String)]
    pub triggered_by: Trigger,
    /// awaiting_approval (a fork's commit), queued, starting, running, success, error or
    /// cancelled
    #[schema(value_type = String)]
    pub state: RunState,
    /// full, or without_secrets (a fork's commit: `dbt parse` with no warehouse or variables)
    #[schema(value_type = String)]
    pub mode: RunMode,
    /// Who approved a fork's commit to run (`@username` in GitLab).
    pub approved_by: Option<String>,
    pub reason: Option<String>,
    pub attempts: i64,
    /// Why no status goes to GitLab, or why posting it failed.
    pub status_note: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl RunSummary {
    /// A fork's commit waiting for a Maintainer's approval.
    pub fn awaits_approval(&self) -> bool {
        self.state == RunState::AwaitingApproval
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub position: i64,
    pub command: String,
    pub outcome: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLineView {
    pub seq: i64,
    pub stream: String,
    pub line: String,
    pub at: i64,
}

/// One run with everything its page shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run: RunSummary,
    pub status_name: String,
    /// The commit status GitLab should show, and the one it confirmed.
    pub status_wanted: Option<String>,
    pub status_sent: Option<String>,
    pub status_error: Option<String>,
    pub steps: Vec<StepView>,
    pub log_tail: Vec<LogLineView>,
    pub artifacts: Vec<String>,
    pub hook_warning: Option<String>,
    /// Set while this host runs CI without a sandbox (setting `run_isolation = "none"`).
    pub isolation_warning: Option<&'static str>,
    /// What a merge request's run changed against production (the merge request note's
    /// content).
    #[schema(value_type = Option<Object>)]
    pub report: Option<Report>,
    /// The warehouse schemas of the run's merge request and job (from the ledger).
    pub schemas: Vec<SchemaView>,
}

/// A schema a merge request's runs made in the warehouse.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaView {
    /// Empty when the warehouse has no databases.
    pub database: String,
    pub schema: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// live, due (its merge request closed; the sweep drops it), dropped, or drop_failed
    pub state: &'static str,
    pub drop_error: Option<String>,
}

impl From<LedgerSchema> for SchemaView {
    fn from(s: LedgerSchema) -> Self {
        let state = match (&s.dropped_at, &s.drop_error, &s.mr_closed_at) {
            (Some(_), _, _) => "dropped",
            (None, Some(_), _) => "drop_failed",
            (None, None, Some(_)) => "due",
            (None, None, None) => "live",
        };
        SchemaView {
            database: s.database_name,
            schema: s.schema_name,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            state,
            drop_error: s.drop_error,
        }
    }
}

impl From<RunStep> for StepView {
    fn from(s: RunStep) -> Self {
        StepView {
            position: s.position,
            command: s.command,
            outcome: s.outcome,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

impl From<LogLine> for LogLineView {
    fn from(l: LogLine) -> Self {
        LogLineView {
            seq: l.seq,
            stream: l.stream,
            line: l.line,
            at: l.at,
        }
    }
}

impl Services {
    async fn summary(&self, run: Run) -> Result<RunSummary, ServiceError> {
        let job_name = self
            .db
            .ci_job(&self.keys, run.ci_job_id)
            .await?
            .map_or_else(|| format!("job {}", run.ci_job_id), |j| j.input.name);
        Ok(RunSummary {
            id: run.id,
            ci_job_id: run.ci_job_id,
            job_name,
            project_id: run.project_id,
            sha: run.sha,
            ref_name: run.ref_name,
            mr_iid: run.mr_iid,
            triggered_by: run.triggered_by,
            state: run.state,
            mode: run.mode,
            approved_by: run.approved_by,
            reason: run.reason,
            attempts: run.attempts,
            status_note: run.status_note,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
        })
    }

    /// A person stops an active run (queued, waiting for approval, starting or running); its
    /// commit status becomes `canceled` in GitLab like any cancelled run's.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn cancel_run_by_user(
        &self,
        caller: &Principal,
        run_id: &str,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot cancel runs.",
        )?;
        let run = self.run_of_account(caller, run_id).await?;
        if run.state.is_terminal() {
            return Err(ServiceError::Conflict(format!(
                "This run has already ended ({}); there is nothing to cancel.",
                run.state
            )));
        }
        let reason = CancelReason::ByUser {
            username: caller.username.clone(),
        };
        self.cancel_run_now(&run.id, run.state, &reason).await?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "ci.run.cancelled",
            target: Some(format!("run {}", run.id)),
            detail: format!(
                "run {} at {} cancelled by {}",
                run.id, run.sha, caller.username
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// A person runs an ended run again, from the beginning (a flaky warehouse, a cancelled
    /// run): its log and artifacts are replaced and GitLab's status goes back to pending. A
    /// fork's commit that nobody approved waits for a Maintainer's approval again.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn rerun_run(
        &self,
        caller: &Principal,
        run_id: &str,
        client_ip: Option<&str>,
    ) -> Result<RunSummary, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot run CI jobs again.",
        )?;
        let run = self.run_of_account(caller, run_id).await?;
        if !run.state.is_terminal() {
            return Err(ServiceError::Conflict(format!(
                "This run has not ended yet ({}): cancel it first, or wait for it to end.",
                run.state
            )));
        }
        let job = self
            .db
            .ci_job(&self.keys, run.ci_job_id)
            .await?
            .filter(|job| job.input.enabled)
            .ok_or_else(|| {
                ServiceError::Conflict(
                    "The run's CI job was deleted or disabled: it cannot run again.".into(),
                )
            })?;
        let event = RunEvent::Rerun {
            by: caller.username.clone(),
            // Unknown (older runs) counts as needing one: a fork's code never gets the secrets
            // without a Maintainer's say.
            wait_for_approval: run.needs_approval != Some(false) && run.approved_by.is_none(),
        };
        let to = lablink_core::run::transition(run.state, &event)
            .map_err(|e| ServiceError::Conflict(format!("run {run_id}: {e}")))?;
        if !self
            .db
            .rerun_run(&run.id, run.state, to, &event.to_string())
            .await?
        {
            return Err(ServiceError::Conflict(
                "This run changed meanwhile; reload the page and try again.".into(),
            ));
        }
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "ci.run.rerun",
            target: Some(format!("run {}", run.id)),
            detail: format!(
                "run {} of {} at {} run again by {}",
                run.id, job.input.name, run.sha, caller.username
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        self.wake.runs.notify_one();
        self.wake.statuses.notify_one();
        // The run as it was made to run again (a worker may already have moved it on).
        self.summary(Run {
            state: to,
            reason: Some(event.to_string()),
            attempts: 0,
            started_at: None,
            finished_at: None,
            status_note: None,
            ..run
        })
        .await
    }

    /// A Maintainer of the target project in GitLab (checked now, with the caller's own GitLab
    /// account) lets a fork's commit run with the job's secrets. One approval is for one commit:
    /// a newer commit of the merge request waits again.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn approve_fork_run(
        &self,
        caller: &Principal,
        run_id: &str,
        client_ip: Option<&str>,
    ) -> Result<RunSummary, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot approve runs.",
        )?;
        let run = self.run_of_account(caller, run_id).await?;
        if run.state != RunState::AwaitingApproval {
            return Err(ServiceError::Conflict(format!(
                "This run is not waiting for an approval: it is {}.",
                run.state
            )));
        }
        let repository = self
            .db
            .repository(&run.repository_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("The run's repository is gone.".into()))?;
        let gitlab = self.user_gitlab(caller).await?;
        let role = require_gitlab_maintainer(
            &gitlab,
            repository.gitlab_project_id,
            &repository.path_with_namespace,
            "approve a fork's commit",
        )
        .await?
        .label();
        let by = format!("@{}", gitlab.username);
        let approved = self
            .apply_run_event(
                &run.id,
                RunState::AwaitingApproval,
                Holder::Anyone,
                &RunEvent::Approved { by: by.clone() },
            )
            .await?;
        if !approved {
            return Err(ServiceError::Conflict(
                "This run stopped waiting meanwhile (a newer commit or a close cancelled it)."
                    .into(),
            ));
        }
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "ci.fork_run.approved",
            target: Some(format!("run {}", run.id)),
            detail: format!(
                "run {} of {}!{} at {} from a fork approved by {by} (GitLab {role})",
                run.id,
                repository.path_with_namespace,
                run.mr_iid.unwrap_or_default(),
                run.sha
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        self.wake.runs.notify_one();
        self.wake.statuses.notify_one();
        let run = self.run_of_account(caller, run_id).await?;
        self.summary(run).await
    }

    async fn run_of_account(&self, caller: &Principal, run_id: &str) -> Result<Run, ServiceError> {
        self.db
            .run(run_id)
            .await?
            .filter(|r| r.account_id == caller.account_id)
            .ok_or_else(|| ServiceError::NotFound("No such run.".into()))
    }

    /// The newest runs of a project, or of one of its merge requests.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn list_runs(
        &self,
        caller: &Principal,
        project_id: &str,
        mr_iid: Option<i64>,
    ) -> Result<Vec<RunSummary>, ServiceError> {
        self.db
            .project(&caller.account_id, project_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("No such project.".into()))?;
        let runs = self
            .db
            .runs_of_project(project_id, mr_iid, LIST_LIMIT)
            .await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            out.push(self.summary(run).await?);
        }
        Ok(out)
    }

    /// The account's newest runs across its projects (the dashboard's recent activity).
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn recent_runs(
        &self,
        caller: &Principal,
        limit: i64,
    ) -> Result<Vec<RunSummary>, ServiceError> {
        let runs = self
            .db
            .recent_runs_of_account(&caller.account_id, limit.clamp(1, LIST_LIMIT))
            .await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            out.push(self.summary(run).await?);
        }
        Ok(out)
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn run_detail(
        &self,
        caller: &Principal,
        run_id: &str,
        log_tail: i64,
    ) -> Result<RunDetail, ServiceError> {
        let run = self.run_of_account(caller, run_id).await?;
        let steps = self.db.run_steps(run_id).await?;
        let tail = self
            .db
            .run_log_tail(run_id, log_tail.clamp(1, MAX_LOG_PAGE))
            .await?;
        let artifacts = self.db.run_artifact_names(run_id).await?;
        let delivery = self.db.run_status_delivery(run_id).await?;
        let hook_warning = self.db.hook_warning(&run.repository_id).await?;
        let report = self
            .db
            .run_artifact(run_id, REPORT_ARTIFACT)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok());
        let schemas = match run.mr_iid {
            Some(iid) => self.db.schemas_of_mr(run.ci_job_id, iid).await?,
            None => Vec::new(),
        };
        let run = self.summary(run).await?;
        let (status_wanted, status_sent, status_error) = match delivery {
            Some((wanted, sent, error)) => (Some(wanted), sent, error),
            None => (None, None, None),
        };
        Ok(RunDetail {
            status_name: lablink_core::names::commit_status_name(&run.job_name),
            run,
            status_wanted,
            status_sent,
            status_error,
            steps: steps.into_iter().map(StepView::from).collect(),
            log_tail: tail.into_iter().map(LogLineView::from).collect(),
            artifacts,
            hook_warning,
            isolation_warning: (self.settings.runs.isolation == Isolation::None)
                .then_some(super::executor::NOT_ISOLATED),
            report,
            schemas: schemas.into_iter().map(SchemaView::from).collect(),
        })
    }

    /// Drops the schemas of the run's merge request and job now instead of at its close or the
    /// sweep (queued: the drop happens in the background). The next run makes them again.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn drop_run_schemas(
        &self,
        caller: &Principal,
        run_id: &str,
        client_ip: Option<&str>,
    ) -> Result<(), ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot drop schemas.",
        )?;
        let run = self.run_of_account(caller, run_id).await?;
        let Some(mr_iid) = run.mr_iid else {
            return Err(ServiceError::Conflict(
                "This run built the merge job's own schema, which lablink never drops.".into(),
            ));
        };
        let task = Task::DropCiSchema {
            ci_job_id: run.ci_job_id,
            mr_iid,
        };
        self.enqueue(task, super::events::DROP_SCHEMA_ATTEMPTS)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "ci.schemas.drop_requested",
            target: Some(format!("run {}", run.id)),
            detail: format!(
                "schemas of merge request !{mr_iid} and CI job {} (run {})",
                run.ci_job_id, run.id
            ),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// Log lines from `after` on (sequence numbers), at most `limit`.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn run_log(
        &self,
        caller: &Principal,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LogLineView>, ServiceError> {
        self.run_of_account(caller, run_id).await?;
        let lines = self
            .db
            .run_logs(run_id, after.max(0), limit.clamp(1, MAX_LOG_PAGE))
            .await?;
        Ok(lines.into_iter().map(LogLineView::from).collect())
    }

    /// `run_results.json` or `manifest.json` of a run.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, run_id = %run_id),
    )]
    pub async fn run_artifact(
        &self,
        caller: &Principal,
        run_id: &str,
        name: &str,
    ) -> Result<String, ServiceError> {
        self.run_of_account(caller, run_id).await?;
        if !ARTIFACT_NAMES.contains(&name) {
            return Err(ServiceError::NotFound(format!("No artifact named {name}.")));
        }
        self.db
            .run_artifact(run_id, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("This run has no {name}.")))
    }
}
