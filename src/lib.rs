//! A bare hyper 1 service that keeps Cloud Run's container contract.
//!
//! - [`config`]: environment variables, validated before the port opens.
//! - [`telemetry`]: one JSON object per line for Cloud Logging, or plain text.
//! - [`trace`]: `traceparent` / `X-Cloud-Trace-Context` parsing for log correlation.
//! - [`routes`]: the handlers, a `match` on method and path.
//! - [`listener`]: the listening socket, with an accept queue fit for bursts.
//! - [`server`]: accept loop, HTTP/1.1 + h2c, graceful drain under a deadline.
//! - [`graceful`]: tells open connections the server is stopping and counts them out.
//! - [`shutdown`]: SIGTERM / SIGINT, installed eagerly because the binary is PID 1.
//! - [`runtime`]: a current-thread or multi-thread tokio runtime sized to the CPUs we get.
//! - [`header_timeout`]: the HTTP/1 header read timeout, one timer per connection.
//! - `allocator`: dlmalloc as the global allocator of musl builds (the image's).

mod allocator;
pub mod config;
pub mod graceful;
pub mod header_timeout;
pub mod listener;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
