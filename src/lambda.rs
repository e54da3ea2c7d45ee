//! AWS Lambda, the second transport (the `lambda` feature): events from Lambda's Runtime API.
//!
//! Lambda starts a custom runtime's `bootstrap` with `AWS_LAMBDA_RUNTIME_API` set
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>); `main` then calls
//! [`run`] instead of binding a port. AWS's `lambda_http` fetches each invocation, turns an API
//! Gateway (REST or HTTP API), ALB or function URL event into an `http::Request`, and our answer
//! back into that event's response. In between, [`respond`] answers the request exactly as it
//! answers the HTTP server's: the route table, a handler panic turned into a `500`, `HEAD`
//! without a body, the access line.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, ready};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as HttpBody;
use hyper::header::CONNECTION;
use hyper::{Request, Response, Version};
use lambda_http::lambda_runtime::{Error, LambdaInvocation};
use lambda_http::tower::{Layer, Service};
use lambda_http::{Body, IntoResponse};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;
use tracing_subscriber::filter::LevelFilter;

use crate::config::Config;
use crate::http::body::MAX_BODY;
use crate::http::response::ResponseBody;
use crate::respond::respond;
use crate::routes::State;
use crate::telemetry::{LogFilter, LogFormat};

/// Set by Lambda for custom runtimes: the `host:port` of the Runtime API. Its presence is what
/// makes the binary serve Lambda invocations instead of HTTP.
pub const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Lambda's advanced logging controls: the application log level, when configured
/// (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>).
pub const ENV_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// Lambda's advanced logging controls: the function's log format, `JSON` or `Text`
/// (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-logformat.html>).
pub const ENV_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
/// The function's memory in MB, set by Lambda; the body budget is a quarter of it.
pub const ENV_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
/// What `lambda_runtime` reads at start-up besides the Runtime API and the memory size, and
/// panics without (lambda_runtime 1.5 `Config::from_env`); checked first, so that a missing
/// one is a configuration error and not a panic.
const ENV_FUNCTION: [&str; 2] = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION"];

/// Whether Lambda started this process: `AWS_LAMBDA_RUNTIME_API` is set.
pub fn is_lambda<F>(lookup: F) -> bool
where
    F: Fn(&str) -> Option<String>,
{
    lookup(ENV_RUNTIME_API).is_some()
}

/// What serving Lambda needs beyond [`Config`], parsed and checked before the first invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub log_filter: LogFilter,
    pub log_format: LogFormat,
    /// Bytes request bodies may hold: `BODY_BUDGET`, else a quarter of the function's memory.
    pub body_budget: usize,
}

/// A configuration error on Lambda: one line naming the variable and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    Missing(&'static str),
    RuntimeApi(String),
    MemorySize(String),
    LogLevel(String),
    LogFormat(String),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(var) => write!(f, "{var} is not set (Lambda sets it for every function)"),
            Self::RuntimeApi(v) => write!(
                f,
                "invalid {ENV_RUNTIME_API}={v:?}: expected host:port or a URL"
            ),
            Self::MemorySize(v) => {
                write!(
                    f,
                    "invalid {ENV_MEMORY_SIZE}={v:?}: expected a number of MB"
                )
            }
            Self::LogLevel(v) => write!(
                f,
                "invalid {ENV_LOG_LEVEL}={v:?}: expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL"
            ),
            Self::LogFormat(v) => {
                write!(f, "invalid {ENV_LOG_FORMAT}={v:?}: expected JSON or Text")
            }
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Reads Lambda's variables through `lookup`, on top of the checked `config`.
    ///
    /// - Level: `AWS_LAMBDA_LOG_LEVEL` when set, as Lambda's log-level filtering asks of custom
    ///   runtimes; else `RUST_LOG` (`config.log_filter`).
    /// - Format: one JSON object per line with Lambda's keys (`timestamp`, `level`), which
    ///   CloudWatch Logs Insights parses under either log format; `AWS_LAMBDA_LOG_FORMAT=JSON`
    ///   insists on it (log-level filtering needs it), `Text` leaves the choice to `LOG_FORMAT`,
    ///   so `LOG_FORMAT=text` gives plain lines.
    pub fn from_lookup<F>(config: &Config, lookup: F) -> Result<Self, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let api = get(ENV_RUNTIME_API).ok_or(SettingsError::Missing(ENV_RUNTIME_API))?;
        if !api
            .parse::<hyper::Uri>()
            .is_ok_and(|u| u.authority().is_some())
        {
            return Err(SettingsError::RuntimeApi(api));
        }
        for var in ENV_FUNCTION {
            get(var).ok_or(SettingsError::Missing(var))?;
        }
        let memory = get(ENV_MEMORY_SIZE).ok_or(SettingsError::Missing(ENV_MEMORY_SIZE))?;
        // lambda_runtime parses it as an i32 and panics otherwise.
        let memory_mb = match memory.trim().parse::<i32>() {
            Ok(mb) if mb > 0 => mb as usize,
            _ => return Err(SettingsError::MemorySize(memory)),
        };

        let log_filter = match get(ENV_LOG_LEVEL) {
            Some(v) => {
                let mut filter = LogFilter::default();
                filter.set_default(parse_lambda_level(&v)?);
                filter
            }
            None => config.log_filter.clone(),
        };
        let log_format = match get(ENV_LOG_FORMAT) {
            Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::LambdaJson,
            Some(v) if v.eq_ignore_ascii_case("text") => lambda_format(config.log_format),
            Some(v) => return Err(SettingsError::LogFormat(v)),
            None => lambda_format(config.log_format),
        };
        let body_budget = config
            .body_budget
            .unwrap_or_else(|| (memory_mb.saturating_mul(1024 * 1024) / 4).max(MAX_BODY));
        Ok(Self {
            log_filter,
            log_format,
            body_budget,
        })
    }
}

