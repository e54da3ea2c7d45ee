//! Settings nobody means are refused before the port opens, with one line and exit 64 (issue
//! 17, item 2): a duration past a day, which the server once added to a clock reading until it
//! overflowed and panicked every idle connection; a body budget past 1 TiB, which switched the
//! budget off. The largest values taken serve normally.

mod support;

use std::time::Duration;

use support::run_to_exit;

#[test]
fn durations_past_a_day_and_budgets_past_a_tebibyte_are_refused_with_exit_64() {
    for (var, value) in [
        // From about 9.2e18 s, `now + timeout` overflowed: idle connections panicked.
        ("KEEPALIVE_TIMEOUT", "9300000000000000000"),
        ("HEADER_READ_TIMEOUT", "18446744073709551615"),
        ("KEEPALIVE_TIMEOUT", "86401s"),
        ("HEADER_READ_TIMEOUT", "86400001ms"),
        ("BODY_READ_TIMEOUT", "86401"),
        ("SEND_TIMEOUT", "99999999999999999999999"),
        ("SHUTDOWN_GRACE", "18446744073709551615ms"),
        // usize::MAX bytes: every reservation fitted, so there was no budget at all.
        ("BODY_BUDGET", "18446744073709551615"),
        ("BODY_BUDGET", "1025GiB"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "18446744073709551616"),
    ] {
        // With PORT=0 a server that got as far as binding would run until killed.
        let (code, stdout, stderr) = run_to_exit(&[("PORT", "0"), (var, value)]);
        assert_eq!(code, Some(64), "{var}={value}: {stdout} {stderr}");
        assert_eq!(stdout, "", "{var}={value}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("hyper-cloudrun: invalid {var}={value:?}: ")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The longest timeouts taken, with a connection idle and another in the middle of a head:
/// served, and shut down cleanly, with nothing panicking in between.
#[cfg(target_os = "linux")] // sends signals with kill(1)
#[tokio::test]
async fn the_largest_settings_taken_serve_and_drain() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut p = support::Process::start(&[
        ("KEEPALIVE_TIMEOUT", "86400s"),
        ("HEADER_READ_TIMEOUT", "86400000ms"),
        ("BODY_READ_TIMEOUT", "86400"),
        ("SEND_TIMEOUT", "86400s"),
        ("BODY_BUDGET", "1024GiB"),
        ("MAX_CONNECTIONS", "1048576"),
    ]);
    let idle = support::get(p.addr(), "/").await;
    assert_eq!(idle.status, 200);
    let mut partial = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    partial.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(support::get(p.addr(), "/health").await.status, 200);
    partial
        .write_all(b"st: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), partial.read_to_end(&mut reply))
        .await
        .expect("the finished head is answered")
        .unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let lines = p.drain_lines().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}
