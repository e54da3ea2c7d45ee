//! Configuration from the environment, validated before the port opens.
//!
//! Cloud Run injects `PORT` and expects the container to listen on `0.0.0.0:$PORT`
//! (<https://cloud.google.com/run/docs/container-contract>). Everything else has a default that
//! suits Cloud Run. The parser takes a lookup function, so tests feed a map and never touch the
//! process environment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;

use crate::http::body::MAX_BODY;
use crate::telemetry::{LogFilter, LogFormat};

/// Port to listen on; set by Cloud Run.
pub const ENV_PORT: &str = "PORT";
/// Address to listen on: `0.0.0.0` unless set (`127.0.0.1` for local development).
pub const ENV_HOST: &str = "HOST";
/// Log filter: a level (`info`) or `target=level` directives (`info,hyper_cloudrun=debug`).
/// Anything else is refused (see [`parse_log_filter`]).
pub const ENV_LOG_FILTER: &str = "RUST_LOG";
/// `json` (one Cloud Logging object per line) or `text` (for people).
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
/// How long in-flight requests may take to finish after SIGTERM.
pub const ENV_SHUTDOWN_GRACE: &str = "SHUTDOWN_GRACE";
/// How long a client may take to send its request headers.
pub const ENV_HEADER_READ_TIMEOUT: &str = "HEADER_READ_TIMEOUT";
/// How long a connection may idle between requests.
pub const ENV_KEEPALIVE_TIMEOUT: &str = "KEEPALIVE_TIMEOUT";
/// How long a request body may send nothing before it is answered `408`.
pub const ENV_BODY_READ_TIMEOUT: &str = "BODY_READ_TIMEOUT";
/// How long a response may make no progress towards a client that does not read it.
pub const ENV_SEND_TIMEOUT: &str = "SEND_TIMEOUT";
/// Bytes that request bodies may hold in memory, across all connections.
pub const ENV_BODY_BUDGET: &str = "BODY_BUDGET";
/// Connections open at once; past it the oldest idle ones are closed.
pub const ENV_MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
/// Google Cloud project id; enables trace correlation in logs.
pub const ENV_GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// Every variable [`Config::from_lookup`] reads (the property tests and fuzz targets set them all).
pub const ENV_VARS: [&str; 12] = [
    ENV_PORT,
    ENV_HOST,
    ENV_LOG_FILTER,
    ENV_LOG_FORMAT,
    ENV_SHUTDOWN_GRACE,
    ENV_HEADER_READ_TIMEOUT,
    ENV_KEEPALIVE_TIMEOUT,
    ENV_BODY_READ_TIMEOUT,
    ENV_SEND_TIMEOUT,
    ENV_BODY_BUDGET,
    ENV_MAX_CONNECTIONS,
    ENV_GOOGLE_CLOUD_PROJECT,
];

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_LOG_FILTER: &str = "info";
/// Cloud Run sends SIGKILL 10 s after SIGTERM; 8 s leaves time to log and exit.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any front end keeps an idle pooled connection, so the front end always closes
/// first and never sends a request into our close: Google Cloud's load balancers keep idle
/// backend connections up to 600 s
/// (<https://cloud.google.com/load-balancing/docs/https#timeouts_and_retries>).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(620);
/// Cloud Run sends SIGKILL 10 s after SIGTERM
/// (<https://cloud.google.com/run/docs/container-contract#lifecycle>). A grace of the full 10 s
/// would race it: the cut, its log line and the exit status would be lost to the SIGKILL. One
/// second is left for them, CPU-throttled instance included.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(9);
/// Half of nginx's `client_body_timeout` and `send_timeout` (60 s between two reads, or two
/// writes: <https://nginx.org/en/docs/http/ngx_http_core_module.html#client_body_timeout>),
/// and below `service.yaml`'s 60 s request timeout, so a stalled client gets this service's
/// `408` (and gives its memory back) before Cloud Run answers `504` for it. A client on a poor
/// mobile link pauses for seconds, not for half a minute.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`DEFAULT_BODY_READ_TIMEOUT`]: the same bound, for the other direction.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest any duration setting may be. A day is far past every sensible value, and far
/// below where adding it to a clock reading could overflow (`Instant + Duration` panics on
/// overflow; tokio's `sleep` caps its own delays at 30 years).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest `BODY_BUDGET` taken: more memory than Cloud Run gives an instance (32 GiB,
/// <https://cloud.google.com/run/docs/configuring/services/memory-limits>) many times over. A
/// budget past the container's memory limit is capped to it at start-up (see `budget`).
pub const MAX_BODY_BUDGET: usize = 1 << 40;
/// The largest `MAX_CONNECTIONS` taken: each connection needs a file descriptor, and Linux
/// caps a process's descriptors at `fs.nr_open`, 1,048,576 unless raised.
pub const MAX_MAX_CONNECTIONS: usize = 1 << 20;

