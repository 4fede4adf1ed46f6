//! Dropping a merge request's CI schema once the merge request is closed or merged.
//!
//! It runs `dbt run-operation` in a tiny generated project rather than a Python snippet against
//! one adapter's driver: the adapter's own `drop_schema` knows each warehouse's quoting and
//! `cascade` rules, the connection comes from the same private profile as the runs, so every
//! adapter [`WarehouseProfile`](super::WarehouseProfile) gains works without new code, and the
//! cleanup needs no checkout of the repository. The cost, a few seconds of dbt start-up, does not
//! matter for a background job.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DbtCommand, DbtError, DbtInstall, DbtRunSetup, DbtTarget, DbtWorkspace};
use crate::limits::Limits;
use crate::process::LogLine;
use crate::sandbox::Isolation;

const MACRO_NAME: &str = "lablink_drop_schema";

/// Drops the schema the target's profile builds into; succeeds when it does not exist.
/// The schema name is taken from the profile, so nothing user-controlled reaches the SQL.
const MACRO: &str = "{% macro lablink_drop_schema() %}\n\
    {% do adapter.drop_schema(api.Relation.create(database=target.database, schema=target.schema)) %}\n\
    {{ log('dropped schema ' ~ target.schema, info=True) }}\n\
    {% endmacro %}\n";

/// How many of dbt's last output lines an error keeps.
const TAIL_LINES: usize = 20;

/// Drops `target.schema` (with everything in it) from `target`'s warehouse. `work_dir` is a
/// private scratch directory of this cleanup job; it is created if missing.
pub async fn drop_schema(
    install: &DbtInstall,
    target: &DbtTarget,
    work_dir: &Path,
    isolation: Isolation,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), DbtError> {
    let project = work_dir.join("project");
    write_project(&project)?;
    let workspace = DbtWorkspace::prepare(
        install.clone(),
        DbtRunSetup {
            worktree: &project,
            project_subdir: None,
            run_dir: &work_dir.join("run"),
            target,
            env: &[],
            // lablink's own project, in a sandbox all the same: the warehouse's credentials are
            // the job's, and the adapter is code like any other.
            isolation,
            limits: Limits::default(),
        },
    )?;
    let (sink, mut lines) = mpsc::channel::<LogLine>(64);
    let command = DbtCommand::from_args(["run-operation", MACRO_NAME]);
    let collect = async {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        while let Some(line) = lines.recv().await {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.line);
        }
        tail
    };
    let (termination, tail) = tokio::join!(workspace.run(&command, timeout, sink, cancel), collect);
    let termination = termination?;
    if termination.success() {
        Ok(())
    } else {
        Err(DbtError::DropSchemaFailed {
            schema: target.schema.clone(),
            termination,
            output: Vec::from(tail).join("\n"),
        })
    }
}

fn write_project(dir: &Path) -> Result<(), DbtError> {
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| DbtError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let macros = dir.join("macros");
    std::fs::create_dir_all(&macros).map_err(|source| DbtError::Io {
        path: macros.clone(),
        source,
    })?;
    let project = serde_json::json!({
        "name": "lablink_cleanup",
        "version": "1.0.0",
        "config-version": 2,
        "profile": super::PROFILE_NAME,
        "macro-paths": ["macros"],
    });
    write(&dir.join("dbt_project.yml"), &project.to_string())?;
    write(&macros.join(format!("{MACRO_NAME}.sql")), MACRO)
}
