//! A client that stops half-way keeps no one else out (issue 17, item 1). An upload that sends
//! nothing for `BODY_READ_TIMEOUT` is answered `408` (HTTP/1.1) or has its stream reset (h2c),
//! and gives its share of `BODY_BUDGET` back at once; a response the client does not read is
//! dropped after `SEND_TIMEOUT`; accepted sockets probe a vanished peer with TCP keepalive.
//! Before, four stalled uploads under `BODY_BUDGET=4MiB` turned every `/echo` and `/events`
//! away with `503` for as long as they stayed open.
// Linux only: reads /proc/net/tcp, and runs many clients against the spawned binary.
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use support::{Process, runtime};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use wire::{Conn, Read};

const MIB: usize = 1024 * 1024;

type Body = BoxBody<Bytes, Infallible>;

/// An h2c connection that sends a PING every 1.5 s, and whose streams have a receive window
/// of `window` bytes (RFC 9113 §6.9.2: `SETTINGS_INITIAL_WINDOW_SIZE`; 0 lets the server send
/// no DATA at all).
async fn h2c(addr: SocketAddr, window: u32) -> http2::SendRequest<Body> {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(1500))
        .keep_alive_while_idle(true)
        .keep_alive_timeout(Duration::from_secs(60))
        .initial_stream_window_size(window)
        .handshake(io)
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    sender
}

/// `POST /echo` declaring a 1 MiB body, of which `sent` bytes are sent.
async fn stalled_upload(addr: SocketAddr, sent: usize) -> Conn {
    let mut conn = Conn::connect(addr).await.expect("connect");
    let mut raw =
        format!("POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: {MIB}\r\n\r\n").into_bytes();
    raw.resize(raw.len() + sent, b'x');
    conn.send(&raw).await.expect("send");
    conn
}

/// A fresh `POST /echo` of 1 KiB on its own connection: its status.
async fn fresh_echo(addr: SocketAddr) -> u16 {
    let mut conn = Conn::connect(addr).await.expect("connect");
    conn.send(&wire::request("POST", "/echo", &[b'y'; 1024]))
        .await
        .expect("send");
    match tokio::time::timeout(Duration::from_secs(10), conn.read_response()).await {
        Ok(Read::Complete(res)) => res.status,
        other => panic!("fresh echo: {other:?}"),
    }
}

