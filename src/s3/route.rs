//! Which S3 operation a request is: from the method, the bucket and key (path
//! style, or virtual-hosted style under `--domain`), and the sub-resource
//! query parameters.

use super::error::{S3Error, S3ErrorCode};
use crate::http::head::{Head, decode};

/// Every operation the node recognises. Those not built yet answer 501.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    DeleteObjects,
    PutObject,
    /// Browser-based upload: a multipart/form-data POST to the bucket.
    PostObject,
    CopyObject,
    GetObject,
    HeadObject,
    GetObjectAttributes,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
    PutObjectTagging,
    GetObjectTagging,
    DeleteObjectTagging,
    PutBucketTagging,
    GetBucketTagging,
    DeleteBucketTagging,
    /// Also the deprecated PutBucketLifecycle (same request, older rules).
    PutBucketLifecycleConfiguration,
    GetBucketLifecycleConfiguration,
    DeleteBucketLifecycle,
    GetBucketAcl,
    PutBucketAcl,
    GetObjectAcl,
    PutObjectAcl,
    GetBucketPolicy,
    PutBucketPolicy,
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    PutBucketCors,
    GetBucketCors,
    DeleteBucketCors,
    GetBucketOwnershipControls,
    PutBucketOwnershipControls,
    DeleteBucketOwnershipControls,
    GetPublicAccessBlock,
    PutPublicAccessBlock,
    DeletePublicAccessBlock,
    /// `GET /admin/usage`: the meter (the node's own API, not S3's).
    AdminUsage,
    /// `GET /admin/metrics`: Prometheus metrics.
    AdminMetrics,
    /// Recognised but not implemented: answers 501 NotImplemented.
    NotImplemented(&'static str),
}

impl Op {
    /// Whether the operation stores something (refused while a shard is
    /// poisoned).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::PutObject
                | Op::PostObject
                | Op::CopyObject
                | Op::CreateBucket
                | Op::DeleteObjects
                | Op::CreateMultipartUpload
                | Op::UploadPart
                | Op::UploadPartCopy
                | Op::CompleteMultipartUpload
                | Op::PutObjectTagging
                | Op::DeleteObjectTagging
                | Op::PutBucketTagging
                | Op::DeleteBucketTagging
                | Op::PutBucketLifecycleConfiguration
                | Op::DeleteBucketLifecycle
                | Op::PutBucketAcl
                | Op::PutObjectAcl
                | Op::PutBucketPolicy
                | Op::DeleteBucketPolicy
                | Op::PutBucketOwnershipControls
                | Op::DeleteBucketOwnershipControls
                | Op::PutPublicAccessBlock
                | Op::DeletePublicAccessBlock
                | Op::PutBucketCors
                | Op::DeleteBucketCors
        )
    }
}

/// Sub-resources whose presence selects a different operation; any we do
/// not implement makes the request a 501 rather than a silent success.
const BUCKET_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "analytics",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "replication",
    "requestPayment",
    "website",
    "session",
];
const OBJECT_SUBRESOURCES: &[&str] = &["legal-hold", "restore", "retention", "select", "torrent"];

/// Headers asking for features not built: the request answers 501 rather
/// than storing data without what the header promised (an object "encrypted
/// with your key" stored in plain text would be worse than a refusal).
const UNSUPPORTED_HEADERS: &[(&str, &str)] = &[
    ("x-amz-server-side-encryption", "server-side encryption"),
    ("x-amz-server-side-encryption-customer-algorithm", "SSE-C"),
    ("x-amz-server-side-encryption-customer-key", "SSE-C"),
    ("x-amz-copy-source-server-side-encryption-customer-algorithm", "SSE-C"),
    ("x-amz-server-side-encryption-aws-kms-key-id", "SSE-KMS"),
    ("x-amz-object-lock-mode", "Object Lock"),
    ("x-amz-object-lock-retain-until-date", "Object Lock"),
    ("x-amz-object-lock-legal-hold", "Object Lock"),
    ("x-amz-website-redirect-location", "website redirects"),
];

pub(super) fn refuse_unsupported_headers(head: &Head, op: Op) -> Result<Op, S3Error> {
    let object_write = matches!(
        op,
        Op::PutObject
            | Op::CopyObject
            | Op::GetObject
            | Op::HeadObject
            | Op::CreateMultipartUpload
            | Op::UploadPart
            | Op::UploadPartCopy
    );
    if object_write && let Some((name, what)) = UNSUPPORTED_HEADERS.iter().find(|(h, _)| head.has_header(h)) {
        return Err(S3Error::with_message(S3ErrorCode::NotImplemented, format!("{what} ({name}) is not implemented")));
    }
    if op == Op::CreateBucket
        && head.header("x-amz-bucket-object-lock-enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(S3Error::with_message(S3ErrorCode::NotImplemented, "Object Lock is not implemented"));
    }
    Ok(op)
}

pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub virtual_host: bool,
}

/// Splits the request into bucket and key.
pub fn target(head: &Head, domain: Option<&str>) -> Target {
    let host = head.header("host").map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    if let (Some(domain), Some(host)) = (domain, host.as_deref())
        && let Some(bucket) = host.strip_suffix(domain).and_then(|b| b.strip_suffix('.'))
        && !bucket.is_empty()
    {
        let key = decode(head.path.strip_prefix('/').unwrap_or(&head.path));
        let key = (!key.is_empty()).then_some(key);
        return Target { bucket: Some(bucket.to_string()), key, virtual_host: true };
    }
    let path = head.path.strip_prefix('/').unwrap_or(&head.path);
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    let bucket = decode(bucket);
    let key = key.map(decode).filter(|k| !k.is_empty());
    Target { bucket: (!bucket.is_empty()).then_some(bucket), key, virtual_host: false }
}

/// The path under which the node's admin API lives; no bucket has its name.
pub const ADMIN_BUCKET: &str = "admin";
const ADMIN_RESERVED: &str =
    "The bucket name admin is reserved for the node's admin API (/admin/usage, /admin/metrics)";

pub fn op(head: &Head, t: &Target) -> Result<Op, S3Error> {
    refuse_unsupported_headers(head, op_of(head, t)?)
}

