//! Answers: the response body type, and the helpers handlers build their answers with.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
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
    /// What is left to send.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

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

/// A plain-text answer from a static string: no allocation, no copy.
pub fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    res
}

/// [`text`], but in the request's own header map, emptied. hyper hands each response's map
/// back as the next request's, so a keep-alive connection then allocates and frees no header
/// map at all (two allocations and two frees fewer per request; callgrind: -66 instructions).
pub fn reply<B>(
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

/// `405` with the methods the path does take in `Allow` (RFC 9110 §15.5.6).
pub fn not_allowed<B>(req: &mut Request<B>, allow: HeaderValue) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut().insert(ALLOW, allow);
    res
}

/// `res` as the last answer on an HTTP/1 connection: `connection: close` (RFC 9112 §9.6) makes
/// hyper close after it, and tells the client not to send more; the server then closes with
/// a lingering close (see `server::socket`) so that this answer is not lost to a reset. Used
/// where the request's body is not read, or the request itself is in doubt. HTTP/2 has no
/// `connection` header (RFC 9113 §8.2.2): there the stream ends, not the connection.
pub fn closing(version: Version, mut res: Response<ResponseBody>) -> Response<ResponseBody> {
    if version < Version::HTTP_2 {
        res.headers_mut().insert(CONNECTION, CLOSE);
    }
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
