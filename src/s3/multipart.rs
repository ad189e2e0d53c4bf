//! Multipart uploads (AWS S3 API reference: CreateMultipartUpload,
//! UploadPart, UploadPartCopy, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads).
//!
//! Parts stream into the key's owning shard like PutObject bodies and are
//! kept as extents; completion writes one metadata record whose extents are
//! the parts' (no copy). The object's ETag is the MD5 of the parts' binary
//! MD5s with `-N`; its checksum is COMPOSITE (the checksum of the parts'
//! checksums, `-N`) or FULL_OBJECT (the parts' CRCs combined).

use crate::runtime::md5::Md5;

use super::checksum::{self, Hasher};
use super::copy::{Copied, Source, copy_bytes, source};
use super::error::{S3Error, S3ErrorCode};
use super::list::{KeyMarkerPage, page_size};
use super::object::{Received, check_key, invalid, object_meta, read_small_body, receive_body, write_condition};
use super::xml::{Xml, iso8601, url_encode};
use super::{Req, now_ms};
use crate::engine::shard::now_nanos;
use crate::engine::types::{Checksum, ChecksumAlgo, ETag, ObjectMeta, Upload, UploadId, VersionId, Versioning};
use crate::engine::{Commit, Error as EngineError, Target, UploadEntry, UploadsQuery};
use crate::http::conn::Conn;
use crate::http::response::Response;

/// Parts listed per ListParts page at most (AWS's limit).
const PARTS_PAGE_MAX: usize = 1000;
/// Largest CompleteMultipartUpload body read (10,000 parts with checksums).
const COMPLETE_BODY_BYTES_MAX: usize = 8 << 20;

fn upload_id(req: &Req<'_>) -> Result<UploadId, S3Error> {
    let raw = req.head.query_param("uploadId").unwrap_or_default();
    UploadId::parse(&raw).ok_or_else(|| S3ErrorCode::NoSuchUpload.into())
}

fn part_number(req: &Req<'_>) -> Result<u32, S3Error> {
    let max = req.ctx.config.parts_max;
    req.head
        .query_param("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| invalid(format!("Part number must be an integer between 1 and {max}, inclusive")))
}

/// `x-amz-checksum-algorithm` and `x-amz-checksum-type` of
/// CreateMultipartUpload: (algorithm, full object?).
fn upload_checksum(req: &Req<'_>) -> Result<Option<(ChecksumAlgo, bool)>, S3Error> {
    let bad = |m: &str| S3Error::with_message(S3ErrorCode::InvalidRequest, m);
    let algo = match req.head.header("x-amz-checksum-algorithm") {
        None => None,
        Some(a) => Some(ChecksumAlgo::from_name(a).ok_or_else(|| bad("Checksum algorithm provided is unsupported."))?),
    };
    let kind = req.head.header("x-amz-checksum-type").map(str::to_ascii_uppercase);
    let Some(algo) = algo else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(bad("The x-amz-checksum-type header requires x-amz-checksum-algorithm.")),
        };
    };
    let crc = matches!(algo, ChecksumAlgo::Crc32 | ChecksumAlgo::Crc32c | ChecksumAlgo::Crc64Nvme);
    let full = match kind.as_deref() {
        None => algo == ChecksumAlgo::Crc64Nvme,
        Some("FULL_OBJECT") if crc => true,
        Some("COMPOSITE") if algo != ChecksumAlgo::Crc64Nvme => false,
        Some("FULL_OBJECT" | "COMPOSITE") => {
            return Err(bad(&format!("The {} checksum algorithm does not support this checksum type.", algo.name())));
        }
        Some(_) => return Err(bad("Value for x-amz-checksum-type header is invalid.")),
    };
    Ok(Some((algo, full)))
}

fn checksum_type(full: bool) -> &'static str {
    if full { "FULL_OBJECT" } else { "COMPOSITE" }
}

/// The text form of a stored checksum: base64, with `-N` for COMPOSITE.
pub fn checksum_text(c: &Checksum) -> String {
    let v = checksum::encode_value(&c.value);
    if c.parts > 0 { format!("{v}-{}", c.parts) } else { v }
}

