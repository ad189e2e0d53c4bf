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
    /// A loop file system, or None after saying loudly that `test` is
    /// skipped (not root or no loop devices); as root that is a failure.
    fn new_or_skip(dir: &Path, bytes: u64, test: &str) -> Option<LoopMount> {
        let mount = Self::new(dir, bytes);
        if mount.is_none() {
            eprintln!("SKIPPED {test} test: cannot mount a loop filesystem here (needs root)");
            assert!(!is_root(), "running as root, yet the loop filesystem could not be mounted");
        }
        mount
    }

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
    let Some(mount) = LoopMount::new_or_skip(&base, 48 << 20, "full_disk") else { return };
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
        let got = get_bytes(&c, "full", "o0").await;
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
        let got = get_bytes(&c, "full", "o0").await;
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

/// (bytes an unprivileged user could still write, size) of the file system of `dir`.
fn space(dir: &Path) -> (u64, u64) {
    let out = Command::new("df").args(["--output=avail,size", "-B1"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = text.lines().nth(1).unwrap().split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

fn segment_files(dir: &Path) -> usize {
    files_under(dir, "seg-").len()
}

/// Reclaimed segment files kept for reuse give their space back once the
/// file system runs low, whatever filled it (here a plain file).
#[test]
fn segment_files_kept_for_reuse_are_given_back_when_space_runs_low() {
    let base = temp_dir("diskpool");
    let Some(mount) = LoopMount::new_or_skip(&base, 128 << 20, "segment pool") else { return };
    let data = mount.0.join("node");
    let mut node = Node::start_in(
        data.clone(),
        &["--shards", "1", "--segment-bytes", "4300800", "--checkpoint-interval-ms", "200", "--segment-reuse-max", "8"],
    );
    let rt = rt();
    let c = sdk(&node.endpoint());
    rt.block_on(async {
        c.create_bucket().bucket("pool").send().await.unwrap();
        for i in 0..40u64 {
            let body = ByteStream::from(bytes(i, 1 << 20));
            c.put_object().bucket("pool").key(format!("o{i}")).body(body).send().await.unwrap();
        }
        for i in 0..40u64 {
            c.delete_object().bucket("pool").key(format!("o{i}")).send().await.unwrap();
        }
    });
    // Emptied segments are reclaimed into the pool (current + spare + up to
    // 8 kept); wait until reclamation is over, so that only the pool can
    // give space back below.
    let until = Instant::now() + Duration::from_secs(30);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let n = segment_files(&data);
        if n != last {
            (last, since) = (n, Instant::now());
        }
        if n >= 6 && since.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(Instant::now() < until, "reclaimed files were not kept: {n} segment files");
        std::thread::sleep(Duration::from_millis(200));
    }
    let kept = segment_files(&data);
    // Something else fills the file system.
    let filler = mount.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 1 << 20];
        // Down to ~5 % free: under the node's 10 %, with room left for its checkpoints.
        while space(&mount.0).0 > 6 << 20 {
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
        }
    }
    // The node deletes kept files until a tenth of the file system is free again.
    let low = space(&mount.0).0;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let ((avail, size), files) = (space(&mount.0), segment_files(&data));
        if avail * 10 >= size && files < kept {
            println!("{kept} segment files, {low} bytes free once filled; then {files} files, {avail} of {size} free");
            break;
        }
        assert!(Instant::now() < until, "kept files were not given back: {files} of {kept} remain, {avail} free");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::remove_file(&filler).unwrap();
    // The node still works.
    rt.block_on(async {
        let body = ByteStream::from(bytes(99, 1 << 20));
        c.put_object().bucket("pool").key("after").body(body).send().await.unwrap();
        let got = get_bytes(&c, "pool", "after").await;
        assert_eq!(got.as_ref(), bytes(99, 1 << 20).as_slice());
    });
    node.stop();
    drop(node);
    drop(mount);
    let _ = std::fs::remove_dir_all(&base);
}
