//! The primitives every handler and transport builds on; nothing here knows a route.
//!
//! - [`body`]: reading a request body whole, under [`body::MAX_BODY`] and the budget.
//! - [`budget`]: the bytes all request bodies together may hold; a request past it gets 503.
//! - [`response`]: the response body type and the helpers that build answers.
//! - [`trace`]: `traceparent` / `X-Cloud-Trace-Context` into a span Cloud Logging correlates.

pub mod body;
pub mod budget;
pub mod response;
pub mod trace;
