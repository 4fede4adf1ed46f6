//! The workspace's dbt command box: the commands CI jobs allow, run in the sandbox on a copy of
//! the user's checkout (saved changes included), against the user's development schema
//! `lablink_dev_<username>` with a CI job's warehouse settings. One command at a time per
//! workspace (the database enforces it across replicas); its output reaches the database as it
//! comes, so any replica shows it live; what dbt wrote to its target path is kept for browsing.
//!
//! The command runs on a copy, not in the checkout: the project's code is hostile, and a copy
//! keeps whatever it writes out of the files the user commits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lablink_core::names::dev_schema_name;
use lablink_exec::dbt::{
    DbtCommand, DbtInstall, DbtRunSetup, DbtTarget, DbtWorkspace, PostgresProfile, WarehouseProfile,
};
use lablink_exec::sandbox::Isolation;
use lablink_exec::{LogLine, Termination};
use lablink_store::audit::{AuditEvent, AuditOutcome};
use lablink_store::ci_jobs::CiJob;
use lablink_store::dev_credentials::DevCredential;
use lablink_store::workspace_commands::{LOST_AFTER_MS, NewWorkspaceCommand, WorkspaceCommand};
use lablink_store::workspaces::Workspace;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ci::executor::say;
use crate::ci::jobs::warehouse_profile;
use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// The dbt subcommands the command box runs: those that read the project or build into the
/// development schema (`deps` downloads the project's packages).
const ALLOWED: &[&str] = &[
    "build", "run", "test", "compile", "seed", "snapshot", "ls", "list", "show", "parse", "deps",
];

/// The output kept per command; past it, the command goes on but its output is cut.
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Output is written at least this often, and the heartbeat with it.
const FLUSH_EVERY: Duration = Duration::from_millis(400);
/// A command without output still beats this often, well inside [`LOST_AFTER_MS`].
const BEAT_EVERY: Duration = Duration::from_secs(5);
/// The largest file of the target path kept, and the most kept in all.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const MAX_FILES_BYTES: u64 = 32 * 1024 * 1024;

/// A command of the box as pages and the API show it.
#[derive(Debug, Clone)]
pub struct DevCommand {
    pub id: String,
    pub command: String,
    pub job_id: i64,
    pub schema: String,
    /// `running`, `succeeded`, `failed`, `cancelled`, `timed_out`, `stopped` or `lost`.
    pub state: String,
    /// Why it did not succeed, in words.
    pub reason: String,
    pub output: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// What dbt wrote to its target path (path, bytes); the latest finished command only.
    pub files: Vec<(String, i64)>,
}

impl DevCommand {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    fn of(stored: WorkspaceCommand, files: Vec<(String, i64)>) -> DevCommand {
        // A command whose replica stopped beating is not running any more, whatever its row
        // says until the next command marks it.
        let lost = stored.finished_at.is_none()
            && stored.heartbeat_at < lablink_store::now_ms() - LOST_AFTER_MS;
        DevCommand {
            id: stored.id,
            command: stored.command,
            job_id: stored.job_id,
            schema: stored.schema_name,
            state: if lost { "lost".into() } else { stored.state },
            reason: if lost {
                "the lablink server running it stopped".into()
            } else {
                stored.reason
            },
            output: stored.output,
            started_at: stored.started_at,
            finished_at: stored.finished_at,
            files,
        }
    }
}

/// The command box of a workspace: the jobs whose warehouse it can use, and its commands.
#[derive(Debug, Clone)]
pub struct DevCommands {
    /// (job id, job name) of the project's CI jobs.
    pub jobs: Vec<(i64, String)>,
    pub schema: String,
    /// The warehouse user of the caller's own development credentials, when they saved some.
    pub dev_user: Option<String>,
    /// The latest command with its output and files.
    pub latest: Option<DevCommand>,
    /// Earlier commands, newest first, without output.
    pub earlier: Vec<DevCommand>,
}

/// The longest warehouse user name kept (PostgreSQL's limit).
const MAX_DEV_USER: usize = 63;

