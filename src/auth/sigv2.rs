//! SigV2: `Authorization: AWS <key>:<signature>` and `?AWSAccessKeyId=&Expires=&Signature=`.
//!
//! Follows "Signing and authenticating REST requests" (Amazon S3 User Guide, legacy SigV2
//! section): HMAC-SHA1 over the method, `Content-MD5`, `Content-Type`, the date (or
//! `Expires` for query authentication), the `x-amz-*` headers and the canonicalized resource,
//! base64-encoded. SigV2 signs no body hash, so the payload is never checked here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::canonical::{QueryParam, header_values, single_header};
use super::date::{parse_amz_date, parse_http_date};
use super::signing::constant_time_eq;
use super::sigv4::check_skew;
use super::{Authenticated, Error, Identity, PayloadCheck, RequestView, SecretStore};

/// Query parameters that name a sub-resource and are therefore signed.
///
/// The page lists acl, lifecycle, location, logging, notification, partNumber, policy,
/// requestPayment, torrent, uploadId, uploads, versionId, versioning, versions, website, the
/// six `response-*` overrides and `delete`. Clients signed more as S3 grew (cors, tagging,
/// replication, select, object-lock, retention, …); this is the union of what the SigV2
/// signers still in use (botocore, minio-go) include, since a parameter only one of them
/// signs is one the other never sends for the same operation.
const SUBRESOURCES: [&str; 38] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "encryption",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Query parameters whose presence marks a SigV2 presigned URL.
pub(crate) const MARKER_PARAMS: [&str; 2] = ["AWSAccessKeyId", "Signature"];

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC is defined for keys of every length, so this constructor has no failure case.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `CanonicalizedAmzHeaders`: `x-amz-*` headers lowercased, sorted by name, repeated headers
/// joined with `,`, each value trimmed, one `name:value\n` line each. `skip_date` leaves out
/// `x-amz-date` when its value, or `Expires`, already fills the date line.
fn canonical_amz_headers(headers: &[(String, String)], skip_date: bool) -> String {
    let mut amz: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .filter(|(name, _)| name.starts_with("x-amz-"))
        .filter(|(name, _)| !(skip_date && name == "x-amz-date"))
        .collect();
    // A stable sort keeps repeated headers in the order received, which is the order their
    // values are joined in.
    amz.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    let mut previous: Option<&str> = None;
    for (name, value) in &amz {
        if previous == Some(name.as_str()) {
            out.push(',');
        } else {
            if previous.is_some() {
                out.push('\n');
            }
            out.push_str(name);
            out.push(':');
        }
        out.push_str(value);
        previous = Some(name);
    }
    if previous.is_some() {
        out.push('\n');
    }
    out
}

/// `CanonicalizedResource`: `/bucket` for virtual-hosted requests, the path exactly as sent
/// (still percent-encoded, case kept: "the elements ... derived from the Request-URI are taken
/// literally"), then the sub-resources sorted by name with decoded values.
///
/// Returns every form a client may have signed, the page's form first. A path-style request
/// for a bucket itself (`/bucket`, no trailing slash) also has the form `/bucket/`, which is
/// what botocore signs for bucket operations while sending `/bucket`.
fn canonical_resources(req: &RequestView<'_>, params: &[QueryParam<'_>]) -> Vec<String> {
    let mut path = String::new();
    if let Some(bucket) = req.virtual_host_bucket {
        path.push('/');
        path.push_str(bucket);
    }
    if !req.raw_path.starts_with('/') {
        path.push('/');
    }
    path.push_str(req.raw_path);
    let subresources = canonical_subresources(params);
    let bucket_only = req.virtual_host_bucket.is_none() && path.len() > 1 && !path[1..].contains('/');
    let mut forms = vec![format!("{path}{subresources}")];
    if bucket_only {
        forms.push(format!("{path}/{subresources}"));
    }
    forms
}

