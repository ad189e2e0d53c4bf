//! SigV4 with the `Authorization` header, plus the parts presigned URLs share with it
//! (credential scope, signed-header rules, canonical request).
//!
//! Follows "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)"
//! and "Signature Calculations for the Authorization Header: Transferring Payload in a Single
//! Chunk" (Amazon S3 API Reference).

use super::canonical::{
    canonical_header_value, canonical_query, canonical_uri, header_values, parse_query, single_header,
};
use super::chunk::ChunkVerifier;
use super::date::{format_amz_date, format_iso8601_millis, parse_amz_date, parse_http_date};
use super::signing::{self, ALGORITHM, SERVICE, TERMINATOR};
use super::{Authenticated, Error, Identity, PayloadCheck, REQUEST_SKEW_SECONDS_MAX, RequestView, SecretStore};

/// The access key and scope named by `Credential=` or `X-Amz-Credential`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) access_key: String,
    /// `YYYYMMDD`, already checked to be a calendar date.
    pub(crate) date: String,
}

/// Parses and checks `<access key>/<YYYYMMDD>/<region>/s3/aws4_request` against this node.
///
/// The error is the reason sentence S3 appends after its prefix ("The authorization header is
/// malformed; " or "Error parsing the X-Amz-Credential parameter; "). The access key is
/// whatever precedes the last four fields, so a key containing `/` still parses.
pub(crate) fn parse_credential(text: &str, node_region: &str) -> Result<Credential, String> {
    let malformed = || {
        "the Credential is mal-formed; expecting \
         \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
            .to_owned()
    };
    let mut fields = text.rsplitn(5, '/');
    let terminator = fields.next().ok_or_else(malformed)?;
    let service = fields.next().ok_or_else(malformed)?;
    let region = fields.next().ok_or_else(malformed)?;
    let date = fields.next().ok_or_else(malformed)?;
    let access_key = fields.next().ok_or_else(malformed)?;
    let date_is_valid = date.len() == 8 && parse_amz_date(&format!("{date}T000000Z")).is_some();
    if access_key.is_empty() || !date_is_valid {
        return Err(malformed());
    }
    if region != node_region {
        return Err(format!("the region '{region}' is wrong; expecting '{node_region}'"));
    }
    if service != SERVICE {
        return Err(format!("incorrect service \"{service}\". This endpoint belongs to \"{SERVICE}\"."));
    }
    if terminator != TERMINATOR {
        return Err(format!("incorrect terminal \"{terminator}\". This endpoint uses \"{TERMINATOR}\"."));
    }
    Ok(Credential { access_key: access_key.to_owned(), date: date.to_owned() })
}

/// Splits a `SignedHeaders` list into lowercase names; `None` if it is empty or has an empty
/// name (`host;;x-amz-date`).
pub(crate) fn parse_signed_headers(text: &str) -> Option<Vec<String>> {
    let names: Vec<String> = text.split(';').map(|n| n.trim().to_ascii_lowercase()).collect();
    names.iter().all(|n| !n.is_empty()).then_some(names)
}

/// Checks that every signed header is present and every `x-amz-*` header is signed.
///
/// A signed header that is absent cannot be verified. An unsigned `x-amz-*` header could have
/// been added by anyone on the path (say `x-amz-copy-source` on a presigned PUT), so S3
/// refuses it with `AccessDenied` and a `HeadersNotSigned` list; `x-amz-content-sha256` is
/// exempt because its value is already the payload line of the canonical request.
pub(crate) fn check_signed_headers(headers: &[(String, String)], signed: &[String]) -> Result<(), Error> {
    if let Some(missing) = signed.iter().find(|name| header_values(headers, name).next().is_none()) {
        return Err(Error::MissingSecurityHeader { header: missing.clone() });
    }
    let mut unsigned: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| name.starts_with("x-amz-") && name != "x-amz-content-sha256")
        .filter(|name| !signed.contains(name))
        .collect();
    unsigned.sort();
    unsigned.dedup();
    if unsigned.is_empty() { Ok(()) } else { Err(Error::HeadersNotSigned { headers: unsigned.join(",") }) }
}

