//! `POST /events`: Eventarc deliveries in CloudEvents binary content mode, as a Cloud Run
//! destination receives them (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md>).

mod support;

use std::time::Duration;

use bytes::Bytes;
use hyper::{Request, StatusCode};
use hyper_cloudrun::config::ServerConfig;
use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::http::budget::Budget;
use hyper_cloudrun::routes::State;
use hyper_cloudrun::routes::events::MAX_EVENT_BODY;
use hyper_cloudrun::server::Drain;
#[cfg(target_os = "linux")]
use support::Process;
use support::{Body, TestServer, h2c, http1, send1, send2};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[cfg(target_os = "linux")]
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A Pub/Sub message as Eventarc delivers it: the push envelope as the event data
/// (`google.cloud.pubsub.topic.v1.messagePublished`).
const PUBSUB_BODY: &str = r#"{"message":{"data":"aGVsbG8=","messageId":"2070443601311540","publishTime":"2021-02-26T19:13:55.749Z","attributes":{"k":"v"}},"subscription":"projects/my-proj/subscriptions/eventarc-us-central1-trigger-sub-000"}"#;

/// The binary-mode headers Eventarc sends for a Pub/Sub message, plus `extra`.
fn event(extra: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/events")
        .header("host", "test")
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "2070443601311540")
        .header(
            "ce-source",
            "//pubsub.googleapis.com/projects/my-proj/topics/my-topic",
        )
        .header("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
        .header("ce-time", "2021-02-26T19:13:55.749Z");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Body::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

/// The same request without the header `name`, or with it set to `value`.
fn without(name: &str, value: Option<&str>) -> Request<Body> {
    let mut req = event(&[], "{}");
    req.headers_mut().remove(name);
    if let Some(v) = value {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

#[tokio::test]
async fn a_binary_mode_pubsub_event_is_accepted_with_204() {
    let server = TestServer::start_default().await;
    let mut c = http1(server.addr).await;
    let r = send1(&mut c, event(&[], PUBSUB_BODY)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    // With a subject (Cloud Storage events carry `objects/NAME`), on the same connection.
    let r = send1(&mut c, event(&[("ce-subject", "objects/a.txt")], "{}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn events_are_accepted_over_h2c_too() {
    let server = TestServer::start_default().await;
    let mut c = h2c(server.addr).await;
    let r = send2(&mut c, event(&[], PUBSUB_BODY)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// A refused event's body is left unread, so over HTTP/1.1 the answer ends the connection
/// (and the server lingers so that the sender reads it); each case gets a connection.
async fn refused(addr: std::net::SocketAddr, req: Request<Body>) -> support::Reply {
    let mut c = http1(addr).await;
    let r = send1(&mut c, req).await;
    assert_eq!(r.header("connection"), Some("close"));
    r
}

#[tokio::test]
async fn a_missing_or_empty_required_attribute_is_refused_with_400_naming_it() {
    let server = TestServer::start_default().await;
    for name in ["ce-specversion", "ce-id", "ce-source", "ce-type"] {
        for value in [None, Some("")] {
            let r = refused(server.addr, without(name, value)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}={value:?}");
            assert!(r.text().contains(name), "{name}={value:?}: {}", r.text());
        }
    }
    // Over h2c only the stream ends.
    let mut c = h2c(server.addr).await;
    let r = send2(&mut c, without("ce-id", None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send2(&mut c, event(&[], "{}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_specversion_other_than_1_0_is_refused_with_400() {
    let server = TestServer::start_default().await;
    for v in ["0.3", "1", "1.00", "2.0"] {
        let r = refused(server.addr, without("ce-specversion", Some(v))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{v:?}");
        assert!(r.text().contains("ce-specversion"), "{}", r.text());
    }
}

#[tokio::test]
async fn a_structured_mode_event_is_refused_with_415_saying_eventarc_uses_binary_mode() {
    let server = TestServer::start_default().await;
    for ct in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents-Batch+JSON",
    ] {
        let req = Request::builder()
            .method("POST")
            .uri("/events")
            .header("host", "test")
            .header("content-type", ct)
            .body(Body::new(Bytes::from_static(
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t"}"#,
            )))
            .unwrap();
        let r = refused(server.addr, req).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert!(r.text().contains("binary"), "{}", r.text());
    }
}

/// Larger than anything Pub/Sub or Eventarc delivers (a 10 MB message in base64): refused
/// before a byte of it is read.
#[tokio::test]
async fn an_event_body_over_the_limit_gets_413() {
    let server = TestServer::start_default().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /events HTTP/1.1\r\nhost: t\r\nce-specversion: 1.0\r\nce-id: 1\r\n\
             ce-source: s\r\nce-type: t\r\ncontent-length: {}\r\n\r\n",
            MAX_EVENT_BODY + 1
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut reply))
        .await
        .expect("an answer before the body")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(
        reply.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{reply}"
    );
    assert!(reply.contains("connection: close\r\n"), "{reply}");
}

#[tokio::test]
async fn other_methods_on_events_get_405_with_allow_post() {
    let server = TestServer::start_default().await;
    let mut c = http1(server.addr).await;
    let req = Request::builder()
        .method("GET")
        .uri("/events")
        .header("host", "test")
        .body(Body::new(Bytes::new()))
        .unwrap();
    let r = send1(&mut c, req).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn shutdown_mid_event_lets_the_delivery_finish_with_204() {
    let mut server = TestServer::start(ServerConfig {
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /events HTTP/1.1\r\nhost: t\r\nce-specversion: 1.0\r\nce-id: 1\r\n\
          ce-source: //storage.googleapis.com/projects/_/buckets/b\r\n\
          ce-type: google.cloud.storage.object.v1.finalized\r\ncontent-length: 10\r\n\r\nhello",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.signal();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"world").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .expect("the connection closes after the answer")
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 204 No Content\r\n"), "{reply}");
    assert_eq!(server.join().await, Drain::Complete { connections: 1 });
}

/// The binary's own log line for an event: one INFO object with the event's attributes, in
/// the request's trace.
#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[tokio::test]
async fn each_event_is_logged_once_at_info_with_its_attributes_and_trace() {
    let mut p = Process::start(&[("GOOGLE_CLOUD_PROJECT", "my-proj")]);
    let mut c = http1(p.addr()).await;
    let r = send1(
        &mut c,
        event(
            &[
                ("ce-subject", "objects/a.txt"),
                ("traceparent", &format!("00-{TRACE}-00f067aa0ba902b7-01")),
            ],
            PUBSUB_BODY,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let line = p
        .wait_for(
            |l| l.contains(r#""message":"event""#),
            Duration::from_secs(5),
        )
        .expect("an event line");
    for field in [
        r#""severity":"INFO""#.to_owned(),
        r#""id":"2070443601311540""#.to_owned(),
        r#""type":"google.cloud.pubsub.topic.v1.messagePublished""#.to_owned(),
        r#""source":"//pubsub.googleapis.com/projects/my-proj/topics/my-topic""#.to_owned(),
        r#""subject":"objects/a.txt""#.to_owned(),
        format!(r#""bytes":{}"#, PUBSUB_BODY.len()),
        format!(r#""logging.googleapis.com/trace":"projects/my-proj/traces/{TRACE}""#),
    ] {
        assert!(line.contains(&field), "{field} missing in {line}");
    }

    // Without a subject the field is absent, not empty.
    let r = send1(&mut c, event(&[], "{}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let second = p
        .wait_for(
            |l| l.contains(r#""message":"event""#) && l.contains(r#""bytes":2,"#),
            Duration::from_secs(5),
        )
        .expect("a second event line");
    assert!(!second.contains("subject"), "{second}");
    // A refused event is not logged as an event.
    let r = refused(p.addr(), without("ce-id", None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(5));
    let events = p
        .drain_lines()
        .iter()
        .filter(|l| l.contains(r#""message":"event""#))
        .count();
    assert_eq!(events, 2);
}

/// Events read their data under the same memory budget as `/echo`: with the budget spent by an
/// upload in progress, an event is answered `503` with `retry-after` (the sender retries it).
#[tokio::test]
async fn an_event_the_body_budget_cannot_take_gets_503_with_retry_after() {
    let config = ServerConfig::default();
    let state = State {
        budget: Budget::new(MAX_BODY),
        body_read_timeout: config.body_read_timeout,
    };
    let server = TestServer::with_state(config, state).await;
    // An upload that sends all but a byte of the whole budget, and stops.
    let mut held = TcpStream::connect(server.addr).await.unwrap();
    let mut upload =
        format!("POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {MAX_BODY}\r\n\r\n")
            .into_bytes();
    upload.resize(upload.len() + MAX_BODY - 1, b'x');
    held.write_all(&upload).await.unwrap();
    // The event may get there before the server has read the upload's head: then it is
    // accepted, and sent again.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut c = h2c(server.addr).await;
            let r = send2(&mut c, event(&[], PUBSUB_BODY)).await;
            if r.status != StatusCode::NO_CONTENT {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no refusal while the budget was spent");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after"), Some("1"));
    drop(held);
}
