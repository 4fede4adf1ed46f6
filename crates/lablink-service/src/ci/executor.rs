//! Executing a claimed run: fetch the exact commit into the repository's bare cache with the
//! deploy token (unless the cache has it), check it out in a worktree of the CI job that no other
//! run holds meanwhile ([`super::worktrees`]), write the private `profiles.yml` with
//! the schema override, run each dbt command with the job's timeout in its own process group,
//! stream the redacted output to the database and keep the artifacts.
//!
//! The lease is renewed while the run is alive; the renewal also reads `cancel_requested`, so a
//! cancellation asked on any replica kills the process group here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lablink_core::ci::RunMode;
use lablink_core::names::ci_schema_name;
use lablink_core::run::{CancelReason, FailureReason, RunEvent, RunState};
use lablink_exec::dbt::{
    Artifacts, DbtCommand, DbtError, DbtInstall, DbtRunSetup, DbtTarget, DbtWorkspace,
    WarehouseProfile,
};
use lablink_exec::limits::LimitExceeded;
use lablink_exec::sandbox::{Isolation, SandboxUnavailable};
use lablink_exec::{
    ExecError, Git, GitConfig, GitCredential, LogLine, Remote, Stream, Termination, WorktreeState,
};
use lablink_store::ci_jobs::CiJob;
use lablink_store::runs::{CiRepository, Holder, ProductionRun, Run, StepOutcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::jobs::warehouse_profile;
use super::report::ReportInput;
use super::worktrees::CheckoutError;
use crate::{ServiceError, Services};

/// Where runs work on this replica and how they hold their lease.
#[derive(Debug)]
pub struct CiRuntime {
    /// Bare caches, worktrees and run directories live below it.
    pub work_dir: PathBuf,
    /// This replica's worker name in leases.
    pub worker_id: String,
    pub lease: Duration,
    pub git: Git,
    /// One lock per bare cache: git must not fetch into one cache twice at once.
    cache_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One lock per DuckDB file: DuckDB allows a single writer per file, so two runs (or a run
    /// and a schema drop) on one file take turns instead of failing on DuckDB's file lock.
    warehouse_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Set once a sandbox started on this host; until then every run checks (and a run that
    /// cannot have one fails with the reason).
    sandbox_works: tokio::sync::OnceCell<()>,
    /// Cancelled when this replica stops and its grace period ran out: runs under way are
    /// stopped and given back to the queue for another worker.
    pub hand_back: CancellationToken,
}

impl CiRuntime {
    pub fn new(work_dir: PathBuf, worker_id: String) -> CiRuntime {
        let git = Git::new(GitConfig::new(work_dir.join("git-home")));
        CiRuntime {
            work_dir,
            worker_id,
            lease: Duration::from_secs(30),
            git,
            cache_locks: Mutex::default(),
            warehouse_locks: Mutex::default(),
            sandbox_works: tokio::sync::OnceCell::new(),
            hand_back: CancellationToken::new(),
        }
    }

    /// Fails closed: `Err` with the reason when runs cannot get a sandbox on this host.
    pub(crate) async fn sandbox_ready(
        &self,
        isolation: Isolation,
    ) -> Result<(), SandboxUnavailable> {
        match isolation {
            Isolation::None => Ok(()),
            Isolation::Bubblewrap => self
                .sandbox_works
                .get_or_try_init(lablink_exec::sandbox::probe)
                .await
                .map(|_| ()),
        }
    }

    /// Holds the warehouse for one dbt invocation when the warehouse cannot be shared (a DuckDB
    /// file); `None` for warehouses that take concurrent writers.
    pub(crate) async fn hold_warehouse(
        &self,
        warehouse: &WarehouseProfile,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let WarehouseProfile::DuckDb { path } = warehouse else {
            return None;
        };
        let lock = {
            let mut locks = self
                .warehouse_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(path.clone()).or_default())
        };
        Some(lock.lock_owned().await)
    }

    pub(crate) fn cache_lock(&self, repository_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.cache_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(repository_id.to_owned()).or_default())
    }

    /// Held while a repository's worktrees are added, moved or checked out: git lists every
    /// worktree of the cache when it adds or moves one, and fails on one being made at the same
    /// moment ("failed to read worktrees/<name>/commondir").
    pub(crate) fn worktree_admin_lock(&self, repository_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.cache_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            locks
                .entry(format!("{repository_id} worktrees"))
                .or_default(),
        )
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The cancellation reasons stored in `runs.cancel_reason`, so any replica can turn them back
/// into the domain's [`CancelReason`].
pub(crate) fn encode_cancel(reason: &CancelReason) -> String {
    match reason {
        CancelReason::SupersededBy { sha } => format!("superseded:{sha}"),
        CancelReason::MergeRequestClosed => "closed".into(),
        CancelReason::ByUser { username } => format!("user:{username}"),
        CancelReason::JobGone => "job_gone".into(),
    }
}

pub(crate) fn decode_cancel(text: &str) -> CancelReason {
    if let Some(sha) = text.strip_prefix("superseded:") {
        CancelReason::SupersededBy { sha: sha.into() }
    } else if let Some(username) = text.strip_prefix("user:") {
        CancelReason::ByUser {
            username: username.into(),
        }
    } else if text == "closed" {
        CancelReason::MergeRequestClosed
    } else {
        CancelReason::JobGone
    }
}

/// How the dbt part of a run ended.
enum Outcome {
    Succeeded,
    Failed(FailureReason),
    Cancelled,
    /// Nothing to run (why, in words).
    Skipped(String),
}

/// Why a run could not get as far as an outcome of dbt's: a setup problem, in words for the run
/// page.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("the CI job was deleted")]
    JobDeleted,
    #[error("the repository was removed")]
    RepositoryRemoved,
    #[error("the repository has no deploy token; reconnect it")]
    NoDeployToken,
    #[error("could not reserve a worktree: {0}")]
    Worktree(ExecError),
    #[error("no sandbox for dbt: {0}")]
    Sandbox(#[from] SandboxUnavailable),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Dbt(#[from] DbtError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<lablink_store::StoreError> for SetupError {
    fn from(e: lablink_store::StoreError) -> Self {
        SetupError::Service(e.into())
    }
}

/// Said in the log of every run that runs without a sandbox.
pub const NOT_ISOLATED: &str = "WARNING: this run is not isolated (setting run_isolation = \"none\"): \
     its dbt processes run as lablink's own user and can read what lablink can read";

/// The dbt side of a run, ready to go: the workspace with its profile, the target, the commands.
pub(crate) struct PreparedDbt {
    workspace: DbtWorkspace,
    pub target: DbtTarget,
    commands: Vec<DbtCommand>,
    /// What a merge request's full run is compared with: the latest successful run of the
    /// project's merge job (`None` for other runs, and while there is none).
    pub production: Option<ProductionRun>,
    defers_to_production: bool,
}

/// The run directory holds the profile with the warehouse secrets: it goes when the run ends.
fn remove_run_dir(run_dir: &Path) {
    match std::fs::remove_dir_all(run_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %run_dir.display(), error = %e, "cannot remove a run directory")
        }
    }
}

