//! Virtual-hosted–style addressing (`--domain s3.test`): the bucket comes
//! from `Host: <bucket>.s3.test:<port>`, and every signature form (SigV4
//! header and presigned, SigV2 header and presigned) signs that Host. The
//! name does not resolve, so the requests go to the node's address by hand.

mod common;
#[path = "common/sign.rs"]
mod sign;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use sign::*;

const DOMAIN: &str = "s3.test";

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

fn vhost(node: &Node, bucket: &str) -> String {
    format!("{bucket}.{DOMAIN}:{}", node.addr.port())
}

#[test]
fn virtual_hosted_requests() {
    let node = Node::start("vhost", &["--domain", DOMAIN]);
    let cr = creds();
    let h = vhost(&node, "vh-bucket");
    let v4 = |method: &str, path: &str, body: &[u8]| {
        send(node.addr, &Request::new(method, path, &h).body(body.to_vec()).sign_v4(&cr))
    };

    // CreateBucket, HeadBucket, PutObject, GetObject, all by Host.
    let r = v4("PUT", "/", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(v4("HEAD", "/", b"").status, 200);
    let key = "dir/a b+c%=&é";
    let body = bytes(1, 70_000);
    let path = format!("/{}", uri_encode(key, true));
    let r = v4("PUT", &path, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = v4("GET", &path, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == body);

    // The same object through path style with the SDK.
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        let got = c.get_object().bucket("vh-bucket").key(key).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
        c.put_object().bucket("vh-bucket").key("from-sdk").body(ByteStream::from_static(b"sdk")).send().await.unwrap();
    });
    assert_eq!(v4("GET", "/from-sdk", b"").body, b"sdk");

    // Listing by Host.
    let r = v4("GET", "/?list-type=2&prefix=dir%2F", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>dir/a b+c%=&amp;é</Key>"), "{}", r.text());
    assert!(!r.text().contains("from-sdk"));

    // Presigned SigV4 with the virtual host signed.
    let t = Presign::new(&cr, "GET", &path, &h, now_unix(), "300").target();
    let r = send_bytes(node.addr, &plain_request("GET", &t, &h, &[], &[]), false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == body);
    // ... and the same URL sent to another Host is a different request.
    let other = vhost(&node, "other-bucket");
    let r = send_bytes(node.addr, &plain_request("GET", &t, &other, &[], &[]), false);
    assert_error_in(&r, &[(403, "SignatureDoesNotMatch"), (404, "NoSuchBucket")]);

    // SigV2: the canonical resource starts with /bucket.
    let r = send(node.addr, &Request::new("GET", &path, &h).sign_v2_at(&cr, now_unix(), Some("vh-bucket")));
    assert_eq!(r.status, 200, "SigV2 virtual-hosted GET: {}", r.text());
    let t = presign_v2(&cr, "GET", &path, now_unix() + 300, Some("vh-bucket"));
    let r = send_bytes(node.addr, &plain_request("GET", &t, &h, &[], &[]), false);
    assert_eq!(r.status, 200, "SigV2 presigned virtual-hosted GET: {}", r.text());
    let r = send(node.addr, &Request::new("GET", "/", &h).sign_v2_at(&cr, now_unix(), Some("vh-bucket")));
    assert_eq!(r.status, 200, "SigV2 virtual-hosted listing: {}", r.text());

    // Host names are case-insensitive.
    let upper = h.to_ascii_uppercase();
    let r = send(node.addr, &Request::new("GET", "/from-sdk", &upper).sign_v4(&cr));
    assert_eq!((r.status, r.body.as_slice()), (200, b"sdk".as_slice()), "{}", r.text());

    // A dotted bucket name.
    let dotted = vhost(&node, "my.dotted.bucket");
    let r = send(node.addr, &Request::new("PUT", "/", &dotted).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(node.addr, &Request::new("PUT", "/k", &dotted).body(b"dots".to_vec()).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        node.addr,
        &Request::new("GET", &object_path("my.dotted.bucket", "k"), &node.addr.to_string()).sign_v4(&cr),
    );
    assert_eq!(r.body, b"dots");

    // The bare domain and the node's address are path style.
    let bare = format!("{DOMAIN}:{}", node.addr.port());
    let r = send(node.addr, &Request::new("GET", "/", &bare).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Name>vh-bucket</Name>") && r.text().contains("<Name>my.dotted.bucket</Name>"));
    let r = send(node.addr, &Request::new("GET", &object_path("vh-bucket", "from-sdk"), &bare).sign_v4(&cr));
    assert_eq!(r.body, b"sdk");

    // CORS by Host: rules set and a browser's preflight answered from them.
    let cors = b"<CORSConfiguration><CORSRule><AllowedOrigin>http://app</AllowedOrigin>\
        <AllowedMethod>PUT</AllowedMethod></CORSRule></CORSConfiguration>";
    let md5 = content_md5(cors);
    let r = send(
        node.addr,
        &Request::new("PUT", "/?cors", &h).header("content-md5", &md5).body(cors.to_vec()).sign_v4(&cr),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ask = [("Origin", "http://app"), ("Access-Control-Request-Method", "PUT")];
    let r = send_bytes(node.addr, &plain_request("OPTIONS", "/k", &h, &ask, &[]), false);
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, Some("http://app")), "{}", r.text());

    // A bucket that does not exist.
    let r = send(node.addr, &Request::new("GET", "/k", &vhost(&node, "no-such-bucket")).sign_v4(&cr));
    assert_error(&r, 404, "NoSuchBucket");

    // Delete by Host.
    assert_eq!(v4("DELETE", "/from-sdk", b"").status, 204);
    assert_error(&v4("GET", "/from-sdk", b""), 404, "NoSuchKey");
}

#[test]
fn virtual_hosted_keys_keep_leading_slashes() {
    let node = Node::start("vhost-slash", &["--domain", DOMAIN]);
    let cr = creds();
    let h = vhost(&node, "slashes");
    assert_eq!(send(node.addr, &Request::new("PUT", "/", &h).sign_v4(&cr)).status, 200);
    // Key "/lead" is path "//lead" in virtual-hosted style and "/slashes//lead" in path style.
    let r = send(node.addr, &Request::new("PUT", "//lead", &h).body(b"slash".to_vec()).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        let keys: Vec<String> = c
            .list_objects_v2()
            .bucket("slashes")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        assert_eq!(keys, vec!["/lead"], "the virtual-hosted path //lead names the key /lead");
    });
}
