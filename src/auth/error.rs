//! The ways authentication can refuse a request, one variant per S3 error code.
//!
//! Codes, HTTP statuses and message sentences follow the "Error responses" page of the Amazon
//! S3 API Reference (List of error codes) and what S3 returns for the same mistakes, so SDKs
//! react as they would against AWS (for example, `RequestTimeTooSkewed` makes them correct
//! their clock offset and retry). `Display` is S3's `Message` sentence; the fields carry the
//! extra elements S3 puts in the XML error body.

/// Details S3 adds to a `SignatureDoesNotMatch` body so a client author can see which
/// canonical form the server signed ("REST request signing problems", Signing and
/// authenticating REST requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureMismatch {
    /// The access key the request claimed (`AWSAccessKeyId` element).
    pub access_key: String,
    /// The string the server signed (`StringToSign` element).
    pub string_to_sign: String,
    /// The canonical request (`CanonicalRequest` element); SigV2 and chunk signatures have none.
    pub canonical_request: Option<String>,
    /// The signature as the client sent it (`SignatureProvided` element).
    pub signature_provided: String,
}

/// Why a request failed authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Authenticated, but refused; the sentence is the XML `Message`, e.g. "Request has expired".
    #[error("{0}")]
    AccessDenied(String),
    /// An `x-amz-*` header reached the server without being covered by the signature, so a
    /// man in the middle could have added it; S3 answers `AccessDenied` with a
    /// `HeadersNotSigned` element listing them.
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned {
        /// Comma-separated header names, as S3 prints them in `HeadersNotSigned`.
        headers: String,
    },
    /// The access key id is not known to this node.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId {
        /// The key id the client sent (`AWSAccessKeyId` element).
        access_key: String,
    },
    /// The signature the client computed is not the one the server computed.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )]
    SignatureDoesNotMatch(Box<SignatureMismatch>),
    /// The request time is more than 15 minutes away from the server clock.
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed {
        /// The client's timestamp as it sent it (`RequestTime` element).
        request_time: String,
        /// The server clock in ISO 8601 with milliseconds (`ServerTime` element).
        server_time: String,
    },
    /// The `Authorization` header cannot be understood or names the wrong scope.
    #[error("{message}")]
    AuthorizationHeaderMalformed {
        /// The full sentence, e.g. "The authorization header is malformed; the region 'X' is
        /// wrong; expecting 'us-east-1'".
        message: String,
    },
    /// The presigned URL's `X-Amz-*` parameters cannot be understood.
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    /// A header the signature covers is absent from the request.
    #[error("Your request is missing a required header.")]
    MissingSecurityHeader {
        /// The missing header's name (`MissingHeaderName` element).
        header: String,
    },
    /// A parameter or header has a value S3 does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// The body's SHA-256 differs from the `x-amz-content-sha256` the client signed.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    XAmzContentSHA256Mismatch {
        /// The hash the client declared, lowercase hex (`ClientComputedContentSHA256`).
        client_computed: String,
        /// The hash of the received body, lowercase hex (`S3ComputedContentSHA256`).
        s3_computed: String,
    },
    /// The `Authorization` header lacks one of its required parts.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The request is not valid for a reason S3 reports as `InvalidRequest`.
    #[error("{0}")]
    InvalidRequest(String),
}

impl Error {
    /// The S3 error code, spelled as AWS spells it in the XML `Code` element.
    pub fn code(&self) -> &'static str {
        match self {
            Error::AccessDenied(_) | Error::HeadersNotSigned { .. } => "AccessDenied",
            Error::InvalidAccessKeyId { .. } => "InvalidAccessKeyId",
            Error::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            Error::RequestTimeTooSkewed { .. } => "RequestTimeTooSkewed",
            Error::AuthorizationHeaderMalformed { .. } => "AuthorizationHeaderMalformed",
            Error::AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            Error::MissingSecurityHeader { .. } => "MissingSecurityHeader",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::XAmzContentSHA256Mismatch { .. } => "XAmzContentSHA256Mismatch",
            Error::IncompleteSignature(_) => "IncompleteSignature",
            Error::InvalidRequest(_) => "InvalidRequest",
        }
    }

    /// The HTTP status S3 pairs with the code in its error table.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::AccessDenied(_)
            | Error::HeadersNotSigned { .. }
            | Error::InvalidAccessKeyId { .. }
            | Error::SignatureDoesNotMatch(_)
            | Error::RequestTimeTooSkewed { .. } => 403,
            Error::AuthorizationHeaderMalformed { .. }
            | Error::AuthorizationQueryParametersError(_)
            | Error::MissingSecurityHeader { .. }
            | Error::InvalidArgument(_)
            | Error::XAmzContentSHA256Mismatch { .. }
            | Error::IncompleteSignature(_)
            | Error::InvalidRequest(_) => 400,
        }
    }

    /// Builds a `SignatureDoesNotMatch` from its parts.
    pub(crate) fn signature_mismatch(
        access_key: &str,
        string_to_sign: String,
        canonical_request: Option<String>,
        signature_provided: &str,
    ) -> Error {
        Error::SignatureDoesNotMatch(Box::new(SignatureMismatch {
            access_key: access_key.to_owned(),
            string_to_sign,
            canonical_request,
            signature_provided: signature_provided.to_owned(),
        }))
    }

    /// Shorthand for an `AuthorizationHeaderMalformed` whose reason follows S3's prefix.
    pub(crate) fn header_malformed(reason: &str) -> Error {
        Error::AuthorizationHeaderMalformed { message: format!("The authorization header is malformed; {reason}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_the_s3_table() {
        let cases = [
            (Error::AccessDenied("x".into()), "AccessDenied", 403),
            (Error::HeadersNotSigned { headers: "x-amz-acl".into() }, "AccessDenied", 403),
            (Error::InvalidAccessKeyId { access_key: "AK".into() }, "InvalidAccessKeyId", 403),
            (Error::signature_mismatch("AK", "sts".into(), None, "sig"), "SignatureDoesNotMatch", 403),
            (
                Error::RequestTimeTooSkewed { request_time: "a".into(), server_time: "b".into() },
                "RequestTimeTooSkewed",
                403,
            ),
            (Error::header_malformed("x"), "AuthorizationHeaderMalformed", 400),
            (Error::AuthorizationQueryParametersError("x".into()), "AuthorizationQueryParametersError", 400),
            (Error::MissingSecurityHeader { header: "h".into() }, "MissingSecurityHeader", 400),
            (Error::InvalidArgument("x".into()), "InvalidArgument", 400),
            (
                Error::XAmzContentSHA256Mismatch { client_computed: "a".into(), s3_computed: "b".into() },
                "XAmzContentSHA256Mismatch",
                400,
            ),
            (Error::IncompleteSignature("x".into()), "IncompleteSignature", 400),
            (Error::InvalidRequest("x".into()), "InvalidRequest", 400),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.http_status(), status);
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn region_message_keeps_the_s3_prefix() {
        let error = Error::header_malformed("the region 'eu-west-1' is wrong; expecting 'us-east-1'");
        assert_eq!(
            error.to_string(),
            "The authorization header is malformed; the region 'eu-west-1' is wrong; \
             expecting 'us-east-1'"
        );
    }
}
