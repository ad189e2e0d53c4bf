//! A full disk refuses new writes cleanly (503, nothing half-stored) while
//! reads and deletes keep working, and writes resume once space is freed.
//! Uses a small ext4 filesystem on a loop device (needs root, as CI has).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::*;

struct LoopMount(PathBuf);

impl LoopMount {
    fn new(dir: &Path, bytes: u64) -> Option<LoopMount> {
        let img = dir.join("fs.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&img).unwrap().set_len(bytes).unwrap();
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img)) {
            return None;
        }
        if !ok(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt)) {
            return None;
        }
        Some(LoopMount(mnt))
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_refuses_writes_but_serves_reads_and_deletes() {
    let base = temp_dir("diskfull");
    let Some(mount) = LoopMount::new(&base, 48 << 20) else {
        // Not root or no loop devices: say so loudly rather than pass quietly.
        eprintln!("SKIPPED full_disk test: cannot mount a loop filesystem here (needs root)");
        assert!(!is_root(), "running as root, yet the loop filesystem could not be mounted");
        return;
    };
    let mut node = Node::start_in(
        mount.0.join("node"),
        &["--shards", "1", "--segment-bytes", "4300800", "--checkpoint-interval-ms", "200"],
    );
    let rt = rt();
    let c = sdk(&node.endpoint());
    let mut stored = Vec::new();
    rt.block_on(async {
        c.create_bucket().bucket("full").send().await.unwrap();
        let mut refused = None;
        for i in 0..80u64 {
            let r = c
                .put_object()
                .bucket("full")
                .key(format!("o{i}"))
                .body(ByteStream::from(bytes(i, 1 << 20)))
                .send()
                .await;
            match r {
                Ok(_) => stored.push(i),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let e = refused.expect("the small disk never filled up");
        println!("{} objects stored before the disk filled", stored.len());
        let meta = e.as_service_error().map(|s| s.meta().clone());
        assert_eq!(meta.as_ref().and_then(|m| m.code()), Some("ServiceUnavailable"), "{e:?}");
        assert!(stored.len() >= 4, "only {} objects fit", stored.len());
        // Reads keep working.
        let got =
            c.get_object().bucket("full").key("o0").send().await.unwrap().body.collect().await.unwrap().into_bytes();
        assert_eq!(got.as_ref(), bytes(0, 1 << 20).as_slice());
        // Deletes keep working (they only write metadata).
        for i in stored.iter().skip(1) {
            c.delete_object().bucket("full").key(format!("o{i}")).send().await.unwrap();
        }
        // Reclaimed segments make room again: writes resume.
        let started = Instant::now();
        let until = started + Duration::from_secs(30);
        loop {
            let r = c.put_object().bucket("full").key("again").body(ByteStream::from(bytes(99, 1 << 20))).send().await;
            if r.is_ok() {
                println!("writes resumed {:?} after the deletes", started.elapsed());
                break;
            }
            assert!(Instant::now() < until, "writes never resumed after deleting: {r:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let got =
            c.get_object().bucket("full").key("o0").send().await.unwrap().body.collect().await.unwrap().into_bytes();
        assert_eq!(got.as_ref(), bytes(0, 1 << 20).as_slice());
    });
    node.stop();
    drop(node);
    drop(mount);
    let _ = std::fs::remove_dir_all(&base);
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
