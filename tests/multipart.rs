//! Multipart uploads through the AWS SDK for Rust against a real node: the
//! rules and errors of AWS's multipart API, ETags and checksums, ranged
//! UploadPartCopy, listings past one page, a 1 GiB parallel upload read back
//! byte for byte, and kill -9 during uploads and completions.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    VersioningConfiguration,
};
use common::*;
use md5::{Digest, Md5};

const MIB: usize = 1 << 20;

fn md5_hex(parts: &[&[u8]]) -> String {
    if parts.len() == 1 {
        return hex::encode(Md5::digest(parts[0]));
    }
    let mut all = Md5::new();
    for p in parts {
        all.update(Md5::digest(p));
    }
    format!("{}-{}", hex::encode(all.finalize()), parts.len())
}

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    e.as_service_error().and_then(|s| s.code()).unwrap_or("(no service error)").to_string()
}

async fn create(c: &Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload().bucket(bucket).key(key).send().await.unwrap().upload_id.unwrap()
}

async fn put_part(c: &Client, bucket: &str, key: &str, id: &str, n: i32, body: &[u8]) -> CompletedPart {
    let r = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
    CompletedPart::builder().part_number(n).e_tag(r.e_tag.unwrap()).build()
}

fn parts(p: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder().set_parts(Some(p)).build()
}

