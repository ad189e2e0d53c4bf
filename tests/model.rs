//! A seeded, replayable model test: random put/overwrite/delete/list/get
//! and restart/crash sequences against a real node, checked against a
//! BTreeMap. Replay a failure with KALIGON_MODEL_SEED=<seed>.

mod common;

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn size(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 0,
        1 => (1 << 20) + rng.below(1 << 20) as usize,
        2..=4 => rng.below(200_000) as usize,
        _ => rng.below(5000) as usize + 1,
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x2545F4914F6CDD1D) | 1);
    let mut node = Node::start(&format!("model-{seed}"), &["--checkpoint-bytes", "3000000"]);
    let rt = rt();
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    let prefixes = ["", "a/", "a/b/", "c/", "d"];
    rt.block_on(sdk(&node.endpoint()).create_bucket().bucket("model").send()).unwrap();
    for step in 0..steps {
        let c = sdk(&node.endpoint());
        let key = format!("{}{}", prefixes[rng.below(5) as usize], rng.below(25));
        let op = rng.below(100);
        let ctx = format!("seed {seed} step {step} op {op} key {key}");
        rt.block_on(async {
            match op {
                0..=44 => {
                    let v = rng.next() & 0xFFFF_FFFF;
                    let len = size(&mut rng);
                    c.put_object()
                        .bucket("model")
                        .key(&key)
                        .body(ByteStream::from(bytes(v, len)))
                        .send()
                        .await
                        .expect(&ctx);
                    model.insert(key, encode(v, len));
                }
                45..=64 => {
                    c.delete_object().bucket("model").key(&key).send().await.expect(&ctx);
                    model.remove(&key);
                }
                65..=84 => {
                    let got = c.get_object().bucket("model").key(&key).send().await;
                    match model.get(&key) {
                        Some(&enc) => {
                            let (v, len) = decode(enc);
                            let data = got.expect(&ctx).body.collect().await.unwrap().into_bytes();
                            assert_eq!(data.as_ref(), bytes(v, len).as_slice(), "{ctx}");
                        }
                        None => assert!(got.is_err(), "{ctx}: deleted key still readable"),
                    }
                }
                85..=95 => {
                    let prefix = prefixes[rng.below(5) as usize];
                    let delimiter = rng.below(2) == 0;
                    let mut got = Vec::new();
                    let mut token = None;
                    loop {
                        let mut req =
                            c.list_objects_v2().bucket("model").prefix(prefix).max_keys(1 + rng.below(7) as i32);
                        if delimiter {
                            req = req.delimiter("/");
                        }
                        let r = req.set_continuation_token(token.clone()).send().await.expect(&ctx);
                        got.extend(r.contents().iter().map(|o| o.key().unwrap().to_string()));
                        got.extend(r.common_prefixes().iter().map(|p| p.prefix().unwrap().to_string()));
                        if !r.is_truncated().unwrap() {
                            break;
                        }
                        token = r.next_continuation_token().map(String::from);
                    }
                    got.sort();
                    let mut want: Vec<String> = model
                        .keys()
                        .filter(|k| k.starts_with(prefix))
                        .map(|k| match k[prefix.len()..].find('/') {
                            Some(i) if delimiter => k[..prefix.len() + i + 1].to_string(),
                            _ => k.clone(),
                        })
                        .collect();
                    want.dedup();
                    want.sort();
                    want.dedup();
                    assert_eq!(got, want, "{ctx} list prefix={prefix:?} delimiter={delimiter}");
                }
                _ => {}
            }
        });
        match op {
            96..=97 => node.restart(),
            98..=99 => node.crash_and_restart(),
            _ => {}
        }
    }
}

/// Object bodies are `bytes(v, len)`; the model keeps both in one u64.
fn encode(v: u64, len: usize) -> u64 {
    (v & 0xFFFF_FFFF) << 32 | len as u64
}

fn decode(enc: u64) -> (u64, usize) {
    (enc >> 32, (enc & 0xFFFF_FFFF) as usize)
}

#[test]
fn model_sequences() {
    let seeds: Vec<u64> = match std::env::var("KALIGON_MODEL_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => vec![1, 2, 3],
    };
    let steps = std::env::var("KALIGON_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for seed in seeds {
        run(seed, steps);
    }
}
