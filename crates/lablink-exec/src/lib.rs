//! Running external programs for lablink: the git CLI driver ([`git`]) and the process runner for
//! dbt and git ([`process`]), with redaction of secrets from their output ([`redact`]), and exclusive
//! claims on reusable directories such as worktrees ([`slot`]). Processes that run repository
//! content start in a [`sandbox`] within [`limits`].

pub mod dbt;
mod error;
pub mod git;
mod git_objects;
mod git_workspace;
pub mod limits;
pub mod process;
pub mod redact;
pub mod sandbox;
pub mod slot;

pub use error::ExecError;
pub use git::{Git, GitConfig, GitCredential, Identity, Remote, SshAccess, WorktreeState};
pub use git_objects::{CommitMessage, TreeEdit, TreeEntry};
pub use git_workspace::{FileState, MergeOutcome, StatusEntry};
pub use process::{LogLine, ProcessSpec, Stream, Termination, run};
pub use redact::Redactor;
pub use slot::DirClaim;
