//! rclone (Debian's package, installed by tests/run.sh) against a node:
//! copy in and out with `rclone check`, and `--s3-versions` copying every
//! version of a versioned bucket out to a local directory.

mod common;

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use common::*;

fn rclone(node: &Node, args: &[&str]) -> std::process::Output {
    rclone_as(node, ACCESS_KEY, SECRET_KEY, args)
}

fn rclone_version() -> String {
    let out = Command::new("rclone").arg("version").output().expect("rclone is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace().nth(1).unwrap_or("?").trim_start_matches('v').to_string()
}

fn record(part: &str, scenarios: &[&str]) {
    record_lane("rclone", &rclone_version(), part, scenarios);
}

fn write_tree(dir: &Path) {
    for (i, name) in ["a.txt", "sub/b.bin", "sub/deeper/c d+e.txt", "empty"].iter().enumerate() {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes(i as u64, if *name == "empty" { 0 } else { 1000 + i * 300_000 })).unwrap();
    }
}

#[test]
fn rclone_copies_in_and_out_and_checks() {
    let node = Node::start("rclone", &[]);
    let src = temp_dir("rclone-src");
    let back = temp_dir("rclone-back");
    write_tree(&src);
    rclone(&node, &["mkdir", "kal:rcl"]);
    rclone(&node, &["copy", src.to_str().unwrap(), "kal:rcl"]);
    rclone(&node, &["check", src.to_str().unwrap(), "kal:rcl"]);
    rclone(&node, &["copy", "kal:rcl", back.to_str().unwrap()]);
    rclone(&node, &["check", src.to_str().unwrap(), back.to_str().unwrap()]);
    // Server-side copy between buckets.
    rclone(&node, &["mkdir", "kal:rcl2"]);
    rclone(&node, &["copy", "kal:rcl", "kal:rcl2"]);
    rclone(&node, &["check", "kal:rcl", "kal:rcl2"]);
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&back);
    record("copy", &["copy local -> node -> local, rclone check both ways", "server-side copy between buckets"]);
}

#[test]
fn rclone_multipart_uploads() {
    let node = Node::start("rclone-multipart", &[]);
    let src = temp_dir("rclone-mp-src");
    let back = temp_dir("rclone-mp-back");
    let big = bytes(7, 23 * 1024 * 1024 + 5);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    rclone(&node, &["mkdir", "kal:mpu"]);
    let cutoff = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"];
    rclone(&node, &[&["copy", src.to_str().unwrap(), "kal:mpu"][..], &cutoff[..]].concat());
    rclone(&node, &["check", src.to_str().unwrap(), "kal:mpu"]);
    let rt = rt();
    let etag = rt.block_on(async {
        let h = sdk(&node.endpoint()).head_object().bucket("mpu").key("big.bin").send().await.unwrap();
        h.e_tag().unwrap().to_string()
    });
    assert!(etag.ends_with("-5\""), "uploaded in 5 parts: {etag}");
    rclone(&node, &["copy", "kal:mpu", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), big);
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&back);
    record("multipart", &["multipart upload (--s3-upload-cutoff), check and copy back"]);
}

#[test]
fn rclone_s3_versions_copies_every_version_out() {
    let node = Node::start("rclone-versions", &[]);
    let rt = rt();
    let c = sdk(&node.endpoint());
    let mut bodies = Vec::new();
    rt.block_on(async {
        c.create_bucket().bucket("hist").send().await.unwrap();
        let conf = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        c.put_bucket_versioning().bucket("hist").versioning_configuration(conf).send().await.unwrap();
        for i in 0..3u64 {
            let b = bytes(100 + i, 5000 + i as usize);
            c.put_object().bucket("hist").key("doc.txt").body(ByteStream::from(b.clone())).send().await.unwrap();
            bodies.push(b);
            // rclone names versions by their timestamp (second resolution).
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        c.put_object().bucket("hist").key("other.txt").body(ByteStream::from_static(b"other")).send().await.unwrap();
        c.delete_object().bucket("hist").key("other.txt").send().await.unwrap();
    });
    let out = temp_dir("rclone-versions-out");
    rclone(&node, &["copy", "--s3-versions", "kal:hist", out.to_str().unwrap()]);
    let mut found: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("doc"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    found.sort();
    bodies.sort();
    assert_eq!(found, bodies, "every version of doc.txt comes out");
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("other")), "a deleted key's old version is copied too: {names:?}");
    let _ = std::fs::remove_dir_all(&out);
    record("versions", &["--s3-versions copies every version out"]);
}
