//! Running real dbt for a run: the private `profiles.yml` ([`DbtTarget::write_profiles`]), the
//! command lines ([`DbtCommand`]), the process environment and artifacts ([`DbtWorkspace`]), and
//! lablink's own work in the warehouse ([`drop_schema`], [`compare`]). Processes go through [`crate::process`].

mod artifacts;
mod command;
mod install;
mod macros;
mod profile;
mod workspace;

use std::path::PathBuf;

pub use artifacts::{Artifacts, ResultCounts};
pub use command::DbtCommand;
pub use install::{DbtInstall, VENV_ENV};
pub use macros::{MacroRun, WarmCompare, compare, drop_schema};
pub use profile::{DbtTarget, PROFILE_NAME, PostgresProfile, WarehouseProfile};
pub use workspace::{DbtRunSetup, DbtWorkspace, JOB_ENV_PREFIX, SECRET_ENV_PREFIX, check_env_name};

use crate::error::ExecError;
use crate::process::Termination;

/// Everything that can go wrong preparing or running dbt. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum DbtError {
    #[error(
        "dbt is not installed in {venv}: run scripts/test.sh or set {VENV_ENV} to a virtualenv with dbt-core and an adapter"
    )]
    NotInstalled { venv: PathBuf },
    #[error("cannot tell where dbt is installed: set {VENV_ENV} (HOME is not set either)")]
    NoVenvLocation,
    #[error("installing dbt into {venv} failed: {reason}")]
    Install { venv: PathBuf, reason: String },
    #[error("invalid dbt command `{command}`: {reason}")]
    InvalidCommand { command: String, reason: String },
    #[error(
        "`{0}` is not a usable schema name: lower-case letters, digits and `_`, not starting with a digit, at most 63"
    )]
    InvalidSchema(String),
    #[error("invalid dbt target: {0}")]
    InvalidTarget(String),
    #[error("invalid environment variable `{name}`: {reason}")]
    InvalidEnv { name: String, reason: &'static str },
    #[error("invalid project directory `{subdir}`: {reason}")]
    InvalidProjectDir {
        subdir: String,
        reason: &'static str,
    },
    #[error("no dbt_project.yml in {}", .0.display())]
    NoDbtProject(PathBuf),
    #[error(
        "the run directory {} is inside the repository {}; dbt's files must stay out of it",
        run_dir.display(),
        worktree.display()
    )]
    RunDirInsideRepository { run_dir: PathBuf, worktree: PathBuf },
    #[error("could not write the dbt profile: {0}")]
    Profile(serde_json::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dropping schema {schema} failed ({termination:?}); dbt said:\n{output}")]
    DropSchemaFailed {
        schema: String,
        termination: Termination,
        output: String,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
}
