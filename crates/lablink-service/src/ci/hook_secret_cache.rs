//! Webhook secrets kept in memory for a moment, so intake does not read and decrypt them from the
//! database on every delivery (a burst is thousands per second for one repository).
//!
//! Only secrets that verified a delivery are kept, and only for [`FRESH_FOR`]: a delivery that a
//! kept secret does not verify is checked again against the database before it is refused, so a
//! secret changed by another replica is picked up at once, and a disconnected repository stops
//! being accepted within [`FRESH_FOR`]. Unknown repositories are never kept, so refused senders
//! cannot fill the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lablink_store::deliveries::HookSecrets;

const FRESH_FOR: Duration = Duration::from_secs(2);
/// Above this many entries, stale ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 4096;

#[derive(Default)]
pub struct HookSecretCache {
    entries: Mutex<HashMap<String, (Instant, Arc<HookSecrets>)>>,
}

impl std::fmt::Debug for HookSecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecretCache").finish_non_exhaustive()
    }
}

impl HookSecretCache {
    /// The repository's secrets if they were read less than [`FRESH_FOR`] ago.
    pub fn fresh(&self, repository_id: &str) -> Option<Arc<HookSecrets>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(repository_id)
            .filter(|(read_at, _)| read_at.elapsed() < FRESH_FOR)
            .map(|(_, secrets)| Arc::clone(secrets))
    }

    /// Keeps secrets that have just verified a delivery.
    pub fn remember(&self, repository_id: &str, secrets: Arc<HookSecrets>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, (read_at, _)| read_at.elapsed() < FRESH_FOR);
        }
        entries.insert(repository_id.to_owned(), (Instant::now(), secrets));
    }

    /// Drops a repository's secrets (they changed or the repository is gone).
    pub fn forget(&self, repository_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(repository_id);
    }
}
