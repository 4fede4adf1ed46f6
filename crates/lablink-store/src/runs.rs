//! Runs of CI jobs (`runs`, `run_steps`, `run_logs`, `run_artifacts`) and the repository facts a
//! run needs. Every state change is a compare-and-set on the expected state (and lease holder),
//! and writes the commit status the run should show into the outbox in the same transaction.

use lablink_core::ci::RunMode;
use lablink_core::run::RunState;
use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::sealed::repository_aad;
use crate::{Db, StoreError, new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub id: String,
    pub ci_job_id: i64,
    pub account_id: String,
    pub project_id: String,
    pub repository_id: String,
    pub sha: String,
    pub ref_name: String,
    pub mr_iid: Option<i64>,
    #[sqlx(try_from = "String")]
    pub triggered_by: Trigger,
    #[sqlx(try_from = "String")]
    pub state: RunState,
    #[sqlx(try_from = "String")]
    pub mode: RunMode,
    /// Who approved a fork's commit to run (`@username`).
    pub approved_by: Option<String>,
    /// The run had to wait for an approval when it was made (`None`: not recorded, older runs).
    pub needs_approval: Option<bool>,
    /// A merge request's target branch.
    pub target_branch: Option<String>,
    pub reason: Option<String>,
    pub attempts: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub status_note: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, ci_job_id, account_id, project_id, repository_id, sha, ref_name, \
    mr_iid, triggered_by, state, mode, approved_by, needs_approval, target_branch, reason, attempts, \
    locked_by, locked_until, cancel_requested, cancel_reason, status_note, created_at, started_at, \
    finished_at";

lablink_core::text_enum! {
    /// What created a run.
    pub enum Trigger ("run trigger") {
        /// A webhook delivery.
        Webhook = "webhook",
        /// lablink's own look at GitLab's open merge requests (a delivery was missed).
        Reconciliation = "reconciliation",
    }
}

lablink_core::text_enum! {
    /// How a run step (one dbt command) ended.
    pub enum StepOutcome ("step outcome") {
        Success = "success",
        Error = "error",
        TimedOut = "timed out",
        Cancelled = "cancelled",
        /// It passed one of the run's limits.
        Stopped = "stopped",
    }
}

/// A run to create: `queued`, or `awaiting_approval` for a fork's commit (commit status
/// `pending` either way).
pub struct NewRun<'a> {
    pub ci_job_id: i64,
    pub account_id: &'a str,
    pub project_id: &'a str,
    pub repository_id: &'a str,
    pub sha: &'a str,
    pub ref_name: &'a str,
    pub mr_iid: Option<i64>,
    pub triggered_by: Trigger,
    /// Also the description of the `pending` commit status that goes to the outbox.
    pub reason: &'a str,
    pub mode: RunMode,
    pub awaits_approval: bool,
    /// The merge request's target branch.
    pub target_branch: Option<&'a str>,
}

impl NewRun<'_> {
    fn state(&self) -> RunState {
        if self.awaits_approval {
            RunState::AwaitingApproval
        } else {
            RunState::Queued
        }
    }
}

/// Which holder a state change expects.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// The worker holding the lease.
    Worker(&'a str),
    /// Whoever held it, if the lease ran out before this time (Unix ms).
    ExpiredBefore(i64),
    /// Anyone (a queued run has no holder).
    Anyone,
}

/// A state change of a run; the commit status for the outbox follows from `to`.
pub struct Transition<'a> {
    pub from: RunState,
    pub to: RunState,
    pub reason: &'a str,
    /// Who approved a fork's commit, recorded with the change that queues it.
    pub approved_by: Option<&'a str>,
}

