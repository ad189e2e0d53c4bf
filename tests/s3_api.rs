//! The AWS SDK for Rust against a real node: buckets, objects, listings, and
//! the S3 errors AWS would send (status and code asserted).

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    e.as_service_error().and_then(|s| s.code()).unwrap_or("").to_string()
}

fn status<E, R: std::fmt::Debug>(e: &aws_sdk_s3::error::SdkError<E, R>) -> u16
where
    aws_sdk_s3::error::SdkError<E, R>: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => format!("{:?}", s.raw())
            .split("status: StatusCode(")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn buckets_objects_and_errors() {
    let node = Node::start("api", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        // Buckets.
        c.create_bucket().bucket("alpha").send().await.unwrap();
        c.put_object().bucket("alpha").key("kept").body(b"k".to_vec().into()).send().await.unwrap();
        // Re-creating an owned bucket in us-east-1 is a 200 (AWS's legacy
        // rule) that leaves the bucket as it was.
        c.create_bucket().bucket("alpha").send().await.unwrap();
        c.head_object().bucket("alpha").key("kept").send().await.unwrap();
        c.delete_object().bucket("alpha").key("kept").send().await.unwrap();
        let e = c.create_bucket().bucket("Bad_Name").send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidBucketName");
        c.head_bucket().bucket("alpha").send().await.unwrap();
        let e = c.head_bucket().bucket("nope").send().await.unwrap_err();
        assert!(e.as_service_error().is_some_and(|s| s.is_not_found()));
        let names: Vec<_> = c
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(String::from))
            .collect();
        assert_eq!(names, vec!["alpha"]);
        let loc = c.get_bucket_location().bucket("alpha").send().await.unwrap();
        assert!(loc.location_constraint().is_none_or(|l| l.as_str().is_empty()));

        // Objects: put, get (bytes, metadata, ETag = MD5), head, ranges.
        let body = bytes(1, 3 << 20 | 12345);
        let put = c
            .put_object()
            .bucket("alpha")
            .key("dir/a b+c%=&é")
            .content_type("text/x-test")
            .cache_control("max-age=5")
            .metadata("colour", "blue")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let md5 = format!("\"{}\"", hex::encode(<md5::Md5 as md5::Digest>::digest(&body)));
        assert_eq!(put.e_tag(), Some(md5.as_str()));
        let got = c.get_object().bucket("alpha").key("dir/a b+c%=&é").send().await.unwrap();
        assert_eq!(got.e_tag(), Some(md5.as_str()));
        assert_eq!(got.content_type(), Some("text/x-test"));
        assert_eq!(got.cache_control(), Some("max-age=5"));
        assert_eq!(got.metadata().unwrap().get("colour").map(String::as_str), Some("blue"));
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
        let head = c.head_object().bucket("alpha").key("dir/a b+c%=&é").send().await.unwrap();
        assert_eq!(head.content_length(), Some(body.len() as i64));
        for (range, from, to) in [
            ("bytes=0-0", 0, 1),
            ("bytes=1048570-1048600", 1048570, 1048601),
            ("bytes=-100", body.len() - 100, body.len()),
            ("bytes=3000000-", 3000000, body.len()),
        ] {
            let r = c.get_object().bucket("alpha").key("dir/a b+c%=&é").range(range).send().await.unwrap();
            assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), &body[from..to], "{range}");
        }
        let e = c
            .get_object()
            .bucket("alpha")
            .key("dir/a b+c%=&é")
            .range(format!("bytes={}-", body.len()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidRange");

        // Missing things.
        let e = c.get_object().bucket("alpha").key("missing").send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchKey");
        let e = c.get_object().bucket("nope").key("k").send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchBucket");
        let e = c.put_object().bucket("nope").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchBucket");

        // Empty object, overwrite, delete.
        c.put_object().bucket("alpha").key("empty").body(ByteStream::from_static(b"")).send().await.unwrap();
        let g = c.get_object().bucket("alpha").key("empty").send().await.unwrap();
        assert_eq!(g.body.collect().await.unwrap().into_bytes().len(), 0);
        c.put_object().bucket("alpha").key("empty").body(ByteStream::from_static(b"now")).send().await.unwrap();
        let g = c.get_object().bucket("alpha").key("empty").send().await.unwrap();
        assert_eq!(g.body.collect().await.unwrap().into_bytes().as_ref(), b"now");
        c.delete_object().bucket("alpha").key("empty").send().await.unwrap();
        c.delete_object().bucket("alpha").key("never-existed").send().await.unwrap();
        let e = c.head_object().bucket("alpha").key("empty").send().await.unwrap_err();
        assert!(e.as_service_error().is_some_and(|s| s.is_not_found()));

        // Bucket deletion needs an empty bucket.
        let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
        assert_eq!(code(&e), "BucketNotEmpty");
        c.delete_object().bucket("alpha").key("dir/a b+c%=&é").send().await.unwrap();
        c.delete_bucket().bucket("alpha").send().await.unwrap();
        let e = c.head_bucket().bucket("alpha").send().await.unwrap_err();
        assert!(e.as_service_error().is_some_and(|s| s.is_not_found()));
    });
    record_rust_sdk("buckets_objects_and_errors", &["buckets, put/get/head/delete, metadata, every error code"]);
}

