//! Every route over a real socket, on HTTP/1.1 and h2c.

mod support;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Frame;
use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::routes::GREETING;
use support::{TestServer, get, h2c, http1, request, send1, send2};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn root_returns_the_greeting_as_utf8_text() {
    let server = TestServer::start_default().await;
    let r = get(server.addr, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), GREETING);
}

#[tokio::test]
async fn head_root_returns_headers_without_a_body() {
    let server = TestServer::start_default().await;
    let mut c = http1(server.addr).await;
    let r = send1(&mut c, request("HEAD", "/", Bytes::new())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-length"),
        Some(GREETING.len().to_string().as_str())
    );
    assert!(r.body.is_empty());
    // The connection is still usable: the empty HEAD body did not desynchronise it.
    let r = send1(&mut c, request("GET", "/health", Bytes::new())).await;
    assert_eq!(r.text(), "ok\n");
}

#[tokio::test]
async fn health_returns_ok_and_no_store_for_probes() {
    let server = TestServer::start_default().await;
    let r = get(server.addr, "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.text(), "ok\n");
}

#[tokio::test]
async fn unknown_path_returns_404() {
    let server = TestServer::start_default().await;
    // `/healthz` is reserved by Cloud Run's front end: serving it would only mislead.
    for path in ["/nope", "/health/", "/healthz", "/echo/x", "//"] {
        assert_eq!(
            get(server.addr, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn wrong_method_returns_405_with_allow() {
    let server = TestServer::start_default().await;
    let mut c = http1(server.addr).await;
    for (method, path, allow) in [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/health", "GET, HEAD"),
        ("GET", "/echo", "POST"),
        ("PUT", "/echo", "POST"),
    ] {
        let r = send1(&mut c, request(method, path, Bytes::new())).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn echo_returns_the_body_with_its_content_type() {
    let server = TestServer::start_default().await;
    let mut c = http1(server.addr).await;
    let mut req = request("POST", "/echo", r#"{"hello":"world"}"#);
    req.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let r = send1(&mut c, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"hello":"world"}"#);
    // Without a content type, none is invented.
    let r = send1(&mut c, request("POST", "/echo", "x")).await;
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.text(), "x");
}

#[tokio::test]
async fn echo_accepts_exactly_one_mebibyte() {
    let server = TestServer::start_default().await;
    let body = Bytes::from(vec![b'a'; MAX_BODY]);
    let mut c = http1(server.addr).await;
    let r = send1(&mut c, request("POST", "/echo", body.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, body);
}

#[tokio::test]
async fn echo_refuses_a_declared_oversized_body_before_reading_it() {
    let server = TestServer::start_default().await;
    // Declare 100 MiB, send only the head, and expect the answer without sending a body byte:
    // the server must not wait for (or buffer) what it will refuse.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 104857600\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
}

#[tokio::test]
async fn echo_cuts_a_streamed_oversized_body_at_the_limit() {
    let server = TestServer::start_default().await;
    // Chunked, no declared length: 64 KiB chunks, far more than 1 MiB in total.
    let body = Chunks { left: 64 };
    let req = hyper::Request::post("/echo")
        .header("host", "t")
        .body(body)
        .unwrap();
    let io =
        hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .expect("a response, not a reset");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn h2c_serves_every_route_on_the_same_port() {
    let server = TestServer::start_default().await;
    let mut c = h2c(server.addr).await;
    let r = send2(&mut c, request("GET", "/", Bytes::new())).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, GREETING));
    let r = send2(&mut c, request("GET", "/health", Bytes::new())).await;
    assert_eq!(r.text(), "ok\n");
    let r = send2(&mut c, request("POST", "/echo", "over h2")).await;
    assert_eq!(r.text(), "over h2");
    let r = send2(&mut c, request("PATCH", "/", Bytes::new())).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // And HTTP/1.1 still works alongside.
    assert_eq!(get(server.addr, "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn h2c_multiplexes_concurrent_streams() {
    let server = TestServer::start_default().await;
    let c = h2c(server.addr).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            send2(&mut c, request("POST", "/echo", format!("stream {i}"))).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().text(), format!("stream {i}"));
    }
}

/// A body of `left` chunks of 64 KiB with no declared length (sent chunked).
struct Chunks {
    left: usize,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'z'; 64 * 1024])))))
    }
}