/// What a run's repository and project give its execution.
pub struct CiRepository {
    pub id: String,
    pub account_id: String,
    pub project_id: String,
    pub status: String,
    pub gitlab_instance_url: String,
    pub gitlab_project_id: i64,
    pub default_branch: String,
    pub http_url_to_repo: String,
    pub status_reporting: bool,
    pub status_warning: Option<String>,
    pub hook_id: Option<i64>,
    pub project_subdirectory: String,
    pub project_target_branch: Option<String>,
    pub project_token: Option<SecretString>,
    pub deploy_token_username: Option<String>,
    pub deploy_token: Option<SecretString>,
    /// Posts statuses and notes through this lablink user's GitLab account (no project token).
    pub post_as_user_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RepositoryRow {
    id: String,
    account_id: String,
    project_id: String,
    status: String,
    gitlab_instance_url: String,
    gitlab_project_id: i64,
    default_branch: String,
    http_url_to_repo: String,
    status_reporting: bool,
    status_warning: Option<String>,
    hook_id: Option<i64>,
    subdirectory: String,
    target_branch: Option<String>,
    project_token: Option<Vec<u8>>,
    deploy_token_username: Option<String>,
    deploy_token: Option<Vec<u8>>,
    post_as_user_id: Option<String>,
}

const REPOSITORY_SELECT: &str = "SELECT r.id, r.account_id, r.project_id, r.status, \
    r.gitlab_instance_url, r.gitlab_project_id, r.default_branch, r.http_url_to_repo, \
    r.status_reporting, r.status_warning, r.hook_id, p.subdirectory, p.target_branch, \
    r.project_token, r.deploy_token_username, r.deploy_token, r.post_as_user_id \
    FROM repositories r JOIN projects p ON p.id = r.project_id";

impl RepositoryRow {
    fn open(self, keys: &KeyRing) -> Result<CiRepository, StoreError> {
        let open = |column: &str, blob: &Option<Vec<u8>>| {
            blob.as_deref()
                .map(|b| keys.open_str(&repository_aad(column, &self.id), b))
                .transpose()
        };
        Ok(CiRepository {
            project_token: open("project_token", &self.project_token)?,
            deploy_token: open("deploy_token", &self.deploy_token)?,
            id: self.id,
            account_id: self.account_id,
            project_id: self.project_id,
            status: self.status,
            gitlab_instance_url: self.gitlab_instance_url,
            gitlab_project_id: self.gitlab_project_id,
            default_branch: self.default_branch,
            http_url_to_repo: self.http_url_to_repo,
            status_reporting: self.status_reporting,
            status_warning: self.status_warning,
            hook_id: self.hook_id,
            project_subdirectory: self.subdirectory,
            project_target_branch: self.target_branch,
            deploy_token_username: self.deploy_token_username,
            post_as_user_id: self.post_as_user_id,
        })
    }
}

/// Writes the status a run should show; a newer version supersedes what was not sent yet.
const OUTBOX_UPSERT: &str = "INSERT INTO status_outbox (run_id, wanted_state, description, \
    version, attempts, run_after, updated_at) VALUES ($1, $2, $3, 1, 0, $4, $4) \
    ON CONFLICT (run_id) DO UPDATE SET wanted_state = excluded.wanted_state, \
    description = excluded.description, version = status_outbox.version + 1, attempts = 0, \
    run_after = excluded.run_after, updated_at = excluded.updated_at";

impl Db {
    /// The repository with its project, tokens opened; `None` when unknown.
    pub async fn ci_repository(
        &self,
        keys: &KeyRing,
        repository_id: &str,
    ) -> Result<Option<CiRepository>, StoreError> {
        let sql = format!("{REPOSITORY_SELECT} WHERE r.id = $1");
        let row: Option<RepositoryRow> = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(repository_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|r| r.open(keys)).transpose()
    }

    /// Every connected repository, for reconciliation.
    pub async fn connected_ci_repositories(
        &self,
        keys: &KeyRing,
    ) -> Result<Vec<CiRepository>, StoreError> {
        let sql = format!("{REPOSITORY_SELECT} WHERE r.status = 'connected' ORDER BY r.id");
        let rows: Vec<RepositoryRow> =
            crate::on_db!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(|r| r.open(keys)).collect()
    }

