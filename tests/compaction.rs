//! Space reclamation under a sustained overwrite workload: disk use stays
//! within a stated factor of the live data, every read during and after
//! compaction returns the last acknowledged bytes, and a restart after
//! segments were deleted recovers everything.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::*;

const SEGMENT_BYTES: u64 = 8 << 20;

fn segment_bytes_on_disk(node: &Node) -> u64 {
    files_under(&node.data_dir(), "seg-").iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum()
}

#[test]
fn overwrites_are_reclaimed_and_reads_stay_correct() {
    let mut node = Node::start("compact", &["--checkpoint-interval-ms", "300", "--checkpoint-bytes", "4000000"]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    let keys = 24u64;
    let size = |seed: u64| 100_000 + (seed % 7) as usize * 20_000 + if seed.is_multiple_of(5) { 1 << 20 } else { 0 };
    let mut last: HashMap<u64, u64> = HashMap::new();
    rt.block_on(c.create_bucket().bucket("ovw").send()).unwrap();
    // Four writers, each owning a slice of the keys, overwrite for ~300 MB.
    for round in 0..40u64 {
        let tasks: Vec<_> = (0..4u64)
            .map(|w| {
                let c = c.clone();
                rt.spawn(async move {
                    let mut written = Vec::new();
                    for i in 0..keys / 4 {
                        let k = w * (keys / 4) + i;
                        let seed = round * 1000 + k;
                        let body = bytes(seed, size(seed));
                        c.put_object()
                            .bucket("ovw")
                            .key(format!("k{k}"))
                            .body(ByteStream::from(body))
                            .send()
                            .await
                            .unwrap();
                        written.push((k, seed));
                    }
                    written
                })
            })
            .collect();
        for t in tasks {
            for (k, seed) in rt.block_on(t).unwrap() {
                last.insert(k, seed);
            }
        }
        // Reads during compaction see the last acknowledged bytes.
        let k = round % keys;
        let got = rt.block_on(async {
            c.get_object()
                .bucket("ovw")
                .key(format!("k{k}"))
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
        });
        assert_eq!(got.as_ref(), bytes(last[&k], size(last[&k])).as_slice(), "round {round} key {k}");
    }
    let live: u64 = last.values().map(|s| size(*s) as u64).sum();
    // Stated bound: disk use ≤ 2 × live + 6 segments per shard (current, a
    // spare, and segments waiting for two checkpoints before deletion).
    let bound = 2 * live + 2 * 4 * SEGMENT_BYTES;
    let until = Instant::now() + Duration::from_secs(20);
    let started = Instant::now();
    let mut used = segment_bytes_on_disk(&node);
    while used > bound && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        used = segment_bytes_on_disk(&node);
    }
    println!("live {live} bytes, segments on disk {used} bytes, bound {bound}, settled in {:?}", started.elapsed());
    assert!(used <= bound, "disk use {used} exceeds bound {bound} for {live} live bytes");
    // Everything survives a crash after segments were reclaimed.
    node.crash_and_restart();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        for (k, seed) in &last {
            let got = c
                .get_object()
                .bucket("ovw")
                .key(format!("k{k}"))
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            assert_eq!(got.as_ref(), bytes(*seed, size(*seed)).as_slice(), "after restart key {k}");
        }
    });
}
