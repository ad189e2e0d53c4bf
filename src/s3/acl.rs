//! The access-control operations (AWS S3 API reference: Get/PutBucketAcl,
//! Get/PutObjectAcl, Put/Get/DeleteBucketOwnershipControls,
//! Put/Get/DeletePublicAccessBlock, Put/Get/DeleteBucketPolicy,
//! GetBucketPolicyStatus) and the `x-amz-acl` / `x-amz-grant-*` request
//! headers of the writes that set an ACL. What they store is read by
//! `access::decide`.

use super::access::{
    self, Acl, BUCKET_ACL, BUCKET_OWNERSHIP, BUCKET_POLICY, BUCKET_PUBLIC_ACCESS_BLOCK, Grant, Grantee, Group, Need,
    Ownership, Perm, PublicAccessBlock, Users,
};
use super::error::{S3Error, S3ErrorCode};
use super::object::{read_small_body, version_param};
use super::policy::{POLICY_BYTES_MAX, Policy};
use super::xml::Xml;
use super::{Req, bucket};
use crate::engine::types::BucketState;
use crate::http::conn::Conn;
use crate::http::response::Response;

/// ACL, ownership and public-access-block documents are a few KB at most.
const ACL_BODY_BYTES_MAX: usize = 64 << 10;
/// Grants in one ACL (AWS's limit).
const GRANTS_MAX: usize = 100;

const GRANT_HEADERS: [(&str, Perm); 5] = [
    ("x-amz-grant-read", Perm::Read),
    ("x-amz-grant-write", Perm::Write),
    ("x-amz-grant-read-acp", Perm::ReadAcp),
    ("x-amz-grant-write-acp", Perm::WriteAcp),
    ("x-amz-grant-full-control", Perm::FullControl),
];

fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg)
}

fn malformed_acl() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedACLError,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// The grantee a grant header value or an XML `<Grantee>` names.
fn grantee(users: &Users, kind: &str, value: &str) -> Result<Grantee, S3Error> {
    match kind {
        "id" => users
            .by_id(&value.to_ascii_lowercase())
            .map(|u| Grantee::User(u.access_key.clone()))
            .ok_or_else(|| invalid("Invalid id")),
        "emailaddress" => users.by_email(value).map(|u| Grantee::User(u.access_key.clone())).ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::UnresolvableGrantByEmailAddress,
                "The e-mail address you provided does not match any account on record.",
            )
        }),
        "uri" => Group::from_uri(value).map(Grantee::Group).ok_or_else(|| invalid("Invalid group uri")),
        _ => Err(invalid(format!("Argument format not recognized: {kind}"))),
    }
}

/// The ACL a request's headers set: a canned `x-amz-acl`, or explicit
/// `x-amz-grant-*` lists (`id="…", emailAddress="…", uri="…"`); None when
/// it carries neither.
pub fn from_headers(req: &Req<'_>, owner: &str, bucket_owner: &str) -> Result<Option<Acl>, S3Error> {
    let head = &req.head;
    let canned = head.header("x-amz-acl");
    let granted = GRANT_HEADERS.iter().any(|(h, _)| head.has_header(h));
    if canned.is_some() && granted {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if let Some(name) = canned {
        return Acl::canned(name.trim(), owner, bucket_owner).map(Some).ok_or_else(|| invalid(""));
    }
    if !granted {
        return Ok(None);
    }
    let mut grants = Vec::new();
    for (h, perm) in GRANT_HEADERS {
        for value in head.headers.iter().filter(|(n, _)| n == h).map(|(_, v)| v.as_str()) {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (kind, v) =
                    item.split_once('=').ok_or_else(|| invalid(format!("Argument format not recognized: {item}")))?;
                let v = v.trim().trim_matches('"');
                grants.push(Grant { grantee: grantee(&req.ctx.users, &kind.trim().to_ascii_lowercase(), v)?, perm });
            }
        }
    }
    Ok(Some(Acl { grants }))
}

