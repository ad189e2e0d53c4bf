//! The per-bucket meter against what real clients say they moved: rclone
//! copies a tree up and back down (its own JSON stats give the bytes),
//! aws-cli copies recursively and uploads a multipart object, and
//! `/admin/usage` must show exactly those bytes, per bucket and per user,
//! through a clean restart and kill -9, and `kaligon usage` offline the same.

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sign::*;

const ALT_KEY: &str = "KLGNMETERALTKEY000002";
const ALT_SECRET: &str = "meter/alt+secret0123456789abcdefghijklmno";

fn usage_as(node: &Node, access: &str, secret: &str, query: &str) -> Value {
    let host = node.addr.to_string();
    let r = send(
        node.addr,
        &Request::new("GET", &format!("/admin/usage{query}"), &host).sign_v4(&Creds::new(access, secret)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).expect("JSON")
}

/// The totals of `bucket` as the administrator sees them (zeros before any).
fn totals(node: &Node, bucket: &str) -> Value {
    bucket_report(node, bucket, "total")
}

/// One part (`total`, `stored`) of `bucket`'s report for the administrator.
fn bucket_report(node: &Node, bucket: &str, part: &str) -> Value {
    let all = usage_as(node, ACCESS_KEY, SECRET_KEY, "");
    all["buckets"].as_array().unwrap().iter().find(|b| b["bucket"] == bucket).map_or(Value::Null, |b| b[part].clone())
}

/// Waits until the meter shows `field` of `bucket` at `want` (cores hand
/// their sums over within a second), failing with what it shows after 10 s.
fn wait_for(node: &Node, bucket: &str, field: &str, want: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let t = totals(node, bucket);
        if t[field].as_u64() == Some(want) || Instant::now() > until {
            assert_eq!(t[field].as_u64(), Some(want), "{bucket} {field}: {t}");
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// rclone's own count of bytes transferred (its last JSON stats line).
fn rclone_bytes(out: &std::process::Output) -> u64 {
    let log = String::from_utf8_lossy(&out.stderr);
    let last = log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).rfind(|v| v["stats"].is_object());
    last.and_then(|v| v["stats"]["bytes"].as_u64()).unwrap_or_else(|| panic!("no stats in rclone's log:\n{log}"))
}

fn write_files(dir: &Path, sizes: &[usize]) -> u64 {
    for (i, n) in sizes.iter().enumerate() {
        let p = dir.join(format!("d{}/f{i}.bin", i % 2));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes(i as u64 + 7, *n)).unwrap();
    }
    sizes.iter().map(|n| *n as u64).sum()
}

fn aws(node: &Node, args: &[&str]) {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients/venv/bin/aws");
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(["--endpoint-url", &node.endpoint()])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("{} (tests/clients/setup.sh installs it): {e}", bin.display()));
    assert!(out.status.success(), "aws {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_meter_matches_what_clients_moved_through_restart_and_kill9() {
    let dir = temp_dir("meter");
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.toml");
    std::fs::write(&users, format!("[[user]]\naccess_key = \"{ALT_KEY}\"\nsecret_key = \"{ALT_SECRET}\"\n")).unwrap();
    let mut node =
        Node::start_in(dir.join("node"), &["--users", users.to_str().unwrap(), "--checkpoint-interval-ms", "200"]);

    // rclone up (one file above the multipart cutoff), check, then down.
    let src = temp_dir("meter-src");
    let sent = write_files(&src, &[0, 1, 4096, 1_000_000, 6 * 1024 * 1024 + 5]);
    let (src_s, back) = (src.to_str().unwrap(), temp_dir("meter-back"));
    rclone_as(&node, ACCESS_KEY, SECRET_KEY, &["mkdir", "kal:metered"]);
    let up = rclone_as(
        &node,
        ACCESS_KEY,
        SECRET_KEY,
        &[
            "copy",
            src_s,
            "kal:metered/tree",
            "--s3-upload-cutoff",
            "1M",
            "--s3-chunk-size",
            "5M",
            "--use-json-log",
            "-v",
        ],
    );
    assert_eq!(rclone_bytes(&up), sent, "rclone's own count");
    rclone_as(&node, ACCESS_KEY, SECRET_KEY, &["check", src_s, "kal:metered/tree"]);
    let t = wait_for(&node, "metered", "bytes_in", sent);
    assert_eq!(t["bytes_out"], 0, "check downloads nothing: {t}");

    node.restart();
    assert_eq!(totals(&node, "metered")["bytes_in"], sent, "after a clean restart");

    let down = rclone_as(
        &node,
        ACCESS_KEY,
        SECRET_KEY,
        &["copy", "kal:metered/tree", back.to_str().unwrap(), "--use-json-log", "-v"],
    );
    assert_eq!(rclone_bytes(&down), sent);
    let t = wait_for(&node, "metered", "bytes_out", sent);
    assert_eq!(t["bytes_in"], sent, "{t}");
    assert!(t["writes"].as_u64().unwrap() >= 5 && t["lists"].as_u64().unwrap() >= 1, "{t}");

    // aws-cli: a recursive copy and a 12 MiB multipart upload, then a range GET.
    let tree = temp_dir("meter-cli");
    let cli_bytes = write_files(&tree, &[10, 20_000, 300_000]);
    let big = tree.join("big.bin");
    std::fs::write(&big, bytes(99, 12 << 20)).unwrap();
    aws(&node, &["s3", "mb", "s3://metered-cli"]);
    aws(&node, &["s3", "cp", "--recursive", tree.join("d0").to_str().unwrap(), "s3://metered-cli/d0/"]);
    aws(&node, &["s3", "cp", "--recursive", tree.join("d1").to_str().unwrap(), "s3://metered-cli/d1/"]);
    aws(&node, &["s3", "cp", big.to_str().unwrap(), "s3://metered-cli/big.bin"]);
    let cli_in = cli_bytes + (12 << 20);
    wait_for(&node, "metered-cli", "bytes_in", cli_in);
    let part = tree.join("part.bin");
    aws(
        &node,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "metered-cli",
            "--key",
            "big.bin",
            "--range",
            "bytes=100-1099",
            part.to_str().unwrap(),
        ],
    );
    aws(&node, &["s3", "cp", "--recursive", "s3://metered-cli/d1/", tree.join("down").to_str().unwrap()]);
    // 1000 bytes of the range, then d1/f1.bin (20000 bytes).
    wait_for(&node, "metered-cli", "bytes_out", 1000 + 20_000);

    // A second user sees only its own buckets; the administrator sees all.
    let alt = sdk_with(&node.endpoint(), ALT_KEY, ALT_SECRET);
    rt().block_on(async {
        alt.create_bucket().bucket("metered-alt").send().await.unwrap();
        alt.put_object().bucket("metered-alt").key("k").body(b"12345".to_vec().into()).send().await.unwrap();
    });
    wait_for(&node, "metered-alt", "bytes_in", 5);
    let mine = usage_as(&node, ALT_KEY, ALT_SECRET, "");
    let names: Vec<_> = mine["buckets"].as_array().unwrap().iter().map(|b| b["bucket"].clone()).collect();
    assert_eq!(names, ["metered-alt"], "{mine}");
    assert_eq!(mine["users"][ALT_KEY]["bytes_in"], 5, "{mine}");
    let one = usage_as(&node, ACCESS_KEY, SECRET_KEY, "?bucket=metered-cli");
    assert_eq!(one["buckets"].as_array().unwrap().len(), 1, "{one}");
    let future = usage_as(&node, ACCESS_KEY, SECRET_KEY, "?since=2099-01-01T00:00:00Z");
    assert_eq!(future["buckets"].as_array().unwrap().len(), 0, "{future}");

    // kill -9 once a checkpoint has run: nothing counted before it is lost.
    let before = usage_as(&node, ACCESS_KEY, SECRET_KEY, "")["buckets"].clone();
    std::thread::sleep(Duration::from_millis(1500));
    node.crash_and_restart();
    assert_eq!(usage_as(&node, ACCESS_KEY, SECRET_KEY, "")["buckets"], before, "after kill -9");

    // Offline, from the checkpoints, after a clean stop.
    node.stop();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kaligon"));
    let out = Command::new(bin).args(["usage", "--data"]).arg(node.data_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["buckets"], before, "kaligon usage offline");
}