async fn get_all(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[test]
fn rules_errors_and_etags() {
    let node = Node::start("mpu-rules", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("mpu").send().await.unwrap();
        let (a, b, tail) = (bytes(1, 5 * MIB), bytes(2, 5 * MIB + 17), bytes(3, 1000));
        let id = create(&c, "mpu", "obj").await;
        let p1 = put_part(&c, "mpu", "obj", &id, 1, &a).await;
        let old2 = put_part(&c, "mpu", "obj", &id, 2, &bytes(9, 6 * MIB)).await;
        // Re-uploading a part number replaces it.
        let p2 = put_part(&c, "mpu", "obj", &id, 2, &b).await;
        let p3 = put_part(&c, "mpu", "obj", &id, 3, &tail).await;
        assert_ne!(old2.e_tag, p2.e_tag);
        let listed = c.list_parts().bucket("mpu").key("obj").upload_id(&id).send().await.unwrap();
        let sizes: Vec<i64> = listed.parts().iter().map(|p| p.size.unwrap()).collect();
        assert_eq!(sizes, [5 * MIB as i64, 5 * MIB as i64 + 17, 1000]);
        assert_eq!(listed.parts()[1].e_tag, p2.e_tag);

        // Completion errors.
        let complete = |list: Vec<CompletedPart>, upload: &str| {
            c.complete_multipart_upload()
                .bucket("mpu")
                .key("obj")
                .upload_id(upload)
                .multipart_upload(parts(list))
                .send()
        };
        let e = complete(vec![p2.clone(), p1.clone()], &id).await.unwrap_err();
        assert_eq!(code(&e), "InvalidPartOrder");
        let e = complete(vec![p1.clone(), old2.clone()], &id).await.unwrap_err();
        assert_eq!(code(&e), "InvalidPart");
        let missing = CompletedPart::builder().part_number(7).e_tag(p1.e_tag().unwrap()).build();
        let e = complete(vec![p1.clone(), missing], &id).await.unwrap_err();
        assert_eq!(code(&e), "InvalidPart");
        let e = complete(vec![p3.clone(), CompletedPart::builder().part_number(4).e_tag("x").build()], &id)
            .await
            .unwrap_err();
        assert!(["EntityTooSmall", "InvalidPart"].contains(&code(&e).as_str()), "{e:?}");
        let e = complete(vec![p1.clone()], "00000000000000000000000000000001").await.unwrap_err();
        assert_eq!(code(&e), "NoSuchUpload");
        for n in [0, 10001] {
            let e = c
                .upload_part()
                .bucket("mpu")
                .key("obj")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), "InvalidArgument", "part number {n}");
        }

        // A small part that is not the last is refused at completion.
        let id_small = create(&c, "mpu", "small").await;
        let s1 = put_part(&c, "mpu", "small", &id_small, 1, b"tiny").await;
        let s2 = put_part(&c, "mpu", "small", &id_small, 2, b"end").await;
        let e = c
            .complete_multipart_upload()
            .bucket("mpu")
            .key("small")
            .upload_id(&id_small)
            .multipart_upload(parts(vec![s1, s2]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "EntityTooSmall");

        // Complete, using parts 1-3 (ETag = MD5 of the part MD5s, -3).
        let done = complete(vec![p1.clone(), p2.clone(), p3.clone()], &id).await.unwrap();
        assert_eq!(done.e_tag.as_deref().unwrap().trim_matches('"'), md5_hex(&[&a, &b, &tail]));
        let whole = [a.as_slice(), &b, &tail].concat();
        assert!(get_all(&c, "mpu", "obj").await == whole);
        let head = c.head_object().bucket("mpu").key("obj").send().await.unwrap();
        assert_eq!(head.content_length, Some(whole.len() as i64));
        assert_eq!(head.e_tag, done.e_tag);
        // One part by number, with the part count.
        let p = c.get_object().bucket("mpu").key("obj").part_number(2).send().await.unwrap();
        assert_eq!(p.parts_count, Some(3));
        assert_eq!(p.content_length, Some(b.len() as i64));
        assert!(p.body.collect().await.unwrap().into_bytes().as_ref() == b.as_slice());
        let e = c.get_object().bucket("mpu").key("obj").part_number(4).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidPart");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
        let h = c.head_object().bucket("mpu").key("obj").part_number(3).send().await.unwrap();
        assert_eq!(h.content_length, Some(1000));

        // GetObjectAttributes: the parts, two per page, with the object's ETag.
        let mut pages = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let attrs = c
                .get_object_attributes()
                .bucket("mpu")
                .key("obj")
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectParts)
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::Etag)
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
                .max_parts(2)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(attrs.e_tag.as_deref(), done.e_tag.as_deref().map(|e| e.trim_matches('"')));
            assert_eq!(attrs.object_size, Some(whole.len() as i64));
            let parts = attrs.object_parts.unwrap();
            assert_eq!(parts.total_parts_count, Some(3));
            pages.push(parts.parts().iter().map(|p| (p.part_number.unwrap(), p.size.unwrap())).collect::<Vec<_>>());
            if parts.is_truncated != Some(true) {
                break;
            }
            marker = parts.next_part_number_marker;
        }
        let sizes = [a.len() as i64, b.len() as i64, tail.len() as i64];
        assert_eq!(pages, vec![vec![(1, sizes[0]), (2, sizes[1])], vec![(3, sizes[2])]]);

        // A repeated Complete with the same parts (an SDK retrying after a
        // lost response) is answered as the first one was; any other part
        // list finds the upload gone.
        let again = complete(vec![p1.clone(), p2.clone(), p3.clone()], &id).await.unwrap();
        assert_eq!(again.e_tag, done.e_tag);
        let e = complete(vec![p1.clone()], &id).await.unwrap_err();
        assert_eq!(code(&e), "NoSuchUpload");
        let e = c
            .upload_part()
            .bucket("mpu")
            .key("obj")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NoSuchUpload");

        // Abort: the upload disappears; a second abort is NoSuchUpload.
        c.abort_multipart_upload().bucket("mpu").key("small").upload_id(&id_small).send().await.unwrap();
        let e = c.abort_multipart_upload().bucket("mpu").key("small").upload_id(&id_small).send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchUpload");
        let e = c.list_parts().bucket("mpu").key("small").upload_id(&id_small).send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchUpload");
        let left = c.list_multipart_uploads().bucket("mpu").send().await.unwrap();
        assert!(left.uploads().is_empty(), "{:?}", left.uploads());

        // Conditional completion: If-None-Match * on an existing key.
        let id2 = create(&c, "mpu", "obj").await;
        let q1 = put_part(&c, "mpu", "obj", &id2, 1, b"new").await;
        let e = c
            .complete_multipart_upload()
            .bucket("mpu")
            .key("obj")
            .upload_id(&id2)
            .if_none_match("*")
            .multipart_upload(parts(vec![q1.clone()]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PreconditionFailed");
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("obj")
            .upload_id(&id2)
            .if_match(done.e_tag().unwrap())
            .multipart_upload(parts(vec![q1]))
            .send()
            .await
            .unwrap();
        assert_eq!(get_all(&c, "mpu", "obj").await, b"new");

        // In a versioned bucket a completion is a new version.
        c.put_bucket_versioning()
            .bucket("mpu")
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .unwrap();
        let id3 = create(&c, "mpu", "obj").await;
        let r1 = put_part(&c, "mpu", "obj", &id3, 1, b"versioned").await;
        let v = c
            .complete_multipart_upload()
            .bucket("mpu")
            .key("obj")
            .upload_id(&id3)
            .multipart_upload(parts(vec![r1]))
            .send()
            .await
            .unwrap();
        let vid = v.version_id.expect("a version id");
        let got = c.get_object().bucket("mpu").key("obj").version_id(&vid).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"versioned");
        // A bucket whose only content is an upload in progress can be
        // deleted, as in S3 (delete_bucket_aborts_uploads_in_progress).
        let _pending = create(&c, "mpu", "pending").await;
        c.create_bucket().bucket("other").send().await.unwrap();
        let _p = create(&c, "other", "k").await;
        c.delete_bucket().bucket("other").send().await.unwrap();
    });
    record_rust_sdk("rules_errors_and_etags", &["multipart rules, errors and ETags"]);
}

