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
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

pub use drain::Drain;
pub use protocol::MAX_HEAD_BYTES;

use crate::config::ServerConfig;
use crate::routes::State;
use clock::Clock;
use connection::Shared;
use drain::Connections;
use protocol::Protocols;

/// The first pause after a failed `accept`, doubled after each failure in a row up to
/// [`ACCEPT_ERROR_MAX_PAUSE`], as Go's `net/http` `Server.Serve` does (5 ms to 1 s).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(5);
const ACCEPT_ERROR_MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per this long about failed accepts, with a count.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(1);
/// Out of file descriptors, for the process and system-wide (the same numbers on Linux and
/// Darwin).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// TCP keepalive on every accepted connection: the first probe after 15 s without traffic, then
/// every 15 s, 9 probes, as Go's `net` package does for every connection (`src/net/dial.go`,
/// `defaultTCPKeepAlive*`). A peer that vanished without a FIN or a reset is found in minutes
/// instead of holding its connection, and what it reserved, until a restart.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_PROBES: u32 = 9;

/// Serves HTTP/1.1 and h2c on `listener` with the route table and `state` until `shutdown`
/// resolves, then stops accepting, lets in-flight requests finish within
/// `config.shutdown_grace`, and closes idle keep-alive connections. Returns how the drain
/// ended; the caller picks the exit status.
///
/// At most `config.max_connections` connections are served at once: past it the connection
/// idle longest is closed to make room, and with none idle, new connections wait in the accept
/// queue until one closes.
pub async fn serve<F>(
    listener: TcpListener,
    config: &ServerConfig,
    state: State,
    shutdown: F,
) -> Drain
where
    F: Future<Output = ()>,
{
    set_socket_options(&listener, config.send_timeout);
    let shared = Arc::new(Shared {
        protocols: Protocols::new(config.send_timeout),
        state,
        project: config.project_id.clone(),
        header_read_timeout: config.header_read_timeout,
        keepalive_timeout: config.keepalive_timeout,
        send_timeout: config.send_timeout,
    });
    let cap = config.max_connections.unwrap_or(usize::MAX);
    let connections = Connections::new();
    let mut shutdown = pin!(shutdown);
    let mut errors = AcceptErrors::default();
    while let Some((stream, peer)) =
        accept(&listener, shutdown.as_mut(), &mut errors, &connections).await
    {
        let stopped = !room(cap, &connections, shutdown.as_mut()).await;
        spawn(stream, peer, &shared, &connections);
        if stopped {
            break;
        }
    }
    // Connections that finished their handshake before the signal are the server's too:
    // accepted, so that they are counted and closed cleanly, not reset with the listening
    // socket. Straight from the socket, until it has none: tokio's readiness may not know of
    // the last ones yet.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            if let Some(stream) = stream
                .set_nonblocking(true)
                .ok()
                .and_then(|()| TcpStream::from_std(stream).ok())
            {
                spawn(stream, peer, &shared, &connections);
            }
        }
        // Stop accepting first: new connections are refused while in-flight ones finish.
        drop(listener);
    }
    drain::drain(&connections, config.shutdown_grace).await
}

/// Serves `stream` in a task of its own.
///
/// Generic over the stream (only ever a `TcpStream`), as `connection::serve` is: instantiated
/// from the generic [`serve`], hyper's code for the connection is compiled with the binary and
/// inlined there (see `connection::serve`).
fn spawn<T>(stream: T, peer: SocketAddr, shared: &Arc<Shared>, connections: &Connections)
where
    T: AsFd + AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let clock = Clock::opening();
    let stopping = connections.watch(Arc::clone(&clock));
    let shared = Arc::clone(shared);
    tokio::spawn(connection::serve(stream, peer, shared, clock, stopping));
}

