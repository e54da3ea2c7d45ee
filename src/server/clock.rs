//! A connection's clock: the header read timeout and the keep-alive idle timeout, kept per
//! connection instead of per request; and whether an HTTP/1 connection has answered, which
//! decides its lingering close (see [`super::socket`]).
//!
//! hyper's own header timeout (`http1().header_read_timeout`) allocates a timer each time it
//! starts waiting for a request head, inserts it into tokio's timer wheel, removes it once the
//! head is in, and polls the connection once more per request to arm it: with it, a keep-alive
//! `GET /` took 7 930 user-space instructions, with this module 6 750 (callgrind at opt-level 3,
//! `bench/run.sh`). It also runs from the end of one response, so a keep-alive connection idle
//! for `HEADER_READ_TIMEOUT` between two requests is cut: a proxy reusing pooled connections
//! (Cloud Run's front end, any load balancer) then races the close, the classic source of
//! sporadic 502s. Here a connection keeps one tokio timer, armed for a whole timeout at a time,
//! and per request only a state word changes:
//!
//! - [`Clock`] knows what an HTTP/1 connection is waiting for: the first byte of the next
//!   request head (idle, limited by the keep-alive timeout), the rest of a head (limited by the
//!   header timeout, counted from its first byte), or nothing (a request is being served).
//!   [`Socket`](super::socket::Socket) sees hyper's reads: the first read after a response starts the idle wait, the
//!   first read that returns bytes ends it. The service marks each request busy
//!   ([`Clock::busy`]) and its response done ([`Clock::done`]).
//! - On HTTP/2 there are no heads to time (hyper's timeout never applied to it either); an
//!   h2c connection is idle when it has read nothing, and after the keep-alive timeout of
//!   that it is sent GOAWAY (by the caller), so a stream still being served finishes.
//! - [`Deadline`] resolves when a wait has lasted its limit. Its timer fires at most once
//!   per header timeout, early if the wait began later than it was armed for; it is then
//!   re-armed for the rest. An idle HTTP/1 connection is looked at once per header timeout,
//!   so a head that starts during a long idle wait is still cut a header timeout after it began.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::MAX_DURATION;

// The state word: a time since `Clock::base` in ns, shifted left by two, with the low two
// bits saying what it is: 0 waiting idle since then, 1 waiting for the rest of a head since
// then, 2 one of the states below (which have no time). Each read tests one or two values.
/// Low bits of a state that waits idle.
const IDLE: u64 = 0;
/// Low bits of a state that waits for the rest of a head.
const HEAD: u64 = 1;
const KIND: u64 = 0b11;
/// A request is in (its head parsed) and its response not yet done: no deadline.
const BUSY: u64 = 2;
/// The response is done; the next read starts the idle wait for the next head.
const DONE: u64 = 4 + 2;
/// Bytes of a head have arrived; when the wait for the rest began is taken at the next read.
/// Most heads arrive whole in one read, so most requests never read the clock for it.
const HEAD_UNTIMED: u64 = 8 + 2;
/// HTTP/2: bytes were read since the deadline last looked.
const ACTIVE: u64 = 12 + 2;
/// tokio's timer resolution.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// What a connection is waiting for. Shared by the connection's IO, its service and its
/// [`Deadline`], all polled by one task.
#[derive(Debug)]
pub struct Clock {
    base: Instant,
    /// Set once, when the protocol is known ([`Clock::h2c`]).
    h2: AtomicBool,
    state: AtomicU64,
    /// What a read that ends an idle wait turns it into: `HEAD_UNTIMED`, or `ACTIVE` for h2.
    after_idle: AtomicU64,
    /// HTTP/1: hyper has written an answer, and the connection was not given up on since.
    answered: AtomicBool,
    /// The server asked this connection to close ([`Clock::close`]).
    closing: AtomicBool,
    /// Since when writes have found the socket full (as `state` counts time, low bit set), and
    /// none has gone through; 0 while writes go through.
    write_blocked: AtomicU64,
    /// h2c: requests whose answer is being made ([`InFlight`]).
    streams: AtomicU32,
}

