//! Object operations: PutObject, GetObject, HeadObject, DeleteObject,
//! DeleteObjects (AWS S3 API reference pages of the same names).

use crate::runtime::md5::Md5;
use sha2::Sha256;

use super::checksum::{self, Hasher};
use super::error::{S3Error, S3ErrorCode};
use super::xml::{Xml, http_date};
use super::{Req, now_ms};
use crate::auth::PayloadCheck;
use crate::engine::segment::format::CHUNK_PAYLOAD_BYTES;
use crate::engine::types::{Checksum, ChecksumAlgo, ETag, ObjectMeta, Version, VersionId};
use crate::engine::{Chunk, Commit, Condition, PutStream};
use crate::http::aws_chunked::AwsChunked;
use crate::http::conn::Conn;
use crate::http::form::Form;
use crate::http::response::{Body, Response};

const STORED_HEADERS: [&str; 6] =
    ["content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires"];

pub(super) fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg)
}

/// Metadata from the request headers, within AWS's limits.
pub(super) fn object_meta(req: &Req<'_>) -> Result<ObjectMeta, S3Error> {
    let h = &req.head;
    let mut m = ObjectMeta::default();
    let slots = [
        &mut m.content_type,
        &mut m.content_encoding,
        &mut m.content_disposition,
        &mut m.content_language,
        &mut m.cache_control,
        &mut m.expires,
    ];
    for (name, slot) in STORED_HEADERS.iter().zip(slots) {
        *slot = h.header(name).map(str::to_string);
    }
    // aws-chunked is transport framing, never part of the stored encoding.
    if let Some(enc) = &m.content_encoding {
        let rest: Vec<&str> =
            enc.split(',').map(str::trim).filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty()).collect();
        m.content_encoding = (!rest.is_empty()).then(|| rest.join(", "));
    }
    let mut user_bytes = 0;
    for (n, v) in &h.headers {
        if let Some(k) = n.strip_prefix("x-amz-meta-") {
            user_bytes += k.len() + v.len();
            m.user.push((k.to_string(), v.to_string()));
        }
    }
    if user_bytes > req.ctx.config.user_metadata_bytes_max {
        return Err(S3ErrorCode::MetadataTooLarge.into());
    }
    if let Some(sc) = h.header("x-amz-storage-class") {
        if !matches!(
            sc,
            "STANDARD"
                | "REDUCED_REDUNDANCY"
                | "STANDARD_IA"
                | "ONEZONE_IA"
                | "INTELLIGENT_TIERING"
                | "GLACIER"
                | "DEEP_ARCHIVE"
                | "GLACIER_IR"
        ) {
            return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid storage class."));
        }
        m.storage_class = Some(sc.to_string());
    }
    m.tags = super::tagging::from_header(req)?;
    let state = req.ctx.engine.bucket(req.bucket()).ok_or(S3ErrorCode::NoSuchBucket)?;
    (m.owner, m.acl) = super::acl::for_new_object(req, &state)?;
    Ok(m)
}

pub(super) fn check_key(req: &Req<'_>) -> Result<(), S3Error> {
    if req.key().len() > req.ctx.config.key_bytes_max {
        return Err(S3ErrorCode::KeyTooLongError.into());
    }
    Ok(())
}

pub(super) fn write_condition(req: &Req<'_>) -> Result<Condition, S3Error> {
    let h = &req.head;
    let value = |name| h.header(name).map(|v: &str| v.trim().to_string());
    match (value("if-match"), value("if-none-match")) {
        (None, None) => Ok(Condition::None),
        (if_match, if_none_match) => Ok(Condition::Match { if_match, if_none_match }),
    }
}

/// Where body bytes come from: raw, decoded from aws-chunked, or the file
/// part of a POST form.
pub(super) enum Source {
    Raw,
    AwsChunked(AwsChunked),
    Form(Form),
}