/// The signed sub-resources as `?name[=value]&...`, or nothing.
fn canonical_subresources(params: &[QueryParam<'_>]) -> String {
    let mut subresources: Vec<(String, Option<String>)> = params
        .iter()
        .filter(|p| SUBRESOURCES.contains(&p.name().as_ref()))
        .map(|p| (p.name().into_owned(), p.raw_value.map(|_| p.value().into_owned())))
        .collect();
    subresources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (index, (name, value)) in subresources.iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// The SigV2 string to sign with the given date line and resource; `skip_amz_date` leaves
/// `x-amz-date` out of the `x-amz-*` block when its value already stands in the date line.
fn string_to_sign(req: &RequestView<'_>, resource: &str, date_line: &str, skip_amz_date: bool) -> String {
    let first = |name| header_values(req.headers, name).next().map(str::trim).unwrap_or("");
    format!(
        "{}\n{}\n{}\n{date_line}\n{}{resource}",
        req.method,
        first("content-md5"),
        first("content-type"),
        canonical_amz_headers(req.headers, skip_amz_date),
    )
}

/// Accepts the base64 signature `provided` if it is the HMAC-SHA1 of any of the candidate
/// strings to sign; a mismatch reports the first, which is the documented form.
pub(crate) fn verify_any(access_key: &str, secret: &str, candidates: Vec<String>, provided: &str) -> Result<(), Error> {
    let Ok(given) = BASE64.decode(provided.trim()) else {
        let first = candidates.into_iter().next().unwrap_or_default();
        return Err(Error::signature_mismatch(access_key, first, None, provided));
    };
    let matches = |sts: &String| constant_time_eq(&hmac_sha1(secret.as_bytes(), sts.as_bytes()), &given);
    if candidates.iter().any(matches) {
        return Ok(());
    }
    let first = candidates.into_iter().next().unwrap_or_default();
    Err(Error::signature_mismatch(access_key, first, None, provided))
}

fn user(access_key: &str) -> Authenticated {
    Authenticated { identity: Identity::User { access_key: access_key.to_owned() }, payload: PayloadCheck::Unsigned }
}

/// Where a header-signed SigV2 request keeps its time.
enum RequestDate<'h> {
    /// `x-amz-date`, which takes precedence over `Date` ("Time stamp requirement").
    AmzDate(&'h str),
    /// `Date`, signed verbatim in the date line.
    Date(&'h str),
}

/// Finds and parses the request time; returns where it came from and its unix seconds.
fn request_date(headers: &[(String, String)]) -> Result<(RequestDate<'_>, i64), Error> {
    let invalid = || Error::AccessDenied("AWS authentication requires a valid Date or x-amz-date header".into());
    // A time before the epoch is no valid request date (AWS: AccessDenied,
    // not RequestTimeTooSkewed).
    let parse = |text: &str| parse_http_date(text).or_else(|| parse_amz_date(text.trim())).filter(|t| *t >= 0);
    if let Some(text) = single_header(headers, "x-amz-date").map_err(|()| invalid())? {
        let unix = parse(text).ok_or_else(invalid)?;
        return Ok((RequestDate::AmzDate(text), unix));
    }
    let text = single_header(headers, "date").map_err(|()| invalid())?.ok_or_else(invalid)?;
    let unix = parse(text).ok_or_else(invalid)?;
    Ok((RequestDate::Date(text), unix))
}

/// Authenticates `Authorization: AWS <access key>:<base64 signature>`.
///
/// With `x-amz-date`, the page's rule is an empty date line and `x-amz-date` among the
/// `x-amz-*` headers (what s3cmd and the server implementations do), but its own Delete
/// example signs the `x-amz-date` value in the date line instead. Both forms are accepted:
/// they carry the same fields, and neither can be rearranged into the other because only one
/// of them has an empty date line.
pub(crate) fn authenticate_header(
    req: &RequestView<'_>,
    authorization: &str,
    params: &[QueryParam<'_>],
    store: &dyn SecretStore,
) -> Result<Authenticated, Error> {
    let malformed =
        || Error::InvalidArgument("AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".to_owned());
    let credentials = authorization.strip_prefix("AWS ").ok_or_else(malformed)?;
    let (access_key, signature) = credentials.trim().rsplit_once(':').ok_or_else(malformed)?;
    if access_key.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    let (date, unix) = request_date(req.headers)?;
    let date_text = match date {
        RequestDate::AmzDate(text) | RequestDate::Date(text) => text,
    };
    check_skew(unix, date_text, req.now_unix)?;
    let secret =
        store.secret_key(access_key).ok_or_else(|| Error::InvalidAccessKeyId { access_key: access_key.to_owned() })?;
    let mut candidates = Vec::new();
    for resource in canonical_resources(req, params) {
        match date {
            RequestDate::Date(text) => {
                candidates.push(string_to_sign(req, &resource, text.trim(), false));
            }
            RequestDate::AmzDate(text) => {
                candidates.push(string_to_sign(req, &resource, "", false));
                candidates.push(string_to_sign(req, &resource, text.trim(), true));
            }
        }
    }
    verify_any(access_key, &secret, candidates, signature)?;
    Ok(user(access_key))
}

/// The decoded value of a SigV2 query parameter that must appear at most once.
fn single_param(params: &[QueryParam<'_>], name: &str) -> Result<Option<String>, Error> {
    let mut found = params.iter().filter(|p| p.name() == name);
    let first = found.next().map(|p| p.value().into_owned());
    if found.next().is_some() {
        return Err(Error::InvalidArgument(format!(
            "Query-string authentication parameters must not repeat; {name} appears more than once."
        )));
    }
    Ok(first)
}

/// Authenticates `?AWSAccessKeyId=...&Expires=...&Signature=...` ("Query string request
/// authentication alternative"): valid until `Expires`, in unix seconds.
pub(crate) fn authenticate_presigned(
    req: &RequestView<'_>,
    params: &[QueryParam<'_>],
    store: &dyn SecretStore,
) -> Result<Authenticated, Error> {
    let missing = || {
        Error::AccessDenied(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId \
             parameters"
                .to_owned(),
        )
    };
    let access_key = single_param(params, "AWSAccessKeyId")?.ok_or_else(missing)?;
    let signature = single_param(params, "Signature")?.ok_or_else(missing)?;
    let expires_text = single_param(params, "Expires")?.ok_or_else(missing)?;
    let expires = Some(expires_text.as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .map(|t| t.parse::<i64>().unwrap_or(i64::MAX))
        .ok_or_else(|| Error::AccessDenied(format!("Invalid date (should be seconds since epoch): {expires_text}")))?;
    if req.now_unix > expires {
        return Err(Error::AccessDenied("Request has expired".to_owned()));
    }
    if access_key.is_empty() {
        return Err(missing());
    }
    let secret =
        store.secret_key(&access_key).ok_or_else(|| Error::InvalidAccessKeyId { access_key: access_key.clone() })?;
    // Query authentication signs `Expires` where the date goes and no `x-amz-date`
    // ("you do not use the Date or the x-amz-date request header").
    let candidates = canonical_resources(req, params)
        .iter()
        .map(|resource| string_to_sign(req, resource, &expires_text, true))
        .collect();
    verify_any(&access_key, &secret, candidates, &signature)?;
    Ok(user(&access_key))
}

#[cfg(test)]
mod tests;