/// Everything the process needs, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// `HOST`, else `0.0.0.0`.
    pub host: IpAddr,
    /// `RUST_LOG`, parsed ([`parse_log_filter`]).
    pub log_filter: LogFilter,
    pub log_format: LogFormat,
    /// `BODY_BUDGET`; `None`: derived from the container's memory limit at start-up
    /// (see [`crate::http::budget`]).
    pub body_budget: Option<usize>,
    pub server: ServerConfig,
}

/// What the server itself needs; tests build this directly.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// How long a request body may send nothing before it is answered `408`.
    pub body_read_timeout: Duration,
    /// How long an answer may find the client not reading before its connection (or h2c
    /// stream) is dropped.
    pub send_timeout: Duration,
    /// `None`: derived from the memory and descriptor limits at start-up.
    pub max_connections: Option<usize>,
    /// Set when `GOOGLE_CLOUD_PROJECT` is: trace headers then turn into log fields.
    pub project_id: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_connections: None,
            project_id: None,
        }
    }
}

/// A configuration error: names the variable and the value, in lowercase, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Port(String),
    Host(String),
    LogFilter(String, String),
    LogFormat(String),
    Duration {
        var: &'static str,
        value: String,
        why: &'static str,
    },
    Size(String),
    Count(String),
    ProjectId(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Port(v) => write!(
                f,
                "invalid {ENV_PORT}={v:?}: expected a port number from 1 to 65535"
            ),
            Self::Host(v) => write!(
                f,
                "invalid {ENV_HOST}={v:?}: expected an IP address to listen on, e.g. \"0.0.0.0\" or \"127.0.0.1\""
            ),
            Self::LogFilter(v, why) => write!(f, "invalid {ENV_LOG_FILTER}={v:?}: {why}"),
            Self::LogFormat(v) => write!(
                f,
                "invalid {ENV_LOG_FORMAT}={v:?}: expected \"json\" or \"text\""
            ),
            Self::Duration { var, value, why } => write!(f, "invalid {var}={value:?}: {why}"),
            Self::Size(v) => write!(
                f,
                "invalid {ENV_BODY_BUDGET}={v:?}: expected a whole number of bytes, KiB, MiB or GiB, \
                 from 1MiB (the largest /echo body) to 1024GiB, e.g. \"64MiB\""
            ),
            Self::Count(v) => write!(
                f,
                "invalid {ENV_MAX_CONNECTIONS}={v:?}: expected a whole number from 1 to {MAX_MAX_CONNECTIONS}"
            ),
            Self::ProjectId(v) => write!(
                f,
                "invalid {ENV_GOOGLE_CLOUD_PROJECT}={v:?}: expected a project id (letters, digits, '-', '.', ':')"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses the configuration through `lookup` (production passes `std::env::var`).
    /// An empty variable counts as unset, as in most container tooling.
    pub fn from_lookup<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());

        let port = match get(ENV_PORT) {
            None => DEFAULT_PORT,
            Some(v) => parse_port(&v)?,
        };
        let host = match get(ENV_HOST) {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => parse_host(&v)?,
        };
        let log_filter =
            parse_log_filter(get(ENV_LOG_FILTER).as_deref().unwrap_or(DEFAULT_LOG_FILTER))?;
        let log_format = match get(ENV_LOG_FORMAT) {
            None => LogFormat::Json,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => return Err(ConfigError::LogFormat(v)),
            },
        };
        let shutdown_grace = match get(ENV_SHUTDOWN_GRACE) {
            None => DEFAULT_SHUTDOWN_GRACE,
            Some(v) => {
                let d = parse_duration(ENV_SHUTDOWN_GRACE, &v)?;
                if d > MAX_SHUTDOWN_GRACE {
                    return Err(ConfigError::Duration {
                        var: ENV_SHUTDOWN_GRACE,
                        value: v,
                        why: "must be at most 9s, to cut and exit before Cloud Run's SIGKILL 10 s after SIGTERM",
                    });
                }
                d
            }
        };
        let timeout = |var, default| positive_duration(var, get(var), default);
        let header_read_timeout = timeout(ENV_HEADER_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT)?;
        let keepalive_timeout = timeout(ENV_KEEPALIVE_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT)?;
        let body_read_timeout = timeout(ENV_BODY_READ_TIMEOUT, DEFAULT_BODY_READ_TIMEOUT)?;
        let send_timeout = timeout(ENV_SEND_TIMEOUT, DEFAULT_SEND_TIMEOUT)?;
        let body_budget = get(ENV_BODY_BUDGET).map(|v| parse_budget(&v)).transpose()?;
        let max_connections = get(ENV_MAX_CONNECTIONS)
            .map(|v| parse_max_connections(&v))
            .transpose()?;
        let project_id = match get(ENV_GOOGLE_CLOUD_PROJECT) {
            None => None,
            Some(v) if is_project_id(&v) => Some(v),
            Some(v) => return Err(ConfigError::ProjectId(v)),
        };

        Ok(Self {
            port,
            host,
            log_filter,
            log_format,
            body_budget,
            server: ServerConfig {
                shutdown_grace,
                header_read_timeout,
                keepalive_timeout,
                body_read_timeout,
                send_timeout,
                max_connections,
                project_id,
            },
        })
    }

    /// `0.0.0.0:$PORT` unless `HOST` says otherwise: Cloud Run's proxy reaches the container
    /// from outside its loopback, so binding 127.0.0.1 there would answer nothing (the 502 in
    /// the article's pitfalls); on a laptop it keeps the port off the network.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((self.host, self.port))
    }
}

