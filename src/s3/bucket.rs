//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, Get/PutBucketVersioning.

use super::error::{S3Error, S3ErrorCode};
use super::object::read_small_body;
use super::route::valid_bucket_name;
use super::xml::{Xml, iso8601};
use super::{Req, now_ms};
use crate::engine::types::{BucketState, Versioning};
use crate::http::conn::Conn;
use crate::http::response::Response;

pub(super) fn existing(req: &Req<'_>) -> Result<BucketState, S3Error> {
    req.ctx.engine.bucket(req.bucket()).ok_or_else(|| S3ErrorCode::NoSuchBucket.into())
}

pub async fn list_buckets(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let mut x = Xml::new("ListAllMyBucketsResult");
    x.open("Owner").elem("ID", &req.user).elem("DisplayName", &req.user).close("Owner");
    x.open("Buckets");
    for (name, state) in req.ctx.engine.buckets() {
        if state.owner == req.user {
            x.open("Bucket").elem("Name", &name).elem("CreationDate", &iso8601(state.created_ms)).close("Bucket");
        }
    }
    x.close("Buckets");
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
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "The specified location-constraint is not valid: {loc} (this node serves {})",
                req.ctx.config.region
            ),
        ));
    }
    let state = BucketState { owner: req.user.clone(), created_ms: now_ms(), ..Default::default() };
    req.ctx.engine.create_bucket(req.bucket(), state).await?;
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