/// Whether a write may set `acl` in this bucket: refused when ACLs are
/// disabled (BucketOwnerEnforced takes only bucket-owner-full-control) and
/// when Public Access Block's BlockPublicAcls is on and the ACL is public.
pub fn check_settable(req: &Req<'_>, state: &BucketState, acl: &Acl) -> Result<(), S3Error> {
    if Ownership::of(state) == Ownership::BucketOwnerEnforced {
        // Under BucketOwnerEnforced the bucket owner owns everything, so
        // bucket-owner-full-control is its FULL_CONTROL alone.
        let ok = match req.head.header("x-amz-acl") {
            Some(canned) => canned.trim() == "bucket-owner-full-control",
            None => *acl == Acl::private(&state.owner),
        };
        if !ok {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessControlListNotSupported,
                "The bucket does not allow ACLs",
            ));
        }
    }
    if acl.is_public() && PublicAccessBlock::of(state).block_public_acls {
        return Err(access::denied());
    }
    Ok(())
}

/// The object owner and ACL a write stores: the writer owns what it writes
/// unless the bucket owner enforces ownership (or prefers it, and the ACL
/// is bucket-owner-full-control); None for the bucket owner and the
/// private default, so an ordinary object carries nothing extra.
pub fn for_new_object(req: &Req<'_>, state: &BucketState) -> Result<(Option<String>, Option<Vec<u8>>), S3Error> {
    let writer = req.user.as_str();
    let ownership = Ownership::of(state);
    let acl = from_headers(req, writer, &state.owner)?;
    if let Some(acl) = &acl {
        check_settable(req, state, acl)?;
    }
    let preferred = ownership == Ownership::BucketOwnerPreferred
        && req.head.header("x-amz-acl") == Some("bucket-owner-full-control");
    let owner =
        match ownership == Ownership::BucketOwnerEnforced || preferred || writer == state.owner || writer.is_empty() {
            true => state.owner.as_str(),
            false => writer,
        };
    if ownership == Ownership::BucketOwnerEnforced {
        return Ok((None, None));
    }
    let acl = acl.map(|a| if preferred { Acl::private(owner) } else { a });
    let acl = acl.filter(|a| *a != Acl::private(owner)).map(|a| a.encode());
    Ok(((owner != state.owner).then(|| owner.to_owned()), acl))
}

/// An `AccessControlPolicy` document.
fn acl_xml(users: &Users, owner: &str, acl: &Acl) -> String {
    let mut x = Xml::new("AccessControlPolicy");
    x.owner("Owner", &users.owner_of(owner));
    x.open("AccessControlList");
    const XSI: &str = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    // Group grants first, then users', each in the order set (as S3 lists
    // a canned ACL's grants).
    let groups = acl.grants.iter().filter(|g| matches!(g.grantee, Grantee::Group(_)));
    let people = acl.grants.iter().filter(|g| matches!(g.grantee, Grantee::User(_)));
    for g in groups.chain(people) {
        x.open("Grant");
        match &g.grantee {
            Grantee::User(k) => {
                let (id, name) = users.owner_of(k);
                x.open(&format!("Grantee {XSI} xsi:type=\"CanonicalUser\""));
                x.elem("ID", &id).elem("DisplayName", &name);
            }
            Grantee::Group(gr) => {
                x.open(&format!("Grantee {XSI} xsi:type=\"Group\""));
                x.elem("URI", gr.uri());
            }
        }
        x.close("Grantee").elem("Permission", g.perm.name()).close("Grant");
    }
    x.close("AccessControlList");
    x.finish("AccessControlPolicy")
}

