//! Continuous integration: webhook intake ([`intake`]), turning deliveries into runs
//! ([`events`]), running real dbt ([`executor`]), reporting commit statuses ([`statuses`]),
//! catching up on lost webhooks ([`reconcile`]), CI job management ([`jobs`]), run views
//! ([`runs`]), the worktrees runs check out into ([`worktrees`]) and the background loops that
//! drive it all ([`worker`], woken by [`wake`]).

pub mod events;
pub mod executor;
pub(crate) mod hook_secret_cache;
pub mod intake;
pub mod jobs;
pub mod reconcile;
mod report;
pub mod runs;
mod schemas;
pub mod statuses;
pub mod wake;
pub mod worker;
pub mod worktrees;

use lablink_core::run::{RunEvent, RunState, TransitionError, transition};
use lablink_store::runs::{Holder, Transition};

use crate::{ServiceError, Services};

impl Services {
    /// Applies `event` to a run in `from` through the domain's transition rules; `false` when the
    /// run had moved on meanwhile.
    pub(crate) async fn apply_run_event(
        &self,
        run_id: &str,
        from: RunState,
        holder: Holder<'_>,
        event: &RunEvent,
    ) -> Result<bool, ServiceError> {
        let to = transition(from, event)
            .map_err(|e: TransitionError| ServiceError::Conflict(format!("run {run_id}: {e}")))?;
        let reason = event.to_string();
        let moved = self
            .db
            .transition_run(
                run_id,
                holder,
                &Transition {
                    from,
                    to,
                    reason: &reason,
                    approved_by: match event {
                        RunEvent::Approved { by } => Some(by),
                        _ => None,
                    },
                },
            )
            .await?;
        Ok(moved)
    }
}
