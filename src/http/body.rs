//! Request bodies: read whole, under one size limit for every body, and under the budget that
//! all bodies in memory share.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use super::budget::{Budget, Reservation};
use super::response::{ResponseBody, closing, text};

/// The largest request body any handler reads ([`read_body`]). The HTTP/2 receive windows are
/// this size too (see `server::protocol`), and the body budget is never smaller.
pub const MAX_BODY: usize = 1024 * 1024;

/// How large a body [`read_body`] takes, and what the `413` past it says.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub bytes: usize,
    pub too_large: &'static str,
}

/// [`MAX_BODY`], which every handler but `/events` reads under.
pub const BODY_LIMIT: Limit = Limit {
    bytes: MAX_BODY,
    too_large: "request body over 1 MiB\n",
};

const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("1");

/// Reads a whole request body of at most `limit` bytes (usually [`BODY_LIMIT`]), for the
/// handlers that need it at once; `Err` is the answer to give instead. A declared length over
/// the limit is refused before a byte is read; an undeclared (chunked) one is cut at the limit.
/// Either way the rest is never buffered, and the answer says `connection: close`
/// ([`closing`]).
///
/// The body takes from `budget` as its bytes arrive (see [`super::budget`]), and holds them as
/// long as the returned [`RequestBody`] lives: a client holds at most twice what it has sent
/// (the buffer's capacity, which doubles), not what it declared. A body the budget cannot take
/// more of is answered `503` (at once when its declared length does not fit what is left);
/// one larger than the whole budget `413`, since a retry cannot succeed either. A body that
/// sends nothing for `read_timeout` is answered `408`, and what it held is given back.
pub async fn read_body<B>(
    req: Request<B>,
    budget: &Arc<Budget>,
    limit: Limit,
    read_timeout: Duration,
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
    let max = limit.bytes.min(budget.limit());
    let too_large = || {
        let why = if max < limit.bytes {
            "request body larger than all of BODY_BUDGET\n"
        } else {
            limit.too_large
        };
        closing(version, text(StatusCode::PAYLOAD_TOO_LARGE, why))
    };
    let declared = match declared {
        Some(n) if n > max as u64 => return Err(too_large()),
        Some(n) => Some(n as usize),
        None => None,
    };
    // Nothing is taken before bytes arrive, but a body with no room left for it now is refused
    // at once rather than read until the room runs out.
    if declared.is_some_and(|n| n > budget.limit().saturating_sub(budget.held())) {
        return Err(closing(version, busy()));
    }
    let mut held = budget.empty();
    let (parts, body) = req.into_parts();
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    loop {
        let Ok(frame) = tokio::time::timeout(read_timeout, body.as_mut().frame()).await else {
            let stalled = text(StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
            return Err(closing(version, stalled));
        };
        let data = match frame {
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
        if len > max {
            return Err(too_large());
        }
        if len > buf.capacity() {
            // The buffer doubles, up to the declared length, and the budget holds its capacity.
            let capacity = len
                .max(buf.capacity() * 2)
                .min(declared.unwrap_or(max).max(len));
            if !held.grow_to(capacity) {
                return Err(closing(version, busy()));
            }
            buf.reserve_exact(capacity - buf.len());
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