/// `HOST`: an IPv4 or IPv6 address, as `bind` takes it (`0.0.0.0`, `127.0.0.1`, `::`, `::1`).
/// Names are refused: resolving `localhost` could bind an address the operator did not mean.
pub fn parse_host(value: &str) -> Result<IpAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::Host(value.to_owned()))
}

/// `PORT`: decimal 1–65535, surrounding whitespace tolerated. `0` is accepted too: it asks the
/// kernel for a free port, which tests use; Cloud Run never sends it.
pub fn parse_port(value: &str) -> Result<u16, ConfigError> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Port(value.to_owned()));
    }
    t.parse::<u16>()
        .map_err(|_| ConfigError::Port(value.to_owned()))
}

/// Parses a `RUST_LOG` value: comma-separated directives, each a level (`info`) or
/// `target=level` (`hyper_cloudrun=debug`); the last one for a target wins.
///
/// Stricter than tracing-subscriber's own `Targets` syntax, which takes any bare word that is
/// not a level as a target to log at `trace`: `RUST_LOG=warning` (Cloud Logging's name for the
/// level), `degub` or `verbose` then enable a target that does not exist and every log line,
/// start-up failures included, is silently dropped. Here a bare word must be a level, so a typo
/// is refused before the port opens. Levels are matched in any case, and `warning` means `warn`.
///
/// Whitespace around the value, a directive, a target or a level is ignored: none of them can
/// contain any (targets are Rust module paths), so it can only come from quoting (`'info '`,
/// a YAML `"info, h2=warn"`), and refusing it would send the operator hunting for an invisible
/// character. `PORT` and the durations are trimmed the same way.
pub fn parse_log_filter(value: &str) -> Result<LogFilter, ConfigError> {
    let bad = |why: String| ConfigError::LogFilter(value.to_owned(), why);
    let mut filter = LogFilter::default();
    let mut directives = 0;
    for directive in value.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        directives += 1;
        match directive.split_once('=') {
            None => match parse_level(directive) {
                Some(level) => filter.set_default(level),
                None => {
                    return Err(bad(format!(
                        "{directive:?} is neither a level ({LEVEL_NAMES}) nor target=level, e.g. \"warn,hyper_cloudrun=debug\""
                    )));
                }
            },
            Some((target, level)) => {
                let (target, level) = (target.trim(), level.trim());
                if !is_target(target) {
                    return Err(bad(format!(
                        "target {target:?} is not a module path, e.g. hyper_cloudrun or h2::codec"
                    )));
                }
                match parse_level(level) {
                    Some(level) => filter.set(target, level),
                    None => {
                        return Err(bad(format!("{level:?} is not a level ({LEVEL_NAMES})")));
                    }
                }
            }
        }
    }
    if directives == 0 {
        return Err(bad(
            "no directive, e.g. \"info\" or \"warn,hyper_cloudrun=debug\"".to_owned(),
        ));
    }
    Ok(filter)
}

