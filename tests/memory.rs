//! Bounded memory, against the real binary: request bodies across all connections hold at most
//! `BODY_BUDGET`; a request past it is answered `503` with `retry-after`, and a burst
//! of concurrent h2c uploads leaves the process small, every request answered `200` or `503`,
//! and the server serving.
// Linux only: this file reads the process's peak RSS from /proc; a Darwin `nix build` runs the other test files.
#![cfg(target_os = "linux")]

mod support;
mod wire;

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

/// A client holds the bytes it has sent, not what it declared: two uploads that sent all but
/// 1,000 bytes of a 1 MiB body each hold a 2 MiB budget, and a third is refused once it has
/// sent the little that was left.
#[test]
fn a_body_the_budget_cannot_take_gets_503_with_retry_after() {
    let p = Process::start(&[("BODY_BUDGET", "2MiB")]);
    let addr = p.addr();
    runtime().block_on(async {
        // Two uploads of 1 MiB each, all but 1,000 bytes sent and left hanging: the budget is
        // spent, once the server has read them.
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(upload_started(addr, MIB - 1000).await);
        }
        // A third, whole and at once, is refused. It may get there before the server has read
        // the other two; then it is served, and tried again.
        let refused = tokio::time::timeout(LIMIT, async {
            loop {
                let mut conn = upload_started(addr, MIB).await;
                match conn.read_response().await {
                    Read::Complete(res) if res.status == 503 => return res,
                    Read::Complete(res) if res.status == 200 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
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
