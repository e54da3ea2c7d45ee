//! The HTTP transport: HTTP/1.1 and h2c on a TCP listener, one task per connection, and the
//! bounded drain at shutdown.
//!
//! [`serve`] takes a bound listener and a shutdown future and binds nothing itself, so tests
//! drive it on `127.0.0.1:0` with a oneshot and production with the signal future.
//!
//! - `connection`: one connection's life: protocol, timeouts, hyper serving it.
//! - `protocol`: HTTP/1.1 or h2c, told once from the first bytes; hyper's settings for each.
//! - `clock`: the header read and keep-alive timeouts, one timer per connection.
//! - `socket`: the connection's socket, and its lingering close.
//! - `drain`: each connection's view of the shutdown, and the wait for them to close.

mod clock;
mod connection;
mod drain;
mod protocol;
mod socket;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

pub use drain::Drain;
pub use protocol::MAX_HEAD_BYTES;

use crate::config::ServerConfig;
use crate::routes::State;
use connection::Shared;
use drain::Connections;
use protocol::Protocols;

/// How long to pause after a failed `accept` (e.g. EMFILE) before trying again: long enough not
/// to spin, short enough not to be noticed.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves HTTP/1.1 and h2c on `listener` with the route table and `state` until `shutdown`
/// resolves, then stops accepting, lets in-flight requests finish within
/// `config.shutdown_grace`, and closes idle keep-alive connections. Returns how the drain
/// ended; the caller picks the exit status.
pub async fn serve<F>(
    listener: TcpListener,
    config: &ServerConfig,
    state: State,
    shutdown: F,
) -> Drain
where
    F: Future<Output = ()>,
{
    let shared = Arc::new(Shared {
        protocols: Protocols::new(),
        state,
        project: config.project_id.clone(),
        header_read_timeout: config.header_read_timeout,
        keepalive_timeout: config.keepalive_timeout,
    });
    let connections = Connections::new();
    let mut shutdown = pin!(shutdown);
    while let Some((stream, peer)) = accept(&listener, shutdown.as_mut()).await {
        let shared = Arc::clone(&shared);
        tokio::spawn(connection::serve(stream, peer, shared, connections.watch()));
    }
    // Stop accepting first: new connections are refused while in-flight ones finish.
    drop(listener);
    drain::drain(&connections, config.shutdown_grace).await
}

/// The next connection, or `None` once `shutdown` resolves.
async fn accept<F>(
    listener: &TcpListener,
    mut shutdown: Pin<&mut F>,
) -> Option<(TcpStream, SocketAddr)>
where
    F: Future<Output = ()>,
{
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer));
            }
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: not fatal.
                warn!(%error, "accept failed");
                tokio::select! {
                    () = &mut shutdown => return None,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
}
