//! The process lifecycle, in order: config → telemetry → signal handlers → bind → state → serve
//! → exit.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use hyper_cloudrun::config::Config;
use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::http::budget::{self, Budget};
use hyper_cloudrun::routes::State;
use hyper_cloudrun::server::{self, Drain};
use hyper_cloudrun::{listener, runtime, shutdown, telemetry};
use tracing::{Level, error, info, warn};

/// Bad configuration (BSD sysexits `EX_USAGE`): Cloud Run shows it as a failed start, not a
/// crash loop of panics.
const EXIT_CONFIG: u8 = 64;
/// The port could not be bound or the runtime not started (`EX_OSERR`).
const EXIT_STARTUP: u8 = 71;
/// The shutdown grace ran out, or a second signal came, and connections were cut.
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
    #[cfg(feature = "lambda")]
    if hyper_cloudrun::lambda::is_lambda(|name| std::env::var(name).ok()) {
        return serve_lambda(&config);
    }
    telemetry::init(config.log_format, config.log_filter.clone());

    let cpus = runtime::available_cpus();
    let rt = match runtime::build(cpus) {
        Ok(rt) => rt,
        Err(e) => return startup_failed("cannot start the async runtime", None, &e),
    };
    rt.block_on(async {
        let (first_signal, second_signal) = match shutdown::signals() {
            Ok(s) => s,
            Err(e) => return startup_failed("cannot install signal handlers", None, &e),
        };
        let addr = config.listen_addr();
        let listener = match listener::bind(addr) {
            Ok(l) => l,
            Err(e) => return startup_failed("cannot bind", Some(addr), &e),
        };
        let bound = listener.local_addr().map_or(addr, |a| a);
        info!(
            addr = %bound,
            port = bound.port(),
            cpus = cpus.get(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        let state = state(&config);
        tokio::select! {
            biased;
            drain = server::serve(listener, &config.server, state, first_signal) => match drain {
                Drain::Complete { .. } => ExitCode::SUCCESS,
                Drain::Cut { .. } => ExitCode::from(EXIT_DRAIN_CUT),
            },
            // Whoever sends a second SIGTERM or Ctrl-C wants the process gone now, not after
            // the grace. Returning drops the runtime, which closes every connection.
            signal = second_signal => {
                warn!(signal, "second signal, cutting connections without waiting for the drain");
                ExitCode::from(EXIT_DRAIN_CUT)
            }
        }
    })
}

/// What every handler shares ([`State`]): here the body budget, `BODY_BUDGET` or a quarter of
/// the container's memory limit, logged once.
fn state(config: &Config) -> State {
    let (bytes, source) = match config.body_budget {
        Some(bytes) => (bytes, budget::Source::Environment),
        None => budget::from_memory_limit(MAX_BODY),
    };
    info!(bytes, source = source.as_str(), "request body budget");
    State {
        budget: Budget::new(bytes),
    }
}

/// Reports a start-up failure once: as an `ERROR` line when the log filter lets one through,
/// otherwise as one plain line on stderr like a configuration error. Under `RUST_LOG=off` it
/// would else be a silent exit 71, and a revision that fails to start shows on Cloud Run as
/// nothing but the container's own output.
fn startup_failed(what: &'static str, addr: Option<SocketAddr>, error: &io::Error) -> ExitCode {
    if tracing::enabled!(Level::ERROR) {
        error!(addr = addr.map(tracing::field::display), %error, "{what}");
    } else {
        match addr {
            Some(addr) => eprintln!("{}: {what} {addr}: {error}", env!("CARGO_PKG_NAME")),
            None => eprintln!("{}: {what}: {error}", env!("CARGO_PKG_NAME")),
        }
    }
    ExitCode::from(EXIT_STARTUP)
}

/// Lambda's lifecycle (the `lambda` feature, with `AWS_LAMBDA_RUNTIME_API` set): Lambda's
/// settings → telemetry → runtime → invocations. No port and no signal handlers: Lambda sends
/// no SIGTERM to a function without extensions, it freezes and ends the environment
/// (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html>). A
/// configuration error exits 64 before the first invocation, which Lambda reports as an init
/// error with this line in the function's log.
#[cfg(feature = "lambda")]
fn serve_lambda(config: &Config) -> ExitCode {
    use hyper_cloudrun::lambda::{self, Settings};
    let settings = match Settings::from_lookup(config, |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{}: {e}", env!("CARGO_PKG_NAME"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(settings.log_format, settings.log_filter.clone());
    let rt = match lambda::runtime() {
        Ok(rt) => rt,
        Err(e) => return startup_failed("cannot start the async runtime", None, &e),
    };
    info!(
        body_budget = settings.body_budget,
        version = env!("CARGO_PKG_VERSION"),
        "serving lambda invocations"
    );
    let state = State {
        budget: Budget::new(settings.body_budget),
    };
    match rt.block_on(lambda::run(state)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(%error, "lambda runtime failed");
            ExitCode::from(EXIT_STARTUP)
        }
    }
}
