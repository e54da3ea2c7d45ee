//! Logs: one JSON object per line for Cloud Logging, or plain text for people.
//!
//! Cloud Logging turns a stdout line that is a single JSON object into a structured entry and
//! reads `severity`, `message`, `time` and the `logging.googleapis.com/*` fields from it
//! (<https://cloud.google.com/logging/docs/structured-logging>). tracing-subscriber's stock
//! JSON writes `level` and nests fields, so this module has its own small layer: the event's
//! and its spans' fields go at top level, and nothing on the request path allocates unless an
//! event is enabled.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, the fields Cloud Logging reads.
    Json,
    /// For people at a terminal.
    Text,
    /// One JSON object per line with the keys Lambda reads (`timestamp`, `level`) in place of
    /// Cloud Logging's; chosen by [`crate::lambda`], never by `LOG_FORMAT`.
    #[cfg(feature = "lambda")]
    LambdaJson,
}

/// A parsed `RUST_LOG` (`config::parse_log_filter`): a level for every target, and levels for some
/// targets and the modules under them.
///
/// A target matches whole path segments: `hyper` is `hyper` and `hyper::proto::h1`, not
/// `hyper_util` nor this crate's `hyper_cloudrun`. tracing-subscriber's `Targets` matches by
/// string prefix (`target.starts_with(directive)`), so there `info,hyper=debug` turned on this
/// service's own debug access line as well as hyper's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Default for LogFilter {
    /// Everything off, as an empty `Targets` is.
    fn default() -> Self {
        Self {
            default: LevelFilter::OFF,
            targets: Vec::new(),
        }
    }
}

impl LogFilter {
    /// The level of every target no directive names.
    pub fn set_default(&mut self, level: LevelFilter) {
        self.default = level;
    }

    /// The level of `target` and the modules under it; a later call for it wins.
    pub fn set(&mut self, target: &str, level: LevelFilter) {
        match self.targets.iter_mut().find(|(t, _)| t == target) {
            Some((_, l)) => *l = level,
            None => self.targets.push((target.to_owned(), level)),
        }
    }

    /// The level for `target`: that of the longest directive naming it or a module it is in.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| {
                target
                    .strip_prefix(t.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |&(_, level)| level)
    }

    /// Whether an event of `level` from `target` is logged.
    pub fn would_enable(&self, target: &str, level: &tracing::Level) -> bool {
        *level <= self.level_for(target)
    }

    /// Whether the event or span described by `meta` is logged.
    pub fn enables(&self, meta: &Metadata<'_>) -> bool {
        self.would_enable(meta.target(), meta.level())
    }

    /// The most verbose level anything is logged at.
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|&(_, level)| level)
            .fold(self.default, LevelFilter::max)
    }
}

/// Where finished lines go. Production writes to stdout; tests collect them.
pub trait Sink: Send + Sync + 'static {
    fn write_line(&self, line: &str);
}

/// Standard output, one `write` per line so concurrent lines never interleave.
#[derive(Debug, Clone, Copy)]
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&self, line: &str) {
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Installs the global subscriber and a panic hook that logs panics as `ERROR` lines.
/// Call once, first thing in `main`.
pub fn init(format: LogFormat, filter: LogFilter) {
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(LogLayer::new(format, Stdout));
    // Only fails if a subscriber is already set, which `main` never does twice.
    let _ = tracing::subscriber::set_global_default(subscriber);
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        tracing::error!(panic = %payload, %location, "panicked");
    }));
}

/// `RUST_LOG` as a layer: the interest of each callsite is settled once, when it is first hit,
/// so a disabled event costs one cached check (as tracing-subscriber's `Targets` does).
impl<S: Subscriber> Layer<S> for LogFilter {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enables(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.enables(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level())
    }
}

/// The formatting layer.
pub struct LogLayer<W> {
    format: LogFormat,
    sink: W,
}

impl<W: Sink> LogLayer<W> {
    pub fn new(format: LogFormat, sink: W) -> Self {
        Self { format, sink }
    }
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// A span's fields, rendered once when the span is created and appended to each event in it.
struct SpanFields(String);

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Sink,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut out = String::new();
        attrs.record(&mut FieldWriter {
            out: &mut out,
            format: self.format,
            message: None,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(out));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut FieldWriter {
                out: &mut fields.0,
                format: self.format,
                message: None,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static BUF: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
        }
        BUF.with(|buf| {
            // A log call inside a Sink or Debug impl would re-enter; skip rather than panic.
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return;
            };
            let (line, message) = &mut *buf;
            line.clear();
            message.clear();
            let meta = event.metadata();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();

            let mut fields = String::new();
            event.record(&mut FieldWriter {
                out: &mut fields,
                format: self.format,
                message: Some(message),
            });
            // The fields of the spans the event is in (a request's trace), outermost first.
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(f) = span.extensions().get::<SpanFields>() {
                        fields.push_str(&f.0);
                    }
                }
            }

