//! SIGTERM under live traffic, against the real binary: Cloud Run sends it at every scale-down
//! and deploy, then SIGKILL 10 s later. No response may be truncated, nobody may be let in after
//! the listener closes, and the drain ends inside the grace, or cuts and says so.
// Linux only: this file sends signals with kill(1); a Darwin `nix build` runs the other test files.
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_cloudrun::routes::GREETING;
use support::{Process, runtime};
use wire::{Conn, Read, request};

const CLIENTS: usize = 64;
const GRACE: Duration = Duration::from_secs(5);
/// A client gives up on one response after this long: the server hung.
const RESPONSE_LIMIT: Duration = Duration::from_secs(5);

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `"connections":N` from a JSON log line.
fn connections(line: &str) -> usize {
    line.split_once("\"connections\":")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connections field in {line}"))
}

/// What one keep-alive client saw, from its first request to the refused reconnect.
#[derive(Debug, Default)]
struct ClientLog {
    complete: usize,
    /// Responses that arrived whole but were wrong (status, or body not the echo).
    wrong: Vec<String>,
    /// Responses cut after their first byte.
    broken: Vec<String>,
    /// Requests that got no byte: when, and why.
    nothing: Vec<(Instant, String)>,
    /// Connections the server accepted after this client had seen one closed unanswered.
    let_in_after_close: usize,
    /// When a connect failed, and how (the client then stops).
    refused: Option<(Instant, std::io::ErrorKind)>,
    hung: Vec<String>,
}

/// A distinct echo body per request, 0–8 KiB, so a mixed-up or short answer shows.
fn payload(client: usize, seq: usize) -> Vec<u8> {
    let len = (client * 131 + seq * 977) % 8192;
    let tag = format!("[c{client}r{seq}]");
    tag.bytes().cycle().take(len).collect()
}

/// Hammers `/` and `/echo` on one keep-alive connection at a time until a reconnect is refused.
async fn keep_alive_client(
    id: usize,
    addr: std::net::SocketAddr,
    done: Arc<AtomicUsize>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    'connect: while Instant::now() < give_up {
        let mut conn = match Conn::connect(addr).await {
            Ok(conn) => conn,
            Err(e) => {
                log.refused = Some((Instant::now(), e.kind()));
                break;
            }
        };
        if !log.nothing.is_empty() {
            log.let_in_after_close += 1;
        }
        while Instant::now() < give_up {
            seq += 1;
            let (req, expected) = if seq % 2 == 0 {
                (request("GET", "/", b""), GREETING.as_bytes().to_vec())
            } else {
                let body = payload(id, seq);
                (request("POST", "/echo", &body), body)
            };
            let read = match conn.send(&req).await {
                Err(e) => Read::Nothing(format!("write: {:?}", e.kind())),
                Ok(()) => match tokio::time::timeout(RESPONSE_LIMIT, conn.read_response()).await {
                    Ok(read) => read,
                    Err(_) => {
                        log.hung.push(format!("client {id} request {seq}"));
                        break 'connect;
                    }
                },
            };
            match read {
                Read::Complete(res) => {
                    log.complete += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    if res.status != 200 || res.body != expected {
                        log.wrong.push(format!(
                            "client {id} request {seq}: {} with {} bytes, expected 200 with {}",
                            res.status,
                            res.body.len(),
                            expected.len()
                        ));
                    }
                    if res.closes() {
                        continue 'connect;
                    }
                }
                Read::Nothing(why) => {
                    log.nothing.push((Instant::now(), why));
                    continue 'connect;
                }
                Read::Broken { got, why } => {
                    log.broken
                        .push(format!("client {id} request {seq}: {got} bytes then {why}"));
                    continue 'connect;
                }
            }
        }
    }
    log
}