/// Writes a line of lablink's own into the run's log. The log writer outlives every sender, so a
/// closed channel only means the run is being torn down: the line has nowhere to go.
pub(crate) async fn say(log: &mpsc::Sender<LogLine>, text: impl Into<String>) {
    let line = LogLine {
        stream: Stream::Stdout,
        line: format!("[lablink] {}", text.into()),
    };
    if log.send(line).await.is_err() {
        tracing::debug!("the run's log writer is gone");
    }
}

impl Services {
    /// Claims one queued run and executes it to the end. `false` when nothing was queued.
    pub async fn execute_next_run(&self, rt: &CiRuntime) -> Result<bool, ServiceError> {
        let claimed = self
            .db
            .claim_run(
                &rt.worker_id,
                rt.lease_ms(),
                &lablink_store::runs::Transition {
                    from: RunState::Queued,
                    to: RunState::Starting,
                    reason: &RunEvent::Claimed.to_string(),
                    approved_by: None,
                },
            )
            .await?;
        let Some(run) = claimed else {
            return Ok(false);
        };
        self.execute(rt, run).await?;
        Ok(true)
    }

    // Every line the run's execution logs, on whichever worker, names the run.
    #[tracing::instrument(
        name = "run",
        skip_all,
        fields(run_id = %run.id, ci_job_id = run.ci_job_id),
    )]
    async fn execute(&self, rt: &CiRuntime, run: Run) -> Result<(), ServiceError> {
        let started = Instant::now();
        let cancel = CancellationToken::new();
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn(
            heartbeat(
                self.clone(),
                run.id.clone(),
                rt.worker_id.clone(),
                rt.lease,
                cancel.clone(),
                lost.clone(),
            )
            // Its warnings (a lease that could not be renewed) name the run too.
            .in_current_span(),
        );
        // Handing back stops the run like a cancellation; what is recorded differs (below).
        let stop_for_hand_back = {
            let (hand_back, cancel) = (rt.hand_back.clone(), cancel.clone());
            tokio::spawn(async move {
                hand_back.cancelled().await;
                cancel.cancel();
            })
        };
        let (sink, lines) = mpsc::channel::<LogLine>(1024);
        let first_seq = self.db.next_log_seq(&run.id).await?;
        let writer = tokio::spawn(
            write_logs(self.clone(), run.id.clone(), first_seq, lines).in_current_span(),
        );

        let run_dir = rt.work_dir.join("runs").join(&run.id);
        let mut state = RunState::Starting;
        // The job's worktree stays for its next run, which updates it in place (much cheaper
        // than a new checkout); the claim keeps concurrent runs of the job out of it until the
        // run ends.
        let outcome = match rt.claim_worktree(run.ci_job_id) {
            Ok(worktree) => {
                self.run_dbt(
                    rt,
                    &run,
                    worktree.path(),
                    &run_dir,
                    &mut state,
                    &sink,
                    &cancel,
                )
                .await
            }
            Err(e) => Err(SetupError::Worktree(e)),
        };
        remove_run_dir(&run_dir);
        drop(sink);
        if let Err(e) = writer.await {
            tracing::warn!(run = %run.id, error = %e, "the run's log writer stopped");
        }
        heartbeat.abort();
        stop_for_hand_back.abort();

        if lost.is_cancelled() {
            tracing::warn!(run = %run.id, "lost the run's lease; another worker owns it now");
            return Ok(());
        }
        if rt.hand_back.is_cancelled() && cancel.is_cancelled() {
            tracing::info!(run = %run.id, "stopping: the run goes back to the queue");
            self.apply_run_event(
                &run.id,
                state,
                Holder::Worker(&rt.worker_id),
                &RunEvent::HandedBack,
            )
            .await?;
            record_run_end("handed_back", started.elapsed());
            return Ok(());
        }
        // Whatever step a cancellation interrupted (git, dbt) fails in its own way; the cause is
        // the cancellation.
        let outcome = if cancel.is_cancelled() {
            Ok(Outcome::Cancelled)
        } else {
            outcome
        };
        let event = match outcome {
            Ok(Outcome::Succeeded) => RunEvent::Succeeded,
            Ok(Outcome::Failed(reason)) => RunEvent::Failed(reason),
            Ok(Outcome::Skipped(why)) => RunEvent::Skipped { why },
            Ok(Outcome::Cancelled) => {
                let reason = self
                    .db
                    .run(&run.id)
                    .await?
                    .and_then(|r| r.cancel_reason)
                    .map_or(CancelReason::JobGone, |text| decode_cancel(&text));
                RunEvent::Cancelled(reason)
            }
            Err(setup) => RunEvent::Failed(FailureReason::Setup(setup.to_string())),
        };
        let ended_as =
            lablink_core::run::transition(state, &event).map_or("unknown", RunState::as_str);
        self.apply_run_event(&run.id, state, Holder::Worker(&rt.worker_id), &event)
            .await?;
        record_run_end(ended_as, started.elapsed());
        Ok(())
    }

    /// Everything from fetching the commit to the artifacts.
    #[allow(clippy::too_many_arguments)]
    async fn run_dbt(
        &self,
        rt: &CiRuntime,
        run: &Run,
        worktree: &Path,
        run_dir: &Path,
        state: &mut RunState,
        log: &mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, SetupError> {
        let job = self
            .db
            .ci_job(&self.keys, run.ci_job_id)
            .await?
            .ok_or(SetupError::JobDeleted)?;
        let repository = self
            .db
            .ci_repository(&self.keys, &run.repository_id)
            .await?
            .ok_or(SetupError::RepositoryRemoved)?;
        say(log, format!("checking out {} ({})", run.sha, run.ref_name)).await;
        let remote = self.deploy_remote(&repository).await?;
        let how = rt
            .checkout(&repository.id, &remote, &run.sha, worktree, cancel)
            .await?;
        say(
            log,
            match how {
                WorktreeState::Reused => "updated the worktree of the job's previous run",
                WorktreeState::Created => "checked out into a new worktree",
                WorktreeState::Spare => "checked out into the repository's spare worktree",
            },
        )
        .await;
        if cancel.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        if let Some(why) = self
            .unwatched(rt, run, &job, &repository, &remote, log, cancel)
            .await
        {
            say(log, format!("nothing to run: {why}")).await;
            return Ok(Outcome::Skipped(why));
        }
        let isolation = self.settings.runs.isolation;
        rt.sandbox_ready(isolation).await.inspect_err(|_| {
            metrics::counter!("lablink_sandbox_failures_total").increment(1);
        })?;
        if isolation == Isolation::None {
            say(log, NOT_ISOLATED).await;
        }
        let dbt = self
            .prepare_dbt(run, &job, &repository, worktree, run_dir)
            .await?;
        if run.mode == RunMode::WithoutSecrets {
            say(
                log,
                "from a fork: dbt parse only, without the job's warehouse or variables",
            )
            .await;
        }
        if run.mr_iid.is_some() && run.mode == RunMode::Full && dbt.production.is_none() {
            say(
                log,
                "no production yet (no successful run of the project's merge job): building \
                 everything, comparing nothing",
            )
            .await;
        }
        say(
            log,
            format!(
                "building into schema {}{}",
                dbt.target.schema,
                if dbt.defers_to_production {
                    ", deferring to production"
                } else {
                    ""
                }
            ),
        )
        .await;
        // Held until the commands end (dropped with this function's frame).
        let _warehouse = tokio::select! {
            guard = rt.hold_warehouse(&dbt.target.warehouse) => guard,
            () = cancel.cancelled() => return Ok(Outcome::Cancelled),
        };
        let dbt_started = self
            .apply_run_event(
                &run.id,
                RunState::Starting,
                Holder::Worker(&rt.worker_id),
                &RunEvent::DbtStarted,
            )
            .await?;
        if !dbt_started {
            return Ok(Outcome::Cancelled);
        }
        *state = RunState::Running;
        let warm = if run.mode == RunMode::Full && run.mr_iid.is_some() {
            self.warm_compare(&job, &dbt, run_dir, cancel)
        } else {
            None
        };
        let outcome = self.run_commands(run, &job, &dbt, log, cancel).await?;
        let artifacts = self.keep_artifacts(&run.id, &dbt.workspace).await;
        if run.mode == RunMode::Full
            && run.mr_iid.is_some()
            && !matches!(outcome, Outcome::Cancelled)
            && let (Some(manifest), Some(results)) = (artifacts.manifest, artifacts.run_results)
        {
            self.record_run_schemas(run, &manifest, &results).await?;
            self.report_what_changed(
                &ReportInput {
                    run,
                    job: &job,
                    dbt: &dbt,
                    manifest: &manifest,
                    run_results: &results,
                    log,
                },
                warm,
            )
            .await?;
        }
        Ok(outcome)
    }

    /// Why a merge request's run has nothing to do: it changes no path the job watches (by
    /// default the project's dbt directory). When the diff cannot be told, the run goes ahead.
    #[allow(clippy::too_many_arguments)]
    async fn unwatched(
        &self,
        rt: &CiRuntime,
        run: &Run,
        job: &CiJob,
        repository: &CiRepository,
        remote: &Remote,
        log: &mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let target = run
            .target_branch
            .as_deref()
            .filter(|_| run.mr_iid.is_some())?;
        let paths = watched_paths(job, repository);
        if paths.is_empty() {
            return None;
        }
        match rt
            .changes_under(&repository.id, remote, target, &run.sha, &paths, cancel)
            .await
        {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "the merge request changes nothing under {} (the paths the CI job watches)",
                paths.join(", ")
            )),
            Err(e) => {
                say(
                    log,
                    format!("cannot tell which paths the merge request changes ({e}); running"),
                )
                .await;
                None
            }
        }
    }

    /// The run's dbt workspace (profile with the run's schema, the job's environment), and the
    /// commands: `dbt deps` when the project has packages, then the job's, deferring to the
    /// production manifest on merge requests when there is one.
    async fn prepare_dbt(
        &self,
        run: &Run,
        job: &CiJob,
        repository: &CiRepository,
        worktree: &Path,
        run_dir: &Path,
    ) -> Result<PreparedDbt, SetupError> {
        let install = DbtInstall::locate()?;
        // A fork's commit run without secrets gets no warehouse and none of the job's variables.
        let full = run.mode == RunMode::Full;
        let target = DbtTarget {
            name: "default".into(),
            schema: run_schema(job, run.mr_iid),
            threads: 4,
            warehouse: if full {
                warehouse_profile(job, &self.settings.runs)?
            } else {
                WarehouseProfile::None
            },
        };
        let env: Vec<_> = if full {
            job.input
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let subdir = Some(repository.project_subdirectory.as_str()).filter(|s| !s.is_empty());
        let workspace = DbtWorkspace::prepare(
            install,
            DbtRunSetup {
                worktree,
                project_subdir: subdir,
                run_dir,
                target: &target,
                env: &env,
                isolation: self.settings.runs.isolation,
                limits: self.settings.runs.limits,
            },
        )?;
        let production = match run.mr_iid {
            Some(_) if full => self.db.production_run(&run.project_id).await?,
            _ => None,
        };
        let state_dir = production
            .as_ref()
            .map(|p| workspace.install_production_manifest(p.manifest.as_bytes()))
            .transpose()?;
        let mut commands = Vec::new();
        if workspace.needs_deps() {
            commands.push(DbtCommand::deps());
        }
        if full {
            commands.extend(DbtCommand::for_job(
                &job.input.commands,
                state_dir.as_deref(),
            )?);
        } else {
            commands.push(DbtCommand::parse_only());
        }
        Ok(PreparedDbt {
            workspace,
            target,
            commands,
            production,
            defers_to_production: state_dir.is_some(),
        })
    }

    /// Runs the commands in order within the job's timeout, each a step of the run, until one
    /// does not succeed.
    async fn run_commands(
        &self,
        run: &Run,
        job: &CiJob,
        dbt: &PreparedDbt,
        log: &mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, SetupError> {
        let timeout_secs = u64::try_from(job.input.timeout_secs).unwrap_or(1);
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        for (position, command) in (0_i64..).zip(&dbt.commands) {
            let shown = command.to_string();
            self.db.start_run_step(&run.id, position, &shown).await?;
            say(log, format!("$ {shown}")).await;
            let left = deadline.saturating_duration_since(Instant::now());
            let termination = dbt
                .workspace
                .run(
                    command,
                    left.max(Duration::from_millis(1)),
                    log.clone(),
                    cancel,
                )
                .await?;
            let (step, stop) = match termination {
                t if t.success() => (StepOutcome::Success, None),
                Termination::Cancelled => (StepOutcome::Cancelled, Some(Outcome::Cancelled)),
                Termination::TimedOut => (
                    StepOutcome::TimedOut,
                    Some(Outcome::Failed(FailureReason::TimedOut {
                        seconds: timeout_secs,
                    })),
                ),
                Termination::Exited(_) => (
                    StepOutcome::Error,
                    Some(Outcome::Failed(FailureReason::CommandFailed {
                        command: shown,
                        exit_code: termination.code(),
                    })),
                ),
                Termination::LimitExceeded(exceeded) => {
                    if let LimitExceeded::Log(_) = exceeded {
                        say(log, format!("the log stops here: {exceeded}")).await;
                    }
                    (
                        StepOutcome::Stopped,
                        Some(Outcome::Failed(FailureReason::LimitExceeded {
                            command: shown,
                            limit: exceeded.to_string(),
                        })),
                    )
                }
            };
            self.db.finish_run_step(&run.id, position, step).await?;
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
        Ok(Outcome::Succeeded)
    }

    /// The repository as git reaches it with its deploy token.
    async fn deploy_remote(&self, repository: &CiRepository) -> Result<Remote, SetupError> {
        let (Some(username), Some(token)) = (
            repository.deploy_token_username.clone(),
            repository.deploy_token.clone(),
        ) else {
            return Err(SetupError::NoDeployToken);
        };
        Ok(self
            .git_remote(
                &repository.gitlab_instance_url,
                &repository.http_url_to_repo,
                Some(GitCredential::new(username, token)),
            )
            .await?)
    }

    /// Stores the run's artifacts and returns them.
    async fn keep_artifacts(&self, run_id: &str, workspace: &DbtWorkspace) -> Artifacts {
        let artifacts = match workspace.artifacts() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(run = run_id, error = %e, "could not read the run's artifacts");
                return Artifacts::default();
            }
        };
        for (name, content) in [
            ("run_results.json", &artifacts.run_results),
            ("manifest.json", &artifacts.manifest),
        ] {
            if let Some(content) = content
                && let Err(e) = self.db.save_run_artifact(run_id, name, content).await
            {
                tracing::warn!(run = run_id, error = %e, "could not store {name}");
            }
        }
        artifacts
    }
}

