//! Bounded memory, against the real binary: request bodies across all connections hold at most
//! `BODY_BUDGET`; a request past it is answered `503` with `retry-after`, and a burst
//! of concurrent h2c uploads leaves the process small, every request answered `200` or `503`,
//! and the server serving.
// Linux only: this file reads the process's peak RSS from /proc; a Darwin `nix build` runs the other test files.
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use support::{Process, collect, h2c, request, runtime};
use tokio::io::AsyncWriteExt as _;
use wire::{Conn, Read, get_root};

/// Any answer takes longer than this only if the server hangs.
const LIMIT: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

/// `POST /echo` with a declared 1 MiB body, whose first `sent` bytes are sent.
async fn upload_started(addr: std::net::SocketAddr, sent: usize) -> Conn {
    let mut conn = Conn::connect(addr).await.unwrap();
    let mut raw =
        format!("POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: {MIB}\r\n\r\n").into_bytes();
    raw.resize(raw.len() + sent, b'x');
    conn.send(&raw).await.unwrap();
    conn
}

/// `(tx_queue, rx_queue)` of the loopback TCP socket bound to `local` and connected to `remote`
/// (`/proc/net/tcp`): the bytes the kernel holds that the peer has not received, or that this
/// side has not read.
fn queued(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |a: SocketAddr| format!(":{:04X}", a.port());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(fields.get(1)?.ends_with(&port(local)) && fields.get(2)?.ends_with(&port(remote))) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Waits until the server has read every byte `conn` sent: none left in the client's send queue
/// nor in the server's receive queue. A busy server reads in its own time.
async fn until_read_by_server(conn: &Conn) {
    let client = conn.stream.local_addr().unwrap();
    let server = conn.stream.peer_addr().unwrap();
    tokio::time::timeout(LIMIT, async {
        loop {
            if queued(client, server).is_some_and(|(tx, _)| tx == 0)
                && queued(server, client).is_some_and(|(_, rx)| rx == 0)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server never read the upload's bytes");
}

/// A client holds the bytes it has sent, not what it declared: two uploads that sent all but
/// 1,000 bytes of a 1 MiB body each hold a 2 MiB budget, and a third is refused.
#[test]
fn a_body_the_budget_cannot_take_gets_503_with_retry_after() {
    let p = Process::start(&[("BODY_BUDGET", "2MiB")]);
    let addr = p.addr();
    runtime().block_on(async {
        // Two uploads of 1 MiB each, all but 1,000 bytes sent and left hanging: the budget is
        // spent once the server has read them.
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(upload_started(addr, MIB - 1000).await);
        }
        // A third, whole and at once, is refused.
        let refused = tokio::time::timeout(LIMIT, async {
            loop {
                for conn in &held {
                    until_read_by_server(conn).await;
                }
                let mut conn = upload_started(addr, MIB).await;
                match conn.read_response().await {
                    Read::Complete(res) if res.status == 503 => return res,
                    // The server had read the held uploads' bytes but not yet counted them
                    // (their tasks had not run again): the third was served. If it took the
                    // room a held upload was growing into, that one was refused; it is started
                    // again.
                    Read::Complete(res) if res.status == 200 => {
                        for conn in &mut held {
                            let answered = tokio::time::timeout(
                                Duration::from_millis(1),
                                conn.read_response(),
                            )
                            .await;
                            if answered.is_ok() {
                                *conn = upload_started(addr, MIB - 1000).await;
                            }
                        }
                    }
                    other => panic!("third upload: {other:?}"),
                }
            }
        })
        .await
        .expect("no 503 while the budget was spent");
        assert_eq!(refused.header("retry-after"), Some("1"), "{refused:?}");
        assert!(
            refused.closes(),
            "503 with the body unread must close: {refused:?}"
        );
        // The held uploads finish and are served; their bytes go back to the budget.
        for conn in &mut held {
            conn.stream.write_all(&[b'y'; 1000]).await.unwrap();
            match tokio::time::timeout(LIMIT, conn.read_response()).await {
                Ok(Read::Complete(res)) => {
                    assert_eq!(res.status, 200);
                    assert_eq!(res.body.len(), MIB);
                }
                other => panic!("held upload: {other:?}"),
            }
        }
        drop(held);
        let mut conn = upload_started(addr, MIB).await;
        match tokio::time::timeout(LIMIT, conn.read_response()).await {
            Ok(Read::Complete(res)) => assert_eq!(res.status, 200, "after the budget was freed"),
            other => panic!("upload after the budget was freed: {other:?}"),
        }
    });
}

#[test]
fn a_burst_of_h2c_uploads_stays_within_the_budget_and_every_request_is_answered() {
    const CONNECTIONS: usize = 4;
    const STREAMS: usize = 50;
    let p = Process::start(&[("BODY_BUDGET", "8MiB")]);
    let (addr, pid) = (p.addr(), p.child.id());
    let body = Bytes::from(vec![b'x'; MIB]);
    let (ok, busy) = runtime().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let sender = h2c(addr).await;
            for _ in 0..STREAMS {
                let mut sender = sender.clone();
                let body = body.clone();
                tasks.push(tokio::spawn(async move {
                    sender.ready().await.expect("connection ready");
                    let res = sender
                        .send_request(request("POST", "/echo", body))
                        .await
                        .expect("a response");
                    collect(res).await
                }));
            }
        }
        let (mut ok, mut busy) = (0, 0);
        for task in tasks {
            let reply = tokio::time::timeout(LIMIT * 3, task)
                .await
                .expect("a stream unanswered")
                .unwrap();
            match reply.status {
                StatusCode::OK => {
                    assert_eq!(reply.body.len(), MIB);
                    ok += 1;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(reply.header("retry-after"), Some("1"));
                    busy += 1;
                }
                other => panic!("status {other}"),
            }
        }
        get_root(addr).await;
        (ok, busy)
    });
    let peak = support::peak_rss_kib(pid);
    eprintln!("{ok} answered 200, {busy} 503; peak RSS {peak} KiB");
    assert_eq!(ok + busy, CONNECTIONS * STREAMS);
    assert!(ok > 0 && busy > 0, "{ok} answered 200, {busy} 503");
    // 200 bodies of 1 MiB at once would be 200 MiB; the budget holds 8 MiB of them, and the
    // rest is the binary, per-connection buffers and the allocator's slack.
    assert!(peak < 80 * 1024, "peak RSS {peak} KiB");
}
