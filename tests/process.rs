//! The compiled binary as a user runs it: configuration errors, the startup line, logs, and
//! signals.

mod support;

use std::time::Duration;

use support::{Process, run_to_exit};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Sends one raw HTTP/1.1 request with `Connection: close` and returns the whole reply.
async fn raw(addr: std::net::SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("reply within 5 s")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn bad_port_prints_one_line_naming_it_and_exits_64() {
    for bad in ["eighty", "65536", "-1", "80 80"] {
        let (code, stdout, stderr) = run_to_exit(&[("PORT", bad)]);
        assert_eq!(code, Some(64), "PORT={bad}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("PORT") && stderr.contains(bad), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn every_bad_setting_is_refused_before_the_port_opens() {
    for (var, value) in [
        ("LOG_FORMAT", "yaml"),
        ("RUST_LOG", "info,x=loud"),
        // Bare words that are not levels, which tracing-subscriber would take for targets and
        // so log nothing at all.
        ("RUST_LOG", "degub"),
        ("RUST_LOG", "verbose"),
        ("SHUTDOWN_GRACE", "forever"),
        ("SHUTDOWN_GRACE", "30s"),
        // Cloud Run's SIGKILL comes 10 s after SIGTERM: the cut must come before it.
        ("SHUTDOWN_GRACE", "10s"),
        ("HEADER_READ_TIMEOUT", "0"),
        ("GOOGLE_CLOUD_PROJECT", "not a project"),
    ] {
        // With PORT=0 a server that got as far as binding would run until killed.
        let (code, _, stderr) = run_to_exit(&[("PORT", "0"), (var, value)]);
        assert_eq!(code, Some(64), "{var}={value}: {stderr}");
        assert!(stderr.contains(var) && stderr.contains(value), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[test]
fn log_levels_are_taken_in_any_case_and_as_cloud_loggings_warning() {
    for level in ["INFO", "Info", "info ", " info,h2=WARNING"] {
        let mut p = Process::start(&[("RUST_LOG", level)]);
        p.signal("TERM");
        assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
    }
    // At `warning` the listening line is filtered out; a failed bind shows the level works.
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    for level in ["warning", "WARNING"] {
        let (code, stdout, stderr) = run_to_exit(&[("PORT", &port), ("RUST_LOG", level)]);
        assert_eq!(code, Some(71), "RUST_LOG={level}: {stdout} {stderr}");
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.contains(r#""severity":"ERROR""#), "{stdout}");
        assert!(stdout.contains("cannot bind"), "{stdout}");
        assert_eq!(stderr, "");
    }
}

#[test]
fn a_failed_start_is_printed_once_even_with_logging_off() {
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    for filter in ["off", "info,hyper_cloudrun=off"] {
        let (code, stdout, stderr) = run_to_exit(&[("PORT", &port), ("RUST_LOG", filter)]);
        assert_eq!(code, Some(71), "RUST_LOG={filter}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("hyper-cloudrun: cannot bind 0.0.0.0:{port}: ")),
            "{stderr}"
        );
    }
    // With logging on it is one JSON line (after the start-up facts), not also a second copy
    // on stderr.
    let (code, stdout, stderr) = run_to_exit(&[("PORT", &port)]);
    assert_eq!(code, Some(71));
    assert_eq!(stderr, "");
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains(r#""severity":"INFO""#))
        .collect();
    assert_eq!(errors.len(), 1, "{stdout}");
    assert!(
        errors[0].contains(r#""message":"cannot bind""#)
            && errors[0].contains(&format!(r#""addr":"0.0.0.0:{port}""#)),
        "{stdout}"
    );
}

#[test]
fn startup_line_is_json_with_the_bound_address_on_all_interfaces() {
    let mut p = Process::start(&[]);
    let line = p
        .wait_for(|l| l.contains("listening"), Duration::from_secs(1))
        .unwrap();
    assert!(line.starts_with(r#"{"severity":"INFO","time":""#), "{line}");
    assert!(line.contains(r#""message":"listening""#), "{line}");
    assert!(
        line.contains(&format!(r#""addr":"0.0.0.0:{}""#, p.port)),
        "must bind 0.0.0.0, not loopback: {line}"
    );
    assert!(line.ends_with('}'));
}

#[test]
fn text_format_is_for_people() {
    let mut p = Process::start(&[("LOG_FORMAT", "text")]);
    let line = p
        .wait_for(|l| l.contains("listening"), Duration::from_secs(1))
        .unwrap();
    assert!(!line.starts_with('{'), "{line}");
    assert!(line.contains(" INFO listening addr=0.0.0.0:"), "{line}");
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[tokio::test]
async fn sigterm_mid_request_completes_the_response_and_exits_0() {
    let mut p = Process::start(&[]);
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.signal("TERM");
    p.wait_for(|l| l.contains("draining"), Duration::from_secs(5))
        .expect("a draining line");
    s.write_all(b"world").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nhelloworld"), "{reply}");
    let status = p.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let lines = p.drain_lines().join("\n");
    assert!(lines.contains(r#""signal":"SIGTERM""#), "{lines}");
    assert!(
        lines.contains(r#""message":"drained","connections":1"#),
        "{lines}"
    );
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[tokio::test]
async fn a_second_signal_during_the_drain_ends_it_at_once_with_75() {
    for (first, second) in [("TERM", "TERM"), ("INT", "INT"), ("TERM", "INT")] {
        // The longest grace there is, so only the second signal can end the drain early.
        let mut p = Process::start(&[("SHUTDOWN_GRACE", "9s")]);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(
            b"POST /echo HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 10\r\n\r\n",
        )
        .await
        .unwrap();
        // `100 Continue` comes once the handler reads the body: the request is in flight.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("100 Continue within 10 s")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 100 Continue"), "{buf:?}");
        s.write_all(b"hello").await.unwrap();

        p.signal(first);
        p.wait_for(
            |l| l.contains(r#""message":"draining""#),
            Duration::from_secs(10),
        )
        .expect("a draining line");
        p.signal(second);
        let status = p.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(75), "{first} then {second}");
        let lines = p.drain_lines().to_vec();
        let after: Vec<&String> = lines
            .iter()
            .skip_while(|l| !l.contains(r#""message":"draining""#))
            .skip(1)
            .collect();
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].contains(r#""severity":"WARNING""#), "{after:?}");
        assert!(after[0].contains("second signal"), "{after:?}");
        assert!(
            after[0].contains(&format!(r#""signal":"SIG{second}""#)),
            "{after:?}"
        );
        // The request in flight was cut, not answered.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[test]
fn sigint_stops_an_idle_server_with_exit_0() {
    let mut p = Process::start(&[]);
    p.signal("INT");
    assert_eq!(p.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(p.drain_lines().join("\n").contains(r#""signal":"SIGINT""#));
}

#[tokio::test]
async fn request_lines_carry_the_cloud_trace_when_a_project_is_set() {
    let mut p = Process::start(&[("GOOGLE_CLOUD_PROJECT", "my-proj"), ("RUST_LOG", "debug")]);
    let reply = raw(
        p.addr(),
        &format!(
            "GET /health HTTP/1.1\r\nhost: t\r\nconnection: close\r\ntraceparent: 00-{TRACE}-00f067aa0ba902b7-01\r\n\r\n"
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"));
    let line = p
        .wait_for(
            |l| l.contains(r#""message":"request""#),
            Duration::from_secs(5),
        )
        .expect("a debug access line");
    assert!(line.contains(r#""severity":"DEBUG""#), "{line}");
    assert!(line.contains(r#""path":"/health","status":200"#), "{line}");
    assert!(
        line.contains(&format!(
            r#""logging.googleapis.com/trace":"projects/my-proj/traces/{TRACE}""#
        )),
        "{line}"
    );
    assert!(
        line.contains(r#""logging.googleapis.com/spanId":"00f067aa0ba902b7""#),
        "{line}"
    );
    assert!(
        line.contains(r#""logging.googleapis.com/trace_sampled":true"#),
        "{line}"
    );

    // The legacy header's span id is decimal and comes out as 16 hex digits.
    raw(
        p.addr(),
        &format!(
            "GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\nx-cloud-trace-context: {TRACE}/67667974448284343;o=0\r\n\r\n"
        ),
    )
    .await;
    let line = p
        .wait_for(
            |l| l.contains(r#""path":"/","status":200"#),
            Duration::from_secs(5),
        )
        .expect("a second access line");
    assert!(
        line.contains(r#""logging.googleapis.com/spanId":"00f067aa0ba902b7""#),
        "{line}"
    );
    assert!(
        line.contains(r#""logging.googleapis.com/trace_sampled":false"#),
        "{line}"
    );
}

/// README's advice: `info,hyper_cloudrun=debug` gives the access line alone, where plain
/// `debug` also turns on h2's frame logs.
// Multi-thread: the client connection must answer the server's GOAWAY while this thread blocks
// waiting for the exit.
#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_documented_access_log_filter_adds_the_access_line_and_no_h2_frames() {
    for (filter, h2_frames) in [("info,hyper_cloudrun=debug", false), ("debug", true)] {
        let mut p = Process::start(&[("RUST_LOG", filter)]);
        let mut c = support::h2c(p.addr()).await;
        let reply = support::send2(&mut c, support::request("GET", "/", "")).await;
        assert_eq!(reply.status, 200);
        p.wait_for(
            |l| l.contains(r#""message":"request""#) && l.contains(r#""path":"/""#),
            Duration::from_secs(10),
        )
        .expect("an access line");
        drop(c);
        p.signal("TERM");
        assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
        let lines = p.drain_lines();
        let frames = lines
            .iter()
            .filter(|l| l.contains(r#""target":"h2::"#))
            .count();
        assert_eq!(frames > 0, h2_frames, "RUST_LOG={filter}: {lines:#?}");
    }
}

#[cfg(target_os = "linux")] // sends signals with kill(1), or reads /proc
#[tokio::test]
async fn requests_are_not_logged_at_the_default_level() {
    let mut p = Process::start(&[("GOOGLE_CLOUD_PROJECT", "my-proj")]);
    let reply = raw(
        p.addr(),
        &format!(
            "GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\ntraceparent: 00-{TRACE}-00f067aa0ba902b7-01\r\n\r\n"
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"));
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(5));
    let lines = p.drain_lines();
    assert!(
        !lines.iter().any(|l| l.contains("\"request\"")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{lines:?}"
    );
}

#[tokio::test]
async fn the_header_read_timeout_is_configurable() {
    let p = Process::start(&[("HEADER_READ_TIMEOUT", "200ms")]);
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    // Closed (EOF, reset, or a 408 followed by close) well before the 10 s default.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 3 s");
    assert!(started.elapsed() < Duration::from_secs(2));
}