/// The grants of an `AccessControlPolicy` body (its Owner is not checked:
/// the resource keeps its owner).
fn parse_acl_xml(users: &Users, body: &[u8]) -> Result<Acl, S3Error> {
    let root = super::xml::parse(body).map_err(|_| malformed_acl())?;
    if root.name != "AccessControlPolicy" {
        return Err(malformed_acl());
    }
    let Some(list) = root.child("AccessControlList") else {
        return Err(malformed_acl());
    };
    let mut grants = Vec::new();
    for g in list.all("Grant") {
        let (Some(who), Some(perm)) = (g.child("Grantee"), g.text_of("Permission")) else {
            return Err(malformed_acl());
        };
        let perm = Perm::parse(perm).ok_or_else(malformed_acl)?;
        let grantee = match (who.text_of("ID"), who.text_of("URI"), who.text_of("EmailAddress")) {
            (Some(id), None, None) => grantee(users, "id", id)?,
            (None, Some(uri), None) => grantee(users, "uri", uri)?,
            (None, None, Some(email)) => grantee(users, "emailaddress", email)?,
            _ => return Err(malformed_acl()),
        };
        grants.push(Grant { grantee, perm });
    }
    if grants.len() > GRANTS_MAX {
        return Err(malformed_acl());
    }
    Ok(Acl { grants })
}

/// The ACL a PutBucketAcl / PutObjectAcl sets: from headers, else the body.
async fn requested_acl(req: &mut Req<'_>, conn: &mut Conn, owner: &str, bucket_owner: &str) -> Result<Acl, S3Error> {
    let from_head = from_headers(req, owner, bucket_owner)?;
    let body = read_small_body(req, conn, ACL_BODY_BYTES_MAX).await?;
    match from_head {
        Some(acl) if body.iter().all(u8::is_ascii_whitespace) => Ok(acl),
        Some(_) => Err(S3Error::with_message(S3ErrorCode::UnexpectedContent, "This request does not support content")),
        None if body.iter().all(u8::is_ascii_whitespace) => Err(S3ErrorCode::MissingSecurityHeader.into()),
        None => parse_acl_xml(&req.ctx.users, &body),
    }
}

pub async fn get_bucket_acl(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    Ok(Response::xml(200, acl_xml(&req.ctx.users, &state.owner, &access::bucket_acl(&state))))
}

pub async fn put_bucket_acl(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let acl = requested_acl(req, conn, &state.owner, &state.owner).await?;
    check_settable(req, &state, &acl)?;
    let doc = (acl != Acl::private(&state.owner)).then(|| acl.encode());
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_ACL, doc).await?;
    Ok(Response::new(200))
}

pub async fn get_object_acl(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let version = version_param(req)?;
    let v = req.ctx.engine.get(req.bucket(), req.key(), version).await;
    let v = req.check_object(&state, "s3:GetObjectAcl", Need::Object(Perm::ReadAcp), v)?;
    let meta = v.meta.get();
    let owner = meta.owner.clone().unwrap_or_else(|| state.owner.clone());
    let acl = meta.acl.as_deref().map_or_else(|| Acl::private(&owner), Acl::decode);
    let resp = Response::xml(200, acl_xml(&req.ctx.users, &owner, &acl));
    Ok(super::tagging::with_version(resp, req, v.id))
}

pub async fn put_object_acl(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let version = version_param(req)?;
    let v = req.ctx.engine.get(req.bucket(), req.key(), version).await;
    let v = req.check_object(&state, "s3:PutObjectAcl", Need::Object(Perm::WriteAcp), v)?;
    let owner = v.meta.get().owner.unwrap_or_else(|| state.owner.clone());
    let acl = requested_acl(req, conn, &owner, &state.owner).await?;
    check_settable(req, &state, &acl)?;
    let doc = (acl != Acl::private(&owner)).then(|| acl.encode());
    let id = req.ctx.engine.set_acl(req.bucket(), req.key(), Some(v.id), doc).await?;
    Ok(super::tagging::with_version(Response::new(200), req, id))
}

/// The `x-amz-object-ownership` value of a CreateBucket or an
/// `OwnershipControls` rule.
pub fn parse_ownership(s: &str) -> Result<Ownership, S3Error> {
    Ownership::parse(s.trim()).ok_or_else(|| invalid("Invalid x-amz-object-ownership header"))
}

