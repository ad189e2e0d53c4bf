//! CopyObject (AWS S3 API reference "CopyObject"): the source is read from
//! the engine and written as a new object, with the metadata directive,
//! copy-source conditions and version ids AWS defines.

use super::access::{Need, Perm};
use super::checksum::{self, Hasher};
use super::error::{S3Error, S3ErrorCode};
use super::object::{check_key, invalid, object_meta, write_condition};
use super::xml::{Xml, iso8601};
use super::{Req, now_ms};
use crate::engine::segment::format::CHUNK_PAYLOAD_BYTES;
use crate::engine::types::{Checksum, ChecksumAlgo, ETag, Version, VersionId};
use crate::engine::{Chunk, Commit};
use crate::http::response::Response;

/// Largest object CopyObject copies in one request (larger ones need
/// UploadPartCopy), per AWS.
const COPY_SOURCE_BYTES_MAX: u64 = 5 << 30;

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=id]`, URL-encoded.
fn parse_source(v: &str) -> Result<(String, String, Option<VersionId>), S3Error> {
    let (path, query) = v.split_once('?').unwrap_or((v, ""));
    let path = crate::http::head::decode(path.trim_start_matches('/'));
    let (bucket, key) = path
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| invalid("Copy Source must mention the source bucket and key: sourcebucket/sourcekey"))?;
    let mut version = None;
    for (k, val) in crate::http::head::query_pairs(query) {
        if k == "versionId" {
            version = Some(VersionId::parse(&val).ok_or_else(|| invalid("Invalid version id specified"))?);
        }
    }
    Ok((bucket.to_string(), key.to_string(), version))
}

/// `x-amz-copy-source-if-*`, evaluated like GET's conditions except that a
/// failure is always 412 (AWS "CopyObject", request headers).
fn check_source_conditions(req: &Req<'_>, v: &Version) -> Result<(), S3Error> {
    let h = &req.head;
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let date = |name: &str| h.header(name).and_then(|d| httpdate::parse_http_date(d).ok()).map(unix);
    let mtime = v.mtime_ms / 1000;
    let fail = || Err(S3ErrorCode::PreconditionFailed.into());
    let if_match = h.header("x-amz-copy-source-if-match");
    let if_none = h.header("x-amz-copy-source-if-none-match");
    if let Some(m) = if_match {
        if !crate::engine::etag_matches(m, &v.etag) {
            return fail();
        }
    } else if date("x-amz-copy-source-if-unmodified-since").is_some_and(|d| mtime > d) {
        return fail();
    }
    if let Some(m) = if_none {
        if crate::engine::etag_matches(m, &v.etag) {
            return fail();
        }
    } else if date("x-amz-copy-source-if-modified-since").is_some_and(|d| mtime <= d) {
        return fail();
    }
    Ok(())
}

/// Bytes copied from a source version into a destination stream.
pub(super) struct Copied {
    pub tail: Option<Chunk>,
    pub md5: [u8; 16],
    pub checksum: Option<Checksum>,
}

/// Streams bytes `[start, end)` of a source version into `stream` in full
/// chunks (the last one returned as the tail), recomputing MD5 and, when
/// `algo` is given, that checksum.
pub(super) async fn copy_bytes(
    engine: &crate::engine::Engine,
    (bucket, key, v): (&str, &str, &Version),
    start: u64,
    end: u64,
    stream: &mut crate::engine::PutStream,
    algo: Option<ChecksumAlgo>,
) -> Result<Copied, S3Error> {
    let mut reader = engine.read(bucket, key, v, start, end);
    let mut md5 = crate::runtime::md5::Md5::new();
    let mut hasher = algo.map(Hasher::new);
    let mut out = Chunk::buffer();
    let mut fill = 0usize;
    let chunk = CHUNK_PAYLOAD_BYTES as usize;
    let mut digest = |out: &crate::runtime::buf::AlignedBuf, len: usize| {
        let payload = &out.full()[Chunk::PAYLOAD_AT..Chunk::PAYLOAD_AT + len];
        md5.update(payload);
        if let Some(h) = hasher.as_mut() {
            h.update(payload);
        }
        crate::engine::segment::format::payload_hash(payload)
    };
    while let Some(piece) = reader.next().await {
        let (buf, range) = piece?;
        let mut data = &buf.full()[range];
        while !data.is_empty() {
            let n = data.len().min(chunk - fill);
            out.full_mut()[Chunk::PAYLOAD_AT + fill..Chunk::PAYLOAD_AT + fill + n].copy_from_slice(&data[..n]);
            fill += n;
            data = &data[n..];
            if fill == chunk {
                let hash = digest(&out, chunk);
                out = stream.write(Chunk { buf: out, len: chunk, hash }).await?;
                fill = 0;
            }
        }
        reader.give_back(buf);
    }
    reader.finish();
    let hash = digest(&out, fill);
    let tail = if fill > 0 {
        Some(Chunk { buf: out, len: fill, hash })
    } else {
        out.recycle();
        None
    };
    let checksum = match (algo, hasher) {
        (Some(a), Some(h)) => Some(Checksum { algo: a, value: h.finish(), parts: 0 }),
        _ => None,
    };
    Ok(Copied { tail, md5: md5.finalize(), checksum })
}

/// The version `x-amz-copy-source` names, checked: the caller owns its
/// bucket, it is not a delete marker, and the copy-source conditions hold.
pub(super) struct Source {
    pub bucket: String,
    pub key: String,
    /// The version id the request named, if any.
    pub asked: Option<VersionId>,
    pub version: Version,
    /// Whether the source bucket has versioning (enabled or suspended).
    pub versioned: bool,
}

pub(super) async fn source(req: &Req<'_>) -> Result<Source, S3Error> {
    let engine = &req.ctx.engine;
    let raw_source = req.head.header("x-amz-copy-source").unwrap_or_default().to_string();
    let (bucket, key, asked) = parse_source(&raw_source)?;
    let state = engine.bucket(&bucket).ok_or(S3ErrorCode::NoSuchBucket)?;
    let found = engine.get(&bucket, &key, asked).await;
    let version = match found {
        Err(crate::engine::Error::MethodNotAllowed(_)) => {
            return Err(invalid(
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            ));
        }
        // The source is read as a GetObject of it would be decided.
        found => req.check_object_in(
            &bucket,
            &key,
            &state,
            "s3:GetObject",
            Need::Object(Perm::Read),
            asked.is_some(),
            found,
        )?,
    };
    check_source_conditions(req, &version)?;
    let versioned = state.versioning != crate::engine::Versioning::Unversioned;
    Ok(Source { bucket, key, asked, version, versioned })
}

pub async fn copy_object(req: &mut Req<'_>) -> Result<Response, S3Error> {
    check_key(req)?;
    let engine = req.ctx.engine.clone();
    let dest = engine.bucket(req.bucket()).ok_or(S3ErrorCode::NoSuchBucket)?;
    let Source { bucket: src_bucket, key: src_key, asked: src_version, version: v, versioned } = source(req).await?;
    if v.size > COPY_SOURCE_BYTES_MAX {
        return Err(invalid(format!(
            "The specified copy source is larger than the maximum allowable size for a copy source: {COPY_SOURCE_BYTES_MAX}"
        )));
    }
    let replace = match req.head.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => return Err(invalid("Unknown metadata directive.")),
    };
    let same = src_bucket == req.bucket() && src_key == req.key() && src_version.is_none_or(|id| id == v.id);
    let changes_class = req.head.header("x-amz-storage-class").is_some();
    if same && !replace && !changes_class && dest.versioning == crate::engine::Versioning::Unversioned {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let mut meta = if replace { object_meta(req)? } else { v.meta.get() };
    if !replace && let Some(sc) = req.head.header("x-amz-storage-class") {
        meta.storage_class = Some(sc.to_string());
    }
    // A copy is a new object: the writer's, with the ACL the request sets.
    if !replace {
        let state = engine.bucket(req.bucket()).ok_or(S3ErrorCode::NoSuchBucket)?;
        (meta.owner, meta.acl) = super::acl::for_new_object(req, &state)?;
    }
    meta.part_sizes.clear();
    meta.completed_upload = None;
    meta.part_checksums.clear();
    meta.tags = match req.head.header("x-amz-tagging-directive") {
        None | Some("COPY") => v.meta.get().tags,
        Some("REPLACE") => super::tagging::from_header(req)?,
        Some(_) => return Err(invalid("Unknown tagging directive.")),
    };
    let algo = match req.head.header("x-amz-checksum-algorithm") {
        Some(a) => Some(ChecksumAlgo::from_name(a).ok_or_else(|| invalid("Checksum algorithm is not supported"))?),
        None => v.meta.get().checksum.as_ref().map(|c| c.algo),
    };
    let condition = write_condition(req)?;

    let mut stream = engine.put(req.bucket(), req.key());
    let copied = copy_bytes(&engine, (&src_bucket, &src_key, &v), 0, v.size, &mut stream, algo).await?;
    meta.checksum = copied.checksum;
    let tail = copied.tail;
    let etag = ETag { md5: copied.md5, parts: 0 };
    let now = now_ms();
    let commit = Commit {
        bucket: req.bucket().to_string(),
        key: req.key().to_string(),
        extents: Vec::new(),
        tail,
        size: v.size,
        etag,
        meta: meta.clone(),
        condition,
        target: crate::engine::Target::Object,
        now_ms: now,
    };
    let outcome = stream.commit(commit).await?;
    let mut x = Xml::new("CopyObjectResult");
    x.elem("LastModified", &iso8601(now)).elem("ETag", &etag.to_string());
    if let Some(c) = &meta.checksum {
        x.elem(&format!("Checksum{}", c.algo.name()), &checksum::encode_value(&c.value));
    }
    let mut resp = Response::xml(200, x.finish("CopyObjectResult"));
    if outcome.versioned {
        resp.set_header("x-amz-version-id", outcome.version_id.to_string());
    }
    if versioned || !v.id.is_null() {
        resp.set_header("x-amz-copy-source-version-id", v.id.to_string());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_forms() {
        let (b, k, v) = parse_source("/bkt/a%20b%2Bc").unwrap();
        assert_eq!((b.as_str(), k.as_str(), v), ("bkt", "a b+c", None));
        let (_, _, v) = parse_source("bkt/k?versionId=null").unwrap();
        assert_eq!(v, Some(VersionId::NULL));
        assert!(parse_source("bkt").is_err());
        assert!(parse_source("bkt/k?versionId=zz").is_err());
    }
}