pub async fn create_multipart_upload(req: &mut Req<'_>) -> Result<Response, S3Error> {
    check_key(req)?;
    let engine = req.ctx.engine.clone();
    if engine.bucket(req.bucket()).is_none() {
        return Err(S3ErrorCode::NoSuchBucket.into());
    }
    let meta = object_meta(req)?;
    let checksum = upload_checksum(req)?;
    let id = UploadId::generate(now_nanos());
    let upload = Upload {
        id,
        initiated_ms: now_ms(),
        initiator: req.user.clone(),
        checksum,
        meta: crate::engine::types::MetaBlob::new(&meta),
        parts: Default::default(),
    };
    let initiated_ms = upload.initiated_ms;
    engine.create_upload(req.bucket(), req.key(), upload).await?;
    let mut x = Xml::new("InitiateMultipartUploadResult");
    x.elem("Bucket", req.bucket()).elem("Key", req.key()).elem("UploadId", &id.to_string());
    let mut resp = Response::xml(200, x.finish("InitiateMultipartUploadResult"));
    if let Some((date, rule)) = super::lifecycle::abort_headers(req, initiated_ms) {
        resp.set_header("x-amz-abort-date", date);
        resp.set_header("x-amz-abort-rule-id", rule);
    }
    if let Some((algo, full)) = checksum {
        resp.set_header("x-amz-checksum-algorithm", algo.name());
        resp.set_header("x-amz-checksum-type", checksum_type(full));
    }
    Ok(resp)
}

/// The upload a part request names, and its checksum algorithm checked
/// against the one the request declares.
async fn upload_for_part(req: &Req<'_>) -> Result<Upload, S3Error> {
    let id = upload_id(req)?;
    let u = req.ctx.engine.upload_header(req.bucket(), req.key(), id).await?;
    let declared = checksum::expected(&req.head)?.map(|e| e.algo);
    if let (Some((want, _)), Some(got)) = (u.checksum, declared)
        && want != got
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                want.header_suffix(),
                got.header_suffix()
            ),
        ));
    }
    Ok(u)
}

fn part_commit(
    req: &Req<'_>,
    upload: UploadId,
    number: u32,
    c: (Option<crate::engine::Chunk>, u64, [u8; 16]),
) -> Commit {
    let (tail, size, md5) = c;
    Commit {
        bucket: req.bucket().to_string(),
        key: req.key().to_string(),
        extents: Vec::new(),
        tail,
        size,
        etag: ETag { md5, parts: 0 },
        meta: ObjectMeta::default(),
        condition: crate::engine::Condition::None,
        now_ms: now_ms(),
        target: Target::Part { upload, number },
    }
}

pub async fn upload_part(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let number = part_number(req)?;
    let u = upload_for_part(req).await?;
    let limit = req.ctx.config.part_bytes_max;
    let Received { stream, tail, size, md5, checksum } =
        receive_body(req, conn, limit, u.checksum.map(|(a, _)| a)).await?;
    let mut commit = part_commit(req, u.id, number, (tail, size, md5));
    commit.meta.checksum = checksum.clone();
    stream.commit(commit).await?;
    let mut resp = Response::new(200).header("etag", ETag { md5, parts: 0 }.to_string());
    if let Some(c) = &checksum {
        resp.set_header(c.algo.header_name(), checksum::encode_value(&c.value));
    }
    Ok(resp)
}