/// Assembles the canonical request ("Create a canonical request"). Signed headers must have
/// been checked to be present; an absent one would sign as an empty value.
pub(crate) fn canonical_request(
    method: &str,
    raw_path: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    signed: &[String],
    payload_line: &str,
) -> String {
    let mut out = format!("{method}\n{}\n{canonical_query}\n", canonical_uri(raw_path));
    for name in signed {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(headers, name).unwrap_or_default());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(payload_line);
    out
}

/// The three components of a SigV4 `Authorization` header, as sent.
#[derive(Debug, PartialEq, Eq)]
struct AuthorizationParts<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
///
/// Spaces around the commas are optional (SDKs differ: the AWS docs show `, ` while the
/// worked examples use `,`). Unknown components are ignored as S3 does; repeated ones are
/// refused because it would be ambiguous which one was signed.
fn parse_authorization(value: &str) -> Result<AuthorizationParts<'_>, Error> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        .ok_or_else(|| Error::InvalidArgument("Unsupported Authorization Type".to_owned()))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (key, val) = component.split_once('=').ok_or_else(|| {
            Error::header_malformed(&format!("the component \"{component}\" is not of the form key=value."))
        })?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val.trim()).is_some() {
            return Err(Error::header_malformed(&format!("the component \"{}\" appears more than once.", key.trim())));
        }
    }
    fn require<'v>(slot: Option<&'v str>, name: &str) -> Result<&'v str, Error> {
        slot.ok_or_else(|| Error::IncompleteSignature(format!("Authorization header requires '{name}' parameter.")))
    }
    Ok(AuthorizationParts {
        credential: require(credential, "Credential")?,
        signed_headers: require(signed_headers, "SignedHeaders")?,
        signature: require(signature, "Signature")?,
    })
}

/// How the body of a header-signed request is bound to the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Sha256([u8; 32]),
    Unsigned,
    StreamingSigned { trailer: bool },
    StreamingUnsignedTrailer,
}

impl Payload {
    /// What the caller must check; `verifier` builds the chunk chain for signed streaming.
    fn into_check(self, verifier: impl FnOnce() -> ChunkVerifier) -> PayloadCheck {
        match self {
            Payload::Sha256(hash) => PayloadCheck::Sha256(hash),
            Payload::Unsigned => PayloadCheck::Unsigned,
            Payload::StreamingUnsignedTrailer => PayloadCheck::StreamingUnsignedTrailer,
            Payload::StreamingSigned { trailer } => PayloadCheck::StreamingSigned { verifier: verifier(), trailer },
        }
    }
}

/// Reads `x-amz-content-sha256`, which S3 requires on every SigV4 header-signed request
/// ("The x-amz-content-sha256 header is required for all AWS Signature Version 4 requests",
/// Single Chunk page). Returns the value that becomes the canonical request's payload line
/// and what it means for the body.
fn payload_header(headers: &[(String, String)]) -> Result<(&str, Payload), Error> {
    let value = single_header(headers, "x-amz-content-sha256")
        .map_err(|()| Error::InvalidArgument("x-amz-content-sha256 must appear only once.".to_owned()))?
        .ok_or_else(|| {
            Error::InvalidRequest("Missing required header for this request: x-amz-content-sha256".to_owned())
        })?
        .trim();
    let payload = match value {
        "UNSIGNED-PAYLOAD" => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::StreamingSigned { trailer: false },
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::StreamingSigned { trailer: true },
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::StreamingUnsignedTrailer,
        hash => Payload::Sha256(signing::parse_signature(hash).ok_or_else(|| {
            Error::InvalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, \
                 STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER \
                 or a valid sha256 value."
                    .to_owned(),
            )
        })?),
    };
    Ok((value, payload))
}

