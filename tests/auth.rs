//! Authentication over real sockets: SigV4 presigned URLs (made by the AWS
//! SDK's presigner and by a hand-written signer) fetched by a plain HTTP
//! client, SigV2 in the header and the query, and the refusals S3 sends
//! for bad credentials, clocks, scopes and payload hashes (status and code).

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::*;
use sign::*;

/// Keys that break naive canonicalisation (FIELD_NOTES B4).
const AWKWARD_KEYS: [&str; 9] = [
    "with space",
    "plus+sign",
    "100%",
    "a=b&c=d",
    "café/ünïcödé",
    "double//slash",
    "/leading-slash",
    "dots/./and/../x",
    "mix a+b%c=d&e é//x~y!$'()*,;:@[]",
];

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

fn host(node: &Node) -> String {
    node.addr.to_string()
}

/// A signed GET of an object; returns the response.
fn signed_get(node: &Node, bucket: &str, key: &str) -> RawResponse {
    send(node.addr, &Request::new("GET", &object_path(bucket, key), &host(node)).sign_v4(&creds()))
}

/// Fetches an SDK presigned request with a plain HTTP client.
fn fetch_presigned(req: &aws_sdk_s3::presigning::PresignedRequest, body: &[u8]) -> RawResponse {
    let (host, target) = split_url(req.uri());
    let extra: Vec<(&str, &str)> = req.headers().collect();
    let bytes = plain_request(req.method(), &target, &host, &extra, body);
    send_bytes(host.parse().unwrap(), &bytes, false)
}

#[test]
fn sdk_presigned_get_and_put_with_awkward_keys() {
    let node = Node::start("auth-sdk-presign", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("pre").send().await.unwrap();
        let cfg = || PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
        for (i, key) in AWKWARD_KEYS.iter().enumerate() {
            let body = bytes(i as u64 + 1, 1000 + i);
            let put = c.put_object().bucket("pre").key(*key).presigned(cfg()).await.unwrap();
            let r = fetch_presigned(&put, &body);
            assert_eq!(r.status, 200, "presigned PUT {key:?} ({}): {}", put.uri(), r.text());
            let get = c.get_object().bucket("pre").key(*key).presigned(cfg()).await.unwrap();
            let r = fetch_presigned(&get, &[]);
            assert_eq!(r.status, 200, "presigned GET {key:?} ({}): {}", get.uri(), r.text());
            assert_eq!(r.body, body, "presigned GET {key:?} returned other bytes");
            // The SDK (not presigned) sees the object under exactly that key.
            let got = c.get_object().bucket("pre").key(*key).send().await.unwrap();
            assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice(), "{key:?}");
        }
        let listed: Vec<String> = c
            .list_objects_v2()
            .bucket("pre")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        let mut want: Vec<String> = AWKWARD_KEYS.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(listed, want);

        // Response overrides ride in the signed query.
        let disposition = "attachment; filename=\"é x+y.txt\"";
        let get = c
            .get_object()
            .bucket("pre")
            .key(AWKWARD_KEYS[1])
            .response_content_disposition(disposition)
            .response_content_type("text/x-override")
            .presigned(cfg())
            .await
            .unwrap();
        let r = fetch_presigned(&get, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-disposition"), Some(disposition));
        assert_eq!(r.header("content-type"), Some("text/x-override"));

        // A presigned URL whose window has passed: 403 AccessDenied.
        let old = PresigningConfig::builder()
            .start_time(SystemTime::now() - Duration::from_secs(7200))
            .expires_in(Duration::from_secs(3600))
            .build()
            .unwrap();
        let get = c.get_object().bucket("pre").key(AWKWARD_KEYS[0]).presigned(old).await.unwrap();
        let r = fetch_presigned(&get, &[]);
        assert_error(&r, 403, "AccessDenied");

        // A presigned PUT that signs Content-Type: another type is refused, and
        // nothing is stored.
        let put = c.put_object().bucket("pre").key("typed").content_type("text/plain").presigned(cfg()).await.unwrap();
        let (host, target) = split_url(put.uri());
        let mut extra: Vec<(&str, &str)> =
            put.headers().filter(|(n, _)| !n.eq_ignore_ascii_case("content-type")).collect();
        extra.push(("Content-Type", "image/png"));
        let r = send_bytes(node.addr, &plain_request("PUT", &target, &host, &extra, b"data"), false);
        assert_error(&r, 403, "SignatureDoesNotMatch");
        let e = c.head_object().bucket("pre").key("typed").send().await.unwrap_err();
        assert!(e.as_service_error().is_some_and(|s| s.is_not_found()));
        let r = fetch_presigned(&put, b"data");
        assert_eq!(r.status, 200, "{}", r.text());
        let head = c.head_object().bucket("pre").key("typed").send().await.unwrap();
        assert_eq!(head.content_type(), Some("text/plain"));
    });
    record_rust_sdk("sdk_presigned_get_and_put_with_awkward_keys", &["presigned GET/PUT"]);
}

