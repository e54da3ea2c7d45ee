//! The route table: a `match` on the path, then on the method, no framework.
//!
//! | route          | answer                                                       |
//! |----------------|--------------------------------------------------------------|
//! | `GET/HEAD /`   | 200 greeting                                                 |
//! | `GET/HEAD /health` | 200 `ok`, `cache-control: no-store` (Cloud Run's probes), see [`health`] |
//! | `POST /echo`   | 200 with the request body and content type; 413 over 1 MiB; 503 when the body budget is spent, see [`echo`] |
//! | `POST /events` | 204 for an Eventarc delivery (CloudEvents binary mode) or a Pub/Sub push, see [`events`] |
//! | other method   | 405 with `Allow`                                             |
//! | other path     | 404                                                          |
//!
//! Handlers never fail: every outcome is a status code, so hyper never aborts a connection
//! because of us.

pub mod echo;
pub mod events;
pub mod health;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::http::budget::Budget;
use crate::http::response::{ResponseBody, closing, not_allowed, reply, text};

pub const GREETING: &str = "Hello from Rust on Cloud Run!\n";

const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");

/// What every handler may use, built once at start-up (`main`) and shared by all connections.
/// Add what your own handlers need (a database pool, an HTTP client) as a field: [`route`]
/// hands it to every request.
#[derive(Debug, Clone)]
pub struct State {
    /// The bytes request bodies may hold in memory, all connections together
    /// ([`crate::http::body::read_body`]).
    pub budget: Arc<Budget>,
    /// How long a request body may send nothing before it is answered `408`
    /// (`BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
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

/// The route table: every path the service answers, and for each the methods it takes and how
/// it answers them. To add a route, add an arm for its path: inside it, `Now(...)` for an
/// answer built from the request head alone, `later(f(req))` for an `async fn` that waits on
/// something (see [`echo::echo`], [`events::receive`]), and the `405` for any other method, with
/// the methods the arm takes in `Allow`. A request without exactly one `Host` is refused first.
/// `HEAD` gets the `GET` answer: the server keeps its headers and drops its body
/// ([`crate::http::response::headers_only`]).
pub fn route<B>(mut req: Request<B>, state: &State) -> Handler
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    use Handler::Now;
    if !host_is_valid(&req) {
        let bad = text(StatusCode::BAD_REQUEST, "one valid host header required\n");
        return Now(closing(req.version(), bad));
    }
    match req.uri().path() {
        "/" => match *req.method() {
            Method::GET | Method::HEAD => Now(reply(&mut req, StatusCode::OK, GREETING)),
            _ => Now(not_allowed(&mut req, ALLOW_GET_HEAD)),
        },
        "/health" => match *req.method() {
            Method::GET | Method::HEAD => Now(health::health(&mut req)),
            _ => Now(not_allowed(&mut req, ALLOW_GET_HEAD)),
        },
        "/echo" => match *req.method() {
            Method::POST => later(echo::echo(req, state.clone())),
            _ => Now(not_allowed(&mut req, ALLOW_POST)),
        },
        "/events" => match *req.method() {
            Method::POST => later(events::receive(req, state.clone())),
            _ => Now(not_allowed(&mut req, ALLOW_POST)),
        },
        _ => Now(reply(&mut req, StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line or a Host header field with an invalid field value".
/// HTTP/1.0 predates `Host`; HTTP/2 names the authority in `:authority` instead (RFC 9113
/// §8.3.1), which hyper checks.
///
/// A lookup by name hashes it (about 180 instructions per request, callgrind), so the common
/// case is settled without one: RFC 9112 §3.2 asks clients to send `Host` first, and curl,
/// browsers, Node, Python and Go do; if no name repeats, that `Host` is the only one.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    if req.version() > Version::HTTP_11 {
        return true;
    }
    let headers = req.headers();
    if let Some((name, value)) = headers.iter().next()
        && name == HOST
        && headers.len() == headers.keys_len()
    {
        return is_host(value.as_bytes());
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => is_host(host.as_bytes()),
        (None, _) => req.version() < Version::HTTP_11,
        (Some(_), Some(_)) => false,
    }
}

/// A `Host` value: `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2–3.2.3), where
/// `uri-host` is a name or IPv4 address (`reg-name`: unreserved characters, `%XX` and
/// sub-delimiters) or a bracketed IPv6 literal, and `port` is digits; empty is allowed (RFC
/// 9112 §3.2, for a target without an authority). A comma is refused although `reg-name`
/// allows it: it is what two `Host` lines joined into one by a proxy look like, and no DNS
/// name has one.
fn is_host(value: &[u8]) -> bool {
    // The common case, a name or an IPv4 address without a port, without a branch per byte;
    // anything else (a port, `%XX`, an IPv6 literal, or an invalid value) the long way.
    let all_name = value
        .iter()
        .fold(NAME, |all, &b| all & HOST_BYTES[usize::from(b)]);
    all_name == NAME || is_unusual_host(value)
}

/// [`is_host`] for a port, an IPv6 literal or a name with `%XX`.
fn is_unusual_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b']') {
        Some(end) if value.first() == Some(&b'[') => {
            let literal = &value[1..end];
            // IPv6 or IPvFuture (`v1.x`): hex digits, `:` and `.`, or a name's bytes after `v`.
            let ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| HOST_BYTES[usize::from(b)] == NAME || b == b':');
            if !ok {
                return false;
            }
            (&value[..0], &value[end + 1..])
        }
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(c) => (&value[..c], &value[c..]),
            None => (value, &value[value.len()..]),
        },
    };
    let port_ok = port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    let mut rest = host;
    while let Some((&b, tail)) = rest.split_first() {
        rest = match b {
            b'%' if tail.len() >= 2 && tail[..2].iter().all(u8::is_ascii_hexdigit) => &tail[2..],
            _ if HOST_BYTES[usize::from(b)] == NAME => tail,
            _ => return false,
        };
    }
    port_ok
}

const OTHER: u8 = 0;
const NAME: u8 = 1;

/// The class of each byte in a `Host` value: `NAME` for `reg-name`'s unreserved characters and
/// sub-delimiters (less `,`), `OTHER` for the rest (`:`, `%`, `[` and `]` included: a port,
/// and [`is_unusual_host`], take those).
const HOST_BYTES: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            table[b] = NAME;
        }
        if matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'='
        ) {
            table[b] = NAME;
        }
        b += 1;
    }
    table
};
