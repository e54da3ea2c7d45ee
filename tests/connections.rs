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
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
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

/// An HTTP/2 frame: length, type, flags, stream id, payload (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A raw h2c connection that sends a PING every 200 ms until `stop` changes, and reports the
/// types of the frames the server sent on `stream` or on the connection (0).
async fn pinging_h2c(
    addr: SocketAddr,
    first: Vec<u8>,
    mut stop: watch::Receiver<Option<Vec<u8>>>,
) -> Vec<(u8, u32)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    hello.extend(first);
    s.write_all(&hello).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_reader = std::sync::Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        let mut head = [0u8; 9];
        while rd.read_exact(&mut head).await.is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                break;
            }
            seen_by_reader.lock().unwrap().push((head[3], stream));
        }
    });
    loop {
        tokio::select! {
            changed = stop.changed() => {
                let last = changed.ok().and_then(|()| stop.borrow().clone());
                if let Some(last) = last {
                    let _ = wr.write_all(&last).await;
                }
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if wr.write_all(&frame(PING, 0, 0, b"12345678")).await.is_err() {
                    break;
                }
            }
        }
    }
    // Whatever comes within a second of the last write.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(wr);
    reader.abort();
    let _ = reader.await;
    std::mem::take(&mut *seen.lock().unwrap())
}

/// h2c connections that only send PINGs have no request in flight: at the cap they are closed
/// (GOAWAY) for a new connection like idle HTTP/1.1 ones, while one whose stream is still
/// uploading is not. (Before, four pinging connections at `MAX_CONNECTIONS=4` kept a new client
/// waiting for as long as they pinged.)
#[test]
fn h2c_connections_with_no_stream_in_flight_are_idle_even_while_they_ping() {
    let p = Process::start(&[("MAX_CONNECTIONS", "3")]);
    let addr = p.addr();
    runtime().block_on(async {
        let (stop, stopped) = watch::channel(None);
        // POST /echo declaring 4 bytes, 2 sent. The header block in HPACK (RFC 7541): `:method:
        // POST` and `:scheme: http` from the static table (0x83, 0x86), then `:path`,
        // `:authority` and `content-length` as literals with static names 4, 1 and 28 (§6.2.2:
        // an index of 15 or more continues in a second byte).
        let mut block = vec![0x83, 0x86, 0x04, 5];
        block.extend(b"/echo");
        block.extend([0x01, 1, b't', 0x0f, 28 - 15, 1, b'4']);
        let mut uploading = frame(HEADERS, END_HEADERS, 1, &block);
        uploading.extend(frame(DATA, 0, 1, b"ab"));
        let busy = tokio::spawn(pinging_h2c(addr, uploading, stopped.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle: Vec<_> = (0..2)
            .map(|_| tokio::spawn(pinging_h2c(addr, Vec::new(), stopped.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(600)).await;
        // At the cap, with the pinging connections reading a PING every 200 ms.
        let mut fresh = Conn::connect(addr).await.unwrap();
        assert!(
            get(&mut fresh).await,
            "a new client waited behind pinging h2c connections"
        );
        stop.send(Some(frame(DATA, END_STREAM, 1, b"cd"))).unwrap();
        let busy = busy.await.unwrap();
        let idle: Vec<Vec<(u8, u32)>> = futures_join(idle).await;
        assert!(
            idle.iter().any(|seen| seen.contains(&(GOAWAY, 0))),
            "no idle h2c connection was sent GOAWAY: {idle:?}"
        );
        assert!(
            !busy.contains(&(GOAWAY, 0)) && busy.contains(&(HEADERS, 1)),
            "the uploading h2c connection: {busy:?}"
        );
    });
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
