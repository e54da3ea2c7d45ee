//! The listening socket: bound with an accept queue deep enough for a burst of new connections.
//!
//! `tokio::net::TcpListener::bind` (through mio, like std) asks `listen(2)` for a backlog of 128.
//! When more connections than that finish their handshake before the server accepts them, as
//! when a scaled-from-zero instance gets the requests queued while it started, or on a busy
//! machine where the server waits for a CPU, Linux drops the surplus SYNs and each of those
//! clients waits for its 1 s SYN retransmit: a second of latency that no log shows.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The accept queue the server asks for. Linux caps it at `net.core.somaxconn`, whose default
/// (since 5.4, and per network namespace, so also in a container) is 4096; Go's `net` package
/// asks for that cap too. It is above Cloud Run's largest per-instance concurrency (1000), so
/// even a burst in which every request opens its own connection fits while the server is
/// starting or starved of CPU. A deep queue costs nothing while it is empty: it holds only
/// connections that completed their handshake, which the kernel has allocated anyway.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` for listening with [`BACKLOG`]. `SO_REUSEADDR` is set, as std and mio set it,
/// so a restarted server can bind again while the old one's connections sit in `TIME_WAIT`.
///
/// Must be called inside a tokio runtime (the socket is registered with its reactor).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
