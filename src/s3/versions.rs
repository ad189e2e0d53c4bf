//! ListObjectVersions (AWS S3 API reference "ListObjectVersions"): every
//! version and delete marker, keys in order and newest first within a key,
//! with key-marker / version-id-marker pagination.

use super::Req;
use super::error::{S3Error, S3ErrorCode};
use super::xml::{Xml, iso8601};
use crate::engine::VersionsQuery;
use crate::engine::index::map::VersionEntry;
use crate::engine::types::VersionId;
use crate::http::response::Response;

fn invalid(msg: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg)
}

pub async fn list_object_versions(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let h = &req.head;
    let engine = &req.ctx.engine;
    let Some(bucket_owner) = engine.bucket(req.bucket()).map(|b| b.owner) else {
        return Err(S3ErrorCode::NoSuchBucket.into());
    };
    let page = super::list::KeyMarkerPage::parse(h, "max-keys", req.ctx.config.list_keys_max)?;
    let version_marker = match h.query_param("version-id-marker").filter(|v| !v.is_empty()) {
        None => None,
        Some(_) if page.key_marker.is_empty() => {
            return Err(invalid("A version-id marker cannot be specified without a key marker."));
        }
        Some(v) => Some(VersionId::parse(&v).ok_or_else(|| invalid("Invalid version id specified"))?),
    };
    let (entries, truncated) = if page.max == 0 {
        (Vec::new(), false)
    } else {
        let q = VersionsQuery {
            prefix: page.prefix.clone(),
            delimiter: page.delimiter.clone(),
            key_marker: page.key_marker.clone(),
            version_marker,
            limit: page.max,
        };
        engine.list_versions(req.bucket(), q).await?
    };
    let enc = |s: &str| page.show(s);
    let mut x = Xml::new("ListVersionsResult");
    x.elem("Name", req.bucket()).elem("Prefix", &enc(&page.prefix)).elem("KeyMarker", &enc(&page.key_marker));
    x.elem("VersionIdMarker", &version_marker.map(|v| v.to_string()).unwrap_or_default());
    if truncated && let Some(last) = entries.last() {
        x.elem("NextKeyMarker", &enc(last.name()));
        if let VersionEntry::Version { version, .. } = last {
            x.elem("NextVersionIdMarker", &version.id.to_string());
        }
    }
    x.elem("MaxKeys", &page.max.to_string());
    if let Some(d) = &page.delimiter {
        x.elem("Delimiter", &enc(d));
    }
    if page.url {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", if truncated { "true" } else { "false" });
    for e in &entries {
        let VersionEntry::Version { key, version: v } = e else { continue };
        let tag = if v.delete_marker { "DeleteMarker" } else { "Version" };
        x.open(tag)
            .elem("Key", &enc(key))
            .elem("VersionId", &v.id.to_string())
            .elem("IsLatest", if v.latest { "true" } else { "false" })
            .elem("LastModified", &iso8601(v.mtime_ms));
        if !v.delete_marker {
            x.elem("ETag", &v.etag.to_string())
                .elem("Size", &v.size.to_string())
                .elem("StorageClass", v.storage_class.as_deref().unwrap_or("STANDARD"));
        }
        x.owner("Owner", &req.ctx.users.owner_of(v.owner.as_deref().unwrap_or(&bucket_owner)));
        x.close(tag);
    }
    for e in &entries {
        if let VersionEntry::Prefix(p) = e {
            x.common_prefix(&enc(p));
        }
    }
    Ok(Response::xml(200, x.finish("ListVersionsResult")))
}