#[test]
fn checksums_composite_and_full_object() {
    let node = Node::start("mpu-checksum", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("cksum").send().await.unwrap();
        let (a, b) = (bytes(11, 5 * MIB), bytes(12, 3 * MIB + 5));
        for (key, algo, kind) in [
            ("composite", ChecksumAlgorithm::Crc32, ChecksumType::Composite),
            ("full", ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject),
            ("full32c", ChecksumAlgorithm::Crc32C, ChecksumType::FullObject),
            ("sha256", ChecksumAlgorithm::Sha256, ChecksumType::Composite),
        ] {
            let created = c
                .create_multipart_upload()
                .bucket("cksum")
                .key(key)
                .checksum_algorithm(algo.clone())
                .checksum_type(kind.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(created.checksum_algorithm, Some(algo.clone()));
            assert_eq!(created.checksum_type, Some(kind.clone()));
            let id = created.upload_id.unwrap();
            let mut done = Vec::new();
            for (n, body) in [(1, &a), (2, &b)] {
                let r = c
                    .upload_part()
                    .bucket("cksum")
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .checksum_algorithm(algo.clone())
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                let mut p = CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap());
                p = match &algo {
                    ChecksumAlgorithm::Crc32 => p.checksum_crc32(r.checksum_crc32().unwrap()),
                    ChecksumAlgorithm::Crc32C => p.checksum_crc32_c(r.checksum_crc32_c().unwrap()),
                    ChecksumAlgorithm::Crc64Nvme => p.checksum_crc64_nvme(r.checksum_crc64_nvme().unwrap()),
                    _ => p.checksum_sha256(r.checksum_sha256().unwrap()),
                };
                done.push(p.build());
            }
            let fin = c
                .complete_multipart_upload()
                .bucket("cksum")
                .key(key)
                .upload_id(&id)
                .multipart_upload(parts(done))
                .send()
                .await
                .unwrap();
            assert_eq!(fin.checksum_type, Some(kind.clone()), "{key}");
            // Read back with checksum validation on: the SDK checks
            // FULL_OBJECT values and must accept COMPOSITE ones.
            let o = c.get_object().bucket("cksum").key(key).checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
            assert_eq!(o.checksum_type, Some(kind.clone()), "{key}");
            let value = o
                .checksum_crc32
                .clone()
                .or(o.checksum_crc64_nvme.clone())
                .or(o.checksum_crc32_c.clone())
                .or(o.checksum_sha256.clone())
                .unwrap();
            assert_eq!(value.ends_with("-2"), kind == ChecksumType::Composite, "{key}: {value}");
            let data = o.body.collect().await.unwrap().into_bytes();
            assert!(data.as_ref() == [a.as_slice(), &b].concat().as_slice(), "{key}");
        }
        // A part whose declared checksum does not match is refused.
        let id = c
            .create_multipart_upload()
            .bucket("cksum")
            .key("bad")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .unwrap()
            .upload_id
            .unwrap();
        let e = c
            .upload_part()
            .bucket("cksum")
            .key("bad")
            .upload_id(&id)
            .part_number(1)
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "BadDigest");
        let e = c
            .upload_part()
            .bucket("cksum")
            .key("bad")
            .upload_id(&id)
            .part_number(1)
            .checksum_algorithm(ChecksumAlgorithm::Sha1)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidRequest");
    });
    record_rust_sdk("checksums_composite_and_full_object", &["multipart COMPOSITE and FULL_OBJECT checksums"]);
}

