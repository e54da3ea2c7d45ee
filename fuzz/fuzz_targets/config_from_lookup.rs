//! A whole environment through `Config::from_lookup`: nothing panics, an accepted config keeps
//! its bounds, and an error is one line naming one variable.
#![no_main]

use hyper_cloudrun::config::{self, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|values: [Option<String>; config::ENV_VARS.len()]| {
    let lookup = |name: &str| {
        let i = config::ENV_VARS.iter().position(|v| *v == name)?;
        values[i].clone()
    };
    match Config::from_lookup(lookup) {
        Ok(c) => {
            assert!(c.server.shutdown_grace <= config::MAX_SHUTDOWN_GRACE);
            for d in [
                c.server.header_read_timeout,
                c.server.keepalive_timeout,
                c.server.body_read_timeout,
                c.server.send_timeout,
            ] {
                assert!(!d.is_zero() && d <= config::MAX_DURATION, "{d:?}");
            }
            assert!(c.body_budget.is_none_or(|b| b <= config::MAX_BODY_BUDGET));
            let project = lookup(config::ENV_GOOGLE_CLOUD_PROJECT).filter(|v| !v.is_empty());
            assert_eq!(c.server.project_id, project);
        }
        Err(err) => {
            let msg = err.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
            assert!(
                config::ENV_VARS
                    .iter()
                    .any(|v| msg.starts_with(&format!("invalid {v}="))),
                "{msg:?}"
            );
        }
    }
});
