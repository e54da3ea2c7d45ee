//! The HTTP/1 header read timeout, kept per connection instead of per request.
//!
//! hyper's own (`http1().header_read_timeout`) allocates a timer each time it starts waiting
//! for a request head, inserts it into tokio's timer wheel, removes it once the head is in, and
//! polls the connection once more per request to arm it: with it, a keep-alive `GET /` took
//! 7 930 user-space instructions, with this module 6 750 (callgrind at opt-level 3,
//! `bench/run.sh`). Here a connection keeps one tokio timer, armed for a whole timeout at a
//! time, and per request only a timestamp changes:
//!
//! - [`HeadClock`] knows whether the connection is waiting for a request head, and since when.
//!   [`HeadIo`] starts the wait at the first read after a response is done (hyper reads again
//!   only once it has written the response, exactly when its own timer would start). The
//!   service marks each response done ([`HeadClock::done`]), and a request still reading its
//!   body as busy ([`HeadClock::busy`]): no deadline until its response is done.
//! - [`HeadDeadline`] resolves when a wait has lasted the timeout; the connection is then
//!   dropped, as hyper does. Its timer fires at most once per timeout, early if the wait began
//!   later than it was armed for; it is then re-armed for the rest.
//!
//! HTTP/2 is not covered: hyper's timeout never applied to it either.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::time::Instant;

/// A request is in (its head parsed) and its response not yet done: no deadline.
const BUSY: u64 = 0;
/// The response is done; the next read starts waiting for the next head.
const DONE: u64 = 1;
/// tokio's timer resolution.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Whether a connection is waiting for a request head, and since when. Shared by the
/// connection's IO, its service and its [`HeadDeadline`], all polled by one task.
#[derive(Debug)]
pub struct HeadClock {
    base: Instant,
    /// `BUSY`, `DONE`, or waiting since `base` + (value - 2) ns.
    state: AtomicU64,
}

impl HeadClock {
    /// A clock for a new connection, waiting for its first head from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            state: AtomicU64::new(2),
        })
    }

    /// A request head is in.
    pub fn busy(&self) {
        self.state.store(BUSY, Relaxed);
    }

    /// The response is done: the connection waits for a head again once hyper next reads.
    pub fn done(&self) {
        self.state.store(DONE, Relaxed);
    }

    fn on_read(&self) {
        if self.state.load(Relaxed) == DONE {
            let since = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 2);
            self.state.store(since.saturating_add(2), Relaxed);
        }
    }

    fn waiting_since(&self) -> Option<Instant> {
        match self.state.load(Relaxed) {
            BUSY | DONE => None,
            n => Some(self.base + Duration::from_nanos(n - 2)),
        }
    }
}

/// The connection's IO, telling its [`HeadClock`] (if any: HTTP/2 has none) about reads.
#[derive(Debug)]
pub struct HeadIo<T> {
    io: T,
    clock: Option<Arc<HeadClock>>,
}

impl<T> HeadIo<T> {
    pub fn new(io: T, clock: Option<Arc<HeadClock>>) -> Self {
        Self { io, clock }
    }
}

impl<T: Read + Unpin> Read for HeadIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(clock) = &this.clock {
            clock.on_read();
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for HeadIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
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
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// Resolves once the connection has waited `timeout` for a request head; never without a
/// clock.
#[derive(Debug)]
pub struct HeadDeadline {
    clock: Option<Arc<HeadClock>>,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The timer holds this task's waker: until it fires there is nothing to look at.
    armed: bool,
}

impl HeadDeadline {
    /// Must be called inside a tokio runtime.
    pub fn new(clock: Option<Arc<HeadClock>>, timeout: Duration) -> Self {
        let sleep = Box::pin(tokio::time::sleep(timeout));
        Self {
            clock,
            timeout,
            sleep,
            armed: false,
        }
    }
}

impl Future for HeadDeadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(clock) = &this.clock else {
            return Poll::Pending;
        };
        // The common case, once per wake-up of the connection: one atomic load.
        if this.armed && !this.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if this.sleep.as_mut().poll(cx).is_pending() {
                this.armed = true;
                return Poll::Pending;
            }
            let now = Instant::now();
            let next = match clock.waiting_since() {
                // Within tokio's 1 ms timer resolution counts as reached.
                Some(since) if now + TIMER_TICK >= since + this.timeout => return Poll::Ready(()),
                Some(since) => since + this.timeout,
                // Serving a request: look again a whole timeout from now.
                None => now + this.timeout,
            };
            this.sleep.as_mut().reset(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(timeout_s: u64) -> (Arc<HeadClock>, HeadDeadline) {
        let clock = HeadClock::new();
        let d = HeadDeadline::new(Some(Arc::clone(&clock)), Duration::from_secs(timeout_s));
        (clock, d)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_head_times_out() {
        let started = Instant::now();
        let (_clock, d) = deadline(10);
        d.await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_a_request_is_served() {
        let (clock, mut d) = deadline(2);
        clock.busy();
        let served = tokio::time::timeout(Duration::from_secs(30), &mut d).await;
        assert!(served.is_err(), "timed out while busy");
        // The response is done but hyper has not read again (it is still writing): no wait.
        clock.done();
        assert!(
            tokio::time::timeout(Duration::from_secs(30), &mut d)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_the_next_head_starts_at_the_next_read() {
        let (clock, mut d) = deadline(10);
        clock.busy();
        tokio::time::advance(Duration::from_secs(4)).await;
        clock.done();
        tokio::time::advance(Duration::from_secs(3)).await;
        clock.on_read();
        let waiting = Instant::now();
        (&mut d).await;
        assert_eq!(waiting.elapsed(), Duration::from_secs(10));
    }
}
