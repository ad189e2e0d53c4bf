//! The S3 API: authentication, routing to one handler per operation, and
//! writing the answer. Handlers return a `Response` or an `S3Error`; they
//! never pick status codes themselves (see `error.rs`).

pub mod attributes;
pub mod bucket;
pub mod checksum;
pub mod copy;
pub mod cors;
pub mod error;
pub mod lifecycle;
pub mod list;
pub mod multipart;
pub mod object;
pub mod post;
pub mod route;
pub mod tagging;
pub mod versions;
pub mod xml;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use error::{S3Error, S3ErrorCode};
use route::Op;

use crate::auth::{self, Identity, PayloadCheck};
use crate::http::body::BodyReader;
use crate::http::conn::Conn;
use crate::http::head::Head;
use crate::http::response::{Body, Response};
use crate::runtime::Ctx;

/// Access keys and their secrets.
#[derive(Default, Clone)]
pub struct Users {
    secrets: HashMap<String, String>,
}

impl Users {
    pub fn add(&mut self, access_key: String, secret_key: String) {
        self.secrets.insert(access_key, secret_key);
    }
    pub fn len(&self) -> usize {
        self.secrets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl auth::SecretStore for Users {
    fn secret_key(&self, access_key: &str) -> Option<String> {
        self.secrets.get(access_key).cloned()
    }
}

/// One request being served.
pub struct Req<'a> {
    pub ctx: &'a Ctx,
    pub head: Head,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub user: String,
    pub payload: Option<PayloadCheck>,
    pub body: BodyReader,
    pub request_id: String,
    /// Whether `100 Continue` still has to be sent before reading the body.
    pub expect_continue: bool,
}

impl Req<'_> {
    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().expect("routing guarantees a bucket")
    }
    pub fn key(&self) -> &str {
        self.key.as_deref().expect("routing guarantees a key")
    }
    /// Answers `Expect: 100-continue` once, just before the body is read.
    pub async fn continue_body(&mut self, conn: &mut Conn) -> Result<(), S3Error> {
        if std::mem::take(&mut self.expect_continue) {
            conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await?;
        }
        Ok(())
    }
    /// The resource path for error bodies.
    pub fn resource(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".into(),
        }
    }
}

thread_local! {
    static REQUEST_SEQ: Cell<u64> = const { Cell::new(0) };
    static REQUEST_PREFIX: u32 = {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b)
    };
}