impl Source {
    /// Fills `buf[at..at+max]`; returns bytes read (0 at the end).
    async fn fill(
        &mut self,
        req: &mut Req<'_>,
        conn: &mut Conn,
        mut buf: crate::runtime::buf::AlignedBuf,
        at: usize,
        max: usize,
    ) -> (Result<usize, S3Error>, crate::runtime::buf::AlignedBuf) {
        match self {
            Source::AwsChunked(a) => {
                let r = a.read(conn, &mut req.body, &mut buf.full_mut()[at..at + max]).await;
                (r.map_err(S3Error::from), buf)
            }
            Source::Form(f) => {
                let r = f.read_file(conn, &mut req.body, &mut buf.full_mut()[at..at + max]).await;
                (r.map_err(S3Error::from), buf)
            }
            Source::Raw => {
                let (r, b) = req.body.read_into(conn, buf, at, max).await;
                (r.map_err(S3Error::from), b)
            }
        }
    }

    fn trailers(&self) -> &[(String, String)] {
        match self {
            Source::AwsChunked(a) => &a.trailers,
            _ => &[],
        }
    }
}

/// What the client declared about the body it sends.
#[derive(Default)]
pub(super) struct Declared {
    pub content_md5: Option<[u8; 16]>,
    pub checksum: Option<checksum::Expected>,
    pub sha256: Option<[u8; 32]>,
    pub len: Option<u64>,
}

/// Every digest computed while a body streams through.
struct Digests {
    md5: Md5,
    sha256: Option<Sha256>,
    checksum: Option<Hasher>,
}

impl Digests {
    /// Every digest but the MD5, which `receive` batches with the core's
    /// other uploads.
    fn update_but_md5(&mut self, data: &[u8]) {
        if let Some(s) = self.sha256.as_mut() {
            sha2::Digest::update(s, data);
        }
        if let Some(c) = self.checksum.as_mut() {
            c.update(data);
        }
    }
}

/// A request body received into the log: full chunks written to the key's
/// owning shard, the last one held for the commit, every declared digest
/// checked.
pub(super) struct Received {
    pub stream: PutStream,
    pub tail: Option<Chunk>,
    pub size: u64,
    pub md5: [u8; 16],
    pub checksum: Option<Checksum>,
}

/// Streams the body (raw or aws-chunked) into the key's owning shard chunk
/// by chunk. Refuses bodies over `limit` bytes; computes `compute`'s
/// checksum when the client declares none.
pub(super) async fn receive_body(
    req: &mut Req<'_>,
    conn: &mut Conn,
    limit: u64,
    compute: Option<ChecksumAlgo>,
) -> Result<Received, S3Error> {
    let content_md5 = match req.head.header("content-md5") {
        Some(v) => Some(decode_md5(v)?),
        None => None,
    };
    let expected = checksum::expected(&req.head)?;
    let payload = req.payload.take().unwrap_or(PayloadCheck::Unsigned);
    let (source, sha256) = match payload {
        PayloadCheck::Sha256(h) => (Source::Raw, Some(h)),
        PayloadCheck::Unsigned => (Source::Raw, None),
        PayloadCheck::StreamingSigned { verifier, trailer } => {
            (Source::AwsChunked(AwsChunked::new(Some(verifier), trailer)), None)
        }
        PayloadCheck::StreamingUnsignedTrailer => (Source::AwsChunked(AwsChunked::new(None, false)), None),
    };
    let len = if matches!(source, Source::AwsChunked(_)) {
        let d = req.head.header("x-amz-decoded-content-length").ok_or(S3ErrorCode::MissingContentLength)?;
        Some(d.trim().parse::<u64>().map_err(|_| invalid("x-amz-decoded-content-length is not a number"))?)
    } else {
        if req.body.declared_len().is_none() && !req.head.is_chunked() {
            return Err(S3ErrorCode::MissingContentLength.into());
        }
        req.body.declared_len()
    };
    if len.is_some_and(|d| d > limit) {
        return Err(S3ErrorCode::EntityTooLarge.into());
    }
    req.continue_body(conn).await?;
    let declared = Declared { content_md5, checksum: expected, sha256, len };
    receive(req, conn, source, declared, limit, compute).await
}

