//! The life of a run: `queued → starting → running → success | error | cancelled`, the events
//! that move it, and how each state is shown in GitLab and in dbt-platform terms.

use std::fmt;

crate::text_enum! {
    pub enum RunState ("run state") {
        /// A fork's commit, waiting for a Maintainer's approval before it is queued.
        AwaitingApproval = "awaiting_approval",
        /// Waiting for a worker.
        Queued = "queued",
        /// Claimed by a worker that is checking out the commit and writing the profile.
        Starting = "starting",
        /// dbt is running.
        Running = "running",
        Success = "success",
        Error = "error",
        Cancelled = "cancelled",
        /// Nothing for it to do (a merge request that changes no path the job watches).
        Skipped = "skipped",
    }
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Error | Self::Cancelled | Self::Skipped
        )
    }

    /// The commit status posted to GitLab for this state. A run being set up (checkout, path
    /// filter) stays `pending` until dbt starts: GitLab cannot move a `running` status to
    /// `skipped`, which a merge request outside the job's watched paths ends as.
    pub fn commit_status(self) -> CommitStatusState {
        match self {
            Self::AwaitingApproval | Self::Queued | Self::Starting => CommitStatusState::Pending,
            Self::Running => CommitStatusState::Running,
            Self::Success => CommitStatusState::Success,
            Self::Error => CommitStatusState::Failed,
            Self::Cancelled => CommitStatusState::Canceled,
            Self::Skipped => CommitStatusState::Skipped,
        }
    }

    /// The dbt platform's numeric run status (dbt-platform.md §5.1).
    pub fn dbt_status_code(self) -> u8 {
        match self {
            // The dbt platform has no such state; its "queued" is the nearest.
            Self::AwaitingApproval | Self::Queued => 1,
            Self::Starting => 2,
            Self::Running => 3,
            Self::Success => 10,
            Self::Error => 20,
            // The dbt platform has no skipped run; its cancelled is the nearest.
            Self::Cancelled | Self::Skipped => 30,
        }
    }
}

crate::text_enum! {
    /// GitLab's commit status states that lablink posts (gitlab-api.md §6.1); the texts are the
    /// `state` parameter of `POST /projects/:id/statuses/:sha`.
    pub enum CommitStatusState ("commit status") {
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failed = "failed",
        Canceled = "canceled",
        Skipped = "skipped",
    }
}

/// Something that happens to a run. Each event is the reason for the transition it causes;
/// `Display` is the sentence stored with the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A worker took the run from the queue.
    Claimed,
    /// The checkout and profile are ready and dbt has started.
    DbtStarted,
    /// Every command exited successfully.
    Succeeded,
    /// The run could not finish successfully.
    Failed(FailureReason),
    /// The run was stopped on purpose.
    Cancelled(CancelReason),
    /// The worker holding the run lost its lease (crashed or stalled); another one may retry it.
    LeaseExpired,
    /// The worker was stopping and gave the run back unfinished (its grace period ran out);
    /// another worker takes it from the queue.
    HandedBack,
    /// A Maintainer approved a fork's commit to run with the job's secrets.
    Approved { by: String },
    /// The run found nothing to do (the text says why).
    Skipped { why: String },
    /// A person runs an ended run again; a fork's commit that nobody approved waits for an
    /// approval again.
    Rerun { by: String, wait_for_approval: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// A dbt command exited with a non-zero code (`None`: killed by a signal).
    CommandFailed {
        command: String,
        exit_code: Option<i32>,
    },
    /// The run took longer than its job's timeout.
    TimedOut { seconds: u64 },
    /// Preparing the run failed (checkout, profile, missing dbt); the text says what.
    Setup(String),
    /// Workers lost the run too many times; it is given up instead of retried again.
    TooManyAttempts { attempts: u32 },
    /// A dbt command passed one of the run's limits and was stopped; the text says which.
    LimitExceeded { command: String, limit: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// A newer commit of the same merge request superseded this one.
    SupersededBy { sha: String },
    /// The merge request was closed or merged.
    MergeRequestClosed,
    /// A person cancelled it.
    ByUser { username: String },
    /// The job was disabled or deleted while the run waited.
    JobGone,
}

impl fmt::Display for RunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claimed => f.write_str("claimed by a worker"),
            Self::DbtStarted => f.write_str("dbt started"),
            Self::Succeeded => f.write_str("every dbt command succeeded"),
            Self::Failed(reason) => reason.fmt(f),
            Self::Cancelled(reason) => reason.fmt(f),
            Self::LeaseExpired => f.write_str("the worker stopped responding; queued again"),
            Self::HandedBack => f.write_str("the worker was shutting down; queued again"),
            Self::Approved { by } => write!(f, "from a fork: approved by {by}; queued"),
            Self::Skipped { why } => write!(f, "skipped: {why}"),
            Self::Rerun {
                by,
                wait_for_approval: false,
            } => write!(f, "run again by {by}; queued"),
            Self::Rerun {
                by,
                wait_for_approval: true,
            } => write!(
                f,
                "run again by {by}; from a fork: waiting for a Maintainer's approval"
            ),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandFailed {
                command,
                exit_code: Some(code),
            } => write!(f, "`{command}` failed with exit code {code}"),
            Self::CommandFailed {
                command,
                exit_code: None,
            } => write!(f, "`{command}` was killed by a signal"),
            Self::TimedOut { seconds } => write!(f, "timed out after {seconds} s"),
            Self::Setup(what) => write!(f, "could not prepare the run: {what}"),
            Self::TooManyAttempts { attempts } => {
                write!(f, "given up after {attempts} attempts lost by workers")
            }
            Self::LimitExceeded { command, limit } => write!(f, "`{command}` was stopped: {limit}"),
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SupersededBy { sha } => write!(f, "cancelled: superseded by commit {sha}"),
            Self::MergeRequestClosed => f.write_str("cancelled: the merge request was closed"),
            Self::ByUser { username } => write!(f, "cancelled by {username}"),
            Self::JobGone => f.write_str("cancelled: the job was disabled or deleted"),
        }
    }
}

