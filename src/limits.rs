//! The process's own limits: open files, and how many connections it keeps.
//!
//! Each connection is a file descriptor. Some systems start processes with a soft
//! `RLIMIT_NOFILE` of 256 or 1024 for programs that use `select(2)`; Go raises the soft limit to
//! the hard one for every program at start-up (`src/os/rlimit.go`: "Go does not use select, so
//! it should not be subject to these limits"), and so does this server, which uses epoll.
//!
//! The connection cap ([`max_connections`]) keeps idle connections from growing memory until
//! the instance is killed, and from using every descriptor: past it the connections idle
//! longest are closed first (see `server::serve`).

use std::io;

/// The soft limit assumed when it cannot be read: the one Linux gives its first process
/// (`INR_OPEN_CUR`, `include/uapi/linux/fs.h`).
pub const ASSUMED_OPEN_FILES: u64 = 1024;
/// Descriptors kept for other than connections: standard streams, epoll, the listening socket,
/// the signal pipe, and headroom.
const RESERVED_DESCRIPTORS: u64 = 64;
/// Memory allowed per connection when deriving the cap: above the largest an idle one costs
/// (bench/README.md, "Idle connections": about 16 KiB after a small request, up to 120 KiB
/// after a large body, whose buffers hyper keeps).
const MEMORY_PER_CONNECTION: u64 = 128 * 1024;
/// The cap is this fraction of the memory limit's worth of connections (the body budget takes
/// another quarter).
const SHARE_OF_LIMIT: u64 = 4;
/// Never fewer: Cloud Run's default concurrency is 80 requests per instance.
const MIN_CONNECTIONS: usize = 128;

/// `RLIMIT_NOFILE` before and after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub was: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_open_files() -> io::Result<OpenFiles> {
    let (was, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(OpenFiles { was, soft, hard })
}

/// Where the connection cap came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapSource {
    /// `MAX_CONNECTIONS`.
    Environment,
    /// A quarter of the memory limit, at [`MEMORY_PER_CONNECTION`] each.
    Memory,
    /// The open file limit, less [`RESERVED_DESCRIPTORS`].
    Descriptors,
}

impl CapSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Memory => "memory limit",
            Self::Descriptors => "open file limit",
        }
    }
}

/// The connection cap: `MAX_CONNECTIONS` when set, else the lower of what the memory limit and
/// the open file limit allow.
pub fn max_connections(
    configured: Option<usize>,
    memory_limit: Option<u64>,
    open_files: u64,
) -> (usize, CapSource) {
    if let Some(n) = configured {
        return (n, CapSource::Environment);
    }
    let by_fds = usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS))
        .unwrap_or(usize::MAX)
        .max(1);
    let by_memory = memory_limit
        .map(|bytes| bytes / SHARE_OF_LIMIT / MEMORY_PER_CONNECTION)
        .map(|n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .max(MIN_CONNECTIONS)
        });
    match by_memory {
        Some(n) if n < by_fds => (n, CapSource::Memory),
        _ => (by_fds, CapSource::Descriptors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_cap_is_the_lower_of_memory_and_descriptors_unless_set() {
        assert_eq!(
            max_connections(Some(7), Some(256 * MIB), 1024),
            (7, CapSource::Environment)
        );
        // service.yaml's 256 MiB: a quarter at 128 KiB each.
        assert_eq!(
            max_connections(None, Some(256 * MIB), 1 << 20),
            (512, CapSource::Memory)
        );
        assert_eq!(
            max_connections(None, Some(256 * MIB), 256),
            (192, CapSource::Descriptors)
        );
        assert_eq!(
            max_connections(None, None, 20_000),
            (19_936, CapSource::Descriptors)
        );
        // A tiny memory limit still serves Cloud Run's default concurrency.
        assert_eq!(
            max_connections(None, Some(16 * MIB), 1 << 20),
            (128, CapSource::Memory)
        );
    }
}