/// `x-amz-copy-source-range: bytes=first-last` (inclusive) within `size`.
fn copy_range(v: Option<&str>, size: u64) -> Result<(u64, u64), S3Error> {
    let Some(v) = v else { return Ok((0, size)) };
    let form = || {
        invalid(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (a, b) = v.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(form)?;
    let (first, last) = (a.parse::<u64>().map_err(|_| form())?, b.parse::<u64>().map_err(|_| form())?);
    if first > last || last >= size {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRange,
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok((first, last + 1))
}

pub async fn upload_part_copy(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let number = part_number(req)?;
    let u = upload_for_part(req).await?;
    let Source { bucket, key, version: v, versioned, .. } = source(req).await?;
    let (start, end) = copy_range(req.head.header("x-amz-copy-source-range"), v.size)?;
    if end - start > req.ctx.config.part_bytes_max {
        return Err(S3ErrorCode::EntityTooLarge.into());
    }
    let engine = req.ctx.engine.clone();
    let mut stream = engine.put(req.bucket(), req.key());
    let algo = u.checksum.map(|(a, _)| a);
    let Copied { tail, md5, checksum } =
        copy_bytes(&engine, (&bucket, &key, &v), start, end, &mut stream, algo).await?;
    let mut commit = part_commit(req, u.id, number, (tail, end - start, md5));
    commit.meta.checksum = checksum.clone();
    let outcome = stream.commit(commit).await?;
    let mut x = Xml::new("CopyPartResult");
    x.elem("LastModified", &iso8601(outcome.mtime_ms)).elem("ETag", &ETag { md5, parts: 0 }.to_string());
    if let Some(c) = &checksum {
        x.elem(&format!("Checksum{}", c.algo.name()), &checksum::encode_value(&c.value));
    }
    let mut resp = Response::xml(200, x.finish("CopyPartResult"));
    if versioned || !v.id.is_null() {
        resp.set_header("x-amz-copy-source-version-id", v.id.to_string());
    }
    Ok(resp)
}

/// One `<Part>` of a CompleteMultipartUpload body.
#[derive(Debug, Default, PartialEq)]
struct ListedPart {
    number: u32,
    etag: String,
    /// `Checksum<ALGO>` elements given for the part.
    checksums: Vec<(ChecksumAlgo, String)>,
}

fn parse_complete(body: &[u8]) -> Result<Vec<ListedPart>, S3Error> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut parts = Vec::new();
    let mut part: Option<ListedPart> = None;
    let mut number_seen = false;
    let malformed = || S3Error::new(S3ErrorCode::MalformedXML);
    loop {
        match r.read_event().map_err(|_| malformed())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "Part" && path.len() == 1 {
                    part = Some(ListedPart::default());
                    number_seen = false;
                }
                path.push(name);
            }
            Event::End(_) => {
                if path.len() == 2 && path[1] == "Part" {
                    let p = part.take().ok_or_else(malformed)?;
                    if !number_seen || p.etag.is_empty() {
                        return Err(malformed());
                    }
                    parts.push(p);
                }
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| malformed())?.trim().to_string();
                let (Some(p), [root, part_tag, field]) = (part.as_mut(), path.as_slice()) else { continue };
                if root != "CompleteMultipartUpload" || part_tag != "Part" {
                    continue;
                }
                match field.as_str() {
                    "PartNumber" => {
                        p.number = text.parse().map_err(|_| malformed())?;
                        number_seen = true;
                    }
                    "ETag" => p.etag = text,
                    f => {
                        if let Some(algo) = f.strip_prefix("Checksum").and_then(ChecksumAlgo::from_name) {
                            p.checksums.push((algo, text));
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if path.is_empty() && parts.is_empty() {
        return Err(malformed());
    }
    Ok(parts)
}

/// An ETag as a client sends it back: quotes optional, hex in any case.
fn etag_md5(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().trim_matches('"');
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The object's checksum from its parts' checksums.
fn combined_checksum(algo: ChecksumAlgo, full: bool, parts: &[(&Checksum, u64)]) -> Checksum {
    if !full {
        let mut h = Hasher::new(algo);
        for (c, _) in parts {
            h.update(&c.value);
        }
        return Checksum { algo, value: h.finish(), parts: parts.len() as u32 };
    }
    use crc_fast::CrcAlgorithm as A;
    let (crc, width) = match algo {
        ChecksumAlgo::Crc32 => (A::Crc32IsoHdlc, 4),
        ChecksumAlgo::Crc32c => (A::Crc32Iscsi, 4),
        _ => (A::Crc64Nvme, 8),
    };
    let value_of = |c: &Checksum| c.value.iter().fold(0u64, |acc, b| acc << 8 | *b as u64);
    let mut acc = value_of(parts[0].0);
    for (c, len) in &parts[1..] {
        acc = crc_fast::checksum_combine(crc, acc, value_of(c), *len);
    }
    Checksum { algo, value: acc.to_be_bytes()[8 - width..].to_vec(), parts: 0 }
}

pub async fn complete_multipart_upload(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let id = upload_id(req)?;
    let condition = write_condition(req)?;
    let body = read_small_body(req, conn, COMPLETE_BODY_BYTES_MAX).await?;
    let listed = parse_complete(&body)?;
    if listed.is_empty() {
        return Err(S3Error::with_message(S3ErrorCode::MalformedXML, "You must specify at least one part"));
    }
    if listed.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(S3ErrorCode::InvalidPartOrder.into());
    }
    let engine = req.ctx.engine.clone();
    let u = match engine.upload(req.bucket(), req.key(), id).await {
        Err(EngineError::NoSuchUpload) => return repeated_complete(req, id, &listed).await,
        u => u?,
    };
    let cfg = &req.ctx.config;
    let mut chosen = Vec::with_capacity(listed.len());
    for (i, l) in listed.iter().enumerate() {
        let part = u.parts.get(&l.number).ok_or(S3ErrorCode::InvalidPart)?;
        if etag_md5(&l.etag) != Some(part.md5) {
            return Err(S3ErrorCode::InvalidPart.into());
        }
        for (algo, value) in &l.checksums {
            let stored = part.checksum.as_ref().filter(|c| c.algo == *algo);
            if stored.is_none_or(|c| checksum::encode_value(&c.value) != *value) {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidPart,
                    format!("The {} checksum of part {} does not match the uploaded part.", algo.name(), l.number),
                ));
            }
        }
        if i + 1 < listed.len() && part.size < cfg.part_bytes_min {
            return Err(S3ErrorCode::EntityTooSmall.into());
        }
        chosen.push((l.number, part));
    }
    let size: u64 = chosen.iter().map(|(_, p)| p.size).sum();
    if size > cfg.object_bytes_max {
        return Err(S3ErrorCode::EntityTooLarge.into());
    }
    let mut md5s = Md5::new();
    for (_, p) in &chosen {
        md5s.update(&p.md5);
    }
    let etag = ETag { md5: md5s.finalize(), parts: chosen.len() as u32 };
    let mut meta = u.meta.get();
    meta.part_sizes = chosen.iter().map(|(_, p)| p.size).collect();
    meta.completed_upload = Some(id);
    if let Some((algo, full)) = u.checksum {
        let mut sums = Vec::with_capacity(chosen.len());
        for (n, p) in &chosen {
            let c = p.checksum.as_ref().filter(|c| c.algo == algo).ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InvalidPart, format!("Part {n} has no {} checksum.", algo.name()))
            })?;
            sums.push((c, p.size));
        }
        let c = combined_checksum(algo, full, &sums);
        meta.part_checksums = sums.iter().map(|(c, _)| c.value.clone()).collect();
        let header = algo.header_name();
        // The whole object's checksum, when the client states it: the
        // combined CRC, or the checksum of the parts' checksums (`-N` optional).
        if let Some(v) = req.head.header(header) {
            let v = if full { v } else { v.rsplit_once('-').map_or(v, |(b, _)| b) };
            checksum::verify(algo, &checksum::decode_value(algo, v)?, c.value.clone())?;
        }
        meta.checksum = Some(c);
    }
    let parts = chosen.iter().map(|(n, p)| (*n, p.md5, p.size)).collect();
    let commit = Commit {
        bucket: req.bucket().to_string(),
        key: req.key().to_string(),
        extents: Vec::new(),
        tail: None,
        size,
        etag,
        meta: meta.clone(),
        condition,
        now_ms: now_ms(),
        target: Target::Complete { upload: id, parts },
    };
    let outcome = match engine.put(req.bucket(), req.key()).commit(commit).await {
        // A twin of this request completed the upload meanwhile.
        Err(EngineError::NoSuchUpload) => return repeated_complete(req, id, &listed).await,
        o => o?,
    };
    Ok(complete_result(req, &etag, meta.checksum.as_ref(), outcome.versioned.then_some(outcome.version_id)))
}

