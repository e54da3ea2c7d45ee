//! Idle connections: a keep-alive connection may idle between requests for `KEEPALIVE_TIMEOUT`
//! (not the header timeout, which a proxy reusing pooled connections would race), and is then
//! closed; HTTP/2 connections get GOAWAY. The header timeout still runs from a head's first
//! byte.

mod support;
mod wire;

use std::time::Duration;

use hyper_cloudrun::config::ServerConfig;
use support::{Process, TestServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wire::{Conn, Read, request};

/// Far longer than any close these tests wait for: only a server that never closes reaches it.
const LIMIT: Duration = Duration::from_secs(15);

fn config(header_timeout: Duration, keepalive: Duration) -> ServerConfig {
    ServerConfig {
        header_read_timeout: header_timeout,
        keepalive_timeout: keepalive,
        ..ServerConfig::default()
    }
}

async fn get_on(conn: &mut Conn, what: &str) {
    conn.send(&request("GET", "/", b"")).await.unwrap();
    match tokio::time::timeout(LIMIT, conn.read_response()).await {
        Ok(Read::Complete(res)) => assert_eq!(res.status, 200, "{what}"),
        Ok(other) => panic!("{what}: {other:?}"),
        Err(_) => panic!("{what}: no answer within {LIMIT:?}"),
    }
}

#[tokio::test]
async fn a_keep_alive_connection_idle_longer_than_the_header_timeout_is_still_served() {
    let server = TestServer::start(config(Duration::from_secs(1), LIMIT * 4)).await;
    let mut conn = Conn::connect(server.addr).await.unwrap();
    get_on(&mut conn, "first request").await;
    // Idle between requests for well over the header timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    get_on(&mut conn, "request after 2.5 s idle, header timeout 1 s").await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let server = TestServer::start(config(LIMIT * 4, Duration::from_secs(1))).await;
    let mut conn = Conn::connect(server.addr).await.unwrap();
    get_on(&mut conn, "first request").await;
    match conn.read_to_close(LIMIT).await {
        Some(rest) => assert!(rest.is_empty(), "bytes before the close: {rest:?}"),
        None => panic!("idle connection still open {LIMIT:?} after a 1 s keep-alive timeout"),
    }
}

#[tokio::test]
async fn a_head_begun_after_an_idle_wait_is_cut_at_the_header_timeout() {
    let server = TestServer::start(config(Duration::from_secs(1), LIMIT * 4)).await;
    let mut conn = Conn::connect(server.addr).await.unwrap();
    get_on(&mut conn, "first request").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The first bytes of a head that never ends.
    conn.send(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
    match conn.read_to_close(LIMIT).await {
        Some(rest) => assert!(rest.is_empty(), "bytes before the close: {rest:?}"),
        None => panic!("a head unfinished after {LIMIT:?} was not cut (header timeout 1 s)"),
    }
}

/// HTTP/2 frame types in what the server sent, once it closed.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

#[tokio::test]
async fn an_idle_h2c_connection_gets_goaway_after_the_keep_alive_timeout() {
    const GOAWAY: u8 = 0x7;
    let server = TestServer::start(config(LIMIT * 4, Duration::from_secs(1))).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // Read everything until the close, acknowledging nothing: the server must close anyway.
    let mut got = Vec::new();
    let closed = tokio::time::timeout(LIMIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "idle h2c connection still open after {LIMIT:?}"
    );
    let types = frame_types(&got);
    assert!(
        types.contains(&GOAWAY),
        "no GOAWAY before the close: {types:?}"
    );
}

#[test]
fn keepalive_timeout_is_read_from_the_environment() {
    let p = Process::start(&[("KEEPALIVE_TIMEOUT", "1s"), ("HEADER_READ_TIMEOUT", "60s")]);
    let rt = support::runtime();
    rt.block_on(async {
        let mut conn = Conn::connect(p.addr()).await.unwrap();
        get_on(&mut conn, "first request").await;
        assert!(
            conn.read_to_close(LIMIT).await.is_some(),
            "idle connection still open {LIMIT:?} after KEEPALIVE_TIMEOUT=1s"
        );
    });
}
