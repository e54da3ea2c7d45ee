//! Slow and idle clients, against the real binary: behind a plain proxy, or none, anyone can open
//! sockets and dribble bytes. They must cost their owner and not the other clients, and be cut
//! at `HEADER_READ_TIMEOUT`.
// Linux only: this file raises RLIMIT_NOFILE and counts descriptors in /proc; a Darwin `nix build` runs the other test files.
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Process, runtime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wire::{Conn, Read, request};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How late after the timeout a cut may land on a loaded machine.
const CUT_MARGIN: Duration = Duration::from_millis(1500);
const SLOW: usize = 200;
const IDLE: usize = 1000;
/// GETs to each server per measurement.
const GETS: usize = 100;
/// Set-ups that outlast the header timeout are retried with a longer one, this many times.
const ATTEMPTS: usize = 3;

/// Time for one `GET /` on a fresh connection, as a new visitor sees it.
async fn timed_get(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut conn = Conn::connect(addr).await.expect("connect");
    conn.send(&request("GET", "/", b"")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(30), conn.read_response()).await {
        Ok(Read::Complete(res)) => assert_eq!(res.status, 200),
        other => panic!("normal GET: {other:?}"),
    }
    started.elapsed()
}

/// Median times of `GET /` to `a` and to `b`, taken alternately so that both see the same
/// moments of a machine whose other work comes and goes.
async fn paired_medians(a: SocketAddr, b: SocketAddr) -> (Duration, Duration) {
    let (mut xs, mut ys) = (Vec::with_capacity(GETS), Vec::with_capacity(GETS));
    for _ in 0..GETS {
        xs.push(timed_get(a).await);
        ys.push(timed_get(b).await);
    }
    xs.sort();
    ys.sort();
    (xs[GETS / 2], ys[GETS / 2])
}

/// How a held connection ended: how long after its connect it was closed, and what the
/// server wrote first (nothing, or a 408).
#[derive(Debug)]
struct Cut {
    since: Instant,
    after: Option<Duration>,
    got: Vec<u8>,
}

