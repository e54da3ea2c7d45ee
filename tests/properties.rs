//! Properties of the parsers we wrote, over generated input: configuration values (operator
//! input, read before the port opens), trace headers (client input, read on every request) and
//! the Pub/Sub push envelope (client input on `/events`). Nothing panics; what parses is
//! well-formed; every error names its variable on one line. `fuzz/` drives the same functions
//! with coverage guidance.

use std::collections::HashMap;
use std::time::Duration;

use hyper_cloudrun::config::{self, Config, ConfigError};
use hyper_cloudrun::http::trace::{TraceContext, parse_traceparent, parse_x_cloud_trace_context};
use hyper_cloudrun::pubsub::{self, Envelope, Refused};
use proptest::prelude::*;

/// Strings near the valid ones as well as anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9]{0,6}(s|ms|m|)[ \t\n]{0,2}",
        "[-+0-9 .xms]{0,8}",
        "(trace|debug|info|warn|error|off|TRACE|loud)?(,[a-z_:]{1,12}(=(trace|debug|info|warn|error|off|loud))?){0,3}",
        "[ \t]?(warning|WARNING|Info|degub|verbose|3|hyper-cloudrun|)[ \t]?(,[ ]?[a-z_:-]{0,6}[ ]?=?[ ]?(Debug|warning|loud|)){0,2}",
        "(json|text|JSON|Text|yaml|)",
        "[a-z0-9.:\"-]{0,12}",
        (0u32..140_000).prop_map(|n| n.to_string()),
        (0u128..100_000_000_000_000_000_000).prop_map(|n| n.to_string()),
    ]
}

/// What `PORT` should give, worked out without the parser: a decimal number up to 65535 after
/// trimming, leading zeros allowed; 0 is accepted on purpose (tests bind port 0).
fn port_model(value: &str) -> Option<u16> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = t.trim_start_matches('0');
    if significant.len() > 5 {
        return None;
    }
    let n = significant
        .bytes()
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    u16::try_from(n).ok()
}

/// Whether `RUST_LOG` should parse, worked out without the parser: comma-separated directives,
/// blank ones skipped, at least one; each a level name in any case (`warning` too) or
/// `target=level` with a module-path target, whitespace around each part ignored.
fn log_filter_model(value: &str) -> bool {
    let level = |w: &str| {
        ["off", "error", "warn", "warning", "info", "debug", "trace"]
            .iter()
            .any(|l| w.trim().eq_ignore_ascii_case(l))
    };
    let target = |t: &str| {
        let t = t.trim();
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let directives: Vec<&str> = value.split(',').filter(|d| !d.trim().is_empty()).collect();
    !directives.is_empty()
        && directives.iter().all(|d| match d.split_once('=') {
            None => level(d),
            Some((t, l)) => target(t) && level(l),
        })
}

fn one_line_naming(err: &ConfigError, var: &str) -> Result<(), TestCaseError> {
    let msg = err.to_string();
    prop_assert!(msg.contains(var), "{msg:?} does not name {var}");
    prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
    Ok(())
}

fn well_formed(tc: &TraceContext) -> Result<(), TestCaseError> {
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    prop_assert!(lower_hex(&tc.trace_id, 32), "trace id {:?}", tc.trace_id);
    if let Some(span) = &tc.span_id {
        prop_assert!(lower_hex(span, 16), "span id {span:?}");
    }
    Ok(())
}

fn hex_id(len: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9a-fA-F]{{{len}}}"))
        .unwrap()
        .prop_filter("all-zero ids are invalid", |s| s.bytes().any(|b| b != b'0'))
}

