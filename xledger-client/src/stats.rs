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
    /// The same counts per entity ([`RequestContext::entity`](crate::RequestContext)); requests
    /// without an entity (the batched probe) are only in the totals.
    pub by_entity: BTreeMap<String, EntityTraffic>,
}

/// Requests and bytes of one entity's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntityTraffic {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl ClientStats {
    /// One entity's traffic (zero when it sent nothing).
    pub fn entity(&self, entity: &str) -> EntityTraffic {
        self.by_entity.get(entity).copied().unwrap_or_default()
    }

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
    by_entity: Mutex<BTreeMap<String, EntityTraffic>>,
}

impl StatsCounters {
    pub fn request_sent(&self, entity: Option<&str>, body_bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body_bytes as u64, Ordering::Relaxed);
        self.for_entity(entity, |t| {
            t.requests += 1;
            t.bytes_sent += body_bytes as u64;
        });
    }

    pub fn bytes_received(&self, entity: Option<&str>, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
        self.for_entity(entity, |t| t.bytes_received += bytes as u64);
    }

    fn for_entity(&self, entity: Option<&str>, update: impl FnOnce(&mut EntityTraffic)) {
        let Some(entity) = entity else { return };
        // As for retries: a poisoned map still holds usable counts.
        let mut map = self.by_entity.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match map.get_mut(entity) {
            Some(traffic) => update(traffic),
            None => update(map.entry(entity.to_owned()).or_default()),
        }
    }

    pub fn retry(&self, reason: String) {
        // A poisoned map only means another thread panicked mid-increment; the counts stay usable.
        let mut retries = self.retries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *retries.entry(reason).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> ClientStats {
        let retries = self.retries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let by_entity = self.by_entity.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries_by_reason: retries,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            by_entity,
        }
    }
}
