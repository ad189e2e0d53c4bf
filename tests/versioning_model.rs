//! A seeded model test of the versioning state machine: random puts,
//! deletes (with and without version ids), reads, listings, versioning
//! changes and restarts, checked against a reference model of S3's rules.
//! Replay a failure with KALIGON_MODEL_SEED=<seed>.

mod common;

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus as Status, VersioningConfiguration};
use common::*;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    id: String,
    marker: bool,
    data: Vec<u8>,
}

#[derive(Default)]
struct Model {
    /// None = never versioned.
    state: Option<Status>,
    keys: BTreeMap<String, Vec<Entry>>,
}

impl Model {
    fn put(&mut self, key: &str, id: Option<String>, data: Vec<u8>) {
        let list = self.keys.entry(key.into()).or_default();
        match self.state {
            Some(Status::Enabled) => {
                list.insert(0, Entry { id: id.expect("enabled PUT has an id"), marker: false, data })
            }
            _ => {
                assert_eq!(id, None, "unversioned/suspended PUT has no version id");
                list.retain(|e| e.id != "null");
                list.insert(0, Entry { id: "null".into(), marker: false, data });
            }
        }
    }

    fn delete(&mut self, key: &str, marker_id: Option<String>) {
        let list = self.keys.entry(key.into()).or_default();
        match self.state {
            None => list.retain(|e| e.id != "null"),
            Some(Status::Enabled) => list.insert(0, Entry { id: marker_id.unwrap(), marker: true, data: vec![] }),
            Some(_) => {
                list.retain(|e| e.id != "null");
                list.insert(0, Entry { id: "null".into(), marker: true, data: vec![] });
            }
        }
        if list.is_empty() {
            self.keys.remove(key);
        }
    }

    fn delete_version(&mut self, key: &str, id: &str) {
        if let Some(list) = self.keys.get_mut(key) {
            list.retain(|e| e.id != id);
            if list.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut node = Node::start(&format!("vmodel-{seed}"), &[]);
    let rt = rt();
    let mut m = Model::default();
    rt.block_on(sdk(&node.endpoint()).create_bucket().bucket("vmodel").send()).unwrap();
    for step in 0..steps {
        let c = sdk(&node.endpoint());
        let key = format!("k{}", rng.below(4));
        let op = rng.below(100);
        let ctx = format!("seed {seed} step {step} op {op} key {key}");
        rt.block_on(async {
            match op {
                0..=34 => {
                    let data = format!("{seed}-{step}").into_bytes();
                    let r = c
                        .put_object()
                        .bucket("vmodel")
                        .key(&key)
                        .body(ByteStream::from(data.clone()))
                        .send()
                        .await
                        .expect(&ctx);
                    m.put(&key, r.version_id().map(String::from), data);
                }
                35..=49 => {
                    let r = c.delete_object().bucket("vmodel").key(&key).send().await.expect(&ctx);
                    let marker = r.delete_marker() == Some(true);
                    assert_eq!(marker, m.state.is_some(), "{ctx}: marker only in versioned buckets");
                    m.delete(&key, r.version_id().map(String::from));
                }
                50..=59 => {
                    let ids: Vec<String> =
                        m.keys.get(&key).map(|l| l.iter().map(|e| e.id.clone()).collect()).unwrap_or_default();
                    if !ids.is_empty() {
                        let id = ids[rng.below(ids.len() as u64) as usize].clone();
                        c.delete_object().bucket("vmodel").key(&key).version_id(&id).send().await.expect(&ctx);
                        m.delete_version(&key, &id);
                    }
                }
                60..=74 => {
                    let got = c.get_object().bucket("vmodel").key(&key).send().await;
                    match m.keys.get(&key).and_then(|l| l.first()).filter(|e| !e.marker) {
                        Some(e) => assert_eq!(
                            got.expect(&ctx).body.collect().await.unwrap().into_bytes().as_ref(),
                            e.data.as_slice(),
                            "{ctx}"
                        ),
                        None => assert!(got.is_err(), "{ctx}: expected 404"),
                    }
                }
                75..=84 => {
                    let entries = m.keys.get(&key).cloned().unwrap_or_default();
                    if let Some(e) = entries.get(rng.below(entries.len().max(1) as u64) as usize) {
                        let got = c.get_object().bucket("vmodel").key(&key).version_id(&e.id).send().await;
                        if e.marker {
                            let err = got.expect_err(&ctx);
                            assert_eq!(
                                err.as_service_error().and_then(aws_sdk_s3::error::ProvideErrorMetadata::code),
                                Some("MethodNotAllowed"),
                                "{ctx}"
                            );
                        } else {
                            assert_eq!(
                                got.expect(&ctx).body.collect().await.unwrap().into_bytes().as_ref(),
                                e.data.as_slice(),
                                "{ctx}"
                            );
                        }
                    }
                }
                85..=92 => {
                    let r = c.list_object_versions().bucket("vmodel").send().await.expect(&ctx);
                    let mut got: BTreeMap<String, Vec<(String, bool, bool)>> = BTreeMap::new();
                    for v in r.versions() {
                        got.entry(v.key().unwrap().into()).or_default().push((
                            v.version_id().unwrap().into(),
                            false,
                            v.is_latest().unwrap(),
                        ));
                    }
                    for d in r.delete_markers() {
                        got.entry(d.key().unwrap().into()).or_default().push((
                            d.version_id().unwrap().into(),
                            true,
                            d.is_latest().unwrap(),
                        ));
                    }
                    for (k, list) in m.keys.iter() {
                        let mut want: Vec<_> =
                            list.iter().enumerate().map(|(i, e)| (e.id.clone(), e.marker, i == 0)).collect();
                        let mut have = got.remove(k).unwrap_or_default();
                        want.sort();
                        have.sort();
                        assert_eq!(have, want, "{ctx}: versions of {k}");
                    }
                    assert!(got.is_empty(), "{ctx}: unexpected keys {got:?}");
                }
                93..=96 => {
                    let s = if rng.below(2) == 0 { Status::Enabled } else { Status::Suspended };
                    let conf = VersioningConfiguration::builder().status(s.clone()).build();
                    c.put_bucket_versioning().bucket("vmodel").versioning_configuration(conf).send().await.expect(&ctx);
                    m.state = Some(s);
                }
                _ => {}
            }
        });
        match op {
            97 => node.restart(),
            98 | 99 => node.crash_and_restart(),
            _ => {}
        }
    }
}

#[test]
fn versioning_state_machine_matches_the_model() {
    let seeds: Vec<u64> = match std::env::var("KALIGON_MODEL_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => vec![7, 8, 9],
    };
    let steps = std::env::var("KALIGON_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for seed in seeds {
        run(seed, steps);
    }
}
