//! Bad input, written as raw bytes on a socket: each abuse gets a clean answer (a 4xx status, a
//! GOAWAY, or a plain close), never a hang, the server keeps serving everyone else, and
//! repeating the abuse grows neither its memory nor its open descriptors.

mod support;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::server::MAX_HEAD_BYTES;
#[cfg(target_os = "linux")]
use support::Process;
use support::TestServer;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use wire::{Conn, RawResponse, Read, get_root};

/// Any single answer, or the close after it, takes longer than this only if the server hangs.
const LIMIT: Duration = Duration::from_secs(5);

/// Just under and just over the bound on a request head.
const ACCEPTED_HEAD: usize = 60 * 1024;
const REFUSED_HEAD: usize = 70 * 1024;
const _: () = assert!(ACCEPTED_HEAD < MAX_HEAD_BYTES && REFUSED_HEAD > MAX_HEAD_BYTES);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn answer<S: tokio::io::AsyncRead + Unpin>(conn: &mut Conn<S>, what: &str) -> Read {
    tokio::time::timeout(LIMIT, conn.read_response())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

/// The whole response, or a panic naming the case and what came instead.
async fn complete<S: tokio::io::AsyncRead + Unpin>(conn: &mut Conn<S>, what: &str) -> RawResponse {
    match answer(conn, what).await {
        Read::Complete(res) => res,
        other => panic!("{what}: {other:?}"),
    }
}

/// The server closes the connection within the limit and sends nothing more.
async fn assert_closed<S: tokio::io::AsyncRead + Unpin>(conn: &mut Conn<S>, what: &str) {
    match conn.read_to_close(LIMIT).await {
        Some(rest) => assert!(
            rest.is_empty(),
            "{what}: more bytes after the answer: {:?}",
            String::from_utf8_lossy(&rest)
        ),
        None => panic!("{what}: connection still open {LIMIT:?} after the answer"),
    }
}

async fn connect(addr: SocketAddr) -> Conn {
    Conn::connect(addr).await.expect("connect")
}

/// A `GET /` whose head (request line, headers, blank line) is exactly `size` bytes.
fn get_with_head_of(size: usize) -> Vec<u8> {
    let frame = "GET / HTTP/1.1\r\nhost: test\r\nx-pad: \r\n\r\n";
    let mut head = frame.replace(
        "x-pad: ",
        &format!("x-pad: {}", "a".repeat(size - frame.len())),
    );
    head.truncate(size);
    head.into_bytes()
}

async fn head_of_60_kib_is_answered(addr: SocketAddr) {
    let mut conn = connect(addr).await;
    conn.send(&get_with_head_of(ACCEPTED_HEAD)).await.unwrap();
    let res = complete(&mut conn, "60 KiB head").await;
    assert_eq!(res.status, 200, "60 KiB head");
}

async fn head_of_70_kib_is_refused(addr: SocketAddr) {
    let mut conn = connect(addr).await;
    // The server may stop reading, and reset, before all of it is written.
    let _ = conn.send(&get_with_head_of(REFUSED_HEAD)).await;
    match answer(&mut conn, "70 KiB head").await {
        Read::Complete(res) => {
            assert_eq!(res.status, 431, "70 KiB head");
            assert_closed(&mut conn, "70 KiB head").await;
        }
        Read::Nothing(_) => {}
        other @ Read::Broken { .. } => panic!("70 KiB head: {other:?}"),
    }
}

async fn declared_body_over_1_mib_gets_413_before_it_is_sent(addr: SocketAddr) {
    let mut conn = connect(addr).await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    conn.send(head.as_bytes()).await.unwrap();
    // Not a byte of the body is sent: the answer cannot wait for it.
    let res = complete(&mut conn, "declared 1 MiB + 1").await;
    assert_eq!(res.status, 413);
    assert_closed(&mut conn, "declared 1 MiB + 1").await;
}

async fn short_body_then_close_gets_an_answer_or_a_close(addr: SocketAddr) {
    let mut conn = connect(addr).await;
    conn.send(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    conn.stream.shutdown().await.unwrap();
    match answer(&mut conn, "content-length 100, 10 bytes sent").await {
        Read::Complete(res) => assert_eq!(res.status, 400, "content-length 100, 10 bytes sent"),
        Read::Nothing(_) => {}
        other @ Read::Broken { .. } => panic!("content-length 100, 10 bytes sent: {other:?}"),
    }
    assert_closed(&mut conn, "content-length 100, 10 bytes sent").await;
}

async fn chunked_body_over_1_mib_gets_413(addr: SocketAddr) {
    let (read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    // Written while the answer is read: the server stops reading at the limit.
    let upload = tokio::spawn(async move {
        write
            .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n")
            .await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_BODY / chunk.len() + 2) {
            write
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            write.write_all(&chunk).await?;
            write.write_all(b"\r\n").await?;
        }
        write.write_all(b"0\r\n\r\n").await
    });
    let mut conn = Conn::new(read);
    let res = complete(&mut conn, "chunked 1 MiB + 128 KiB").await;
    assert_eq!(res.status, 413);
    assert_closed(&mut conn, "chunked 1 MiB + 128 KiB").await;
    let _ = upload.await;
}

/// Heads hyper refuses to parse, and bodies it refuses to frame.
const MALFORMED: &[&[u8]] = &[
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1 trailing\r\nhost: test\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nhost: test\r\n\r\n",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: test\r\nbad name\x01: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: ten\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: gzip\r\n\r\n",
    b"POST /echo HTTP/1.0\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    // Invalid chunked framing: not a hex size, then a size the data does not match.
    b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
];

async fn malformed_requests_get_400_and_a_close(addr: SocketAddr) {
    for raw in MALFORMED {
        let what = format!("{:?}", String::from_utf8_lossy(raw));
        let mut conn = connect(addr).await;
        conn.send(raw).await.unwrap();
        let res = complete(&mut conn, &what).await;
        assert_eq!(res.status, 400, "{what}");
        assert_closed(&mut conn, &what).await;
    }
}

async fn content_length_with_transfer_encoding_is_answered_then_closed(addr: SocketAddr) {
    // RFC 9112 §6.3: Transfer-Encoding wins, and the server must close after responding, so a
    // second request hidden behind the disagreement (request smuggling) is never answered.
    let mut conn = connect(addr).await;
    conn.send(
        b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nhost: test\r\n\r\n",
    )
    .await
    .unwrap();
    let res = complete(&mut conn, "content-length and transfer-encoding").await;
    match res.status {
        200 => assert_eq!(res.body, b"hello", "framed by transfer-encoding"),
        400 => {}
        other => panic!("content-length and transfer-encoding: status {other}"),
    }
    assert_closed(&mut conn, "content-length and transfer-encoding").await;
}

/// HTTP/2 frames in `bytes` as (type, payload); stops at a partial frame.
fn h2_frames(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        frames.push((rest[3], &rest[9..9 + len]));
        rest = &rest[9 + len..];
    }
    frames
}

async fn h2_garbage_after_the_preface_gets_goaway(addr: SocketAddr) {
    const GOAWAY: u8 = 0x7;
    const SETTINGS: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let garbage: [&[u8]; 4] = [
        b"this is not an http/2 frame at all\r\n\r\n",
        &[0xff; 64],
        // DATA on stream 0, which only frames of the connection itself may use.
        &[
            SETTINGS,
            &[0, 0, 4, 0x0, 0, 0, 0, 0, 0, b'a', b'b', b'c', b'd'],
        ]
        .concat(),
        // HEADERS whose block HPACK cannot decode.
        &[
            SETTINGS,
            &[0, 0, 4, 0x1, 0x5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat(),
    ];
    for g in &garbage {
        let what = format!("h2 preface + {g:?}");
        let mut conn = connect(addr).await;
        conn.send(&[H2_PREFACE, g].concat()).await.unwrap();
        let bytes = conn
            .read_to_close(LIMIT)
            .await
            .unwrap_or_else(|| panic!("{what}: connection still open after {LIMIT:?}"));
        let goaway = h2_frames(&bytes)
            .into_iter()
            .find(|(ty, _)| *ty == GOAWAY)
            .unwrap_or_else(|| panic!("{what}: no GOAWAY in {bytes:?}"));
        let code = u32::from_be_bytes(goaway.1[4..8].try_into().unwrap());
        assert_ne!(code, 0, "{what}: GOAWAY without an error code");
    }
}

/// Every case once, in order.
#[cfg(target_os = "linux")]
async fn every_abuse(addr: SocketAddr) {
    head_of_60_kib_is_answered(addr).await;
    head_of_70_kib_is_refused(addr).await;
    declared_body_over_1_mib_gets_413_before_it_is_sent(addr).await;
    short_body_then_close_gets_an_answer_or_a_close(addr).await;
    chunked_body_over_1_mib_gets_413(addr).await;
    malformed_requests_get_400_and_a_close(addr).await;
    content_length_with_transfer_encoding_is_answered_then_closed(addr).await;
    h2_garbage_after_the_preface_gets_goaway(addr).await;
}

#[tokio::test]
async fn head_of_60_kib_is_accepted() {
    let s = TestServer::start_default().await;
    head_of_60_kib_is_answered(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn head_over_64_kib_gets_431_or_a_close_and_the_server_keeps_serving() {
    let s = TestServer::start_default().await;
    head_of_70_kib_is_refused(s.addr).await;
    get_root(s.addr).await;
}

/// How a head arrives decides how hyper's read buffer grows, and a buffer that grows past the
/// limit in one read could take a whole head over it: refused however it is split.
#[tokio::test]
async fn a_head_over_64_kib_is_refused_however_it_arrives() {
    let s = TestServer::start_default().await;
    for first in [0, 1, 24, 8 * 1024, 56 * 1024, 60_000, 65_000] {
        let what = format!("70 KiB head, {first} bytes first");
        let head = get_with_head_of(REFUSED_HEAD);
        let mut conn = connect(s.addr).await;
        // The server may stop reading, and reset, before all of it is written.
        let _ = conn.send(&head[..first]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = conn.send(&head[first..]).await;
        match answer(&mut conn, &what).await {
            Read::Complete(res) => assert_eq!(res.status, 431, "{what}"),
            Read::Nothing(_) => {}
            other @ Read::Broken { .. } => panic!("{what}: {other:?}"),
        }
    }
    get_root(s.addr).await;
}

/// A connection that has read a body has a larger read buffer than a fresh one: a head over the
/// limit is refused there too, not parsed whole because it fit the buffer.
#[tokio::test]
async fn a_head_over_64_kib_is_refused_on_a_connection_that_read_a_body() {
    let s = TestServer::start_default().await;
    for (body, head) in [(1_000, REFUSED_HEAD), (300_000, 100 * 1024)] {
        let what = format!("{head}-byte head after a {body}-byte body");
        let mut conn = connect(s.addr).await;
        let echo = wire::request("POST", "/echo", &vec![b'x'; body]);
        conn.send(&echo).await.unwrap();
        assert_eq!(complete(&mut conn, &what).await.status, 200, "{what}");
        let _ = conn.send(&get_with_head_of(head)).await;
        match answer(&mut conn, &what).await {
            Read::Complete(res) => assert_eq!(res.status, 431, "{what}"),
            Read::Nothing(_) => {}
            other @ Read::Broken { .. } => panic!("{what}: {other:?}"),
        }
    }
    get_root(s.addr).await;
}

#[tokio::test]
async fn declared_body_over_1_mib_gets_413_without_being_read() {
    let s = TestServer::start_default().await;
    declared_body_over_1_mib_gets_413_before_it_is_sent(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn content_length_longer_than_the_body_then_close_does_not_hang() {
    let s = TestServer::start_default().await;
    short_body_then_close_gets_an_answer_or_a_close(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn chunked_body_over_1_mib_gets_413_and_the_server_keeps_serving() {
    let s = TestServer::start_default().await;
    chunked_body_over_1_mib_gets_413(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn malformed_request_lines_headers_and_chunks_get_400() {
    let s = TestServer::start_default().await;
    malformed_requests_get_400_and_a_close(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_closes_after_the_answer() {
    let s = TestServer::start_default().await;
    content_length_with_transfer_encoding_is_answered_then_closed(s.addr).await;
    get_root(s.addr).await;
}

#[tokio::test]
async fn http2_garbage_after_the_preface_gets_goaway_and_a_close() {
    let s = TestServer::start_default().await;
    h2_garbage_after_the_preface_gets_goaway(s.addr).await;
    get_root(s.addr).await;
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[test]
fn repeated_abuse_grows_neither_memory_nor_open_descriptors() {
    const WARM_UP: usize = 5;
    const ROUNDS: usize = 100;
    let p = Process::start(&[]);
    let (addr, pid) = (p.addr(), p.child.id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settle = || {
        // Closed connections leave the server once it has seen the close.
        std::thread::sleep(Duration::from_millis(200));
        (support::rss_kib(pid), support::fd_count(pid))
    };

    rt.block_on(async {
        for _ in 0..WARM_UP {
            every_abuse(addr).await;
        }
    });
    let (rss_before, fds_before) = settle();
    rt.block_on(async {
        for _ in 0..ROUNDS {
            every_abuse(addr).await;
            get_root(addr).await;
        }
    });
    // On a busy machine the server may take longer than the pause above to see every close:
    // wait for the descriptors to come back (a leak never does), then read the memory.
    let fds_back = support::eventually(Duration::from_secs(10), || {
        support::fd_count(pid) <= fds_before
    });
    let (rss_after, fds_after) = settle();
    eprintln!(
        "after {WARM_UP} warm-up rounds: {rss_before} KiB, {fds_before} fds; \
         after {ROUNDS} more: {rss_after} KiB, {fds_after} fds"
    );
    assert!(
        fds_back && fds_after <= fds_before,
        "open descriptors grew from {fds_before} to {fds_after}"
    );
    // Each round moves over 2 MiB through the server: a leak of 2% of that per round adds
    // more than this margin.
    let margin = 4 * 1024;
    assert!(
        rss_after <= rss_before + margin,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB over {ROUNDS} rounds"
    );
}
