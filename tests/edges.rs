//! Smaller promises (issue 17, item 7): a `Host` that is not one host is refused; the
//! `draining` line counts every connection the server was given, accepted or still queued; the
//! start-up facts come before `listening`; `RUST_LOG` targets match whole crate names; `HOST`
//! binds another address for local development.

mod support;
mod wire;

use std::time::Duration;

use support::Process;
use wire::{Conn, Read};

/// One raw request on a fresh connection, and its answer.
async fn answer(addr: std::net::SocketAddr, request: &str) -> wire::RawResponse {
    let mut conn = Conn::connect(addr).await.expect("connect");
    conn.send(request.as_bytes()).await.expect("send");
    match tokio::time::timeout(Duration::from_secs(10), conn.read_response()).await {
        Ok(Read::Complete(res)) => res,
        other => panic!("{request:?}: {other:?}"),
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line or a Host header field with an invalid field value."
/// The value is `uri-host [ ":" port ]` (RFC 3986 §3.2.2): a list of hosts is not one.
#[tokio::test]
async fn a_host_header_that_is_not_one_host_is_refused_with_400() {
    let p = Process::start(&[]);
    for host in [
        "a, b",
        "a,b",
        "example.com, evil.example",
        "exa mple.com",
        "user@example.com",
        "example.com/path",
        "example.com:80x",
        "[::1",
        "exa\"mple",
    ] {
        let res = answer(p.addr(), &format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n")).await;
        assert_eq!(res.status, 400, "Host: {host}");
        assert!(res.closes(), "Host: {host}: {res:?}");
    }
    for host in [
        "example.com",
        "example.com:8080",
        "127.0.0.1:80",
        "[::1]:8080",
        "[2001:db8::1]",
        "my-service-abc123-uc.a.run.app",
        "xn--bcher-kva.example",
        "a:",
        "%41.example",
        "",
    ] {
        let res = answer(p.addr(), &format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n")).await;
        assert_eq!(res.status, 200, "Host: {host}");
    }
}

/// Connections that finished their handshake before the signal but were not accepted yet are
/// the server's too: counted in `draining`, and closed cleanly rather than reset with the
/// listening socket. (Before, 100 idle connections and an immediate SIGTERM logged 93 to 99.)
#[cfg(target_os = "linux")] // sends signals with kill(1)
#[test]
fn the_draining_line_counts_every_connection_the_kernel_accepted() {
    const CONNECTIONS: usize = 100;
    let mut p = Process::start(&[]);
    let conns: Vec<std::net::TcpStream> = (0..CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(p.addr()).expect("connect"))
        .collect();
    p.signal("TERM");
    let draining = p
        .wait_for(
            |l| l.contains(r#""message":"draining""#),
            Duration::from_secs(10),
        )
        .expect("a draining line");
    assert!(
        draining.contains(&format!(r#""connections":{CONNECTIONS},"#)),
        "{draining}"
    );
    assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
    for mut c in conns {
        use std::io::Read as _;
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        // Closed with a FIN (a read of 0), not reset.
        assert_eq!(c.read(&mut buf).expect("a clean close"), 0);
    }
}

/// Every start-up fact (the body budget with its source, the descriptor limit) is logged before
/// `listening`, which says the service is ready.
#[test]
fn start_up_facts_come_before_the_listening_line() {
    let p = Process::start(&[]);
    let listening = p
        .seen
        .iter()
        .position(|l| l.contains(r#""message":"listening""#))
        .expect("a listening line");
    for fact in ["request body budget", "open file limit"] {
        let at = p
            .seen
            .iter()
            .position(|l| l.contains(&format!(r#""message":"{fact}""#)));
        assert!(
            at.is_some_and(|at| at < listening),
            "{fact:?} not before listening: {:#?}",
            p.seen
        );
    }
}

/// tracing-subscriber's `Targets` matches a directive as a string prefix, so `hyper=debug`
/// also turned on `hyper_cloudrun`'s debug access line. A target names whole crates and
/// modules here: `hyper` is not `hyper_cloudrun`, and `hyper_cloudrun::respond` (which writes
/// the access line) is in `hyper_cloudrun`.
#[cfg(target_os = "linux")] // sends signals with kill(1)
#[tokio::test]
async fn a_log_target_names_whole_crates_and_modules_not_prefixes() {
    for (filter, access_line) in [
        ("info,hyper=debug", false),
        ("info,hyper_cloud=debug", false),
        ("info,hyper_cloudrun=debug", true),
        ("info,hyper_cloudrun::respond=debug", true),
    ] {
        let mut p = Process::start(&[("RUST_LOG", filter)]);
        let res = answer(
            p.addr(),
            "GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(res.status, 200);
        p.signal("TERM");
        assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
        let lines = p.drain_lines();
        assert_eq!(
            lines.iter().any(|l| l.contains(r#""message":"request""#)),
            access_line,
            "RUST_LOG={filter}: {lines:#?}"
        );
    }
}

/// `HOST=127.0.0.1` keeps the port off the network on a laptop; the default stays `0.0.0.0`,
/// which Cloud Run needs.
#[tokio::test]
async fn host_binds_the_address_it_names() {
    let p = Process::start(&[("HOST", "127.0.0.1")]);
    let listening = p
        .seen
        .iter()
        .find(|l| l.contains(r#""message":"listening""#))
        .unwrap();
    assert!(
        listening.contains(&format!(r#""addr":"127.0.0.1:{}""#, p.port)),
        "{listening}"
    );
    let res = answer(p.addr(), "GET / HTTP/1.1\r\nhost: t\r\n\r\n").await;
    assert_eq!(res.status, 200);
    let (code, _, stderr) = support::run_to_exit(&[("PORT", "0"), ("HOST", "localhost")]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.starts_with("hyper-cloudrun: invalid HOST=\"localhost\": "),
        "{stderr}"
    );
}