#[test]
fn hand_presigned_get_put_expiry_and_tampering() {
    let node = Node::start("auth-presign", &[]);
    let h = host(&node);
    let cr = creds();
    let r = send(node.addr, &Request::new("PUT", "/hand", &h).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    let presign =
        |method: &str, path: String, unix: i64, expires: &str| Presign::new(&cr, method, &path, &h, unix, expires);
    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        let body = bytes(100 + i as u64, 777);
        let put = presign("PUT", object_path("hand", key), now_unix(), "300").target();
        let r = send_bytes(node.addr, &plain_request("PUT", &put, &h, &[], &body), false);
        assert_eq!(r.status, 200, "PUT {key:?} via {put}: {}", r.text());
        let get = presign("GET", object_path("hand", key), now_unix(), "300").target();
        let r = send_bytes(node.addr, &plain_request("GET", &get, &h, &[], &[]), false);
        assert_eq!(r.status, 200, "GET {key:?} via {get}: {}", r.text());
        assert_eq!(r.body, body, "{key:?}");
        // The same key read back with header signing.
        assert_eq!(signed_get(&node, "hand", key).body, body, "{key:?}");
    }
    let path = object_path("hand", AWKWARD_KEYS[0]);
    let get = |target: &str, extra: &[(&str, &str)]| {
        send_bytes(node.addr, &plain_request("GET", target, &h, extra, &[]), false)
    };

    // Seven days is the longest allowed validity, and it is allowed.
    let r = get(&presign("GET", path.clone(), now_unix(), "604800").target(), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Signed a little in the future (a client clock ahead): still valid;
    // far in the future: not yet valid.
    let r = get(&presign("GET", path.clone(), now_unix() + 5 * 60, "300").target(), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&presign("GET", path.clone(), now_unix() + 3600, "300").target(), &[]);
    assert_error(&r, 403, "AccessDenied");
    // A repeated X-Amz-Expires.
    let t = presign("GET", path.clone(), now_unix(), "300").target() + "&X-Amz-Expires=300";
    assert_error(&get(&t, &[]), 400, "AuthorizationQueryParametersError");
    // Presigned and an Authorization header at once.
    let t = presign("GET", path.clone(), now_unix(), "300").target();
    let r = get(
        &t,
        &[(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        )],
    );
    assert_error(&r, 400, "InvalidArgument");
    // Expired: signed two minutes ago for one minute.
    let r = get(&presign("GET", path.clone(), now_unix() - 120, "60").target(), &[]);
    assert_error(&r, 403, "AccessDenied");
    // X-Amz-Expires out of range or not a number.
    for expires in ["604801", "abc", "-5", ""] {
        let r = get(&presign("GET", path.clone(), now_unix(), expires).target(), &[]);
        assert_error(&r, 400, "AuthorizationQueryParametersError");
    }
    // Valid for no time: expired as made (AWS answers 403, not a malformed parameter).
    assert_error(&get(&presign("GET", path.clone(), now_unix(), "0").target(), &[]), 403, "AccessDenied");
    // A tampered signature.
    let mut t = presign("GET", path.clone(), now_unix(), "300").target();
    let last = t.pop().unwrap();
    t.push(if last == '0' { '1' } else { '0' });
    assert_error(&get(&t, &[]), 403, "SignatureDoesNotMatch");
    // A tampered parameter (longer validity than signed).
    let t = presign("GET", path.clone(), now_unix(), "300").target().replace("X-Amz-Expires=300", "X-Amz-Expires=3000");
    assert_error(&get(&t, &[]), 403, "SignatureDoesNotMatch");
    // Another key than the one signed.
    let t = presign("GET", path.clone(), now_unix(), "300").target().replacen("/hand/", "/hand/x", 1);
    assert_error(&get(&t, &[]), 403, "SignatureDoesNotMatch");
    // A signed header that is not sent is refused; a different value too.
    let signed = presign("GET", path.clone(), now_unix(), "300").header("x-amz-meta-colour", "blue").target();
    let r = get(&signed, &[]);
    assert_error_in(&r, &[(400, "MissingSecurityHeader"), (403, "SignatureDoesNotMatch"), (403, "AccessDenied")]);
    assert_error(&get(&signed, &[("x-amz-meta-colour", "red")]), 403, "SignatureDoesNotMatch");
    assert_eq!(get(&signed, &[("x-amz-meta-colour", "blue")]).status, 200);
    // An x-amz-* header added to a presigned request without being signed:
    // S3 refuses it (HeadersNotSigned) since anyone on the path could add it.
    let t = presign("PUT", object_path("hand", "unsigned-acl"), now_unix(), "300").target();
    let r = send_bytes(node.addr, &plain_request("PUT", &t, &h, &[("x-amz-meta-evil", "1")], b"x"), false);
    assert_error(&r, 403, "AccessDenied");
    assert_error(&signed_get(&node, "hand", "unsigned-acl"), 404, "NoSuchKey");
    // A presigned URL for another region.
    let eu = cr.clone().region("eu-west-1");
    let t = Presign::new(&eu, "GET", &path, &h, now_unix(), "300").target();
    assert_error(&get(&t, &[]), 400, "AuthorizationQueryParametersError");
    // A presigned GET does not authorise a DELETE of the same URL.
    let t = presign("GET", path.clone(), now_unix(), "300").target();
    let r = send_bytes(node.addr, &plain_request("DELETE", &t, &h, &[], &[]), false);
    assert_error(&r, 403, "SignatureDoesNotMatch");
    assert_eq!(signed_get(&node, "hand", AWKWARD_KEYS[0]).status, 200);
}

#[test]
fn sigv2_header_and_presigned() {
    let node = Node::start("auth-v2", &[]);
    let h = host(&node);
    let cr = creds();
    let r = send(node.addr, &Request::new("PUT", "/vtwo", &h).sign_v2(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    for (i, key) in ["plain", "v2 dir/a+b é", "eq=amp&pct%"].iter().enumerate() {
        let body = bytes(7 + i as u64, 4096 + i);
        let path = object_path("vtwo", key);
        // PUT with Content-MD5, Content-Type and an x-amz-meta header, all signed.
        let put = Request::new("PUT", &path, &h)
            .header("Content-Type", "application/x-test")
            .header("Content-MD5", &content_md5(&body))
            .header("x-amz-meta-origin", "sigv2")
            .body(body.clone())
            .sign_v2(&cr);
        let r = send(node.addr, &put);
        assert_eq!(r.status, 200, "SigV2 PUT {key:?}: {}", r.text());
        let r = send(node.addr, &Request::new("GET", &path, &h).sign_v2(&cr));
        assert_eq!(r.status, 200, "SigV2 GET {key:?}: {}", r.text());
        assert_eq!(r.body, body);
        assert_eq!(r.header("x-amz-meta-origin"), Some("sigv2"));
        let t = presign_v2(&cr, "GET", &path, now_unix() + 300, None);
        let r = send_bytes(node.addr, &plain_request("GET", &t, &h, &[], &[]), false);
        assert_eq!(r.status, 200, "SigV2 presigned GET {key:?} ({t}): {}", r.text());
        assert_eq!(r.body, body);
    }
    // A SigV2 presigned GET with a response override (a signed sub-resource).
    let path = object_path("vtwo", "plain");
    let t = presign_v2(&cr, "GET", &format!("{path}?response-content-type=text%2Fx-v2"), now_unix() + 300, None);
    let r = send_bytes(node.addr, &plain_request("GET", &t, &h, &[], &[]), false);
    assert_eq!(r.status, 200, "SigV2 presigned GET with override ({t}): {}", r.text());
    assert_eq!(r.header("content-type"), Some("text/x-v2"));
    // Bucket listing (a bucket-level resource) with SigV2.
    let r = send(node.addr, &Request::new("GET", "/vtwo", &h).sign_v2(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>plain</Key>"), "{}", r.text());

    let path = object_path("vtwo", "plain");
    let get = |t: &str| send_bytes(node.addr, &plain_request("GET", t, &h, &[], &[]), false);
    // Expired presigned URL.
    assert_error(&get(&presign_v2(&cr, "GET", &path, now_unix() - 10, None)), 403, "AccessDenied");
    // Tampered: the Expires moved after signing.
    let t = presign_v2(&cr, "GET", &path, now_unix() + 300, None);
    let t = t.replace(&format!("Expires={}", now_unix() + 300), &format!("Expires={}", now_unix() + 9000));
    assert_error(&get(&t), 403, "SignatureDoesNotMatch");
    // Wrong secret, unknown key, skewed Date.
    let wrong = Creds::new(ACCESS_KEY, "not-the-secret");
    assert_error(&send(node.addr, &Request::new("GET", &path, &h).sign_v2(&wrong)), 403, "SignatureDoesNotMatch");
    let unknown = Creds::new("KLGNUNKNOWNKEY000000", SECRET_KEY);
    assert_error(&send(node.addr, &Request::new("GET", &path, &h).sign_v2(&unknown)), 403, "InvalidAccessKeyId");
    let skewed = Request::new("GET", &path, &h).sign_v2_at(&cr, now_unix() - 20 * 60, None);
    assert_error(&send(node.addr, &skewed), 403, "RequestTimeTooSkewed");
    // A header-signed SigV2 PUT whose Content-MD5 was altered after signing.
    let put = Request::new("PUT", &object_path("vtwo", "md5"), &h)
        .header("Content-MD5", &content_md5(b"abc"))
        .body(b"abc".to_vec())
        .sign_v2(&cr);
    let mut tampered = put.clone();
    for (n, v) in tampered.headers.iter_mut() {
        if n == "Content-MD5" {
            *v = content_md5(b"abd");
        }
    }
    assert_error(&send(node.addr, &tampered), 403, "SignatureDoesNotMatch");
    assert_eq!(send(node.addr, &put).status, 200);
}

#[test]
fn header_auth_refusals() {
    let node = Node::start("auth-header", &[]);
    let h = host(&node);
    let cr = creds();
    assert_eq!(send(node.addr, &Request::new("PUT", "/hdr", &h).sign_v4(&cr)).status, 200);
    let put = |key: &str, body: &[u8]| Request::new("PUT", &object_path("hdr", key), &h).body(body.to_vec());
    assert_eq!(send(node.addr, &put("k", b"v1").sign_v4(&cr)).status, 200);
    let get = Request::new("GET", &object_path("hdr", "k"), &h);

    // Unknown access key.
    let r = send(node.addr, &get.clone().sign_v4(&Creds::new("KLGNUNKNOWNKEY000000", SECRET_KEY)));
    assert_error(&r, 403, "InvalidAccessKeyId");
    // Right key, wrong secret.
    let r = send(node.addr, &get.clone().sign_v4(&Creds::new(ACCESS_KEY, "wrong/secret")));
    assert_error(&r, 403, "SignatureDoesNotMatch");
    // 20 minutes off, either way.
    for off in [-20 * 60, 20 * 60] {
        let r = send(node.addr, &get.clone().sign_v4_at(&cr, now_unix() + off, EMPTY_SHA256));
        assert_error(&r, 403, "RequestTimeTooSkewed");
    }
    // 5 minutes off is within the window.
    let r = send(node.addr, &get.clone().sign_v4_at(&cr, now_unix() - 5 * 60, EMPTY_SHA256));
    assert_eq!(r.status, 200, "{}", r.text());
    // Another region in the credential scope.
    let r = send(node.addr, &get.clone().sign_v4(&cr.clone().region("eu-west-1")));
    assert_error(&r, 400, "AuthorizationHeaderMalformed");
    assert!(r.text().contains("us-east-1"), "the message should name the node's region: {}", r.text());
    // An x-amz-* header added after signing.
    let r = send(node.addr, &get.clone().sign_v4(&cr).header("x-amz-meta-late", "1"));
    assert_error(&r, 403, "AccessDenied");
    // No x-amz-content-sha256 at all.
    let signed = get.clone().sign_v4(&cr).without_header("x-amz-content-sha256");
    assert_error(&send(node.addr, &signed), 400, "InvalidRequest");

    // A body whose SHA-256 is not the signed one: refused, nothing stored,
    // and an existing object is left alone.
    let lying = put("new", b"actual body").sign_v4_at(&cr, now_unix(), &sha256_hex(b"other body"));
    assert_error(&send(node.addr, &lying), 400, "XAmzContentSHA256Mismatch");
    let head = Request::new("HEAD", &object_path("hdr", "new"), &h).sign_v4(&cr);
    assert_eq!(send(node.addr, &head).status, 404);
    assert_error(&signed_get(&node, "hdr", "new"), 404, "NoSuchKey");
    let lying = put("k", b"v2 body").sign_v4_at(&cr, now_unix(), &sha256_hex(b"v1"));
    assert_error(&send(node.addr, &lying), 400, "XAmzContentSHA256Mismatch");
    assert_eq!(signed_get(&node, "hdr", "k").body, b"v1");
    // A listing whose query needs canonicalising (unsorted, escapes, '+', non-ASCII).
    assert_eq!(send(node.addr, &put("café +x/1", b"c").sign_v4(&cr)).status, 200);
    let list = Request::new("GET", "/hdr?prefix=caf%C3%A9%20%2Bx%2F&list-type=2&max-keys=5", &h).sign_v4(&cr);
    let r = send(node.addr, &list);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>café +x/1</Key>"), "{}", r.text());
    // UNSIGNED-PAYLOAD is accepted for a plain body.
    let r = send(node.addr, &put("unsigned", b"free").sign_v4_at(&cr, now_unix(), "UNSIGNED-PAYLOAD"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(signed_get(&node, "hdr", "unsigned").body, b"free");
    // The server still serves the SDK after all of this.
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.put_object().bucket("hdr").key("sdk").body(ByteStream::from_static(b"ok")).send().await.unwrap();
    });
}