fn complete_result(req: &Req<'_>, etag: &ETag, checksum: Option<&Checksum>, version: Option<VersionId>) -> Response {
    let host = req.head.header("host").unwrap_or("localhost");
    let mut x = Xml::new("CompleteMultipartUploadResult");
    x.elem("Location", &format!("http://{host}/{}/{}", req.bucket(), url_encode(req.key())))
        .elem("Bucket", req.bucket())
        .elem("Key", req.key())
        .elem("ETag", &etag.to_string());
    if let Some(c) = checksum {
        x.elem(&format!("Checksum{}", c.algo.name()), &checksum_text(c));
        x.elem("ChecksumType", checksum_type(c.parts == 0));
    }
    let mut resp = Response::xml(200, x.finish("CompleteMultipartUploadResult"));
    if let Some(v) = version {
        resp.set_header("x-amz-version-id", v.to_string());
    }
    resp
}

/// A CompleteMultipartUpload of an upload already completed: S3 answers it
/// again as it did the first time when the part list is the same (SDKs
/// retry a Complete whose response was lost), from the version the upload
/// made, while that version exists.
async fn repeated_complete(req: &Req<'_>, id: UploadId, listed: &[ListedPart]) -> Result<Response, S3Error> {
    let engine = &req.ctx.engine;
    let versions = engine.versions(req.bucket(), req.key()).await?;
    let made = versions.iter().find(|v| !v.delete_marker && v.meta.get().completed_upload == Some(id));
    let Some(v) = made else { return Err(S3ErrorCode::NoSuchUpload.into()) };
    // Another part list did not make this version: the upload is gone.
    let mut md5s = Md5::new();
    for l in listed {
        md5s.update(&etag_md5(&l.etag).ok_or(S3ErrorCode::NoSuchUpload)?);
    }
    if v.etag != (ETag { md5: md5s.finalize(), parts: listed.len() as u32 }) {
        return Err(S3ErrorCode::NoSuchUpload.into());
    }
    let versioned = engine.bucket(req.bucket()).is_some_and(|b| b.versioning != Versioning::Unversioned);
    Ok(complete_result(req, &v.etag, v.meta.get().checksum.as_ref(), versioned.then_some(v.id)))
}

