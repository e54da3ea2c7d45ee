//! Routing: a `match` on path and method, no framework.
//!
//! | route          | answer                                                       |
//! |----------------|--------------------------------------------------------------|
//! | `GET/HEAD /`   | 200 greeting                                                 |
//! | `GET/HEAD /health` | 200 `ok`, `cache-control: no-store` (Cloud Run's probes)  |
//! | `POST /echo`   | 200 with the request body and content type; 413 over 1 MiB   |
//! | other method   | 405 with `Allow`                                             |
//! | other path     | 404                                                          |
//!
//! Handlers never fail: every outcome is a status code, so hyper never aborts a connection
//! because of us.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue,
};
use hyper::{Method, Request, Response, StatusCode, Version};

/// The largest body `/echo` accepts.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

pub const GREETING: &str = "Hello from Rust on Cloud Run!\n";

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const CLOSE: HeaderValue = HeaderValue::from_static("close");

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

/// Answers at once every request whose answer does not depend on its body, which is all but
/// `POST /echo` (`None`: await [`echo`] for it). `HEAD` gets the `GET` answer here, body
/// included; the server then makes it [`headers_only`]. The server calls this without
/// building a future per request.
pub fn answer_now<B>(req: &mut Request<B>) -> Option<Response<ResponseBody>> {
    if !host_is_valid(req) {
        return Some(closing(
            req.version(),
            text(StatusCode::BAD_REQUEST, "one host header required\n"),
        ));
    }
    let get_or_head = matches!(*req.method(), Method::GET | Method::HEAD);
    let res = match req.uri().path() {
        "/" if get_or_head => reply(req, StatusCode::OK, GREETING),
        // Not `/healthz`: Cloud Run's front end reserves some paths ending in `z` and answers
        // them itself (<https://cloud.google.com/run/docs/known-issues#reserved_url_paths>).
        "/health" if get_or_head => {
            let mut res = reply(req, StatusCode::OK, "ok\n");
            // A cache between a checker and the service must never answer for it.
            res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
            res
        }
        "/echo" if req.method() == Method::POST => return None,
        "/" | "/health" => not_allowed(req, ALLOW_GET_HEAD),
        "/echo" => not_allowed(req, ALLOW_POST),
        _ => reply(req, StatusCode::NOT_FOUND, "not found\n"),
    };
    Some(res)
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line". HTTP/1.0 predates `Host`; HTTP/2 names the authority
/// in `:authority` instead (RFC 9113 §8.3.1), which hyper checks.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    if req.version() > Version::HTTP_11 {
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
    res.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
}

fn not_allowed<B>(req: &mut Request<B>, allow: HeaderValue) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut().insert(ALLOW, allow);
    res
}

/// Echoes the body back with the request's content type. A declared length over the limit is
/// refused before a byte is read; an undeclared (chunked) one is cut at the limit. Either way
/// the rest is never buffered: hyper closes the connection instead of draining it.
pub async fn echo<B>(req: Request<B>) -> Response<ResponseBody>
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
        return closing(req.version(), too_large());
    }
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => {
            let mut res = Response::new(ResponseBody::new(collected.to_bytes()));
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                res.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            res
        }
        Err(e) if e.is::<LengthLimitError>() => closing(parts.version, too_large()),
        // The client broke the body off (reset, bad chunk): nobody may read this, but answer.
        Err(_) => closing(
            parts.version,
            text(StatusCode::BAD_REQUEST, "bad request body\n"),
        ),
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
