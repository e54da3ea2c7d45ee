//! A connection's socket: it tells the connection's [`Clock`] about hyper's reads and writes,
//! and closes with a lingering close: an HTTP/1 connection that ends with an answer is
//! half-closed, and what the client still sends is read and thrown away for a while, before the
//! socket is closed.
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

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

use super::clock::Clock;
use super::protocol::Sniffed;

/// Most a closing connection reads and discards: more than an upload of a few MB that the
/// server answered early (the tests send 5 MB after a `413`), so those clients see no reset.
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// Longest a closing connection is kept reading. nginx waits up to 30 s (`lingering_time`),
/// 5 s at most between reads (`lingering_timeout`); behind Cloud Run's front end the client
/// is a proxy in the same region, so a few seconds cover what it still has in flight.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// The read buffer, reused for the whole linger.
const CHUNK: usize = 16 * 1024;

/// The connection's socket, telling its [`Clock`] about reads and writes; dropped after an
/// answer, it hands the socket to [`linger`] instead of closing it.
///
/// Generic over the socket (only ever a `TcpStream`) because, monomorphised here, tokio's socket
/// read is inlined into [`Socket`]'s (callgrind: 60 instructions per request).
#[derive(Debug)]
pub struct Socket<T: AsFd> {
    io: TokioIo<T>,
    clock: Arc<Clock>,
    /// The bytes read to tell the protocol: hyper's first read, alone, as when hyper-util's
    /// `auto` builder read them. hyper's HTTP/1 read buffer starts at 8 KiB and, read again
    /// before a head is whole, doubles (hyper 1.x `proto/h1/io.rs`); one that a first read
    /// filled with a whole `GET` instead stays just short of the 8 KiB it asks for before each
    /// read, and hyper reserves it again for every request on the connection.
    sniffed: Sniffed,
    /// The last write found the socket full (the clock knows since when).
    blocked: bool,
}

impl<T: AsFd> Socket<T> {
    pub fn new(io: T, clock: Arc<Clock>, sniffed: Sniffed) -> Self {
        Self {
            io: TokioIo::new(io),
            clock,
            sniffed,
            blocked: false,
        }
    }
}

impl<T: AsFd> Drop for Socket<T> {
    fn drop(&mut self) {
        if self.clock.lingers() {
            // A second descriptor keeps the socket open once hyper's is closed.
            if let Ok(fd) = self.io.inner().as_fd().try_clone_to_owned() {
                linger(fd);
            }
        }
    }
}

impl<T: AsFd + AsyncRead + Unpin> Read for Socket<T> {
    #[inline(always)]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sniffed.pending() {
            replay(&mut this.sniffed, buf);
            // Read from the socket for this connection: an h2c connection is not idle.
            this.clock.after_read();
            return Poll::Ready(Ok(()));
        }
        this.clock.before_read();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() {
            this.clock.after_read();
        }
        polled
    }
}

/// hyper's first read: the bytes the protocol was told from. Out of line, so that
/// `Socket::poll_read` stays small enough for the socket read to be inlined into it.
#[cold]
#[inline(never)]
fn replay(sniffed: &mut Sniffed, mut buf: ReadBufCursor<'_>) {
    let rest = sniffed.rest();
    let n = rest.len().min(buf.remaining());
    buf.put_slice(&rest[..n]);
    sniffed.consume(n);
}

impl<T: AsFd> Socket<T> {
    /// Tells the clock when writes start finding the socket full (the client does not read
    /// what it is sent) and when they go through again: the send timeout (`clock::Deadline`).
    #[inline]
    fn saw(&mut self, blocked: bool) {
        if blocked != self.blocked {
            self.blocked = blocked;
            if blocked {
                self.clock.write_blocked();
            } else {
                self.clock.write_unblocked();
            }
        }
    }
}

impl<T: AsFd + AsyncWrite + Unpin> Write for Socket<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.clock.before_write();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.saw(polled.is_pending());
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.clock.before_write();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.saw(polled.is_pending());
        polled
    }
}

/// Half-closes the socket behind `fd` (a second descriptor: the first is being closed) and
/// reads what the client still sends, in a task of its own, within the bounds above.
fn linger(fd: OwnedFd) {
    let std = std::net::TcpStream::from(fd);
    // The answer is complete: the client sees the end of the stream at once, whatever we read.
    if std.shutdown(Shutdown::Write).is_err() || std.set_nonblocking(true).is_err() {
        return;
    }
    // `Socket` is dropped by its connection's task; a runtime that is shutting down has none
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