fn op_of(head: &Head, t: &Target) -> Result<Op, S3Error> {
    let m = head.method.as_str();
    let Some(_) = &t.bucket else {
        return match m {
            "GET" => Ok(Op::ListBuckets),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    };
    if t.bucket.as_deref() == Some(ADMIN_BUCKET) && !t.virtual_host {
        return match (m, t.key.as_deref()) {
            ("GET", Some("usage")) => Ok(Op::AdminUsage),
            ("GET", Some("metrics")) => Ok(Op::AdminMetrics),
            _ => Err(S3Error::with_message(S3ErrorCode::InvalidBucketName, ADMIN_RESERVED)),
        };
    }
    if t.key.is_none() {
        if m == "GET" && head.has_query("location") {
            return Ok(Op::GetBucketLocation);
        }
        if head.has_query("versioning") {
            return match m {
                "GET" => Ok(Op::GetBucketVersioning),
                "PUT" => Ok(Op::PutBucketVersioning),
                _ => Err(S3ErrorCode::MethodNotAllowed.into()),
            };
        }
        if m == "GET" && head.has_query("versions") {
            return Ok(Op::ListObjectVersions);
        }
        if m == "POST" && head.has_query("delete") {
            return Ok(Op::DeleteObjects);
        }
        if m == "GET" && head.has_query("uploads") {
            return Ok(Op::ListMultipartUploads);
        }
        if head.has_query("tagging") {
            return match m {
                "PUT" => Ok(Op::PutBucketTagging),
                "GET" => Ok(Op::GetBucketTagging),
                "DELETE" => Ok(Op::DeleteBucketTagging),
                _ => Err(S3ErrorCode::MethodNotAllowed.into()),
            };
        }
        if head.has_query("lifecycle") {
            return match m {
                "PUT" => Ok(Op::PutBucketLifecycleConfiguration),
                "GET" => Ok(Op::GetBucketLifecycleConfiguration),
                "DELETE" => Ok(Op::DeleteBucketLifecycle),
                _ => Err(S3ErrorCode::MethodNotAllowed.into()),
            };
        }
        let by_method = |get: Op, put: Option<Op>, delete: Option<Op>| match m {
            "GET" => Ok(get),
            "PUT" => put.ok_or_else(|| S3Error::from(S3ErrorCode::MethodNotAllowed)),
            "DELETE" => delete.ok_or_else(|| S3Error::from(S3ErrorCode::MethodNotAllowed)),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
        if head.has_query("acl") {
            return by_method(Op::GetBucketAcl, Some(Op::PutBucketAcl), None);
        }
        if head.has_query("cors") {
            return by_method(Op::GetBucketCors, Some(Op::PutBucketCors), Some(Op::DeleteBucketCors));
        }
        if head.has_query("policyStatus") {
            return by_method(Op::GetBucketPolicyStatus, None, None);
        }
        if head.has_query("policy") {
            return by_method(Op::GetBucketPolicy, Some(Op::PutBucketPolicy), Some(Op::DeleteBucketPolicy));
        }
        if head.has_query("ownershipControls") {
            let (put, delete) = (Op::PutBucketOwnershipControls, Op::DeleteBucketOwnershipControls);
            return by_method(Op::GetBucketOwnershipControls, Some(put), Some(delete));
        }
        if head.has_query("publicAccessBlock") {
            let (put, delete) = (Op::PutPublicAccessBlock, Op::DeletePublicAccessBlock);
            return by_method(Op::GetPublicAccessBlock, Some(put), Some(delete));
        }
        if let Some(sub) = BUCKET_SUBRESOURCES.iter().find(|s| head.has_query(s)) {
            return Ok(Op::NotImplemented(sub));
        }
        return match m {
            "GET" if head.query_param("list-type").as_deref() == Some("2") => Ok(Op::ListObjectsV2),
            "GET" => Ok(Op::ListObjects),
            "PUT" => Ok(Op::CreateBucket),
            "HEAD" => Ok(Op::HeadBucket),
            "DELETE" => Ok(Op::DeleteBucket),
            "POST" => Ok(Op::PostObject),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    if let Some(sub) = OBJECT_SUBRESOURCES.iter().find(|s| head.has_query(s)) {
        return Ok(Op::NotImplemented(sub));
    }
    if head.has_query("acl") {
        return match m {
            "GET" => Ok(Op::GetObjectAcl),
            "PUT" => Ok(Op::PutObjectAcl),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    if head.has_query("attributes") {
        return match m {
            "GET" => Ok(Op::GetObjectAttributes),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    if head.has_query("tagging") {
        return match m {
            "PUT" => Ok(Op::PutObjectTagging),
            "GET" => Ok(Op::GetObjectTagging),
            "DELETE" => Ok(Op::DeleteObjectTagging),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    if head.has_query("uploads") {
        return match m {
            "POST" => Ok(Op::CreateMultipartUpload),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    if head.has_query("uploadId") {
        return match m {
            "PUT" if head.has_header("x-amz-copy-source") => Ok(Op::UploadPartCopy),
            "PUT" => Ok(Op::UploadPart),
            "POST" => Ok(Op::CompleteMultipartUpload),
            "DELETE" => Ok(Op::AbortMultipartUpload),
            "GET" => Ok(Op::ListParts),
            _ => Err(S3ErrorCode::MethodNotAllowed.into()),
        };
    }
    match m {
        "PUT" if head.has_header("x-amz-copy-source") => Ok(Op::CopyObject),
        "PUT" => Ok(Op::PutObject),
        "GET" => Ok(Op::GetObject),
        "HEAD" => Ok(Op::HeadObject),
        "DELETE" => Ok(Op::DeleteObject),
        _ => Err(S3ErrorCode::MethodNotAllowed.into()),
    }
}

/// AWS bucket naming rules ("Bucket naming rules", general purpose buckets).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok_chars = b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-');
    let ends_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ip_like = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    (3..=63).contains(&b.len())
        && ok_chars
        && ends_ok(b[0])
        && ends_ok(b[b.len() - 1])
        && !name.contains("..")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str, host: &str) -> Head {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        crate::http::head::parse(raw.as_bytes(), 16).unwrap().unwrap().0
    }

    #[test]
    fn path_and_virtual_host_style() {
        let h = head("GET", "/b/a%20b/c", "localhost:9000");
        let t = target(&h, None);
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("b"), Some("a b/c")));
        let h = head("GET", "/k%2Bx", "bkt.s3.example.com");
        let t = target(&h, Some("s3.example.com"));
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("bkt"), Some("k+x")));
    }

    #[test]
    fn operations() {
        let cases = [
            ("GET", "/", Op::ListBuckets),
            ("GET", "/b?list-type=2", Op::ListObjectsV2),
            ("GET", "/b?lifecycle", Op::GetBucketLifecycleConfiguration),
            ("PUT", "/b/k?tagging", Op::PutObjectTagging),
            ("DELETE", "/b?tagging", Op::DeleteBucketTagging),
            ("GET", "/b?cors", Op::GetBucketCors),
            ("DELETE", "/b?cors", Op::DeleteBucketCors),
            ("PUT", "/b?acl", Op::PutBucketAcl),
            ("GET", "/b/k?acl&versionId=x", Op::GetObjectAcl),
            ("GET", "/b?policyStatus", Op::GetBucketPolicyStatus),
            ("DELETE", "/b?publicAccessBlock", Op::DeletePublicAccessBlock),
            ("POST", "/b?delete", Op::DeleteObjects),
            ("POST", "/b", Op::PostObject),
            ("DELETE", "/b/k", Op::DeleteObject),
        ];
        for (m, p, want) in cases {
            let h = head(m, p, "h");
            assert_eq!(op(&h, &target(&h, None)).unwrap(), want, "{m} {p}");
        }
    }

    #[test]
    fn bucket_names() {
        for good in ["abc", "my-bucket.1", "a1b"] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", &"a".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
