use lablink_store::StoreError;
use thiserror::Error;

/// The service's one error type. Messages are written for the person who sees them.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The caller is not signed in, or their credentials are no longer valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The input was not acceptable; the message says why and what to do.
    #[error("{0}")]
    BadInput(String),
    /// One field of a form or request body is not acceptable (forms show the message next to
    /// that field); `field` is the field's name in the form and the API.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// GitLab's API could not be reached or refused; its message says what to do.
    #[error("{0}")]
    GitLab(#[from] lablink_gitlab::GitLabError),
    /// Work with GitLab of several steps (a connect, a disconnect, a clone or fetch over git)
    /// failed; the message says which step, what is left behind and what to do.
    #[error("{0}")]
    Remote(String),
    /// The user's GitLab link no longer works; the message tells them to link again.
    #[error("{0}")]
    LinkDead(String),
    #[error("Too many failed sign-in attempts. Try again in {retry_after_secs} s.")]
    Throttled { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::NotFound(what) => ServiceError::NotFound(format!("{what} not found")),
            other => ServiceError::Store(other),
        }
    }
}

/// Refuses unless `allowed`, with a message saying why.
pub(crate) fn require(allowed: bool, why: &str) -> Result<(), ServiceError> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(why.to_owned()))
    }
}