    /// Whether `job` has a run for `sha` (in any state).
    pub async fn run_exists(&self, ci_job_id: i64, sha: &str) -> Result<bool, StoreError> {
        let n: i64 = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE ci_job_id = $1 AND sha = $2")
                .bind(ci_job_id)
                .bind(sha)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// Creates a queued run and its `pending` status, unless the job already has a run for the
    /// commit. Returns the new run's id.
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<Option<String>, StoreError> {
        let id = new_id();
        let now = now_ms();
        let created = crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "INSERT INTO runs (id, ci_job_id, account_id, project_id, repository_id, sha, \
                 ref_name, mr_iid, triggered_by, state, reason, attempts, cancel_requested, \
                 created_at, updated_at, mode, target_branch, needs_approval) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7, $8, $9, $12, $10, 0, FALSE, $11, $11, $13, $14, $15) \
                 ON CONFLICT (ci_job_id, sha) DO NOTHING",
            )
            .bind(&id)
            .bind(new.ci_job_id)
            .bind(new.account_id)
            .bind(new.project_id)
            .bind(new.repository_id)
            .bind(new.sha)
            .bind(new.ref_name)
            .bind(new.mr_iid)
            .bind(new.triggered_by.as_str())
            .bind(new.reason)
            .bind(now)
            .bind(new.state().as_str())
            .bind(new.mode.as_str())
            .bind(new.target_branch)
            .bind(new.awaits_approval)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(OUTBOX_UPSERT)
                    .bind(&id)
                    .bind(new.state().commit_status().as_str())
                    .bind(new.reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(n == 1)
        })?;
        Ok(created.then_some(id))
    }

