//! In-process wake-ups of the CI loops. Work committed by this replica wakes the loop that
//! handles it at once instead of at its next poll, which keeps "MR opened → pending" short
//! without polling harder. Other replicas still find the work by polling: the database stays the
//! only source of truth, a lost wake-up only costs one poll interval.

use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Wakeups {
    /// Deliveries were stored.
    pub deliveries: Arc<Notify>,
    /// Runs were queued.
    pub runs: Arc<Notify>,
    /// Commit statuses were queued.
    pub statuses: Arc<Notify>,
}
