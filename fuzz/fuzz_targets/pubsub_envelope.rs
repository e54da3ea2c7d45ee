//! Any bytes through the Pub/Sub push envelope scanner, with serde_json as the judge of what
//! is JSON: nothing panics, and the scanner calls a body malformed exactly when serde_json
//! cannot read it as one object (or it nests past the scanner's bound). That the right strings
//! are found is `tests/properties.rs`'s part (serde_json keeps the last of repeated members,
//! the scanner the first, so it cannot judge that).
#![no_main]

use hyper_cloudrun::pubsub::{self, MAX_DEPTH, Refused};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn depth(v: &Value) -> u32 {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|body: &[u8]| {
    let ours = pubsub::parse(body);
    let theirs = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v.is_object() && depth(v) <= MAX_DEPTH);
    match (&ours, &theirs) {
        (Err((Refused::NotJson, None)), None) => {}
        (Err((Refused::NotJson, _)), Some(v)) => panic!("refused valid JSON {v}"),
        (_, None) => panic!("accepted what serde_json refuses: {ours:?}"),
        (Ok(envelope), Some(_)) => assert!(!envelope.message_id.is_empty()),
        (Err(_), Some(_)) => {}
    }
});
