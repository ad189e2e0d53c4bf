//! The one S3 error table: every code the node sends, its HTTP status, its
//! XML body, and every conversion from http/auth/engine errors. Handlers
//! never build a status code themselves. Codes and statuses follow the AWS
//! "Error responses" page of the S3 API reference.

use super::xml::escape;
use crate::engine;

macro_rules! codes {
    ($($code:ident = $status:expr, $msg:expr;)*) => {
        /// S3 error codes, spelled as AWS spells them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum S3ErrorCode { $($code,)* }

        impl S3ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$code => stringify!($code),)* }
            }
            pub fn status(self) -> u16 {
                match self { $(Self::$code => $status,)* }
            }
            /// AWS's default message for the code.
            pub fn message(self) -> &'static str {
                match self { $(Self::$code => $msg,)* }
            }
        }
    };
}

codes! {
    AccessDenied = 403, "Access Denied";
    AccessControlListNotSupported = 400, "The bucket does not allow ACLs";
    AccessForbidden = 403, "CORSResponse: CORS is not enabled for this bucket.";
    AuthorizationHeaderMalformed = 400, "The authorization header is malformed.";
    AuthorizationQueryParametersError = 400, "Error parsing the X-Amz-Credential parameter.";
    BadRequest = 400, "Bad Request";
    BadDigest = 400, "The Content-MD5 or checksum you specified did not match what we received.";
    BucketAlreadyExists = 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.";
    BucketAlreadyOwnedByYou = 409, "Your previous request to create the named bucket succeeded and you already own it.";
    BucketNotEmpty = 409, "The bucket you tried to delete is not empty";
    ConditionalRequestConflict = 409, "A conflicting operation occurred. If using PutObject you can retry the request.";
    IllegalLocationConstraintException = 400, "The location constraint is incompatible for the region specific endpoint this request was sent to.";
    InvalidBucketAclWithObjectOwnership = 400, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting";
    InvalidLocationConstraint = 400, "The specified location-constraint is not valid";
    EntityTooLarge = 400, "Your proposed upload exceeds the maximum allowed object size.";
    EntityTooSmall = 400, "Your proposed upload is smaller than the minimum allowed object size.";
    IncompleteBody = 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    IncompleteSignature = 400, "The request signature does not conform to AWS standards.";
    InternalError = 500, "We encountered an internal error. Please try again.";
    InvalidAccessKeyId = 403, "The AWS Access Key Id you provided does not exist in our records.";
    InvalidArgument = 400, "Invalid Argument";
    InvalidBucketName = 400, "The specified bucket is not valid.";
    InvalidDigest = 400, "The Content-MD5 or checksum you specified is not valid.";
    InvalidPart = 400, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.";
    InvalidPolicyDocument = 400, "The content of the form does not meet the conditions specified in the policy document.";
    InvalidPartOrder = 400, "The list of parts was not in ascending order. The parts list must be specified in order by part number.";
    InvalidStorageClass = 400, "The storage class you specified is not valid";
    InvalidTag = 400, "The tag provided was not a valid tag. This error can occur if the tag did not pass input validation.";
    InvalidRange = 416, "The requested range is not satisfiable";
    InvalidRequest = 400, "Invalid Request";
    UnexpectedContent = 400, "This request does not support content";
    IncorrectNumberOfFilesInPostRequest = 400, "POST requires exactly one file upload per request.";
    KeyTooLongError = 400, "Your key is too long";
    MalformedACLError = 400, "The XML you provided was not well-formed or did not validate against our published schema";
    MalformedPolicy = 400, "Policies must be valid JSON and the first byte must be '{'";
    MalformedPOSTRequest = 400, "The body of your POST request is not well-formed multipart/form-data.";
    MalformedXML = 400, "The XML you provided was not well-formed or did not validate against our published schema.";
    MaxPostPreDataLengthExceededError = 400, "Your POST request fields preceding the upload file were too large.";
    MetadataTooLarge = 400, "Your metadata headers exceed the maximum allowed metadata size.";
    MethodNotAllowed = 405, "The specified method is not allowed against this resource.";
    MissingContentLength = 411, "You must provide the Content-Length HTTP header.";
    MissingSecurityHeader = 400, "Your request is missing a required header.";
    NoSuchBucket = 404, "The specified bucket does not exist";
    NoSuchBucketPolicy = 404, "The bucket policy does not exist";
    NoSuchCORSConfiguration = 404, "The CORS configuration does not exist";
    NoSuchKey = 404, "The specified key does not exist.";
    NoSuchLifecycleConfiguration = 404, "The lifecycle configuration does not exist";
    NoSuchPublicAccessBlockConfiguration = 404, "The public access block configuration was not found";
    NoSuchTagSet = 404, "The TagSet does not exist";
    NoSuchUpload = 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.";
    NoSuchVersion = 404, "The specified version does not exist.";
    OwnershipControlsNotFoundError = 404, "The bucket ownership controls were not found";
    NotImplemented = 501, "A header you provided implies functionality that is not implemented.";
    NotModified = 304, "Not Modified";
    OperationAborted = 409, "A conflicting conditional operation is currently in progress against this resource. Try again.";
    PreconditionFailed = 412, "At least one of the pre-conditions you specified did not hold";
    UnresolvableGrantByEmailAddress = 400, "The e-mail address you provided does not match any account on record.";
    RequestHeaderSectionTooLarge = 400, "Your request header section exceeds the maximum allowed size.";
    RequestTimeout = 400, "Your socket connection to the server was not read from or written to within the timeout period.";
    RequestTimeTooSkewed = 403, "The difference between the request time and the server's time is too large.";
    ServiceUnavailable = 503, "Please reduce your request rate.";
    SignatureDoesNotMatch = 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
    SlowDown = 503, "Please reduce your request rate.";
    XAmzContentSHA256Mismatch = 400, "The provided 'x-amz-content-sha256' header does not match what was computed.";
}