fn request_id() -> String {
    let n = REQUEST_SEQ.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    format!("{:08X}{:012X}", REQUEST_PREFIX.with(|p| *p), n)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Answers a request whose head could not be parsed, then the connection closes.
pub async fn reject_unparsed(conn: &mut Conn, e: &crate::http::Error) -> Result<(), crate::http::Error> {
    let err: S3Error = match e {
        crate::http::Error::Io(_) => return Ok(()),
        _ => S3Error::from(crate::http::Error::BadFraming("unparsable request")),
    };
    let err = match e {
        crate::http::Error::HeadTooLarge | crate::http::Error::TooManyHeaders => {
            S3Error::new(S3ErrorCode::RequestHeaderSectionTooLarge)
        }
        _ => err,
    };
    let id = request_id();
    let resp = Response::xml(err.status(), err.to_xml(&id)).header("x-amz-request-id", id);
    let mut out = resp.encode_head(false);
    if let Body::Bytes(b) = resp.body {
        out.extend_from_slice(&b);
    }
    conn.write_all(out).await
}

/// Serves one request; returns whether the connection may be reused.
pub async fn handle(ctx: &Ctx, conn: &mut Conn, head: Head) -> bool {
    let request_id = request_id();
    let keep_alive = head.keep_alive();
    let is_head = head.method == "HEAD";
    if let Some(resp) = health(ctx, &head) {
        return write_response(conn, resp, &request_id, keep_alive, is_head).await;
    }
    let body = match BodyReader::new(&head, Duration::from_millis(ctx.config.body_read_timeout_ms)) {
        Ok(b) => b,
        Err(e) => {
            let resp = error_response(S3Error::from(e), &request_id, None);
            write_response(conn, resp, &request_id, false, is_head).await;
            return false;
        }
    };
    let expect_continue = head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    // Both framings at once is the request-smuggling shape (RFC 9112 §6.3):
    // chunked wins, and the connection closes after the answer.
    let keep_alive = keep_alive && !(head.is_chunked() && head.has_header("content-length"));
    let target = route::target(&head, ctx.config.domain.as_deref());
    let mut req = Req {
        ctx,
        head,
        bucket: target.bucket.clone(),
        key: target.key.clone(),
        user: String::new(),
        payload: None,
        body,
        request_id: request_id.clone(),
        expect_continue,
    };
    let result = if req.head.method == "OPTIONS" {
        cors::preflight(&req)
    } else {
        match prepare(&mut req, &target) {
            Ok(op) => dispatch(op, &mut req, conn).await,
            Err(e) => Err(e),
        }
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => error_response(e, &request_id, Some(req.resource())),
    };
    // A body left unread would be parsed as the next request: drain a small
    // rest, otherwise close the connection after answering.
    let mut keep = keep_alive;
    if !req.body.is_done() {
        keep = keep && !req.expect_continue && req.body.drain(conn, 1 << 20).await.is_ok();
    }
    write_response(conn, resp, &request_id, keep, is_head).await && keep
}

/// Authenticates and routes; checks the caller may touch the bucket.
fn prepare(req: &mut Req<'_>, target: &route::Target) -> Result<Op, S3Error> {
    let ctx = req.ctx;
    let view = auth::RequestView {
        method: &req.head.method,
        raw_path: &req.head.path,
        raw_query: &req.head.query,
        headers: &req.head.headers,
        now_unix: now_ms() / 1000,
        region: &ctx.config.region,
        virtual_host_bucket: target.virtual_host.then_some(target.bucket.as_deref()).flatten(),
    };
    let authed = auth::authenticate(&view, ctx.users.as_ref())?;
    let op = route::op(&req.head, target)?;
    req.payload = Some(authed.payload);
    req.user = match authed.identity {
        Identity::User { access_key } => access_key,
        // A POST upload is signed inside its form; the handler checks it.
        Identity::Anonymous if op == Op::PostObject => String::new(),
        // S3 tells anyone that a bucket does not exist.
        Identity::Anonymous if req.bucket.as_deref().is_some_and(|b| ctx.engine.bucket(b).is_none()) => {
            return Err(S3ErrorCode::NoSuchBucket.into());
        }
        Identity::Anonymous => return Err(S3ErrorCode::AccessDenied.into()),
    };
    if let Some(bucket) = &req.bucket
        && !matches!(op, Op::CreateBucket | Op::PostObject)
        && let Some(state) = ctx.engine.bucket(bucket)
        && state.owner != req.user
    {
        return Err(S3ErrorCode::AccessDenied.into());
    }
    if ctx.engine.is_poisoned() && op.writes() {
        return Err(S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            "a storage shard failed; writes are refused until restart",
        ));
    }
    Ok(op)
}