proptest! {
    #[test]
    fn every_port_from_1_to_65535_round_trips(
        port in 1u16..=65535,
        before in "[ \t]{0,2}",
        after in "[ \t\r\n]{0,2}",
    ) {
        prop_assert_eq!(config::parse_port(&format!("{before}{port}{after}")), Ok(port));
    }

    #[test]
    fn anything_else_is_a_port_error_naming_port(s in value()) {
        match config::parse_port(&s) {
            Ok(port) => prop_assert_eq!(Some(port), port_model(&s), "accepted {:?}", s),
            Err(err) => {
                prop_assert_eq!(port_model(&s), None, "refused {:?}", s);
                prop_assert_eq!(&err, &ConfigError::Port(s.clone()));
                one_line_naming(&err, config::ENV_PORT)?;
            }
        }
    }

    #[test]
    fn durations_round_trip_in_seconds_and_milliseconds(n in any::<u64>(), unit in "(|s|ms)") {
        let want = if unit == "ms" { Duration::from_millis(n) } else { Duration::from_secs(n) };
        let got = config::parse_duration(config::ENV_SHUTDOWN_GRACE, &format!(" {n}{unit} "));
        if want <= config::MAX_DURATION {
            prop_assert_eq!(got, Ok(want));
        } else {
            let err = got.unwrap_err();
            one_line_naming(&err, config::ENV_SHUTDOWN_GRACE)?;
            prop_assert!(err.to_string().contains("at most a day"), "{}", err);
        }
    }

    #[test]
    fn a_duration_is_digits_and_a_unit_or_an_error_naming_the_variable(s in value()) {
        let t = s.trim();
        let digits = t.strip_suffix("ms").or_else(|| t.strip_suffix('s')).unwrap_or(t);
        let millis = t.ends_with("ms");
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u64>().is_ok_and(|n| {
                let d = if millis { Duration::from_millis(n) } else { Duration::from_secs(n) };
                d <= config::MAX_DURATION
            });
        match config::parse_duration(config::ENV_HEADER_READ_TIMEOUT, &s) {
            Ok(_) => prop_assert!(well_formed, "accepted {:?}", s),
            Err(err) => {
                prop_assert!(!well_formed, "refused {:?}", s);
                one_line_naming(&err, config::ENV_HEADER_READ_TIMEOUT)?;
            }
        }
    }

    #[test]
    fn a_log_filter_is_levels_and_target_directives_or_an_error_naming_rust_log(s in value()) {
        match config::parse_log_filter(&s) {
            Ok(_) => prop_assert!(log_filter_model(&s), "accepted {:?}", s),
            Err(err) => {
                prop_assert!(!log_filter_model(&s), "refused {:?}", s);
                one_line_naming(&err, config::ENV_LOG_FILTER)?;
            }
        }
    }

    #[test]
    fn log_levels_and_target_directives_parse(
        directives in proptest::collection::vec(
            "[ ]?([a-z_]{1,8}(::[a-z_]{1,8})?[ ]?=[ ]?)?(trace|debug|info|warn|warning|error|off|TRACE|Warning|iNFO)[ ]?",
            1..4,
        ),
    ) {
        let filter = directives.join(",");
        prop_assert!(config::parse_log_filter(&filter).is_ok(), "{:?}", filter);
    }

    #[test]
    fn from_lookup_never_panics_and_keeps_its_bounds(
        vars in proptest::collection::hash_map(proptest::sample::select(&config::ENV_VARS[..]), value(), 0..6),
    ) {
        let env: HashMap<&str, String> = vars;
        match Config::from_lookup(|k| env.get(k).cloned()) {
            Ok(c) => {
                prop_assert!(c.server.shutdown_grace <= config::MAX_SHUTDOWN_GRACE);
                for d in [
                    c.server.header_read_timeout,
                    c.server.keepalive_timeout,
                    c.server.body_read_timeout,
                    c.server.send_timeout,
                ] {
                    prop_assert!(!d.is_zero() && d <= config::MAX_DURATION, "{:?}", d);
                }
                prop_assert!(c.body_budget.is_none_or(|b| b <= config::MAX_BODY_BUDGET));
                let port = env.get(config::ENV_PORT).filter(|v| !v.is_empty());
                prop_assert_eq!(
                    Some(c.port),
                    port.map_or(Some(config::DEFAULT_PORT), |v| port_model(v))
                );
                let project = env.get(config::ENV_GOOGLE_CLOUD_PROJECT).filter(|v| !v.is_empty());
                prop_assert_eq!(c.server.project_id.as_ref(), project);
            }
            Err(err) => {
                let msg = err.to_string();
                prop_assert!(!msg.contains('\n'), "{:?}", msg);
                prop_assert!(
                    config::ENV_VARS.iter().any(|v| msg.starts_with(&format!("invalid {v}="))),
                    "{:?} names no variable", msg
                );
            }
        }
    }

    #[test]
    fn traceparent_built_from_random_ids_parses_back(
        trace in hex_id(32),
        span in hex_id(16),
        flags in any::<u8>(),
    ) {
        let tc = parse_traceparent(format!("00-{trace}-{span}-{flags:02x}").as_bytes());
        prop_assert_eq!(tc, Some(TraceContext {
            trace_id: trace.to_ascii_lowercase(),
            span_id: Some(span.to_ascii_lowercase()),
            sampled: flags & 1 == 1,
        }));
    }

    #[test]
    fn legacy_decimal_span_id_round_trips_to_hex(
        trace in hex_id(32),
        span in 1u64..,
        sampled in any::<bool>(),
    ) {
        let header = format!("{trace}/{span};o={}", u8::from(sampled));
        let tc = parse_x_cloud_trace_context(header.as_bytes()).expect("a valid legacy header");
        prop_assert_eq!(tc.trace_id, trace.to_ascii_lowercase());
        prop_assert_eq!(
            u64::from_str_radix(tc.span_id.as_deref().unwrap(), 16).ok(),
            Some(span)
        );
        prop_assert_eq!(tc.sampled, sampled);
    }

    #[test]
    fn valid_traceparent_wins_over_the_legacy_header(
        trace in hex_id(32),
        span in hex_id(16),
        legacy in hex_id(32),
    ) {
        let tp = format!("00-{trace}-{span}-01");
        let tc = TraceContext::from_headers(Some(tp.as_bytes()), Some(legacy.as_bytes())).unwrap();
        prop_assert_eq!(tc.trace_id, trace.to_ascii_lowercase());
        let tc = TraceContext::from_headers(Some(b"00-bad"), Some(legacy.as_bytes())).unwrap();
        prop_assert_eq!(tc.trace_id, legacy.to_ascii_lowercase());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_parses_is_well_formed(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        if let Some(tc) = parse_traceparent(&bytes) {
            well_formed(&tc)?;
        }
        if let Some(tc) = parse_x_cloud_trace_context(&bytes) {
            well_formed(&tc)?;
        }
    }

    #[test]
    fn one_byte_off_a_valid_header_never_panics_and_stays_well_formed(
        trace in hex_id(32),
        span in 1u64..,
        at in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        for valid in [
            format!("00-{trace}-{span:016x}-01"),
            format!("{trace}/{span};o=1"),
        ] {
            let mut bytes = valid.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            for tc in [parse_traceparent(&bytes), parse_x_cloud_trace_context(&bytes)]
                .into_iter()
                .flatten()
            {
                well_formed(&tc)?;
            }
        }
    }
}

/// A JSON value of bounded depth, written out with random whitespace around its tokens.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| json_str(&s)),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[ {} ]", items.join(" ,\n"))),
            proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}\t: {v}", json_str(k)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// `s` as a JSON string literal (RFC 8259 §7): quote, backslash and control characters
