//! Client-controlled `traceparent` and `X-Cloud-Trace-Context` bytes: nothing panics, what parses
//! is well-formed (lowercase hex ids of the right length, never all zero), and a valid
//! `traceparent` wins over the legacy header.
#![no_main]

use hyper_cloudrun::http::trace::{TraceContext, parse_traceparent, parse_x_cloud_trace_context};
use libfuzzer_sys::fuzz_target;

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

fn assert_well_formed(tc: &TraceContext) {
    assert!(lower_hex(&tc.trace_id, 32), "{tc:?}");
    if let Some(span) = &tc.span_id {
        assert!(lower_hex(span, 16), "{tc:?}");
    }
}

fuzz_target!(|headers: (&[u8], &[u8])| {
    let (traceparent, legacy) = headers;
    let tp = parse_traceparent(traceparent);
    let xc = parse_x_cloud_trace_context(legacy);
    for tc in [&tp, &xc].into_iter().flatten() {
        assert_well_formed(tc);
    }
    if let Some(tc) = &tp {
        assert!(
            tc.span_id.is_some(),
            "traceparent always carries a parent id"
        );
    }
    let picked = TraceContext::from_headers(Some(traceparent), Some(legacy));
    assert_eq!(picked, tp.or(xc));
});
