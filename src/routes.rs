//! Routing: a `match` on path and method, no framework.
//!
//! | route          | answer                                                       |
//! |----------------|--------------------------------------------------------------|
//! | `GET/HEAD /`   | 200 greeting                                                 |
//! | `GET/HEAD /healthz` | 200 `ok` (Cloud Run startup and liveness probes)        |
//! | `POST /echo`   | 200 with the request body and content type; 413 over 1 MiB   |
//! | other method   | 405 with `Allow`                                             |
//! | other path     | 404                                                          |
//!
//! Handlers never fail: every outcome is a status code, so hyper never aborts a connection
//! because of us.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// The largest body `/echo` accepts.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

pub const GREETING: &str = "Hello from Rust on Cloud Run!\n";

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");

pub type ResponseBody = Full<Bytes>;

/// Answers one request. `HEAD` gets the `GET` answer; hyper drops the body and keeps the
/// `content-length`.
pub async fn route<B>(req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let get_or_head = matches!(*req.method(), Method::GET | Method::HEAD);
    match req.uri().path() {
        "/" if get_or_head => text(StatusCode::OK, GREETING),
        "/healthz" if get_or_head => text(StatusCode::OK, "ok\n"),
        "/echo" if req.method() == Method::POST => echo(req).await,
        "/" | "/healthz" => method_not_allowed(ALLOW_GET_HEAD),
        "/echo" => method_not_allowed(ALLOW_POST),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Echoes the body back with the request's content type. A declared length over the limit is
/// refused before a byte is read; an undeclared (chunked) one is cut at the limit. Either way
/// the rest is never buffered: hyper closes the connection instead of draining it.
async fn echo<B>(req: Request<B>) -> Response<ResponseBody>
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
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_ECHO_BODY).collect().await {
        Ok(collected) => {
            let mut res = Response::new(Full::new(collected.to_bytes()));
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                res.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            res
        }
        Err(e) if e.is::<LengthLimitError>() => too_large(),
        // The client broke the body off (reset, bad chunk): nobody may read this, but answer.
        Err(_) => text(StatusCode::BAD_REQUEST, "bad request body\n"),
    }
}

fn too_large() -> Response<ResponseBody> {
    text(StatusCode::PAYLOAD_TOO_LARGE, "request body over 1 MiB\n")
}

fn method_not_allowed(allow: HeaderValue) -> Response<ResponseBody> {
    let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut().insert(ALLOW, allow);
    res
}

/// A plain-text answer from a static string: no allocation, no copy.
pub fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    res
}