    /// Claims the oldest queued run for `worker` (state `starting`), counting an attempt.
    pub async fn claim_run(
        &self,
        worker: &str,
        lease_ms: i64,
        transition: &Transition<'_>,
    ) -> Result<Option<Run>, StoreError> {
        let now = now_ms();
        // Written twice like the job claim: PostgreSQL needs SKIP LOCKED so that replicas pick
        // different rows; SQLite's single writer makes the plain form atomic.
        const PICK: &str = "SELECT id FROM runs WHERE state = $1 ORDER BY created_at, id LIMIT 1";
        let update = |pick: &str| {
            format!(
                "UPDATE runs SET state = $2, reason = $3, attempts = attempts + 1, locked_by = $4, \
                 locked_until = $5, started_at = COALESCE(started_at, $6), updated_at = $6 \
                 WHERE id = ({pick}) AND state = $1 RETURNING {COLUMNS}"
            )
        };
        macro_rules! claim {
            ($pool:expr, $sql:expr) => {{
                let mut tx = $pool.begin().await?;
                let run: Option<Run> = sqlx::query_as(&$sql)
                    .bind(transition.from.as_str())
                    .bind(transition.to.as_str())
                    .bind(transition.reason)
                    .bind(worker)
                    .bind(now + lease_ms)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(run) = &run {
                    sqlx::query(OUTBOX_UPSERT)
                        .bind(&run.id)
                        .bind(transition.to.commit_status().as_str())
                        .bind(transition.reason)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                run
            }};
        }
        let run = match self {
            Db::Sqlite(pool) => claim!(pool, update(PICK)),
            Db::Postgres(pool) => claim!(pool, update(&format!("{PICK} FOR UPDATE SKIP LOCKED"))),
        };
        Ok(run)
    }

    /// Changes a run's state if it still is in `from` (and held as `holder` expects), with its
    /// status in the outbox. `false` when the run was not in that position (someone else moved
    /// it first).
    pub async fn transition_run(
        &self,
        run_id: &str,
        holder: Holder<'_>,
        transition: &Transition<'_>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let (worker, expired_before) = match holder {
            Holder::Worker(w) => (Some(w), None),
            Holder::ExpiredBefore(t) => (None, Some(t)),
            Holder::Anyone => (None, None),
        };
        let moved = crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE runs SET state = $1, reason = $2, updated_at = $3, \
                 finished_at = CASE WHEN $4 THEN $3 ELSE finished_at END, \
                 locked_by = CASE WHEN $4 OR $1 = 'queued' THEN NULL ELSE locked_by END, \
                 locked_until = CASE WHEN $4 OR $1 = 'queued' THEN NULL ELSE locked_until END, \
                 approved_by = COALESCE($9, approved_by) \
                 WHERE id = $5 AND state = $6 AND (CAST($7 AS TEXT) IS NULL OR locked_by = $7) \
                 AND (CAST($8 AS BIGINT) IS NULL OR locked_until < $8)",
            )
            .bind(transition.to.as_str())
            .bind(transition.reason)
            .bind(now)
            .bind(transition.to.is_terminal())
            .bind(run_id)
            .bind(transition.from.as_str())
            .bind(worker)
            .bind(expired_before)
            .bind(transition.approved_by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(OUTBOX_UPSERT)
                    .bind(run_id)
                    .bind(transition.to.commit_status().as_str())
                    .bind(transition.reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(n == 1)
        })?;
        Ok(moved)
    }

    /// Starts an ended run again from the beginning (`to`: queued, or waiting for an approval):
    /// its steps, log and artifacts go, its attempts start over, and GitLab gets a `pending`
    /// status. `false` when the run is no longer in `from`.
    pub async fn rerun_run(
        &self,
        run_id: &str,
        from: RunState,
        to: RunState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let moved = crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE runs SET state = $1, reason = $2, updated_at = $3, attempts = 0, \
                 started_at = NULL, finished_at = NULL, locked_by = NULL, locked_until = NULL, \
                 cancel_requested = FALSE, cancel_reason = NULL, status_note = NULL \
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(reason)
            .bind(now)
            .bind(run_id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                for table in ["run_steps", "run_logs", "run_artifacts"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE run_id = $1"))
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(OUTBOX_UPSERT)
                    .bind(run_id)
                    .bind(to.commit_status().as_str())
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(n == 1)
        })?;
        Ok(moved)
    }

    /// Runs in `starting` or `running` whose lease ran out.
    pub async fn runs_with_expired_lease(&self) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE state IN ('starting', 'running') \
             AND locked_until < $1 ORDER BY created_at LIMIT 100"
        );
        let runs = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(now_ms()).fetch_all(pool).await
        })?;
        Ok(runs)
    }

    /// Extends the lease of a run `worker` holds. `Ok(None)` when it lost the run; otherwise
    /// the cancellation reason when someone asked to cancel it.
    pub async fn renew_run_lease(
        &self,
        run_id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let now = now_ms();
        let row: Option<(bool, Option<String>)> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "UPDATE runs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 \
                 AND state IN ('starting', 'running') RETURNING cancel_requested, cancel_reason",
            )
            .bind(now + lease_ms)
            .bind(run_id)
            .bind(worker)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(requested, reason)| {
            requested.then(|| reason.unwrap_or_else(|| "cancelled".to_owned()))
        }))
    }

    /// Runs of a merge request that are still queued or running, except those at `except_sha`.
    pub async fn active_mr_runs(
        &self,
        repository_id: &str,
        mr_iid: i64,
        except_sha: Option<&str>,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE repository_id = $1 AND mr_iid = $2 \
             AND state IN ('awaiting_approval', 'queued', 'starting', 'running') \
             AND (CAST($3 AS TEXT) IS NULL OR sha <> $3) \
             ORDER BY created_at"
        );
        let runs = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(repository_id)
                .bind(mr_iid)
                .bind(except_sha)
                .fetch_all(pool)
                .await
        })?;
        Ok(runs)
    }

    /// Asks whoever holds a running run to cancel it; its executor notices at its next lease
    /// renewal. `false` when the run is no longer active.
    pub async fn request_run_cancel(&self, run_id: &str, reason: &str) -> Result<bool, StoreError> {
        let n = crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE runs SET cancel_requested = TRUE, cancel_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND state IN ('starting', 'running')",
            )
            .bind(reason)
            .bind(now_ms())
            .bind(run_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// A note shown on the run page (e.g. why no status goes to GitLab).
    pub async fn set_run_status_note(&self, run_id: &str, note: &str) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query("UPDATE runs SET status_note = $1 WHERE id = $2")
                .bind(note)
                .bind(run_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Whether the merge request note summarising the run was posted.
    pub async fn mr_note_posted(&self, run_id: &str) -> Result<bool, StoreError> {
        let at: Option<Option<i64>> = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT mr_note_posted_at FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(at.flatten().is_some())
    }

    /// Records that GitLab accepted the merge request note of the run.
    pub async fn set_mr_note_posted(&self, run_id: &str) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query("UPDATE runs SET mr_note_posted_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(run_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = $1");
        let run = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(run)
    }

    /// The newest runs of a project, optionally of one merge request.
    pub async fn runs_of_project(
        &self,
        project_id: &str,
        mr_iid: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE project_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR mr_iid = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let runs = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_id)
                .bind(mr_iid)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(runs)
    }

    /// The account's newest runs, across its projects.
    pub async fn recent_runs_of_account(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE account_id = $1 ORDER BY created_at DESC, id DESC \
             LIMIT $2"
        );
        let runs = crate::on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(runs)
    }

    /// Starts step `position` of a run (a dbt command).
    pub async fn start_run_step(
        &self,
        run_id: &str,
        position: i64,
        command: &str,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO run_steps (run_id, position, command, started_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, position) DO UPDATE SET command = excluded.command, \
                 started_at = excluded.started_at, outcome = NULL, finished_at = NULL",
            )
            .bind(run_id)
            .bind(position)
            .bind(command)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn finish_run_step(
        &self,
        run_id: &str,
        position: i64,
        outcome: StepOutcome,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "UPDATE run_steps SET outcome = $1, finished_at = $2 WHERE run_id = $3 AND position = $4",
            )
            .bind(outcome.as_str())
            .bind(now_ms())
            .bind(run_id)
            .bind(position)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn run_steps(&self, run_id: &str) -> Result<Vec<RunStep>, StoreError> {
        let steps = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT position, command, outcome, started_at, finished_at FROM run_steps \
                 WHERE run_id = $1 ORDER BY position",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(steps)
    }

    /// Appends redacted log lines; `first_seq` numbers the first of them. A retried attempt
    /// starts after the previous attempt's last line.
    pub async fn append_run_logs(
        &self,
        run_id: &str,
        first_seq: i64,
        lines: &[(String, String)],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        crate::on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (i, (stream, line)) in lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO run_logs (run_id, seq, stream, line, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (run_id, seq) DO NOTHING",
                )
                .bind(run_id)
                .bind(first_seq + i as i64)
                .bind(stream)
                .bind(line)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// The next free log sequence number of a run.
    pub async fn next_log_seq(&self, run_id: &str) -> Result<i64, StoreError> {
        let n: i64 = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), -1) + 1 FROM run_logs WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// Log lines with `seq >= after`, at most `limit`.
    pub async fn run_logs(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let lines = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, stream, line, at FROM run_logs WHERE run_id = $1 AND seq >= $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(run_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(lines)
    }

    /// The last `limit` log lines, oldest first.
    pub async fn run_log_tail(&self, run_id: &str, limit: i64) -> Result<Vec<LogLine>, StoreError> {
        let mut lines: Vec<LogLine> = crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, stream, line, at FROM run_logs WHERE run_id = $1 \
                 ORDER BY seq DESC LIMIT $2",
            )
            .bind(run_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        lines.reverse();
        Ok(lines)
    }

    pub async fn save_run_artifact(
        &self,
        run_id: &str,
        name: &str,
        content: &str,
    ) -> Result<(), StoreError> {
        crate::on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO run_artifacts (run_id, name, content) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, name) DO UPDATE SET content = excluded.content",
            )
            .bind(run_id)
            .bind(name)
            .bind(content)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn run_artifact(
        &self,
        run_id: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let content = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT content FROM run_artifacts WHERE run_id = $1 AND name = $2")
                .bind(run_id)
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(content)
    }

    pub async fn run_artifact_names(&self, run_id: &str) -> Result<Vec<String>, StoreError> {
        let names = crate::on_db!(self, |pool| {
            sqlx::query_scalar("SELECT name FROM run_artifacts WHERE run_id = $1 ORDER BY name")
                .bind(run_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(names)
    }

    /// Production: the latest successful run of the project's merge job (pushes to the default
    /// branch), with its manifest.
    pub async fn production_run(
        &self,
        project_id: &str,
    ) -> Result<Option<ProductionRun>, StoreError> {
        Ok(crate::on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT r.id, r.sha, a.content AS manifest FROM runs r JOIN run_artifacts a \
                 ON a.run_id = r.id AND a.name = 'manifest.json' WHERE r.project_id = $1 \
                 AND r.mr_iid IS NULL AND r.state = 'success' ORDER BY r.finished_at DESC LIMIT 1",
            )
            .bind(project_id)
            .fetch_optional(pool)
            .await
        })?)
    }
}

/// Production, as [`Db::production_run`] finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductionRun {
    pub id: String,
    pub sha: String,
    pub manifest: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunStep {
    pub position: i64,
    pub command: String,
    pub outcome: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct LogLine {
    pub seq: i64,
    pub stream: String,
    pub line: String,
    pub at: i64,
}