/// Streams bytes from `source` into the key's owning shard and checks them
/// against what was declared.
pub(super) async fn receive(
    req: &mut Req<'_>,
    conn: &mut Conn,
    mut source: Source,
    declared: Declared,
    limit: u64,
    compute: Option<ChecksumAlgo>,
) -> Result<Received, S3Error> {
    let Declared { content_md5, checksum: expected, sha256: sha256_expected, len: declared } = declared;
    let algo = expected.as_ref().map(|e| e.algo).or(compute);
    let mut digests = Digests {
        md5: Md5::for_body(declared),
        sha256: sha256_expected.map(|_| sha2::Digest::new()),
        checksum: algo.map(Hasher::new),
    };
    let engine = req.ctx.engine.clone();
    let mut stream = engine.put(req.bucket(), req.key());
    let mut buf = Chunk::buffer_for(declared);
    let mut size = 0u64;
    let at = Chunk::PAYLOAD_AT;
    let tail = loop {
        let chunk = Chunk::room(&buf);
        let mut len = 0usize;
        while len < chunk {
            let (r, b) = source.fill(req, conn, buf, at + len, chunk - len).await;
            buf = b;
            let n = r?;
            if n == 0 {
                break;
            }
            len += n;
        }
        size += len as u64;
        if size > limit {
            return Err(S3ErrorCode::EntityTooLarge.into());
        }
        if len == chunk && chunk < CHUNK_PAYLOAD_BYTES as usize {
            // The right-sized buffer overflowed: more bytes than declared.
            return Err(S3ErrorCode::IncompleteBody.into());
        }
        let payload = &buf.full()[at..at + len];
        digests.update_but_md5(payload);
        let hash = crate::engine::segment::format::payload_hash(payload);
        buf = digests.md5.update_batched(buf, at..at + len).await;
        if len < chunk {
            if len == 0 {
                buf.recycle();
                break None;
            }
            break Some(Chunk { buf, len, hash });
        }
        buf = stream.write(Chunk { buf, len, hash }).await?;
    };
    if declared.is_some_and(|d| d != size) {
        return Err(S3ErrorCode::IncompleteBody.into());
    }
    let md5 = digests.md5.finalize();
    if let (Some(want), Some(have)) = (sha256_expected, digests.sha256.take()) {
        let have: [u8; 32] = sha2::Digest::finalize(have).into();
        crate::auth::verify_payload_sha256(&want, &have)?;
    }
    if content_md5.is_some_and(|c| c != md5) {
        return Err(S3ErrorCode::BadDigest.into());
    }
    let checksum = match (&expected, digests.checksum.take()) {
        (Some(e), Some(h)) => {
            let declared = match &e.value {
                Some(v) => v.clone(),
                None => {
                    let name = e.algo.header_name();
                    let v = source.trailers().iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).ok_or_else(
                        || {
                            S3Error::with_message(
                                S3ErrorCode::IncompleteBody,
                                "The trailing checksum header is missing",
                            )
                        },
                    )?;
                    checksum::decode_value(e.algo, &v)?
                }
            };
            Some(checksum::verify(e.algo, &declared, h.finish())?)
        }
        (None, Some(h)) => algo.map(|algo| Checksum { algo, value: h.finish(), parts: 0 }),
        _ => None,
    };
    req.received += size;
    Ok(Received { stream, tail, size, md5, checksum })
}

/// PutObject: streams the body into the key's owning shard chunk by chunk,
/// checks every declared digest, then commits (nothing is visible before).
pub async fn put_object(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    check_key(req)?;
    if req.ctx.engine.bucket(req.bucket()).is_none() {
        return Err(S3ErrorCode::NoSuchBucket.into());
    }
    let meta = object_meta(req)?;
    let condition = write_condition(req)?;
    let limit = req.ctx.config.put_bytes_max;
    let received = receive_body(req, conn, limit, None).await?;
    commit_object(req, received, meta, condition).await
}

