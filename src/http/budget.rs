//! The memory budget for request bodies: how many bytes all connections together may hold.
//!
//! Without it, h2c's multiplexing let one client hold a body per stream: `h2load -c 10 -m 200`
//! with 1 MB bodies took the process to 2.4 GB, and Cloud Run kills an instance over its memory
//! limit, with every request in flight on it. Each body takes from the budget as its bytes
//! arrive (see `body::read_body`) and gives them back when its answer has been sent: a client
//! holds what it has sent, not what it declared. A request the budget cannot take is answered
//! `503` with `retry-after` rather than queued, so a burst cannot build a queue either.
//!
//! The default ([`size`]) is a quarter of the container's memory limit (read once at start-up
//! from the process's own cgroup, `crate::cgroup`; Cloud Run sets it from the service's memory
//! limit), else [`FALLBACK_BUDGET`]; a `BODY_BUDGET` above the memory limit is capped to it.
//! The other three quarters are for what the budget does not count: per-connection buffers
//! (HTTP/2 windows, read and write buffers), the allocator's slack, the binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Without a cgroup limit: a quarter of 256 MiB, the memory `service.yaml` asks for.
pub const FALLBACK_BUDGET: usize = 64 * 1024 * 1024;
/// The budget is this fraction of the memory limit.
const SHARE_OF_LIMIT: usize = 4;

/// Bytes that request bodies may hold, across all connections.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    held: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// A reservation of nothing yet, to grow as a body arrives ([`Reservation::grow_to`]).
    pub fn empty(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }

    /// `bytes` more for one body, or `None` if that would pass the limit.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Relaxed, Relaxed, |held| {
                held.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }
}

/// Bytes held for one body, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Grows the reservation to `total` bytes; `false` (and unchanged) if the budget cannot.
    pub fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        if !self.budget.take(total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Relaxed);
    }
}

/// Where the budget's size came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `BODY_BUDGET`.
    Environment,
    /// `BODY_BUDGET`, above the memory limit and capped to it.
    EnvironmentCapped,
    /// A quarter of the cgroup memory limit.
    Cgroup,
    /// No limit found: [`FALLBACK_BUDGET`].
    Fallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::EnvironmentCapped => "environment, capped to the memory limit",
            Self::Cgroup => "cgroup",
            Self::Fallback => "fallback",
        }
    }
}

/// The budget's size: `configured` (`BODY_BUDGET`) if set, but never above `memory_limit`; else
/// a quarter of `memory_limit`; else [`FALLBACK_BUDGET`]. Never below `floor` (the largest body,
/// or it could not take one at all).
pub fn size(configured: Option<usize>, memory_limit: Option<u64>, floor: usize) -> (usize, Source) {
    let limit = memory_limit.map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
    match (configured, limit) {
        (Some(bytes), Some(limit)) if bytes > limit => {
            (limit.max(floor), Source::EnvironmentCapped)
        }
        (Some(bytes), _) => (bytes, Source::Environment),
        (None, Some(limit)) => ((limit / SHARE_OF_LIMIT).max(floor), Source::Cgroup),
        (None, None) => (FALLBACK_BUDGET, Source::Fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;
    /// The largest body, as `main` passes it.
    const FLOOR: usize = MIB;

    #[test]
    fn reservations_are_refused_past_the_limit_and_given_back_on_drop() {
        let budget = Budget::new(3 * MIB);
        let a = budget.reserve(2 * MIB).unwrap();
        assert!(budget.reserve(2 * MIB).is_none());
        let mut b = budget.reserve(MIB / 2).unwrap();
        assert!(b.grow_to(MIB));
        assert!(!b.grow_to(MIB + 1));
        assert_eq!(b.bytes(), MIB);
        assert_eq!(budget.held(), 3 * MIB);
        drop(a);
        assert_eq!(budget.held(), MIB);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn the_default_is_a_quarter_of_the_memory_limit() {
        // service.yaml's 256 MiB.
        assert_eq!(
            size(None, Some(256 << 20), FLOOR),
            (64 * MIB, Source::Cgroup)
        );
        // A tiny limit still takes one largest body.
        assert_eq!(size(None, Some(1 << 20), FLOOR), (MIB, Source::Cgroup));
        assert_eq!(size(None, None, FLOOR), (FALLBACK_BUDGET, Source::Fallback));
    }

    #[test]
    fn body_budget_is_taken_up_to_the_memory_limit() {
        assert_eq!(
            size(Some(8 * MIB), Some(256 << 20), FLOOR),
            (8 * MIB, Source::Environment)
        );
        assert_eq!(
            size(Some(8 * MIB), None, FLOOR),
            (8 * MIB, Source::Environment)
        );
        assert_eq!(
            size(Some(1 << 40), Some(256 << 20), FLOOR),
            (256 * MIB, Source::EnvironmentCapped)
        );
    }
}
