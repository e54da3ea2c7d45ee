//! Shutdown signals.
//!
//! In a scratch image the service is PID 1, and the kernel applies no default action to a
//! signal PID 1 has not installed a handler for: an unhandled SIGTERM is ignored and the
//! container hangs until SIGKILL. So both handlers are installed at startup, before the port
//! opens, not lazily when the shutdown future is first polled.

use std::future::Future;
use std::io;

use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// Installs SIGTERM and SIGINT handlers now and returns a future that resolves on the first
/// of them. Must be called inside a tokio runtime.
///
/// - SIGTERM: sent by Cloud Run on scale-down and deploys, then SIGKILL 10 s later
///   (<https://cloud.google.com/run/docs/container-contract#lifecycle>); also `docker stop`.
/// - SIGINT: Ctrl-C in a terminal, and `docker run` without `-d` forwards it.
pub fn signals() -> io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutdown signal received");
    })
}
