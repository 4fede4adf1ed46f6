//! What users see of runs: lists per project and merge request, one run with its steps, log and
//! artifacts. Every read checks that the run belongs to the caller's account.

use lablink_core::run::RunState;
use lablink_exec::sandbox::Isolation;
use lablink_store::Principal;
use lablink_store::runs::{LogLine, Run, RunStep, Trigger};
use serde::Serialize;

use crate::{ServiceError, Services};

/// Artifacts a run may have.
pub const ARTIFACT_NAMES: [&str; 2] = ["run_results.json", "manifest.json"];
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
    /// queued, starting, running, success, error or cancelled
    #[schema(value_type = String)]
    pub state: RunState,
    pub reason: Option<String>,
    pub attempts: i64,
    /// Why no status goes to GitLab, or why posting it failed.
    pub status_note: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
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
            reason: run.reason,
            attempts: run.attempts,
            status_note: run.status_note,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
        })
    }

    async fn run_of_account(&self, caller: &Principal, run_id: &str) -> Result<Run, ServiceError> {
        self.db
            .run(run_id)
            .await?
            .filter(|r| r.account_id == caller.account_id)
            .ok_or_else(|| ServiceError::NotFound("No such run.".into()))
    }

    /// The newest runs of a project, or of one of its merge requests.
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
        })
    }

    /// Log lines from `after` on (sequence numbers), at most `limit`.
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
