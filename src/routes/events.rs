//! `POST /events`: events from Pub/Sub, Cloud Storage and the rest of Google Cloud, delivered by
//! an Eventarc trigger whose destination is this service (`nix run .#trigger`), or by a plain
//! Pub/Sub push subscription.
//!
//! Eventarc sends each event as one `POST` in CloudEvents *binary content mode*: the event's
//! attributes in `ce-*` headers, its data as the body
//! (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md#31-binary-content-mode>).
//! A push subscription sends the JSON push envelope, `{"message":{"data":BASE64,"messageId",
//! …},"subscription"}`, and no `ce-*` header (<https://cloud.google.com/pubsub/docs/push>);
//! its message id is read by [`crate::pubsub`]. Both retry every answer that is not 2xx until
//! the message expires (up to 7 days) and deliver at least once: a malformed event is answered
//! `400` (retrying cannot fix it) and logged at `ERROR` with its id, and a handler that acts on
//! events must be idempotent on the id.
//!
//! The data is not decoded here: decoding is the application's own (a Pub/Sub message arrives as
//! the push envelope, through Eventarc too; a Cloud Storage event as the object's metadata). Put
//! it in [`receive`], where the comment says.

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Request, Response, StatusCode};
use tracing::{error, info, warn};

use crate::http::body::{Limit, read_body};
use crate::http::response::{ResponseBody, closing, text};
use crate::pubsub::{self, Refused};
use crate::routes::State;

/// The largest event body taken. Pub/Sub takes messages of up to 10 MB
/// (<https://cloud.google.com/pubsub/quotas#resource_limits>) and pushes them as base64 in the
/// JSON envelope, 4/3 of that: about 14 MB with the attributes. Eventarc's own events are at
/// most 512 KB (<https://cloud.google.com/eventarc/docs/quotas>), but a Pub/Sub-triggered event
/// is the pushed message. A larger body cannot be a delivery, so it is refused unread.
pub const MAX_EVENT_BODY: usize = 16 * 1024 * 1024;

const EVENT_LIMIT: Limit = Limit {
    bytes: MAX_EVENT_BODY,
    too_large: "event over 16 MiB: larger than Pub/Sub or Eventarc delivers\n",
};

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

/// Receives one event: `204` once it is valid and its data is read, under the body budget and
/// [`MAX_EVENT_BODY`] ([`read_body`]). With `ce-*` headers it is a binary-mode CloudEvent;
/// without, a Pub/Sub push envelope.
pub async fn receive<B>(req: Request<B>, state: State) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let headers = req.headers();
    let binary = headers.keys().any(|name| name.as_str().starts_with("ce-"));
    let checked = if binary || structured(headers) {
        check(headers)
    } else {
        Ok(())
    };
    if let Err((status, why)) = checked {
        refused(attribute(headers, "ce-id"), status, why);
        // The body is left unread: the connection ends after this answer.
        return closing(req.version(), text(status, why));
    }
    let id = attribute(req.headers(), "ce-id").map(str::to_owned);
    let (parts, data) =
        match read_body(req, &state.budget, EVENT_LIMIT, state.body_read_timeout).await {
            Ok(read) => read,
            Err(res) => {
                let why = std::str::from_utf8(res.body().bytes()).unwrap_or("");
                refused(id.as_deref(), res.status(), why);
                return res;
            }
        };
    let h = &parts.headers;
    if binary {
        // `check` made sure these are present and visible ASCII.
        let attr = |name| attribute(h, name).unwrap_or("");
        let (id, kind, source) = (attr("ce-id"), attr("ce-type"), attr("ce-source"));
        match attribute(h, "ce-subject") {
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
    } else {
        match pubsub::parse(&data) {
            Ok(envelope) => info!(
                id = envelope.message_id,
                subscription = envelope.subscription,
                bytes = data.len(),
                "event"
            ),
            Err((why, id)) => {
                let why = match why {
                    Refused::NotJson => {
                        "not a binary-mode CloudEvent (no ce-* headers) nor a Pub/Sub push envelope (not one JSON object)\n"
                    }
                    Refused::NoMessageId => {
                        "Pub/Sub push envelope without a message.messageId string\n"
                    }
                    Refused::NoSubscription => {
                        "Pub/Sub push envelope without a subscription string\n"
                    }
                };
                refused(id.as_deref(), StatusCode::BAD_REQUEST, why);
                return text(StatusCode::BAD_REQUEST, why);
            }
        }
    }

    // Your handling goes here: decode `data` (see the module comment), act on it, and answer
    // 2xx only once the event is safely handled; any other answer makes the sender retry it.

    let mut res = Response::new(ResponseBody::default());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

/// A header as a string, if present and visible ASCII.
fn attribute<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Logs an event that was not taken: at `ERROR` when its sender's retries cannot succeed
/// (a 4xx), at `WARNING` when a retry may (`503` from the body budget).
fn refused(id: Option<&str>, status: StatusCode, why: &str) {
    let (status, why) = (status.as_u16(), why.trim_end());
    if status >= 500 {
        warn!(id, status, why, "event deferred");
    } else {
        error!(id, status, why, "event refused");
    }
}

/// Structured mode puts the whole event in a JSON body with this media type (spec §3.2);
/// Eventarc never sends it, and decoding it would need a JSON parser in the binary.
fn structured(headers: &HeaderMap) -> bool {
    attribute(headers, CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.get(..STRUCTURED.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(STRUCTURED))
    })
}

/// Binary mode, version 1.0, and every required attribute; otherwise the status and text to
/// answer with.
fn check(headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    if structured(headers) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "structured-mode CloudEvents are not accepted: send binary mode (ce-* headers), as Eventarc does\n",
        ));
    }
    for (name, why) in REQUIRED {
        // Non-ASCII attribute values arrive percent-encoded (spec §3.1.3.2), so a header that
        // is not visible ASCII is malformed too.
        if attribute(headers, name).is_none_or(str::is_empty) {
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
