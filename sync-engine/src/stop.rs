//! Why and when a pass stops early; checked at page boundaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::time::Instant;

/// The reason a pass stopped before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The pass's deadline (`--max-duration`, the Functions timeout) passed.
    Deadline,
    /// SIGINT or SIGTERM.
    Signal,
    /// Xledger's credits are exhausted beyond the allowed wait.
    CreditsExhausted,
    /// A lease could not be renewed: another process may have taken the entity over.
    LeaseLost,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Deadline => 1,
            StopReason::Signal => 2,
            StopReason::CreditsExhausted => 3,
            StopReason::LeaseLost => 4,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        [StopReason::Deadline, StopReason::Signal, StopReason::CreditsExhausted, StopReason::LeaseLost]
            .into_iter()
            .find(|reason| reason.code() == code)
    }
}

/// Shared by everything a pass runs: the first reason to stop wins, and every entity stops at its
/// next page boundary. The deadline is on tokio's clock, so tests can pause it.
#[derive(Debug, Default)]
pub struct StopSignal {
    reason: AtomicU8,
    deadline: Option<Instant>,
}

impl StopSignal {
    pub fn new(deadline: Option<Instant>) -> Arc<Self> {
        Arc::new(StopSignal { reason: AtomicU8::new(0), deadline })
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Asks every entity to stop at its next page boundary (the first reason given is kept).
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(0, reason.code(), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// `Some` once the pass should stop.
    pub fn check(&self) -> Option<StopReason> {
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            self.stop(StopReason::Deadline);
        }
        StopReason::from_code(self.reason.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_reason_wins_and_the_deadline_stops_on_its_own() {
        let stop = StopSignal::new(Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(stop.check(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(stop.check(), Some(StopReason::Deadline));
        stop.stop(StopReason::Signal);
        assert_eq!(stop.check(), Some(StopReason::Deadline));
        let manual = StopSignal::new(None);
        manual.stop(StopReason::LeaseLost);
        manual.stop(StopReason::Signal);
        assert_eq!(manual.check(), Some(StopReason::LeaseLost));
    }
}
