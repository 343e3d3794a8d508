//! The clock rate limits count in: real time, which a test moves forward instead of sleeping
//! until a client's bucket refills.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ServiceClock {
    started: Instant,
    skipped_nanos: Arc<AtomicU64>,
}

impl ServiceClock {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            skipped_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The time since the clock was made, and what [`Self::advance`] skipped.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed() + Duration::from_nanos(self.skipped_nanos.load(Ordering::Relaxed))
    }

    /// Moves this clock and its copies forward, as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.skipped_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Default for ServiceClock {
    fn default() -> Self {
        Self::new()
    }
}

impl governor::clock::Clock for ServiceClock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> Self::Instant {
        self.elapsed().into()
    }
}

/// The wait before try `attempts + 1`: `delay` doubled per try so far, times 0.5 to 1.5, so
/// that clients who failed together do not come back together.
pub fn backoff(delay: Duration, attempts: u32) -> Duration {
    let doubled = delay.saturating_mul(1 << attempts.saturating_sub(1).min(16));
    let jitter = 0.5 + rand::random::<f64>();
    doubled.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy_forward() {
        let clock = ServiceClock::new();
        let copy = clock.clone();
        let before = copy.elapsed();
        clock.advance(Duration::from_secs(90));
        assert!(copy.elapsed() >= before + Duration::from_secs(90));
        assert!(copy.elapsed() < before + Duration::from_secs(91));
    }
}