            match self.format {
                LogFormat::Json => {
                    line.push_str("{\"severity\":\"");
                    line.push_str(severity(meta.level()));
                    line.push_str("\",\"time\":\"");
                    write_rfc3339(line, now.as_secs(), now.subsec_micros());
                    line.push_str("\",\"message\":");
                    write_json_str(line, message);
                    line.push_str(&fields);
                    line.push_str(",\"target\":");
                    write_json_str(line, meta.target());
                    line.push_str("}\n");
                }
                // Lambda filters application logs on `level` and dates them by `timestamp`
                // (RFC 3339) when the function's log format is JSON; a line without a valid
                // `level` counts as INFO
                // (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>).
                #[cfg(feature = "lambda")]
                LogFormat::LambdaJson => {
                    line.push_str("{\"timestamp\":\"");
                    write_rfc3339(line, now.as_secs(), now.subsec_micros());
                    line.push_str("\",\"level\":\"");
                    line.push_str(lambda_level(meta.level()));
                    line.push_str("\",\"message\":");
                    write_json_str(line, message);
                    line.push_str(&fields);
                    line.push_str(",\"target\":");
                    write_json_str(line, meta.target());
                    line.push_str("}\n");
                }
                LogFormat::Text => {
                    write_rfc3339(line, now.as_secs(), now.subsec_micros());
                    let _ = write!(line, " {:>5} {}", meta.level(), message);
                    line.push_str(&fields);
                    line.push('\n');
                }
            }
            self.sink.write_line(line);
        });
    }
}