/// Commits a received body as the key's new version and answers as
/// PutObject does (ETag, version id, checksum).
pub(super) async fn commit_object(
    req: &Req<'_>,
    received: Received,
    mut meta: ObjectMeta,
    condition: Condition,
) -> Result<Response, S3Error> {
    let Received { stream, tail, size, md5, checksum } = received;
    meta.checksum = checksum;
    let etag = ETag { md5, parts: 0 };
    let commit = Commit {
        bucket: req.bucket().to_string(),
        key: req.key().to_string(),
        extents: Vec::new(),
        tail,
        size,
        etag,
        meta: meta.clone(),
        condition,
        target: crate::engine::Target::Object,
        now_ms: now_ms(),
    };
    let outcome = stream.commit(commit).await?;
    let mut resp = Response::new(200).header("etag", etag.to_string());
    if outcome.versioned {
        resp.set_header("x-amz-version-id", outcome.version_id.to_string());
    }
    if let Some(e) = super::lifecycle::expiration_header(req, size, &meta.tags, outcome.mtime_ms) {
        resp.set_header("x-amz-expiration", e);
    }
    if let Some(c) = &meta.checksum {
        resp.set_header(c.algo.header_name(), checksum::encode_value(&c.value));
    }
    Ok(resp)
}

pub(super) fn decode_md5(v: &str) -> Result<[u8; 16], S3Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| S3ErrorCode::InvalidDigest.into())
}

pub(super) fn version_param(req: &Req<'_>) -> Result<Option<VersionId>, S3Error> {
    match req.head.query_param("versionId") {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(invalid("Version id cannot be the empty string")),
        Some(v) => VersionId::parse(&v).map(Some).ok_or_else(|| invalid("Invalid version id specified")),
    }
}

/// Evaluates If-Match / If-None-Match / If-(Un)Modified-Since in AWS's
/// precedence (RFC 7232 §6): a failed If-Match is 412 even when
/// If-Unmodified-Since holds; a matching If-None-Match is 304.
fn check_read_conditions(req: &Req<'_>, v: &Version) -> Result<(), S3Error> {
    let h = &req.head;
    let date = |name: &str| h.header(name).and_then(|d| httpdate::parse_http_date(d).ok());
    let mtime_s = v.mtime_ms / 1000;
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let etag_hdr = |hdr: &str| crate::engine::etag_matches(hdr, &v.etag);
    let precondition = || S3Error::new(S3ErrorCode::PreconditionFailed);
    let not_modified = || {
        S3Error::new(S3ErrorCode::NotModified)
            .header("etag", v.etag.to_string())
            .header("last-modified", http_date(v.mtime_ms))
    };
    match h.header("if-match") {
        Some(m) if !etag_hdr(m) => return Err(precondition()),
        Some(_) => {}
        None => {
            if date("if-unmodified-since").is_some_and(|d| mtime_s > unix(d)) {
                return Err(precondition());
            }
        }
    }
    match h.header("if-none-match") {
        Some(m) if etag_hdr(m) => return Err(not_modified()),
        Some(_) => {}
        None => {
            if date("if-modified-since").is_some_and(|d| mtime_s <= unix(d)) {
                return Err(not_modified());
            }
        }
    }
    Ok(())
}

/// Parses a single byte range; None means "ignore the header" (AWS serves
/// the whole object for a syntactically invalid Range).
fn parse_range(v: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { size } else { b.parse::<u64>().ok()?.saturating_add(1).min(size) };
        if !b.is_empty() && b.parse::<u64>().ok()? < start {
            return None;
        }
        if start >= size {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(r))
}

