//! CORS preflight (`OPTIONS`), which browsers send unauthenticated.
//!
//! No bucket has a CORS configuration yet (PutBucketCors answers 501), so
//! a well-formed preflight is refused the way S3 refuses it for a bucket
//! without one; a preflight missing its Origin or requested method is a
//! 400, as AWS answers.

use super::Req;
use super::error::{S3Error, S3ErrorCode};
use crate::http::response::Response;

pub fn preflight(req: &Req<'_>) -> Result<Response, S3Error> {
    let h = &req.head;
    if !h.has_header("origin") {
        return Err(S3Error::with_message(
            S3ErrorCode::BadRequest,
            "Insufficient information. Origin request header needed.",
        ));
    }
    if !h.has_header("access-control-request-method") {
        return Err(S3Error::with_message(
            S3ErrorCode::BadRequest,
            "Insufficient information. Access-Control-Request-Method request header needed.",
        ));
    }
    let Some(bucket) = req.bucket.as_deref() else {
        return Err(S3ErrorCode::AccessForbidden.into());
    };
    if req.ctx.engine.bucket(bucket).is_none() {
        return Err(S3ErrorCode::NoSuchBucket.into());
    }
    Err(S3ErrorCode::AccessForbidden.into())
}