/// Parses a typed command and checks it is one the box runs.
fn checked_command(line: &str) -> Result<DbtCommand, ServiceError> {
    let bad = |message: String| ServiceError::InvalidField {
        field: "command",
        message,
    };
    let command = DbtCommand::parse(line.trim()).map_err(|e| bad(e.to_string()))?;
    let sub = command.args().first().map(String::as_str).unwrap_or("");
    if !ALLOWED.contains(&sub) {
        return Err(bad(format!(
            "`dbt {sub}` does not run here: the command box runs {}.",
            ALLOWED.join(", ")
        )));
    }
    Ok(command)
}

fn no_such_command() -> ServiceError {
    ServiceError::NotFound("There is no such command.".into())
}

/// What a command's process ending means for the command.
fn ended(termination: &Termination, shown: &str, timeout_secs: i64) -> (&'static str, String) {
    match termination {
        t if t.success() => ("succeeded", String::new()),
        Termination::Cancelled => ("cancelled", "cancelled by its user".into()),
        Termination::TimedOut => (
            "timed_out",
            format!("it ran past the job's timeout of {timeout_secs} s"),
        ),
        Termination::LimitExceeded(limit) => ("stopped", format!("`{shown}` {limit}")),
        Termination::Exited(_) => (
            "failed",
            match termination.code() {
                Some(code) => format!("`{shown}` exited with code {code}"),
                None => format!("`{shown}` was killed"),
            },
        ),
    }
}

/// Copies the checkout without its `.git`: symlinks stay symlinks (never followed), other
/// special files are left out.
fn copy_tree(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, false)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The regular files below `dir` (symlinks skipped: the command could plant them), as paths
/// relative to it with their content, within the size limits.
fn target_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut total = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&relative)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                if size > MAX_FILE_BYTES || total + size > MAX_FILES_BYTES {
                    continue;
                }
                if let (Some(name), Ok(content)) = (path.to_str(), std::fs::read(entry.path())) {
                    total += size;
                    files.push((name.to_owned(), content));
                }
            }
        }
    }
    files.sort();
    files
}

/// Moves the output of the command's processes into the database in batches, beating its
/// heartbeat; cancels `cancel` when someone asks to stop the command.
async fn write_output(
    services: Services,
    id: String,
    mut lines: mpsc::Receiver<LogLine>,
    cancel: CancellationToken,
) {
    let mut pending = String::new();
    let mut written = 0usize;
    let mut cut = false;
    let mut last_flush = tokio::time::Instant::now();
    loop {
        let next = tokio::time::timeout(FLUSH_EVERY, lines.recv()).await;
        let done = matches!(next, Ok(None));
        if let Ok(Some(line)) = next {
            if written + pending.len() + line.line.len() < MAX_OUTPUT_BYTES {
                pending.push_str(&line.line);
                pending.push('\n');
            } else if !cut {
                cut = true;
                pending.push_str("[lablink] the output stops here: it passed 1 MiB\n");
            }
        }
        let due = last_flush.elapsed() >= FLUSH_EVERY && !pending.is_empty()
            || last_flush.elapsed() >= BEAT_EVERY;
        if due || done {
            match services
                .db
                .append_workspace_command_output(&id, &pending)
                .await
            {
                Ok(true) => cancel.cancel(),
                Ok(false) => {}
                Err(e) => tracing::warn!(command = %id, error = %e, "storing dbt output failed"),
            }
            written += pending.len();
            pending.clear();
            last_flush = tokio::time::Instant::now();
        }
        if done {
            return;
        }
    }
}

/// Everything a started command needs to run.
struct Started {
    id: String,
    checkout: PathBuf,
    base: PathBuf,
    subdirectory: String,
    job: CiJob,
    command: DbtCommand,
    target: DbtTarget,
}

