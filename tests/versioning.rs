//! Versioning with the AWS SDK: versions, delete markers, the null version,
//! enable/suspend cycles, ListObjectVersions pagination, and the history
//! surviving a crash.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use common::*;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    e.as_service_error().and_then(|s| s.code()).unwrap_or("").to_string()
}

fn raw_status<E: std::fmt::Debug, R: std::fmt::Debug>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    format!("{e:?}")
}

async fn set(c: &aws_sdk_s3::Client, bucket: &str, s: BucketVersioningStatus) {
    let conf = VersioningConfiguration::builder().status(s).build();
    c.put_bucket_versioning().bucket(bucket).versioning_configuration(conf).send().await.unwrap();
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    let r = c.put_object().bucket(bucket).key(key).body(ByteStream::from(body.to_vec())).send().await.unwrap();
    r.version_id().map(String::from)
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    let r = c.get_object().bucket(bucket).key(key).set_version_id(version.map(String::from)).send().await.unwrap();
    r.body.collect().await.unwrap().into_bytes().to_vec()
}

/// (key, version id, is marker, is latest) in listing order, all pages.
async fn versions(c: &aws_sdk_s3::Client, bucket: &str, page: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let r = c
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        let mut items: Vec<(String, String, bool, bool, i64)> = Vec::new();
        for v in r.versions() {
            items.push((v.key().unwrap().into(), v.version_id().unwrap().into(), false, v.is_latest().unwrap(), 0));
        }
        for d in r.delete_markers() {
            items.push((d.key().unwrap().into(), d.version_id().unwrap().into(), true, d.is_latest().unwrap(), 0));
        }
        // The SDK splits versions and markers; restore key order, newest first
        // within a key (latest first, then as listed).
        items.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.cmp(&a.3)));
        out.extend(items.into_iter().map(|(k, v, m, l, _)| (k, v, m, l)));
        if !r.is_truncated().unwrap() {
            break;
        }
        km = r.next_key_marker().map(String::from);
        vm = r.next_version_id_marker().map(String::from);
    }
    out
}

