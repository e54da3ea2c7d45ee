//! `GET /health`: `200 ok` for Cloud Run's probes and uptime checks.
//!
//! Not at `/healthz`: Cloud Run's front end reserves some paths ending in `z` and answers them
//! itself (<https://cloud.google.com/run/docs/known-issues#reserved_url_paths>).

use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::http::response::{ResponseBody, reply};

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// `200 ok`, never cached.
pub fn health<B>(req: &mut Request<B>) -> Response<ResponseBody> {
    let mut res = reply(req, StatusCode::OK, "ok\n");
    // A cache between a checker and the service must never answer for it.
    res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    res
}