impl Services {
    /// The command box of the caller's workspace.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn workspace_commands(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<DevCommands, ServiceError> {
        let (project, ws) = match self.stored_workspace(caller, project_id).await? {
            (project, Some(ws)) => (project, ws),
            // First use: the workspace is made as the workspace page makes it.
            (project, None) => (project, self.open(caller, project_id).await?.ws),
        };
        let jobs = self
            .db
            .ci_jobs_of_project(&self.keys, &project.id)
            .await?
            .into_iter()
            .map(|job| (job.id, job.input.name))
            .collect();
        let mut stored = self.db.workspace_commands(&ws.id).await?.into_iter();
        let latest = match stored.next() {
            Some(first) => Some(self.command_of(&ws, &first.id).await?),
            None => None,
        };
        let dev_user = self
            .db
            .dev_credential(&self.keys, &caller.user_id, &project.id)
            .await?
            .map(|c| c.username);
        Ok(DevCommands {
            jobs,
            dev_user,
            schema: dev_schema_name(&caller.username),
            latest,
            earlier: stored.map(|c| DevCommand::of(c, Vec::new())).collect(),
        })
    }

    /// One command of the caller's workspace, with its output and files.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
            command_id = %command_id,
        ),
    )]
    pub async fn workspace_command(
        &self,
        caller: &Principal,
        project_id: &str,
        command_id: &str,
    ) -> Result<DevCommand, ServiceError> {
        match self.stored_workspace(caller, project_id).await? {
            (_, Some(ws)) => self.command_of(&ws, command_id).await,
            (_, None) => Err(no_such_command()),
        }
    }

    /// Command `command_id` of workspace `ws`, with its output and files.
    async fn command_of(
        &self,
        ws: &Workspace,
        command_id: &str,
    ) -> Result<DevCommand, ServiceError> {
        match self.db.workspace_command(command_id).await? {
            Some(stored) if stored.workspace_id == ws.id => {
                let files = self.db.workspace_command_files(command_id).await?;
                Ok(DevCommand::of(stored, files))
            }
            _ => Err(no_such_command()),
        }
    }

    /// A file a command's dbt wrote to its target path.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
            command_id = %command_id,
        ),
    )]
    pub async fn workspace_command_file(
        &self,
        caller: &Principal,
        project_id: &str,
        command_id: &str,
        path: &str,
    ) -> Result<Vec<u8>, ServiceError> {
        self.workspace_command(caller, project_id, command_id)
            .await?;
        self.db
            .workspace_command_file(command_id, path)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "The command left no file {path} (only the latest finished command's files \
                     are kept)."
                ))
            })
    }

    /// Starts `line` in the caller's workspace with the warehouse settings of CI job `job_id`
    /// (the project's first job when `None`); it runs in the background.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn start_workspace_command(
        &self,
        caller: &Principal,
        project_id: &str,
        line: &str,
        job_id: Option<i64>,
    ) -> Result<DevCommand, ServiceError> {
        let command = checked_command(line)?;
        let o = self.open(caller, project_id).await?;
        let jobs = self
            .db
            .ci_jobs_of_project(&self.keys, &o.ws.project_id)
            .await?;
        let job =
            match job_id {
                Some(id) => jobs.into_iter().find(|j| j.id == id).ok_or_else(|| {
                    ServiceError::InvalidField {
                        field: "job_id",
                        message: "This project has no such CI job.".into(),
                    }
                })?,
                None => jobs.into_iter().next().ok_or_else(|| {
                    ServiceError::BadInput(
                        "Commands use a CI job's warehouse settings, and this project has no CI \
                     job yet: add one under CI jobs first."
                            .into(),
                    )
                })?,
            };
        let schema = dev_schema_name(&caller.username);
        let own = self
            .db
            .dev_credential(&self.keys, &caller.user_id, &o.ws.project_id)
            .await?;
        let warehouse = match warehouse_profile(&job, &self.settings.runs)? {
            WarehouseProfile::DuckDb { .. } => WarehouseProfile::DuckDb {
                path: self
                    .settings
                    .runs
                    .dev_duckdb_file(&o.ws.project_id, &caller.user_id),
            },
            WarehouseProfile::Postgres(job_profile) => match own {
                Some(own) => WarehouseProfile::Postgres(PostgresProfile {
                    user: own.username,
                    password: own.password,
                    ..job_profile
                }),
                None => WarehouseProfile::Postgres(job_profile),
            },
            WarehouseProfile::None => WarehouseProfile::None,
        };
        let shown = command.to_string();
        let stored = self
            .db
            .start_workspace_command(&NewWorkspaceCommand {
                workspace_id: &o.ws.id,
                user_id: &caller.user_id,
                command: &shown,
                job_id: job.id,
                schema_name: &schema,
            })
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(
                    "A command is already running in this workspace: wait for it to end, or \
                     cancel it."
                        .into(),
                )
            })?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "workspace.dbt_command",
            outcome: AuditOutcome::Success,
            target: Some(format!(
                "`{shown}` in {} (schema {schema})",
                o.repo.path_with_namespace
            )),
            ..AuditEvent::default()
        })
        .await?;
        let started = Started {
            id: stored.id.clone(),
            base: self
                .settings
                .repositories
                .workspace_dir
                .join(format!("{}.dbt", o.ws.id)),
            checkout: o.dir,
            subdirectory: o.subdirectory,
            target: DbtTarget {
                name: "dev".into(),
                schema,
                threads: 4,
                warehouse,
            },
            job,
            command,
        };
        let services = self.clone();
        // Under the request's span: what the command logs names the request that started it.
        tokio::spawn(services.drive_dev_command(started).in_current_span());
        Ok(DevCommand::of(stored, Vec::new()))
    }

    /// Saves the caller's own warehouse credentials for the project's workspace commands on
    /// PostgreSQL jobs; an empty `password` keeps the saved one.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn save_dev_credentials(
        &self,
        caller: &Principal,
        project_id: &str,
        username: &str,
        password: &SecretString,
    ) -> Result<(), ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users run no dbt commands; ask an admin for the Developer role.",
        )?;
        let project = self.project(caller, project_id).await?;
        let username = username.trim();
        if username.is_empty()
            || username.len() > MAX_DEV_USER
            || username
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ServiceError::InvalidField {
                field: "username",
                message: format!(
                    "The warehouse user is 1 to {MAX_DEV_USER} characters, without spaces."
                ),
            });
        }
        let password = if password.expose_secret().is_empty() {
            self.db
                .dev_credential(&self.keys, &caller.user_id, &project.id)
                .await?
                .map(|saved| saved.password)
                .ok_or_else(|| ServiceError::InvalidField {
                    field: "password",
                    message: "Type the warehouse user's password.".into(),
                })?
        } else {
            password.clone()
        };
        self.db
            .save_dev_credential(
                &self.keys,
                &caller.user_id,
                &project.id,
                &DevCredential {
                    username: username.to_owned(),
                    password,
                },
            )
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "workspace.dev_credentials_saved",
            outcome: AuditOutcome::Success,
            target: Some(format!(
                "development credentials for project {}",
                project.name
            )),
            detail: format!("warehouse user {username}"),
            ..AuditEvent::default()
        })
        .await
    }

    /// Forgets the caller's own warehouse credentials for the project (commands use the job's).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn remove_dev_credentials(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(), ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users run no dbt commands; ask an admin for the Developer role.",
        )?;
        let project = self.project(caller, project_id).await?;
        self.db
            .delete_dev_credential(&caller.user_id, &project.id)
            .await?;
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: "workspace.dev_credentials_removed",
            outcome: AuditOutcome::Success,
            target: Some(format!(
                "development credentials for project {}",
                project.name
            )),
            ..AuditEvent::default()
        })
        .await
    }

    /// Asks the workspace's running command to stop (any replica stops it within a second).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
            command_id = %command_id,
        ),
    )]
    pub async fn cancel_workspace_command(
        &self,
        caller: &Principal,
        project_id: &str,
        command_id: &str,
    ) -> Result<(), ServiceError> {
        self.workspace_command(caller, project_id, command_id)
            .await?;
        if !self.db.request_workspace_command_cancel(command_id).await? {
            return Err(ServiceError::Conflict(
                "That command is not running any more.".into(),
            ));
        }
        Ok(())
    }

    /// Runs a started command to its end and records how it ended.
    #[tracing::instrument(name = "workspace_command", skip_all, fields(command_id = %started.id))]
    async fn drive_dev_command(self, started: Started) {
        let id = started.id.clone();
        let base = started.base.clone();
        let (sink, lines) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let writer = tokio::spawn(write_output(
            self.clone(),
            id.clone(),
            lines,
            cancel.clone(),
        ));
        let outcome = self.execute_dev_command(&started, &sink, &cancel).await;
        let (state, reason, files) = match outcome {
            Ok((state, reason, files)) => (state, reason, files),
            Err(why) => {
                say(&sink, format!("the command could not run: {why}")).await;
                ("failed", why, Vec::new())
            }
        };
        drop(sink);
        let _ = writer.await;
        if let Err(e) = self
            .db
            .finish_workspace_command(&id, state, &reason, &files)
            .await
        {
            tracing::warn!(command = %id, error = %e, "recording a dbt command's end failed");
        }
        // The run directory holds the profile with the warehouse's secret.
        if let Err(e) = std::fs::remove_dir_all(&base)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %base.display(), error = %e, "removing a command's directory failed");
        }
    }

    /// Copies the checkout, prepares dbt and runs `dbt deps` (when the project has packages)
    /// and the command.
    async fn execute_dev_command(
        &self,
        s: &Started,
        sink: &mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<(&'static str, String, Vec<(String, Vec<u8>)>), String> {
        let runs = &self.settings.runs;
        if runs.isolation == Isolation::Bubblewrap {
            lablink_exec::sandbox::probe()
                .await
                .map_err(|e| e.to_string())?;
        }
        let (checkout, base) = (s.checkout.clone(), s.base.clone());
        let project = base.join("project");
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_dir_all(&base) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            copy_tree(&checkout, &project, true)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("copying the workspace failed: {e}"))?;
        let env: Vec<_> = s
            .job
            .input
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let workspace = DbtWorkspace::prepare(
            DbtInstall::locate().map_err(|e| e.to_string())?,
            DbtRunSetup {
                worktree: &s.base.join("project"),
                project_subdir: Some(s.subdirectory.as_str()).filter(|d| !d.is_empty()),
                run_dir: &s.base.join("run"),
                target: &s.target,
                env: &env,
                isolation: runs.isolation,
                limits: runs.limits,
            },
        )
        .map_err(|e| e.to_string())?;
        if runs.isolation == Isolation::None {
            say(sink, crate::ci::executor::NOT_ISOLATED).await;
        }
        let user = match &s.target.warehouse {
            WarehouseProfile::Postgres(p) => format!(" as warehouse user {}", p.user),
            _ => String::new(),
        };
        say(
            sink,
            format!(
                "building into schema {} with the warehouse of CI job {}{user}",
                s.target.schema, s.job.input.name
            ),
        )
        .await;
        let mut commands = Vec::new();
        if workspace.needs_deps() && s.command.args().first().is_none_or(|sub| sub != "deps") {
            commands.push(DbtCommand::deps());
        }
        commands.push(s.command.clone());
        let timeout_secs = s.job.input.timeout_secs;
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(1));
        let mut end = ("succeeded", String::new());
        for command in &commands {
            let shown = command.to_string();
            say(sink, format!("$ {shown}")).await;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let termination = workspace
                .run(
                    command,
                    left.max(Duration::from_millis(1)),
                    sink.clone(),
                    cancel,
                )
                .await
                .map_err(|e| e.to_string())?;
            end = ended(&termination, &shown, timeout_secs);
            if end.0 != "succeeded" {
                break;
            }
        }
        let target = workspace.target_path();
        let files = tokio::task::spawn_blocking(move || target_files(&target))
            .await
            .unwrap_or_default();
        Ok((end.0, end.1, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_runs_what_ci_jobs_allow_and_nothing_else() {
        assert!(checked_command("dbt build --select my_model+").is_ok());
        assert!(checked_command("  dbt compile ").is_ok());
        for refused in [
            "rm -rf /",
            "dbt debug",
            "dbt run-operation drop_everything",
            "dbt build --profiles-dir /etc",
            "dbt",
            "",
        ] {
            let Err(ServiceError::InvalidField { field, message }) = checked_command(refused)
            else {
                panic!("{refused:?} was accepted");
            };
            assert_eq!(field, "command");
            assert!(!message.is_empty());
        }
    }

    #[test]
    fn the_copy_leaves_out_git_and_keeps_symlinks_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join(".git")).unwrap();
        std::fs::create_dir_all(from.join("models/sub")).unwrap();
        std::fs::write(from.join(".git/config"), "x").unwrap();
        std::fs::write(from.join("models/sub/a.sql"), "select 1").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.join("models/leak.sql")).unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to, true).unwrap();
        assert!(!to.join(".git").exists());
        assert_eq!(
            std::fs::read_to_string(to.join("models/sub/a.sql")).unwrap(),
            "select 1"
        );
        assert_eq!(
            std::fs::read_link(to.join("models/leak.sql")).unwrap(),
            Path::new("/etc/passwd")
        );
        let kept = target_files(&to);
        assert_eq!(
            kept.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["models/sub/a.sql"],
            "the symlink is not read"
        );
    }
}
