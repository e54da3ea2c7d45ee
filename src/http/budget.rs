//! The memory budget for request bodies: how many bytes all connections together may hold.
//!
//! Without it, h2c's multiplexing let one client hold a body per stream: `h2load -c 10 -m 200`
//! with 1 MB bodies took the process to 2.4 GB, and Cloud Run kills an instance over its memory
//! limit, with every request in flight on it. Each `/echo` reserves its body's bytes before
//! reading them (all at once for a declared length, in growing steps for a streamed one) and
//! gives them back when its answer has been sent. A request the budget cannot take is answered
//! `503` with `retry-after` at once rather than queued, so a burst cannot build a queue either.
//!
//! The default is a quarter of the container's memory limit, read once at start-up from the
//! cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`; Cloud Run sets it from the service's
//! memory limit), else [`FALLBACK_BUDGET`]. The other three quarters are for what the budget
//! does not count: per-connection buffers (HTTP/2 windows, read and write buffers), the
//! allocator's slack, the binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Without a cgroup limit: a quarter of 256 MiB, the memory `service.yaml` asks for.
pub const FALLBACK_BUDGET: usize = 64 * 1024 * 1024;
/// The budget is this fraction of the memory limit.
const SHARE_OF_LIMIT: u64 = 4;
/// cgroup v2: `max`, or a number of bytes.
const CGROUP_V2_MAX: &str = "/sys/fs/cgroup/memory.max";
/// cgroup v1: a number of bytes, close to `i64::MAX` when there is no limit.
const CGROUP_V1_LIMIT: &str = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
/// A v1 "limit" above this means none (the kernel reports `i64::MAX` rounded to a page).
const NO_LIMIT: u64 = 1 << 60;

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
    /// A quarter of the cgroup memory limit.
    Cgroup,
    /// No limit found: [`FALLBACK_BUDGET`].
    Fallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Cgroup => "cgroup",
            Self::Fallback => "fallback",
        }
    }
}

/// The budget for this container: a quarter of its cgroup memory limit but at least `floor`
/// (the largest body, or it could not take one at all), else the fallback.
pub fn from_memory_limit(floor: usize) -> (usize, Source) {
    let read = |path| std::fs::read_to_string(path).ok();
    derive(
        read(CGROUP_V2_MAX).as_deref(),
        read(CGROUP_V1_LIMIT).as_deref(),
        floor,
    )
}

/// [`from_memory_limit`] given the two files' contents.
fn derive(v2: Option<&str>, v1: Option<&str>, floor: usize) -> (usize, Source) {
    let limit = v2
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| v1.and_then(|v| v.trim().parse::<u64>().ok()))
        .filter(|&bytes| bytes < NO_LIMIT);
    match limit {
        Some(bytes) => (
            usize::try_from(bytes / SHARE_OF_LIMIT)
                .unwrap_or(usize::MAX)
                .max(floor),
            Source::Cgroup,
        ),
        None => (FALLBACK_BUDGET, Source::Fallback),
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
    fn the_default_is_a_quarter_of_the_cgroup_limit() {
        // cgroup v2 with a 256 MiB limit (service.yaml), v1 likewise.
        assert_eq!(
            derive(Some("268435456\n"), None, FLOOR),
            (64 * MIB, Source::Cgroup)
        );
        assert_eq!(
            derive(None, Some("536870912\n"), FLOOR),
            (128 * MIB, Source::Cgroup)
        );
        // A tiny limit still takes one largest body.
        assert_eq!(
            derive(Some("1048576\n"), None, FLOOR),
            (MIB, Source::Cgroup)
        );
    }

    #[test]
    fn no_cgroup_limit_falls_back_to_a_fixed_figure() {
        let fallback = (FALLBACK_BUDGET, Source::Fallback);
        assert_eq!(derive(None, None, FLOOR), fallback);
        assert_eq!(derive(Some("max\n"), None, FLOOR), fallback);
        // v1's "unlimited": i64::MAX rounded down to a page.
        assert_eq!(derive(None, Some("9223372036854771712\n"), FLOOR), fallback);
        assert_eq!(
            derive(Some("max\n"), Some("9223372036854771712\n"), FLOOR),
            fallback
        );
        assert_eq!(derive(Some("garbage"), None, FLOOR), fallback);
    }
}
