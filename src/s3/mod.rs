//! The S3 API: authentication, routing to one handler per operation, and
//! writing the answer. Handlers return a `Response` or an `S3Error`; they
//! never pick status codes themselves (see `error.rs`).

pub mod access;
pub mod access_log;
pub mod acl;
pub mod attributes;
pub mod bucket;
pub mod checksum;
pub mod copy;
pub mod cors;
pub mod error;
pub mod lifecycle;
pub mod list;
pub mod meter;
pub mod metrics;
pub mod multipart;
pub mod object;
pub mod policy;
pub mod post;
pub mod route;
pub mod tagging;
pub mod versions;
pub mod xml;

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use error::{S3Error, S3ErrorCode};
use route::Op;

use crate::auth::{self, Identity, PayloadCheck};
use crate::engine;
use crate::http::body::BodyReader;
use crate::http::conn::Conn;
use crate::http::head::Head;
use crate::http::response::{Body, Response};
use crate::runtime::Ctx;

pub use access::Users;

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
    /// The client's address (policies' `aws:SourceIp`): the socket's peer,
    /// or what a trusted proxy said (PROXY header, X-Forwarded-For).
    pub peer: Option<std::net::IpAddr>,
    /// Whether a trusted proxy said the client used TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// Payload bytes of the body received for storing (the meter's bytes in).
    pub received: u64,
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
    /// The requester's access key; None when anonymous.
    pub fn who(&self) -> Option<&str> {
        (!self.user.is_empty()).then_some(self.user.as_str())
    }

    /// What policy conditions can see of this request.
    pub fn facts(&self) -> policy::RequestFacts<'_> {
        let h = &self.head;
        let auth = h.header("authorization");
        let (signature_version, auth_type) = match auth {
            Some(a) if a.starts_with("AWS4-") => (Some("AWS4-HMAC-SHA256"), Some("REST-HEADER")),
            Some(_) => (Some("AWS"), Some("REST-HEADER")),
            None if h.has_query("X-Amz-Signature") => (Some("AWS4-HMAC-SHA256"), Some("REST-QUERY-STRING")),
            None if h.has_query("Signature") => (Some("AWS"), Some("REST-QUERY-STRING")),
            None if h.method == "POST" && self.who().is_some() => (None, Some("POST")),
            None => (None, None),
        };
        policy::RequestFacts {
            head: h,
            source_ip: self.peer,
            secure: self.secure,
            now_ms: now_ms(),
            signature_version,
            auth_type,
            user: self.who(),
            user_id: self.who().and_then(|k| self.ctx.users.by_key(k)).map(|u| u.id.as_str()),
            prefix: None,
        }
    }

    /// Decides `action` needing `need` on this request's bucket (and the
    /// object version `object`, when the decision is about one).
    pub fn allowed(
        &self,
        state: &engine::types::BucketState,
        action: &'static str,
        need: access::Need,
        object: Option<&engine::types::ObjectMeta>,
    ) -> Result<(), S3Error> {
        if object.is_none() && access::owner_shortcut(self.who(), state, None) {
            return Ok(());
        }
        self.allowed_in(self.bucket(), self.key.as_deref(), state, action, need, object)
    }

    /// `allowed` for another bucket and key (a copy's source).
    pub fn allowed_in(
        &self,
        bucket: &str,
        key: Option<&str>,
        state: &engine::types::BucketState,
        action: &'static str,
        need: access::Need,
        object: Option<&engine::types::ObjectMeta>,
    ) -> Result<(), S3Error> {
        self.decide_in(bucket, key, state, action, need, object, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_in(
        &self,
        bucket: &str,
        key: Option<&str>,
        state: &engine::types::BucketState,
        action: &'static str,
        need: access::Need,
        object: Option<&engine::types::ObjectMeta>,
        prefix: Option<&str>,
    ) -> Result<(), S3Error> {
        let mut facts = self.facts();
        facts.prefix = prefix.map(str::to_owned);
        let q = access::Question {
            who: self.who(),
            action,
            need,
            bucket_name: bucket,
            bucket: state,
            key,
            object: object.map(|m| access::ObjectFacts {
                owner: m.owner.as_deref().unwrap_or(&state.owner),
                acl: m.acl.as_deref().map(access::Acl::decode),
                tags: &m.tags,
            }),
            facts: &facts,
        };
        access::decide(&q)
    }

    /// The object check of a read (GetObject, HeadObject, ACLs, attributes)
    /// once its version is looked up: a version the requester may not
    /// `need` is AccessDenied; a missing one is AccessDenied too unless the
    /// requester may list the bucket (S3 does not tell who may not list
    /// whether a key exists).
    pub fn check_object(
        &self,
        state: &engine::types::BucketState,
        action: &'static str,
        need: access::Need,
        found: Result<engine::Version, engine::Error>,
    ) -> Result<engine::Version, S3Error> {
        let by_version = self.head.has_query("versionId");
        self.check_object_in(self.bucket(), self.key(), state, action, need, by_version, found)
    }

    /// `check_object` for another bucket and key (a copy's source).
    #[allow(clippy::too_many_arguments)]
    pub fn check_object_in(
        &self,
        bucket: &str,
        key: &str,
        state: &engine::types::BucketState,
        action: &'static str,
        need: access::Need,
        by_version: bool,
        found: Result<engine::Version, engine::Error>,
    ) -> Result<engine::Version, S3Error> {
        let action = match (action, by_version) {
            ("s3:GetObject", true) => "s3:GetObjectVersion",
            ("s3:GetObjectAcl", true) => "s3:GetObjectVersionAcl",
            ("s3:PutObjectAcl", true) => "s3:PutObjectVersionAcl",
            ("s3:GetObjectTagging", true) => "s3:GetObjectVersionTagging",
            ("s3:PutObjectTagging", true) => "s3:PutObjectVersionTagging",
            ("s3:DeleteObjectTagging", true) => "s3:DeleteObjectVersionTagging",
            (a, _) => a,
        };
        match found {
            Ok(v) if v.delete_marker => Ok(v),
            Ok(v) if access::owner_shortcut(self.who(), state, Some(v.meta.owned_by_bucket_owner_privately())) => Ok(v),
            Ok(v) => {
                self.allowed_in(bucket, Some(key), state, action, need, Some(&v.meta.get()))?;
                Ok(v)
            }
            Err(e) => {
                if matches!(e, engine::Error::NoSuchKey | engine::Error::DeleteMarker(_)) {
                    // s3:ListBucket on the bucket, for that key as the prefix.
                    let list = access::Need::Bucket(access::Perm::Read);
                    self.decide_in(bucket, None, state, "s3:ListBucket", list, None, Some(key))?;
                }
                Err(e.into())
            }
        }
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
    let resp = Response::xml(err.status(), err.to_xml(&id))
        .header("x-amz-id-2", access_log::host_id(&id))
        .header("x-amz-request-id", id);
    let mut out = resp.encode_head(false);
    if let Body::Bytes(b) = resp.body {
        out.extend_from_slice(&b);
    }
    conn.write_all(out).await
}

thread_local! {
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// One of this core's request slots (`requests_max_per_core`), freed on drop.
struct InFlight;

impl InFlight {
    fn enter(max: usize) -> Option<InFlight> {
        IN_FLIGHT.with(|n| {
            (n.get() < max).then(|| {
                n.set(n.get() + 1);
                InFlight
            })
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.with(|n| n.set(n.get() - 1));
    }
}

/// Serves one request; returns whether the connection may be reused.
pub async fn handle(ctx: &Ctx, conn: &mut Conn, head: Head) -> bool {
    let started = std::time::Instant::now();
    let request_id = request_id();
    let keep_alive = head.keep_alive();
    let is_head = head.method == "HEAD";
    if let Some(resp) = health(ctx, &head) {
        return write_response(conn, resp, &request_id, keep_alive, is_head).await.0;
    }
    // Back-pressure: past the bound of requests this core serves at once,
    // answer 503 SlowDown right away (the SDKs back off and retry) rather
    // than queueing without bound; the body is not read, so the connection
    // closes after the answer.
    let Some(_slot) = InFlight::enter(ctx.config.requests_max_per_core) else {
        let mut resp = error_response(S3Error::new(S3ErrorCode::SlowDown), &request_id, None);
        resp.set_header("retry-after", "1");
        metrics::count_slowdown();
        let has_body = head.is_chunked() || head.content_length().ok().flatten().is_some_and(|n| n > 0);
        return write_response(conn, resp, &request_id, keep_alive && !has_body, is_head).await.0;
    };
    // An operator may let anyone scrape the metrics (--metrics-public).
    if ctx.config.metrics_public && head.method == "GET" && head.path == "/admin/metrics" {
        let resp = metrics::get_metrics(ctx).await.unwrap_or_else(|e| error_response(e, &request_id, None));
        return write_response(conn, resp, &request_id, keep_alive, is_head).await.0;
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
    // Behind a trusted proxy, X-Forwarded-For and -Proto say who the client
    // is and whether it used TLS; from anyone else they are ignored.
    let hop_trusted = conn.hop.is_some_and(|a| ctx.config.trusted(a.ip()));
    let mut peer = conn.peer.map(|a| a.ip());
    if hop_trusted && let Some(xff) = head.header("x-forwarded-for") {
        peer = crate::http::proxy::forwarded_client(xff, |ip| ctx.config.trusted(ip)).or(peer);
    }
    let secure = hop_trusted && head.header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
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
        peer,
        secure,
        received: 0,
    };
    let mut metered = None;
    let mut operation = None;
    let result = if req.head.method == "OPTIONS" {
        cors::preflight(&req)
    } else {
        match prepare(&mut req, &target) {
            Ok(op) => {
                metered = meter::class_of(op);
                operation = Some(op);
                dispatch(op, &mut req, conn).await
            }
            Err(e) => Err(e),
        }
    };
    let mut error_code = None;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            error_code = Some(e.code);
            error_response(e, &request_id, Some(req.resource()))
        }
    };
    if req.head.method != "OPTIONS" {
        cors::decorate(&req, &mut resp);
    }
    // A body left unread would be parsed as the next request: drain a small
    // rest, otherwise close the connection after answering.
    let mut keep = keep_alive;
    if !req.body.is_done() {
        keep = keep && !req.expect_continue && req.body.drain(conn, 1 << 20).await.is_ok();
    }
    let (stored, status) = (resp.status < 300, resp.status);
    let ttfb = started.elapsed();
    let (written, sent) = write_response(conn, resp, &request_id, keep, is_head).await;
    if let (Some(class), Some(bucket)) = (metered, req.bucket.as_deref()) {
        let bytes_in = if stored { req.received } else { 0 };
        meter::record(&ctx.engine, bucket, &req.user, class, bytes_in, sent);
    }
    metrics::record(operation, status, started.elapsed().as_secs_f64(), req.bucket.as_deref(), req.received, sent);
    if access_log::enabled() {
        let name = match operation {
            Some(op) => metrics::op_name(op),
            None if req.head.method == "OPTIONS" => "Preflight".into(),
            None => "-".into(),
        };
        access_log::record(&access_log::Entry {
            time: xml::iso8601(now_ms()),
            request_id: &request_id,
            remote: req.peer.map(|p| p.to_string()),
            user: &req.user,
            operation: &name,
            bucket: req.bucket.as_deref(),
            key: req.key.as_deref(),
            status,
            error: error_code.map(|c| c.as_str()),
            bytes_in: req.received,
            bytes_out: sent,
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            ttfb_ms: ttfb.as_secs_f64() * 1e3,
        });
    }
    written && keep
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
        // Anonymous requests are decided like any other, by ACLs and policy.
        Identity::Anonymous => String::new(),
    };
    let state = req.bucket.as_deref().and_then(|b| ctx.engine.bucket(b));
    match access::check_of(op, req.head.has_query("versionId")) {
        access::Check::Account if req.user.is_empty() => return Err(access::denied()),
        access::Check::Account => {}
        // S3 tells anyone that a bucket does not exist.
        _ if state.is_none() && req.user.is_empty() => return Err(S3ErrorCode::NoSuchBucket.into()),
        // A POST upload is signed inside its form; the handler decides it.
        _ if op == Op::PostObject => {}
        access::Check::Bucket(action, need) => {
            if let Some(state) = &state {
                req.allowed(state, action, need, None)?;
            }
        }
        access::Check::Object => {}
    }
    // "x-amz-expected-bucket-owner": the request is for the bucket only if
    // the caller's idea of its owner is right (AccessDenied otherwise).
    if let (Some(want), Some(state)) = (req.head.header("x-amz-expected-bucket-owner"), &state) {
        let (id, _) = ctx.users.owner_of(&state.owner);
        if want != id && want != state.owner {
            return Err(access::denied());
        }
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
        Op::GetBucketAcl => acl::get_bucket_acl(req).await,
        Op::PutBucketAcl => acl::put_bucket_acl(req, conn).await,
        Op::GetObjectAcl => acl::get_object_acl(req).await,
        Op::PutObjectAcl => acl::put_object_acl(req, conn).await,
        Op::PutBucketCors => cors::put_bucket_cors(req, conn).await,
        Op::GetBucketCors => cors::get_bucket_cors(req).await,
        Op::DeleteBucketCors => cors::delete_bucket_cors(req).await,
        Op::GetBucketPolicy => acl::get_bucket_policy(req).await,
        Op::PutBucketPolicy => acl::put_bucket_policy(req, conn).await,
        Op::DeleteBucketPolicy => acl::delete_bucket_policy(req).await,
        Op::GetBucketPolicyStatus => acl::get_bucket_policy_status(req).await,
        Op::GetBucketOwnershipControls => acl::get_bucket_ownership_controls(req).await,
        Op::PutBucketOwnershipControls => acl::put_bucket_ownership_controls(req, conn).await,
        Op::DeleteBucketOwnershipControls => acl::delete_bucket_ownership_controls(req).await,
        Op::GetPublicAccessBlock => acl::get_public_access_block(req).await,
        Op::PutPublicAccessBlock => acl::put_public_access_block(req, conn).await,
        Op::DeletePublicAccessBlock => acl::delete_public_access_block(req).await,
        Op::AdminUsage => meter::get_usage(req).await,
        Op::AdminMetrics => {
            if req.ctx.users.admin().is_none_or(|u| u.access_key != req.user) {
                return Err(S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    "only the administrator reads the metrics",
                ));
            }
            metrics::get_metrics(req.ctx).await
        }
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
/// overlapping the socket write); returns false if the connection broke,
/// and the object bytes sent (the meter's bytes out).
async fn write_response(
    conn: &mut Conn,
    mut resp: Response,
    request_id: &str,
    keep_alive: bool,
    is_head: bool,
) -> (bool, u64) {
    resp.set_header("x-amz-request-id", request_id);
    resp.set_header("x-amz-id-2", access_log::host_id(request_id));
    let mut out = resp.encode_head(keep_alive);
    match resp.body {
        Body::Bytes(b) if !is_head => {
            out.extend_from_slice(&b);
            (conn.write_all(out).await.is_ok(), 0)
        }
        Body::Object { mut reader, .. } if !is_head => {
            if conn.write_all(out).await.is_err() {
                return (false, 0);
            }
            let mut sent = 0u64;
            let mut next = reader.next().await;
            while let Some(piece) = next {
                let (buf, range) = match piece {
                    Ok(p) => p,
                    Err(e) => {
                        // Damaged or unreadable data: cut the response short so
                        // the client sees a failed transfer, never wrong bytes.
                        tracing::warn!(error = %e, "cutting an object response short");
                        return (false, sent);
                    }
                };
                let len = range.len() as u64;
                let (w, n) = futures_util::future::join(conn.write_range(buf, range), reader.next()).await;
                let (w, buf) = w;
                if w.is_err() {
                    return (false, sent);
                }
                sent += len;
                reader.give_back(buf);
                next = n;
            }
            reader.finish();
            (true, sent)
        }
        _ => (conn.write_all(out).await.is_ok(), 0),
    }
}