/// Polls [`fresh_echo`] until it is answered `200`; how long that took from `since`.
async fn until_echo_served(addr: SocketAddr, since: Instant, limit: Duration) -> Duration {
    loop {
        let status = fresh_echo(addr).await;
        if status == 200 {
            return since.elapsed();
        }
        assert_eq!(status, 503, "a fresh echo");
        assert!(
            since.elapsed() < limit,
            "a fresh 1 KiB echo still refused {:?} after the stall began",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The case: four stalled HTTP/1.1 uploads and four stalled h2c streams on a
/// connection that keeps sending PINGs, each declaring 1 MiB of a 4 MiB budget.
#[test]
fn stalled_uploads_get_408_or_a_reset_and_a_fresh_echo_is_served_within_4_s() {
    let p = Process::start(&[("BODY_BUDGET", "4MiB"), ("BODY_READ_TIMEOUT", "2s")]);
    let addr = p.addr();
    runtime().block_on(async {
        let mut uploads = Vec::new();
        for _ in 0..4 {
            uploads.push(stalled_upload(addr, 10).await);
        }
        let sender = h2c(addr, 65_535).await;
        let mut streams = Vec::new();
        let mut body_senders = Vec::new();
        for _ in 0..4 {
            // A body that never sends a byte, its sender kept alive.
            let (tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            body_senders.push(tx);
            let req = Request::post("/echo")
                .header("host", "test")
                .header("content-length", MIB.to_string())
                .body(body.boxed())
                .unwrap();
            let mut sender = sender.clone();
            streams.push(tokio::spawn(async move {
                sender.ready().await.expect("connection ready");
                match sender.send_request(req).await {
                    Ok(res) => Ok(res.status().as_u16()),
                    Err(e) => Err(e.to_string()),
                }
            }));
        }
        let stalled = Instant::now();
        let served = until_echo_served(addr, stalled, Duration::from_secs(4)).await;
        eprintln!("a fresh echo served {served:?} after the stall began");

        for (i, conn) in uploads.iter_mut().enumerate() {
            match tokio::time::timeout(Duration::from_secs(10), conn.read_response()).await {
                Ok(Read::Complete(res)) => {
                    assert_eq!(res.status, 408, "stalled upload {i}: {res:?}");
                    assert!(res.closes(), "stalled upload {i}: {res:?}");
                }
                other => panic!("stalled upload {i}: {other:?}"),
            }
        }
        for (i, stream) in streams.into_iter().enumerate() {
            let outcome = tokio::time::timeout(Duration::from_secs(10), stream)
                .await
                .unwrap_or_else(|_| panic!("stalled stream {i} neither answered nor reset"))
                .unwrap();
            assert!(
                matches!(outcome, Ok(408) | Err(_)),
                "stalled stream {i}: {outcome:?}"
            );
        }
        drop(body_senders);
        wire::get_root(addr).await;
    });
}

/// An h2c client whose streams' receive window is 0 posts a 1 MiB echo under a 1 MiB budget:
/// the answer can never be sent, and it held the whole budget for as long as the connection
/// lived. After `SEND_TIMEOUT` the stream is reset and the budget is back.
#[test]
fn an_echo_the_client_never_reads_over_h2c_is_reset_after_the_send_timeout() {
    let p = Process::start(&[("BODY_BUDGET", "1MiB"), ("SEND_TIMEOUT", "2s")]);
    let addr = p.addr();
    runtime().block_on(async {
        let mut sender = h2c(addr, 0).await;
        let req = Request::post("/echo")
            .header("host", "test")
            .body(Full::new(Bytes::from(vec![b'z'; MIB])).boxed())
            .unwrap();
        sender.ready().await.unwrap();
        let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .expect("the echo's head")
            .expect("the echo's head");
        assert_eq!(res.status(), 200);
        let started = Instant::now();
        // The body cannot come (window 0): it holds the budget until the send timeout.
        assert_eq!(
            fresh_echo(addr).await,
            503,
            "the budget is held by the unread echo"
        );
        let served = until_echo_served(addr, started, Duration::from_secs(6)).await;
        eprintln!("budget back {served:?} after the echo's head");
        let body = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect()).await;
        assert!(
            matches!(body, Ok(Err(_))),
            "the unread echo's stream was not reset"
        );
        drop(sender);
    });
}

/// An HTTP/1.1 client that pipelines 1 MiB echoes and reads none of the answers: once the
/// socket buffers are full the server cannot write, and the echo it is writing held the budget
/// for ever. After `SEND_TIMEOUT` without progress the connection is closed.
///
/// The hold lasts from the server's first blocked write to `SEND_TIMEOUT` after the client's
/// window closed (the kernel's `TCP_USER_TIMEOUT`), which on a loaded machine can be too short
/// for the fresh echoes to see: then the attempt is made again on a new connection.
#[test]
fn echoes_the_client_never_reads_over_http1_are_dropped_after_the_send_timeout() {
    let p = Process::start(&[("BODY_BUDGET", "1MiB"), ("SEND_TIMEOUT", "4s")]);
    let addr = p.addr();
    runtime().block_on(async {
        for attempt in 1..=3 {
            let mut seen = Vec::new();
            let (mut reader, pipeline) = unread_pipeline(addr).await;
            let Some(held_since) = hold_seen(addr, &pipeline, &mut seen).await else {
                eprintln!("attempt {attempt}: the hold ended unseen; fresh echoes: {seen:?}");
                continue;
            };
            let served = until_echo_served(addr, held_since, Duration::from_secs(10)).await;
            eprintln!("budget back {served:?} after it was seen held");
            // The stuck connection was cut: reading it now ends in an error or end of stream.
            let mut sink = Conn::new(&mut reader);
            assert!(
                sink.read_to_close(Duration::from_secs(10)).await.is_some(),
                "the connection that read nothing is still open"
            );
            pipeline.abort();
            return;
        }
        panic!("the unread echoes were never seen holding the budget in 3 attempts");
    });
}

/// A connection that reads nothing (a 4 KiB receive buffer) and pipelines twelve 1 MiB echoes
/// from a task, which ends once the server stops reading and then closes the connection.
async fn unread_pipeline(
    addr: SocketAddr,
) -> (tokio::net::tcp::OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let one = wire::request("POST", "/echo", &vec![b'p'; MIB]);
    let pipeline = tokio::spawn(async move {
        for _ in 0..12 {
            if writer.write_all(&one).await.is_err() {
                break;
            }
        }
    });
    (reader, pipeline)
}

/// When two fresh echoes in a row were refused while the pipeline was still writing; `None`
/// if the pipeline ended first. Until the server is stuck writing, a fresh echo gets through
/// now and then. Each fresh echo's status and time goes into `seen`.
async fn hold_seen(
    addr: SocketAddr,
    pipeline: &tokio::task::JoinHandle<()>,
    seen: &mut Vec<(u16, Duration)>,
) -> Option<Instant> {
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < Duration::from_secs(20) && !pipeline.is_finished() {
        let status = fresh_echo(addr).await;
        seen.push((status, started.elapsed()));
        refused = if status == 503 { refused + 1 } else { 0 };
        if refused == 2 {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The server side of every accepted connection has TCP keepalive on: a peer that vanishes
/// (no FIN, no RST) is found by the probes instead of holding its connection, and whatever it
/// reserved, until a restart. `/proc/net/tcp` shows a pending keepalive timer as `tr` 2 with
/// its expiry (in clock ticks of 1/100 s) far beyond a delayed ACK's 200 ms.
#[test]
fn accepted_connections_probe_their_peer_with_tcp_keepalive() {
    let p = Process::start(&[]);
    let addr = p.addr();
    let client = runtime().block_on(async {
        let mut conn = Conn::connect(addr).await.unwrap();
        conn.send(&wire::request("GET", "/", b"")).await.unwrap();
        assert!(matches!(conn.read_response().await, Read::Complete(_)));
        conn
    });
    let client_port = client.stream.local_addr().unwrap().port();
    let timer = || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
            (port(f[1]) == Some(addr.port()) && port(f[2]) == Some(client_port)).then(|| {
                let (active, when) = f[5].split_once(':').unwrap();
                (
                    u8::from_str_radix(active, 16).unwrap(),
                    u64::from_str_radix(when, 16).unwrap(),
                )
            })
        })
    };
    let keepalive = support::eventually(
        Duration::from_secs(5),
        || matches!(timer(), Some((2, when)) if when > 100),
    );
    assert!(
        keepalive,
        "no keepalive timer on the server's socket: {:?}",
        timer()
    );
    drop(client);
}
