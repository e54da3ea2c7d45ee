//! `POST /events`: events from Pub/Sub, Cloud Storage and the rest of Google Cloud, delivered by
//! an Eventarc trigger whose destination is this service (`nix run .#trigger`).
//!
//! Eventarc sends each event as one `POST` in CloudEvents *binary content mode*: the event's
//! attributes in `ce-*` headers, its data as the body
//! (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md#31-binary-content-mode>).
//! It retries every answer that is not 2xx and delivers at least once, so a malformed event is
//! answered `400` (retrying cannot fix it), and a handler that acts on events must be
//! idempotent on `ce-id`.
//!
//! The data is not decoded here, and no JSON library is linked for it: decoding is the
//! application's own (a Pub/Sub message arrives as the push envelope
//! `{"message":{"data":BASE64,"messageId",...},"subscription"}`; a Cloud Storage event as the
//! object's metadata). Put it in [`receive`], where the comment says.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Request, Response, StatusCode};
use tracing::info;

use crate::http::body::read_body;
use crate::http::budget::Budget;
use crate::http::response::{ResponseBody, closing, text};

/// The attributes CloudEvents 1.0 requires (core spec, "Required Attributes"), as binary-mode
/// headers, each with the answer when it is missing or empty.
const REQUIRED: [(&str, &str); 4] = [
    (
        "ce-specversion",
        "missing or empty ce-specversion header: not a binary-mode CloudEvent\n",
    ),
    ("ce-id", "missing or empty ce-id header\n"),
    ("ce-source", "missing or empty ce-source header\n"),
    ("ce-type", "missing or empty ce-type header\n"),
];

/// The media type of structured and batched mode (`application/cloudevents+json`,
/// `application/cloudevents-batch+json`).
const STRUCTURED: &str = "application/cloudevents";

/// Receives one event: `204` once its attributes are valid and its data is read, under the same
/// size limit and memory budget as `/echo` ([`read_body`]).
pub async fn receive<B>(req: Request<B>, budget: Arc<Budget>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Err((status, why)) = check(req.headers()) {
        // The body is left unread: the connection ends after this answer.
        return closing(req.version(), text(status, why));
    }
    let (parts, data) = match read_body(req, &budget).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let h = &parts.headers;
    // `check` made sure these are present and visible ASCII.
    let attr = |name| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, kind, source) = (attr("ce-id"), attr("ce-type"), attr("ce-source"));
    match h.get("ce-subject").and_then(|v| v.to_str().ok()) {
        Some(subject) => info!(
            id,
            "type" = kind,
            source,
            subject,
            bytes = data.len(),
            "event"
        ),
        None => info!(id, "type" = kind, source, bytes = data.len(), "event"),
    }

    // Your handling goes here: decode `data` (see the module comment), act on it, and answer
    // 2xx only once the event is safely handled; any other answer makes Eventarc retry it.

    let mut res = Response::new(ResponseBody::default());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// Binary mode, version 1.0, and every required attribute; otherwise the status and text to
/// answer with.
fn check(headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    // Structured mode puts the whole event in a JSON body with this media type (spec §3.2);
    // Eventarc never sends it, and decoding it would need a JSON parser in the binary.
    let structured = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.get(..STRUCTURED.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(STRUCTURED))
        });
    if structured {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "structured-mode CloudEvents are not accepted: send binary mode (ce-* headers), as Eventarc does\n",
        ));
    }
    for (name, why) in REQUIRED {
        // Non-ASCII attribute values arrive percent-encoded (spec §3.1.3.2), so a header that
        // is not visible ASCII is malformed too.
        let value = headers.get(name).map(|v| v.to_str());
        if !matches!(value, Some(Ok(v)) if !v.is_empty()) {
            return Err((StatusCode::BAD_REQUEST, why));
        }
    }
    if headers.get("ce-specversion").map(|v| v.as_bytes()) != Some(b"1.0") {
        return Err((
            StatusCode::BAD_REQUEST,
            "ce-specversion must be 1.0 (CloudEvents 1.0, as Eventarc sends)\n",
        ));
    }
    Ok(())
}
