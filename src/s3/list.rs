//! ListObjects (v1) and ListObjectsV2: prefix, delimiter, pagination and
//! `encoding-type=url` exactly as AWS shapes them (FIELD_NOTES B7).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;

use super::Req;
use super::error::{S3Error, S3ErrorCode};
use super::xml::{Xml, iso8601, url_encode};
use crate::engine::index::map::after_prefix;
use crate::engine::{ListEntry, ListQuery};
use crate::http::response::Response;

fn invalid(msg: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg)
}

/// `encoding-type`: absent, or `url`.
pub(super) fn url_encoding(h: &crate::http::head::Head) -> Result<bool, S3Error> {
    match h.query_param("encoding-type").as_deref() {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(invalid("Invalid Encoding Method specified in Request")),
    }
}

/// A page-size parameter (`max-keys`, `max-uploads`, `max-parts`): an
/// integer, negative read as 0, capped at `cap` (its default).
pub(super) fn page_size(h: &crate::http::head::Head, name: &str, cap: usize) -> Result<usize, S3Error> {
    let n = match h.query_param(name) {
        None => cap,
        Some(m) => m
            .parse::<i64>()
            .map_err(|_| invalid(&format!("Provided {name} not an integer or within integer range")))?
            .max(0) as usize,
    };
    Ok(n.min(cap))
}

/// The query shared by the listings paged with a key marker and a second marker within a
/// key (ListObjectVersions, ListMultipartUploads): prefix, delimiter, key-marker,
/// encoding-type and the page size named `max_param`.
pub(super) struct KeyMarkerPage {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub url: bool,
    pub max: usize,
}

impl KeyMarkerPage {
    pub fn parse(h: &crate::http::head::Head, max_param: &str, cap: usize) -> Result<Self, S3Error> {
        Ok(KeyMarkerPage {
            prefix: h.query_param("prefix").unwrap_or_default(),
            delimiter: h.query_param("delimiter").filter(|d| !d.is_empty()),
            key_marker: h.query_param("key-marker").unwrap_or_default(),
            url: url_encoding(h)?,
            max: page_size(h, max_param, cap)?,
        })
    }

    /// A name as the response shows it: URL-encoded with `encoding-type=url`.
    pub fn show(&self, s: &str) -> String {
        if self.url { url_encode(s) } else { s.to_string() }
    }
}

pub async fn list_objects(req: &mut Req<'_>, v2: bool) -> Result<Response, S3Error> {
    let h = &req.head;
    let engine = &req.ctx.engine;
    let Some(bucket_owner) = engine.bucket(req.bucket()).map(|b| b.owner) else {
        return Err(S3ErrorCode::NoSuchBucket.into());
    };
    let prefix = h.query_param("prefix").unwrap_or_default();
    let delimiter = h.query_param("delimiter").filter(|d| !d.is_empty());
    let url = url_encoding(h)?;
    let max_keys = page_size(h, "max-keys", req.ctx.config.list_keys_max)?;
    let token = h.query_param("continuation-token");
    let start_after = h.query_param("start-after");
    let marker = h.query_param("marker");
    let after: Vec<u8> = if v2 {
        match &token {
            Some(t) => TOKEN.decode(t).map_err(|_| invalid("The continuation token provided is incorrect"))?,
            None => start_after.clone().unwrap_or_default().into_bytes(),
        }
    } else {
        marker.clone().unwrap_or_default().into_bytes()
    };
    let (entries, truncated) = if max_keys == 0 {
        (Vec::new(), false)
    } else {
        let query = ListQuery { prefix: prefix.clone(), delimiter: delimiter.clone(), after, limit: max_keys };
        engine.list(req.bucket(), query).await?
    };
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let mut x = Xml::new("ListBucketResult");
    // ListObjects (V1) echoes Prefix as sent even under encoding-type=url
    // (the SDKs decode it only in V2 answers).
    x.elem("Name", req.bucket()).elem("Prefix", &if v2 { enc(&prefix) } else { prefix.clone() });
    if v2 {
        if let Some(t) = &token {
            x.elem("ContinuationToken", t);
        }
        if let Some(s) = &start_after {
            x.elem("StartAfter", &enc(s));
        }
        let key_count = entries.len().to_string();
        x.elem("KeyCount", &key_count);
    } else {
        x.elem("Marker", &enc(marker.as_deref().unwrap_or("")));
    }
    x.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = &delimiter {
        x.elem("Delimiter", &enc(d));
    }
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", if truncated { "true" } else { "false" });
    if truncated && let Some(last) = entries.last() {
        let next = match last {
            ListEntry::Prefix(p) => after_prefix(p),
            ListEntry::Object(o) => o.key.as_bytes().to_vec(),
        };
        if v2 {
            x.elem("NextContinuationToken", &TOKEN.encode(next));
        } else if delimiter.is_some() {
            // V1 sends NextMarker only with a delimiter (AWS ListObjects).
            x.elem("NextMarker", &enc(last.name()));
        }
    }
    let fetch_owner = !v2 || h.query_param("fetch-owner").as_deref() == Some("true");
    for e in &entries {
        if let ListEntry::Object(o) = e {
            x.open("Contents")
                .elem("Key", &enc(&o.key))
                .elem("LastModified", &iso8601(o.mtime_ms))
                .elem("ETag", &o.etag.to_string())
                .elem("Size", &o.size.to_string())
                .elem("StorageClass", o.storage_class.as_deref().unwrap_or("STANDARD"));
            if fetch_owner {
                x.owner("Owner", &req.ctx.users.owner_of(o.owner.as_deref().unwrap_or(&bucket_owner)));
            }
            x.close("Contents");
        }
    }
    for e in &entries {
        if let ListEntry::Prefix(p) = e {
            x.common_prefix(&enc(p));
        }
    }
    Ok(Response::xml(200, x.finish("ListBucketResult")))
}
