//! The connection cap (issue 17, item 4): past `MAX_CONNECTIONS` the oldest idle connections
//! are closed first, so idle keep-alive connections cannot grow memory until Cloud Run kills
//! the instance; busy ones are never cut, and a new connection then waits in the accept queue.
// Linux only: runs many clients against the spawned binary, and sends signals with kill(1).
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use support::{Process, runtime};
use wire::{Conn, Read};

/// A keep-alive connection that has had its `GET /` answered.
async fn idle_connection(addr: SocketAddr) -> Conn {
    let mut conn = Conn::connect(addr).await.expect("connect");
    assert!(get(&mut conn).await, "GET / on a new connection");
    conn
}

/// `GET /` on `conn`: `true` if the greeting came within 5 s.
async fn get(conn: &mut Conn) -> bool {
    if conn.send(&wire::request("GET", "/", b"")).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(5), conn.read_response()).await,
        Ok(Read::Complete(res)) if res.status == 200
    )
}

#[test]
fn past_max_connections_the_oldest_idle_connections_are_closed_first() {
    const CAP: usize = 20;
    const MORE: usize = 5;
    let p = Process::start(&[("MAX_CONNECTIONS", "20")]);
    let addr = p.addr();
    runtime().block_on(async {
        let mut conns = Vec::new();
        for _ in 0..CAP {
            conns.push(idle_connection(addr).await);
            // Idle since distinct moments, oldest first.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..MORE {
            conns.push(idle_connection(addr).await);
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            if i < MORE {
                assert!(
                    conn.read_to_close(Duration::from_secs(5)).await.is_some(),
                    "connection {i}, among the oldest idle, is still open"
                );
            } else {
                assert!(get(conn).await, "connection {i} was closed");
            }
        }
    });
}

/// Connections in the middle of a request are never closed for the cap: a new connection
/// waits (in the kernel's accept queue) until one of them is done.
#[test]
fn at_max_connections_with_none_idle_a_new_connection_waits_for_a_free_slot() {
    let p = Process::start(&[("MAX_CONNECTIONS", "2")]);
    let addr = p.addr();
    runtime().block_on(async {
        // Two uploads in progress: busy, not idle.
        let mut busy = Vec::new();
        for _ in 0..2 {
            let mut conn = Conn::connect(addr).await.unwrap();
            conn.send(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\nab")
                .await
                .unwrap();
            busy.push(conn);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut waiting = Conn::connect(addr).await.unwrap();
        waiting.send(&wire::request("GET", "/", b"")).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(700), waiting.read_response()).await;
        assert!(early.is_err(), "served past the cap: {early:?}");
        // One upload finishes and its client closes: the waiting request is served.
        busy[0].send(b"cd").await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), busy[0].read_response()).await {
            Ok(Read::Complete(res)) => assert_eq!(res.body, b"abcd"),
            other => panic!("the finished upload: {other:?}"),
        }
        drop(busy.remove(0));
        match tokio::time::timeout(Duration::from_secs(5), waiting.read_response()).await {
            Ok(Read::Complete(res)) => assert_eq!(res.status, 200),
            other => panic!("the waiting GET /: {other:?}"),
        }
        // The other upload was never cut.
        busy[0].send(b"cd").await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), busy[0].read_response()).await {
            Ok(Read::Complete(res)) => assert_eq!(res.body, b"abcd"),
            other => panic!("the second upload: {other:?}"),
        }
    });
}
