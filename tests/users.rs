//! Several users (`--users FILE`) and per-user bucket ownership: another
//! user's bucket is off limits for every operation, ListBuckets shows only
//! one's own, and a taken bucket name is BucketAlreadyExists.

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::io::Write;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use common::*;

const A_KEY: &str = "KLGNUSERA00000000001";
const A_SECRET: &str = "secret-of-user-a/0123456789+abcdefghij";
const B_KEY: &str = "KLGNUSERB00000000002";
const B_SECRET: &str = "secret-of-user-b/9876543210+zyxwvutsrq";

fn code<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String {
    e.as_service_error().and_then(|s| s.code()).unwrap_or("").to_string()
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

/// Asserts an SDK call failed with this status and S3 code.
macro_rules! assert_refused {
    ($call:expr, $status:expr, $code:expr) => {{
        let e = $call.await.expect_err(concat!(stringify!($call), " should be refused"));
        assert_eq!((status(&e), code(&e).as_str()), ($status, $code), "{}", stringify!($call));
    }};
}

fn start() -> Node {
    let dir = temp_dir("users-file");
    let file = dir.join("users.toml");
    std::fs::write(
        &file,
        format!(
            "[[user]]\naccess_key = \"{A_KEY}\"\nsecret_key = \"{A_SECRET}\"\n\n\
             [[user]]\naccess_key = \"{B_KEY}\"\nsecret_key = \"{B_SECRET}\"\n"
        ),
    )
    .unwrap();
    let node = Node::start("users", &["--users", file.to_str().unwrap()]);
    // The node read the file at start; the directory is no longer needed.
    let _ = std::fs::remove_dir_all(&dir);
    node
}

async fn names(c: &aws_sdk_s3::Client) -> Vec<String> {
    c.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(String::from)).collect()
}

#[test]
fn buckets_belong_to_their_creator() {
    let node = start();
    let rt = rt();
    let a = sdk_with(&node.endpoint(), A_KEY, A_SECRET);
    let b = sdk_with(&node.endpoint(), B_KEY, B_SECRET);
    let admin = sdk(&node.endpoint());
    rt.block_on(async {
        a.create_bucket().bucket("alpha").send().await.unwrap();
        a.put_object()
            .bucket("alpha")
            .key("secret.txt")
            .body(ByteStream::from_static(b"A's data"))
            .send()
            .await
            .unwrap();
        b.create_bucket().bucket("beta").send().await.unwrap();
        b.put_object().bucket("beta").key("mine").body(ByteStream::from_static(b"B's data")).send().await.unwrap();

        // ListBuckets: each user sees only their own; the first user none of these.
        assert_eq!(names(&a).await, vec!["alpha"]);
        assert_eq!(names(&b).await, vec!["beta"]);
        assert!(names(&admin).await.is_empty());

        // B on A's bucket: every operation is AccessDenied.
        assert_refused!(b.get_object().bucket("alpha").key("secret.txt").send(), 403, "AccessDenied");
        assert_refused!(b.get_object().bucket("alpha").key("no-such-key").send(), 403, "AccessDenied");
        assert_refused!(
            b.put_object().bucket("alpha").key("planted").body(ByteStream::from_static(b"x")).send(),
            403,
            "AccessDenied"
        );
        assert_refused!(b.list_objects_v2().bucket("alpha").send(), 403, "AccessDenied");
        assert_refused!(b.list_objects().bucket("alpha").send(), 403, "AccessDenied");
        assert_refused!(b.delete_object().bucket("alpha").key("secret.txt").send(), 403, "AccessDenied");
        let del = Delete::builder().objects(ObjectIdentifier::builder().key("secret.txt").build().unwrap()).build();
        assert_refused!(b.delete_objects().bucket("alpha").delete(del.unwrap()).send(), 403, "AccessDenied");
        assert_refused!(b.delete_bucket().bucket("alpha").send(), 403, "AccessDenied");
        assert_refused!(b.get_bucket_location().bucket("alpha").send(), 403, "AccessDenied");
        assert_refused!(b.get_bucket_versioning().bucket("alpha").send(), 403, "AccessDenied");
        let e = b.head_object().bucket("alpha").key("secret.txt").send().await.unwrap_err();
        assert_eq!(status(&e), 403);
        let e = b.head_bucket().bucket("alpha").send().await.unwrap_err();
        assert_eq!(status(&e), 403);
        // CopyObject from A's bucket into B's is a read of A's object.
        assert_refused!(
            b.copy_object().bucket("beta").key("stolen").copy_source("alpha/secret.txt").send(),
            403,
            "AccessDenied"
        );
        // The first user is no superuser either.
        assert_refused!(admin.get_object().bucket("alpha").key("secret.txt").send(), 403, "AccessDenied");

        // B taking A's bucket name: BucketAlreadyExists; A again: a 200 that
        // changes nothing (us-east-1's legacy answer).
        assert_refused!(b.create_bucket().bucket("alpha").send(), 409, "BucketAlreadyExists");
        a.create_bucket().bucket("alpha").send().await.unwrap();

        // Nothing B tried changed A's bucket.
        let keys: Vec<String> = a
            .list_objects_v2()
            .bucket("alpha")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        assert_eq!(keys, vec!["secret.txt"]);
        let got = a.get_object().bucket("alpha").key("secret.txt").send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"A's data");
        let e = b.head_object().bucket("beta").key("stolen").send().await.unwrap_err();
        assert_eq!(status(&e), 404);
        assert_eq!(names(&a).await, vec!["alpha"]);
        assert_eq!(names(&b).await, vec!["beta"]);

        // Once A deletes the bucket, the name is free for B.
        a.delete_object().bucket("alpha").key("secret.txt").send().await.unwrap();
        a.delete_bucket().bucket("alpha").send().await.unwrap();
        b.create_bucket().bucket("alpha").send().await.unwrap();
        assert_refused!(a.list_objects_v2().bucket("alpha").send(), 403, "AccessDenied");
        assert_eq!(names(&b).await, vec!["alpha", "beta"]);
        assert!(names(&a).await.is_empty());
    });
}

