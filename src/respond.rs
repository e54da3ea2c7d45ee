//! One request, whatever carried it: the route table's answer ([`routes::route`]) inside the
//! request's trace span, with a panic turned into a `500` for this request alone, `HEAD`
//! answered without a body, and the debug-level access line.
//!
//! A transport hands [`respond`] any `Request<B>` and gets back a [`Respond`], a future of the
//! response; nothing here knows the socket, the protocol or the connection's timeouts.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use tracing::{Instrument as _, Level, debug};

use crate::http::response::{ResponseBody, headers_only, text};
use crate::http::trace::request_span;
use crate::routes::{self, Handler, State};

/// Answers one request. `project` (`GOOGLE_CLOUD_PROJECT`) turns its trace headers into the
/// log fields Cloud Logging correlates.
///
/// A route that answers at once ([`Handler::Now`]) gives back a ready response, not a chain of
/// nested `async` blocks each moving the request and the response along (memcpy was an eighth
/// of our instructions per request; callgrind: -1 060 instructions per request). A route that
/// waits ([`Handler::Later`]) is polled in a boxed future.
pub fn respond<B>(req: Request<B>, state: &State, project: Option<&str>) -> Respond
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let span = project.and_then(|p| request_span(req.headers(), p));
    // Cloud Run already logs every request; this line is for local debugging and costs one
    // cached interest check when debug is off.
    let access = tracing::enabled!(Level::DEBUG).then(|| Access {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        started: Instant::now(),
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
            let handled = async move {
                let mut res = catch_panic(fut).await;
                if head {
                    headers_only(&mut res);
                }
                log_access(access, &res);
                Ok(res)
            };
            return Respond::Later(match span {
                Some(span) => Box::pin(handled.instrument(span)),
                None => Box::pin(handled),
            });
        }
    };
    if head {
        headers_only(&mut res);
    }
    if access.is_some() {
        let _entered = span.as_ref().map(tracing::Span::enter);
        log_access(access, &res);
    }
    Respond::Now(Some(res))
}

/// The answer to one request, as a future of it: ready at once, or a route's future still
/// waiting. It never fails; the `Result` is what transports' services return (hyper's
/// `Service`, for one).
pub enum Respond {
    Now(Option<Response<ResponseBody>>),
    Later(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

/// What a [`Respond`] resolves to.
pub type Answer = Result<Response<ResponseBody>, Infallible>;

impl std::fmt::Debug for Respond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now(res) => f.debug_tuple("Now").field(res).finish(),
            Self::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl Future for Respond {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.get_mut() {
            // Polled again after it was ready, which hyper never does: a 500 rather than a panic.
            Self::Now(res) => Poll::Ready(Ok(res.take().unwrap_or_else(internal_error))),
            Self::Later(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// What the access line needs from the request.
struct Access {
    method: Method,
    path: String,
    started: Instant,
}

fn log_access(access: Option<Access>, res: &Response<ResponseBody>) {
    if let Some(Access {
        method,
        path,
        started,
    }) = access
    {
        debug!(
            %method,
            path,
            status = res.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
    }
}

/// Runs a handler future, turning a panic into a 500 for this request. The panic hook has
/// already logged it; the process and the connection's other requests carry on.
async fn catch_panic<F>(fut: F) -> Response<ResponseBody>
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

fn internal_error() -> Response<ResponseBody> {
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_fails_with_500_and_nothing_else() {
        let r = catch_panic(async { panic!("handler bug") }).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let ok = catch_panic(async { text(StatusCode::OK, "fine") }).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
}
