//! The server in-process: draining on shutdown, the grace deadline, and slow clients.

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::Channel;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use hyper_cloudrun::config::ServerConfig;
use hyper_cloudrun::server::{Drain, MAX_HEAD_BYTES};
use support::{TestServer, collect, get, http1, request, send1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn config(grace_ms: u64, header_timeout_ms: u64) -> ServerConfig {
    ServerConfig {
        shutdown_grace: Duration::from_millis(grace_ms),
        header_read_timeout: Duration::from_millis(header_timeout_ms),
        ..ServerConfig::default()
    }
}

/// Reads until EOF or error; returns what arrived and how long it took.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, started.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn shutdown_mid_request_lets_the_request_finish() {
    let mut server = TestServer::start(config(5_000, 10_000)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.signal();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"world").await.unwrap();
    let (reply, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nhelloworld"), "{reply}");
    assert_eq!(server.join().await, Drain::Complete { connections: 1 });
}

#[tokio::test]
async fn shutdown_mid_h2c_stream_lets_the_stream_finish() {
    let mut server = TestServer::start(config(5_000, 10_000)).await;
    let io = TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (mut sender, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
    let conn = tokio::spawn(conn);
    let (mut body_tx, body) = Channel::<Bytes, Infallible>::new(1);
    let req = hyper::Request::post("/echo")
        .header("host", "test")
        .body(body)
        .unwrap();
    let response = tokio::spawn(sender.send_request(req));
    body_tx
        .send_data(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.signal();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The stream opened before the signal is still served after it.
    body_tx
        .send_data(Bytes::from_static(b"world"))
        .await
        .unwrap();
    drop(body_tx);
    let reply = collect(response.await.unwrap().expect("response head")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "helloworld");
    assert_eq!(server.join().await, Drain::Complete { connections: 1 });
    // The server said GOAWAY and closed: the client's connection task ends cleanly.
    tokio::time::timeout(Duration::from_secs(1), conn)
        .await
        .expect("client connection still open")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_at_once() {
    let server = TestServer::start(config(5_000, 10_000)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    let started = Instant::now();
    let drain = server.shutdown().await;
    assert_eq!(drain, Drain::Complete { connections: 1 });
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let (rest, _) = read_to_close(&mut s, Duration::from_secs(1)).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn no_connection_is_accepted_after_shutdown() {
    let server = TestServer::start_default().await;
    let addr = server.addr;
    assert_eq!(server.shutdown().await, Drain::Complete { connections: 0 });
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_request_slower_than_the_grace_is_cut_and_reported() {
    let mut server = TestServer::start(config(300, 10_000)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // Declares 10 bytes and never sends them.
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nhi")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.signal();
    assert_eq!(server.join().await, Drain::Cut { connections: 1 });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_at_the_timeout() {
    let server = TestServer::start(config(1_000, 300)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n")
        .await
        .unwrap();
    let (_, took) = read_to_close(&mut slow, Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Everyone else is still served.
    assert_eq!(get(server.addr, "/health").await.text(), "ok\n");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_at_the_timeout() {
    let server = TestServer::start(config(1_000, 300)).await;
    let mut mute = TcpStream::connect(server.addr).await.unwrap();
    let (got, took) = read_to_close(&mut mute, Duration::from_secs(3)).await;
    assert!(got.is_empty());
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let server = TestServer::start_default().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let big = "a".repeat(MAX_HEAD_BYTES + 1024);
    let head = format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {big}\r\n\r\n");
    // The server may stop reading once over the limit; a failed write is fine.
    let _ = s.write_all(head.as_bytes()).await;
    let (reply, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    // A large but legal head is fine.
    let mut c = http1(server.addr).await;
    let mut req = request("GET", "/", bytes::Bytes::new());
    req.headers_mut()
        .insert("x-big", "b".repeat(32 * 1024).parse().unwrap());
    assert_eq!(send1(&mut c, req).await.status, hyper::StatusCode::OK);
}
