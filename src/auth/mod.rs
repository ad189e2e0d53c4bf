//! Request authentication: who sent this request, and how must its body be checked.
//!
//! Pure functions over the request as received: no I/O, no clock of its own, no caching.
//! Supported, in the order S3 documents them ("Authenticating Requests (AWS Signature Version
//! 4)" and "Signing and authenticating REST requests"):
//! - SigV4 in the `Authorization` header, including signed streaming (`aws-chunked`) bodies
//!   whose chunk signatures the caller checks through [`ChunkVerifier`];
//! - SigV4 presigned URLs (`X-Amz-*` query parameters);
//! - SigV2 in the `Authorization` header and as presigned URLs;
//! - the policy signature of browser-based POST uploads ([`authenticate_post`]);
//! - anonymous requests, which carry none of these. Whether an anonymous request may do what it
//!   asks is an authorization question decided elsewhere.

mod canonical;
mod chunk;
pub mod date;
mod error;
mod post;
mod presign;
pub mod sign;
mod signing;
mod sigv2;
mod sigv4;

#[cfg(test)]
mod testutil;

pub use chunk::ChunkVerifier;
pub use error::{Error, SignatureMismatch};
pub use post::{FormFields, authenticate_post};

/// How far a header-signed request's time may be from the server clock: S3 refuses requests
/// more than 15 minutes off ("Time stamp requirement", Signing and authenticating REST
/// requests; the same window applies to SigV4).
pub const REQUEST_SKEW_SECONDS_MAX: i64 = 15 * 60;

/// The longest validity a SigV4 presigned URL may ask for: seven days ("Authenticating
/// Requests: Using Query Parameters", `X-Amz-Expires`).
pub const PRESIGN_EXPIRES_SECONDS_MAX: i64 = 7 * 24 * 60 * 60;

/// Looks up a user's secret key by access key id.
pub trait SecretStore {
    /// The secret key of `access_key`, or `None` if this node does not know the key.
    fn secret_key(&self, access_key: &str) -> Option<String>;
}

/// What the server hands to auth: the request exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// Request-target path as sent on the request line (still percent-encoded), no query.
    pub raw_path: &'a str,
    /// Everything after the first '?', raw, may be empty.
    pub raw_query: &'a str,
    /// Header names already lowercased, values as sent (duplicates possible).
    pub headers: &'a [(String, String)],
    /// Server clock, seconds.
    pub now_unix: i64,
    /// The node's region, e.g. "us-east-1".
    pub region: &'a str,
    /// Some(bucket) when the bucket came from the Host header (SigV2 needs it for the
    /// resource string).
    pub virtual_host_bucket: Option<&'a str>,
}

/// Who sent the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials at all.
    Anonymous,
    /// A request signed with this access key's secret.
    User {
        /// The access key id the signature was made with.
        access_key: String,
    },
}

/// How the request body must be checked after authentication.
#[derive(Debug)]
pub enum PayloadCheck {
    /// The signature covers this body hash (`x-amz-content-sha256` as 64 hex digits, or a
    /// presigned URL's `X-Amz-Content-Sha256`): the caller hashes the body and calls
    /// [`verify_payload_sha256`].
    Sha256([u8; 32]),
    /// UNSIGNED-PAYLOAD, SigV2, presigned URLs without a hash, anonymous: nothing to check.
    Unsigned,
    /// STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER): body is aws-chunked with chunk signatures.
    StreamingSigned {
        /// Checks each chunk signature, then the trailer signature when `trailer` is set.
        verifier: ChunkVerifier,
        /// Whether a signed trailer follows the final chunk.
        trailer: bool,
    },
    /// STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked without signatures, trailer with checksum.
    StreamingUnsignedTrailer,
}

/// The outcome of a successful authentication.
#[derive(Debug)]
pub struct Authenticated {
    /// Who signed the request.
    pub identity: Identity,
    /// What the caller still has to check about the body.
    pub payload: PayloadCheck,
}

/// The mechanism a request uses, decided before any of them is parsed.
enum Mechanism<'r> {
    Anonymous,
    HeaderV4(&'r str),
    HeaderV2(&'r str),
    PresignedV4,
    PresignedV2,
}

/// Picks the one authentication mechanism of a request.
///
/// S3 refuses a request that combines them ("Only one auth mechanism allowed"), since the
/// server and an intermediary could otherwise disagree about which one authorised it.
fn mechanism<'r>(req: &RequestView<'r>, params: &[canonical::QueryParam<'_>]) -> Result<Mechanism<'r>, Error> {
    let has = |names: &[&str]| params.iter().any(|p| names.contains(&p.name().as_ref()));
    let presigned_v4 = has(&presign::MARKER_PARAMS);
    let presigned_v2 = has(&sigv2::MARKER_PARAMS);
    let mut authorization = canonical::header_values(req.headers, "authorization");
    let header = authorization.next();
    let count = usize::from(header.is_some()) + usize::from(presigned_v4) + usize::from(presigned_v2);
    if count > 1 || authorization.next().is_some() {
        return Err(Error::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .to_owned(),
        ));
    }
    Ok(match header.map(str::trim) {
        Some(value) if value.starts_with(signing::ALGORITHM) => Mechanism::HeaderV4(value),
        Some(value) if value.starts_with("AWS ") => Mechanism::HeaderV2(value),
        Some(_) => {
            return Err(Error::InvalidArgument("Unsupported Authorization Type".to_owned()));
        }
        None if presigned_v4 => Mechanism::PresignedV4,
        None if presigned_v2 => Mechanism::PresignedV2,
        None => Mechanism::Anonymous,
    })
}

/// Authenticates a request: returns who sent it and how its body must be checked.
///
/// The request is used exactly as received; `now_unix` is the only notion of time. A request
/// without credentials is `Identity::Anonymous`; every malformed or unverifiable credential is
/// an error, never a silent fallback to anonymous.
pub fn authenticate(req: &RequestView, store: &dyn SecretStore) -> Result<Authenticated, Error> {
    let params = canonical::parse_query(req.raw_query);
    match mechanism(req, &params)? {
        Mechanism::Anonymous => Ok(Authenticated { identity: Identity::Anonymous, payload: PayloadCheck::Unsigned }),
        Mechanism::HeaderV4(value) => sigv4::authenticate(req, value, store),
        Mechanism::HeaderV2(value) => sigv2::authenticate_header(req, value, &params, store),
        Mechanism::PresignedV4 => presign::authenticate(req, &params, store),
        Mechanism::PresignedV2 => sigv2::authenticate_presigned(req, &params, store),
    }
}

/// Checks a received body against the hash the client signed, in constant time.
///
/// S3 answers a difference with `XAmzContentSHA256Mismatch` ("Error responses"), carrying both
/// hashes in hex.
pub fn verify_payload_sha256(expected: &[u8; 32], actual: &[u8; 32]) -> Result<(), Error> {
    if signing::constant_time_eq(expected, actual) {
        Ok(())
    } else {
        Err(Error::XAmzContentSHA256Mismatch {
            client_computed: hex::encode(expected),
            s3_computed: hex::encode(actual),
        })
    }
}

#[cfg(test)]
mod tests;
