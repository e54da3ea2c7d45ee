//! What clients nobody here wrote rely on, checked byte by byte: a `HEAD` answer without a body
//! on HTTP/2 as on HTTP/1.1, an early answer (`413`, `400`) that arrives instead of a reset
//! while the client is still sending, and the `Host` rule of RFC 9112 §3.2.

mod support;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper_cloudrun::routes::GREETING;
use support::{TestServer, h2c, http1, request, send1, send2};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wire::{Conn, RawResponse, Read};

/// Any answer, or the close after it, takes longer than this only if the server hangs.
const LIMIT: Duration = Duration::from_secs(10);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One HTTP/2 frame off the wire.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HTTP/2 request on stream 1, HPACK-encoded without Huffman or indexing, so no encoder is
/// needed: `:method` and `:path` as literals with an indexed name (RFC 7541 §6.2.2),
/// `:scheme: http` from the static table.
fn h2_request(method: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x02, method.len() as u8];
    block.extend_from_slice(method.as_bytes());
    block.push(0x86);
    block.extend_from_slice(&[0x04, path.len() as u8]);
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 4]);
    block.extend_from_slice(b"test");
    let mut out = H2_PREFACE.to_vec();
    // An empty SETTINGS frame: the client's preface.
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = block.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[HEADERS, END_STREAM | END_HEADERS, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

async fn read_frame(s: &mut TcpStream) -> Frame {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.expect("a frame header");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.expect("a frame payload");
    Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
        payload,
    }
}