#[test]
fn unknown_user_and_wrong_secret() {
    let node = start();
    let rt = rt();
    rt.block_on(async {
        let stranger = sdk_with(&node.endpoint(), "KLGNSTRANGER00000000", A_SECRET);
        assert_refused!(stranger.list_buckets().send(), 403, "InvalidAccessKeyId");
        // A's key with B's secret.
        let mixed = sdk_with(&node.endpoint(), A_KEY, B_SECRET);
        assert_refused!(mixed.list_buckets().send(), 403, "SignatureDoesNotMatch");
        // Both file users and the environment user work.
        for (k, s) in [(A_KEY, A_SECRET), (B_KEY, B_SECRET), (ACCESS_KEY, SECRET_KEY)] {
            sdk_with(&node.endpoint(), k, s).list_buckets().send().await.unwrap();
        }
    });
}

/// A PutBucketVersioning whose body arrives after its bucket was deleted and
/// made again by another user changes nothing (NoSuchBucket): it used to
/// write the state it read at its start over the new bucket, owner
/// included, handing B's bucket to A.
#[test]
fn a_slow_bucket_update_never_takes_over_a_bucket_made_again() {
    let node = start();
    let rt = rt();
    let a = sdk_with(&node.endpoint(), A_KEY, A_SECRET);
    let b = sdk_with(&node.endpoint(), B_KEY, B_SECRET);
    rt.block_on(a.create_bucket().bucket("slow").send()).unwrap();
    let body: &[u8] = b"<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Status>Enabled</Status></VersioningConfiguration>";
    let req = sign::Request::new("PUT", "/slow?versioning", &node.addr.to_string())
        .body(body.to_vec())
        .sign_v4(&sign::Creds::new(A_KEY, A_SECRET));
    let mut s = std::net::TcpStream::connect(node.addr).unwrap();
    s.write_all(&req.head_bytes()).unwrap();
    s.write_all(&body[..10]).unwrap();
    // The node has the head and is waiting for the rest of the body.
    std::thread::sleep(std::time::Duration::from_millis(300));
    rt.block_on(async {
        a.delete_bucket().bucket("slow").send().await.unwrap();
        b.create_bucket().bucket("slow").send().await.unwrap();
    });
    s.write_all(&body[10..]).unwrap();
    let r = read_response(&mut s, false).unwrap();
    // NoSuchBucket; or AccessDenied where the node only read the head after
    // B's CreateBucket (a slow machine): either way nothing changed.
    assert!(
        [(404, "NoSuchBucket"), (403, "AccessDenied")].contains(&(r.status, r.code().as_str())),
        "{} {}",
        r.status,
        r.text()
    );
    rt.block_on(async {
        let v = b.get_bucket_versioning().bucket("slow").send().await.unwrap();
        assert_eq!(v.status(), None, "B's new bucket took A's versioning");
        assert!(names(&b).await.contains(&"slow".to_string()));
        assert!(!names(&a).await.contains(&"slow".to_string()));
    });
}
