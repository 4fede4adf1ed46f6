//! The one error type of this crate. Messages never contain credentials: git's output is
//! redacted before it gets here and remote URLs never carry userinfo.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("could not start {program} in {cwd}: {source}")]
    Spawn {
        program: String,
        cwd: PathBuf,
        source: std::io::Error,
    },
    #[error("the started process has no id")]
    NoPid,
    #[error("could not wait for the process: {0}")]
    Wait(std::io::Error),
    #[error("git {operation} failed with exit code {code:?}: {message}")]
    GitFailed {
        operation: &'static str,
        code: Option<i32>,
        message: String,
    },
    #[error("git {operation} timed out")]
    TimedOut { operation: &'static str },
    #[error("git {operation} was cancelled")]
    Cancelled { operation: &'static str },
    #[error("git {operation} was stopped: {exceeded}")]
    LimitExceeded {
        operation: &'static str,
        exceeded: crate::limits::LimitExceeded,
    },
    #[error("the remote rejected the push to {branch}: {message}")]
    PushRejected { branch: String, message: String },
    #[error("the remote URL must not contain a user name or password")]
    CredentialsInUrl,
    #[error("invalid {what}: {value:?}")]
    InvalidInput { what: &'static str, value: String },
    #[error("commit {0} is not in the remote repository")]
    CommitNotFound(String),
    #[error("{path} is not a worktree of this cache")]
    NotAWorktree { path: PathBuf },
    #[error("could not prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