/// `LOG_FORMAT` on Lambda: JSON lines take Lambda's keys instead of Cloud Logging's.
fn lambda_format(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Json => LogFormat::LambdaJson,
        other => other,
    }
}

/// Lambda's application log levels, in any case; tracing has no FATAL, so it means ERROR.
fn parse_lambda_level(value: &str) -> Result<LevelFilter, SettingsError> {
    const LEVELS: [(&str, LevelFilter); 6] = [
        ("trace", LevelFilter::TRACE),
        ("debug", LevelFilter::DEBUG),
        ("info", LevelFilter::INFO),
        ("warn", LevelFilter::WARN),
        ("error", LevelFilter::ERROR),
        ("fatal", LevelFilter::ERROR),
    ];
    LEVELS
        .iter()
        .find(|(name, _)| value.trim().eq_ignore_ascii_case(name))
        .map(|&(_, level)| level)
        .ok_or_else(|| SettingsError::LogLevel(value.to_owned()))
}

/// The runtime for Lambda: one thread. An execution environment is given one event at a time,
/// and Lambda starts more environments for events that arrive meanwhile
/// (<https://docs.aws.amazon.com/lambda/latest/dg/scaling-concurrency.html>), so more threads
/// would only wait; and `lambda_runtime` sets `_X_AMZN_TRACE_ID` in the process
/// environment before each invocation, which is only safe while no other thread reads it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::runtime::build(NonZeroUsize::MIN)
}

/// Serves invocations from the Runtime API until it fails; there is no shutdown signal to
/// wait for (Lambda freezes and ends the environment itself).
pub async fn run(state: State) -> Result<(), Error> {
    let handler = HttpHandler { state };
    lambda_http::runtime(handler)
        .layer(InvocationSpanLayer)
        .run()
        .await
}

/// The service `lambda_http` calls with each request.
#[derive(Debug, Clone)]
struct HttpHandler {
    state: State,
}

impl Service<lambda_http::Request> for HttpHandler {
    type Response = LambdaAnswer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<LambdaAnswer, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: lambda_http::Request) -> Self::Future {
        Box::pin(answer(into_request(req), self.state.clone()))
    }
}

/// The event's request as the route table takes it.
///
/// Lambda's front ends (API Gateway, ALB, function URLs) have parsed the client's HTTP request
/// and routed it by host; what arrives is an event, not an HTTP/1.1 message on a connection.
/// The route table's HTTP/1 connection rules (exactly one `Host`, RFC 9112 §3.2; `connection:
/// close` on a refused body) do not apply to it, and an ALB health check has no `Host` at all
/// (lambda_http's own `alb_no_host` test event), so it is handed on as HTTP/2, the version
/// whose rules need neither.
///
/// The path is the one the client asked for below the API's stage: `lambda_http` puts an API
/// Gateway stage in front of it (`/prod/health`; its README, "Integration with API Gateway
/// stages"), and a route table cannot know the stage names.
pub fn into_request(req: lambda_http::Request) -> Request<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    parts.version = Version::HTTP_2;
    strip_stage(&mut parts);
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // `Body` is non_exhaustive.
        other => Bytes::copy_from_slice(&other),
    };
    Request::from_parts(parts, Full::new(bytes))
}

