//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, Get/PutBucketVersioning.

use super::error::{S3Error, S3ErrorCode};
use super::object::{invalid, read_small_body};
use super::route::valid_bucket_name;
use super::xml::{Xml, iso8601};
use super::{Req, now_ms};
use crate::engine::Error as EngineError;
use crate::engine::types::{BucketState, Versioning};
use crate::http::conn::Conn;
use crate::http::response::Response;

pub(super) fn existing(req: &Req<'_>) -> Result<BucketState, S3Error> {
    req.ctx.engine.bucket(req.bucket()).ok_or_else(|| S3ErrorCode::NoSuchBucket.into())
}

/// Buckets per ListBuckets page at most (AWS's limit for `max-buckets`).
const BUCKETS_PAGE_MAX: usize = 10_000;

/// ListBuckets, with the paginated form (`max-buckets`,
/// `continuation-token`, `prefix`, `bucket-region`): names in order, the
/// token the last name listed.
pub async fn list_buckets(req: &mut Req<'_>) -> Result<Response, S3Error> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
    let h = &req.head;
    let max = match h.query_param("max-buckets") {
        None => None,
        Some(m) => Some(m.parse::<usize>().ok().filter(|n| (1..=BUCKETS_PAGE_MAX).contains(n)).ok_or_else(|| {
            invalid(format!("Argument max-buckets must be an integer between 1 and {BUCKETS_PAGE_MAX}"))
        })?),
    };
    let after = match h.query_param("continuation-token") {
        None => None,
        Some(t) => Some(
            TOKEN
                .decode(&t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid("The continuation token provided is incorrect"))?,
        ),
    };
    let prefix = h.query_param("prefix").unwrap_or_default();
    let region = &req.ctx.config.region;
    let wrong_region = h.query_param("bucket-region").is_some_and(|r| r != *region);
    let mut mine = req.ctx.engine.buckets();
    mine.retain(|(name, state)| {
        state.owner == req.user && name.starts_with(&prefix) && after.as_ref().is_none_or(|a| name > a) && !wrong_region
    });
    mine.sort_by(|a, b| a.0.cmp(&b.0));
    let more = max.is_some_and(|m| mine.len() > m);
    mine.truncate(max.unwrap_or(usize::MAX));
    let mut x = Xml::new("ListAllMyBucketsResult");
    x.open("Buckets");
    for (name, state) in &mine {
        x.open("Bucket")
            .elem("Name", name)
            .elem("CreationDate", &iso8601(state.created_ms))
            .elem("BucketRegion", region)
            .close("Bucket");
    }
    x.close("Buckets");
    x.owner("Owner", &req.ctx.users.owner_of(&req.user));
    if more && let Some((last, _)) = mine.last() {
        x.elem("ContinuationToken", &TOKEN.encode(last));
    }
    if h.query_param("prefix").is_some() {
        x.elem("Prefix", &prefix);
    }
    Ok(Response::xml(200, x.finish("ListAllMyBucketsResult")))
}