/// The request time: `x-amz-date`, else `Date`.
///
/// Returns the timestamp as the string to sign carries it, its unix seconds, and the header
/// text for error bodies. SigV4 dates are ISO 8601 basic; a `Date` header in RFC 7231 form is
/// also accepted, and then signed in basic form, the only form a string to sign carries.
fn request_time(headers: &[(String, String)]) -> Result<(String, i64, String), Error> {
    let invalid = || Error::AccessDenied("AWS authentication requires a valid Date or x-amz-date header".into());
    let amz = single_header(headers, "x-amz-date").map_err(|()| invalid())?;
    if let Some(text) = amz {
        let unix = parse_amz_date(text.trim()).ok_or_else(invalid)?;
        return Ok((text.trim().to_owned(), unix, text.to_owned()));
    }
    let text = single_header(headers, "date").map_err(|()| invalid())?.ok_or_else(invalid)?;
    let unix = parse_amz_date(text.trim()).or_else(|| parse_http_date(text)).ok_or_else(invalid)?;
    Ok((format_amz_date(unix), unix, text.to_owned()))
}

/// Refuses a header-signed request whose clock is more than 15 minutes off the server's
/// ("Time stamp requirement": the request must reach S3 within 15 minutes of its time stamp).
pub(crate) fn check_skew(request_unix: i64, request_text: &str, now: i64) -> Result<(), Error> {
    if request_unix.abs_diff(now) > REQUEST_SKEW_SECONDS_MAX.unsigned_abs() {
        return Err(Error::RequestTimeTooSkewed {
            request_time: request_text.to_owned(),
            server_time: format_iso8601_millis(now.saturating_mul(1_000)),
        });
    }
    Ok(())
}

/// Authenticates a request carrying `Authorization: AWS4-HMAC-SHA256 ...`.
pub(crate) fn authenticate(
    req: &RequestView<'_>,
    authorization: &str,
    store: &dyn SecretStore,
) -> Result<Authenticated, Error> {
    let parts = parse_authorization(authorization)?;
    let credential =
        parse_credential(parts.credential, req.region).map_err(|reason| Error::header_malformed(&reason))?;
    let signed = parse_signed_headers(parts.signed_headers)
        .ok_or_else(|| Error::header_malformed("the SignedHeaders component is malformed."))?;
    if !signed.iter().any(|name| name == "host") {
        return Err(Error::header_malformed("the SignedHeaders component must include 'host'."));
    }
    let (amz_date, unix, date_text) = request_time(req.headers)?;
    if !amz_date.starts_with(&credential.date) {
        return Err(Error::header_malformed("Invalid credential date. Date is not the same as X-Amz-Date."));
    }
    check_skew(unix, &date_text, req.now_unix)?;
    let (payload_line, payload) = payload_header(req.headers)?;
    check_signed_headers(req.headers, &signed)?;
    let secret = store
        .secret_key(&credential.access_key)
        .ok_or_else(|| Error::InvalidAccessKeyId { access_key: credential.access_key.clone() })?;

    let query = canonical_query(&parse_query(req.raw_query), None);
    let canonical = canonical_request(req.method, req.raw_path, &query, req.headers, &signed, payload_line);
    let scope = signing::scope(&credential.date, req.region);
    let string_to_sign = signing::string_to_sign(&amz_date, &scope, &canonical);
    let key = signing::signing_key(&secret, &credential.date, req.region);
    if !signing::signature_matches(&key, &string_to_sign, parts.signature) {
        return Err(Error::signature_mismatch(
            &credential.access_key,
            string_to_sign,
            Some(canonical),
            parts.signature,
        ));
    }
    let payload = payload.into_check(|| {
        // The seed is the header signature just verified, so it parses.
        ChunkVerifier::new(
            &credential.access_key,
            key,
            scope,
            amz_date,
            signing::parse_signature(parts.signature).unwrap_or_default(),
        )
    });
    Ok(Authenticated { identity: Identity::User { access_key: credential.access_key }, payload })
}

#[cfg(test)]
mod tests;
