//! The drain after the shutdown signal: every open connection is told that the server is
//! stopping ([`Connections::stop`], which each connection's [`Watch`] sees), and the server waits
//! for them to close, within the grace ([`drain`]). The same registry closes the connections
//! idle longest when the server needs room ([`Connections::close_idle`]: past the connection
//! cap, or out of file descriptors), as nginx reuses its idle keep-alive connections.
//!
//! hyper-util's `GracefulShutdown` does the same with a `tokio::sync::watch` channel whose
//! `changed()` future each connection polls on every wake-up, and that poll takes a mutex every
//! time (callgrind: 298 instructions of each keep-alive `GET /`, `bench/run.sh`). Here a
//! wake-up reads one atomic flag and compares one waker; the mutex is taken when a connection
//! opens, when it first waits, when it closes, and once at shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, warn};

use super::clock::Clock;

/// How the drain after the shutdown signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished within the grace. `connections` were open at the signal
    /// (those that had not sent a byte yet are among them, and closed at once).
    Complete { connections: usize },
    /// The grace ran out; this many connections were still open and are cut.
    Cut { connections: usize },
}

/// Tells every connection to finish, and waits up to `grace` for them to close; logs how many
/// were open and how it ended.
pub async fn drain(connections: &Connections, grace: Duration) -> Drain {
    // Counted first: once told, connections that have sent nothing close at once.
    let open = connections.open();
    connections.stop();
    info!(connections = open, grace_ms = millis(grace), "draining");
    let started = Instant::now();
    match tokio::time::timeout(grace, connections.closed()).await {
        Ok(()) => {
            info!(
                connections = open,
                elapsed_ms = millis(started.elapsed()),
                "drained"
            );
            Drain::Complete { connections: open }
        }
        Err(_) => {
            let cut = connections.open();
            warn!(
                connections = cut,
                grace_ms = millis(grace),
                "grace expired, cutting connections"
            );
            Drain::Cut { connections: cut }
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The open connections: hands out a [`Watch`] per connection, counts them, and stops them all.
#[derive(Debug, Default)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    /// Notified when the last [`Watch`] is dropped after [`Connections::stop`].
    all_closed: Notify,
    /// Notified (one permit) whenever a [`Watch`] is dropped.
    one_closed: Notify,
}

#[derive(Debug, Default)]
struct Conns {
    /// One slot per open connection: the waker of the task that last waited on it, and the
    /// connection's clock, which says whether and since when it is idle.
    wakers: Vec<Option<Waker>>,
    clocks: Vec<Option<Arc<Clock>>>,
    /// Slots of closed connections, for reuse: the vector never outgrows the most connections
    /// open at once.
    free: Vec<usize>,
    /// Open connections asked to close by [`Connections::close_idle`], not closed yet.
    closing: usize,
}

impl Conns {
    /// Every slot is either free or held by an open connection's [`Watch`].
    fn open(&self) -> usize {
        self.wakers.len() - self.free.len()
    }
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, Conns> {
        // Nothing panics while holding the lock; if something ever did, the slots are still
        // consistent, so carry on rather than take the server down.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Connections {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a connection. It counts as open until the [`Watch`] is dropped, and the
    /// `Watch` resolves once [`stop`](Self::stop) is called, or once
    /// [`close_idle`](Self::close_idle) picks this connection.
    pub fn watch(&self, clock: Arc<Clock>) -> Watch {
        let mut conns = self.shared.conns();
        let slot = match conns.free.pop() {
            Some(slot) => {
                conns.clocks[slot] = Some(Arc::clone(&clock));
                slot
            }
            None => {
                conns.wakers.push(None);
                conns.clocks.push(Some(Arc::clone(&clock)));
                conns.wakers.len() - 1
            }
        };
        Watch {
            shared: Arc::clone(&self.shared),
            slot,
            waker: None,
            clock,
        }
    }

    /// Connections whose [`Watch`] is still alive.
    pub fn open(&self) -> usize {
        self.shared.conns().open()
    }

    /// Open connections, less those asked to close by [`close_idle`](Self::close_idle).
    pub fn staying(&self) -> usize {
        let conns = self.shared.conns();
        conns.open() - conns.closing
    }

    /// Asks the `n` connections idle longest to close, none that is reading or answering a
    /// request, and returns how many it found. Each closes as at shutdown: an idle HTTP/1
    /// connection at once, an h2c one with GOAWAY.
    pub fn close_idle(&self, n: usize) -> usize {
        let (found, wakers): (usize, Vec<Waker>) = {
            let mut conns = self.shared.conns();
            let mut idle: Vec<(tokio::time::Instant, usize)> = conns
                .clocks
                .iter()
                .enumerate()
                .filter_map(|(slot, clock)| {
                    let clock = clock.as_ref().filter(|c| !c.closing())?;
                    Some((clock.idle_since()?, slot))
                })
                .collect();
            if idle.len() > n {
                idle.select_nth_unstable(n);
                idle.truncate(n);
            }
            conns.closing += idle.len();
            let wakers = idle
                .iter()
                .filter_map(|&(_, slot)| {
                    if let Some(clock) = &conns.clocks[slot] {
                        clock.close();
                    }
                    // A connection that has not waited yet sees the flag when it first does.
                    conns.wakers[slot].take()
                })
                .collect();
            (idle.len(), wakers)
        };
        for waker in wakers {
            waker.wake();
        }
        found
    }

    /// Resolves when a connection has closed since the last call (at once if one has).
    pub async fn one_closed(&self) {
        self.shared.one_closed.notified().await;
    }

    /// Resolves every [`Watch`], now and from now on.
    pub fn stop(&self) {
        self.shared.stopping.store(true, SeqCst);
        let wakers: Vec<Waker> = self
            .shared
            .conns()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        // Woken outside the lock: a waker may run its task on another thread at once.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves when no connection is open (at once if none is).
    pub async fn closed(&self) {
        loop {
            // Created before the check, so a `notify_waiters` in between is not missed.
            let notified = self.shared.all_closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's view of the shutdown: resolves (and stays resolved) once the server stops, or
/// once it asks this connection to make room.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    slot: usize,
    /// The waker stored in the slot, to tell cheaply whether it is still the right one.
    waker: Option<Waker>,
    clock: Arc<Clock>,
}

impl Future for Watch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.stopping.load(SeqCst) || this.clock.closing() {
            return Poll::Ready(());
        }
        // The common case: polled again by the same task, whose waker is already stored.
        if this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let mut conns = this.shared.conns();
        // `stop` and `close_idle` set their flags before they take the lock: either a flag is
        // visible now, or the lock is yet to be taken and will find the waker stored here.
        if this.shared.stopping.load(SeqCst) || this.clock.closing() {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        conns.wakers[this.slot] = Some(waker.clone());
        this.waker = Some(waker);
        Poll::Pending
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let last = {
            let mut conns = self.shared.conns();
            conns.wakers[self.slot] = None;
            conns.clocks[self.slot] = None;
            conns.free.push(self.slot);
            if self.clock.closing() {
                conns.closing -= 1;
            }
            conns.open() == 0
        };
        self.shared.one_closed.notify_one();
        if last && self.shared.stopping.load(SeqCst) {
            self.shared.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_watch_resolves_at_stop_and_not_before() {
        let connections = Arc::new(Connections::new());
        let mut watch = connections.watch(Clock::opening());
        assert!(tokio::time::timeout(SOON, &mut watch).await.is_err());
        // Polled again by the same task (the waker stored at the first poll), stopped meanwhile
        // from another task.
        let stopper = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                tokio::time::sleep(SOON).await;
                connections.stop();
            }
        });
        // Not `timeout`: it polls the inner future first, so a watch never woken would still
        // pass once the timer fired.
        tokio::select! {
            biased;
            () = tokio::time::sleep(SOON * 10) => panic!("not woken by stop"),
            () = &mut watch => {}
        }
        stopper.await.unwrap();
    }

    #[tokio::test]
    async fn a_watch_taken_or_first_polled_after_stop_is_ready() {
        let connections = Connections::new();
        let before = connections.watch(Clock::opening());
        connections.stop();
        tokio::time::timeout(SOON, before).await.unwrap();
        tokio::time::timeout(SOON, connections.watch(Clock::opening()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_watch_moved_to_another_task_is_still_woken() {
        let connections = Connections::new();
        let mut watch = connections.watch(Clock::opening());
        // Registers this task's waker, then moves to a new task with another waker.
        assert!(tokio::time::timeout(SOON, &mut watch).await.is_err());
        let waiter = tokio::spawn(watch);
        tokio::task::yield_now().await;
        connections.stop();
        tokio::time::timeout(SOON, waiter).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn closed_waits_for_the_last_connection() {
        let connections = Arc::new(Connections::new());
        let (a, b) = (
            connections.watch(Clock::opening()),
            connections.watch(Clock::opening()),
        );
        assert_eq!(connections.open(), 2);
        connections.stop();
        drop(a);
        assert_eq!(connections.open(), 1);
        let waiting = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.closed().await }
        });
        tokio::time::sleep(SOON).await;
        assert!(!waiting.is_finished(), "closed with a connection open");
        drop(b);
        tokio::time::timeout(SOON, waiting).await.unwrap().unwrap();
        assert_eq!(connections.open(), 0);
    }

    #[tokio::test]
    async fn close_idle_picks_the_connections_idle_longest_and_no_busy_one() {
        let connections = Connections::new();
        let clocks: Vec<Arc<Clock>> = (0..4).map(|_| Clock::opening()).collect();
        let mut watches: Vec<Watch> = clocks
            .iter()
            .map(|c| connections.watch(Arc::clone(c)))
            .collect();
        // 0 and 2 idle, 2 longest; 1 busy; 3 not looked at yet.
        clocks[2].waiting_for_first_byte();
        tokio::time::sleep(SOON).await;
        clocks[0].http1();
        clocks[0].done();
        clocks[0].before_read();
        clocks[1].http1();
        assert_eq!(connections.close_idle(1), 1);
        assert!(clocks[2].closing() && !clocks[0].closing());
        tokio::time::timeout(SOON, &mut watches[2]).await.unwrap();
        assert_eq!(connections.staying(), 3);
        // Only one idle connection is left.
        assert_eq!(connections.close_idle(5), 1);
        assert!(clocks[0].closing() && !clocks[1].closing() && !clocks[3].closing());
        assert_eq!(connections.close_idle(5), 0);
        assert_eq!(connections.staying(), 2);
        drop(watches);
        assert_eq!((connections.open(), connections.staying()), (0, 0));
    }

    #[tokio::test]
    async fn slots_of_closed_connections_are_reused() {
        let connections = Connections::new();
        for _ in 0..1000 {
            let watch = connections.watch(Clock::opening());
            drop(watch);
        }
        let held: Vec<_> = (0..3)
            .map(|_| connections.watch(Clock::opening()))
            .collect();
        assert_eq!(connections.shared.conns().wakers.len(), 3);
        drop(held);
        assert_eq!(connections.open(), 0);
        tokio::time::timeout(SOON, connections.closed())
            .await
            .unwrap();
    }
}
