//! dbt commands of a workspace's command box: one running at a time per workspace (the database
//! refuses a second), their output as it arrives, and what dbt wrote to its target path.

use crate::{Db, StoreError, new_id, now_ms, on_db};

/// A command that stops beating for this long is lost (its replica died or was killed).
pub const LOST_AFTER_MS: i64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkspaceCommand {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub command: String,
    pub job_id: i64,
    pub schema_name: String,
    /// `running`, `succeeded`, `failed`, `cancelled`, `timed_out`, `stopped` or `lost`.
    pub state: String,
    pub reason: String,
    pub output: String,
    pub cancel_requested: bool,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub finished_at: Option<i64>,
}

/// A command about to start.
pub struct NewWorkspaceCommand<'a> {
    pub workspace_id: &'a str,
    pub user_id: &'a str,
    pub command: &'a str,
    pub job_id: i64,
    pub schema_name: &'a str,
}

const COLUMNS: &str = "id, workspace_id, user_id, command, job_id, schema_name, state, reason, \
     output, cancel_requested, started_at, heartbeat_at, finished_at";

/// The commands kept per workspace; older ones go when a new one starts.
const KEPT: i64 = 20;

impl Db {
    /// Records a running command; `None` while another command of the workspace runs. A
    /// command whose replica stopped beating is marked lost first, so it never blocks.
    pub async fn start_workspace_command(
        &self,
        new: &NewWorkspaceCommand<'_>,
    ) -> Result<Option<WorkspaceCommand>, StoreError> {
        let now = now_ms();
        let id = new_id();
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE workspace_commands SET state = 'lost', finished_at = $1, \
                 reason = 'the lablink server running it stopped' \
                 WHERE workspace_id = $2 AND finished_at IS NULL AND heartbeat_at < $3",
            )
            .bind(now)
            .bind(new.workspace_id)
            .bind(now - LOST_AFTER_MS)
            .execute(pool)
            .await
            .map(drop)
        })?;
        let inserted = on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO workspace_commands (id, workspace_id, user_id, command, job_id, \
                 schema_name, state, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $7)",
            )
            .bind(&id)
            .bind(new.workspace_id)
            .bind(new.user_id)
            .bind(new.command)
            .bind(new.job_id)
            .bind(new.schema_name)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        });
        match inserted.map_err(StoreError::from) {
            Ok(()) => {}
            Err(e) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e),
        }
        on_db!(self, |pool| {
            sqlx::query(
                "DELETE FROM workspace_commands WHERE workspace_id = $1 AND id NOT IN \
                 (SELECT id FROM workspace_commands WHERE workspace_id = $1 \
                 ORDER BY started_at DESC, id DESC LIMIT $2)",
            )
            .bind(new.workspace_id)
            .bind(KEPT)
            .execute(pool)
            .await
            .map(drop)
        })?;
        self.workspace_command(&id).await
    }

    pub async fn workspace_command(
        &self,
        id: &str,
    ) -> Result<Option<WorkspaceCommand>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM workspace_commands WHERE id = $1");
        Ok(on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// The workspace's commands, newest first, without their output.
    pub async fn workspace_commands(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WorkspaceCommand>, StoreError> {
        let sql = format!(
            "SELECT {} FROM workspace_commands WHERE workspace_id = $1 \
             ORDER BY started_at DESC, id DESC",
            COLUMNS.replace("output,", "'' AS output,")
        );
        Ok(on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(workspace_id)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Adds output to a running command and beats its heartbeat; `true` when someone asked to
    /// cancel it.
    pub async fn append_workspace_command_output(
        &self,
        id: &str,
        text: &str,
    ) -> Result<bool, StoreError> {
        let cancel: Option<bool> = on_db!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE workspace_commands SET output = output || $1, heartbeat_at = $2 \
                 WHERE id = $3 AND finished_at IS NULL RETURNING cancel_requested",
            )
            .bind(text)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        // A command marked lost meanwhile is not ours any more: stop it.
        Ok(cancel.unwrap_or(true))
    }

    /// Asks the replica running the command to stop it; `false` when it is not running.
    pub async fn request_workspace_command_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let changed = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE workspace_commands SET cancel_requested = TRUE \
                 WHERE id = $1 AND finished_at IS NULL",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Ends a command; the files are what dbt wrote to its target path. The workspace's earlier
    /// commands lose theirs: only the latest result is browsable.
    pub async fn finish_workspace_command(
        &self,
        id: &str,
        state: &str,
        reason: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE workspace_commands SET state = $1, reason = $2, finished_at = $3, \
                     heartbeat_at = $3 WHERE id = $4",
                )
                .bind(state)
                .bind(reason)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM workspace_command_files WHERE command_id IN \
                     (SELECT id FROM workspace_commands WHERE workspace_id = \
                     (SELECT workspace_id FROM workspace_commands WHERE id = $1) AND id <> $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                for (path, content) in files {
                    sqlx::query(
                        "INSERT INTO workspace_command_files (command_id, path, content) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(path)
                    .bind(content)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
            .await
        })?;
        Ok(())
    }

    /// The paths and sizes of what a command left in its target path.
    pub async fn workspace_command_files(
        &self,
        command_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT path, CAST(LENGTH(content) AS BIGINT) FROM workspace_command_files \
                 WHERE command_id = $1 ORDER BY path",
            )
            .bind(command_id)
            .fetch_all(pool)
            .await
        })?)
    }

    pub async fn workspace_command_file(
        &self,
        command_id: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(on_db!(self, |pool| {
            sqlx::query_scalar(
                "SELECT content FROM workspace_command_files WHERE command_id = $1 AND path = $2",
            )
            .bind(command_id)
            .bind(path)
            .fetch_optional(pool)
            .await
        })?)
    }
}
