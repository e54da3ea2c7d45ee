//! The process lifecycle, in order: config → telemetry → signal handlers → bind → serve → exit.

use std::process::ExitCode;

use hyper_cloudrun::config::{self, Config};
use hyper_cloudrun::server::{self, Drain};
use hyper_cloudrun::{listener, runtime, shutdown, telemetry};
use tracing::{error, info};

/// Bad configuration (BSD sysexits `EX_USAGE`): Cloud Run shows it as a failed start, not a
/// crash loop of panics.
const EXIT_CONFIG: u8 = 64;
/// The port could not be bound or the runtime not started (`EX_OSERR`).
const EXIT_STARTUP: u8 = 71;
/// The shutdown grace ran out and connections were cut.
const EXIT_DRAIN_CUT: u8 = 75;

fn main() -> ExitCode {
    // Config comes first so that a bad LOG_FORMAT or RUST_LOG is reported too; its error is
    // one plain line on stderr, which Cloud Run logs as-is.
    let config = match Config::from_lookup(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", env!("CARGO_PKG_NAME"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Validated by `from_lookup`, so this cannot fail.
    let filter = config::parse_log_filter(&config.log_filter).unwrap_or_default();
    telemetry::init(config.log_format, filter);

    let cpus = runtime::available_cpus();
    let rt = match runtime::build(cpus) {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    rt.block_on(async {
        let signals = match shutdown::signals() {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot install signal handlers");
                return ExitCode::from(EXIT_STARTUP);
            }
        };
        let addr = config.listen_addr();
        let listener = match listener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                error!(%addr, error = %e, "cannot bind");
                return ExitCode::from(EXIT_STARTUP);
            }
        };
        let bound = listener.local_addr().map_or(addr, |a| a);
        info!(
            addr = %bound,
            port = bound.port(),
            cpus = cpus.get(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        match server::serve(listener, &config.server, signals).await {
            Drain::Complete { .. } => ExitCode::SUCCESS,
            Drain::Cut { .. } => ExitCode::from(EXIT_DRAIN_CUT),
        }
    })
}