/// What [`Clock::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Serving a request, or about to wait.
    None,
    /// For the rest of a request head, since then (`None`: since about now).
    Head(Option<Instant>),
    /// For anything at all, since then.
    Idle(Instant),
    /// HTTP/2: bytes were read since the last look.
    Active,
}

/// An h2c request whose answer is being made, from hyper's call of the service to the answer's
/// head: its connection is not idle meanwhile ([`Clock::idle_since`]).
#[derive(Debug)]
pub struct InFlight(Arc<Clock>);

impl InFlight {
    pub fn new(clock: &Arc<Clock>) -> Self {
        clock.streams.fetch_add(1, Relaxed);
        Self(Arc::clone(clock))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Relaxed);
    }
}

impl Clock {
    /// A connection just accepted, whose protocol is not known yet. Not idle until its task
    /// has looked at it ([`waiting_for_first_byte`](Self::waiting_for_first_byte)): its first
    /// bytes may be in already.
    pub fn opening() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            h2: AtomicBool::new(false),
            state: AtomicU64::new(BUSY),
            after_idle: AtomicU64::new(HEAD_UNTIMED),
            answered: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            write_blocked: AtomicU64::new(0),
            streams: AtomicU32::new(0),
        })
    }

    /// The connection's task runs: until its first bytes come, it is idle since it was accepted.
    pub fn waiting_for_first_byte(&self) {
        self.state.store(IDLE, Relaxed);
    }

    /// The first bytes of an HTTP/1 head have arrived: waiting for the rest from now.
    pub fn http1(&self) {
        self.state
            .store(self.waiting(Instant::now(), HEAD), Relaxed);
    }

    /// The h2 preface has arrived: idle from now.
    pub fn h2c(&self) {
        self.h2.store(true, Relaxed);
        self.after_idle.store(ACTIVE, Relaxed);
        self.state
            .store(self.waiting(Instant::now(), IDLE), Relaxed);
    }

    /// Since when the connection has waited for anything at all, if it is idle: before its
    /// first byte, between HTTP/1 requests, or on h2c with no request in flight. `None` while a
    /// request is read, served or answered. An h2c connection that reads frames but sends no
    /// request (PINGs, SETTINGS) is idle too, since now: the last to be chosen, but chosen.
    pub fn idle_since(&self) -> Option<Instant> {
        let quiet = || self.streams.load(Relaxed) == 0;
        match self.wait() {
            Wait::Idle(since) if quiet() => Some(since),
            Wait::Active if quiet() => Some(Instant::now()),
            _ => None,
        }
    }

    /// Asks the connection to close as shutdown closes it (see `super::drain`), but without a
    /// lingering close: it is closed while idle, to free its descriptor for another, and has
    /// nothing unread to protect. (One that answers once more lingers after that answer.)
    pub fn close(&self) {
        self.answered.store(false, Relaxed);
        self.closing.store(true, Relaxed);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn closing(&self) -> bool {
        self.closing.load(Relaxed)
    }

    /// A write found the socket full: the client reads slower than we answer, or not at all.
    #[cold]
    #[inline(never)]
    pub(super) fn write_blocked(&self) {
        if self.write_blocked.load(Relaxed) == 0 {
            // Never 0: the time since `base` in ns, with the low bit set.
            self.write_blocked
                .store(self.waiting(Instant::now(), 1), Relaxed);
        }
    }

    /// A write went through after one found the socket full: the client reads again.
    #[cold]
    #[inline(never)]
    pub(super) fn write_unblocked(&self) {
        self.write_blocked.store(0, Relaxed);
    }

    /// Since when writes have found the socket full, if they do.
    fn write_blocked_since(&self) -> Option<Instant> {
        match self.write_blocked.load(Relaxed) {
            0 => None,
            s => Some(self.base + Duration::from_nanos(s >> 2)),
        }
    }

    /// A request head is in.
    pub fn busy(&self) {
        self.state.store(BUSY, Relaxed);
    }

    /// The response is done: the connection waits for a head again once hyper next reads.
    pub fn done(&self) {
        self.state.store(DONE, Relaxed);
    }

    fn waiting(&self, at: Instant, kind: u64) -> u64 {
        let ns = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX >> 2);
        (ns.min(u64::MAX >> 2) << 2) | kind
    }

    /// Before each read: a wait begins, or a head's wait gets its start time.
    #[inline]
    pub(super) fn before_read(&self) {
        let s = self.state.load(Relaxed);
        if s == DONE || s == HEAD_UNTIMED {
            self.start_wait(s);
        }
    }

    /// Out of line, so that `Socket::poll_read` stays small enough for the socket read to be
    /// inlined into it (callgrind: 60 instructions per request).
    #[inline(never)]
    fn start_wait(&self, s: u64) {
        let kind = if s == DONE { IDLE } else { HEAD };
        self.state
            .store(self.waiting(Instant::now(), kind), Relaxed);
    }

    /// After a read that returned (bytes, or the end): an idle wait is over.
    #[inline]
    pub(super) fn after_read(&self) {
        if self.state.load(Relaxed) & KIND == IDLE {
            self.state.store(self.after_idle.load(Relaxed), Relaxed);
        }
    }

    /// Before each write: hyper writes only answers (ours, `100 Continue`, and its own 400 or
    /// 431 for a head it cannot parse).
    pub(super) fn before_write(&self) {
        if !self.h2.load(Relaxed) {
            self.answered.store(true, Relaxed);
        }
    }

    /// The connection is dropped for taking too long: no lingering close for it.
    pub fn give_up(&self) {
        self.answered.store(false, Relaxed);
    }

    /// An HTTP/1 connection that has answered closes with a lingering close: the client may
    /// still be sending (a body we did not read, pipelined requests). One that is idle gets its
    /// end of stream at once and closes its side too, which ends the linger.
    pub(super) fn lingers(&self) -> bool {
        self.answered.load(Relaxed)
    }

    fn wait(&self) -> Wait {
        match self.state.load(Relaxed) {
            BUSY | DONE => Wait::None,
            HEAD_UNTIMED => Wait::Head(None),
            ACTIVE => Wait::Active,
            s => {
                let since = self.base + Duration::from_nanos(s >> 2);
                if s & KIND == HEAD {
                    Wait::Head(Some(since))
                } else {
                    Wait::Idle(since)
                }
            }
        }
    }
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request head took longer than the header timeout (or, after [`Expired::Idle`], the
    /// connection did not close in time): drop the connection, as hyper does.
    Head,
    /// Nothing arrived for the keep-alive timeout: close the connection gracefully (HTTP/1:
    /// at once, since it is idle; HTTP/2: GOAWAY, letting open streams finish).
    Idle,
    /// Writes have found the socket full for the send timeout: the client does not read what
    /// it is sent. Drop the connection, and what its answers hold with it.
    Send,
}