/// The paths a job watches: its own, else the project's dbt directory (none: every path).
fn watched_paths(job: &CiJob, repository: &CiRepository) -> Vec<String> {
    if job.input.watch_paths.is_empty() {
        let subdir = repository.project_subdirectory.trim_matches('/');
        if subdir.is_empty() {
            Vec::new()
        } else {
            vec![subdir.to_owned()]
        }
    } else {
        job.input.watch_paths.clone()
    }
}

/// The schema a run builds into: the merge request's CI schema, or the merge job's own schema.
pub(crate) fn run_schema(job: &CiJob, mr_iid: Option<i64>) -> String {
    match mr_iid {
        Some(iid) => ci_schema_name(job.id, iid),
        None => format!("lablink_merge_{}", job.id),
    }
}

/// Counts one execution of a run (an attempt, on this worker) by the state it ended in
/// (`success`, `error`, `cancelled`, `skipped`, or `handed_back`), with how long it took.
fn record_run_end(outcome: &'static str, took: Duration) {
    metrics::counter!("lablink_runs_finished_total", "outcome" => outcome).increment(1);
    metrics::histogram!("lablink_run_duration_seconds", "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// Renews the lease every third of it; cancels the run when a cancellation was asked for, and
/// also when the lease was lost (then `lost` tells the executor not to record an outcome).
async fn heartbeat(
    services: Services,
    run_id: String,
    worker: String,
    lease: Duration,
    cancel: CancellationToken,
    lost: CancellationToken,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_millis(500).min(lease / 3));
    loop {
        tick.tick().await;
        match services
            .db
            .renew_run_lease(&run_id, &worker, lease_ms)
            .await
        {
            Ok(Some(None)) => {}
            Ok(Some(Some(_reason))) => cancel.cancel(),
            Ok(None) => {
                lost.cancel();
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "lease renewal failed"),
        }
    }
}

/// Streams log lines into the database in small batches.
async fn write_logs(
    services: Services,
    run_id: String,
    mut seq: i64,
    mut lines: mpsc::Receiver<LogLine>,
) {
    const BATCH: usize = 200;
    let mut batch = Vec::with_capacity(BATCH);
    while lines.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<(String, String)> = batch
            .drain(..)
            .map(|l| {
                let stream = match l.stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                (stream.to_owned(), l.line)
            })
            .collect();
        if let Err(e) = services.db.append_run_logs(&run_id, seq, &rows).await {
            tracing::warn!(run = %run_id, error = %e, "could not store log lines");
        }
        seq += rows.len() as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reasons_survive_the_database() {
        for reason in [
            CancelReason::SupersededBy { sha: "ab12".into() },
            CancelReason::MergeRequestClosed,
            CancelReason::ByUser {
                username: "ada".into(),
            },
            CancelReason::JobGone,
        ] {
            assert_eq!(decode_cancel(&encode_cancel(&reason)), reason);
        }
    }
}