/// Takes a named API Gateway stage off the front of the path, where two parties may have put
/// it: `lambda_http` puts it before the event's path unless that path already starts with it
/// (`apigw_path_with_stage`), and API Gateway itself starts an HTTP API's `rawPath` with a
/// named stage (aws-powertools/powertools-lambda-python#621), where a REST API's `path` has
/// none. `$default`, the only stage of a function URL, never appears.
fn strip_stage(parts: &mut hyper::http::request::Parts) {
    use lambda_http::RequestExt as _;
    use lambda_http::request::RequestContext;
    let (stage, http_api) = match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(ctx)) => (ctx.stage.as_deref(), false),
        Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.stage.as_deref(), true),
        _ => (None, false),
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return;
    };
    let prefix = format!("/{stage}");
    let raw = parts.raw_http_path();
    let mut prefixes = 0;
    if !raw.starts_with(&format!("{prefix}/")) {
        prefixes += 1;
    }
    if http_api && (raw == prefix || raw.starts_with(&format!("{prefix}/"))) {
        prefixes += 1;
    }
    let mut rest = parts.uri.path();
    for _ in 0..prefixes {
        match rest.strip_prefix(prefix.as_str()) {
            Some(r) if r.is_empty() || r.starts_with('/') => rest = r,
            // Not what lambda_http and API Gateway make: leave the path alone.
            _ => return,
        }
    }
    if prefixes == 0 {
        return;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut uri = hyper::Uri::builder();
    if let Some(scheme) = parts.uri.scheme() {
        uri = uri.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        uri = uri.authority(authority.clone());
    }
    // A suffix of a valid path with its valid query: cannot fail.
    if let Ok(uri) = uri.path_and_query(path_and_query).build() {
        parts.uri = uri;
    }
}

/// One request through [`respond`], the HTTP server's per-request step, its answer converted
/// for `lambda_http`. No trace headers are read (no `GOOGLE_CLOUD_PROJECT` on Lambda): the
/// invocation's span carries Lambda's ids instead ([`InvocationSpan`]).
pub async fn answer<B>(req: Request<B>, state: State) -> Result<LambdaAnswer, Infallible>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Ok(res) = respond(req, &state, None).await;
    Ok(LambdaAnswer(into_lambda_response(res).await))
}

/// Our answer as `lambda_http` sends it back: a body that is valid UTF-8 as text, any other as
/// binary, which the event's response carries base64-encoded with `isBase64Encoded: true`.
/// Decided by the bytes, not the content type, so every body comes back byte for byte
/// (`lambda_http`'s own conversion decodes a body whose content type is text, or absent, as
/// UTF-8, replacing bytes that are not).
pub async fn into_lambda_response(res: Response<ResponseBody>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    // A connection-specific field (RFC 9110 §7.6.1); there is no connection here.
    parts.headers.remove(CONNECTION);
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.into()) {
            Ok(text) => Body::Text(text),
            Err(binary) => Body::Binary(binary.into_bytes()),
        }
    };
    Response::from_parts(parts, body)
}

/// A response `lambda_http` passes on as it is: its `IntoResponse` for a plain `Response<B>`
/// would convert the body again by content type.
#[derive(Debug)]
pub struct LambdaAnswer(Response<Body>);

impl IntoResponse for LambdaAnswer {
    fn into_response(self) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(ready(self.0))
    }
}

/// Puts every log line of an invocation, the runtime's own included (a malformed event, a
/// failed reply), in a span carrying Lambda's request id and X-Ray trace id (the
/// `Lambda-Runtime-Trace-Id` header, which `lambda_runtime` also copies to `_X_AMZN_TRACE_ID`).
/// At ERROR level, so that it is on whenever any line is. The field names are those of
/// `lambda_runtime`'s own invocation span (layers/trace.rs).
#[derive(Debug, Clone, Copy)]
struct InvocationSpanLayer;