/// escaped, the rest as it is.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

proptest! {
    #[test]
    fn a_push_envelope_gives_back_its_message_id_and_subscription(
        id in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        subscription in any::<String>(),
        extra in proptest::collection::vec(("[a-zA-Z_]{1,12}", json_value()), 0..4),
        id_name in prop_oneof![Just("messageId"), Just("message_id")],
        message_first in any::<bool>(),
    ) {
        // Extra members at both levels, never named like the ones read.
        let extra: Vec<String> = extra
            .iter()
            .filter(|(k, _)| !["message", "messageId", "message_id", "subscription"].contains(&k.as_str()))
            .map(|(k, v)| format!("{}: {v}", json_str(k)))
            .collect();
        let mut message = extra.clone();
        message.push(format!("{}:{}", json_str(id_name), json_str(&id)));
        let message = format!("\"message\": {{ {} }}", message.join(" , "));
        let subscription_member = format!("\"subscription\":{}", json_str(&subscription));
        let mut members = extra;
        if message_first {
            members.extend([message, subscription_member]);
        } else {
            members.extend([subscription_member, message]);
        }
        let body = format!(" {{{}}}\r\n", members.join(",\n "));
        prop_assert_eq!(
            pubsub::parse(body.as_bytes()),
            Ok(Envelope { message_id: id, subscription }),
            "{}", body
        );
        // Cut anywhere before its closing brace, the document is no longer JSON.
        let end = body.trim_end().len() - 1;
        let cut = end / 2;
        prop_assert_eq!(pubsub::parse(&body.as_bytes()[..cut]), Err((Refused::NotJson, None)));
    }

    #[test]
    fn the_envelope_scanner_never_panics_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        json in json_value(),
    ) {
        let _ = pubsub::parse(&bytes);
        // Well-formed JSON that is not an envelope is said to be so, not to be malformed.
        let got = pubsub::parse(json.as_bytes());
        prop_assert!(
            !matches!(got, Err((Refused::NotJson, _))) || !json.trim_start().starts_with('{'),
            "{:?}: {}", got, json
        );
    }
}
