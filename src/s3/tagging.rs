//! Object and bucket tagging (AWS S3 API reference: PutObjectTagging,
//! GetObjectTagging, DeleteObjectTagging, PutBucketTagging, GetBucketTagging,
//! DeleteBucketTagging; user guide "Categorizing your storage using tags").
//! An object's tags live in its version's metadata; a bucket's tag set is
//! one of the bucket's configuration documents.

use super::error::{S3Error, S3ErrorCode};
use super::object::{read_small_body, version_param};
use super::xml::Xml;
use super::{Req, bucket};
use crate::http::conn::Conn;
use crate::http::response::Response;

/// Tags per object and per bucket (AWS's limits).
pub const OBJECT_TAGS_MAX: usize = 10;
pub const BUCKET_TAGS_MAX: usize = 50;
/// Unicode characters in a tag key and a tag value.
const TAG_KEY_CHARS_MAX: usize = 128;
const TAG_VALUE_CHARS_MAX: usize = 256;
/// A tagging document larger than this is not one AWS would accept either.
const TAGGING_BODY_BYTES_MAX: usize = 64 << 10;

pub type Tags = Vec<(String, String)>;

fn invalid_tag(msg: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, msg)
}

/// Checks a tag set against AWS's rules and puts it in key order (the order
/// S3 returns tags in).
pub fn validate(mut tags: Tags, max: usize, what: &str) -> Result<Tags, S3Error> {
    if tags.len() > max {
        return Err(S3Error::with_message(
            S3ErrorCode::BadRequest,
            format!("{what} tags cannot be greater than {max}"),
        ));
    }
    for (k, v) in &tags {
        if k.is_empty() {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if k.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(invalid_tag("The TagKey you have provided is too long, max 128"));
        }
        if v.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(invalid_tag("The TagValue you have provided is too long, max 256"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
    }
    tags.sort();
    if tags.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(invalid_tag("Cannot provide multiple Tags with the same key"));
    }
    Ok(tags)
}

/// The tag set of a `<Tagging><TagSet><Tag>…` document (not yet validated).
pub fn parse_tagging(body: &[u8]) -> Result<Tags, S3Error> {
    let root = super::xml::parse(body)?;
    let set = match (root.name.as_str(), root.child("TagSet")) {
        ("Tagging", Some(set)) => set,
        _ => return Err(S3ErrorCode::MalformedXML.into()),
    };
    parse_tag_list(set.all("Tag"))
}

/// `<Tag><Key>k</Key><Value>v</Value></Tag>` elements as pairs.
pub fn parse_tag_list<'a>(tags: impl Iterator<Item = &'a super::xml::Node>) -> Result<Tags, S3Error> {
    tags.map(|t| match (t.child("Key"), t.child("Value")) {
        (Some(k), Some(v)) => Ok((k.text.clone(), v.text.clone())),
        _ => Err(S3ErrorCode::MalformedXML.into()),
    })
    .collect()
}

/// The `x-amz-tagging` header: URL query encoding (`k1=v1&k2`), validated.
pub fn parse_header(value: &str) -> Result<Tags, S3Error> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid_tag("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
    };
    let mut tags = Vec::new();
    for pair in value.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    validate(tags, OBJECT_TAGS_MAX, "Object")
}

/// The request's `x-amz-tagging` tags (none without the header).
pub fn from_header(req: &Req<'_>) -> Result<Tags, S3Error> {
    req.head.header("x-amz-tagging").map_or(Ok(Vec::new()), parse_header)
}

fn tagging_xml(tags: &[(String, String)]) -> String {
    let mut x = Xml::new("Tagging");
    x.open("TagSet");
    for (k, v) in tags {
        x.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
    }
    x.close("TagSet");
    x.finish("Tagging")
}

pub(super) fn with_version(resp: Response, req: &Req<'_>, id: crate::engine::VersionId) -> Response {
    let versioned =
        req.ctx.engine.bucket(req.bucket()).is_some_and(|b| b.versioning != crate::engine::Versioning::Unversioned);
    match versioned || !id.is_null() {
        true => resp.header("x-amz-version-id", id.to_string()),
        false => resp,
    }
}