#[test]
fn keep_alive_clients_under_load_lose_no_response_at_sigterm() {
    let mut p = Process::start(&[("SHUTDOWN_GRACE", "5s")]);
    let addr = p.addr();
    let rt = runtime();
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| rt.spawn(keep_alive_client(id, addr, Arc::clone(&done))))
        .collect();

    // Let every client get going, then signal in the middle of the traffic.
    let started = Instant::now();
    assert!(
        support::eventually(Duration::from_secs(10), || {
            done.load(Ordering::Relaxed) >= 1000 && started.elapsed() > Duration::from_millis(300)
        }),
        "only {} responses in 10 s before the signal",
        done.load(Ordering::Relaxed)
    );
    let before_term = done.load(Ordering::Relaxed);
    let term = Instant::now();
    p.signal("TERM");

    let logs: Vec<ClientLog> = rt.block_on(async {
        let mut logs = Vec::new();
        for c in clients {
            logs.push(c.await.expect("client task"));
        }
        logs
    });
    let status = p.wait_exit(GRACE);
    let exited_after = term.elapsed();

    let complete: usize = logs.iter().map(|l| l.complete).sum();
    let nothing: Vec<_> = logs.iter().flat_map(|l| &l.nothing).collect();
    eprintln!(
        "{complete} complete ({} after SIGTERM), {} unanswered after the listener closed, {status} after {}",
        complete - before_term,
        nothing.len(),
        millis(exited_after)
    );
    let broken: Vec<_> = logs.iter().flat_map(|l| &l.broken).collect();
    assert!(broken.is_empty(), "truncated responses: {broken:#?}");
    let wrong: Vec<_> = logs.iter().flat_map(|l| &l.wrong).collect();
    assert!(wrong.is_empty(), "wrong responses: {wrong:#?}");
    let hung: Vec<_> = logs.iter().flat_map(|l| &l.hung).collect();
    assert!(
        hung.is_empty(),
        "no answer within {RESPONSE_LIMIT:?}: {hung:#?}"
    );
    for (at, why) in &nothing {
        assert!(
            *at >= term,
            "a request went unanswered ({why}) before SIGTERM"
        );
    }
    for (id, log) in logs.iter().enumerate() {
        // A connection closed unanswered must mean the listener is gone: the reconnect that
        // follows has to be refused, never accepted.
        assert_eq!(
            log.let_in_after_close, 0,
            "client {id} was let in after a connection closed unanswered"
        );
        let (refused, how) = log
            .refused
            .unwrap_or_else(|| panic!("client {id} never saw the listener close: {log:?}"));
        assert_eq!(how, std::io::ErrorKind::ConnectionRefused, "client {id}");
        assert!(refused >= term, "client {id} refused before SIGTERM");
    }
    assert_eq!(status.code(), Some(0), "exit status after the drain");
    assert!(
        exited_after < GRACE,
        "exit {} after SIGTERM",
        millis(exited_after)
    );
    assert!(p.drain_lines().iter().any(|l| l.contains("\"drained\"")));
}

#[test]
fn slow_upload_in_flight_at_sigterm_completes() {
    let mut p = Process::start(&[("SHUTDOWN_GRACE", "5s")]);
    let addr = p.addr();
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let rt = runtime();

    let mut conn = rt.block_on(async {
        let mut conn = Conn::connect(addr).await.expect("connect");
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.send(head.as_bytes()).await.unwrap();
        conn.send(&body[..100]).await.unwrap();
        // Give the server time to read the head: the request is in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn
    });
    let term = Instant::now();
    p.signal("TERM");

    let (read, refused) = rt.block_on(async {
        // The rest trickles in over a second after the signal.
        let upload = async {
            for chunk in body[100..].chunks(90) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                conn.send(chunk)
                    .await
                    .expect("the server kept reading the upload");
            }
            tokio::time::timeout(RESPONSE_LIMIT, conn.read_response()).await
        };
        // Meanwhile nobody new gets in.
        let newcomer = async {
            let mut refused = false;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if matches!(
                    Conn::connect(addr).await,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                ) {
                    refused = true;
                    break;
                }
            }
            refused
        };
        tokio::join!(upload, newcomer)
    });

    assert!(
        refused,
        "a new connection was still accepted 1 s after SIGTERM"
    );
    match read {
        Ok(Read::Complete(res)) => {
            assert_eq!(res.status, 200);
            assert_eq!(res.header("content-type"), Some("text/plain"));
            assert!(res.body == body, "echoed body differs from the upload");
        }
        other => panic!("the upload in flight at SIGTERM got {other:?}"),
    }
    let status = p.wait_exit(GRACE);
    let took = term.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(900) && took < GRACE,
        "exit {} after SIGTERM: should wait for the upload and no longer",
        millis(took)
    );
    let drained = p
        .wait_for(|l| l.contains("\"drained\""), Duration::from_secs(1))
        .expect("a drained line");
    // The upload, plus any probe that connected between the signal and the listener closing.
    assert!(connections(&drained) >= 1, "{drained}");
}