pub async fn create_bucket(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    if !valid_bucket_name(req.bucket()) {
        return Err(S3ErrorCode::InvalidBucketName.into());
    }
    let body = read_small_body(req, conn, 64 << 10).await?;
    if let Some(loc) = location_constraint(&body)?
        && loc != req.ctx.config.region
        && !(loc.is_empty() && req.ctx.config.region == "us-east-1")
    {
        // A region's name for another region than this node's is
        // IllegalLocationConstraintException; anything else is no location.
        let region_like = loc.split('-').count() >= 3 && loc.ends_with(|c: char| c.is_ascii_digit());
        return Err(if region_like {
            S3Error::with_message(
                S3ErrorCode::IllegalLocationConstraintException,
                format!(
                    "The {loc} location constraint is incompatible for the region specific endpoint this request was sent to ({}).",
                    req.ctx.config.region
                ),
            )
        } else {
            S3ErrorCode::InvalidLocationConstraint.into()
        });
    }
    let configs = super::acl::for_new_bucket(req, &req.user)?;
    let acl = configs.iter().find(|(n, _)| n == super::access::BUCKET_ACL).map(|(_, d)| d.clone());
    let state = BucketState { owner: req.user.clone(), created_ms: now_ms(), configs, ..Default::default() };
    match req.ctx.engine.create_bucket(req.bucket(), state).await {
        // "For legacy compatibility, if you re-create an existing bucket that
        // you already own in the North Virginia Region, Amazon S3 returns
        // 200 OK and resets the bucket access control lists (ACLs)"
        // (CreateBucket, BucketAlreadyOwnedByYou); 409 elsewhere.
        Err(EngineError::BucketAlreadyOwnedByYou) if req.ctx.config.region == "us-east-1" => {
            let state = existing(req)?;
            req.ctx.engine.set_bucket_config(req.bucket(), &state, super::access::BUCKET_ACL, acl).await?;
        }
        r => r?,
    }
    Ok(Response::new(200).header("location", format!("/{}", req.bucket())))
}

/// The LocationConstraint of a CreateBucketConfiguration body, if any.
fn location_constraint(body: &[u8]) -> Result<Option<String>, S3Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(text_of(body, "LocationConstraint")?.unwrap_or_default()))
}

/// The text of the first element called `name` (MalformedXML if unparsable).
pub fn text_of(body: &[u8], name: &str) -> Result<Option<String>, S3Error> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    let mut found = None;
    loop {
        match r.read_event().map_err(|_| S3Error::new(S3ErrorCode::MalformedXML))? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::End(e) if e.local_name().as_ref() == name.as_bytes() => inside = false,
            Event::Text(t) if inside => {
                found = Some(t.unescape().map_err(|_| S3Error::new(S3ErrorCode::MalformedXML))?.trim().to_string())
            }
            Event::Eof => return Ok(found),
            _ => {}
        }
    }
}

pub async fn head_bucket(req: &mut Req<'_>) -> Result<Response, S3Error> {
    existing(req)?;
    Ok(Response::new(200).header("x-amz-bucket-region", req.ctx.config.region.clone()))
}

pub async fn delete_bucket(req: &mut Req<'_>) -> Result<Response, S3Error> {
    req.ctx.engine.delete_bucket(req.bucket()).await?;
    Ok(Response::new(204))
}

pub async fn get_bucket_location(req: &mut Req<'_>) -> Result<Response, S3Error> {
    existing(req)?;
    let region = &req.ctx.config.region;
    // AWS answers an empty constraint for us-east-1.
    let value = if region == "us-east-1" { "" } else { region.as_str() };
    let xml =
        format!("{}<LocationConstraint xmlns=\"{}\">{}</LocationConstraint>", super::xml::DECL, super::xml::NS, value);
    Ok(Response::xml(200, xml))
}

pub async fn get_bucket_versioning(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = existing(req)?;
    let mut x = Xml::new("VersioningConfiguration");
    match state.versioning {
        Versioning::Unversioned => {}
        Versioning::Enabled => {
            x.elem("Status", "Enabled");
        }
        Versioning::Suspended => {
            x.elem("Status", "Suspended");
        }
    }
    Ok(Response::xml(200, x.finish("VersioningConfiguration")))
}

pub async fn put_bucket_versioning(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let expect = existing(req)?;
    let mut state = expect.clone();
    let body = read_small_body(req, conn, 64 << 10).await?;
    if text_of(&body, "MfaDelete")?.is_some_and(|m| m == "Enabled") {
        return Err(S3Error::with_message(S3ErrorCode::NotImplemented, "MFA delete is not implemented"));
    }
    state.versioning = match text_of(&body, "Status")?.as_deref() {
        Some("Enabled") => Versioning::Enabled,
        Some("Suspended") => Versioning::Suspended,
        _ => return Err(S3ErrorCode::MalformedXML.into()),
    };
    req.ctx.engine.update_bucket(req.bucket(), expect, state).await?;
    Ok(Response::new(200))
}
