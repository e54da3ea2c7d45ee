//! Slow and idle clients, against the real binary: behind a plain proxy, or none, anyone can open
//! sockets and dribble bytes. They must cost their owner and not the other clients, and be cut
//! at `HEADER_READ_TIMEOUT`.

mod support;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::Process;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wire::{Conn, Read, request, runtime};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How late after the timeout a cut may land on a loaded machine.
const CUT_MARGIN: Duration = Duration::from_millis(1500);
const SLOW: usize = 200;
const IDLE: usize = 1000;

/// Median time for a `GET /` on a fresh connection, as a new visitor sees it.
async fn median_get(addr: SocketAddr, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut conn = Conn::connect(addr).await.expect("connect");
        conn.send(&request("GET", "/", b"")).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), conn.read_response()).await {
            Ok(Read::Complete(res)) => assert_eq!(res.status, 200),
            other => panic!("normal GET: {other:?}"),
        }
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// How a held connection ended: how long after `since` it was closed, and what the server
/// wrote first (nothing, or a 408).
#[derive(Debug)]
struct Cut {
    after: Option<Duration>,
    got: Vec<u8>,
}

/// Sends `GET / HTTP/1.1…` one byte per second until the server closes the connection.
async fn slow_header_client(stream: TcpStream, give_up: Duration) -> Cut {
    let (mut r, mut w) = stream.into_split();
    let since = Instant::now();
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
            Ok(got) => Cut { after: Some(since.elapsed()), got },
            Err(_) => Cut { after: None, got: Vec::new() },
        },
    }
}

/// Holds a connection that never sends a byte until the server closes it.
async fn idle_client(stream: TcpStream, since: Instant, give_up: Duration) -> Cut {
    let mut conn = Conn::new(stream);
    match conn.read_to_close(give_up).await {
        Some(got) => Cut {
            after: Some(since.elapsed()),
            got,
        },
        None => Cut {
            after: None,
            got: Vec::new(),
        },
    }
}

#[test]
fn slow_header_and_idle_clients_do_not_slow_others_and_are_cut_at_the_header_timeout() {
    // Each held connection costs one descriptor here and one in the server, which inherits
    // this limit. Where the hard limit is lower than that, hold fewer rather than fail.
    let limit = wire::raise_fd_limit((SLOW + IDLE) as u64 + 512);
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
    let timeout = format!("{}ms", HEADER_TIMEOUT.as_millis());
    let p = Process::start(&[("HEADER_READ_TIMEOUT", &timeout)]);
    let (addr, pid) = (p.addr(), p.child.id());
    let rt = runtime();
    let give_up = HEADER_TIMEOUT + CUT_MARGIN + Duration::from_secs(1);

    let fds_before = wire::fd_count(pid);
    let (before, during, closed_while_measuring, slow_cuts, idle_cuts) = rt.block_on(async {
        let before = median_get(addr, 100).await;

        let closed = Arc::new(AtomicUsize::new(0));
        let mut held = Vec::with_capacity(slow + idle);
        // One at a time, so that no SYN waits on a full accept queue; slow ones spread evenly.
        for i in 0..slow + idle {
            let stream = TcpStream::connect(addr)
                .await
                .expect("connect a held client");
            let since = Instant::now();
            let closed = Arc::clone(&closed);
            let is_slow = i * slow / (slow + idle) != (i + 1) * slow / (slow + idle);
            held.push((
                is_slow,
                tokio::spawn(async move {
                    let cut = if is_slow {
                        slow_header_client(stream, give_up).await
                    } else {
                        idle_client(stream, since, give_up).await
                    };
                    closed.fetch_add(1, Ordering::Relaxed);
                    cut
                }),
            ));
        }

        let during = median_get(addr, 100).await;
        let closed_while_measuring = closed.load(Ordering::Relaxed);

        let (mut slow_cuts, mut idle_cuts) = (Vec::new(), Vec::new());
        for (is_slow, task) in held {
            let cut = task.await.expect("held client");
            if is_slow {
                slow_cuts.push(cut);
            } else {
                idle_cuts.push(cut);
            }
        }
        (before, during, closed_while_measuring, slow_cuts, idle_cuts)
    });

    eprintln!(
        "median GET {before:?} before, {during:?} with {} slow-header and {} idle connections held",
        slow_cuts.len(),
        idle_cuts.len()
    );
    assert_eq!(
        closed_while_measuring, 0,
        "held connections were cut before the measurement ended: it did not measure under load"
    );
    assert!(
        during <= before * 5 || during <= Duration::from_millis(20),
        "held connections slowed a normal GET from {before:?} to {during:?}"
    );

    for (kind, cuts) in [("slow-header", &slow_cuts), ("idle", &idle_cuts)] {
        let mut afters = Vec::new();
        for cut in cuts.iter() {
            let after = cut.after.unwrap_or_else(|| {
                panic!("a {kind} connection was still open {give_up:?} after it connected")
            });
            // Measured from our connect or first byte, which precede the server's clock.
            assert!(
                after >= HEADER_TIMEOUT.mul_f32(0.9) && after <= HEADER_TIMEOUT + CUT_MARGIN,
                "a {kind} connection was cut after {after:?}; the header timeout is {HEADER_TIMEOUT:?}"
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
        wire::eventually(Duration::from_secs(2), || wire::fd_count(pid) <= fds_before),
        "the server holds {} descriptors after every client was cut, {fds_before} before",
        wire::fd_count(pid)
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