/// What a bucket holds (bytes of every version, versions, delete markers,
/// current objects), over several shards, kept through overwrites, deletes,
/// a multipart completion, kill -9 (rebuilt by recovery) and offline.
#[test]
fn stored_bytes_and_counts_follow_every_change() {
    let mut node = Node::start("meter-stored", &["--shards", "2"]);
    let rt = rt();
    let stored = |node: &Node| bucket_report(node, "held", "stored");
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("held").send().await.unwrap();
        let on = aws_sdk_s3::types::VersioningConfiguration::builder()
            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
            .build();
        c.put_bucket_versioning().bucket("held").versioning_configuration(on).send().await.unwrap();
        for (key, size) in [("a", 10), ("a", 20), ("a", 30), ("b", 5), ("c", 7)] {
            let body = aws_sdk_s3::primitives::ByteStream::from(bytes(size as u64, size));
            c.put_object().bucket("held").key(key).body(body).send().await.unwrap();
        }
        c.delete_object().bucket("held").key("b").send().await.unwrap();
        let vs = c.list_object_versions().bucket("held").prefix("c").send().await.unwrap();
        let vid = vs.versions()[0].version_id().unwrap().to_string();
        c.delete_object().bucket("held").key("c").version_id(vid).send().await.unwrap();
    });
    let want = serde_json::json!({"bytes": 65, "versions": 4, "delete_markers": 1, "objects": 1});
    assert_eq!(stored(&node), want, "a: 3 versions, b: a version under a marker, c: gone");
    node.crash_and_restart();
    assert_eq!(stored(&node), want, "after kill -9");
    node.stop();
    let out =
        Command::new(env!("CARGO_BIN_EXE_kaligon")).args(["usage", "--data"]).arg(node.data_dir()).output().unwrap();
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = offline["buckets"].as_array().unwrap().iter().find(|b| b["bucket"] == "held").unwrap();
    assert_eq!(b["stored"], want, "kaligon usage offline");
}