/// Resolves once the connection has waited too long for a request head, or idled too long.
#[derive(Debug)]
pub struct Deadline {
    clock: Arc<Clock>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    send_timeout: Duration,
    /// The furthest out the timer is armed: the shorter limit that applies.
    step: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The timer holds this task's waker: until it fires there is nothing to look at.
    armed: bool,
    /// Told idle already: the next expiry is final.
    closing: bool,
}

impl Deadline {
    /// Must be called inside a tokio runtime.
    pub fn new(
        clock: Arc<Clock>,
        header_timeout: Duration,
        keepalive: Duration,
        send_timeout: Duration,
    ) -> Self {
        // A clock reading plus a duration panics on overflow: the configuration takes at most
        // a day, and so does a `ServerConfig` built any other way, here.
        let header_timeout = header_timeout.min(MAX_DURATION);
        let keepalive = keepalive.min(MAX_DURATION);
        let send_timeout = send_timeout.min(MAX_DURATION);
        // Any wait may begin right after the timer is armed, so it is never armed further out
        // than the shorter limit that could apply.
        let step = if clock.h2.load(Relaxed) {
            keepalive
        } else {
            header_timeout.min(keepalive)
        }
        .min(send_timeout);
        Self {
            clock,
            header_timeout,
            keepalive_timeout: keepalive,
            send_timeout,
            step,
            sleep: Box::pin(tokio::time::sleep(step)),
            armed: false,
            closing: false,
        }
    }

