//! What the node does not implement answers 501 NotImplemented with S3 XML,
//! never a 200 that silently drops the request's meaning (README, "Not
//! implemented"), and changes nothing.

mod common;
#[path = "common/sign.rs"]
mod sign;

use aws_sdk_s3::error::ProvideErrorMetadata;
use common::*;
use sign::*;

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

const XML: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Configuration/>";

#[test]
fn unsupported_subresources_are_501() {
    let node = Node::start("unsupported", &[]);
    let h = node.addr.to_string();
    let cr = creds();
    let go = |method: &str, target: &str, body: &[u8]| {
        send(node.addr, &Request::new(method, target, &h).body(body.to_vec()).sign_v4(&cr))
    };
    assert_eq!(go("PUT", "/nope", b"").status, 200);
    assert_eq!(go("PUT", "/nope/obj", b"original").status, 200);

    let cases: &[(&str, &str, &[u8])] = &[
        // Bucket sub-resources.
        ("GET", "/nope?analytics", b""),
        ("PUT", "/nope?accelerate", XML),
        ("GET", "/nope?website", b""),
        ("PUT", "/nope?encryption", XML),
        ("PUT", "/nope?object-lock", XML),
        ("PUT", "/nope?replication", XML),
        ("PUT", "/nope?notification", XML),
        ("PUT", "/nope?logging", XML),
        ("PUT", "/nope?website", XML),
        // Object sub-resources.
        ("GET", "/nope/obj?torrent", b""),
        ("POST", "/nope/obj?restore", XML),
        ("POST", "/nope/obj?select&select-type=2", XML),
        ("PUT", "/nope/obj?retention", XML),
        ("PUT", "/nope/obj?legal-hold", XML),
    ];
    let mut failures = Vec::new();
    for (method, target, body) in cases {
        let r = go(method, target, body);
        if (r.status, r.code().as_str()) != (501, "NotImplemented") || !r.text().contains("<Error>") {
            failures.push(format!("{method} {target}: {} {}", r.status, r.text()));
        }
    }
    assert!(failures.is_empty(), "expected 501 NotImplemented:\n{}", failures.join("\n"));
    // POST to a bucket is a browser upload (PostObject): a body that is not
    // multipart/form-data is malformed, not unsupported.
    let r = go("POST", "/nope", b"form");
    assert_eq!((r.status, r.code().as_str()), (400, "MalformedPOSTRequest"), "{}", r.text());
    // Nothing above changed the object or the bucket.
    let r = go("GET", "/nope/obj", b"");
    assert_eq!((r.status, r.body.as_slice()), (200, b"original".as_slice()));
    let r = go("GET", "/nope?list-type=2", b"");
    assert!(r.text().contains("<KeyCount>1</KeyCount>"), "{}", r.text());
}

#[test]
fn unsupported_headers_are_501() {
    let node = Node::start("unsupported-headers", &[]);
    let h = node.addr.to_string();
    let cr = creds();
    assert_eq!(send(node.addr, &Request::new("PUT", "/hdrs", &h).sign_v4(&cr)).status, 200);
    // Headers that ask for SSE-C, SSE-KMS or Object Lock: storing
    // the object without them would silently drop what was asked for.
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "sse-c",
            &[
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                ("x-amz-server-side-encryption-customer-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
                ("x-amz-server-side-encryption-customer-key-md5", "zb2jOTaPJX3tgy7DJ5XXoA=="),
            ],
        ),
        ("sse-kms", &[("x-amz-server-side-encryption", "aws:kms")]),
        (
            "lock",
            &[
                ("x-amz-object-lock-mode", "COMPLIANCE"),
                ("x-amz-object-lock-retain-until-date", "2099-01-01T00:00:00Z"),
            ],
        ),
        ("legal-hold", &[("x-amz-object-lock-legal-hold", "ON")]),
    ];
    let mut failures = Vec::new();
    for (key, headers) in cases {
        let mut req = Request::new("PUT", &object_path("hdrs", key), &h).body(b"data".to_vec());
        for (n, v) in *headers {
            req = req.header(n, v);
        }
        let r = send(node.addr, &req.sign_v4(&cr));
        if (r.status, r.code().as_str()) != (501, "NotImplemented") {
            failures.push(format!("PUT with {key} headers: {} {}", r.status, r.text()));
        }
        let g = send(node.addr, &Request::new("GET", &object_path("hdrs", key), &h).sign_v4(&cr));
        if g.status != 404 {
            failures.push(format!("PUT with {key} headers stored an object: GET answered {}", g.status));
        }
    }
    // CreateBucket with Object Lock enabled.
    let r = send(
        node.addr,
        &Request::new("PUT", "/locked", &h).header("x-amz-bucket-object-lock-enabled", "true").sign_v4(&cr),
    );
    if (r.status, r.code().as_str()) != (501, "NotImplemented") {
        failures.push(format!("CreateBucket with object lock: {} {}", r.status, r.text()));
    }
    assert!(failures.is_empty(), "expected 501 NotImplemented and nothing stored:\n{}", failures.join("\n"));
}

#[test]
fn sdk_sees_not_implemented() {
    let node = Node::start("unsupported-sdk", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("sdk").send().await.unwrap();
        let e = c.get_bucket_encryption().bucket("sdk").send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(501));
        assert_eq!(e.code(), Some("NotImplemented"));
        let e = c.get_bucket_website().bucket("sdk").send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(501));
        assert_eq!(e.code(), Some("NotImplemented"));
    });
}