/// An error as the client sees it.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub code: S3ErrorCode,
    pub message: String,
    pub resource: Option<String>,
    /// Headers that go with this error (e.g. `x-amz-delete-marker`).
    pub headers: Vec<(String, String)>,
}

impl S3Error {
    pub fn new(code: S3ErrorCode) -> Self {
        Self { code, message: code.message().to_string(), resource: None, headers: Vec::new() }
    }

    pub fn with_message(code: S3ErrorCode, message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::new(code) }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn resource(mut self, r: impl Into<String>) -> Self {
        self.resource = Some(r.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The XML body AWS sends.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        s.push_str(self.code.as_str());
        s.push_str("</Code><Message>");
        s.push_str(&escape(&self.message));
        s.push_str("</Message>");
        if let Some(r) = &self.resource {
            s.push_str("<Resource>");
            s.push_str(&escape(r));
            s.push_str("</Resource>");
        }
        s.push_str("<RequestId>");
        s.push_str(request_id);
        s.push_str("</RequestId><HostId>");
        s.push_str(&super::access_log::host_id(request_id));
        s.push_str("</HostId></Error>");
        s
    }
}

impl From<S3ErrorCode> for S3Error {
    fn from(c: S3ErrorCode) -> Self {
        Self::new(c)
    }
}

impl From<engine::Error> for S3Error {
    fn from(e: engine::Error) -> Self {
        use S3ErrorCode as C;
        use engine::Error as E;
        match e {
            E::NoSuchBucket => C::NoSuchBucket.into(),
            E::NoSuchKey => C::NoSuchKey.into(),
            E::NoSuchVersion => S3Error::with_message(C::NoSuchVersion, "The specified version does not exist."),
            E::DeleteMarker(id) => S3Error::new(C::NoSuchKey)
                .header("x-amz-delete-marker", "true")
                .header("x-amz-version-id", id.to_string()),
            E::MethodNotAllowed(id) => S3Error::new(C::MethodNotAllowed)
                .header("x-amz-delete-marker", "true")
                .header("x-amz-version-id", id.to_string()),
            E::BucketAlreadyExists => C::BucketAlreadyExists.into(),
            E::BucketAlreadyOwnedByYou => C::BucketAlreadyOwnedByYou.into(),
            E::BucketNotEmpty => C::BucketNotEmpty.into(),
            E::PreconditionFailed => C::PreconditionFailed.into(),
            E::NoSuchUpload => C::NoSuchUpload.into(),
            E::InvalidPart => C::InvalidPart.into(),
            E::TooFragmented(_) => S3Error::with_message(C::NotImplemented, e.to_string()),
            E::OperationAborted => C::OperationAborted.into(),
            E::Poisoned(_) | E::ShuttingDown => S3Error::with_message(C::ServiceUnavailable, e.to_string()),
            E::Retry(_) => S3Error::with_message(C::SlowDown, e.to_string()),
            E::DiskFull => S3Error::with_message(C::ServiceUnavailable, e.to_string()),
            E::Corrupt(_) | E::Io(_) => {
                tracing::error!(error = %e, "internal error");
                C::InternalError.into()
            }
        }
    }
}

impl From<crate::auth::Error> for S3Error {
    fn from(e: crate::auth::Error) -> Self {
        let code = match e.code() {
            "AccessDenied" => S3ErrorCode::AccessDenied,
            "InvalidAccessKeyId" => S3ErrorCode::InvalidAccessKeyId,
            "SignatureDoesNotMatch" => S3ErrorCode::SignatureDoesNotMatch,
            "RequestTimeTooSkewed" => S3ErrorCode::RequestTimeTooSkewed,
            "AuthorizationHeaderMalformed" => S3ErrorCode::AuthorizationHeaderMalformed,
            "AuthorizationQueryParametersError" => S3ErrorCode::AuthorizationQueryParametersError,
            "MissingSecurityHeader" => S3ErrorCode::MissingSecurityHeader,
            "XAmzContentSHA256Mismatch" => S3ErrorCode::XAmzContentSHA256Mismatch,
            "IncompleteSignature" => S3ErrorCode::IncompleteSignature,
            "InvalidRequest" => S3ErrorCode::InvalidRequest,
            _ => S3ErrorCode::InvalidArgument,
        };
        S3Error::with_message(code, e.to_string())
    }
}

impl From<crate::http::Error> for S3Error {
    fn from(e: crate::http::Error) -> Self {
        use crate::http::Error as H;
        match e {
            H::HeadTooLarge | H::TooManyHeaders => S3ErrorCode::RequestHeaderSectionTooLarge.into(),
            H::BadHead | H::BadFraming(_) => S3Error::with_message(S3ErrorCode::InvalidRequest, e.to_string()),
            H::Truncated | H::Closed => S3ErrorCode::IncompleteBody.into(),
            H::Timeout => S3ErrorCode::RequestTimeout.into(),
            H::Io(_) => S3ErrorCode::IncompleteBody.into(),
        }
    }
}

impl From<crate::http::aws_chunked::Error> for S3Error {
    fn from(e: crate::http::aws_chunked::Error) -> Self {
        use crate::http::aws_chunked::Error as A;
        match e {
            A::Framing(why) => {
                S3Error::with_message(S3ErrorCode::IncompleteBody, format!("aws-chunked body is malformed: {why}"))
            }
            A::Auth(a) => a.into(),
            A::Http(h) => h.into(),
        }
    }
}

impl From<crate::http::form::Error> for S3Error {
    fn from(e: crate::http::form::Error) -> Self {
        use crate::http::form::Error as F;
        match e {
            F::Malformed(_) => S3Error::with_message(S3ErrorCode::MalformedPOSTRequest, e.to_string()),
            F::FieldsTooLarge => S3ErrorCode::MaxPostPreDataLengthExceededError.into(),
            F::NoFile => S3ErrorCode::IncorrectNumberOfFilesInPostRequest.into(),
            F::Http(h) => h.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_body_and_status() {
        let e = S3Error::new(S3ErrorCode::NoSuchKey).resource("/b/<k>");
        assert_eq!(e.status(), 404);
        let x = e.to_xml("RID");
        assert!(x.contains("<Code>NoSuchKey</Code>"));
        assert!(x.contains("<Resource>/b/&lt;k&gt;</Resource>"));
        assert!(x.contains("<RequestId>RID</RequestId>"));
    }
}