    /// After [`Expired::Idle`]: the connection has one more keep-alive timeout to close (an
    /// h2c peer that never acknowledges the GOAWAY would otherwise hold it forever), then
    /// the deadline resolves [`Expired::Head`].
    pub fn closing(&mut self) {
        self.closing = true;
        let at = Instant::now() + self.keepalive_timeout;
        self.sleep.as_mut().reset(at);
        self.armed = false;
    }

    /// When the current wait runs out (`Err`), or when to look again (`Ok`): when it would run
    /// out, or a step from now if sooner, since a shorter wait may begin meanwhile.
    fn next(&self, now: Instant) -> Result<Instant, Expired> {
        let reached = |at: Instant| now + TIMER_TICK >= at;
        let (head, idle) = (self.header_timeout, self.keepalive_timeout);
        if let Some(since) = self.clock.write_blocked_since()
            && reached(since + self.send_timeout)
        {
            return Err(Expired::Send);
        }
        let at = match self.clock.wait() {
            Wait::None | Wait::Head(None) => now + self.step,
            Wait::Head(Some(since)) if reached(since + head) => return Err(Expired::Head),
            Wait::Head(Some(since)) => since + head,
            Wait::Idle(since) if reached(since + idle) => return Err(Expired::Idle),
            Wait::Idle(since) => since + idle,
            Wait::Active => {
                self.clock
                    .state
                    .store(self.clock.waiting(now, IDLE), Relaxed);
                now + idle
            }
        };
        Ok(at.min(now + self.step))
    }
}