#[test]
fn recreating_an_owned_bucket_outside_us_east_1_is_a_conflict() {
    let node = Node::start("region", &["--region", "eu-west-1"]);
    let c = sdk_in(&node.endpoint(), ACCESS_KEY, SECRET_KEY, "eu-west-1");
    rt().block_on(async {
        let make = || {
            c.create_bucket()
                .bucket("eu-bucket")
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
        };
        make().await.unwrap();
        let e = make().await.unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (409, "BucketAlreadyOwnedByYou"));
        // Another region's name, and no region's name at all.
        for (loc, want) in
            [("us-west-2", "IllegalLocationConstraintException"), ("default", "InvalidLocationConstraint")]
        {
            let e = c
                .create_bucket()
                .bucket("elsewhere")
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(loc))
                        .build(),
                )
                .send()
                .await
                .unwrap_err();
            assert_eq!((status(&e), code(&e).as_str()), (400, want), "{loc}");
        }
    });
}

#[test]
fn conditional_reads_and_writes() {
    let node = Node::start("cond", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("cond").send().await.unwrap();
        let put = c.put_object().bucket("cond").key("k").body(ByteStream::from_static(b"v1")).send().await.unwrap();
        let etag = put.e_tag().unwrap().to_string();
        // If-None-Match: * on an existing key fails; on a new key succeeds.
        let e = c
            .put_object()
            .bucket("cond")
            .key("k")
            .if_none_match("*")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        c.put_object()
            .bucket("cond")
            .key("new")
            .if_none_match("*")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        // If-Match compares ETags; a missing key is NoSuchKey.
        let e = c
            .put_object()
            .bucket("cond")
            .key("k")
            .if_match("\"0000\"")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        c.put_object()
            .bucket("cond")
            .key("k")
            .if_match(&etag)
            .body(ByteStream::from_static(b"v2"))
            .send()
            .await
            .unwrap();
        let e = c
            .put_object()
            .bucket("cond")
            .key("absent")
            .if_match(&etag)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NoSuchKey");
        // If-None-Match with ETags: refused when the current ETag is listed,
        // written when it is not; both headers must hold.
        let cur = c.head_object().bucket("cond").key("k").send().await.unwrap().e_tag().unwrap().to_string();
        let put_if = |m: Option<&str>, n: Option<&str>| {
            c.put_object()
                .bucket("cond")
                .key("k")
                .set_if_match(m.map(str::to_string))
                .set_if_none_match(n.map(str::to_string))
                .body(ByteStream::from_static(b"v2"))
                .send()
        };
        assert_eq!(code(&put_if(None, Some(&cur)).await.unwrap_err()), "PreconditionFailed");
        assert_eq!(code(&put_if(Some(&cur), Some(&cur)).await.unwrap_err()), "PreconditionFailed");
        assert_eq!(code(&put_if(Some(&etag), Some("\"0000\"")).await.unwrap_err()), "PreconditionFailed");
        put_if(None, Some("\"0000\"")).await.unwrap();
        put_if(Some("*"), Some(&etag)).await.unwrap();
        // Reads: If-Match / If-None-Match.
        let cur = c.head_object().bucket("cond").key("k").send().await.unwrap().e_tag().unwrap().to_string();
        let e = c.get_object().bucket("cond").key("k").if_match(&etag).send().await.unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        let e = c.get_object().bucket("cond").key("k").if_none_match(&cur).send().await.unwrap_err();
        assert_eq!(status(&e), 304);
        let g = c.get_object().bucket("cond").key("k").if_match(&cur).send().await.unwrap();
        assert_eq!(g.body.collect().await.unwrap().into_bytes().as_ref(), b"v2");
    });
    record_rust_sdk("conditional_reads_and_writes", &["conditional reads and writes"]);
}

