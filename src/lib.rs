//! A bare hyper 1 service that keeps Cloud Run's container contract.
//!
//! From the bottom up; each module uses only those above it in this list:
//!
//! - [`telemetry`]: one JSON object per line for Cloud Logging, or plain text.
//! - [`http`]: the primitives: request bodies under one limit and the body budget, the response
//!   body and helpers, trace context.
//! - [`cgroup`]: the memory limit of the process's own cgroup, v1 or v2.
//! - [`limits`]: open files raised to the hard limit, and the connection cap.
//! - [`pubsub`]: the Pub/Sub push envelope `/events` accepts, read by a small JSON scanner.
//! - [`config`]: environment variables, validated before the port opens.
//! - [`routes`]: the route table, a `match` on path then method, and one file per handler.
//! - [`respond`]: one request, whatever carried it: trace span, panic → 500, `HEAD`, access line.
//! - [`server`]: the HTTP transport: accept loop, HTTP/1.1 + h2c connections, the drain.
//! - `lambda` (the `lambda` feature): the other transport, AWS Lambda's Runtime API through
//!   `lambda_http`, each event answered by [`respond`].
//! - [`listener`]: the listening socket, with an accept queue fit for bursts.
//! - [`shutdown`]: SIGTERM / SIGINT, installed eagerly because the binary is PID 1.
//! - [`runtime`]: a current-thread or multi-thread tokio runtime sized to the CPUs we get.
//! - `allocator`: dlmalloc as the global allocator of musl builds (the image's).

mod allocator;
pub mod cgroup;
pub mod config;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod limits;
pub mod listener;
pub mod pubsub;
pub mod respond;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod telemetry;