/// The level names [`parse_level`] takes, for error messages (`warning` too, unlisted).
const LEVEL_NAMES: &str = "off, error, warn, info, debug, trace";

/// A level name in any case; `warning` is Cloud Logging's name for `warn`
/// (<https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#LogSeverity>).
/// tracing's numeric levels (`3`) are not taken: nobody means a number by a log level.
fn parse_level(word: &str) -> Option<LevelFilter> {
    const LEVELS: [(&str, LevelFilter); 7] = [
        ("off", LevelFilter::OFF),
        ("error", LevelFilter::ERROR),
        ("warn", LevelFilter::WARN),
        ("warning", LevelFilter::WARN),
        ("info", LevelFilter::INFO),
        ("debug", LevelFilter::DEBUG),
        ("trace", LevelFilter::TRACE),
    ];
    LEVELS
        .iter()
        .find(|(name, _)| word.eq_ignore_ascii_case(name))
        .map(|&(_, level)| level)
}

/// A log target as tracing writes it by default, `module_path!()`: letters, digits, `_` and
/// `::`. Every event of this binary and its dependencies has one, so a target with any other
/// character (`hyper-cloudrun`, the package name instead of the crate's) could never match.
fn is_target(target: &str) -> bool {
    !target.is_empty()
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':'))
}

/// A duration: a whole number with a unit `ms` or `s`, or a bare number of seconds
/// (`8`, `8s`, `500ms`), at most [`MAX_DURATION`].
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = |why| ConfigError::Duration {
        var,
        value: value.to_owned(),
        why,
    };
    let t = value.trim();
    let (digits, millis) = if let Some(d) = t.strip_suffix("ms") {
        (d, true)
    } else if let Some(d) = t.strip_suffix('s') {
        (d, false)
    } else {
        (t, false)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "expected a whole number of seconds or milliseconds, e.g. \"8s\" or \"500ms\"",
        ));
    }
    let too_long = "must be at most a day (86400s)";
    let n: u64 = digits.parse().map_err(|_| bad(too_long))?;
    let d = if millis {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    };
    if d > MAX_DURATION {
        return Err(bad(too_long));
    }
    Ok(d)
}

/// `BODY_BUDGET`: a whole number of bytes, optionally with `KiB`, `MiB` or `GiB` (`64MiB`),
/// at least the largest `/echo` body, so that one can always be taken, and at most
/// [`MAX_BODY_BUDGET`] (a larger figure is a typo, or an attempt to switch the budget off).
pub fn parse_budget(value: &str) -> Result<usize, ConfigError> {
    let bad = || ConfigError::Size(value.to_owned());
    let t = value.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let unit: usize = match unit.trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let bytes = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(bad)?;
    if !(MAX_BODY..=MAX_BODY_BUDGET).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes)
}

