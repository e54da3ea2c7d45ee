//! The accept loop, per-connection HTTP/1.1 + h2c, and the bounded drain.
//!
//! `serve` takes a bound listener and a shutdown future and binds nothing itself, so tests drive
//! it on `127.0.0.1:0` with a oneshot and production with the signal future.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::header::HeaderName;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{Instrument as _, Level, debug, info, warn};

use crate::config::ServerConfig;
use crate::routes::{self, ResponseBody};
use crate::trace::TraceContext;

/// Upper bound on a request head (request line + headers), HTTP/1 and HTTP/2 alike. Proxies
/// use the same order of magnitude (Envoy 60 KiB, nginx 32 KiB); hyper's own default read
/// buffer is ~400 KB. An HTTP/1 head over it gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long to pause after a failed `accept` (e.g. EMFILE) before trying again: long enough not
/// to spin, short enough not to be noticed.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_CLOUD_TRACE_CONTEXT: HeaderName = HeaderName::from_static("x-cloud-trace-context");

/// How the drain after the shutdown signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished within the grace.
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
    let builder = Arc::new(http_builder(config));
    let graceful = GracefulShutdown::new();
    // One clone per live connection: the strong count tells how many a cut would drop.
    let live = Arc::new(());
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
        let watcher = graceful.watcher();
        let live = Arc::clone(&live);
        let project = project.clone();
        let first_byte_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header timeout starts once it knows the protocol; a client that sends
            // nothing at all would otherwise hold the socket forever.
            // (`readable()` may report a fresh socket ready at once; `peek` waits for a byte.)
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                debug!(%peer, "connection closed before its first byte");
                return;
            }
            let _live = live;
            let service = service_fn(move |req| {
                let project = project.clone();
                async move { Ok::<_, Infallible>(respond(req, project).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(conn).await {
                debug!(%peer, %error, "connection ended with an error");
            }
        });
    }

    // Stop accepting first: new connections are refused while in-flight ones finish.
    drop(listener);
    let connections = Arc::strong_count(&live) - 1;
    info!(
        connections,
        grace_ms = millis(config.shutdown_grace),
        "draining"
    );
    let started = Instant::now();
    match tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => {
            info!(
                connections,
                elapsed_ms = millis(started.elapsed()),
                "drained"
            );
            Drain::Complete { connections }
        }
        Err(_) => {
            let cut = Arc::strong_count(&live) - 1;
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
fn http_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    builder
}

/// Wraps the router: trace context into a span, the debug-level access line, and a panic
/// turned into a 500 for this request alone.
async fn respond(req: Request<Incoming>, project: Option<Arc<str>>) -> Response<ResponseBody> {
    let span = project.as_deref().and_then(|p| request_span(&req, p));
    let handled = async move {
        // Cloud Run already logs every request; this line is for local debugging and costs one
        // cached interest check when debug is off.
        let access = tracing::enabled!(Level::DEBUG).then(|| {
            (
                req.method().clone(),
                req.uri().path().to_owned(),
                Instant::now(),
            )
        });
        let res = catch_panic(routes::route(req)).await;
        if let Some((method, path, started)) = access {
            debug!(
                %method,
                path,
                status = res.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "request"
            );
        }
        res
    };
    match span {
        Some(span) => handled.instrument(span).await,
        None => handled.await,
    }
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
            Err(_) => Poll::Ready(routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error\n",
            )),
        }
    })
    .await
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
