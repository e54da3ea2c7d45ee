//! The accept loop, per-connection HTTP/1.1 + h2c, and the bounded drain.
//!
//! `serve` takes a bound listener and a shutdown future and binds nothing itself, so tests drive
//! it on `127.0.0.1:0` with a oneshot and production with the signal future.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::header::HeaderName;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument as _, Level, debug, info, warn};

use crate::budget::{self, Budget};
use crate::config::ServerConfig;
use crate::graceful::Graceful;
use crate::header_timeout::{Expired, HeadClock, HeadDeadline, HeadIo};
use crate::routes::{self, Handler, ResponseBody, State};
use crate::trace::TraceContext;

/// Upper bound on a request head (request line + headers), HTTP/1 and HTTP/2 alike. Proxies
/// use the same order of magnitude (Envoy 60 KiB, nginx 32 KiB); hyper's own default read
/// buffer is ~400 KB. An HTTP/1 head over it gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// HTTP/2 streams a connection may have open at once (see `http_builder`).
const H2_MAX_STREAMS: u32 = 200;
/// HTTP/2 receive windows, per stream and per connection (see `http_builder`).
const H2_WINDOW: u32 = routes::MAX_ECHO_BODY as u32;

/// How long to pause after a failed `accept` (e.g. EMFILE) before trying again: long enough not
/// to spin, short enough not to be noticed.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_CLOUD_TRACE_CONTEXT: HeaderName = HeaderName::from_static("x-cloud-trace-context");

/// How the drain after the shutdown signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished within the grace. `connections` were open at the signal
    /// (those that had not sent a byte yet are among them, and closed at once).
    Complete { connections: usize },
    /// The grace ran out; this many connections were still open and are cut.
    Cut { connections: usize },
}