pub async fn abort_multipart_upload(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let id = upload_id(req)?;
    req.ctx.engine.abort_upload(req.bucket(), req.key(), id).await?;
    Ok(Response::new(204))
}

pub async fn list_parts(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let id = upload_id(req)?;
    let h = &req.head;
    let max = page_size(h, "max-parts", PARTS_PAGE_MAX)?;
    let marker = match h.query_param("part-number-marker").filter(|m| !m.is_empty()) {
        None => 0,
        Some(m) => m.parse::<u32>().map_err(|_| invalid("Provided part-number-marker not an integer"))?,
    };
    let u = req.ctx.engine.upload(req.bucket(), req.key(), id).await?;
    let mut after = u.parts.range(marker.saturating_add(1)..);
    let page: Vec<_> = after.by_ref().take(max).collect();
    let truncated = after.next().is_some();
    let mut x = Xml::new("ListPartsResult");
    x.elem("Bucket", req.bucket()).elem("Key", req.key()).elem("UploadId", &id.to_string());
    x.elem("PartNumberMarker", &marker.to_string());
    if let Some((n, _)) = page.last() {
        x.elem("NextPartNumberMarker", &n.to_string());
    }
    x.elem("MaxParts", &max.to_string()).elem("IsTruncated", if truncated { "true" } else { "false" });
    for (n, p) in &page {
        x.open("Part")
            .elem("PartNumber", &n.to_string())
            .elem("LastModified", &iso8601(p.mtime_ms))
            .elem("ETag", &ETag { md5: p.md5, parts: 0 }.to_string())
            .elem("Size", &p.size.to_string());
        if let Some(c) = &p.checksum {
            x.elem(&format!("Checksum{}", c.algo.name()), &checksum::encode_value(&c.value));
        }
        x.close("Part");
    }
    // The Owner is who will own the object: the writer, or the bucket
    // owner where Object Ownership gives it everything.
    let meta = u.meta.get();
    let bucket_owner = req.ctx.engine.bucket(req.bucket()).map(|b| b.owner).unwrap_or_default();
    let owner = req.ctx.users.owner_of(meta.owner.as_deref().unwrap_or(&bucket_owner));
    x.owner("Initiator", &req.ctx.users.owner_of(&u.initiator)).owner("Owner", &owner);
    x.elem("StorageClass", meta.storage_class.as_deref().unwrap_or("STANDARD"));
    if let Some((algo, full)) = u.checksum {
        x.elem("ChecksumAlgorithm", algo.name()).elem("ChecksumType", checksum_type(full));
    }
    Ok(Response::xml(200, x.finish("ListPartsResult")))
}