/// GetObject and HeadObject.
pub async fn get_object(req: &mut Req<'_>, head_only: bool) -> Result<Response, S3Error> {
    let version = version_param(req)?;
    let part = match req.head.query_param("partNumber") {
        None => None,
        Some(n) => {
            let max = req.ctx.config.parts_max;
            let n = n.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
            Some(n.ok_or_else(|| invalid(format!("Part number must be an integer between 1 and {max}, inclusive")))?)
        }
    };
    if part.is_some() && req.head.has_header("range") {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    let engine = &req.ctx.engine;
    let Some(state) = engine.bucket(req.bucket()) else {
        return Err(S3ErrorCode::NoSuchBucket.into());
    };
    // (A delete marker by id answers 405 with the marker's headers.)
    let found = engine.get(req.bucket(), req.key(), version).await;
    let v = req.check_object(&state, "s3:GetObject", super::access::Need::Object(super::access::Perm::Read), found)?;
    check_read_conditions(req, &v)?;
    let mut resp = Response::new(200)
        .header("etag", v.etag.to_string())
        .header("last-modified", http_date(v.mtime_ms))
        .header("accept-ranges", "bytes");
    let versioned = state.versioning != crate::engine::Versioning::Unversioned;
    if versioned || !v.id.is_null() {
        resp.set_header("x-amz-version-id", v.id.to_string());
    }
    let mut range = req.head.header("range").and_then(|r| parse_range(r, v.size));
    if let Some(n) = part {
        let m = v.meta.get();
        range = Some(Ok(part_range(&m.part_sizes, n, v.size)?));
        if !m.part_sizes.is_empty() {
            resp.set_header("x-amz-mp-parts-count", m.part_sizes.len().to_string());
        }
        // A part read carries that part's checksum, as S3 gives it.
        if checksum_mode(req)
            && let (Some(c), Some(value)) = (&m.checksum, m.part_checksums.get(n as usize - 1))
        {
            resp.set_header(c.algo.header_name(), super::checksum::encode_value(value));
            resp.set_header("x-amz-checksum-type", checksum_type_name(c));
        }
    }
    // A ranged answer carries no whole-object checksum (clients would check
    // the part they got against it).
    object_headers(req, &v, &mut resp, range.is_none());
    let (start, end) = match range {
        None => (0, v.size),
        // An empty part: nothing to give a range for.
        Some(Ok((s, e))) if e == s => (s, e),
        Some(Ok((s, e))) => {
            resp.status = 206;
            resp.set_header("content-range", format!("bytes {}-{}/{}", s, e - 1, v.size));
            (s, e)
        }
        Some(Err(())) => {
            return Err(S3Error::new(S3ErrorCode::InvalidRange).header("content-range", format!("bytes */{}", v.size)));
        }
    };
    resp.body = if head_only {
        Body::Head(end - start)
    } else if end == start {
        Body::Empty
    } else {
        Body::Object { reader: engine.read(req.bucket(), req.key(), &v, start, end), len: end - start }
    };
    Ok(resp)
}

/// A user metadata value as S3 returns it: as stored when it is printable
/// US-ASCII, else RFC 2047-encoded (`=?UTF-8?B?…?=`), since HTTP header
/// values are not UTF-8 (AWS, "Working with object metadata").
fn mail_safe(value: &str) -> String {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t') {
        return value.to_string();
    }
    use base64::Engine as _;
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(value))
}

/// Bytes `[start, end)` of part `n` of an object with parts of `sizes`
/// (an object not uploaded in parts is its own part 1).
fn part_range(sizes: &[u64], n: u32, size: u64) -> Result<(u64, u64), S3Error> {
    let n = n as usize;
    if sizes.is_empty() && n == 1 {
        return Ok((0, size));
    }
    if n > sizes.len() {
        // AWS answers a part the object does not have with 400 InvalidPart.
        return Err(S3Error::with_message(S3ErrorCode::InvalidPart, "The requested partnumber is not satisfiable"));
    }
    let start: u64 = sizes[..n - 1].iter().sum();
    Ok((start, start + sizes[n - 1]))
}