/// `MAX_CONNECTIONS`: a whole number from 1 to [`MAX_MAX_CONNECTIONS`].
pub fn parse_max_connections(value: &str) -> Result<usize, ConfigError> {
    let t = value.trim();
    t.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| t.parse::<usize>().ok())
        .flatten()
        .filter(|n| (1..=MAX_MAX_CONNECTIONS).contains(n))
        .ok_or_else(|| ConfigError::Count(value.to_owned()))
}

/// A duration above zero, or `default` when unset.
fn positive_duration(
    var: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = value else {
        return Ok(default);
    };
    let d = parse_duration(var, &v)?;
    if d.is_zero() {
        return Err(ConfigError::Duration {
            var,
            value: v,
            why: "must be greater than zero",
        });
    }
    Ok(d)
}

/// Project ids are 6–30 lowercase letters, digits and hyphens; legacy domain-scoped ids add
/// `.` and `:`. Checked loosely, only so that nothing odd ends up inside a log field.
fn is_project_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 100
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn env_vars_lists_exactly_what_from_lookup_reads() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|k| {
            asked.borrow_mut().push(k.to_owned());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner();
        asked.sort();
        let mut listed = ENV_VARS.map(str::to_owned).to_vec();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn defaults_suit_cloud_run() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.listen_addr().to_string(), "0.0.0.0:8080");
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.server.send_timeout, Duration::from_secs(30));
        assert_eq!(c.server.max_connections, None);
        assert_eq!(c.log_filter, parse_log_filter("info").unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(8));
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(620));
        assert_eq!(c.server.project_id, None);
    }

    #[test]
    fn port_is_read_from_the_environment() {
        assert_eq!(parse(&[("PORT", "9090")]).unwrap().port, 9090);
        assert_eq!(parse(&[("PORT", " 65535 ")]).unwrap().port, 65535);
        assert_eq!(parse(&[("PORT", "0")]).unwrap().port, 0);
    }

    #[test]
    fn host_takes_an_ip_address_for_local_development() {
        for (v, addr) in [
            ("127.0.0.1", "127.0.0.1:8080"),
            (" 0.0.0.0 ", "0.0.0.0:8080"),
            ("::1", "[::1]:8080"),
            ("::", "[::]:8080"),
            ("", "0.0.0.0:8080"),
        ] {
            assert_eq!(
                parse(&[("HOST", v)]).unwrap().listen_addr().to_string(),
                addr
            );
        }
        for bad in ["localhost", "127.0.0.1:8080", "256.0.0.1", "[::1]", "0"] {
            let err = parse(&[("HOST", bad)]).unwrap_err();
            assert_eq!(err, ConfigError::Host(bad.to_owned()));
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid HOST={bad:?}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_port_falls_back_to_default() {
        assert_eq!(parse(&[("PORT", "")]).unwrap().port, 8080);
    }

    #[test]
    fn bad_port_names_the_variable_and_the_value() {
        for bad in [
            "eighty",
            "65536",
            "-1",
            "+80",
            "80.0",
            "8080x",
            "99999999999999999999",
        ] {
            let err = parse(&[("PORT", bad)]).unwrap_err();
            assert_eq!(err, ConfigError::Port(bad.to_owned()));
            let msg = err.to_string();
            assert!(msg.contains("PORT") && msg.contains(bad), "{msg}");
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn log_format_accepts_json_and_text_only() {
        assert_eq!(
            parse(&[("LOG_FORMAT", "TEXT")]).unwrap().log_format,
            LogFormat::Text
        );
        assert_eq!(
            parse(&[("LOG_FORMAT", "json")]).unwrap().log_format,
            LogFormat::Json
        );
        let err = parse(&[("LOG_FORMAT", "yaml")]).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT=\"yaml\""));
    }

    #[test]
    fn log_filter_takes_levels_and_targets() {
        for ok in [
            "debug",
            "warn,hyper_cloudrun=debug",
            "hyper_cloudrun::server=trace",
        ] {
            let c = parse(&[("RUST_LOG", ok)]).unwrap();
            assert_eq!(c.log_filter, parse_log_filter(ok).unwrap());
        }
        let err = parse(&[("RUST_LOG", "info,hyper=loud")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid RUST_LOG=\"info,hyper=loud\""),
            "{err}"
        );
    }

    #[test]
    fn log_levels_are_taken_in_any_case_and_warning_means_warn() {
        use tracing::Level;
        // (value, enabled for this crate, the next level down, which must be off)
        for (value, on, below) in [
            ("warning", Level::WARN, Level::INFO),
            ("WARNING", Level::WARN, Level::INFO),
            ("Warn", Level::WARN, Level::INFO),
            ("INFO", Level::INFO, Level::DEBUG),
            ("info ", Level::INFO, Level::DEBUG),
            ("\tdebug\n", Level::DEBUG, Level::TRACE),
            (" error , h2 = Warning ", Level::ERROR, Level::WARN),
            ("info,hyper_cloudrun=debug", Level::DEBUG, Level::TRACE),
        ] {
            let c = parse(&[("RUST_LOG", value)]).unwrap();
            let filter = c.log_filter;
            assert!(filter.would_enable("hyper_cloudrun", &on), "{value:?}");
            assert!(!filter.would_enable("hyper_cloudrun", &below), "{value:?}");
        }
        let filter = parse_log_filter("error, h2 = Warning").unwrap();
        assert!(filter.would_enable("h2::codec", &Level::WARN));
        assert!(!filter.would_enable("h2::codec", &Level::INFO));
        let off = parse_log_filter("OFF").unwrap();
        assert!(!off.would_enable("hyper_cloudrun", &Level::ERROR));
    }

    #[test]
    fn a_word_that_is_not_a_level_is_refused_not_taken_for_a_target() {
        for bad in [
            "degub",
            "verbose",
            "warnings",
            "3",
            "hyper_cloudrun",
            "info,degub",
            "info,hyper=loud",
            "hyper=",
            "=debug",
            "hyper-cloudrun=debug",
            "a=b=c",
            " ",
            ",",
        ] {
            let err = parse(&[("RUST_LOG", bad)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::LogFilter(v, _) if v == bad),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid RUST_LOG={bad:?}: ")),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
        }
        let msg = parse(&[("RUST_LOG", "degub")]).unwrap_err().to_string();
        assert!(msg.contains("is neither a level"), "{msg}");
        let msg = parse(&[("RUST_LOG", "info,x=\u{1b}[2J")])
            .unwrap_err()
            .to_string();
        assert!(!msg.contains('\u{1b}'), "{msg}");
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        let c = parse(&[("SHUTDOWN_GRACE", "3"), ("HEADER_READ_TIMEOUT", "250ms")]).unwrap();
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(3));
        assert_eq!(c.server.header_read_timeout, Duration::from_millis(250));
        let c = parse(&[("SHUTDOWN_GRACE", "0s")]).unwrap();
        assert_eq!(c.server.shutdown_grace, Duration::ZERO);
        let c = parse(&[("KEEPALIVE_TIMEOUT", "90s")]).unwrap();
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for bad in ["soon", "1.5s", "-1s", "s", "ms", "10m"] {
            let err = parse(&[("SHUTDOWN_GRACE", bad)]).unwrap_err();
            assert!(err.to_string().contains("SHUTDOWN_GRACE"), "{err}");
        }
        for over in ["10s", "10", "9001ms", "11s"] {
            let err = parse(&[("SHUTDOWN_GRACE", over)]).unwrap_err();
            assert!(err.to_string().contains("at most 9s"), "{err}");
        }
        let c = parse(&[("SHUTDOWN_GRACE", "9000ms")]).unwrap();
        assert_eq!(c.server.shutdown_grace, MAX_SHUTDOWN_GRACE);
        for var in ["HEADER_READ_TIMEOUT", "KEEPALIVE_TIMEOUT"] {
            let err = parse(&[(var, "0")]).unwrap_err();
            assert!(err.to_string().contains("greater than zero"), "{err}");
            assert!(
                err.to_string().starts_with(&format!("invalid {var}=")),
                "{err}"
            );
            let err = parse(&[(var, "ten minutes")]).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("invalid {var}=")),
                "{err}"
            );
        }
    }

    #[test]
    fn every_duration_is_at_most_a_day() {
        for var in [
            "HEADER_READ_TIMEOUT",
            "KEEPALIVE_TIMEOUT",
            "BODY_READ_TIMEOUT",
            "SEND_TIMEOUT",
        ] {
            for ok in ["86400", "86400s", "86400000ms", "1ms"] {
                assert!(parse(&[(var, ok)]).is_ok(), "{var}={ok}");
            }
            for over in [
                "86401",
                "86400001ms",
                "9300000000000000000",
                "18446744073709551615",
                "18446744073709551616",
                "99999999999999999999999ms",
            ] {
                let err = parse(&[(var, over)]).unwrap_err();
                let msg = err.to_string();
                assert!(
                    msg.starts_with(&format!("invalid {var}={over:?}: ")),
                    "{msg}"
                );
                assert!(msg.contains("at most a day"), "{msg}");
            }
        }
        let err = parse(&[("SHUTDOWN_GRACE", "18446744073709551615")]).unwrap_err();
        assert!(err.to_string().contains("SHUTDOWN_GRACE"), "{err}");
    }

    #[test]
    fn body_read_and_send_timeouts_are_configurable_and_above_zero() {
        let c = parse(&[("BODY_READ_TIMEOUT", "2s"), ("SEND_TIMEOUT", "1500ms")]).unwrap();
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(2));
        assert_eq!(c.server.send_timeout, Duration::from_millis(1500));
        for var in ["BODY_READ_TIMEOUT", "SEND_TIMEOUT"] {
            let err = parse(&[(var, "0ms")]).unwrap_err();
            assert!(err.to_string().contains("greater than zero"), "{err}");
        }
    }

    #[test]
    fn max_connections_is_a_count_from_one() {
        for (v, n) in [("1", 1), (" 5000 ", 5000), ("1048576", 1 << 20)] {
            let c = parse(&[("MAX_CONNECTIONS", v)]).unwrap();
            assert_eq!(c.server.max_connections, Some(n), "{v}");
        }
        for bad in [
            "0",
            "-1",
            "1048577",
            "ten",
            "1e3",
            "+5",
            "18446744073709551616",
        ] {
            let err = parse(&[("MAX_CONNECTIONS", bad)]).unwrap_err();
            assert_eq!(err, ConfigError::Count(bad.to_owned()));
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid MAX_CONNECTIONS={bad:?}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn body_budget_takes_bytes_or_binary_units_from_one_mebibyte() {
        assert_eq!(parse(&[]).unwrap().body_budget, None);
        for (v, bytes) in [
            ("64MiB", 64 << 20),
            ("1 GiB", 1 << 30),
            ("2048KiB", 2 << 20),
            ("1048576", 1 << 20),
            (" 3MiB ", 3 << 20),
            ("1024GiB", 1 << 40),
        ] {
            let c = parse(&[("BODY_BUDGET", v)]).unwrap();
            assert_eq!(c.body_budget, Some(bytes), "{v}");
        }
        for bad in [
            "64MB",
            "64mib",
            "MiB",
            "-1MiB",
            "1.5GiB",
            "1023KiB",
            "0",
            "99999999999999999999GiB",
            "1025GiB",
            "18446744073709551615",
        ] {
            let err = parse(&[("BODY_BUDGET", bad)]).unwrap_err();
            assert_eq!(err, ConfigError::Size(bad.to_owned()));
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid BODY_BUDGET={bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn project_id_enables_trace_correlation() {
        let c = parse(&[("GOOGLE_CLOUD_PROJECT", "my-project-123")]).unwrap();
        assert_eq!(c.server.project_id.as_deref(), Some("my-project-123"));
        let err = parse(&[("GOOGLE_CLOUD_PROJECT", "a\"b")]).unwrap_err();
        assert!(err.to_string().contains("GOOGLE_CLOUD_PROJECT"));
    }
}