/// The version a tagging request is about, if the requester may touch its tags.
async fn tagged_version(req: &Req<'_>, action: &'static str) -> Result<crate::engine::Version, S3Error> {
    let state = bucket::existing(req)?;
    let found = req.ctx.engine.get(req.bucket(), req.key(), version_param(req)?).await;
    req.check_object(&state, action, super::access::Need::ObjectOwner, found)
}

pub async fn put_object_tagging(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    tagged_version(req, "s3:PutObjectTagging").await?;
    let version = version_param(req)?;
    let body = read_small_body(req, conn, TAGGING_BODY_BYTES_MAX).await?;
    let tags = validate(parse_tagging(&body)?, OBJECT_TAGS_MAX, "Object")?;
    let id = req.ctx.engine.set_tags(req.bucket(), req.key(), version, tags).await?;
    Ok(with_version(Response::new(200), req, id))
}

pub async fn get_object_tagging(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let v = tagged_version(req, "s3:GetObjectTagging").await?;
    let resp = Response::xml(200, tagging_xml(&v.meta.get().tags));
    Ok(with_version(resp, req, v.id))
}

pub async fn delete_object_tagging(req: &mut Req<'_>) -> Result<Response, S3Error> {
    tagged_version(req, "s3:DeleteObjectTagging").await?;
    let version = version_param(req)?;
    let id = req.ctx.engine.set_tags(req.bucket(), req.key(), version, Vec::new()).await?;
    Ok(with_version(Response::new(204), req, id))
}

/// The bucket configuration document holding its tag set.
const BUCKET_TAGGING: &str = "tagging";

pub async fn put_bucket_tagging(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let body = read_small_body(req, conn, TAGGING_BODY_BYTES_MAX).await?;
    let tags = validate(parse_tagging(&body)?, BUCKET_TAGS_MAX, "Bucket")?;
    let doc = tagging_xml(&tags).into_bytes();
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_TAGGING, Some(doc)).await?;
    Ok(Response::new(204))
}

pub async fn get_bucket_tagging(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    match state.config(BUCKET_TAGGING) {
        Some(doc) => Ok(Response::xml(200, String::from_utf8_lossy(doc).into_owned())),
        None => Err(S3ErrorCode::NoSuchTagSet.into()),
    }
}

pub async fn delete_bucket_tagging(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_TAGGING, None).await?;
    Ok(Response::new(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Tags {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn header_form_decodes_and_sorts() {
        assert_eq!(parse_header("foo=bar&bar").unwrap(), pairs(&[("bar", ""), ("foo", "bar")]));
        assert_eq!(parse_header("a%20b=c+d&x=%C3%A9").unwrap(), pairs(&[("a b", "c d"), ("x", "é")]));
    }

    #[test]
    fn limits_give_aws_errors() {
        let code = |r: Result<Tags, S3Error>| r.unwrap_err().code;
        let many: Tags = (0..11).map(|i| (i.to_string(), String::new())).collect();
        assert_eq!(code(validate(many, OBJECT_TAGS_MAX, "Object")), S3ErrorCode::BadRequest);
        let long_key = vec![("k".repeat(129), String::new())];
        assert_eq!(code(validate(long_key, 10, "Object")), S3ErrorCode::InvalidTag);
        let long_value = vec![("k".into(), "é".repeat(257))];
        assert_eq!(code(validate(long_value, 10, "Object")), S3ErrorCode::InvalidTag);
        assert!(validate(vec![("é".repeat(128), "é".repeat(256))], 10, "Object").is_ok());
        assert_eq!(code(validate(pairs(&[("a", "1"), ("a", "2")]), 10, "Object")), S3ErrorCode::InvalidTag);
        assert_eq!(code(validate(pairs(&[("aws:x", "1")]), 10, "Object")), S3ErrorCode::InvalidTag);
        assert_eq!(code(parse_tagging(b"<Tagging><Tag/></Tagging>")), S3ErrorCode::MalformedXML);
    }

    #[test]
    fn documents_round_trip() {
        let tags = pairs(&[("a", ""), ("b<", "&")]);
        assert_eq!(parse_tagging(tagging_xml(&tags).as_bytes()).unwrap(), tags);
    }
}
