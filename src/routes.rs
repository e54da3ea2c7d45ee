//! Routing: a `match` on path and method, no framework.
//!
//! | route          | answer                                                       |
//! |----------------|--------------------------------------------------------------|
//! | `GET/HEAD /`   | 200 greeting                                                 |
//! | `GET/HEAD /health` | 200 `ok`, `cache-control: no-store` (Cloud Run's probes)  |
//! | `POST /echo`   | 200 with the request body and content type; 413 over 1 MiB; 503 when the body budget is spent |
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
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::budget::{Budget, Reservation};

/// The largest body `/echo` accepts.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

pub const GREETING: &str = "Hello from Rust on Cloud Run!\n";

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const CLOSE: HeaderValue = HeaderValue::from_static("close");
const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

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

/// What every handler may use, built once at start-up and shared by all connections. Add what
/// your own handlers need (a database pool, an HTTP client) as a field: [`route`] hands it to
/// every request.
#[derive(Debug, Clone)]
pub struct State {
    /// The bytes request bodies may hold in memory, all connections together ([`read_body`]).
    pub budget: Arc<Budget>,
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
/// an arm: `Now(...)` for an answer built from the request head alone, `later(f(req))` for an
/// `async fn` that waits on something (see [`echo`], [`events::receive`]); and add its path to
/// the `405` arms below. A request without exactly one `Host` is refused first. `HEAD` gets
/// the `GET` answer: the server keeps its headers and drops its body ([`headers_only`]).
pub fn route<B>(mut req: Request<B>, state: &State) -> Handler
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use Handler::Now;
    let get_or_head = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = req.method() == Method::POST;
    match req.uri().path() {
        _ if !host_is_valid(&req) => Now(closing(
            req.version(),
            text(StatusCode::BAD_REQUEST, "one host header required\n"),
        )),
        "/" if get_or_head => Now(reply(&mut req, StatusCode::OK, GREETING)),
        "/health" if get_or_head => Now(health(&mut req)),
        "/echo" if post => later(echo(req, Arc::clone(&state.budget))),
        "/events" if post => later(events::receive(req, Arc::clone(&state.budget))),
        "/" | "/health" => Now(not_allowed(&mut req, ALLOW_GET_HEAD)),
        "/echo" | "/events" => Now(not_allowed(&mut req, ALLOW_POST)),
        _ => Now(reply(&mut req, StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// `200 ok` for Cloud Run's probes and uptime checks. Not at `/healthz`: Cloud Run's front end
/// reserves some paths ending in `z` and answers them itself
/// (<https://cloud.google.com/run/docs/known-issues#reserved_url_paths>).
fn health<B>(req: &mut Request<B>) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::OK, "ok\n");
    // A cache between a checker and the service must never answer for it.
    res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    res
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line". HTTP/1.0 predates `Host`; HTTP/2 names the authority
/// in `:authority` instead (RFC 9113 §8.3.1), which hyper checks.
///
/// A lookup by name hashes it (about 180 instructions per request, callgrind), so the common
/// case is settled without one: RFC 9112 §3.2 asks clients to send `Host` first, and curl,
/// browsers, Node, Python and Go do; if no name repeats, that `Host` is the only one.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    if req.version() > Version::HTTP_11 {
        return true;
    }
    let headers = req.headers();
    if headers.keys().next() == Some(&HOST) && headers.len() == headers.keys_len() {
        return true;
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), None) => true,
        (None, _) => req.version() < Version::HTTP_11,
        (Some(_), Some(_)) => false,
    }
}

