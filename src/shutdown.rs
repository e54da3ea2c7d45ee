//! Shutdown signals.
//!
//! In a scratch image the service is PID 1, and the kernel applies no default action to a
//! signal PID 1 has not installed a handler for: an unhandled SIGTERM is ignored and the
//! container hangs until SIGKILL. So both handlers are installed at startup, before the port
//! opens, not lazily when the shutdown future is first polled.

use std::future::{Future, pending};
use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;
use tracing::info;

/// Installs SIGTERM and SIGINT handlers now and returns two futures: the first resolves on the
/// first of those signals (logged), and is the one `serve` drains on; the second resolves on
/// the signal after it, with its name, so that `main` can stop waiting for the drain — what
/// people expect of a second Ctrl-C. Must be called inside a tokio runtime (a task receives the
/// signals, so neither future needs the other to be polled).
///
/// - SIGTERM: sent by Cloud Run on scale-down and deploys, then SIGKILL 10 s later
///   (<https://cloud.google.com/run/docs/container-contract#lifecycle>); also `docker stop`.
/// - SIGINT: Ctrl-C in a terminal, and `docker run` without `-d` forwards it.
pub fn signals() -> io::Result<(impl Future<Output = ()>, impl Future<Output = &'static str>)> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (first_tx, first_rx) = oneshot::channel();
    let (second_tx, second_rx) = oneshot::channel();
    tokio::spawn(async move {
        let name = next(&mut term, &mut int).await;
        info!(signal = name, "shutdown signal received");
        let _ = first_tx.send(());
        let _ = second_tx.send(next(&mut term, &mut int).await);
    });
    // The task ends only with the runtime; if it is gone, no signal can come any more.
    let first = async move {
        if first_rx.await.is_err() {
            pending::<()>().await;
        }
    };
    let second = async move {
        match second_rx.await {
            Ok(name) => name,
            Err(_) => pending().await,
        }
    };
    Ok((first, second))
}

async fn next(term: &mut Signal, int: &mut Signal) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
