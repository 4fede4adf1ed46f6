//! In-process wake-ups of the CI loops. Work committed by this replica wakes the loop that
//! handles it at once instead of at its next poll, which keeps "MR opened → pending" short
//! without polling harder. Other replicas still find the work by polling: the database stays the
//! only source of truth, a lost wake-up only costs one poll interval.
//!
//! Intake also tells this replica's delivery processors when it is saturated
//! ([`IntakePressure`]), so that on a shared machine they leave the CPU to accepting deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Wakeups {
    /// Deliveries were stored.
    pub deliveries: Arc<Notify>,
    /// Runs were queued.
    pub runs: Arc<Notify>,
    /// Commit statuses were queued.
    pub statuses: Arc<Notify>,
    pub intake: IntakePressure,
}

/// A batch at least this big means requests queued while the previous commit ran: the writer,
/// not the arrival rate, is what limits intake then.
const SATURATED_BATCH: usize = 8;
/// How long one saturated batch counts as "intake is busy".
const SATURATION_LASTS: Duration = Duration::from_millis(100);
/// The longest the delivery processors hold back before they take one batch anyway, so that a
/// sustained flood still gets processed (a batch per pause and processor).
const MAX_HOLD_BACK: Duration = Duration::from_millis(250);

/// Whether webhook intake on this replica is saturated. Accepting a delivery is what GitLab waits
/// for (it times out after 10 s and disables hooks that keep failing); processing it can wait a
/// moment, so during a burst the delivery processors here pause and catch up right after.
/// Replicas without intake pressure process as usual.
#[derive(Debug, Default)]
pub struct IntakePressure {
    /// Milliseconds since [`origin`] of the last saturated batch, plus one (0: never).
    saturated_at: AtomicU64,
    /// When the processors started holding back, likewise (0: they are not).
    holding_since: AtomicU64,
}

impl IntakePressure {
    /// Called by the intake writer for every committed batch.
    pub fn record_batch(&self, size: usize) {
        self.record_batch_at(size, now());
    }

    /// Whether the delivery processors should wait instead of claiming a batch now.
    pub fn hold_back(&self) -> bool {
        self.hold_back_at(now())
    }

    fn record_batch_at(&self, size: usize, now: u64) {
        if size >= SATURATED_BATCH {
            self.saturated_at.store(now, Ordering::Relaxed);
        }
    }

    fn hold_back_at(&self, now: u64) -> bool {
        let saturated_at = self.saturated_at.load(Ordering::Relaxed);
        if saturated_at == 0 || now.saturating_sub(saturated_at) > millis(SATURATION_LASTS) {
            self.holding_since.store(0, Ordering::Relaxed);
            return false;
        }
        match self.holding_since.load(Ordering::Relaxed) {
            0 => {
                self.holding_since.store(now, Ordering::Relaxed);
                true
            }
            since if now.saturating_sub(since) < millis(MAX_HOLD_BACK) => true,
            _ => {
                // Take one batch, then hold back again.
                self.holding_since.store(0, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Milliseconds on a monotonic clock, from 1 (so 0 can mean "never").
fn now() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    millis(ORIGIN.get_or_init(Instant::now).elapsed()) + 1
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_hold_back_only_while_intake_is_saturated_and_never_for_long() {
        let pressure = IntakePressure::default();
        let t = 1_000_000;
        assert!(!pressure.hold_back_at(t), "no batch yet");
        pressure.record_batch_at(SATURATED_BATCH - 1, t);
        assert!(
            !pressure.hold_back_at(t),
            "small batches are not saturation"
        );
        pressure.record_batch_at(SATURATED_BATCH, t);
        assert!(pressure.hold_back_at(t));
        assert!(pressure.hold_back_at(t + 50));
        // Saturated all along, but held back for as long as allowed: one batch is taken, then
        // the pause starts again.
        let late = t + millis(MAX_HOLD_BACK);
        pressure.record_batch_at(SATURATED_BATCH, late);
        assert!(!pressure.hold_back_at(late));
        assert!(pressure.hold_back_at(late));
        // Saturation that has passed holds nothing back.
        assert!(!pressure.hold_back_at(late + millis(SATURATION_LASTS) + 1));
        assert!(!pressure.hold_back_at(late + millis(SATURATION_LASTS) + 2));
    }
}