impl Future for Deadline {
    type Output = Expired;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        let this = self.get_mut();
        // The common case, once per wake-up of the connection: one atomic load.
        if this.armed && !this.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if this.sleep.as_mut().poll(cx).is_pending() {
                this.armed = true;
                return Poll::Pending;
            }
            if this.closing {
                return Poll::Ready(Expired::Head);
            }
            match this.next(Instant::now()) {
                Err(expired) => return Poll::Ready(expired),
                Ok(at) => this.sleep.as_mut().reset(at),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(600);

    fn deadline(clock: &Arc<Clock>) -> Deadline {
        Deadline::new(Arc::clone(clock), HEAD, IDLE, IDLE)
    }

    fn http1_clock() -> Arc<Clock> {
        let clock = Clock::opening();
        clock.http1();
        clock
    }

    fn h2c_clock() -> Arc<Clock> {
        let clock = Clock::opening();
        clock.h2c();
        clock
    }

    /// A response done, hyper's next read after `idle_for`, and that read's bytes.
    async fn next_request_after(clock: &Clock, idle_for: Duration) {
        clock.done();
        clock.before_read();
        tokio::time::advance(idle_for).await;
        clock.before_read();
        clock.after_read();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_whole_head_times_out() {
        let started = Instant::now();
        let clock = http1_clock();
        assert_eq!(deadline(&clock).await, Expired::Head);
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_a_request_is_served() {
        let clock = http1_clock();
        let mut d = deadline(&clock);
        clock.busy();
        let served = tokio::time::timeout(IDLE * 2, &mut d).await;
        assert!(served.is_err(), "timed out while busy");
        // The response is done but hyper has not read again (it is still writing): no wait.
        clock.done();
        assert!(tokio::time::timeout(IDLE * 2, &mut d).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_gets_the_keep_alive_timeout() {
        let clock = http1_clock();
        let mut d = deadline(&clock);
        clock.busy();
        tokio::time::advance(Duration::from_secs(4)).await;
        clock.done();
        tokio::time::advance(Duration::from_secs(3)).await;
        clock.before_read();
        let idle = Instant::now();
        assert_eq!((&mut d).await, Expired::Idle);
        assert_eq!(idle.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_started_after_a_long_idle_wait_gets_the_header_timeout_from_its_first_byte() {
        let clock = http1_clock();
        let mut d = deadline(&clock);
        clock.busy();
        next_request_after(&clock, Duration::from_secs(300)).await;
        // The head is incomplete: hyper reads again at once, which times it.
        clock.before_read();
        let first_byte = Instant::now();
        assert_eq!((&mut d).await, Expired::Head);
        assert!(first_byte.elapsed() <= HEAD, "{:?}", first_byte.elapsed());
        assert!(
            first_byte.elapsed() + TIMER_TICK >= HEAD,
            "{:?}",
            first_byte.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_head_after_an_idle_wait_is_served_without_a_deadline() {
        let clock = http1_clock();
        let mut d = deadline(&clock);
        next_request_after(&clock, Duration::from_secs(500)).await;
        clock.busy();
        assert!(tokio::time::timeout(IDLE * 2, &mut d).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2c_connection_is_idle_after_a_keep_alive_timeout_without_reads() {
        let clock = h2c_clock();
        let mut d = deadline(&clock);
        // Reads keep it open however long it lives.
        for _ in 0..5 {
            tokio::time::advance(IDLE / 2).await;
            clock.before_read();
            clock.after_read();
        }
        assert!(tokio::time::timeout(IDLE / 2, &mut d).await.is_err());
        let last_read = Instant::now() - IDLE / 2;
        assert_eq!((&mut d).await, Expired::Idle);
        assert!(last_read.elapsed() >= IDLE && last_read.elapsed() <= IDLE * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_connection_gets_one_more_keep_alive_timeout() {
        let clock = h2c_clock();
        let mut d = deadline(&clock);
        assert_eq!((&mut d).await, Expired::Idle);
        d.closing();
        let told = Instant::now();
        assert_eq!((&mut d).await, Expired::Head);
        assert_eq!(told.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_blocked_for_the_send_timeout_expire_the_connection() {
        const SEND: Duration = Duration::from_secs(30);
        let clock = http1_clock();
        let mut d = Deadline::new(Arc::clone(&clock), HEAD, IDLE, SEND);
        clock.busy();
        clock.done();
        clock.write_blocked();
        let blocked = Instant::now();
        // A write that goes through in between starts the count again.
        tokio::time::advance(SEND / 2).await;
        clock.write_unblocked();
        clock.write_blocked();
        let again = Instant::now();
        assert_eq!((&mut d).await, Expired::Send);
        assert!(again.elapsed() >= SEND && again.elapsed() <= SEND + HEAD);
        assert!(blocked.elapsed() > SEND);
    }

    #[test]
    fn a_connection_is_idle_before_its_first_byte_and_between_requests_only() {
        let clock = Clock::opening();
        assert_eq!(clock.idle_since(), None, "not looked at yet");
        clock.waiting_for_first_byte();
        assert!(clock.idle_since().is_some());
        clock.http1();
        assert_eq!(clock.idle_since(), None, "a head is coming");
        clock.busy();
        assert_eq!(clock.idle_since(), None);
        clock.done();
        clock.before_read();
        assert!(clock.idle_since().is_some(), "waiting for the next head");
        clock.after_read();
        assert_eq!(clock.idle_since(), None);
    }

    #[test]
    fn an_h2c_connection_is_idle_without_a_request_in_flight_even_if_it_reads() {
        let clock = h2c_clock();
        let since = clock.idle_since().expect("idle since the preface");
        // A PING read: still idle, since about now.
        clock.before_read();
        clock.after_read();
        assert!(clock.idle_since().is_some_and(|t| t >= since));
        let request = InFlight::new(&clock);
        assert_eq!(clock.idle_since(), None, "a request in flight");
        drop(request);
        assert!(clock.idle_since().is_some());
    }

    #[test]
    fn an_http1_connection_lingers_once_it_has_answered_unless_given_up_on_or_closed_while_idle() {
        let clock = http1_clock();
        assert!(!clock.lingers());
        clock.before_read();
        clock.after_read();
        clock.before_write();
        assert!(clock.lingers());
        clock.give_up();
        assert!(!clock.lingers());
        // Closed while idle to make room: its descriptor is freed at once.
        clock.before_write();
        clock.close();
        assert!(!clock.lingers());
        let h2 = h2c_clock();
        h2.before_write();
        assert!(!h2.lingers());
    }
}