#[test]
fn upload_part_copy_with_ranges() {
    let node = Node::start("mpu-copy", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("src").send().await.unwrap();
        c.create_bucket().bucket("dst").send().await.unwrap();
        let big = bytes(21, 13 * MIB + 333);
        c.put_object().bucket("src").key("big one+%").body(ByteStream::from(big.clone())).send().await.unwrap();
        let id = create(&c, "dst", "copy").await;
        let cuts = [(0, 5 * MIB - 1), (5 * MIB, 11 * MIB - 1), (11 * MIB, big.len() - 1)];
        let mut done = Vec::new();
        for (i, (first, last)) in cuts.iter().enumerate() {
            let r = c
                .upload_part_copy()
                .bucket("dst")
                .key("copy")
                .upload_id(&id)
                .part_number(i as i32 + 1)
                .copy_source("src/big%20one%2B%25")
                .copy_source_range(format!("bytes={first}-{last}"))
                .send()
                .await
                .unwrap();
            let etag = r.copy_part_result.unwrap().e_tag.unwrap();
            assert_eq!(etag.trim_matches('"'), md5_hex(&[&big[*first..=*last]]));
            done.push(CompletedPart::builder().part_number(i as i32 + 1).e_tag(etag).build());
        }
        for (range, want) in
            [("bytes=0-99999999", "InvalidRange"), ("bytes=5-", "InvalidArgument"), ("x", "InvalidArgument")]
        {
            let e = c
                .upload_part_copy()
                .bucket("dst")
                .key("copy")
                .upload_id(&id)
                .part_number(9)
                .copy_source("src/big%20one%2B%25")
                .copy_source_range(range)
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), want, "{range}");
        }
        c.complete_multipart_upload()
            .bucket("dst")
            .key("copy")
            .upload_id(&id)
            .multipart_upload(parts(done))
            .send()
            .await
            .unwrap();
        assert!(get_all(&c, "dst", "copy").await == big);

        // From a given source version.
        c.put_bucket_versioning()
            .bucket("src")
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .unwrap();
        let v1 = c.put_object().bucket("src").key("v").body(ByteStream::from_static(b"first")).send().await.unwrap();
        c.put_object().bucket("src").key("v").body(ByteStream::from_static(b"second")).send().await.unwrap();
        let id = create(&c, "dst", "fromv1").await;
        let vid = v1.version_id.unwrap();
        let r = c
            .upload_part_copy()
            .bucket("dst")
            .key("fromv1")
            .upload_id(&id)
            .part_number(1)
            .copy_source(format!("src/v?versionId={vid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.copy_source_version_id.as_deref(), Some(vid.as_str()));
        let p = CompletedPart::builder().part_number(1).e_tag(r.copy_part_result.unwrap().e_tag.unwrap()).build();
        c.complete_multipart_upload()
            .bucket("dst")
            .key("fromv1")
            .upload_id(&id)
            .multipart_upload(parts(vec![p]))
            .send()
            .await
            .unwrap();
        assert_eq!(get_all(&c, "dst", "fromv1").await, b"first");
    });
    record_rust_sdk("upload_part_copy_with_ranges", &["UploadPartCopy with ranges and versions"]);
}