/// Cloud Logging's `LogSeverity` names; tracing's TRACE has no counterpart and maps to DEBUG.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// The level names of Lambda's log-level filtering (TRACE, DEBUG, INFO, WARN, ERROR, FATAL;
/// tracing has no FATAL).
#[cfg(feature = "lambda")]
fn lambda_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Renders fields as `,"name":value` (JSON) or ` name=value` (text); the `message` field goes
/// to `message` when the caller wants it apart.
struct FieldWriter<'a> {
    out: &'a mut String,
    format: LogFormat,
    message: Option<&'a mut String>,
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) {
        match self.format {
            LogFormat::Json => {
                self.out.push(',');
                write_json_str(self.out, field.name());
                self.out.push(':');
            }
            #[cfg(feature = "lambda")]
            LogFormat::LambdaJson => {
                self.out.push(',');
                write_json_str(self.out, field.name());
                self.out.push(':');
            }
            LogFormat::Text => {
                self.out.push(' ');
                self.out.push_str(field.name());
                self.out.push('=');
            }
        }
    }

    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message"
            && let Some(m) = self.message.as_deref_mut()
        {
            m.push_str(value);
            return;
        }
        self.key(field);
        match self.format {
            LogFormat::Json => write_json_str(self.out, value),
            #[cfg(feature = "lambda")]
            LogFormat::LambdaJson => write_json_str(self.out, value),
            LogFormat::Text => self.out.push_str(value),
        }
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        let _ = self.out.write_fmt(value);
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` and format-string messages arrive here; render once into a scratch string.
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.string(field, &s);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut s = String::new();
        let _ = write!(s, "{value}");
        self.string(field, &s);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            // JSON has no NaN or infinity.
            self.string(field, &value.to_string());
        }
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 §7).
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `secs` since the Unix epoch as RFC 3339 UTC with microseconds,
/// e.g. `2026-11-27T15:49:23.123456Z` (civil-from-days, H. Hinnant's algorithm).
fn write_rfc3339(out: &mut String, secs: u64, micros: u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::{debug, error, info, info_span, warn};

    /// A sink that keeps lines in memory, for tests of what gets logged.
    #[derive(Debug, Clone, Default)]
    pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Captured {
        pub fn lines(&self) -> Vec<String> {
            self.0.lock().map(|v| v.clone()).unwrap_or_default()
        }
    }

    impl Sink for Captured {
        fn write_line(&self, line: &str) {
            if let Ok(mut v) = self.0.lock() {
                v.push(line.to_owned());
            }
        }
    }

    /// `level` or `level,target=level,…`, as `RUST_LOG` writes them (checked by `config`).
    fn filter_of(directives: &str) -> LogFilter {
        let mut filter = LogFilter::default();
        for d in directives.split(',') {
            let level = |l: &str| l.parse::<LevelFilter>().unwrap();
            match d.split_once('=') {
                Some((target, l)) => filter.set(target, level(l)),
                None => filter.set_default(level(d)),
            }
        }
        filter
    }

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> Vec<String> {
        let sink = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(filter_of(filter))
            .with(LogLayer::new(format, sink.clone()));
        tracing::subscriber::with_default(subscriber, f);
        sink.lines()
    }

    #[test]
    fn json_lines_carry_severity_message_time_and_flat_fields() {
        let lines = capture(LogFormat::Json, "info", || {
            info!(addr = "0.0.0.0:8080", port = 8080u64, "listening");
            warn!(ok = false, "careful");
            error!(err = %"boom \"quoted\"\n", "failed");
            debug!("hidden");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        for l in &lines {
            assert!(l.ends_with("}\n") && l.matches('\n').count() == 1, "{l}");
        }
        assert!(
            lines[0].starts_with(r#"{"severity":"INFO","time":""#),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(r#""message":"listening","addr":"0.0.0.0:8080","port":8080"#));
        assert!(lines[1].contains(r#""severity":"WARNING""#) && lines[1].contains(r#""ok":false"#));
        assert!(lines[2].contains(r#""severity":"ERROR""#));
        assert!(
            lines[2].contains(r#""err":"boom \"quoted\"\n""#),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn span_fields_appear_at_top_level_of_each_event_inside() {
        let lines = capture(LogFormat::Json, "info", || {
            let span = info_span!(
                "request",
                "logging.googleapis.com/trace" = "projects/p/traces/t"
            );
            let _g = span.enter();
            info!("inside");
        });
        assert!(
            lines[0].contains(
                r#""message":"inside","logging.googleapis.com/trace":"projects/p/traces/t""#
            ),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn filter_directives_select_by_target() {
        let lines = capture(LogFormat::Json, "warn,hyper_cloudrun=debug", || {
            debug!(target: "hyper_cloudrun::server", "mine");
            debug!(target: "other", "theirs");
        });
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(r#""severity":"DEBUG""#) && lines[0].contains("mine"));
    }

    #[cfg(feature = "lambda")]
    #[test]
    fn lambda_json_lines_carry_level_timestamp_and_the_invocation_fields() {
        let lines = capture(LogFormat::LambdaJson, "info", || {
            let span = tracing::error_span!("invocation", requestId = "r-1");
            let _g = span.enter();
            warn!(status = 500u64, "careful");
        });
        assert!(lines[0].starts_with(r#"{"timestamp":""#), "{}", lines[0]);
        assert!(
            lines[0]
                .contains(r#""level":"WARN","message":"careful","status":500,"requestId":"r-1""#),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn a_target_directive_matches_whole_module_names_not_prefixes() {
        let lines = capture(LogFormat::Json, "info,hyper=debug", || {
            debug!(target: "hyper::proto::h1::conn", "hyper's");
            debug!(target: "hyper", "hyper's top");
            debug!(target: "hyper_cloudrun::server", "ours");
            debug!(target: "hyper_util::server", "hyper-util's");
            info!(target: "hyper_cloudrun", "ours at info");
        });
        let messages: Vec<&str> = lines
            .iter()
            .map(|l| {
                l.split(r#""message":""#)
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(messages, ["hyper's", "hyper's top", "ours at info"]);
    }

    #[test]
    fn text_format_is_one_readable_line() {
        let lines = capture(LogFormat::Text, "info", || {
            info!(addr = "0.0.0.0:8080", "listening");
        });
        assert!(
            lines[0].ends_with("  INFO listening addr=0.0.0.0:8080\n"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn json_strings_escape_control_characters() {
        let mut s = String::new();
        write_json_str(&mut s, "a\u{1}b\t\\é");
        assert_eq!(s, r#""a\u0001b\t\\é""#);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let mut s = String::new();
        write_rfc3339(&mut s, 0, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        s.clear();
        // 2024-02-29T23:59:59Z, a leap day.
        write_rfc3339(&mut s, 1_709_251_199, 42);
        assert_eq!(s, "2024-02-29T23:59:59.000042Z");
    }
}