pub async fn put_bucket_ownership_controls(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let body = read_small_body(req, conn, ACL_BODY_BYTES_MAX).await?;
    let root = super::xml::parse(&body)?;
    let rules: Vec<_> = root.all("Rule").collect();
    let (true, [rule]) = (root.name == "OwnershipControls", rules.as_slice()) else {
        return Err(S3ErrorCode::MalformedXML.into());
    };
    let ownership = rule.text_of("ObjectOwnership").ok_or_else(|| S3Error::new(S3ErrorCode::MalformedXML))?;
    let ownership = Ownership::parse(ownership).ok_or_else(|| S3Error::new(S3ErrorCode::MalformedXML))?;
    if ownership == Ownership::BucketOwnerEnforced && access::bucket_acl(&state) != Acl::private(&state.owner) {
        return Err(S3ErrorCode::InvalidBucketAclWithObjectOwnership.into());
    }
    let doc = Some(ownership.name().as_bytes().to_vec());
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_OWNERSHIP, doc).await?;
    Ok(Response::new(200))
}

pub async fn get_bucket_ownership_controls(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    if state.config(BUCKET_OWNERSHIP).is_none() {
        return Err(S3ErrorCode::OwnershipControlsNotFoundError.into());
    }
    let mut x = Xml::new("OwnershipControls");
    x.open("Rule").elem("ObjectOwnership", Ownership::of(&state).name()).close("Rule");
    Ok(Response::xml(200, x.finish("OwnershipControls")))
}

pub async fn delete_bucket_ownership_controls(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_OWNERSHIP, None).await?;
    Ok(Response::new(204))
}

const PAB_FIELDS: [&str; 4] = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"];

pub async fn put_public_access_block(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let body = read_small_body(req, conn, ACL_BODY_BYTES_MAX).await?;
    let root = super::xml::parse(&body)?;
    if root.name != "PublicAccessBlockConfiguration" {
        return Err(S3ErrorCode::MalformedXML.into());
    }
    let mut v = [false; 4];
    for (slot, name) in v.iter_mut().zip(PAB_FIELDS) {
        *slot = match root.text_of(name) {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("true") => true,
            Some(t) if t.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(S3ErrorCode::MalformedXML.into()),
        };
    }
    let pab = PublicAccessBlock {
        block_public_acls: v[0],
        ignore_public_acls: v[1],
        block_public_policy: v[2],
        restrict_public_buckets: v[3],
    };
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_PUBLIC_ACCESS_BLOCK, Some(pab.encode())).await?;
    Ok(Response::new(200))
}

pub async fn get_public_access_block(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    if state.config(BUCKET_PUBLIC_ACCESS_BLOCK).is_none() {
        return Err(S3ErrorCode::NoSuchPublicAccessBlockConfiguration.into());
    }
    let p = PublicAccessBlock::of(&state);
    let mut x = Xml::new("PublicAccessBlockConfiguration");
    let values = [p.block_public_acls, p.ignore_public_acls, p.block_public_policy, p.restrict_public_buckets];
    for (name, v) in PAB_FIELDS.iter().zip(values) {
        x.elem(name, if v { "true" } else { "false" });
    }
    Ok(Response::xml(200, x.finish("PublicAccessBlockConfiguration")))
}

pub async fn delete_public_access_block(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_PUBLIC_ACCESS_BLOCK, None).await?;
    Ok(Response::new(204))
}

pub async fn put_bucket_policy(req: &mut Req<'_>, conn: &mut Conn) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    if req.body.declared_len().is_some_and(|n| n > POLICY_BYTES_MAX as u64) {
        return Err(S3Error::with_message(S3ErrorCode::MalformedPolicy, "Policies must be less than 20 KB"));
    }
    let body = read_small_body(req, conn, POLICY_BYTES_MAX).await?;
    let policy = Policy::parse_for(&body, Some(req.bucket()))?;
    if PublicAccessBlock::of(&state).block_public_policy && super::policy::is_public(&policy) {
        return Err(access::denied());
    }
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_POLICY, Some(body)).await?;
    Ok(Response::new(204))
}

