//! Crash consistency with a real process: concurrent writers, kill -9 at a
//! random moment, restart; every acknowledged write must be present and
//! byte-identical, and an object whose PUT never started must not exist.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

/// What the writers know about a key. Writers race on keys, so the value
/// after a crash may be any write attempted since the last check, or the
/// value found then; if any write was acknowledged the key must exist.
#[derive(Default, Clone)]
struct KeyState {
    settled: Option<u64>,
    attempted: Vec<u64>,
    acked: bool,
}

/// How many keys a bucket lists.
async fn count_keys(c: &aws_sdk_s3::Client, bucket: &str) -> u64 {
    let mut n = 0u64;
    let mut token = None;
    loop {
        let page = c.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.unwrap();
        n += page.key_count().unwrap_or(0) as u64;
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return n;
        }
    }
}

fn size_for(seed: u64) -> usize {
    match seed % 10 {
        0 => 0,
        1..=6 => (seed % 20_000) as usize + 1,
        7 | 8 => (seed % 300_000) as usize + 60_000,
        _ => (1 << 20) + (seed % 1_500_000) as usize,
    }
}

#[test]
fn kill9_under_concurrent_writes_loses_nothing_acknowledged() {
    let rounds: u64 = std::env::var("KALIGON_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(8);
    let mut node = Node::start("crash", &["--checkpoint-bytes", "4000000"]);
    let rt = rt();
    let state: Arc<Mutex<HashMap<String, KeyState>>> = Arc::default();
    rt.block_on(sdk(&node.endpoint()).create_bucket().bucket("crash").send()).unwrap();
    // Enough keys that a checkpoint is encoded in several steps (1024 keys
    // each) while the writers commit: keys of "crash" sort after these, so
    // changes to them meet walks that have not reached them yet.
    let bulk = 4000u64;
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("bulk").send().await.unwrap();
        let tasks: Vec<_> = (0..32u64)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in (t..bulk).step_by(32) {
                        let body = ByteStream::from(i.to_le_bytes().to_vec());
                        c.put_object().bucket("bulk").key(format!("b{i:05}")).body(body).send().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for round in 0..rounds {
        let c = sdk(&node.endpoint());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..6u64)
            .map(|w| {
                let c = c.clone();
                let state = state.clone();
                let stop = stop.clone();
                rt.spawn(async move {
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let key = format!("k{}", (w * 7919 + i * 31 + round) % 97);
                        let seed = round << 40 | w << 32 | i;
                        state.lock().unwrap().entry(key.clone()).or_default().attempted.push(seed);
                        let body = bytes(seed, size_for(seed));
                        let r = c.put_object().bucket("crash").key(&key).body(ByteStream::from(body)).send().await;
                        if r.is_err() {
                            return;
                        }
                        state.lock().unwrap().get_mut(&key).unwrap().acked = true;
                    }
                })
            })
            .collect();
        let wait_ms = 150 + (round * 7919) % 900;
        std::thread::sleep(Duration::from_millis(wait_ms));
        // Kill first, so writes are cut mid-flight; then stop the writers.
        node.kill9();
        stop.store(true, Ordering::SeqCst);
        node.start_again();
        for w in writers {
            let _ = rt.block_on(w);
        }
        let c = sdk(&node.endpoint());
        let snapshot = state.lock().unwrap().clone();
        rt.block_on(async {
            for (key, st) in &snapshot {
                let got = c.get_object().bucket("crash").key(key).send().await;
                let allowed: Vec<u64> = st.settled.iter().chain(st.attempted.iter()).copied().collect();
                match got {
                    Ok(o) => {
                        let data = o.body.collect().await.unwrap().into_bytes();
                        let ok = allowed.iter().any(|s| bytes(*s, size_for(*s)) == data.as_ref());
                        assert!(ok, "round {round}: {key} holds bytes nobody wrote");
                    }
                    Err(e) => {
                        assert!(
                            !st.acked && st.settled.is_none(),
                            "round {round}: acknowledged {key} is missing: {e:?}"
                        );
                    }
                }
            }
        });
        assert_eq!(rt.block_on(count_keys(&c, "bulk")), bulk, "round {round}: bulk keys lost");
        // Settle what is now on disk as the acknowledged state for the next round.
        let mut s = state.lock().unwrap();
        rt.block_on(async {
            for (key, st) in s.iter_mut() {
                if let Ok(o) = c.get_object().bucket("crash").key(key).send().await {
                    let data = o.body.collect().await.unwrap().into_bytes();
                    let seeds: Vec<u64> = st.settled.iter().chain(st.attempted.iter()).copied().collect();
                    st.settled = seeds.into_iter().find(|sd| bytes(*sd, size_for(*sd)) == data.as_ref());
                } else {
                    st.settled = None;
                }
                st.attempted.clear();
                st.acked = false;
            }
        });
    }
}
