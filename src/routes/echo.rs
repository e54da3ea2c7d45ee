//! `POST /echo`: the request body back, with its content type.

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};

use crate::http::body::{BODY_LIMIT, read_body};
use crate::http::response::ResponseBody;
use crate::routes::State;

/// Echoes the body back with the request's content type. The body's share of the budget stays
/// reserved until the answer's body is dropped, that is once hyper has sent it.
pub async fn echo<B>(req: Request<B>, state: State) -> Response<ResponseBody>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match read_body(req, &state.budget, BODY_LIMIT, state.body_read_timeout).await {
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