/// Sends `GET / HTTP/1.1…` one byte per second until the server closes the connection.
async fn slow_header_client(stream: TcpStream, since: Instant, give_up: Duration) -> Cut {
    let (mut r, mut w) = stream.into_split();
    let writer = async move {
        for b in b"GET / HTTP/1.1\r\nhost: test\r\n\r\n".chunks(1) {
            if w.write_all(b).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Keep the write half open: a close would end the request for other reasons.
        std::future::pending::<()>().await;
    };
    let reader = async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::select! {
        () = writer => unreachable!(),
        got = tokio::time::timeout(give_up, reader) => match got {
            Ok(got) => Cut { since, after: Some(since.elapsed()), got },
            Err(_) => Cut { since, after: None, got: Vec::new() },
        },
    }
}

/// Holds a connection that never sends a byte until the server closes it.
async fn idle_client(stream: TcpStream, since: Instant, give_up: Duration) -> Cut {
    let mut conn = Conn::new(stream);
    let got = conn.read_to_close(give_up).await;
    Cut {
        since,
        after: got.is_some().then(|| since.elapsed()),
        got: got.unwrap_or_default(),
    }
}

/// One attempt: `slow` slow-header and `idle` idle connections held open on `server` while
/// GETs to it and to `quiet` (the same binary, holding nothing) are timed.
struct Attempt {
    /// Median GET on the quiet server and on the one holding the connections.
    quiet: Duration,
    loaded: Duration,
    /// Held connections the server had already closed when the measurement ended.
    closed_while_measuring: usize,
    /// From the first held connect to the end of the measurement.
    took: Duration,
    /// By then the server had accepted every held connection: the accept queue is FIFO and the
    /// first measured GET connected after all of them.
    accepted_by: Instant,
    slow_cuts: Vec<Cut>,
    idle_cuts: Vec<Cut>,
}

async fn hold_and_measure(
    server: SocketAddr,
    quiet: SocketAddr,
    (slow, idle): (usize, usize),
    give_up: Duration,
) -> Attempt {
    let started = Instant::now();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::with_capacity(slow + idle);
    // Slow ones spread evenly among the idle ones.
    for i in 0..slow + idle {
        let stream = TcpStream::connect(server)
            .await
            .expect("connect a held client");
        let since = Instant::now();
        let closed = Arc::clone(&closed);
        let is_slow = i * slow / (slow + idle) != (i + 1) * slow / (slow + idle);
        held.push((
            is_slow,
            tokio::spawn(async move {
                let cut = if is_slow {
                    slow_header_client(stream, since, give_up).await
                } else {
                    idle_client(stream, since, give_up).await
                };
                closed.fetch_add(1, Ordering::Relaxed);
                cut
            }),
        ));
    }

    timed_get(server).await;
    let accepted_by = Instant::now();
    let (quiet, loaded) = paired_medians(quiet, server).await;
    let closed_while_measuring = closed.load(Ordering::Relaxed);
    let took = started.elapsed();

    let (mut slow_cuts, mut idle_cuts) = (Vec::new(), Vec::new());
    for (is_slow, task) in held {
        let cut = task.await.expect("held client");
        if is_slow {
            slow_cuts.push(cut);
        } else {
            idle_cuts.push(cut);
        }
    }
    Attempt {
        quiet,
        loaded,
        closed_while_measuring,
        took,
        accepted_by,
        slow_cuts,
        idle_cuts,
    }
}

#[test]
fn slow_header_and_idle_clients_do_not_slow_others_and_are_cut_at_the_header_timeout() {
    // Each held connection costs one descriptor here and one in the server, which inherits
    // this limit. Where the hard limit is lower than that, hold fewer rather than fail.
    let limit = support::raise_fd_limit((SLOW + IDLE) as u64 + 512);
    let room = usize::try_from(limit.saturating_sub(256)).unwrap_or(usize::MAX);
    let (slow, idle) = if room >= SLOW + IDLE {
        (SLOW, IDLE)
    } else {
        eprintln!(
            "RLIMIT_NOFILE {limit}: holding {room} connections instead of {}",
            SLOW + IDLE
        );
        (room * SLOW / (SLOW + IDLE), room * IDLE / (SLOW + IDLE))
    };
    let rt = runtime();
    let quiet = Process::start(&[]);

    // The held connections must all still be open while the GETs are timed, or the test would
    // measure a server that had already shed them. The header timeout starts at each accept,
    // so on a busy machine, where opening 1,200 connections and timing 200 GETs can take longer
    // than 2 s, a longer timeout is needed: the attempt is repeated with one twice as long as
    // that set-up took. The cuts are then checked against the timeout in force.
    let mut header_timeout = HEADER_TIMEOUT;
    let (p, header_timeout, fds_before, a) = 'attempts: {
        for attempt in 1..=ATTEMPTS {
            let p = Process::start(&[(
                "HEADER_READ_TIMEOUT",
                &format!("{}ms", header_timeout.as_millis()),
            )]);
            let fds_before = support::fd_count(p.child.id());
            let give_up = header_timeout * 3 + CUT_MARGIN + Duration::from_secs(10);
            let a = rt.block_on(hold_and_measure(
                p.addr(),
                quiet.addr(),
                (slow, idle),
                give_up,
            ));
            if a.closed_while_measuring == 0 || a.took < header_timeout.mul_f32(0.9) {
                break 'attempts (p, header_timeout, fds_before, a);
            }
            eprintln!(
                "attempt {attempt}: setting up and measuring took {:?}, longer than the header \
                 timeout {header_timeout:?}; {} held connections were cut before the end",
                a.took, a.closed_while_measuring
            );
            header_timeout = (a.took * 2).max(header_timeout * 2);
        }
        panic!(
            "the set-up outlasted the header timeout {ATTEMPTS} times, the last {header_timeout:?}"
        );
    };
    let pid = p.child.id();

    eprintln!(
        "median GET {:?} on the quiet server, {:?} with {} slow-header and {} idle connections \
         held (set-up and measurement {:?}, header timeout {header_timeout:?})",
        a.quiet,
        a.loaded,
        a.slow_cuts.len(),
        a.idle_cuts.len(),
        a.took
    );
    assert_eq!(
        a.closed_while_measuring, 0,
        "held connections were cut before the measurement ended, {:?} after it began with a \
         header timeout of {header_timeout:?}",
        a.took
    );
    assert!(
        a.loaded <= a.quiet * 5 || a.loaded <= Duration::from_millis(20),
        "held connections slowed a normal GET from {:?} (the quiet server) to {:?}",
        a.quiet,
        a.loaded
    );

    for (kind, cuts) in [("slow-header", &a.slow_cuts), ("idle", &a.idle_cuts)] {
        let mut afters = Vec::new();
        for cut in cuts {
            let after = cut.after.unwrap_or_else(|| {
                panic!(
                    "a {kind} connection was never cut; the header timeout is {header_timeout:?}"
                )
            });
            // Measured from our connect, which precedes the server's accept and so its clock;
            // the accept itself came at the latest when the first measured GET was answered.
            let latest =
                a.accepted_by.saturating_duration_since(cut.since) + header_timeout + CUT_MARGIN;
            assert!(
                after >= header_timeout.mul_f32(0.9) && after <= latest,
                "a {kind} connection was cut after {after:?}; the header timeout is \
                 {header_timeout:?}, the latest cut allowed {latest:?}"
            );
            assert!(
                cut.got.is_empty() || cut.got.starts_with(b"HTTP/1.1 408 "),
                "a {kind} connection got {:?}",
                String::from_utf8_lossy(&cut.got)
            );
            afters.push(after);
        }
        afters.sort();
        eprintln!(
            "{kind}: {} cut between {:?} and {:?}",
            afters.len(),
            afters.first().unwrap(),
            afters.last().unwrap()
        );
    }

    assert!(
        support::eventually(Duration::from_secs(5), || support::fd_count(pid)
            <= fds_before),
        "the server holds {} descriptors after every client was cut, {fds_before} before",
        support::fd_count(pid)
    );
}

#[test]
fn client_trickling_the_h2_preface_is_cut_at_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let p = Process::start(&[("HEADER_READ_TIMEOUT", "1s")]);
    let addr = p.addr();
    let cut = runtime().block_on(async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut r, mut w) = stream.into_split();
        let since = Instant::now();
        // "PRI * HTTP/2.0…" a byte every 200 ms: 4.8 s for the 24-byte preface.
        tokio::spawn(async move {
            for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".chunks(1) {
                if w.write_all(b).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            std::future::pending::<()>().await;
        });
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(timeout + CUT_MARGIN, async {
            while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
        closed.is_ok().then(|| since.elapsed())
    });
    let after = cut.expect("a client trickling the h2 preface outlived the header timeout");
    assert!(after >= timeout.mul_f32(0.9), "cut after {after:?}");
}