pub async fn get_bucket_policy(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    match state.config(BUCKET_POLICY) {
        Some(doc) => Ok(Response::new(200).header("content-type", "application/json").bytes(doc.to_vec())),
        None => Err(S3ErrorCode::NoSuchBucketPolicy.into()),
    }
}

pub async fn delete_bucket_policy(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    req.ctx.engine.set_bucket_config(req.bucket(), &state, BUCKET_POLICY, None).await?;
    Ok(Response::new(204))
}

/// Whether the bucket is public: by its policy, or by a public bucket ACL.
pub async fn get_bucket_policy_status(req: &mut Req<'_>) -> Result<Response, S3Error> {
    let state = bucket::existing(req)?;
    let by_policy =
        state.config(BUCKET_POLICY).and_then(|d| Policy::parse(d).ok()).is_some_and(|p| super::policy::is_public(&p));
    let public = by_policy || access::bucket_acl(&state).is_public();
    let mut x = Xml::new("PolicyStatus");
    x.elem("IsPublic", if public { "true" } else { "false" });
    Ok(Response::xml(200, x.finish("PolicyStatus")))
}

/// The configuration documents a CreateBucket's headers set: its ACL and
/// its Object Ownership.
pub fn for_new_bucket(req: &Req<'_>, owner: &str) -> Result<Vec<(String, Vec<u8>)>, S3Error> {
    let mut configs = Vec::new();
    let ownership = req.head.header("x-amz-object-ownership").map(parse_ownership).transpose()?;
    let acl = from_headers(req, owner, owner)?;
    if ownership == Some(Ownership::BucketOwnerEnforced) && acl.as_ref().is_some_and(|a| *a != Acl::private(owner)) {
        return Err(S3ErrorCode::InvalidBucketAclWithObjectOwnership.into());
    }
    if let Some(o) = ownership {
        configs.push((BUCKET_OWNERSHIP.to_owned(), o.name().as_bytes().to_vec()));
    }
    if let Some(acl) = acl.filter(|a| *a != Acl::private(owner)) {
        configs.push((BUCKET_ACL.to_owned(), acl.encode()));
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        let mut u = Users::default();
        u.add("AK1".into(), "s".into());
        u.add_user(access::User::new(
            "AK2".into(),
            "s".into(),
            "ab".repeat(32),
            "alt".into(),
            Some("alt@x.org".into()),
        ));
        u
    }

    #[test]
    fn acl_documents_round_trip() {
        let u = users();
        let mut acl = Acl::canned("public-read", "AK1", "AK1").unwrap();
        acl.grants.push(Grant { grantee: Grantee::User("AK2".into()), perm: Perm::WriteAcp });
        let doc = acl_xml(&u, "AK1", &acl);
        assert!(doc.contains("xsi:type=\"Group\""), "{doc}");
        assert!(doc.contains("<DisplayName>alt</DisplayName>"), "{doc}");
        assert_eq!(parse_acl_xml(&u, doc.as_bytes()).unwrap(), acl);
    }

    #[test]
    fn bad_grants_get_aws_errors() {
        let u = users();
        let doc = |grantee: &str, perm: &str| {
            format!(
                "<AccessControlPolicy><AccessControlList><Grant><Grantee>{grantee}</Grantee><Permission>{perm}</Permission></Grant></AccessControlList></AccessControlPolicy>"
            )
        };
        let code = |d: String| parse_acl_xml(&u, d.as_bytes()).unwrap_err().code;
        assert_eq!(code(doc("<ID>00</ID>", "READ")), S3ErrorCode::InvalidArgument);
        assert_eq!(
            code(doc("<EmailAddress>no@x.org</EmailAddress>", "READ")),
            S3ErrorCode::UnresolvableGrantByEmailAddress
        );
        assert_eq!(
            code(doc("<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>", "ALL")),
            S3ErrorCode::MalformedACLError
        );
        let ok = parse_acl_xml(&u, doc("<EmailAddress>ALT@x.org</EmailAddress>", "READ").as_bytes()).unwrap();
        assert_eq!(ok.grants[0].grantee, Grantee::User("AK2".into()));
    }
}