impl<S> Layer<S> for InvocationSpanLayer {
    type Service = InvocationSpan<S>;

    fn layer(&self, inner: S) -> InvocationSpan<S> {
        InvocationSpan { inner }
    }
}

#[derive(Debug, Clone)]
struct InvocationSpan<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for InvocationSpan<S>
where
    S: Service<LambdaInvocation, Response = (), Error = Error>,
{
    type Response = ();
    type Error = Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let span = tracing::error_span!(
            "invocation",
            requestId = invocation.context.request_id.as_str(),
            xrayTraceId = tracing::field::Empty,
        );
        if let Some(trace) = &invocation.context.xray_trace_id {
            span.record("xrayTraceId", trace.as_str());
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(invocation)
        };
        future.instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut map: HashMap<String, String> = [
            (ENV_RUNTIME_API, "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            (ENV_MEMORY_SIZE, "128"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let lookup = |name: &str| map.get(name).cloned();
        let config = Config::from_lookup(lookup).expect("valid shared config");
        Settings::from_lookup(&config, lookup)
    }

    fn filter(directives: &str) -> LogFilter {
        crate::config::parse_log_filter(directives).unwrap()
    }

    #[test]
    fn lambda_is_told_by_the_runtime_api_variable() {
        assert!(is_lambda(|n| (n == ENV_RUNTIME_API).then(|| "x".to_owned())));
        assert!(!is_lambda(|_| None));
    }

    #[test]
    fn defaults_are_lambda_json_info_and_a_quarter_of_the_memory() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.log_format, LogFormat::LambdaJson);
        assert_eq!(s.log_filter, filter("info"));
        assert_eq!(s.body_budget, 32 * 1024 * 1024);
        // Never below one largest body.
        let s = settings(&[(ENV_MEMORY_SIZE, "1")]).unwrap();
        assert_eq!(s.body_budget, MAX_BODY);
        let s = settings(&[("BODY_BUDGET", "8MiB")]).unwrap();
        assert_eq!(s.body_budget, 8 * 1024 * 1024);
    }

    #[test]
    fn the_lambda_log_level_wins_over_rust_log_and_fatal_means_error() {
        let s = settings(&[("RUST_LOG", "debug"), (ENV_LOG_LEVEL, "warn")]).unwrap();
        assert_eq!(s.log_filter, filter("warn"));
        let s = settings(&[(ENV_LOG_LEVEL, "FATAL")]).unwrap();
        assert_eq!(s.log_filter, filter("error"));
        let s = settings(&[("RUST_LOG", "warn,hyper_cloudrun=debug")]).unwrap();
        assert_eq!(s.log_filter, filter("hyper_cloudrun=debug,warn"));
    }

    #[test]
    fn log_format_json_insists_text_leaves_it_to_log_format() {
        let f = |vars: &[(&str, &str)]| settings(vars).unwrap().log_format;
        assert_eq!(f(&[(ENV_LOG_FORMAT, "JSON")]), LogFormat::LambdaJson);
        assert_eq!(
            f(&[(ENV_LOG_FORMAT, "JSON"), ("LOG_FORMAT", "text")]),
            LogFormat::LambdaJson
        );
        assert_eq!(f(&[(ENV_LOG_FORMAT, "Text")]), LogFormat::LambdaJson);
        assert_eq!(
            f(&[(ENV_LOG_FORMAT, "Text"), ("LOG_FORMAT", "text")]),
            LogFormat::Text
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (vars, want) in [
            (
                vec![(ENV_LOG_LEVEL, "verbose")],
                SettingsError::LogLevel("verbose".into()),
            ),
            (
                vec![(ENV_LOG_FORMAT, "yaml")],
                SettingsError::LogFormat("yaml".into()),
            ),
            (
                vec![(ENV_MEMORY_SIZE, "lots")],
                SettingsError::MemorySize("lots".into()),
            ),
            (
                vec![(ENV_MEMORY_SIZE, "0")],
                SettingsError::MemorySize("0".into()),
            ),
            (
                vec![(ENV_RUNTIME_API, "not a uri")],
                SettingsError::RuntimeApi("not a uri".into()),
            ),
            (
                vec![("AWS_LAMBDA_FUNCTION_NAME", "")],
                SettingsError::Missing("AWS_LAMBDA_FUNCTION_NAME"),
            ),
        ] {
            let err = settings(&vars).unwrap_err();
            assert_eq!(err, want);
            let line = err.to_string();
            assert!(!line.contains('\n') && line.contains(vars[0].0), "{line}");
        }
    }

    fn event(json: &str) -> Request<Full<Bytes>> {
        into_request(lambda_http::request::from_str(json).expect("an HTTP event"))
    }

    #[test]
    fn a_named_stage_is_taken_off_the_path() {
        let rest = r#"{"resource":"/{proxy+}","path":"/health","httpMethod":"GET",
            "headers":{"host":"h"},"multiValueHeaders":{"host":["h"]},
            "queryStringParameters":{"a":"1"},"multiValueQueryStringParameters":{"a":["1"]},
            "requestContext":{"stage":"prod","httpMethod":"GET","path":"/prod/health"},
            "isBase64Encoded":false}"#;
        let req = event(rest);
        assert_eq!(req.uri().path(), "/health");
        assert_eq!(req.uri().query(), Some("a=1"));
        let http_api = r#"{"version":"2.0","rawPath":"/prod","rawQueryString":"",
            "headers":{"host":"h"},"requestContext":{"stage":"prod",
            "http":{"method":"GET","path":"/prod"}},"isBase64Encoded":false}"#;
        assert_eq!(event(http_api).uri().path(), "/");
        let function_url = r#"{"version":"2.0","rawPath":"/production/x","rawQueryString":"",
            "headers":{"host":"h"},"requestContext":{"stage":"$default",
            "http":{"method":"GET","path":"/production/x"}},"isBase64Encoded":false}"#;
        assert_eq!(event(function_url).uri().path(), "/production/x");
        // The stage is a whole segment, not the first letters of one.
        let product = http_api.replace(r#""rawPath":"/prod""#, r#""rawPath":"/prod/product""#);
        assert_eq!(event(&product).uri().path(), "/product");
        let rest_product = rest.replace(r#""path":"/health""#, r#""path":"/product""#);
        assert_eq!(event(&rest_product).uri().path(), "/product");
    }

    #[tokio::test]
    async fn requests_are_handed_on_as_http2_with_their_body() {
        let alb = r#"{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"POST",
            "path":"/echo","headers":{},"body":"AAH/","isBase64Encoded":true}"#;
        let req = event(alb);
        assert_eq!(req.version(), Version::HTTP_2);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], &[0, 1, 0xff]);
    }

    /// A request body that panics when it is read: to the route that reads it (`/echo`), a bug
    /// in its handler.
    struct PanickingBody;

    impl HttpBody for PanickingBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            panic!("a handler bug")
        }
    }

    #[tokio::test]
    async fn a_handler_panic_is_answered_500_and_the_next_request_as_usual() {
        let state = State {
            budget: crate::http::budget::Budget::new(4 * MAX_BODY),
            body_read_timeout: std::time::Duration::from_secs(30),
        };
        let post = Request::builder()
            .method("POST")
            .uri("/echo")
            .version(Version::HTTP_2)
            .body(PanickingBody)
            .unwrap();
        let LambdaAnswer(res) = answer(post, state.clone()).await.unwrap();
        assert_eq!(res.status(), 500);
        assert_eq!(res.body(), &Body::Text("internal server error\n".into()));
        let get = Request::builder()
            .uri("/health")
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let LambdaAnswer(res) = answer(get, state).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.body(), &Body::Text("ok\n".into()));
    }

    #[tokio::test]
    async fn utf8_bodies_go_back_as_text_any_other_as_binary() {
        let answer = |body: &'static [u8]| {
            let mut res = Response::new(ResponseBody::new(Bytes::from_static(body)));
            res.headers_mut()
                .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
            into_lambda_response(res)
        };
        let text = answer("héllo".as_bytes()).await;
        assert_eq!(text.body(), &Body::Text("héllo".into()));
        assert!(text.headers().get(CONNECTION).is_none());
        assert_eq!(
            answer(&[0xff, 0xfe]).await.body(),
            &Body::Binary(vec![0xff, 0xfe])
        );
        assert_eq!(answer(b"").await.body(), &Body::Empty);
    }
}