#[test]
fn versions_markers_and_the_null_version() {
    let mut node = Node::start("ver", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("ver").send().await.unwrap();
        let v = c.get_bucket_versioning().bucket("ver").send().await.unwrap();
        assert!(v.status().is_none(), "a new bucket is unversioned");
        // An object written before versioning is the null version.
        assert_eq!(put(&c, "ver", "k", b"v0").await, None);
        set(&c, "ver", BucketVersioningStatus::Enabled).await;
        let v1 = put(&c, "ver", "k", b"v1").await.expect("enabled PUT returns a version id");
        let v2 = put(&c, "ver", "k", b"v2").await.unwrap();
        assert_ne!(v1, v2);
        assert_eq!(get(&c, "ver", "k", None).await, b"v2");
        assert_eq!(get(&c, "ver", "k", Some(&v1)).await, b"v1");
        assert_eq!(get(&c, "ver", "k", Some("null")).await, b"v0");
        // DELETE adds a marker; the key looks gone but its history stays.
        let d = c.delete_object().bucket("ver").key("k").send().await.unwrap();
        assert_eq!(d.delete_marker(), Some(true));
        let marker = d.version_id().unwrap().to_string();
        let e = c.get_object().bucket("ver").key("k").send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchKey");
        assert!(raw_status(&e).contains("x-amz-delete-marker"), "404 carries x-amz-delete-marker: {e:?}");
        let e = c.get_object().bucket("ver").key("k").version_id(&marker).send().await.unwrap_err();
        assert_eq!(code(&e), "MethodNotAllowed");
        let listed = c.list_objects_v2().bucket("ver").send().await.unwrap();
        assert!(listed.contents().is_empty());
        let all = versions(&c, "ver", 1000).await;
        let ids: Vec<_> = all.iter().map(|(_, v, m, l)| (v.as_str(), *m, *l)).collect();
        assert_eq!(
            ids,
            vec![
                (marker.as_str(), true, true),
                (v2.as_str(), false, false),
                (v1.as_str(), false, false),
                ("null", false, false)
            ]
        );
        // Deleting the marker by id brings the object back.
        c.delete_object().bucket("ver").key("k").version_id(&marker).send().await.unwrap();
        assert_eq!(get(&c, "ver", "k", None).await, b"v2");
        // Deleting a version by id removes it for good.
        c.delete_object().bucket("ver").key("k").version_id(&v1).send().await.unwrap();
        let e = c.get_object().bucket("ver").key("k").version_id(&v1).send().await.unwrap_err();
        assert_eq!(code(&e), "NoSuchVersion");

        // Suspended: PUT replaces the null version (no version id returned).
        set(&c, "ver", BucketVersioningStatus::Suspended).await;
        assert_eq!(put(&c, "ver", "k", b"s1").await, None);
        assert_eq!(put(&c, "ver", "k", b"s2").await, None);
        let all = versions(&c, "ver", 1000).await;
        let ids: Vec<_> = all.iter().map(|(_, v, _, l)| (v.as_str(), *l)).collect();
        assert_eq!(ids, vec![("null", true), (v2.as_str(), false)], "one null version, replaced in place");
        assert_eq!(get(&c, "ver", "k", Some("null")).await, b"s2");
        // Suspended DELETE writes a null delete marker over the null version.
        let d = c.delete_object().bucket("ver").key("k").send().await.unwrap();
        assert_eq!((d.delete_marker(), d.version_id()), (Some(true), Some("null")));
        let all = versions(&c, "ver", 1000).await;
        assert_eq!(all.len(), 2);
        assert!(all[0].2 && all[0].1 == "null", "{all:?}");

        // Enable again: new ids; the null marker stays in the history.
        set(&c, "ver", BucketVersioningStatus::Enabled).await;
        let v3 = put(&c, "ver", "k", b"v3").await.unwrap();
        assert_eq!(get(&c, "ver", "k", None).await, b"v3");
        assert_eq!(versions(&c, "ver", 1000).await.len(), 3);

        // A marker for a key that never existed.
        let ids = vec![aws_sdk_s3::types::ObjectIdentifier::builder().key("never").build().unwrap()];
        let del = aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build().unwrap();
        let r = c.delete_objects().bucket("ver").delete(del).send().await.unwrap();
        let d = &r.deleted()[0];
        assert_eq!(d.delete_marker(), Some(true));
        assert!(d.delete_marker_version_id().is_some());

        // Copy from a given source version.
        let r = c
            .copy_object()
            .bucket("ver")
            .key("copy")
            .copy_source(format!("ver/k?versionId={v2}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.copy_source_version_id(), Some(v2.as_str()));
        assert_eq!(get(&c, "ver", "copy", None).await, b"v2");
        let _ = v3;
    });
    // The whole history survives kill -9.
    let before = rt.block_on(versions(&c, "ver", 1000));
    node.crash_and_restart();
    let c = sdk(&node.endpoint());
    let after = rt.block_on(versions(&c, "ver", 1000));
    assert_eq!(before, after);
    record_rust_sdk("versions_markers_and_the_null_version", &["versioning, delete markers, null version"]);
}

#[test]
fn list_object_versions_paginates_many_versions_of_one_key() {
    let node = Node::start("ver-pages", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("pages").send().await.unwrap();
        set(&c, "pages", BucketVersioningStatus::Enabled).await;
        let mut ids = Vec::new();
        for i in 0..25 {
            ids.push(put(&c, "pages", "many", format!("{i}").as_bytes()).await.unwrap());
        }
        for k in ["a", "z/1", "z/2"] {
            put(&c, "pages", k, b"x").await;
        }
        ids.reverse();
        for page in [1, 7, 1000] {
            let all = versions(&c, "pages", page).await;
            let many: Vec<_> = all.iter().filter(|(k, ..)| k == "many").map(|(_, v, ..)| v.clone()).collect();
            assert_eq!(many, ids, "page size {page}: newest first, each once");
            assert_eq!(all.len(), 28, "page size {page}");
            assert_eq!(all.iter().filter(|e| e.3).count(), 4, "one latest per key");
        }
        // Delimiter roll-up.
        let r = c.list_object_versions().bucket("pages").delimiter("/").send().await.unwrap();
        let prefixes: Vec<_> = r.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
        assert_eq!(prefixes, vec!["z/"]);
        assert_eq!(r.versions().len(), 26);
        // encoding-type=url: keys come back encoded as AWS does (space as +);
        // the Rust SDK hands them over undecoded.
        put(&c, "pages", "sp ace+é", b"x").await;
        let r = c
            .list_object_versions()
            .bucket("pages")
            .prefix("sp")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.versions().iter().map(|v| v.key().unwrap()).collect::<Vec<_>>(), ["sp+ace%2B%C3%A9"]);
        // MFA delete is not built: 501, and the versioning state is unchanged.
        let e = c
            .put_bucket_versioning()
            .bucket("pages")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NotImplemented");
        let state = c.get_bucket_versioning().bucket("pages").send().await.unwrap();
        assert_eq!(state.status, Some(BucketVersioningStatus::Enabled));
    });
}

/// PutBucketVersioning calls at once all succeed and the last one wins, as
/// in AWS (the owner applies each over the state it finds).
#[test]
fn concurrent_versioning_changes_all_succeed() {
    let node = Node::start("versioning-concurrent", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("flip").send().await.unwrap();
        for _ in 0..50 {
            let set = |status| {
                let conf = aws_sdk_s3::types::VersioningConfiguration::builder().status(status).build();
                c.put_bucket_versioning().bucket("flip").versioning_configuration(conf).send()
            };
            let (on, off) = tokio::join!(
                set(aws_sdk_s3::types::BucketVersioningStatus::Enabled),
                set(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
            );
            on.unwrap();
            off.unwrap();
            let now = c.get_bucket_versioning().bucket("flip").send().await.unwrap();
            assert!(now.status().is_some());
        }
    });
}