/// Makes room for one more connection under `cap`: closes the connection idle longest, or with
/// none idle waits until one closes. `false` if `shutdown` came first.
async fn room<F>(cap: usize, connections: &Connections, mut shutdown: Pin<&mut F>) -> bool
where
    F: Future<Output = ()>,
{
    while connections.staying() >= cap && connections.close_idle(1) == 0 {
        tokio::select! {
            biased;
            () = &mut shutdown => return false,
            () = connections.one_closed() => {}
        }
    }
    true
}

/// The next connection, or `None` once `shutdown` resolves. A failed accept is not fatal: it is
/// logged (at most once a second, with a count), and tried again after a pause.
async fn accept<F>(
    listener: &TcpListener,
    mut shutdown: Pin<&mut F>,
    errors: &mut AcceptErrors,
    connections: &Connections,
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
                errors.in_a_row = 0;
                let _ = stream.set_nodelay(true);
                return Some((stream, peer));
            }
            Err(error) => {
                let pause = errors.failed(&error, connections);
                tokio::select! {
                    biased;
                    () = &mut shutdown => return None,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Failed accepts: the pause after each, and what the next log line says.
#[derive(Debug, Default)]
struct AcceptErrors {
    /// Failures in a row: the pause doubles with each.
    in_a_row: u32,
    /// Failures, and idle connections closed, since the last log line.
    unlogged: u64,
    closed: usize,
    last_logged: Option<Instant>,
}

impl AcceptErrors {
    /// Counts the failure (logged now if the last line is a second old) and returns how long
    /// to pause. Out of file descriptors, the connections idle longest are closed to make room,
    /// as nginx reuses its idle keep-alive connections; when some were, the accept is tried
    /// again as soon as they are gone.
    fn failed(&mut self, error: &io::Error, connections: &Connections) -> Duration {
        self.unlogged += 1;
        let closed = if matches!(error.raw_os_error(), Some(EMFILE | ENFILE)) {
            connections.close_idle(batch(connections.open()))
        } else {
            0
        };
        self.closed += closed;
        if self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY)
        {
            warn!(
                %error,
                failures = self.unlogged,
                closed_idle = self.closed,
                "accept failed"
            );
            (self.unlogged, self.closed) = (0, 0);
            self.last_logged = Some(Instant::now());
        }
        if closed > 0 {
            // Long enough for the closed connections' tasks to run and free their descriptors.
            return Duration::from_millis(1);
        }
        let pause = ACCEPT_ERROR_PAUSE
            .saturating_mul(1 << self.in_a_row.min(8))
            .min(ACCEPT_ERROR_MAX_PAUSE);
        self.in_a_row += 1;
        pause
    }
}

/// How many idle connections to close when out of descriptors: an eighth of the open ones, at
/// least 1 and at most 32, as nginx's `ngx_drain_connections` takes an eighth of its idle ones
/// (`src/core/ngx_connection.c`).
fn batch(open: usize) -> usize {
    (open / 8).clamp(1, 32)
}

/// TCP keepalive and the connections' send timeout, set once on the listening socket: Linux
/// copies them to every socket `accept(2)` returns (`tcp(7)`: `TCP_USER_TIMEOUT` "will be
/// inherited by the socket returned by accept(2), if it was set on the listening socket";
/// keepalive likewise). [`serve`] sets them; a caller that announces the port before calling it
/// sets them first, or the connections made in between lack them.
///
/// `TCP_USER_TIMEOUT` is the kernel's send timeout, "the maximum amount of time that transmitted
/// data may remain unacknowledged, or buffered data may remain untransmitted (due to zero window
/// size) before TCP will forcibly close the corresponding connection" (`tcp(7)`): with it a peer
/// that vanished with data in flight, which keepalive does not probe, is found too.
pub fn set_socket_options(listener: &TcpListener, send_timeout: Duration) {
    let socket = socket2::SockRef::from(listener);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        warn!(%error, "cannot set TCP keepalive on the listening socket");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = socket.set_tcp_user_timeout(Some(send_timeout)) {
        warn!(%error, "cannot set TCP_USER_TIMEOUT on the listening socket");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = send_timeout;
}