fn object_headers(req: &Req<'_>, v: &Version, resp: &mut Response, whole: bool) {
    let m = &v.meta.get();
    let stored = [
        &m.content_type,
        &m.content_encoding,
        &m.content_disposition,
        &m.content_language,
        &m.cache_control,
        &m.expires,
    ];
    for (name, value) in STORED_HEADERS.iter().zip(stored) {
        let over = req.head.query_param(&format!("response-{name}"));
        match (over, value) {
            (Some(o), _) => resp.set_header(name, o),
            (None, Some(v)) => resp.set_header(name, v.clone()),
            (None, None) if *name == "content-type" => resp.set_header(name, "binary/octet-stream"),
            _ => {}
        }
    }
    for (k, val) in &m.user {
        resp.set_header(&format!("x-amz-meta-{k}"), mail_safe(val));
    }
    // Rules act on current versions; an older one asked for by id shows none.
    if req.head.query_param("versionId").is_none()
        && let Some(e) = super::lifecycle::expiration_header(req, v.size, &m.tags, v.mtime_ms)
    {
        resp.set_header("x-amz-expiration", e);
    }
    if !m.tags.is_empty() {
        resp.set_header("x-amz-tagging-count", m.tags.len().to_string());
    }
    if let Some(sc) = &m.storage_class
        && sc != "STANDARD"
    {
        resp.set_header("x-amz-storage-class", sc.clone());
    }
    if let (true, Some(c)) = (whole && checksum_mode(req), &m.checksum) {
        resp.set_header(c.algo.header_name(), super::multipart::checksum_text(c));
        resp.set_header("x-amz-checksum-type", checksum_type_name(c));
    }
}

/// Whether the client asked for checksums (`x-amz-checksum-mode: ENABLED`).
fn checksum_mode(req: &Req<'_>) -> bool {
    req.head.header("x-amz-checksum-mode").is_some_and(|v| v.eq_ignore_ascii_case("enabled"))
}

/// COMPOSITE (a checksum of part checksums) or FULL_OBJECT.
pub(super) fn checksum_type_name(c: &Checksum) -> &'static str {
    if c.parts > 0 { "COMPOSITE" } else { "FULL_OBJECT" }
}

/// DeleteObject: 204, with the marker or version it touched.
pub async fn delete_object(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let version = version_param(req)?;
    let o = req.ctx.engine.delete(req.bucket(), req.key(), version, now_ms()).await?;
    let mut resp = Response::new(204);
    if o.delete_marker {
        resp.set_header("x-amz-delete-marker", "true");
    }
    if let Some(id) = o.version_id {
        resp.set_header("x-amz-version-id", id.to_string());
    }
    Ok(resp)
}

