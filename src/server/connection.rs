//! One connection, from its first byte to its close: the protocol it speaks, its clock (the
//! header and keep-alive timeouts), hyper serving it with [`respond`] for each request, and its
//! graceful close at shutdown or after idling.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::clock::{Clock, Deadline, Expired, InFlight};
use super::drain::Watch;
use super::protocol::{self, Answered, Protocol, Protocols};
use super::socket::Socket;
use crate::http::response::ResponseBody;
use crate::respond::{Respond, respond};
use crate::routes::State;

/// What every connection is served with.
#[derive(Debug)]
pub struct Shared {
    pub protocols: Protocols,
    pub state: State,
    /// `GOOGLE_CLOUD_PROJECT`, for the requests' trace spans.
    pub project: Option<String>,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub send_timeout: Duration,
}

/// Serves one accepted connection until it closes. `stopping` resolves at shutdown, or when the
/// server needs room and this connection has been idle longest (see `super::drain`); `clock`
/// is the one `stopping` was registered with.
///
/// Generic over the stream (only ever a `TcpStream`), as [`Socket`] is: instantiated from the
/// generic [`super::serve`], hyper's code for the connection is compiled with the binary, where
/// each of its functions has this one caller and is inlined into it; compiled with the library
/// it was not, and every request paid for the calls (bench/README.md).
pub async fn serve<T>(
    mut stream: T,
    peer: SocketAddr,
    shared: Arc<Shared>,
    clock: Arc<Clock>,
    mut stopping: Watch,
) where
    T: AsFd + AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    clock.waiting_for_first_byte();
    // The header timeout (`Deadline` below) starts once the protocol is known, and `sniff`
    // waits for up to the 24-byte h2 preface: a client that sends nothing, or trickles the
    // preface, would otherwise hold the socket forever. Such a connection has no request to
    // drain, so shutdown closes it at once.
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(shared.header_read_timeout, protocol::sniff(&mut stream)) => {
            sniffed.ok().and_then(Result::ok).flatten()
        }
        () = &mut stopping => None,
    };
    let Some((protocol, sniffed)) = sniffed else {
        debug!(%peer, "connection closed before it chose a protocol");
        return;
    };
    // The header and keep-alive timeouts, one timer per connection (see `clock`). Only HTTP/1
    // requests tell the clock when they are served.
    match protocol {
        Protocol::Http1 => clock.http1(),
        Protocol::H2c => clock.h2c(),
    }
    let deadline = Deadline::new(
        Arc::clone(&clock),
        shared.header_read_timeout,
        shared.keepalive_timeout,
        shared.send_timeout,
    );
    let io = Socket::new(stream, Arc::clone(&clock), sniffed);
    let served = match protocol {
        Protocol::Http1 => {
            let service = http1_service(Arc::clone(&shared), Arc::clone(&clock));
            let conn = shared.protocols.http1.serve_connection(io, service);
            until_closed(conn, deadline, stopping, &clock, peer).await
        }
        Protocol::H2c => {
            let service = h2c_service(Arc::clone(&shared), Arc::clone(&clock));
            let conn = shared.protocols.h2c.serve_connection(io, service);
            until_closed(conn, deadline, stopping, &clock, peer).await
        }
    };
    match served {
        Some(Ok(())) => {}
        Some(Err(error)) => debug!(%peer, %error, "connection ended with an error"),
        None => debug!(%peer, "timed out waiting for a request head or a close"),
    }
}

/// hyper's service for one HTTP/1 connection: [`respond`] to each request. The connection's
/// clock is told when each request is being served and when its answer is done.
fn http1_service(
    shared: Arc<Shared>,
    clock: Arc<Clock>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future = Respond,
> {
    service_fn(move |req| {
        timed(
            respond(req, &shared.state, shared.project.as_deref()),
            &clock,
        )
    })
}

/// hyper's service for one h2c connection: [`respond`] to each request, telling the stream's
/// send deadline when its answer is ready (`protocol::StreamExecutor`), and the connection's
/// clock that a request is in flight until then.
fn h2c_service(
    shared: Arc<Shared>,
    clock: Arc<Clock>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future = Answered<Respond>,
> {
    service_fn(move |req| {
        let in_flight = InFlight::new(&clock);
        Answered {
            respond: respond(req, &shared.state, shared.project.as_deref()),
            _in_flight: in_flight,
        }
    })
}

/// Tells the clock that a request is served until `respond` is ready. An answer that waits
/// pauses the header and keep-alive timeouts until it is done.
fn timed(respond: Respond, clock: &Arc<Clock>) -> Respond {
    let Respond::Later(answer) = respond else {
        clock.done();
        return respond;
    };
    clock.busy();
    let clock = Arc::clone(clock);
    Respond::Later(Box::pin(async move {
        let answer = answer.await;
        clock.done();
        answer
    }))
}

/// Polls the connection until hyper is done with it (`Some`), or its deadline gives up on it
/// (`None`). At shutdown, and once it has idled for the keep-alive timeout, it is closed
/// gracefully: hyper finishes the request in flight, then closes (HTTP/1), or sends GOAWAY and
/// finishes the open streams (HTTP/2).
async fn until_closed<C: GracefulConnection>(
    conn: C,
    deadline: Deadline,
    mut stopping: Watch,
    clock: &Clock,
    peer: SocketAddr,
) -> Option<Result<(), C::Error>> {
    let mut conn = pin!(conn);
    let mut deadline = pin!(deadline);
    let mut told = false;
    poll_fn(|cx| {
        if !told && Pin::new(&mut stopping).poll(cx).is_ready() {
            told = true;
            conn.as_mut().graceful_shutdown();
        }
        loop {
            if let Poll::Ready(served) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(served));
            }
            match deadline.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Expired::Head) => {
                    clock.give_up();
                    return Poll::Ready(None);
                }
                Poll::Ready(Expired::Send) => return unread(clock, peer),
                // Idle for the keep-alive timeout: closed the way shutdown closes it, then
                // polled again so that hyper acts on it.
                Poll::Ready(Expired::Idle) => {
                    debug!(%peer, "idle for the keep-alive timeout, closing");
                    if !told {
                        told = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    deadline.as_mut().closing();
                }
            }
        }
    })
    .await
}

/// The client has not read what it was sent for the send timeout: the connection is dropped,
/// with no lingering close (the client is not reading).
#[cold]
#[inline(never)]
fn unread<T>(clock: &Clock, peer: SocketAddr) -> Poll<Option<T>> {
    debug!(%peer, "answers unread for the send timeout, closing");
    clock.give_up();
    Poll::Ready(None)
}
