//! Damaged bytes on disk: a flipped byte in object data is detected and the
//! object is never served with wrong bytes; a damaged metadata record loses
//! only its own change; a damaged checkpoint falls back to an older one.

mod common;

use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

/// Finds `needle` in the node's segment files; returns (file, offset).
fn find(node: &Node, needle: &[u8]) -> Option<(PathBuf, usize)> {
    for f in files_under(&node.data_dir(), "seg-") {
        let data = std::fs::read(&f).unwrap();
        if let Some(at) = data.windows(needle.len()).position(|w| w == needle) {
            return Some((f, at));
        }
    }
    None
}

fn flip(path: &PathBuf, at: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[at] ^= 0x5A;
    std::fs::write(path, data).unwrap();
}

async fn get(c: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let o = c.get_object().bucket("dmg").key(key).send().await.map_err(|e| format!("{e:?}"))?;
    o.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| format!("{e:?}"))
}

#[test]
fn flipped_object_bytes_are_never_served() {
    let mut node = Node::start("dmg-data", &[]);
    let rt = rt();
    let a = bytes(11, 300_000);
    let b = bytes(12, 5_000);
    let small = bytes(13, 3_000);
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("dmg").send().await.unwrap();
        for (k, v) in [("a", &a), ("b", &b), ("small", &small)] {
            c.put_object().bucket("dmg").key(k).body(ByteStream::from(v.clone())).send().await.unwrap();
        }
    });
    node.stop();
    let (f, at) = find(&node, &a[1000..1064]).expect("object bytes are in a segment");
    flip(&f, at + 10);
    let (f, at) = find(&node, &small[100..164]).expect("small object bytes are in a segment");
    flip(&f, at + 3);
    node.start_again();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        if let Ok(got) = get(&c, "a").await {
            panic!("damaged object served ({} bytes, equal: {})", got.len(), got == a);
        }
        assert!(get(&c, "small").await.is_err(), "damaged small object served");
        assert_eq!(get(&c, "b").await.unwrap(), b, "undamaged object must stay readable");
        // The node keeps serving after refusing damaged data.
        c.put_object().bucket("dmg").key("after").body(ByteStream::from_static(b"ok")).send().await.unwrap();
        assert_eq!(get(&c, "after").await.unwrap(), b"ok");
    });
}

#[test]
fn damaged_metadata_record_loses_only_itself() {
    let mut node = Node::start("dmg-meta", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("dmg").send().await.unwrap();
    });
    // Written after the start-up checkpoint, so only the log holds them.
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        for k in ["first-key", "victim-key-with-a-long-name", "later-key"] {
            c.put_object().bucket("dmg").key(k).body(ByteStream::from(k.as_bytes().to_vec())).send().await.unwrap();
        }
    });
    node.kill9();
    let (f, at) = find(&node, b"victim-key-with-a-long-name").expect("the metadata record is in a segment");
    flip(&f, at + 4);
    node.start_again();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        assert_eq!(get(&c, "first-key").await.unwrap(), b"first-key");
        assert_eq!(get(&c, "later-key").await.unwrap(), b"later-key");
        assert!(get(&c, "victim-key-with-a-long-name").await.is_err(), "a damaged record must not be applied");
    });
}

#[test]
fn damaged_checkpoint_falls_back_to_the_previous_one() {
    let mut node = Node::start("dmg-ckpt", &[]);
    let rt = rt();
    let mut keys = Vec::new();
    for round in 0..3 {
        rt.block_on(async {
            let c = sdk(&node.endpoint());
            if round == 0 {
                c.create_bucket().bucket("dmg").send().await.unwrap();
            }
            for i in 0..20 {
                let k = format!("r{round}-{i}");
                c.put_object()
                    .bucket("dmg")
                    .key(&k)
                    .body(ByteStream::from(k.clone().into_bytes()))
                    .send()
                    .await
                    .unwrap();
                keys.push(k);
            }
        });
        // A clean stop writes a checkpoint per shard.
        node.restart();
    }
    node.stop();
    for ckpt in files_under(&node.data_dir(), "ckpt-") {
        let newest = files_under(ckpt.parent().unwrap(), "ckpt-").last().cloned().unwrap();
        if ckpt == newest {
            let len = std::fs::metadata(&ckpt).unwrap().len() as usize;
            flip(&ckpt, len / 2);
        }
    }
    node.start_again();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        for k in &keys {
            assert_eq!(get(&c, k).await.unwrap(), k.as_bytes(), "{k} lost after checkpoint damage");
        }
    });
}

/// A commit whose data write never reached the disk (a crash while both
/// were in flight; in a reused segment file the place holds stale bytes,
/// not zeros, so replay reads on past it) or reached it torn (the header
/// block in place, the rest not) is dropped on recovery: the key keeps its
/// previous version, and what was written around it stays.
#[test]
fn a_commit_without_its_data_is_dropped_on_recovery() {
    let mut node = Node::start("dmg-torn", &[]);
    let rt = rt();
    let old = bytes(21, 3_000);
    let new = bytes(22, 2 << 20);
    let later = bytes(23, 4_000);
    let (old2, new2) = (bytes(24, 2_000), bytes(25, 2 << 20));
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("dmg").send().await.unwrap();
        for (k, v) in [("torn", &old), ("torn", &new), ("half", &old2), ("half", &new2), ("later", &later)] {
            c.put_object().bucket("dmg").key(k).body(ByteStream::from(v.clone())).send().await.unwrap();
        }
    });
    node.kill9();
    // The first data record of the 2 MiB body: its header sits just before
    // the payload; its first 4 KiB block becomes stale bytes.
    let (f, at) = find(&node, &new[..64]).expect("object bytes are in a segment");
    let record = at - 40;
    assert_eq!(record % 4096, 0, "a data record starts on a block");
    let mut data = std::fs::read(&f).unwrap();
    data[record..record + 4096].fill(0x5A);
    std::fs::write(&f, data).unwrap();
    // The other body's last record: header in place, a block inside lost.
    let (f, at) = find(&node, &new2[(1 << 20) + 8192..(1 << 20) + 8256]).expect("object bytes are in a segment");
    let mut data = std::fs::read(&f).unwrap();
    data[at..at + 4096].fill(0);
    std::fs::write(&f, data).unwrap();
    node.start_again();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        assert_eq!(get(&c, "torn").await.expect("the previous version is back"), old);
        assert_eq!(get(&c, "half").await.expect("the previous version is back"), old2);
        assert_eq!(get(&c, "later").await.unwrap(), later);
    });
}
