//! Bucket lifecycle: PutBucketLifecycleConfiguration (and the deprecated
//! PutBucketLifecycle, the same request with rule-level prefixes),
//! GetBucketLifecycleConfiguration, DeleteBucketLifecycle; the response
//! headers that say when a rule will act on an object; and the background
//! worker that carries the rules out (`worker`).

pub mod rules;
pub mod worker;

use super::error::{S3Error, S3ErrorCode};
use super::object::read_small_body;
use super::{Req, bucket};
use crate::engine::types::BucketState;
use crate::http::conn::Conn;
use crate::http::response::Response;
pub use rules::{Clock, Rules};

/// The bucket configuration document holding the rules (the XML that
/// GetBucketLifecycleConfiguration returns).
pub const CONFIG: &str = "lifecycle";
/// 1,000 rules with long prefixes and a few tags each fit in this.
const LIFECYCLE_BODY_BYTES_MAX: usize = 1 << 20;

/// The bucket's rules, if it has any (a stored document always parses).
pub fn bucket_rules(state: &BucketState) -> Option<Rules> {
    let doc = state.config(CONFIG)?;
    rules::parse(doc, &[]).ok()
}

/// The clock of the response headers: AWS's real days, rounded to the
/// next midnight UTC, even under `--lifecycle-day-secs` (a test knob that
/// only makes the worker act sooner; the headers say what the same rules
/// do in production, as Ceph's debug interval leaves them).
const HEADER_CLOCK: Clock = Clock { day_ms: rules::DAY_MS, round: true };

/// `x-amz-expiration` for the current version of an object, when an
/// enabled rule will expire it (AWS: PutObject, GetObject, HeadObject).
pub fn expiration_header(req: &Req<'_>, size: u64, tags: &[(String, String)], mtime_ms: i64) -> Option<String> {
    let doc = req.ctx.engine.bucket_config(req.bucket(), CONFIG)?;
    let rules = rules::parse(&doc, &[]).ok()?;
    let (at, rule) = rules.expiry(HEADER_CLOCK, req.key(), size, tags, mtime_ms)?;
    Some(format!("expiry-date=\"{}\", rule-id=\"{}\"", super::xml::http_date(at), rule))
}

/// `x-amz-abort-date` and `x-amz-abort-rule-id` for an upload of the key.
pub fn abort_headers(req: &Req<'_>, initiated_ms: i64) -> Option<(String, String)> {
    let doc = req.ctx.engine.bucket_config(req.bucket(), CONFIG)?;
    let rules = rules::parse(&doc, &[]).ok()?;
    let (at, rule) = rules.abort(HEADER_CLOCK, req.key(), initiated_ms)?;
    Some((super::xml::http_date(at), rule.to_string()))
}

pub async fn put_bucket_lifecycle_configuration(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let body = read_small_body(req, conn, LIFECYCLE_BODY_BYTES_MAX).await?;
    super::checksum::require_integrity(&req.head, &body)?;
    let rules = rules::parse(&body, &[])?;
    let doc = rules::to_xml(&rules).into_bytes();
    req.ctx.engine.set_bucket_config(req.bucket(), &state, CONFIG, Some(doc)).await?;
    Ok(Response::new(200))
}

pub async fn get_bucket_lifecycle_configuration(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    match state.config(CONFIG) {
        Some(doc) => Ok(Response::xml(200, String::from_utf8_lossy(doc).into_owned())),
        None => Err(S3ErrorCode::NoSuchLifecycleConfiguration.into()),
    }
}

pub async fn delete_bucket_lifecycle(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, CONFIG, None).await?;
    Ok(Response::new(204))
}
