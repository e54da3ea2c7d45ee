//! Routing: a `match` on path and method, no framework.
//!
//! | route          | answer                                                       |
//! |----------------|--------------------------------------------------------------|
//! | `GET/HEAD /`   | 200 greeting                                                 |
//! | `GET/HEAD /health` | 200 `ok`, `cache-control: no-store` (Cloud Run's probes)  |
//! | `POST /echo`   | 200 with the request body and content type; 413 over 1 MiB   |
//! | `POST /events` | 204 for an Eventarc delivery (CloudEvents binary mode), see [`events`] |
//! | other method   | 405 with `Allow`                                             |
//! | other path     | 404                                                          |
//!
//! Handlers never fail: every outcome is a status code, so hyper never aborts a connection
//! because of us.

pub mod events;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// The largest body `/echo` accepts.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

pub const GREETING: &str = "Hello from Rust on Cloud Run!\n";

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The most a response body hands hyper at a time. hyper copies HTTP/1 bodies into its write
/// buffer (`writev(false)` in [`crate::server`]) and flushes at 64 KiB, so a 1 MiB echo passes
/// through that buffer in slices instead of growing it to 1 MiB for the connection's lifetime.
pub const BODY_SLICE: usize = 16 * 1024;

/// A response body: one chunk of bytes, static or owned, with an exact length (so hyper sends
/// `content-length`), yielded in slices of at most [`BODY_SLICE`].
#[derive(Debug, Clone, Default)]
pub struct ResponseBody(Bytes);

impl ResponseBody {
    pub fn new(data: Bytes) -> Self {
        Self(data)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let data = &mut self.get_mut().0;
        if data.is_empty() {
            return Poll::Ready(None);
        }
        let slice = if data.len() <= BODY_SLICE {
            std::mem::take(data)
        } else {
            data.split_to(BODY_SLICE)
        };
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.len() as u64)
    }
}

/// What a route gives the server for one request.
pub enum Handler {
    /// The answer, ready now. The server then stores no future for the request and runs no
    /// chain of `async` blocks: the fast path, for every route whose answer does not wait.
    Now(Response<ResponseBody>),
    /// The answer waits on something: the request body, another service, a database. The
    /// server polls it inside the request's trace span and turns a panic into a `500`; the
    /// connection's header timeout is paused until it is done.
    Later(Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>),
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now(res) => f.debug_tuple("Now").field(res).finish(),
            Self::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Boxes an `async` handler as a [`Handler::Later`].
fn later(fut: impl Future<Output = Response<ResponseBody>> + Send + 'static) -> Handler {
    Handler::Later(Box::pin(fut))
}

/// The route table: every path and method the service answers, and how. To add a route, add
/// an arm here: `Now(...)` for an answer that needs nothing but the request head, `later(f(req))`
/// for an `async fn` that waits on something (see [`echo`], [`events::receive`]), and its path
/// to the `405` arms below. `HEAD` gets the `GET` answer without its body (the server drops it
/// on both protocols).
pub fn route<B>(mut req: Request<B>) -> Handler
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use Handler::Now;
    let get_or_head = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = req.method() == Method::POST;
    match req.uri().path() {
        "/" if get_or_head => Now(reply(&mut req, StatusCode::OK, GREETING)),
        "/health" if get_or_head => Now(health(&mut req)),
        "/echo" if post => later(echo(req)),
        "/events" if post => later(events::receive(req)),
        "/" | "/health" => Now(not_allowed(&mut req, ALLOW_GET_HEAD)),
        "/echo" | "/events" => Now(not_allowed(&mut req, ALLOW_POST)),
        _ => Now(reply(&mut req, StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// `200 ok` for Cloud Run's probes and uptime checks.
fn health<B>(req: &mut Request<B>) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::OK, "ok\n");
    // A cache between a checker and the service must never answer for it.
    res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    res
}

/// [`text`], but in the request's own header map, emptied. hyper hands each response's map
/// back as the next request's, so a keep-alive connection then allocates and frees no header
/// map at all (two allocations and two frees fewer per request; callgrind: -66 instructions).
fn reply<B>(
    req: &mut Request<B>,
    status: StatusCode,
    body: &'static str,
) -> Response<ResponseBody> {
    let mut headers = std::mem::take(req.headers_mut());
    headers.clear();
    headers.insert(CONTENT_TYPE, TEXT_PLAIN);
    let mut res = Response::new(ResponseBody::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

fn not_allowed<B>(req: &mut Request<B>, allow: HeaderValue) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut().insert(ALLOW, allow);
    res
}

/// Echoes the body back with the request's content type.
pub async fn echo<B>(req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match read_body(req).await {
        Ok((parts, body)) => {
            let mut res = Response::new(ResponseBody::new(body));
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                res.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            res
        }
        Err(refused) => refused,
    }
}

/// Reads a whole request body of at most [`MAX_ECHO_BODY`] bytes, for the handlers that need
/// it at once. A declared length over the limit is refused before a byte is read; an
/// undeclared (chunked) one is cut at the limit. Either way the rest is never buffered: hyper
/// closes the connection instead of draining it. `Err` is the answer to give instead.
pub async fn read_body<B>(
    req: Request<B>,
) -> Result<(hyper::http::request::Parts, Bytes), Response<ResponseBody>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ECHO_BODY as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        // The client broke the body off (reset, bad chunk): nobody may read this, but answer.
        Err(_) => Err(text(StatusCode::BAD_REQUEST, "bad request body\n")),
    }
}

fn too_large() -> Response<ResponseBody> {
    text(StatusCode::PAYLOAD_TOO_LARGE, "request body over 1 MiB\n")
}

/// A plain-text answer from a static string: no allocation, no copy.
pub fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    res
}
