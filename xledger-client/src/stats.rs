//! Per-client accounting for the run summary: requests, retries by reason, bytes on the wire.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what a client (and all its clones) did since it was created.
///
/// Bytes are HTTP bodies as transferred: the JSON request bodies sent and the response bodies
/// received *before* decompression, i.e. what Xledger's "MB downloaded/uploaded" allowance counts.
/// Headers are not included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries by [`ErrorKind::reason`](crate::ErrorKind::reason), e.g. `burst_rate_limit`, `http_503`.
    pub retries_by_reason: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    /// Response body bytes as received (compressed when the server gzipped them).
    pub bytes_received: u64,
}

impl ClientStats {
    /// All retries, whatever the reason.
    pub fn retries(&self) -> u64 {
        self.retries_by_reason.values().sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    retries: Mutex<BTreeMap<String, u64>>,
}

impl StatsCounters {
    pub fn request_sent(&self, body_bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body_bytes as u64, Ordering::Relaxed);
    }

    pub fn bytes_received(&self, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn retry(&self, reason: String) {
        // A poisoned map only means another thread panicked mid-increment; the counts stay usable.
        let mut retries = self.retries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *retries.entry(reason).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> ClientStats {
        let retries = self.retries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries_by_reason: retries,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }
}
