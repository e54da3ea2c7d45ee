//! The listening socket's accept queue: a burst of new connections must all complete their
//! handshake while the server is not yet accepting (starting, or waiting for a CPU), instead of
//! losing SYNs and waiting a second or more for the retransmit.
// Linux only: this file reads /proc/sys/net/core/somaxconn and raises RLIMIT_NOFILE; a Darwin `nix build` runs the other test files.
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hyper_cloudrun::listener;
use tokio::net::TcpStream;

/// Cloud Run's largest per-instance concurrency: a burst that must fit.
const BURST: usize = 1000;

#[test]
fn a_burst_of_a_thousand_connections_completes_while_the_server_does_not_accept() {
    let limit = support::raise_fd_limit(BURST as u64 + 256);
    // The kernel caps the queue at net.core.somaxconn (4096 by default since Linux 5.4).
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let burst = BURST.min(somaxconn).min(
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(128),
    );
    if burst < BURST {
        eprintln!("RLIMIT_NOFILE {limit}, somaxconn {somaxconn}: a burst of {burst}");
    }

    let completed = support::runtime().block_on(async {
        let server = listener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = server.local_addr().unwrap();
        // Nothing accepts: every connection stays in the accept queue. With the 128 that
        // `TcpListener::bind` asks for, connection 130 and later never complete (their SYNs
        // are dropped and retried after 1, 3, 7 … s), so the generous deadline below only
        // bounds the test, it does not decide it.
        let clients: Vec<_> = (0..burst)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(20),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        let mut completed = Vec::with_capacity(burst);
        for client in clients {
            if let Ok(Ok(stream)) = client.await.expect("connect task") {
                completed.push(stream);
            }
        }
        drop(server);
        completed.len()
    });
    assert_eq!(
        completed, burst,
        "only {completed} of {burst} connections completed their handshake: the accept queue \
         is shorter than a burst"
    );
}
