//! `POST /echo`: the request body back, with its content type.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};

use crate::http::body::{BODY_LIMIT, read_body};
use crate::http::budget::Budget;
use crate::http::response::ResponseBody;

/// Echoes the body back with the request's content type. The body's share of the budget stays
/// reserved until the answer's body is dropped, that is once hyper has sent it.
pub async fn echo<B>(req: Request<B>, budget: Arc<Budget>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match read_body(req, &budget, BODY_LIMIT).await {
        Ok((parts, body)) => {
            let mut res = Response::new(ResponseBody::new(Bytes::from_owner(body)));
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                res.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            res
        }
        Err(refused) => refused,
    }
}
