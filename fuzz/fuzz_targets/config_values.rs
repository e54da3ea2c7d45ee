//! One configuration value through every parser of a single variable: nothing panics, an
//! accepted `PORT` is the number written, and every error names its variable on one line.
#![no_main]

use hyper_cloudrun::config::{self, ConfigError};
use libfuzzer_sys::fuzz_target;

fn one_line_naming(err: &ConfigError, var: &str) {
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("invalid {var}=")), "{msg:?}");
    assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
}

fuzz_target!(|value: &str| {
    match config::parse_port(value) {
        Ok(port) => {
            let digits = value.trim().trim_start_matches('0');
            let written = if port == 0 {
                String::new()
            } else {
                port.to_string()
            };
            assert_eq!(digits, written, "{value:?}");
        }
        Err(err) => one_line_naming(&err, config::ENV_PORT),
    }
    for var in [config::ENV_SHUTDOWN_GRACE, config::ENV_HEADER_READ_TIMEOUT] {
        // Every accepted duration is at most a day: nothing can overflow a clock reading.
        match config::parse_duration(var, value) {
            Ok(d) => {
                let t = value.trim();
                let (digits, unit_ms) = match t.strip_suffix("ms") {
                    Some(d) => (d, true),
                    None => (t.strip_suffix('s').unwrap_or(t), false),
                };
                let n: u64 = digits.parse().expect("accepted duration has a u64 count");
                let want = if unit_ms {
                    std::time::Duration::from_millis(n)
                } else {
                    std::time::Duration::from_secs(n)
                };
                assert_eq!(d, want, "{value:?}");
                assert!(d <= config::MAX_DURATION, "{value:?}");
            }
            Err(err) => one_line_naming(&err, var),
        }
    }
    if let Err(err) = config::parse_log_filter(value) {
        one_line_naming(&err, config::ENV_LOG_FILTER);
    }
    match config::parse_host(value) {
        Ok(ip) => assert_eq!(value.trim().parse::<std::net::IpAddr>().ok(), Some(ip)),
        Err(err) => one_line_naming(&err, config::ENV_HOST),
    }
    match config::parse_budget(value) {
        Ok(bytes) => assert!(bytes <= config::MAX_BODY_BUDGET, "{value:?}"),
        Err(err) => one_line_naming(&err, config::ENV_BODY_BUDGET),
    }
    match config::parse_max_connections(value) {
        Ok(n) => assert!((1..=config::MAX_MAX_CONNECTIONS).contains(&n), "{value:?}"),
        Err(err) => one_line_naming(&err, config::ENV_MAX_CONNECTIONS),
    }
});