#[test]
fn upload_slower_than_the_grace_is_cut_with_exit_75() {
    let grace = Duration::from_millis(500);
    let mut p = Process::start(&[("SHUTDOWN_GRACE", "500ms")]);
    let addr = p.addr();
    let rt = runtime();

    let mut conn = rt.block_on(async {
        let mut conn = Conn::connect(addr).await.expect("connect");
        conn.send(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 1000\r\n\r\n0123456789")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn
    });
    let term = Instant::now();
    p.signal("TERM");

    // A byte every 100 ms: 99 s for the rest, far past the grace. The process must not wait.
    let read = rt.block_on(async {
        let (mut reader, mut writer) = conn.stream.split();
        let trickle = async {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tokio::io::AsyncWriteExt::write_all(&mut writer, b"x")
                    .await
                    .is_err()
                {
                    break;
                }
            }
        };
        let mut reader = Conn::new(&mut reader);
        let read = tokio::time::timeout(Duration::from_secs(3), reader.read_response());
        tokio::join!(trickle, read).1
    });
    let status = p.wait_exit(grace + Duration::from_secs(3));
    let took = term.elapsed();

    match read {
        Ok(Read::Nothing(_)) => {}
        other => panic!("the cut upload should see its connection end unanswered, got {other:?}"),
    }
    assert_eq!(status.code(), Some(75), "exit status after a cut");
    assert!(
        took >= grace && took < grace + Duration::from_secs(2),
        "exit {} after SIGTERM with a {} grace",
        millis(took),
        millis(grace)
    );
    let cut = p
        .wait_for(
            |l| l.contains("\"message\":\"grace expired, cutting connections\""),
            Duration::from_secs(1),
        )
        .expect("a grace expired line");
    assert_eq!(connections(&cut), 1, "{cut}");
    assert!(!p.seen.iter().any(|l| l.contains("\"drained\"")));
}

#[test]
fn idle_keep_alive_connection_is_closed_at_sigterm_without_waiting_for_the_grace() {
    let mut p = Process::start(&[("SHUTDOWN_GRACE", "5s")]);
    let addr = p.addr();
    let rt = runtime();
    let mut conn = rt.block_on(async {
        let mut conn = Conn::connect(addr).await.expect("connect");
        conn.send(&request("GET", "/", b"")).await.unwrap();
        match conn.read_response().await {
            Read::Complete(res) => assert_eq!(res.status, 200),
            other => panic!("{other:?}"),
        }
        conn
    });
    let term = Instant::now();
    p.signal("TERM");
    let closed = rt.block_on(conn.read_to_close(Duration::from_secs(2)));
    assert_eq!(
        closed,
        Some(Vec::new()),
        "the idle connection should close, unanswered"
    );
    let status = p.wait_exit(GRACE);
    assert_eq!(status.code(), Some(0));
    assert!(
        term.elapsed() < Duration::from_secs(1),
        "exit took {}",
        millis(term.elapsed())
    );
}

#[test]
fn connection_that_sent_nothing_does_not_hold_the_drain() {
    // A proxy or browser that opened a connection ahead of need sends nothing until it has a
    // request. At SIGTERM that socket must simply be closed.
    let mut p = Process::start(&[("SHUTDOWN_GRACE", "3s")]);
    let idle = std::net::TcpStream::connect(p.addr()).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let term = Instant::now();
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(5));
    let took = term.elapsed();
    drop(idle);
    assert_eq!(status.code(), Some(0), "exit after {}", millis(took));
    assert!(took < Duration::from_secs(1), "exit took {}", millis(took));
}
