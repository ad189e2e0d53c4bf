//! GetObjectAttributes (AWS S3 API reference): an object's ETag, checksum,
//! parts, storage class and size, without its body; parts paginated with
//! `x-amz-max-parts` and `x-amz-part-number-marker`.

use super::Req;
use super::checksum::encode_value;
use super::error::{S3Error, S3ErrorCode};
use super::multipart::checksum_text;
use super::object::{checksum_type_name, invalid, version_param};
use super::xml::{Xml, http_date};
use crate::engine::Versioning;
use crate::http::response::Response;

/// Parts listed per page at most (and by default), as ListParts.
const PARTS_PAGE_MAX: usize = 1000;

/// The attributes a request may name in `x-amz-object-attributes`.
const NAMES: [&str; 5] = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"];

fn wanted(req: &Req<'_>) -> Result<Vec<&'static str>, S3Error> {
    let mut out = Vec::new();
    for h in req.head.headers.iter().filter(|(n, _)| n == "x-amz-object-attributes") {
        for name in h.1.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let known =
                NAMES.iter().find(|k| **k == name).ok_or_else(|| invalid("Invalid attribute name specified."))?;
            out.push(*known);
        }
    }
    if out.is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    Ok(out)
}

/// A non-negative integer header, `default` when absent.
fn number(req: &Req<'_>, name: &str, default: usize) -> Result<usize, S3Error> {
    match req.head.header(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| invalid(format!("Provided {name} is not a non-negative integer"))),
    }
}

pub async fn get_object_attributes(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let wanted = wanted(req)?;
    let version = version_param(req)?;
    let max_parts = number(req, "x-amz-max-parts", PARTS_PAGE_MAX)?.min(PARTS_PAGE_MAX);
    let marker = number(req, "x-amz-part-number-marker", 0)?;
    let engine = &req.ctx.engine;
    let Some(bucket) = engine.bucket(req.bucket()) else {
        return Err(S3ErrorCode::NoSuchBucket.into());
    };
    let found = engine.get(req.bucket(), req.key(), version).await;
    let v = req.check_object(
        &bucket,
        "s3:GetObjectAttributes",
        super::access::Need::Object(super::access::Perm::Read),
        found,
    )?;
    let m = v.meta.get();
    let mut x = Xml::new("GetObjectAttributesResponse");
    for name in wanted {
        match name {
            "ETag" => {
                x.elem("ETag", v.etag.to_string().trim_matches('"'));
            }
            "Checksum" => {
                if let Some(c) = &m.checksum {
                    x.open("Checksum")
                        .elem(&format!("Checksum{}", c.algo.name()), &checksum_text(c))
                        .elem("ChecksumType", checksum_type_name(c))
                        .close("Checksum");
                }
            }
            // Only an object uploaded in parts has parts to tell.
            "ObjectParts" if !m.part_sizes.is_empty() => {
                let count = m.part_sizes.len();
                let first = marker.min(count);
                let last = first.saturating_add(max_parts).min(count);
                x.open("ObjectParts")
                    .elem("PartsCount", &count.to_string())
                    .elem("PartNumberMarker", &marker.to_string())
                    .elem("MaxParts", &max_parts.to_string())
                    .elem("IsTruncated", if last < count { "true" } else { "false" });
                if last < count {
                    x.elem("NextPartNumberMarker", &last.to_string());
                }
                for i in first..last {
                    x.open("Part").elem("PartNumber", &(i + 1).to_string()).elem("Size", &m.part_sizes[i].to_string());
                    if let (Some(c), Some(value)) = (&m.checksum, m.part_checksums.get(i)) {
                        x.elem(&format!("Checksum{}", c.algo.name()), &encode_value(value));
                    }
                    x.close("Part");
                }
                x.close("ObjectParts");
            }
            "StorageClass" => {
                x.elem("StorageClass", m.storage_class.as_deref().unwrap_or("STANDARD"));
            }
            "ObjectSize" => {
                x.elem("ObjectSize", &v.size.to_string());
            }
            _ => {}
        }
    }
    let mut resp = Response::xml(200, x.finish("GetObjectAttributesResponse"));
    resp.set_header("last-modified", http_date(v.mtime_ms));
    if bucket.versioning != Versioning::Unversioned || !v.id.is_null() {
        resp.set_header("x-amz-version-id", v.id.to_string());
    }
    Ok(resp)
}