#[test]
fn listing_v1_v2_with_delimiters_and_pagination() {
    let node = Node::start("list", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("lst").send().await.unwrap();
        let mut keys: Vec<String> = Vec::new();
        for i in 0..30 {
            keys.push(format!("p/{i:03}"));
        }
        keys.extend(["a", "a/b", "a/c/d", "b c", "z+"].map(String::from));
        for k in &keys {
            c.put_object().bucket("lst").key(k).body(ByteStream::from_static(b"1")).send().await.unwrap();
        }
        keys.sort();
        // V2 pages of 7 return every key once, in order.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let r = c
                .list_objects_v2()
                .bucket("lst")
                .max_keys(7)
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            seen.extend(r.contents().iter().map(|o| o.key().unwrap().to_string()));
            if !r.is_truncated().unwrap() {
                break;
            }
            token = r.next_continuation_token().map(String::from);
        }
        assert_eq!(seen, keys);
        // Delimiter rolls up common prefixes; a key and a prefix coexist.
        let r = c.list_objects_v2().bucket("lst").delimiter("/").send().await.unwrap();
        let objs: Vec<_> = r.contents().iter().map(|o| o.key().unwrap()).collect();
        let prefixes: Vec<_> = r.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
        assert_eq!(objs, vec!["a", "b c", "z+"]);
        assert_eq!(prefixes, vec!["a/", "p/"]);
        // Pagination across a big common prefix with max-keys=1.
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let r = c
                .list_objects_v2()
                .bucket("lst")
                .delimiter("/")
                .max_keys(1)
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            all.extend(r.contents().iter().map(|o| o.key().unwrap().to_string()));
            all.extend(r.common_prefixes().iter().map(|p| p.prefix().unwrap().to_string()));
            if !r.is_truncated().unwrap() {
                break;
            }
            token = r.next_continuation_token().map(String::from);
        }
        assert_eq!(all, vec!["a", "a/", "b c", "p/", "z+"]);
        // V1 with markers.
        let r = c.list_objects().bucket("lst").prefix("p/").max_keys(10).send().await.unwrap();
        assert!(r.is_truncated().unwrap());
        assert_eq!(r.contents().len(), 10);
        let r2 = c.list_objects().bucket("lst").prefix("p/").marker("p/009").send().await.unwrap();
        assert_eq!(r2.contents().first().unwrap().key(), Some("p/010"));
        // max-keys=0 is an empty, non-truncated page.
        let r = c.list_objects_v2().bucket("lst").max_keys(0).send().await.unwrap();
        assert_eq!(r.key_count(), Some(0));
        // DeleteObjects, quiet and verbose.
        let ids: Vec<_> = ["a", "a/b", "missing"]
            .iter()
            .map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(*k).build().unwrap())
            .collect();
        let del = aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build().unwrap();
        let r = c.delete_objects().bucket("lst").delete(del).send().await.unwrap();
        assert_eq!(r.deleted().len(), 3);
        let r = c.list_objects_v2().bucket("lst").prefix("a").send().await.unwrap();
        assert_eq!(r.contents().iter().map(|o| o.key().unwrap()).collect::<Vec<_>>(), vec!["a/c/d"]);
    });
    record_rust_sdk(
        "listing_v1_v2_with_delimiters_and_pagination",
        &["ListObjects v1/v2 with delimiters and pagination"],
    );
}