/// Serves HTTP/1.1 and h2c on `listener` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish within `config.shutdown_grace`, and closes idle keep-alive
/// connections. Returns how the drain ended; the caller picks the exit status.
pub async fn serve<F>(listener: TcpListener, config: &ServerConfig, shutdown: F) -> Drain
where
    F: Future<Output = ()>,
{
    let builder = Arc::new(http_builder());
    let (bytes, source) = match config.body_budget {
        Some(bytes) => (bytes, budget::Source::Environment),
        None => budget::from_memory_limit(),
    };
    info!(bytes, source = source.as_str(), "request body budget");
    let state = State {
        budget: Budget::new(bytes),
    };
    let graceful = Graceful::new();
    let project: Option<Arc<str>> = config.project_id.as_deref().map(Arc::from);
    let mut shutdown = pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: not fatal.
                warn!(%error, "accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let mut stopping = graceful.watch();
        let project = project.clone();
        let state = state.clone();
        let first_byte_timeout = config.header_read_timeout;
        let keepalive_timeout = config.keepalive_timeout;
        tokio::spawn(async move {
            // The header timeout (`HeadDeadline` below) starts once the protocol is known, and
            // `auto` reads up to the 24-byte h2 preface with no deadline: a client that sends
            // nothing, or trickles the preface, would otherwise hold the socket forever. Such a
            // connection has no request to drain, so shutdown closes it at once.
            let opened = tokio::select! {
                opened = tokio::time::timeout(first_byte_timeout, opening(&stream)) => {
                    opened.ok().and_then(Result::ok).flatten()
                }
                () = &mut stopping => None,
            };
            let Some(opened) = opened else {
                debug!(%peer, "connection closed before it chose a protocol");
                return;
            };
            // The header and keep-alive timeouts, one timer per connection (see
            // `header_timeout`). Only HTTP/1 requests tell the clock when they are served.
            let clock = match opened {
                Opening::Http1 => HeadClock::http1(),
                Opening::H2c => HeadClock::h2c(),
            };
            let mut deadline = pin!(HeadDeadline::new(
                Arc::clone(&clock),
                first_byte_timeout,
                keepalive_timeout,
            ));
            let service_clock = (opened == Opening::Http1).then(|| Arc::clone(&clock));
            let io = HeadIo::new(stream, Arc::clone(&clock));
            let service = service_fn(move |req| {
                respond(req, project.as_ref(), service_clock.as_ref(), &state)
            });
            let mut conn = pin!(builder.serve_connection(io, service));
            let mut told = false;
            let served = poll_fn(|cx| {
                // At shutdown hyper finishes the request in flight, then closes (HTTP/1), or
                // sends GOAWAY and finishes the open streams (HTTP/2).
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
                        // Idle for the keep-alive timeout: closed the way shutdown closes it,
                        // then polled again so that hyper acts on it.
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
            .await;
            match served {
                Some(Ok(())) => {}
                Some(Err(error)) => debug!(%peer, %error, "connection ended with an error"),
                None => debug!(%peer, "timed out waiting for a request head or a close"),
            }
        });
    }

    // Stop accepting first: new connections are refused while in-flight ones finish.
    drop(listener);
    graceful.stop();
    let connections = graceful.open();
    info!(
        connections,
        grace_ms = millis(config.shutdown_grace),
        "draining"
    );
    let started = Instant::now();
    match tokio::time::timeout(config.shutdown_grace, graceful.closed()).await {
        Ok(()) => {
            info!(
                connections,
                elapsed_ms = millis(started.elapsed()),
                "drained"
            );
            Drain::Complete { connections }
        }
        Err(_) => {
            let cut = graceful.open();
            warn!(
                connections = cut,
                grace_ms = millis(config.shutdown_grace),
                "grace expired, cutting connections"
            );
            Drain::Cut { connections: cut }
        }
    }
}

/// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port: Cloud Run's end-to-end HTTP/2
/// option speaks h2c to the container (<https://cloud.google.com/run/docs/configuring/http2>).
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Kept per connection in `serve` instead (see `header_timeout`): hyper's own costs a
        // timer per request.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        // Otherwise hyper polls the socket once more between each request head and its
        // response, only to notice a client hanging up, and that read reserves a fresh 8 KiB
        // read buffer because the request still holds the old one (callgrind: -640
        // instructions per request). It also answers a client that shuts its write side
        // after sending the request (`nc -N`), which hyper would otherwise drop unanswered.
        .half_close(true)
        // One flat buffer and one `write` instead of a head buffer plus a queue of body chunks
        // for `writev` (-400 instructions per request). Bodies come in 16 KiB slices, so the
        // buffer stays within `max_buf_size` (see `routes::BODY_SLICE`).
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        // hyper's defaults, set here because hyper may change them and because they bound
        // what one connection holds. Streams: Cloud Run caps requests in flight per instance
        // at its concurrency setting, 80 by default and at most 1 000
        // (<https://cloud.google.com/run/docs/about-concurrency>); 200 lets one front-end
        // connection carry the default with room, and a setting above it spreads over more
        // connections. More streams would cost little in bodies (the budget bounds those,
        // and a stream it refuses is answered at once) but up to a head of MAX_HEAD_BYTES each.
        .max_concurrent_streams(H2_MAX_STREAMS)
        // Stream window: the largest `/echo` body, so one arrives without waiting for a
        // WINDOW_UPDATE. Connection window the same: the request bytes h2 holds unread for a
        // connection stay at 1 MiB however many streams are open (RFC 9113 §6.9.2; the
        // spec's default is 64 KiB, which would stall a 1 MiB upload on round trips).
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW);
    builder
}

