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
    #[error("git {operation} failed: {}", why_git_failed(message, *code))]
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

/// git's own words when it gave some (its last line is the one that says what went wrong),
/// otherwise how it ended.
fn why_git_failed(message: &str, code: Option<i32>) -> String {
    match (message.trim(), code) {
        ("", Some(code)) => format!("it stopped with exit code {code} and gave no reason"),
        ("", None) => "it was stopped by a signal".to_owned(),
        (said, _) => said
            .trim_start_matches("fatal: ")
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::ExecError;

    #[test]
    fn git_failures_read_as_sentences() {
        let failed = |message: &str, code| {
            ExecError::GitFailed {
                operation: "add",
                code,
                message: message.into(),
            }
            .to_string()
        };
        assert_eq!(
            failed("fatal: pathspec 'x' did not match any files", Some(128)),
            "git add failed: pathspec 'x' did not match any files"
        );
        assert_eq!(
            failed("", Some(1)),
            "git add failed: it stopped with exit code 1 and gave no reason"
        );
        assert!(!failed("", None).contains("None"));
    }
}
