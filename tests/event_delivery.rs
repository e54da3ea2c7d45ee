//! `POST /events` takes every delivery Google Cloud can make of an event, and says so in the
//! log (issue 17, item 6): a Pub/Sub message as large as Pub/Sub takes, through Eventarc or a
//! plain push subscription (the JSON push envelope, no `ce-*` headers); and an event refused
//! for good is logged at `ERROR` with its id, since its sender retries it until it expires.
// Linux only: reads the binary's log, and sends signals with kill(1).
#![cfg(target_os = "linux")]

mod support;
mod wire;

use std::time::Duration;

use support::Process;
use wire::{Conn, RawResponse, Read};

const MIB: usize = 1024 * 1024;

/// A push envelope as Pub/Sub sends it (<https://cloud.google.com/pubsub/docs/push>), with
/// `data_len` bytes of base64 data.
fn envelope(message_id: &str, data_len: usize) -> Vec<u8> {
    format!(
        r#"{{"message":{{"attributes":{{"origin":"test"}},"data":"{}","messageId":"{message_id}","message_id":"{message_id}","publishTime":"2026-12-06T10:00:00.123Z","publish_time":"2026-12-06T10:00:00.123Z"}},"subscription":"projects/my-proj/subscriptions/my-push-sub","deliveryAttempt":1}}"#,
        "A".repeat(data_len)
    )
    .into_bytes()
}

/// `POST /events` with `headers` (each `name: value`) and `body`; the answer.
async fn post(addr: std::net::SocketAddr, headers: &[&str], body: &[u8]) -> RawResponse {
    let conn = Conn::connect(addr).await.expect("connect");
    let mut head = format!(
        "POST /events HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // Written in a task: the server may answer (and stop reading) before the body is in.
    let (mut read, mut write) = conn.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let _ = write.write_all(&request).await;
        write
    });
    let mut reader = Conn::new(&mut read);
    let res = match tokio::time::timeout(Duration::from_secs(30), reader.read_response()).await {
        Ok(Read::Complete(res)) => res,
        other => panic!("POST /events: {other:?}"),
    };
    drop(writer);
    res
}

const EVENTARC: [&str; 5] = [
    "content-type: application/json",
    "ce-specversion: 1.0",
    "ce-source: //pubsub.googleapis.com/projects/my-proj/topics/my-topic",
    "ce-type: google.cloud.pubsub.topic.v1.messagePublished",
    "ce-time: 2026-12-06T10:00:00.123Z",
];

fn eventarc(id: &str) -> Vec<String> {
    let mut h: Vec<String> = EVENTARC.iter().map(|s| (*s).to_owned()).collect();
    h.push(format!("ce-id: {id}"));
    h
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn a_pubsub_push_envelope_is_acknowledged_with_its_message_id_logged() {
    let mut p = Process::start(&[]);
    let res = post(
        p.addr(),
        &["content-type: application/json"],
        &envelope("7000000000000001", 8),
    )
    .await;
    assert_eq!(res.status, 204, "{res:?}");
    let line = p
        .wait_for(
            |l| l.contains(r#""message":"event""#),
            Duration::from_secs(5),
        )
        .expect("an event line");
    assert!(line.contains(r#""severity":"INFO""#), "{line}");
    assert!(line.contains(r#""id":"7000000000000001""#), "{line}");
    assert!(
        line.contains(r#""subscription":"projects/my-proj/subscriptions/my-push-sub""#),
        "{line}"
    );
    // The older envelope has `message_id` alone; whitespace and member order are free.
    let older = br#" { "subscription" : "projects/p/subscriptions/s" ,
        "message" : { "message_id" : "42", "data" : "aGk=" } } "#;
    let res = post(p.addr(), &[], older).await;
    assert_eq!(res.status, 204, "{res:?}");
    p.wait_for(
        |l| l.contains(r#""message":"event""#) && l.contains(r#""id":"42""#),
        Duration::from_secs(5),
    )
    .expect("an event line for the older envelope");
}

/// Pub/Sub takes messages up to 10 MB, which its push envelope carries in base64 (4/3 of it):
/// `/events` takes those, through Eventarc (with `ce-*` headers) or a push subscription. An
/// 800 kB message (a 1,066,726-byte envelope) used to get `413`, and so was redelivered until
/// it expired.
#[tokio::test]
async fn events_as_large_as_pubsub_delivers_are_accepted() {
    let mut p = Process::start(&[]);
    // 800,000 bytes of data are 1,066,668 in base64.
    let small = envelope("800k", 1_066_668);
    assert!(small.len() > 1_066_726, "{}", small.len());
    let largest = envelope("10m", (10 * MIB).div_ceil(3) * 4);
    for (id, body) in [("800k", &small), ("10m", &largest)] {
        let res = post(p.addr(), &strs(&eventarc(id)), body).await;
        assert_eq!(res.status, 204, "Eventarc {id}: {res:?}");
        let res = post(p.addr(), &["content-type: application/json"], body).await;
        assert_eq!(res.status, 204, "push {id}: {res:?}");
        let lines = [
            format!(r#""bytes":{}"#, body.len()),
            format!(r#""id":"{id}""#),
        ];
        let logged = p.wait_for(
            |l| lines.iter().all(|f| l.contains(f.as_str())),
            Duration::from_secs(5),
        );
        assert!(logged.is_some(), "no event line for {id}");
    }
}

/// Eventarc and Pub/Sub retry every answer that is not 2xx until the message expires (up to 7
/// days): an event refused for good is an `ERROR`, with the id to find it by.
#[tokio::test]
async fn a_refused_event_is_logged_at_error_with_its_id() {
    let mut p = Process::start(&[]);
    let mut bad_version = eventarc("bad-version-1");
    bad_version.retain(|h| !h.starts_with("ce-specversion"));
    bad_version.push("ce-specversion: 0.3".to_owned());
    let res = post(p.addr(), &strs(&bad_version), b"{}").await;
    assert_eq!(res.status, 400);
    // Over the largest delivery: refused before a byte of it is read.
    let mut conn = Conn::connect(p.addr()).await.unwrap();
    let mut head = String::from("POST /events HTTP/1.1\r\nhost: t\r\n");
    for h in eventarc("too-large-1") {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", 64 * MIB));
    conn.send(head.as_bytes()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), conn.read_response()).await {
        Ok(Read::Complete(res)) => assert_eq!(res.status, 413),
        other => panic!("oversized event: {other:?}"),
    }
    // A push envelope that is not JSON, and one without a message id.
    let res = post(
        p.addr(),
        &["content-type: application/json"],
        b"{\"message\":",
    )
    .await;
    assert_eq!(res.status, 400);
    let no_id = br#"{"message":{"data":"aGk="},"subscription":"projects/p/subscriptions/s"}"#;
    let res = post(p.addr(), &[], no_id).await;
    assert_eq!(res.status, 400);

    for id in ["bad-version-1", "too-large-1"] {
        let line = p
            .wait_for(
                |l| l.contains(r#""message":"event refused""#) && l.contains(id),
                Duration::from_secs(5),
            )
            .unwrap_or_else(|| panic!("no refusal line for {id}: {:#?}", p.seen));
        assert!(line.contains(r#""severity":"ERROR""#), "{line}");
        assert!(line.contains(&format!(r#""id":"{id}""#)), "{line}");
    }
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let refusals = p
        .drain_lines()
        .iter()
        .filter(|l| l.contains(r#""message":"event refused""#) && l.contains("ERROR"))
        .count();
    assert_eq!(refusals, 4, "{:#?}", p.seen);
}