impl RunEvent {
    /// A short name for error messages.
    fn name(&self) -> &'static str {
        match self {
            Self::Claimed => "claim",
            Self::DbtStarted => "start dbt for",
            Self::Succeeded => "succeed",
            Self::Failed(_) => "fail",
            Self::Cancelled(_) => "cancel",
            Self::LeaseExpired => "expire the lease of",
            Self::HandedBack => "hand back",
            Self::Approved { .. } => "approve",
            Self::Skipped { .. } => "skip",
            Self::Rerun { .. } => "run again",
        }
    }
}

/// An event that does not apply to the run's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The run has finished; callers usually treat this as "already done" (a late cancel, a
    /// replayed result).
    #[error("cannot {event} a run that already ended ({state})")]
    AlreadyEnded {
        state: RunState,
        event: &'static str,
    },
    #[error("cannot {event} a run that is {state}")]
    NotAllowed {
        state: RunState,
        event: &'static str,
    },
}

/// The state `event` moves a run in `state` to.
pub fn transition(state: RunState, event: &RunEvent) -> Result<RunState, TransitionError> {
    use RunState::*;
    let next = match (state, event) {
        (AwaitingApproval, RunEvent::Approved { .. }) => Queued,
        (AwaitingApproval, RunEvent::Cancelled(_)) => Cancelled,
        (Queued, RunEvent::Claimed) => Starting,
        (Starting, RunEvent::DbtStarted) => Running,
        (Starting, RunEvent::Skipped { .. }) => Skipped,
        (Running, RunEvent::Succeeded) => Success,
        (Starting | Running, RunEvent::Failed(_)) => Error,
        (Queued | Starting | Running, RunEvent::Cancelled(_)) => Cancelled,
        (Starting | Running, RunEvent::LeaseExpired | RunEvent::HandedBack) => Queued,
        (
            Success | Error | Cancelled | Skipped,
            RunEvent::Rerun {
                wait_for_approval, ..
            },
        ) => {
            if *wait_for_approval {
                AwaitingApproval
            } else {
                Queued
            }
        }
        (state, event) if state.is_terminal() => {
            return Err(TransitionError::AlreadyEnded {
                state,
                event: event.name(),
            });
        }
        (state, event) => {
            return Err(TransitionError::NotAllowed {
                state,
                event: event.name(),
            });
        }
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> RunEvent {
        RunEvent::Failed(FailureReason::CommandFailed {
            command: "dbt build".into(),
            exit_code: Some(1),
        })
    }

    fn cancelled() -> RunEvent {
        RunEvent::Cancelled(CancelReason::MergeRequestClosed)
    }

    fn all_events() -> Vec<RunEvent> {
        vec![
            RunEvent::Claimed,
            RunEvent::DbtStarted,
            RunEvent::Succeeded,
            failed(),
            cancelled(),
            RunEvent::LeaseExpired,
            RunEvent::HandedBack,
            approved(),
            skipped(),
            rerun(false),
            rerun(true),
        ]
    }

    fn rerun(wait_for_approval: bool) -> RunEvent {
        RunEvent::Rerun {
            by: "ada".into(),
            wait_for_approval,
        }
    }

    fn skipped() -> RunEvent {
        RunEvent::Skipped {
            why: "nothing under models/ changed".into(),
        }
    }

    fn approved() -> RunEvent {
        RunEvent::Approved { by: "ada".into() }
    }

    /// The complete table: every (state, event) pair that is allowed and where it leads.
    fn allowed(state: RunState, event: &RunEvent) -> Option<RunState> {
        use RunState::*;
        let table = [
            (AwaitingApproval, approved(), Queued),
            (AwaitingApproval, cancelled(), Cancelled),
            (Queued, RunEvent::Claimed, Starting),
            (Queued, cancelled(), Cancelled),
            (Starting, RunEvent::DbtStarted, Running),
            (Starting, skipped(), Skipped),
            (Starting, failed(), Error),
            (Starting, cancelled(), Cancelled),
            (Starting, RunEvent::LeaseExpired, Queued),
            (Starting, RunEvent::HandedBack, Queued),
            (Running, RunEvent::Succeeded, Success),
            (Running, failed(), Error),
            (Running, cancelled(), Cancelled),
            (Running, RunEvent::LeaseExpired, Queued),
            (Running, RunEvent::HandedBack, Queued),
            (Success, rerun(false), Queued),
            (Error, rerun(false), Queued),
            (Cancelled, rerun(false), Queued),
            (Skipped, rerun(false), Queued),
            (Success, rerun(true), AwaitingApproval),
            (Error, rerun(true), AwaitingApproval),
            (Cancelled, rerun(true), AwaitingApproval),
            (Skipped, rerun(true), AwaitingApproval),
        ];
        table
            .into_iter()
            .find(|(from, ev, _)| *from == state && ev == event)
            .map(|(_, _, to)| to)
    }

    #[test]
    fn every_state_and_event_follows_the_table() {
        for state in RunState::ALL {
            for event in all_events() {
                let got = transition(state, &event);
                match allowed(state, &event) {
                    Some(to) => assert_eq!(got, Ok(to), "{state} + {event:?}"),
                    None if state.is_terminal() => assert!(
                        matches!(got, Err(TransitionError::AlreadyEnded { .. })),
                        "{state} + {event:?} gave {got:?}"
                    ),
                    None => assert!(
                        matches!(got, Err(TransitionError::NotAllowed { .. })),
                        "{state} + {event:?} gave {got:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn the_happy_path_reaches_success() {
        let mut state = RunState::Queued;
        for event in [RunEvent::Claimed, RunEvent::DbtStarted, RunEvent::Succeeded] {
            state = transition(state, &event).unwrap();
        }
        assert_eq!(state, RunState::Success);
    }

    #[test]
    fn terminal_states_are_success_error_cancelled_and_skipped() {
        let terminal: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                RunState::Success,
                RunState::Error,
                RunState::Cancelled,
                RunState::Skipped
            ]
        );
    }

    #[test]
    fn states_map_to_gitlab_and_dbt_platform() {
        use CommitStatusState as C;
        let table = [
            (
                RunState::AwaitingApproval,
                "awaiting_approval",
                C::Pending,
                "pending",
                1,
            ),
            (RunState::Queued, "queued", C::Pending, "pending", 1),
            (RunState::Starting, "starting", C::Pending, "pending", 2),
            (RunState::Running, "running", C::Running, "running", 3),
            (RunState::Success, "success", C::Success, "success", 10),
            (RunState::Error, "error", C::Failed, "failed", 20),
            (
                RunState::Cancelled,
                "cancelled",
                C::Canceled,
                "canceled",
                30,
            ),
            (RunState::Skipped, "skipped", C::Skipped, "skipped", 30),
        ];
        for (state, name, status, status_name, code) in table {
            assert_eq!(state.as_str(), name);
            assert_eq!(name.parse::<RunState>(), Ok(state));
            assert_eq!(state.commit_status(), status);
            assert_eq!(status.as_str(), status_name);
            assert_eq!(state.dbt_status_code(), code);
        }
    }

    #[test]
    fn unknown_state_names_are_rejected() {
        let err = "done".parse::<RunState>().unwrap_err();
        assert_eq!(err.value, "done");
        assert!(err.to_string().contains("queued"));
    }

    #[test]
    fn every_transition_reason_is_a_plain_sentence() {
        let cases = [
            (RunEvent::Claimed, "claimed by a worker"),
            (RunEvent::DbtStarted, "dbt started"),
            (RunEvent::Succeeded, "every dbt command succeeded"),
            (failed(), "`dbt build` failed with exit code 1"),
            (
                RunEvent::Failed(FailureReason::CommandFailed {
                    command: "dbt run".into(),
                    exit_code: None,
                }),
                "`dbt run` was killed by a signal",
            ),
            (
                RunEvent::Failed(FailureReason::TimedOut { seconds: 60 }),
                "timed out after 60 s",
            ),
            (
                RunEvent::Failed(FailureReason::Setup("checkout failed".into())),
                "could not prepare the run: checkout failed",
            ),
            (
                RunEvent::Failed(FailureReason::TooManyAttempts { attempts: 3 }),
                "given up after 3 attempts lost by workers",
            ),
            (
                RunEvent::Cancelled(CancelReason::SupersededBy { sha: "abc".into() }),
                "cancelled: superseded by commit abc",
            ),
            (cancelled(), "cancelled: the merge request was closed"),
            (
                RunEvent::Cancelled(CancelReason::ByUser {
                    username: "ada".into(),
                }),
                "cancelled by ada",
            ),
            (
                RunEvent::Cancelled(CancelReason::JobGone),
                "cancelled: the job was disabled or deleted",
            ),
            (
                RunEvent::LeaseExpired,
                "the worker stopped responding; queued again",
            ),
            (
                RunEvent::HandedBack,
                "the worker was shutting down; queued again",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }

    #[test]
    fn transition_errors_say_what_was_attempted() {
        let err = transition(RunState::Success, &cancelled()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot cancel a run that already ended (success)"
        );
        let err = transition(RunState::Queued, &RunEvent::Succeeded).unwrap_err();
        assert_eq!(err.to_string(), "cannot succeed a run that is queued");
    }
}
