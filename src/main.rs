//! The process lifecycle, in order: config → telemetry → start-up facts (open files, memory,
//! budget, connection cap) → signal handlers → bind → serve → exit.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use hyper_cloudrun::config::{Config, ServerConfig};
use hyper_cloudrun::http::body::MAX_BODY;
use hyper_cloudrun::http::budget::{self, Budget};
use hyper_cloudrun::routes::State;
use hyper_cloudrun::server::{self, Drain};
use hyper_cloudrun::{cgroup, limits, listener, runtime, shutdown, telemetry};
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
    let (state, server_config) = start_up_facts(&config);

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
        // Before the port is announced: connections made from now on inherit them.
        server::set_socket_options(&listener, server_config.send_timeout);
        let bound = listener.local_addr().map_or(addr, |a| a);
        info!(
            addr = %bound,
            port = bound.port(),
            cpus = cpus.get(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        tokio::select! {
            biased;
            drain = server::serve(listener, &server_config, state, first_signal) => match drain {
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

/// What the process starts with, each logged once before the port opens: the open file limit
/// (raised to the hard limit), the body budget (`BODY_BUDGET` or a quarter of the memory limit)
/// and the connection cap (`MAX_CONNECTIONS`, or derived from the memory and open file limits).
/// Returns the state every handler shares ([`State`]) and the server's configuration with its
/// connection cap set.
fn start_up_facts(config: &Config) -> (State, ServerConfig) {
    let open_files = match limits::raise_open_files() {
        Ok(files) => {
            info!(
                was = files.was,
                soft = files.soft,
                hard = files.hard,
                "open file limit"
            );
            files.soft
        }
        Err(error) => {
            warn!(%error, "cannot read or raise the open file limit");
            limits::ASSUMED_OPEN_FILES
        }
    };
    let memory_limit = cgroup::memory_limit();
    let (bytes, source) = budget::size(config.body_budget, memory_limit, MAX_BODY);
    if source == budget::Source::EnvironmentCapped {
        warn!(
            configured = config.body_budget,
            memory_limit, "BODY_BUDGET is above the memory limit, capped to it"
        );
    }
    info!(bytes, source = source.as_str(), "request body budget");
    let mut server = config.server.clone();
    let (max, source) = limits::max_connections(server.max_connections, memory_limit, open_files);
    info!(max, source = source.as_str(), "connection cap");
    server.max_connections = Some(max);
    let state = State {
        budget: Budget::new(bytes),
        body_read_timeout: config.server.body_read_timeout,
    };
    (state, server)
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
        // An event arrives whole: the timeout never runs out.
        body_read_timeout: config.server.body_read_timeout,
    };
    match rt.block_on(lambda::run(state)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(%error, "lambda runtime failed");
            ExitCode::from(EXIT_STARTUP)
        }
    }
}
