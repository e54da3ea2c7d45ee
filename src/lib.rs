//! A bare hyper 1 service that keeps Cloud Run's container contract.
//!
//! - [`config`]: environment variables, validated before the port opens.
//! - [`telemetry`]: one JSON object per line for Cloud Logging, or plain text.
//! - [`trace`]: `traceparent` / `X-Cloud-Trace-Context` parsing for log correlation.
//! - [`routes`]: the handlers, a `match` on method and path.
//! - [`budget`]: the bytes all request bodies together may hold; a request past it gets 503.
//! - [`listener`]: the listening socket, with an accept queue fit for bursts.
//! - [`server`]: accept loop, HTTP/1.1 + h2c, graceful drain under a deadline.
//! - [`graceful`]: tells open connections the server is stopping and counts them out.
//! - [`shutdown`]: SIGTERM / SIGINT, installed eagerly because the binary is PID 1.
//! - [`runtime`]: a current-thread or multi-thread tokio runtime sized to the CPUs we get.
//! - [`header_timeout`]: the header read and keep-alive timeouts, one timer per connection.
//! - [`linger`]: the lingering close after an answer that ends an HTTP/1 connection.
//! - `allocator`: dlmalloc as the global allocator of musl builds (the image's).

mod allocator;
pub mod budget;
pub mod config;
pub mod graceful;
pub mod header_timeout;
pub mod linger;
pub mod listener;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