/// Wraps the route table ([`routes::route`]): trace context into a span, the debug-level
/// access line, `HEAD` answers without their body, and a panic turned into a 500 for this
/// request alone.
///
/// A route that answers at once ([`Handler::Now`]) gives hyper a ready response to poll, not a
/// chain of nested `async` blocks each moving the request and the response along (memcpy was
/// an eighth of our instructions per request; callgrind: -1 060 instructions per request).
/// A route that waits ([`Handler::Later`]) is polled in a boxed future.
fn respond(
    req: Request<Incoming>,
    project: Option<&Arc<str>>,
    clock: Option<&Arc<HeadClock>>,
    state: &State,
) -> Respond {
    let span = project.and_then(|p| request_span(&req, p));
    // Cloud Run already logs every request; this line is for local debugging and costs one
    // cached interest check when debug is off.
    let access = tracing::enabled!(Level::DEBUG).then(|| {
        (
            req.method().clone(),
            req.uri().path().to_owned(),
            Instant::now(),
        )
    });
    let head = req.method() == Method::HEAD;
    let handler = {
        let _entered = span.as_ref().map(tracing::Span::enter);
        std::panic::catch_unwind(AssertUnwindSafe(|| routes::route(req, state)))
            .unwrap_or_else(|_| Handler::Now(internal_error()))
    };
    let mut res = match handler {
        Handler::Now(res) => res,
        Handler::Later(fut) => {
            let clock = clock.map(|c| {
                c.busy();
                Arc::clone(c)
            });
            let handled = async move {
                let mut res = catch_panic(fut).await;
                if head {
                    routes::headers_only(&mut res);
                }
                log_access(access, &res);
                if let Some(clock) = clock {
                    clock.done();
                }
                Ok(res)
            };
            return Respond::Later(match span {
                Some(span) => Box::pin(handled.instrument(span)),
                None => Box::pin(handled),
            });
        }
    };
    if head {
        routes::headers_only(&mut res);
    }
    if access.is_some() {
        let _entered = span.as_ref().map(tracing::Span::enter);
        log_access(access, &res);
    }
    if let Some(clock) = clock {
        clock.done();
    }
    Respond::Now(Some(res))
}

fn log_access(access: Option<(hyper::Method, String, Instant)>, res: &Response<ResponseBody>) {
    if let Some((method, path, started)) = access {
        debug!(
            %method,
            path,
            status = res.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
    }
}

type Answer = Result<Response<ResponseBody>, Infallible>;

/// The service's future: a response ready at once, or a route's future still waiting.
enum Respond {
    Now(Option<Response<ResponseBody>>),
    Later(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl Future for Respond {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.get_mut() {
            // hyper polls a service future only until it is ready, so `take` sees `Some`.
            Self::Now(res) => Poll::Ready(Ok(res.take().unwrap_or_else(internal_error))),
            Self::Later(fut) => fut.as_mut().poll(cx),
        }
    }
}

fn internal_error() -> Response<ResponseBody> {
    routes::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

/// A span whose fields Cloud Logging reads as the request's trace. At ERROR level so it is on
/// whenever any log line is, even under `RUST_LOG=error`.
fn request_span<B: Body>(req: &Request<B>, project: &str) -> Option<tracing::Span> {
    let headers = req.headers();
    let tc = TraceContext::from_headers(
        headers.get(TRACEPARENT).map(|v| v.as_bytes()),
        headers.get(X_CLOUD_TRACE_CONTEXT).map(|v| v.as_bytes()),
    )?;
    let span = tracing::span!(
        Level::ERROR,
        "request",
        "logging.googleapis.com/trace" = tc.trace_resource(project),
        "logging.googleapis.com/spanId" = tracing::field::Empty,
        "logging.googleapis.com/trace_sampled" = tc.sampled,
    );
    if let Some(id) = &tc.span_id {
        span.record("logging.googleapis.com/spanId", id.as_str());
    }
    Some(span)
}

/// Runs a handler future, turning a panic into a 500 for this request. The panic hook has
/// already logged it; the process and the connection's other requests carry on.
pub async fn catch_panic<F>(fut: F) -> Response<ResponseBody>
where
    F: Future<Output = Response<ResponseBody>>,
{
    let mut fut = pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(internal_error()),
        }
    })
    .await
}

/// The protocol a client opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Http1,
    /// HTTP/2 with prior knowledge: the 24-byte preface came first.
    H2c,
}

/// Waits until the client has sent enough to tell HTTP/1 from the h2 preface; `None` at EOF.
async fn opening(stream: &TcpStream) -> std::io::Result<Option<Opening>> {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Opening::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Opening::H2c));
        }
        // Part of the preface: `peek` would return the same bytes at once, so wait for more.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
