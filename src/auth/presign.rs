//! SigV4 presigned URLs: the signature and its scope travel in `X-Amz-*` query parameters.
//!
//! Follows "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
//! (Amazon S3 API Reference). The canonical request is built as for header signing, except
//! that `X-Amz-Signature` is left out of the canonical query and the payload line is
//! `UNSIGNED-PAYLOAD` unless the URL itself carries `X-Amz-Content-Sha256`.

use super::canonical::{QueryParam, canonical_query};
use super::date::parse_amz_date;
use super::signing::{self, ALGORITHM};
use super::sigv4::{self, canonical_request, check_signed_headers, parse_signed_headers};
use super::{
    Authenticated, Error, Identity, PRESIGN_EXPIRES_SECONDS_MAX, PayloadCheck, REQUEST_SKEW_SECONDS_MAX, RequestView,
    SecretStore,
};

/// Parameters whose presence marks a SigV4 presigned URL. `X-Amz-Algorithm` is the one S3
/// names; the other two also count so that a URL missing its algorithm is reported as a broken
/// presigned URL instead of silently becoming an anonymous request.
pub(crate) const MARKER_PARAMS: [&str; 3] = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"];

fn query_error(message: impl Into<String>) -> Error {
    Error::AuthorizationQueryParametersError(message.into())
}

/// The decoded value of the one parameter called `name`; a repeated parameter is refused
/// because the client and the server could otherwise read different copies.
fn single_param(params: &[QueryParam<'_>], name: &str) -> Result<Option<String>, Error> {
    // Names are case-sensitive, as in the canonical query where `x-amz-date` and `X-Amz-Date`
    // would sort and sign as different parameters.
    let mut found = params.iter().filter(|p| p.name() == name);
    let first = found.next().map(|p| p.value().into_owned());
    if found.next().is_some() {
        return Err(query_error(format!(
            "Query-string authentication parameters must not repeat; {name} appears more than once."
        )));
    }
    Ok(first)
}

/// The required parameters, decoded (the algorithm is checked, not kept).
struct Params {
    credential: String,
    date: String,
    expires: String,
    signed_headers: String,
    signature: String,
}

fn missing_params() -> Error {
    query_error(
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, \
         X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    )
}

fn required_params(params: &[QueryParam<'_>]) -> Result<Params, Error> {
    let get = |name: &str| single_param(params, name)?.ok_or_else(missing_params);
    let algorithm = get("X-Amz-Algorithm")?;
    let params = Params {
        credential: get("X-Amz-Credential")?,
        date: get("X-Amz-Date")?,
        expires: get("X-Amz-Expires")?,
        signed_headers: get("X-Amz-SignedHeaders")?,
        signature: get("X-Amz-Signature")?,
    };
    if algorithm != ALGORITHM {
        return Err(query_error("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    Ok(params)
}

/// Parses `X-Amz-Expires`: whole seconds from 1 to 604800 (seven days), the range the page
/// gives ("Minimum value of 1. Maximum value of 604800"); 0 is a URL already expired.
fn parse_expires(text: &str) -> Result<i64, Error> {
    if let Some(rest) = text.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(query_error("X-Amz-Expires must be non-negative"));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(query_error("X-Amz-Expires should be a number"));
    }
    // All digits: a parse failure can only mean a number too large for i64.
    let seconds = text.parse::<i64>().unwrap_or(i64::MAX);
    if seconds > PRESIGN_EXPIRES_SECONDS_MAX {
        return Err(query_error("X-Amz-Expires must be less than a week (in seconds) that is 604800"));
    }
    // A URL valid for no time at all has expired as it was made; AWS says
    // so (403) rather than calling the parameter malformed.
    if seconds == 0 {
        return Err(Error::AccessDenied("Request has expired".to_owned()));
    }
    Ok(seconds)
}

/// What the body must match: a hash the URL pins with `X-Amz-Content-Sha256`, or nothing.
fn payload_param(params: &[QueryParam<'_>]) -> Result<(String, PayloadCheck), Error> {
    match single_param(params, "X-Amz-Content-Sha256")? {
        None => Ok(("UNSIGNED-PAYLOAD".to_owned(), PayloadCheck::Unsigned)),
        Some(value) if value == "UNSIGNED-PAYLOAD" => Ok((value, PayloadCheck::Unsigned)),
        Some(value) => match signing::parse_signature(&value) {
            Some(hash) => Ok((value, PayloadCheck::Sha256(hash))),
            None => Err(Error::InvalidArgument(
                "X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.".to_owned(),
            )),
        },
    }
}

/// Checks the validity window `X-Amz-Date` … `X-Amz-Date + X-Amz-Expires`.
///
/// A URL dated in the future is refused as "Request is not yet valid", allowing the same 15
/// minutes of clock difference that header signing allows so a client slightly ahead of the
/// server still works.
fn check_window(signed_at: i64, expires: i64, now: i64) -> Result<(), Error> {
    if signed_at.saturating_sub(now) > REQUEST_SKEW_SECONDS_MAX {
        return Err(Error::AccessDenied("Request is not yet valid".to_owned()));
    }
    if now > signed_at.saturating_add(expires) {
        return Err(Error::AccessDenied("Request has expired".to_owned()));
    }
    Ok(())
}

/// Authenticates a request whose query carries `X-Amz-Algorithm` and its companions.
pub(crate) fn authenticate(
    req: &RequestView<'_>,
    params: &[QueryParam<'_>],
    store: &dyn SecretStore,
) -> Result<Authenticated, Error> {
    let p = required_params(params)?;
    let credential = sigv4::parse_credential(&p.credential, req.region)
        .map_err(|reason| query_error(format!("Error parsing the X-Amz-Credential parameter; {reason}")))?;
    let signed_at = parse_amz_date(&p.date)
        .ok_or_else(|| query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))?;
    if !p.date.starts_with(&credential.date) {
        return Err(query_error(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
            credential.date,
            p.date.get(..8).unwrap_or_default()
        )));
    }
    let expires = parse_expires(&p.expires)?;
    let signed =
        parse_signed_headers(&p.signed_headers).ok_or_else(|| query_error("X-Amz-SignedHeaders is malformed."))?;
    if !signed.iter().any(|name| name == "host") {
        return Err(query_error("X-Amz-SignedHeaders must include 'host'."));
    }
    check_window(signed_at, expires, req.now_unix)?;
    let (payload_line, payload) = payload_param(params)?;
    check_signed_headers(req.headers, &signed)?;
    let secret = store
        .secret_key(&credential.access_key)
        .ok_or_else(|| Error::InvalidAccessKeyId { access_key: credential.access_key.clone() })?;

    let query = canonical_query(params, Some("X-Amz-Signature"));
    let canonical = canonical_request(req.method, req.raw_path, &query, req.headers, &signed, &payload_line);
    let scope = signing::scope(&credential.date, req.region);
    let string_to_sign = signing::string_to_sign(&p.date, &scope, &canonical);
    let key = signing::signing_key(&secret, &credential.date, req.region);
    if !signing::signature_matches(&key, &string_to_sign, &p.signature) {
        return Err(Error::signature_mismatch(&credential.access_key, string_to_sign, Some(canonical), &p.signature));
    }
    Ok(Authenticated { identity: Identity::User { access_key: credential.access_key }, payload })
}

#[cfg(test)]
mod tests;
