//! A small bounded retry for idempotent requests: honours `Retry-After`, gives up when GitLab
//! asks for a longer wait than the policy allows (the caller then schedules it itself).

use std::future::Future;
use std::time::Duration;

use crate::error::GitLabError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub attempts: u32,
    /// Wait before the second attempt when GitLab names none; doubles each time.
    pub first_backoff: Duration,
    /// Longest single wait; a longer `Retry-After` ends the retries.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(200),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy is exhausted.
/// Only for requests that are safe to repeat.
pub async fn retry_idempotent<T, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<T, GitLabError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GitLabError>>,
{
    let mut backoff = policy.first_backoff;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(err) if err.is_retryable() && tries < policy.attempts => {
                let wait = err.retry_after().unwrap_or(backoff);
                if wait > policy.max_wait {
                    return Err(err);
                }
                tokio::time::sleep(wait).await;
                backoff = backoff.saturating_mul(2).min(policy.max_wait);
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::ZERO,
        max_wait: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn retries_retryable_errors_up_to_the_limit() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry_idempotent(&FAST, || {
            calls.set(calls.get() + 1);
            async {
                Err(GitLabError::Server {
                    status: 502,
                    message: "bad gateway".to_owned(),
                })
            }
        })
        .await;
        assert!(matches!(result, Err(GitLabError::Server { .. })));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn stops_at_once_on_permanent_errors_and_on_success() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry_idempotent(&FAST, || {
            calls.set(calls.get() + 1);
            async {
                Err(GitLabError::NotFound {
                    message: "404".to_owned(),
                })
            }
        })
        .await;
        assert!(result.unwrap_err().is_not_found());
        assert_eq!(calls.get(), 1);

        let calls = Cell::new(0);
        let result = retry_idempotent(&FAST, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 2 {
                    Err(GitLabError::RateLimited {
                        retry_after: Some(Duration::ZERO),
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }

    #[tokio::test]
    async fn gives_up_when_gitlab_asks_for_a_longer_wait_than_allowed() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry_idempotent(&FAST, || {
            calls.set(calls.get() + 1);
            async {
                Err(GitLabError::RateLimited {
                    retry_after: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await;
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(calls.get(), 1);
    }
}
