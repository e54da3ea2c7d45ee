//! Trace context from request headers, for Cloud Logging's trace correlation.
//!
//! Cloud Run forwards `traceparent` (W3C Trace Context) and the legacy `X-Cloud-Trace-Context`.
//! Google recommends preferring `traceparent` (<https://cloud.google.com/trace/docs/trace-context>).
//! Log entries carrying `logging.googleapis.com/trace` = `projects/P/traces/T` and
//! `logging.googleapis.com/spanId` (16 hex digits) are grouped under the request in the console.

use std::fmt::Write as _;

use hyper::header::{HeaderMap, HeaderName};
use tracing::Level;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_CLOUD_TRACE_CONTEXT: HeaderName = HeaderName::from_static("x-cloud-trace-context");

/// A span whose fields Cloud Logging reads as the request's trace, if its headers carry one. At
/// ERROR level so it is on whenever any log line is, even under `RUST_LOG=error`.
pub fn request_span(headers: &HeaderMap, project: &str) -> Option<tracing::Span> {
    let tc = TraceContext::from_headers(
        headers.get(TRACEPARENT).map(|v| v.as_bytes()),
        headers.get(X_CLOUD_TRACE_CONTEXT).map(|v| v.as_bytes()),
    )?;
    let span = tracing::span!(
        Level::ERROR,
        "request",
        "logging.googleapis.com/trace" = tc.trace_resource(project),
        "logging.googleapis.com/spanId" = tracing::field::Empty,
        "logging.googleapis.com/trace_sampled" = tc.sampled,
    );
    if let Some(id) = &tc.span_id {
        span.record("logging.googleapis.com/spanId", id.as_str());
    }
    Some(span)
}

/// A parsed trace context: 32 lowercase hex digits of trace id, 16 of span id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// Picks the context of a request: `traceparent` if it is valid, else the legacy header.
    pub fn from_headers(
        traceparent: Option<&[u8]>,
        x_cloud_trace_context: Option<&[u8]>,
    ) -> Option<Self> {
        traceparent
            .and_then(parse_traceparent)
            .or_else(|| x_cloud_trace_context.and_then(parse_x_cloud_trace_context))
    }

    /// The `logging.googleapis.com/trace` value.
    pub fn trace_resource(&self, project_id: &str) -> String {
        format!("projects/{project_id}/traces/{}", self.trace_id)
    }
}

/// `traceparent: 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>). Version `ff` and all-zero ids
/// are invalid; a future version may append fields after the flags.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceContext> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let mut parts = s.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    if !is_hex(version, 2) || version == "ff" || !is_hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if !is_hex(trace_id, 32) || is_zero(trace_id) || !is_hex(span_id, 16) || is_zero(span_id) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceContext {
        trace_id: trace_id.to_ascii_lowercase(),
        span_id: Some(span_id.to_ascii_lowercase()),
        sampled: flags & 1 == 1,
    })
}

/// `X-Cloud-Trace-Context: TRACE_ID[/SPAN_ID][;o=OPTIONS]`: the trace id is 32 hex digits,
/// the span id is an unsigned 64-bit **decimal** number, converted here to 16 hex digits.
pub fn parse_x_cloud_trace_context(value: &[u8]) -> Option<TraceContext> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (ids, options) = match s.split_once(';') {
        Some((ids, opts)) => (ids, Some(opts)),
        None => (s, None),
    };
    let (trace_id, span) = match ids.split_once('/') {
        Some((t, sp)) => (t, Some(sp)),
        None => (ids, None),
    };
    if !is_hex(trace_id, 32) || is_zero(trace_id) {
        return None;
    }
    let span_id = match span {
        None | Some("") => None,
        Some(d) if d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit()) => {
            match d.parse::<u64>().ok()? {
                0 => None,
                n => {
                    let mut hex = String::with_capacity(16);
                    let _ = write!(hex, "{n:016x}");
                    Some(hex)
                }
            }
        }
        Some(_) => return None,
    };
    let sampled = options.is_some_and(|o| o.trim() == "o=1");
    Some(TraceContext {
        trace_id: trace_id.to_ascii_lowercase(),
        span_id,
        sampled,
    })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn traceparent_gives_hex_trace_and_span() {
        let tc = parse_traceparent(format!("00-{TRACE}-00f067aa0ba902b7-01").as_bytes()).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        assert_eq!(tc.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(tc.sampled);
        let tc = parse_traceparent(format!("00-{TRACE}-00f067aa0ba902b7-00").as_bytes()).unwrap();
        assert!(!tc.sampled);
    }

    #[test]
    fn traceparent_rejects_malformed_values() {
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("ff-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00-{TRACE}-00f067aa0ba902b-01"),
            format!("00-{TRACE}x-00f067aa0ba902b7-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-01-extra"),
            format!("00-{TRACE}-00f067aa0ba902b7"),
            format!("0g-{TRACE}-00f067aa0ba902b7-01"),
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn traceparent_future_versions_may_append_fields() {
        let tc = parse_traceparent(format!("01-{TRACE}-00f067aa0ba902b7-01-what").as_bytes());
        assert!(tc.is_some());
    }

    #[test]
    fn legacy_header_span_is_decimal_and_converted_to_hex() {
        let tc = parse_x_cloud_trace_context(format!("{TRACE}/67667974448284343;o=1").as_bytes())
            .unwrap();
        assert_eq!(tc.trace_id, TRACE);
        // 67667974448284343 = 0x00f067aa0ba902b7
        assert_eq!(tc.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(tc.sampled);
        let tc = parse_x_cloud_trace_context(format!("{TRACE}/18446744073709551615").as_bytes())
            .unwrap();
        assert_eq!(tc.span_id.as_deref(), Some("ffffffffffffffff"));
        assert!(!tc.sampled);
    }

    #[test]
    fn legacy_header_span_is_optional() {
        let tc = parse_x_cloud_trace_context(TRACE.to_uppercase().as_bytes()).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        assert_eq!(tc.span_id, None);
    }

    #[test]
    fn legacy_header_rejects_malformed_values() {
        for bad in [
            "".to_owned(),
            "abc/1".to_owned(),
            format!("{TRACE}/0x1f"),
            format!("{TRACE}/18446744073709551616"),
            format!("{TRACE}/-1"),
            format!("{}/1", "0".repeat(32)),
        ] {
            assert_eq!(parse_x_cloud_trace_context(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn traceparent_wins_over_legacy_header() {
        let legacy = b"11111111111111111111111111111111/1";
        let tp = format!("00-{TRACE}-00f067aa0ba902b7-01");
        let tc = TraceContext::from_headers(Some(tp.as_bytes()), Some(legacy)).unwrap();
        assert_eq!(tc.trace_id, TRACE);
        let tc = TraceContext::from_headers(Some(b"bad"), Some(legacy)).unwrap();
        assert_eq!(tc.trace_id, "11111111111111111111111111111111");
        assert_eq!(tc.span_id.as_deref(), Some("0000000000000001"));
        assert_eq!(
            tc.trace_resource("p"),
            "projects/p/traces/11111111111111111111111111111111"
        );
    }
}