#[test]
fn raw_http_errors_and_health() {
    let node = Node::start("raw", &[]);
    let a = node.addr;
    let r = raw(a, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    // Anonymous requests are refused with S3 XML.
    let r = raw(a, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    assert!(r.header("x-amz-request-id").is_some());
    // ... except that S3 tells anyone a bucket does not exist.
    let r = raw(a, b"GET /no-such-bucket/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.code().as_str()), (404, "NoSuchBucket"));
    let r = raw(a, b"DELETE /no-such-bucket/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.code().as_str()), (404, "NoSuchBucket"));
    // CORS preflight: unauthenticated; 400 without Origin or the requested
    // method, else refused (no bucket named, so no CORS rules).
    let r = raw(a, b"OPTIONS /b/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.code().as_str()), (400, "BadRequest"));
    let r = raw(a, b"OPTIONS /b/k HTTP/1.1\r\nHost: x\r\nOrigin: http://e\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.code().as_str()), (400, "BadRequest"));
    let preflight = b"OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: http://e\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n";
    let r = raw(a, preflight).unwrap();
    assert_eq!((r.status, r.code().as_str()), (403, "AccessForbidden"));
    // Garbage request line.
    let r = raw(a, b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);
    // Oversized head.
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 << 10));
    big.extend_from_slice(b"\r\n\r\n");
    let r = raw(a, &big).unwrap();
    assert_eq!((r.status, r.code().as_str()), (400, "RequestHeaderSectionTooLarge"));
    // Wrong signature, unknown key.
    let r = raw(a, b"GET / HTTP/1.1\r\nHost: x\r\nx-amz-date: 20260101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential=NOPE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(r.status, 403);
}

#[test]
fn copy_object_directives_and_conditions() {
    let node = Node::start("copy", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("src").send().await.unwrap();
        c.create_bucket().bucket("dst").send().await.unwrap();
        let body = bytes(7, (2 << 20) + 777);
        let put = c
            .put_object()
            .bucket("src")
            .key("a b+c")
            .content_type("image/x-test")
            .metadata("k", "v")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let etag = put.e_tag().unwrap().to_string();
        // COPY keeps the source metadata; the ETag is the MD5 of the bytes.
        let r = c.copy_object().bucket("dst").key("copy").copy_source("src/a%20b%2Bc").send().await.unwrap();
        assert_eq!(r.copy_object_result().unwrap().e_tag(), Some(etag.as_str()));
        let g = c.get_object().bucket("dst").key("copy").send().await.unwrap();
        assert_eq!(g.content_type(), Some("image/x-test"));
        assert_eq!(g.metadata().unwrap().get("k").map(String::as_str), Some("v"));
        assert_eq!(g.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
        // REPLACE takes the request's metadata.
        c.copy_object()
            .bucket("dst")
            .key("copy2")
            .copy_source("src/a%20b%2Bc")
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type("text/plain")
            .send()
            .await
            .unwrap();
        let h = c.head_object().bucket("dst").key("copy2").send().await.unwrap();
        assert_eq!(h.content_type(), Some("text/plain"));
        assert!(h.metadata().is_none_or(|m| m.is_empty()));
        // Copy onto itself needs REPLACE.
        let e = c.copy_object().bucket("src").key("a b+c").copy_source("src/a%20b%2Bc").send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidRequest");
        c.copy_object()
            .bucket("src")
            .key("a b+c")
            .copy_source("src/a%20b%2Bc")
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .metadata("k", "w")
            .send()
            .await
            .unwrap();
        // Copy-source conditions.
        let e = c
            .copy_object()
            .bucket("dst")
            .key("x")
            .copy_source("src/a%20b%2Bc")
            .copy_source_if_match("\"nope\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        let e = c
            .copy_object()
            .bucket("dst")
            .key("x")
            .copy_source("src/a%20b%2Bc")
            .copy_source_if_none_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        let e = c.copy_object().bucket("dst").key("x").copy_source("src/missing").send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchKey");
    });
    record_rust_sdk("copy_object_directives_and_conditions", &["CopyObject directives and conditions"]);
}

#[test]
fn overrides_dates_encodings_and_checksums() {
    let node = Node::start("misc", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("misc").send().await.unwrap();
        // The SDK's default CRC32 (sent as an aws-chunked trailer) is stored
        // and returned on GET with checksum mode.
        let put =
            c.put_object().bucket("misc").key("a b/ü+%").body(ByteStream::from_static(b"hello")).send().await.unwrap();
        let crc = put.checksum_crc32().map(String::from);
        assert!(crc.is_some(), "PUT must echo the checksum it verified");
        let g = c
            .get_object()
            .bucket("misc")
            .key("a b/ü+%")
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .response_content_type("text/x-override")
            .response_content_disposition("attachment")
            .send()
            .await
            .unwrap();
        assert_eq!(g.checksum_crc32().map(String::from), crc);
        assert_eq!(g.content_type(), Some("text/x-override"));
        assert_eq!(g.content_disposition(), Some("attachment"));
        let modified = g.last_modified().unwrap().to_owned();
        // If-Modified-Since at the object's own time: 304.
        let e = c.get_object().bucket("misc").key("a b/ü+%").if_modified_since(modified).send().await.unwrap_err();
        assert_eq!(status(&e), 304);
        // If-Unmodified-Since in the past: 412.
        let past = aws_smithy_types::DateTime::from_secs(1_000_000_000);
        let e = c.get_object().bucket("misc").key("a b/ü+%").if_unmodified_since(past).send().await.unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        // A mismatching declared checksum is refused and nothing is stored.
        let e = c
            .put_object()
            .bucket("misc")
            .key("bad-crc")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "BadDigest");
        let e = c.head_object().bucket("misc").key("bad-crc").send().await.unwrap_err();
        assert!(e.as_service_error().is_some_and(|s| s.is_not_found()));
        // encoding-type=url encodes keys as AWS does (space as '+', UTF-8
        // bytes and '+'/'%' percent-encoded, '/' kept); the Rust SDK hands
        // the encoded form to the caller.
        let r = c
            .list_objects_v2()
            .bucket("misc")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.contents().iter().map(|o| o.key().unwrap()).collect::<Vec<_>>(), vec!["a+b/%C3%BC%2B%25"]);
    });
    record_rust_sdk("overrides_dates_encodings_and_checksums", &["response overrides, default checksums validated"]);
}

#[test]
fn config_file_sets_options() {
    let dir = temp_dir("config");
    let cfg = dir.join("kaligon.toml");
    std::fs::write(&cfg, "region = \"eu-central-1\"\nshards = 1\n").unwrap();
    let node = Node::start_in(dir.clone(), &["--config", cfg.to_str().unwrap()]);
    // The region from the file is the one signatures must name.
    let r = raw(node.addr, b"GET / HTTP/1.1\r\nHost: x\r\nx-amz-date: 20260101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential=KLGNTESTACCESSKEY0001/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nConnection: close\r\n\r\n").unwrap();
    assert!(r.status == 400 || r.status == 403, "{r:?}");
    assert!(std::fs::read_to_string(node.data_dir().join("kaligon-layout")).unwrap().contains("shards=1"));
}

/// DeleteBucket racing a PutObject into the bucket: one of them must fail
/// (AWS answers BucketNotEmpty, or NoSuchBucket to the PUT). Both
/// succeeding leaves an acknowledged object in a bucket that no longer
/// exists, so it can never be read or listed. The delays move the DELETE
/// across the PUT's group commit.
#[test]
fn delete_bucket_racing_a_put_never_drops_the_object() {
    let node = Node::start("delete-race", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        let both = rounds_where_both_succeed(1000, async |round| {
            let b = format!("race{round}");
            c.create_bucket().bucket(&b).send().await.unwrap();
            let put = c.put_object().bucket(&b).key("k").body(ByteStream::from(vec![7u8; 4096])).send();
            let delete = async {
                pause_micros(round % 8 * 25).await;
                c.delete_bucket().bucket(&b).send().await
            };
            let (p, d) = tokio::join!(put, delete);
            p.is_ok() && d.is_ok()
        })
        .await;
        assert!(both.is_empty(), "PUT and DeleteBucket both succeeded in rounds {both:?}");
    });
}

/// In a versioned bucket a DeleteObject of any key adds a delete marker:
/// racing DeleteBucket, one of the two must fail, or the marker lands in a
/// deleted bucket (and comes back in a new bucket of the same name).
#[test]
fn delete_bucket_racing_a_delete_marker_never_both_succeed() {
    let node = Node::start("delete-race-marker", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        let both = rounds_where_both_succeed(600, async |round| {
            let b = format!("marker{round}");
            c.create_bucket().bucket(&b).send().await.unwrap();
            let on = aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build();
            c.put_bucket_versioning().bucket(&b).versioning_configuration(on).send().await.unwrap();
            let marker = async {
                pause_micros(round % 16 * 100).await;
                c.delete_object().bucket(&b).key("ghost").send().await
            };
            let delete = c.delete_bucket().bucket(&b).send();
            let (m, d) = tokio::join!(marker, delete);
            m.is_ok() && d.is_ok()
        })
        .await;
        assert!(both.is_empty(), "DeleteObject and DeleteBucket both succeeded in rounds {both:?}");
    });
}