#[test]
fn listings_page_past_a_thousand() {
    let node = Node::start("mpu-list", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("lst").send().await.unwrap();
        // 1,100 uploads over 550 keys (two per key), some under dir/.
        let mut tasks = Vec::new();
        for i in 0..1100usize {
            let c = c.clone();
            let key = if i % 550 < 50 { format!("dir/k{:04}", i % 550) } else { format!("k{:04}", i % 550) };
            tasks.push(tokio::spawn(async move { (key.clone(), create(&c, "lst", &key).await) }));
        }
        let mut want = Vec::new();
        for t in tasks {
            want.push(t.await.unwrap());
        }
        // AWS order: key, then initiation (ids are time-ordered).
        want.sort();
        let mut got = Vec::new();
        let (mut km, mut um): (Option<String>, Option<String>) = (None, None);
        let mut pages = 0;
        loop {
            let r = c
                .list_multipart_uploads()
                .bucket("lst")
                .set_key_marker(km.clone())
                .set_upload_id_marker(um.clone())
                .send()
                .await
                .unwrap();
            pages += 1;
            got.extend(r.uploads().iter().map(|u| (u.key.clone().unwrap(), u.upload_id.clone().unwrap())));
            if !r.is_truncated.unwrap() {
                break;
            }
            km = r.next_key_marker.clone();
            um = r.next_upload_id_marker.clone();
        }
        assert_eq!(pages, 2);
        assert_eq!(got, want);
        // Delimiter and prefix.
        let r = c.list_multipart_uploads().bucket("lst").delimiter("/").max_uploads(10).send().await.unwrap();
        assert_eq!(r.common_prefixes().len(), 1);
        assert_eq!(r.uploads().len(), 9);
        let r = c.list_multipart_uploads().bucket("lst").prefix("dir/").send().await.unwrap();
        assert_eq!(r.uploads().len(), 100);

        // ListParts past 1,000 parts of one upload.
        let (key, id) = want[0].clone();
        let mut tasks = Vec::new();
        for n in 1..=1100 {
            let (c, key, id) = (c.clone(), key.clone(), id.clone());
            tasks.push(tokio::spawn(async move { put_part(&c, "lst", &key, &id, n, &n.to_le_bytes()).await }));
        }
        let mut completed = Vec::new();
        for t in tasks {
            completed.push(t.await.unwrap());
        }
        let mut numbers = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let r = c
                .list_parts()
                .bucket("lst")
                .key(&key)
                .upload_id(&id)
                .set_part_number_marker(marker)
                .send()
                .await
                .unwrap();
            numbers.extend(r.parts().iter().map(|p| p.part_number.unwrap()));
            if !r.is_truncated.unwrap() {
                break;
            }
            marker = r.next_part_number_marker.clone();
        }
        assert_eq!(numbers, (1..=1100).collect::<Vec<i32>>());
    });
    record_rust_sdk("listings_page_past_a_thousand", &["ListParts/ListMultipartUploads past 1,000"]);
}

/// 1 GiB sent as 64 parts of 16 MiB, eight at a time, read back byte for
/// byte with the expected ETag; Complete of 64 parts is metadata only.
#[test]
fn one_gib_in_parallel_parts() {
    let node = Node::start("mpu-big", &["--segment-bytes", &(256u64 << 20).to_string()]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    let part = 16 * MIB;
    let count = 64;
    rt.block_on(async {
        c.create_bucket().bucket("big").send().await.unwrap();
        let id = create(&c, "big", "gib").await;
        let started = Instant::now();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = Vec::new();
        for n in 1..=count {
            let (c, id, sem) = (c.clone(), id.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let body = bytes(1000 + n as u64, part);
                let md5 = Md5::digest(&body);
                (put_part(&c, "big", "gib", &id, n, &body).await, md5)
            }));
        }
        let mut done = Vec::new();
        let mut md5s = Md5::new();
        for t in tasks {
            let (p, md5) = t.await.unwrap();
            md5s.update(md5);
            done.push(p);
        }
        let upload_s = started.elapsed().as_secs_f64();
        let t = Instant::now();
        let fin = c
            .complete_multipart_upload()
            .bucket("big")
            .key("gib")
            .upload_id(&id)
            .multipart_upload(parts(done))
            .send()
            .await
            .unwrap();
        let complete_ms = t.elapsed().as_secs_f64() * 1000.0;
        let want = format!("{}-{count}", hex::encode(md5s.finalize()));
        assert_eq!(fin.e_tag.as_deref().unwrap().trim_matches('"'), want);
        // Stream it back, comparing part by part.
        let mut o = c.get_object().bucket("big").key("gib").send().await.unwrap();
        assert_eq!(o.content_length, Some((part * count as usize) as i64));
        let mut at = 0usize;
        let mut expect = bytes(1001, part);
        while let Some(chunk) = o.body.next().await {
            let chunk = chunk.unwrap();
            let mut data = chunk.as_ref();
            while !data.is_empty() {
                let off = at % part;
                let n = data.len().min(part - off);
                assert!(data[..n] == expect[off..off + n], "byte {at} differs");
                at += n;
                data = &data[n..];
                if at.is_multiple_of(part) && at < part * count as usize {
                    expect = bytes(1001 + (at / part) as u64, part);
                }
            }
        }
        assert_eq!(at, part * count as usize);
        println!(
            "1 GiB in {count} parts: upload {:.1} s ({:.0} MiB/s), complete {complete_ms:.1} ms",
            upload_s,
            1024.0 / upload_s
        );
    });
    record_rust_sdk("one_gib_in_parallel_parts", &["1 GiB in 64 parallel parts"]);
}