/// The frames the server sends on stream 1 up to the one that ends it.
async fn h2_answer(addr: SocketAddr, method: &str, path: &str) -> Vec<Frame> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&h2_request(method, path)).await.unwrap();
    let mut frames = Vec::new();
    tokio::time::timeout(LIMIT, async {
        loop {
            let f = read_frame(&mut s).await;
            if f.stream != 1 {
                continue;
            }
            let end = f.flags & END_STREAM != 0;
            frames.push(f);
            if end {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: stream 1 not ended within {LIMIT:?}"));
    frames
}

#[tokio::test]
async fn head_over_h2c_ends_the_stream_with_its_headers_and_sends_no_data() {
    let server = TestServer::start_default().await;
    // 200, 404 and 405: every answer to a HEAD, not only the greeting.
    for path in ["/", "/health", "/nowhere", "/echo"] {
        let frames = h2_answer(server.addr, "HEAD", path).await;
        let kinds: Vec<(u8, usize)> = frames.iter().map(|f| (f.kind, f.payload.len())).collect();
        assert_eq!(
            frames.len(),
            1,
            "HEAD {path}: frames (type, length) {kinds:?}"
        );
        assert_eq!(frames[0].kind, HEADERS, "HEAD {path}: {kinds:?}");
        assert!(
            frames.iter().all(|f| f.kind != DATA),
            "HEAD {path}: {kinds:?}"
        );
    }
    // A GET still gets its body after the headers.
    let frames = h2_answer(server.addr, "GET", "/").await;
    let data: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == DATA)
        .flat_map(|f| f.payload.clone())
        .collect();
    assert_eq!(data, GREETING.as_bytes());
}

#[tokio::test]
async fn head_carries_the_status_and_headers_of_get_on_both_protocols() {
    let server = TestServer::start_default().await;
    let mut one = http1(server.addr).await;
    let mut two = h2c(server.addr).await;
    for path in ["/", "/health", "/nowhere", "/echo"] {
        for h2 in [false, true] {
            let (get, head) = if h2 {
                (
                    send2(&mut two, request("GET", path, Bytes::new())).await,
                    send2(&mut two, request("HEAD", path, Bytes::new())).await,
                )
            } else {
                (
                    send1(&mut one, request("GET", path, Bytes::new())).await,
                    send1(&mut one, request("HEAD", path, Bytes::new())).await,
                )
            };
            let what = format!("HEAD {path} over {}", if h2 { "h2c" } else { "HTTP/1.1" });
            assert_eq!(head.status, get.status, "{what}");
            assert!(head.body.is_empty(), "{what}: body {:?}", head.body);
            let length = get.body.len().to_string();
            assert_eq!(
                head.header("content-length"),
                Some(length.as_str()),
                "{what}"
            );
            for name in ["content-type", "allow", "cache-control"] {
                assert_eq!(head.header(name), get.header(name), "{what}: {name}");
            }
        }
    }
}

/// The response to `raw`, read by a client that keeps sending `then` (in 64 KiB writes) without
/// waiting for it, as Node's and Python's clients do. Every write must succeed: a server that
/// closed with the rest unread would have reset the connection, and the answer with it.
async fn answer_while_sending(addr: SocketAddr, raw: &[u8], then: usize) -> RawResponse {
    let (read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let raw = raw.to_vec();
    let upload = tokio::spawn(async move {
        write.write_all(&raw).await?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = then;
        while left > 0 {
            let n = left.min(chunk.len());
            write.write_all(&chunk[..n]).await?;
            left -= n;
        }
        // Done sending: the server may now close.
        write.shutdown().await
    });
    let mut conn = Conn::new(read);
    let res = match tokio::time::timeout(LIMIT, conn.read_response()).await {
        Ok(Read::Complete(res)) => res,
        Ok(other) => panic!("no complete answer: {other:?}"),
        Err(_) => panic!("no answer within {LIMIT:?}"),
    };
    let sent = tokio::time::timeout(LIMIT, upload)
        .await
        .expect("the upload did not finish")
        .unwrap();
    if let Err(e) = sent {
        panic!("a write failed after {} {}: {e}", res.status, e.kind());
    }
    match conn.read_to_close(LIMIT).await {
        Some(rest) => assert!(rest.is_empty(), "bytes after the answer: {rest:?}"),
        None => panic!("connection still open {LIMIT:?} after the upload ended"),
    }
    res
}

const FIVE_MB: usize = 5_000_000;

#[tokio::test]
async fn a_declared_5_mb_body_gets_413_and_no_reset_while_it_is_sent() {
    let server = TestServer::start_default().await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: application/octet-stream\r\n\
         content-length: {FIVE_MB}\r\n\r\n"
    );
    let res = answer_while_sending(server.addr, head.as_bytes(), FIVE_MB).await;
    assert_eq!(res.status, 413);
    assert!(res.closes(), "413 without connection: close: {res:?}");
    wire::get_root(server.addr).await;
}

#[tokio::test]
async fn a_malformed_head_gets_400_and_no_reset_while_the_client_sends_more() {
    let server = TestServer::start_default().await;
    for raw in [
        &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\nhost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n",
    ] {
        let what = String::from_utf8_lossy(raw);
        let res = answer_while_sending(server.addr, raw, FIVE_MB).await;
        assert_eq!(res.status, 400, "{what}");
        assert!(
            res.closes(),
            "{what}: 400 without connection: close: {res:?}"
        );
    }
    wire::get_root(server.addr).await;
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line".
#[tokio::test]
async fn an_http_1_1_request_without_host_or_with_two_gets_400_and_a_close() {
    let server = TestServer::start_default().await;
    for raw in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nx-other: y\r\n\r\n",
        b"POST /echo HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
    ] {
        let what = String::from_utf8_lossy(raw);
        let res = answer_while_sending(server.addr, raw, 0).await;
        assert_eq!(res.status, 400, "{what}");
        assert!(
            res.closes(),
            "{what}: 400 without connection: close: {res:?}"
        );
    }
    // HTTP/1.0 predates Host: none is fine there, two are not.
    for (raw, status) in [
        (&b"GET / HTTP/1.0\r\n\r\n"[..], "200"),
        (b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n", "400"),
    ] {
        let mut conn = Conn::connect(server.addr).await.unwrap();
        conn.send(raw).await.unwrap();
        let all = conn
            .read_to_close(LIMIT)
            .await
            .expect("closed after an HTTP/1.0 answer");
        let all = String::from_utf8_lossy(&all);
        assert!(all.starts_with(&format!("HTTP/1.0 {status} ")), "{all}");
    }
    wire::get_root(server.addr).await;
}
