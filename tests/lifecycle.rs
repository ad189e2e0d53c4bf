//! Lifecycle execution under kill -9: a node with a one-second lifecycle day
//! is killed while its worker is expiring thousands of objects. After the
//! restart every object is either untouched (same bytes) or fully expired,
//! nothing a rule does not cover is lost, and the worker finishes the job.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, VersioningConfiguration,
};
use common::*;
use std::time::{Duration, Instant};

const EXPIRED: usize = 3000;
const KEPT: usize = 300;
const VERSIONED: usize = 400;

fn body(key: &str, generation: u64) -> Vec<u8> {
    let seed = key.bytes().fold(generation, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    bytes(seed, 64 + (seed % 200) as usize)
}

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

async fn count(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let page =
            c.list_objects_v2().bucket(bucket).prefix(prefix).set_continuation_token(token).send().await.unwrap();
        n += page.key_count().unwrap_or(0) as usize;
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return n;
        }
    }
}

async fn put_all(c: &aws_sdk_s3::Client, bucket: &str, keys: Vec<String>, generation: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(keys.len().div_ceil(16)) {
        let (c, bucket, chunk) = (c.clone(), bucket.to_string(), chunk.to_vec());
        tasks.spawn(async move {
            for k in chunk {
                let b = ByteStream::from(body(&k, generation));
                c.put_object().bucket(&bucket).key(&k).body(b).send().await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// What a key of the versioned bucket can look like during the pass: its
/// two versions whole, the older one expired (noncurrent), a marker on top
/// (the current one expired), then versions and the lone marker gone
/// (Expiration Days also removes expired object delete markers). Answers
/// (versions, markers).
async fn check_versioned(c: &aws_sdk_s3::Client, key: &str) -> (usize, usize) {
    let r = c.list_object_versions().bucket("ver").prefix(key).send().await.unwrap();
    let markers = r.delete_markers().iter().filter(|m| m.key() == Some(key)).count();
    let listed: Vec<_> = r.versions().iter().filter(|v| v.key() == Some(key)).collect();
    assert!(markers <= 1 && listed.len() <= 2, "{key}: {markers} markers, {} versions", listed.len());
    for (i, v) in listed.iter().enumerate() {
        let asked = c.get_object().bucket("ver").key(key).version_id(v.version_id().unwrap()).send().await;
        // The worker may expire a listed version before it is read.
        let Ok(got) = asked else { continue };
        let data = got.body.collect().await.unwrap().into_bytes();
        let generation = (1..=2).find(|g| data == body(key, *g)).unwrap_or_else(|| panic!("{key}: bytes changed"));
        // Newest first: a lone version left is the newer one (the older,
        // noncurrent from the start, goes first); the current one without
        // a marker is the newest.
        let want = if listed.len() == 2 && i == 1 { 1 } else { 2 };
        assert_eq!(generation, want, "{key}: version {i} of {} is generation {generation}", listed.len());
        if markers == 0 && i == 0 {
            assert_eq!(v.is_latest(), Some(true), "{key}: the newest version is not the current one");
        }
    }
    (listed.len(), markers)
}

#[test]
fn kill9_during_a_lifecycle_pass_loses_nothing_and_the_pass_finishes() {
    let mut node = Node::start("lifecycle-crash", &["--lifecycle-day-secs", "1", "--shards", "2"]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    let expired: Vec<String> = (0..EXPIRED).map(|i| format!("exp/{i:05}")).collect();
    let kept: Vec<String> = (0..KEPT).map(|i| format!("keep/{i:05}")).collect();
    let versioned: Vec<String> = (0..VERSIONED).map(|i| format!("v/{i:05}")).collect();
    rt.block_on(async {
        c.create_bucket().bucket("plain").send().await.unwrap();
        c.create_bucket().bucket("ver").send().await.unwrap();
        let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        c.put_bucket_versioning().bucket("ver").versioning_configuration(on).send().await.unwrap();
        put_all(&c, "plain", expired.clone(), 1).await;
        put_all(&c, "plain", kept.clone(), 1).await;
        put_all(&c, "ver", versioned.clone(), 1).await;
        put_all(&c, "ver", versioned.clone(), 2).await;
        let one_day = LifecycleExpiration::builder().days(1).build();
        let plain = BucketLifecycleConfiguration::builder()
            .rules(rule("exp", "exp/").expiration(one_day.clone()).build().unwrap())
            .build()
            .unwrap();
        c.put_bucket_lifecycle_configuration().bucket("plain").lifecycle_configuration(plain).send().await.unwrap();
        let noncurrent = NoncurrentVersionExpiration::builder().noncurrent_days(1).build();
        let ver = BucketLifecycleConfiguration::builder()
            .rules(rule("v", "v/").expiration(one_day).noncurrent_version_expiration(noncurrent).build().unwrap())
            .build()
            .unwrap();
        c.put_bucket_lifecycle_configuration().bucket("ver").lifecycle_configuration(ver).send().await.unwrap();
        // Kill once the worker is well into its pass.
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let left = count(&c, "plain", "exp/").await;
            if left < EXPIRED * 9 / 10 {
                println!("killing with {left} of {EXPIRED} objects left to expire");
                break;
            }
            assert!(Instant::now() < until, "the worker expired nothing within a minute");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    node.kill9();
    node.start_again();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        // Right after the restart: every object is whole or gone, kept ones all there.
        let mut gone = 0;
        for k in &expired {
            match c.get_object().bucket("plain").key(k).send().await {
                Ok(o) => assert_eq!(o.body.collect().await.unwrap().into_bytes(), body(k, 1), "{k} changed"),
                Err(e) => {
                    assert!(e.into_service_error().is_no_such_key(), "{k}: not NoSuchKey");
                    gone += 1;
                }
            }
        }
        println!("after the restart {gone} of {EXPIRED} expired");
        assert!(gone < EXPIRED, "the pass had finished before the kill");
        for k in &kept {
            let o = c.get_object().bucket("plain").key(k).send().await.unwrap();
            assert_eq!(o.body.collect().await.unwrap().into_bytes(), body(k, 1), "{k} changed");
        }
        for k in versioned.iter().step_by(7) {
            check_versioned(&c, k).await;
        }
        // The worker picks up and finishes: every exp/ object goes, every
        // versioned key goes with its marker, keep/ stays.
        let until = Instant::now() + Duration::from_secs(90);
        while count(&c, "plain", "exp/").await > 0 {
            assert!(Instant::now() < until, "the lifecycle pass did not finish after the restart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let until = Instant::now() + Duration::from_secs(90);
        for k in versioned.iter().step_by(5) {
            while check_versioned(&c, k).await != (0, 0) {
                assert!(Instant::now() < until, "{k}: noncurrent versions were not expired");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert_eq!(count(&c, "plain", "keep/").await, KEPT);
    });
}