/// `res` as the last answer on an HTTP/1 connection: `connection: close` (RFC 9112 §9.6) makes
/// hyper close after it, and tells the client not to send more; the server then closes with
/// a lingering close (see [`crate::linger`]) so that this answer is not lost to a reset. Used
/// where the request's body is not read, or the request itself is in doubt. HTTP/2 has no
/// `connection` header (RFC 9113 §8.2.2): there the stream ends, not the connection.
pub fn closing(version: Version, mut res: Response<ResponseBody>) -> Response<ResponseBody> {
    if version < Version::HTTP_2 {
        res.headers_mut().insert(CONNECTION, CLOSE);
    }
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

/// The answer to a `HEAD`: the `GET` answer's status and headers, its `content-length`
/// included, and no body (RFC 9110 §9.3.2). hyper leaves out a `HEAD` body by itself only on
/// HTTP/1; on HTTP/2 it would send it as DATA frames after the HEADERS, which clients (curl,
/// nghttp, h2) reject as a protocol error. An empty body makes hyper end the stream with the
/// HEADERS frame, and RFC 9113 §8.1.1 lets that frame carry the non-zero `content-length`.
pub fn headers_only(res: &mut Response<ResponseBody>) {
    let len = std::mem::take(res.body_mut()).0.len();
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
}

fn not_allowed<B>(req: &mut Request<B>, allow: HeaderValue) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut().insert(ALLOW, allow);
    res
}

/// Echoes the body back with the request's content type. The body's share of the budget stays
/// reserved until the answer's body is dropped, that is once hyper has sent it.
pub async fn echo<B>(req: Request<B>, budget: Arc<Budget>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match read_body(req, &budget).await {
        Ok((parts, body)) => {
            let mut res = Response::new(ResponseBody::new(Bytes::from_owner(body)));
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                res.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            res
        }
        Err(refused) => refused,
    }
}

/// Reads a whole request body of at most [`MAX_ECHO_BODY`] bytes, for the handlers that need
/// it at once; `Err` is the answer to give instead. A declared length over the limit is
/// refused before a byte is read; an undeclared (chunked) one is cut at the limit. Either way
/// the rest is never buffered, and the answer says `connection: close` ([`closing`]).
///
/// The body's bytes are reserved in `budget` before they are read (see [`crate::budget`]), and
/// stay reserved as long as the returned [`RequestBody`] lives. When the budget cannot take
/// them the answer is `503` at once.
pub async fn read_body<B>(
    req: Request<B>,
    budget: &Arc<Budget>,
) -> Result<(hyper::http::request::Parts, RequestBody), Response<ResponseBody>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let version = req.version();
    let declared = match declared {
        Some(n) if n > MAX_ECHO_BODY as u64 => return Err(closing(version, too_large())),
        Some(n) => Some(n as usize),
        None => None,
    };
    // A streamed body reserves a first step, and twice as much each time it outgrows it.
    let Some(mut held) = budget.reserve(declared.unwrap_or(FIRST_STEP)) else {
        return Err(closing(version, busy()));
    };
    let (parts, body) = req.into_parts();
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::with_capacity(held.bytes());
    loop {
        let data = match body.as_mut().frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
            // The client broke the body off (reset, bad chunk): nobody may read this, but
            // answer.
            Some(Err(_)) => {
                let bad = text(StatusCode::BAD_REQUEST, "bad request body\n");
                return Err(closing(version, bad));
            }
        };
        let len = buf.len() + data.len();
        if len > MAX_ECHO_BODY {
            return Err(closing(version, too_large()));
        }
        if len > held.bytes() {
            if !held.grow_to(len.max(held.bytes() * 2).min(MAX_ECHO_BODY)) {
                return Err(closing(version, busy()));
            }
            buf.reserve_exact(held.bytes() - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok((
        parts,
        RequestBody {
            bytes: buf,
            _held: held,
        },
    ))
}

/// The first reservation of a body of unknown length.
const FIRST_STEP: usize = 64 * 1024;

/// A request body read whole ([`read_body`]), holding its share of the body budget until it is
/// dropped: an echoed one once hyper has sent the last slice of it.
#[derive(Debug)]
pub struct RequestBody {
    bytes: Vec<u8>,
    _held: Reservation,
}

impl std::ops::Deref for RequestBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for RequestBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// RFC 9110 §15.6.4: 503 with `retry-after` (§10.2.3) says the refusal is temporary. One
/// second: bodies are answered in milliseconds, so by then the budget has room again.
fn busy() -> Response<ResponseBody> {
    let mut res = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many request bodies in memory, retry shortly\n",
    );
    res.headers_mut().insert(RETRY_AFTER, RETRY_AFTER_SECONDS);
    res
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