pub async fn list_multipart_uploads(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let h = &req.head;
    let engine = &req.ctx.engine;
    if engine.bucket(req.bucket()).is_none() {
        return Err(S3ErrorCode::NoSuchBucket.into());
    }
    let page = KeyMarkerPage::parse(h, "max-uploads", req.ctx.config.list_keys_max)?;
    // Without a key marker the upload-id marker is ignored (AWS).
    let upload_marker = match h.query_param("upload-id-marker").filter(|m| !m.is_empty() && !page.key_marker.is_empty())
    {
        None => None,
        Some(m) => Some(UploadId::parse(&m).ok_or_else(|| invalid("Invalid uploadId marker"))?),
    };
    let (entries, truncated) = if page.max == 0 {
        (Vec::new(), false)
    } else {
        let q = UploadsQuery {
            prefix: page.prefix.clone(),
            delimiter: page.delimiter.clone(),
            key_marker: page.key_marker.clone(),
            upload_marker,
            limit: page.max,
        };
        engine.list_uploads(req.bucket(), q).await?
    };
    let enc = |s: &str| page.show(s);
    let mut x = Xml::new("ListMultipartUploadsResult");
    x.elem("Bucket", req.bucket()).elem("KeyMarker", &enc(&page.key_marker));
    x.elem("UploadIdMarker", &upload_marker.map(|m| m.to_string()).unwrap_or_default());
    if truncated && let Some(last) = entries.last() {
        x.elem("NextKeyMarker", &enc(last.name()));
        if let UploadEntry::Upload(u) = last {
            x.elem("NextUploadIdMarker", &u.id.to_string());
        }
    }
    if let Some(d) = &page.delimiter {
        x.elem("Delimiter", &enc(d));
    }
    x.elem("Prefix", &enc(&page.prefix)).elem("MaxUploads", &page.max.to_string());
    if page.url {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", if truncated { "true" } else { "false" });
    for e in &entries {
        let UploadEntry::Upload(u) = e else { continue };
        x.open("Upload").elem("Key", &enc(&u.key)).elem("UploadId", &u.id.to_string());
        let initiator = req.ctx.users.owner_of(&u.initiator);
        x.owner("Initiator", &initiator).owner("Owner", &initiator);
        x.elem("StorageClass", u.storage_class.as_deref().unwrap_or("STANDARD"))
            .elem("Initiated", &iso8601(u.initiated_ms));
        if let Some((algo, full)) = u.checksum {
            x.elem("ChecksumAlgorithm", algo.name()).elem("ChecksumType", checksum_type(full));
        }
        x.close("Upload");
    }
    for e in &entries {
        if let UploadEntry::Prefix(p) = e {
            x.common_prefix(&enc(p));
        }
    }
    Ok(Response::xml(200, x.finish("ListMultipartUploadsResult")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_body() {
        let xml = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Part><ETag>"aa"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
            <Part><PartNumber>3</PartNumber><ETag>bb</ETag></Part></CompleteMultipartUpload>"#;
        let parts = parse_complete(xml).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].number, parts[0].etag.as_str()), (1, "\"aa\""));
        assert_eq!(parts[0].checksums, vec![(ChecksumAlgo::Crc32, "AAAAAA==".to_string())]);
        assert_eq!(parts[1].number, 3);
        assert!(
            parse_complete(b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>").is_err()
        );
        assert!(parse_complete(b"not xml <<").is_err());
    }

    #[test]
    fn full_object_crc_combines_like_one_pass() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, b) = data.split_at(61_234);
        for algo in [ChecksumAlgo::Crc32, ChecksumAlgo::Crc32c, ChecksumAlgo::Crc64Nvme] {
            let sum = |d: &[u8]| {
                let mut h = Hasher::new(algo);
                h.update(d);
                Checksum { algo, value: h.finish(), parts: 0 }
            };
            let (ca, cb) = (sum(a), sum(b));
            let combined = combined_checksum(algo, true, &[(&ca, a.len() as u64), (&cb, b.len() as u64)]);
            assert_eq!(combined, sum(&data), "{algo:?}");
        }
    }

    #[test]
    fn composite_checksum_text() {
        let c = combined_checksum(ChecksumAlgo::Crc32, false, &[]);
        assert_eq!(c.parts, 0);
        let one = Checksum { algo: ChecksumAlgo::Crc32, value: vec![0, 0, 0, 1], parts: 0 };
        let c = combined_checksum(ChecksumAlgo::Crc32, false, &[(&one, 1), (&one, 1)]);
        assert!(checksum_text(&c).ends_with("-2"));
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), (0, 10));
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=5-10"), 10).unwrap_err().code, S3ErrorCode::InvalidRange);
        assert_eq!(copy_range(Some("bytes=5-"), 10).unwrap_err().code, S3ErrorCode::InvalidArgument);
        assert_eq!(copy_range(Some("bytes=6-5"), 10).unwrap_err().code, S3ErrorCode::InvalidRange);
    }
}