/// DeleteObjects: up to 1000 keys per request, with quiet mode.
pub async fn delete_objects(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let body = read_small_body(req, conn, 2 << 20).await?;
    let (quiet, objects) = parse_delete(&body)?;
    if objects.len() > req.ctx.config.delete_objects_keys_max || objects.is_empty() {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    let mut x = Xml::new("DeleteResult");
    for (key, version) in objects {
        let parsed = match &version {
            None => Ok(None),
            Some(v) => VersionId::parse(v).map(Some).ok_or(()),
        };
        let result = match parsed {
            Ok(id) => req.ctx.engine.delete(req.bucket(), &key, id, now_ms()).await.map_err(S3Error::from),
            Err(()) => Err(invalid("Invalid version id specified")),
        };
        match result {
            Ok(o) => {
                if quiet {
                    continue;
                }
                x.open("Deleted").elem("Key", &key);
                if let Some(v) = &version {
                    x.elem("VersionId", v);
                }
                if o.delete_marker {
                    x.elem("DeleteMarker", "true");
                    if let Some(id) = o.version_id.filter(|_| version.is_none()) {
                        x.elem("DeleteMarkerVersionId", &id.to_string());
                    }
                }
                x.close("Deleted");
            }
            Err(e) => {
                x.open("Error").elem("Key", &key);
                if let Some(v) = &version {
                    x.elem("VersionId", v);
                }
                x.elem("Code", e.code.as_str()).elem("Message", &e.message).close("Error");
            }
        }
    }
    Ok(Response::xml(200, x.finish("DeleteResult")))
}

/// Reads a whole small request body (XML documents), decoding aws-chunked.
pub async fn read_small_body(req: &mut Req<'_>, conn: &mut Conn, max: usize) -> Result<Vec<u8>, S3Error> {
    if req.body.declared_len().is_some_and(|n| n > max as u64) {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    req.continue_body(conn).await?;
    let payload = req.payload.take().unwrap_or(PayloadCheck::Unsigned);
    let sha256_expected = match &payload {
        PayloadCheck::Sha256(w) => Some(*w),
        _ => None,
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut aws = match payload {
        PayloadCheck::StreamingSigned { verifier, trailer } => Some(AwsChunked::new(Some(verifier), trailer)),
        PayloadCheck::StreamingUnsignedTrailer => Some(AwsChunked::new(None, false)),
        _ => None,
    };
    loop {
        let n = match aws.as_mut() {
            Some(a) => a.read(conn, &mut req.body, &mut buf).await?,
            None => req.body.read(conn, &mut buf).await?,
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(S3ErrorCode::MalformedXML.into());
        }
    }
    if let Some(want) = sha256_expected {
        let have: [u8; 32] = <Sha256 as sha2::Digest>::digest(&out).into();
        crate::auth::verify_payload_sha256(&want, &have)?;
    }
    if let Some(m) = req.head.header("content-md5") {
        let have = Md5::digest(&out);
        if decode_md5(m)? != have {
            return Err(S3ErrorCode::BadDigest.into());
        }
    }
    Ok(out)
}

/// Parses `<Delete><Quiet/>?<Object><Key/><VersionId/>?</Object>*</Delete>`.
/// (key, version id) pairs of a DeleteObjects request.
type DeleteList = Vec<(String, Option<String>)>;

fn parse_delete(body: &[u8]) -> Result<(bool, DeleteList), S3Error> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut quiet = false;
    let mut objects = Vec::new();
    let mut key: Option<String> = None;
    let mut version: Option<String> = None;
    let malformed = || S3Error::new(S3ErrorCode::MalformedXML);
    loop {
        match r.read_event().map_err(|_| malformed())? {
            Event::Start(e) => path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned()),
            Event::Empty(e) if e.local_name().as_ref() == b"Key" && path.last().is_some_and(|p| p == "Object") => {
                key = Some(String::new());
            }
            Event::End(_) if path.last().is_some_and(|p| p == "Object") => {
                path.pop();
                objects.push((key.take().ok_or_else(malformed)?, version.take()));
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| malformed())?.into_owned();
                match path.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                    ["Delete", "Quiet"] => quiet = text.trim() == "true",
                    ["Delete", "Object", "Key"] => key = Some(key.unwrap_or_default() + &text),
                    ["Delete", "Object", "VersionId"] => version = Some(text),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(malformed());
    }
    Ok((quiet, objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_outside_ascii_are_rfc2047_encoded() {
        assert_eq!(mail_safe("plain value\t1"), "plain value\t1");
        assert_eq!(mail_safe("Hello World\u{e9}"), "=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?=");
        assert_eq!(mail_safe("a\nb"), "=?UTF-8?B?YQpi?=");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=-200", 100), Some(Ok((0, 100))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 100))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=9-0", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn delete_xml() {
        let (q, o) = parse_delete(b"<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>null</VersionId></Object></Delete>").unwrap();
        assert!(q);
        assert_eq!(o, vec![("a&b".to_string(), None), ("c".to_string(), Some("null".to_string()))]);
        assert!(parse_delete(b"<Delete><Object><Key>a</Key>").is_err());
    }
}