async fn dispatch(op: Op, req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    match op {
        Op::ListBuckets => bucket::list_buckets(req).await,
        Op::CreateBucket => bucket::create_bucket(req, conn).await,
        Op::HeadBucket => bucket::head_bucket(req).await,
        Op::DeleteBucket => bucket::delete_bucket(req).await,
        Op::GetBucketLocation => bucket::get_bucket_location(req).await,
        Op::GetBucketVersioning => bucket::get_bucket_versioning(req).await,
        Op::PutBucketVersioning => bucket::put_bucket_versioning(req, conn).await,
        Op::ListObjects => list::list_objects(req, false).await,
        Op::ListObjectsV2 => list::list_objects(req, true).await,
        Op::ListObjectVersions => versions::list_object_versions(req).await,
        Op::DeleteObjects => object::delete_objects(req, conn).await,
        Op::PutObject => object::put_object(req, conn).await,
        Op::PostObject => post::post_object(req, conn).await,
        Op::GetObject => object::get_object(req, false).await,
        Op::HeadObject => object::get_object(req, true).await,
        Op::GetObjectAttributes => attributes::get_object_attributes(req).await,
        Op::DeleteObject => object::delete_object(req).await,
        Op::CopyObject => copy::copy_object(req).await,
        Op::CreateMultipartUpload => multipart::create_multipart_upload(req).await,
        Op::UploadPart => multipart::upload_part(req, conn).await,
        Op::UploadPartCopy => multipart::upload_part_copy(req).await,
        Op::CompleteMultipartUpload => multipart::complete_multipart_upload(req, conn).await,
        Op::AbortMultipartUpload => multipart::abort_multipart_upload(req).await,
        Op::ListParts => multipart::list_parts(req).await,
        Op::ListMultipartUploads => multipart::list_multipart_uploads(req).await,
        Op::PutObjectTagging => tagging::put_object_tagging(req, conn).await,
        Op::GetObjectTagging => tagging::get_object_tagging(req).await,
        Op::DeleteObjectTagging => tagging::delete_object_tagging(req).await,
        Op::PutBucketTagging => tagging::put_bucket_tagging(req, conn).await,
        Op::GetBucketTagging => tagging::get_bucket_tagging(req).await,
        Op::DeleteBucketTagging => tagging::delete_bucket_tagging(req).await,
        Op::PutBucketLifecycleConfiguration => lifecycle::put_bucket_lifecycle_configuration(req, conn).await,
        Op::GetBucketLifecycleConfiguration => lifecycle::get_bucket_lifecycle_configuration(req).await,
        Op::DeleteBucketLifecycle => lifecycle::delete_bucket_lifecycle(req).await,
        Op::NotImplemented(what) => {
            Err(S3Error::with_message(S3ErrorCode::NotImplemented, format!("'{what}' is not implemented")))
        }
    }
}

fn health(ctx: &Ctx, head: &Head) -> Option<Response> {
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return None;
    }
    match head.path.as_str() {
        "/health/live" => Some(Response::new(200).bytes(b"live\n".to_vec())),
        "/health/ready" => {
            let ready = ctx.health.ready.load(Ordering::Relaxed) && !ctx.health.draining.load(Ordering::Relaxed);
            Some(if ready {
                Response::new(200).bytes(b"ready\n".to_vec())
            } else {
                Response::new(503).bytes(b"not ready\n".to_vec())
            })
        }
        _ => None,
    }
}

fn error_response(e: S3Error, request_id: &str, resource: Option<String>) -> Response {
    let e = match (resource, &e.resource) {
        (Some(r), None) => e.resource(r),
        _ => e,
    };
    let mut resp = Response::xml(e.status(), e.to_xml(request_id));
    for (k, v) in &e.headers {
        resp.set_header(k, v.clone());
    }
    resp
}

/// Writes a response (streaming object bodies with the next disk read
/// overlapping the socket write); returns false if the connection broke.
async fn write_response(
    conn: &mut Conn,
    mut resp: Response,
    request_id: &str,
    keep_alive: bool,
    is_head: bool,
) -> bool {
    resp.set_header("x-amz-request-id", request_id);
    let mut out = resp.encode_head(keep_alive);
    match resp.body {
        Body::Bytes(b) if !is_head => {
            out.extend_from_slice(&b);
            conn.write_all(out).await.is_ok()
        }
        Body::Object { mut reader, .. } if !is_head => {
            if conn.write_all(out).await.is_err() {
                return false;
            }
            let mut next = reader.next().await;
            while let Some(piece) = next {
                let (buf, range) = match piece {
                    Ok(p) => p,
                    Err(e) => {
                        // Damaged or unreadable data: cut the response short so
                        // the client sees a failed transfer, never wrong bytes.
                        tracing::warn!(error = %e, "cutting an object response short");
                        return false;
                    }
                };
                let (w, n) = futures_util::future::join(conn.write_range(buf, range), reader.next()).await;
                let (w, buf) = w;
                if w.is_err() {
                    return false;
                }
                reader.give_back(buf);
                next = n;
            }
            reader.finish();
            true
        }
        _ => conn.write_all(out).await.is_ok(),
    }
}