/// kill -9 while parts upload and while completions run: acknowledged parts
/// survive and a completion is all or nothing.
#[test]
fn kill9_during_uploads_and_completions() {
    let mut node = Node::start("mpu-crash", &[]);
    let rt = rt();
    rt.block_on(sdk(&node.endpoint()).create_bucket().bucket("crash").send()).unwrap();
    for round in 0..4u64 {
        let c = sdk(&node.endpoint());
        // Parts in flight at the kill.
        let id = rt.block_on(create(&c, "crash", "up"));
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let (c, id, acked, stop) = (c.clone(), id.clone(), acked.clone(), stop.clone());
                rt.spawn(async move {
                    // At most 600 parts in all, so one ListParts page shows them.
                    for i in 0..150 {
                        if stop.load(std::sync::atomic::Ordering::SeqCst) {
                            return;
                        }
                        let n = (w * 1000 + i + 1) as i32;
                        let body = bytes(round * 10_000 + n as u64, 300_000 + (n as usize % 7) * 10_000);
                        let r = c
                            .upload_part()
                            .bucket("crash")
                            .key("up")
                            .upload_id(&id)
                            .part_number(n)
                            .body(ByteStream::from(body))
                            .send()
                            .await;
                        match r {
                            Ok(r) => acked.lock().unwrap().push((n, r.e_tag.unwrap())),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Completions racing the kill: uploads of one part each, completed
        // one after another while the node is killed.
        const UPLOADS: usize = 150;
        let prepared: Vec<(String, CompletedPart)> = rt.block_on(async {
            let mut out = Vec::new();
            for i in 0..UPLOADS {
                let key = format!("done{i}");
                let cid = create(&c, "crash", &key).await;
                let p = put_part(&c, "crash", &key, &cid, 1, &bytes(round * 1000 + i as u64, 1000 + i)).await;
                out.push((cid, p));
            }
            out
        });
        let completer = {
            let (c, prepared, stop) = (c.clone(), prepared.clone(), stop.clone());
            rt.spawn(async move {
                let mut acked = Vec::new();
                for (i, (cid, p)) in prepared.into_iter().enumerate() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let r = c
                        .complete_multipart_upload()
                        .bucket("crash")
                        .key(format!("done{i}"))
                        .upload_id(&cid)
                        .multipart_upload(parts(vec![p]))
                        .send()
                        .await;
                    match r {
                        Ok(_) => acked.push(i),
                        Err(_) => break,
                    }
                }
                acked
            })
        };
        std::thread::sleep(Duration::from_millis(30 + round * 37));
        node.kill9();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        node.start_again();
        for w in writers {
            let _ = rt.block_on(w);
        }
        let completed = rt.block_on(completer).unwrap();
        let c = sdk(&node.endpoint());
        rt.block_on(async {
            // Every acknowledged part is listed with its ETag.
            let listed = c.list_parts().bucket("crash").key("up").upload_id(&id).max_parts(1000).send().await.unwrap();
            let have: std::collections::HashMap<i32, String> =
                listed.parts().iter().map(|p| (p.part_number.unwrap(), p.e_tag.clone().unwrap())).collect();
            for (n, etag) in acked.lock().unwrap().iter() {
                assert_eq!(have.get(n), Some(etag), "round {round}: acknowledged part {n} lost");
            }
            // Each completion: the object and no upload, or the upload and no object.
            let mut finished = 0;
            for (i, (cid, _)) in prepared.iter().enumerate() {
                let key = format!("done{i}");
                let obj = c.get_object().bucket("crash").key(&key).send().await;
                let up = c.list_parts().bucket("crash").key(&key).upload_id(cid).send().await;
                match (obj, up.is_ok()) {
                    (Ok(o), false) => {
                        let data = o.body.collect().await.unwrap().into_bytes();
                        assert!(
                            data.as_ref() == bytes(round * 1000 + i as u64, 1000 + i).as_slice(),
                            "round {round}: {key}"
                        );
                        finished += 1;
                    }
                    (Err(_), true) => {
                        assert!(!completed.contains(&i), "round {round}: acknowledged completion of {key} lost");
                        let _ = c.abort_multipart_upload().bucket("crash").key(&key).upload_id(cid).send().await;
                    }
                    (o, u) => panic!("round {round}: {key}: object {:?}, upload listed {u}", o.is_ok()),
                }
                let _ = c.delete_object().bucket("crash").key(&key).send().await;
            }
            println!(
                "round {round}: {} parts acknowledged, {finished} of {UPLOADS} completions done",
                acked.lock().unwrap().len()
            );
            c.abort_multipart_upload().bucket("crash").key("up").upload_id(&id).send().await.unwrap();
        });
    }
}

/// UploadPart racing CompleteMultipartUpload that names the part's earlier
/// ETag: AWS fails one of them (InvalidPart, or NoSuchUpload for the part).
/// Both answered 200 means an acknowledged part that is in no object, or
/// a part stored into an upload that had ended.
#[test]
fn a_part_racing_its_uploads_completion_never_both_succeed() {
    let node = Node::start("mp-part-race", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("race").send().await.unwrap();
        // Other writes keep a group in flight, so both calls can queue
        // behind it and meet in the next one.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = (0..16)
            .map(|i| {
                let (c, stop) = (c.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = ByteStream::from(vec![3u8; 64]);
                        c.put_object().bucket("race").key(format!("load{i}")).body(body).send().await.unwrap();
                    }
                })
            })
            .collect();
        let both = rounds_where_both_succeed(300, async |round| {
            let key = format!("k{round}");
            let up = c.create_multipart_upload().bucket("race").key(&key).send().await.unwrap();
            let id = up.upload_id().unwrap();
            let first = c
                .upload_part()
                .bucket("race")
                .key(&key)
                .upload_id(id)
                .part_number(1)
                .body(ByteStream::from(vec![1u8; 100]))
                .send()
                .await
                .unwrap();
            let done = CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(first.e_tag().unwrap()).build())
                .build();
            let again = async {
                pause_micros(round % 8 * 25).await;
                c.upload_part()
                    .bucket("race")
                    .key(&key)
                    .upload_id(id)
                    .part_number(1)
                    .body(ByteStream::from(vec![2u8; 100]))
                    .send()
                    .await
            };
            let complete =
                c.complete_multipart_upload().bucket("race").key(&key).upload_id(id).multipart_upload(done).send();
            let (p, d) = tokio::join!(again, complete);
            p.is_ok() && d.is_ok()
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
        assert!(both.is_empty(), "UploadPart and CompleteMultipartUpload both succeeded in rounds {both:?}");
    });
}

/// S3 deletes a bucket whose only content is uploads in progress, and the
/// uploads go with it: none comes back after a restart or in a bucket made
/// again under the same name; an object still stops the delete.
#[test]
fn delete_bucket_aborts_uploads_in_progress() {
    let mut node = Node::start("mpu-delete-bucket", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("gone").send().await.unwrap();
        for key in ["a", "b/c", "d"] {
            let id = create(&c, "gone", key).await;
            put_part(&c, "gone", key, &id, 1, &bytes(7, 1 << 20)).await;
        }
        c.put_object().bucket("gone").key("obj").body(b"o".to_vec().into()).send().await.unwrap();
        let e = c.delete_bucket().bucket("gone").send().await.unwrap_err();
        assert_eq!(code(&e), "BucketNotEmpty");
        let left = c.list_multipart_uploads().bucket("gone").send().await.unwrap();
        assert_eq!(left.uploads().len(), 3, "a refused delete aborts nothing");
        c.delete_object().bucket("gone").key("obj").send().await.unwrap();
        c.delete_bucket().bucket("gone").send().await.unwrap();
    });
    node.restart();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("gone").send().await.unwrap();
        let left = c.list_multipart_uploads().bucket("gone").send().await.unwrap();
        assert!(left.uploads().is_empty(), "{:?}", left.uploads());
    });
}
