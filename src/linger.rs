//! Lingering close: an HTTP/1 connection that ends with an answer is half-closed, and what the
//! client still sends is read and thrown away for a while, before the socket is closed.
//!
//! Closing a socket whose receive queue holds unread bytes, or that receives more afterwards,
//! makes the kernel answer with a TCP reset, and a reset can destroy the answer the client has
//! not read yet. A `413` sent before a 5 MB upload ends, or a `400` for a head with bytes behind
//! it, then reaches Node's `fetch` and Python's `http.client` as EPIPE / ECONNRESET instead. RFC
//! 9112 §9.6 ("Tear-down") describes the remedy servers use, nginx's `lingering_close`: close
//! the write side first, keep reading until the client closes too, then close.
//!
//! Both bounds are per connection and hold no memory beyond one read buffer: a client that
//! keeps sending is cut after [`LINGER_BYTES`] or [`LINGER_TIME`], whichever comes first.

use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tracing::debug;

/// Most a closing connection reads and discards: more than an upload of a few MB that the
/// server answered early (the tests send 5 MB after a `413`), so those clients see no reset.
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// Longest a closing connection is kept reading. nginx waits up to 30 s (`lingering_time`),
/// 5 s at most between reads (`lingering_timeout`); behind Cloud Run's front end the client
/// is a proxy in the same region, so a few seconds cover what it still has in flight.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// The read buffer, reused for the whole linger.
const CHUNK: usize = 16 * 1024;

/// Half-closes the socket behind `fd` (a second descriptor: the first is being closed) and
/// reads what the client still sends, in a task of its own, within the bounds above.
pub fn spawn(fd: OwnedFd) {
    let std = std::net::TcpStream::from(fd);
    // The answer is complete: the client sees the end of the stream at once, whatever we read.
    if std.shutdown(Shutdown::Write).is_err() || std.set_nonblocking(true).is_err() {
        return;
    }
    // `HeadIo` is dropped by its connection's task; a runtime that is shutting down has none
    // to offer, and then the socket simply closes.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let Ok(stream) = TcpStream::from_std(std) else {
            return;
        };
        match tokio::time::timeout(LINGER_TIME, discard(stream)).await {
            Ok(discarded) => debug!(discarded, "closed after lingering"),
            Err(_) => debug!("closed at the lingering time limit"),
        }
    });
}

/// Reads until the client closes (or errors), or [`LINGER_BYTES`] have come; returns how many.
async fn discard(mut stream: TcpStream) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    while total < LINGER_BYTES as u64 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    total
}
