//! Walking away: a node filled by boto3 (versions, delete markers,
//! multipart with checksums, metadata, tags, odd keys) is stopped, checked,
//! exported, imported into a new node with another shard count, and both
//! nodes are compared through boto3, object by object; the same after
//! kill -9. An interrupted export goes on from its manifest; the offline
//! tools refuse a directory a node holds; a flipped bit is reported for
//! exactly its object; rclone --s3-versions and the export give the same
//! bytes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/clients/export_tool.py (boto3) against `node`.
fn boto3(node: &Node, args: &[&str]) {
    let mut cmd = Command::new(repo().join("target/clients/venv/bin/python"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    let work = node.dir.join("py");
    std::fs::create_dir_all(&work).unwrap();
    let out = cmd
        .arg("export_tool.py")
        .args(args)
        .current_dir(repo().join("tests/clients"))
        .env("KALIGON_ENDPOINT", node.endpoint())
        .env("KALIGON_ACCESS_KEY", ACCESS_KEY)
        .env("KALIGON_SECRET_KEY", SECRET_KEY)
        .env("KALIGON_WORK", &work)
        .output()
        .expect("the test venv (tests/clients/setup.sh)");
    assert!(out.status.success(), "export_tool.py {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Everything boto3 sees of `node`.
fn dump(node: &Node) -> Value {
    let path = node.dir.join("dump.json");
    boto3(node, &["dump", path.to_str().unwrap()]);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn kaligon(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaligon"));
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    cmd.output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn export(data: &Path, to: &Path, all_versions: bool) -> Output {
    let mut args = vec!["export"];
    if all_versions {
        args.push("--all-versions");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaligon"));
    cmd.args(args).arg("--data").arg(data).arg("--to").arg(to).output().unwrap()
}

/// Imports `from` into a fresh directory with 3 shards, starts a node on it
/// and returns what boto3 sees there.
fn import_and_dump(from: &Path, name: &str) -> Value {
    let dir = temp_dir(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaligon"));
    let out = cmd.arg("import").arg("--from").arg(from).arg("--data").arg(dir.join("data")).args([
        "--shards",
        "3",
        "--segment-bytes",
        "8388608",
    ]);
    ok_json(&out.output().unwrap());
    let node = Node::start_in(dir, &["--shards", "3"]);
    dump(&node)
}

fn md5_hex(path: &Path) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(std::fs::read(path).unwrap()))
}

fn manifest(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn latest<'a>(dump: &'a Value, bucket: &str, key: &str) -> &'a Value {
    dump[bucket]["versions"].as_array().unwrap().iter().find(|v| v["key"] == key && v["is_latest"] == true).unwrap()
}

#[test]
fn export_then_import_gives_the_same_node_after_a_stop_and_after_kill9() {
    let mut node = Node::start("export-src", &["--shards", "2"]);
    boto3(&node, &["fill"]);
    let before = dump(&node);
    let data = node.data_dir();
    let out_dir = node.dir.join("export");

    // A running node holds its directories: every offline tool says so.
    for args in [&["check", "--data"][..], &["usage", "--data"][..]] {
        let out = kaligon(args, &[&data]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is in use: a running node"), "{out:?}");
    }
    let out = export(&data, &out_dir, true);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("stop it first"), "{out:?}");
    assert!(!out_dir.join("manifest.jsonl").exists(), "nothing is written before the lock is held");

    node.stop();
    let report = ok_json(&kaligon(&["check", "--data"], &[&data]));
    assert_eq!(report["damaged"], Value::Array(vec![]), "{report}");
    let versions = report["versions"].as_u64().unwrap();
    assert!(versions >= 20, "{report}");

    let r = ok_json(&export(&data, &out_dir, true));
    assert_eq!(r["versions"].as_u64(), Some(versions), "{r}");
    assert_eq!(r["damaged"].as_u64(), Some(0));
    // Plain files with reversibly escaped names; each is the object's bytes.
    let m = manifest(&out_dir);
    for e in &m {
        let Some(path) = e["path"].as_str() else {
            assert_eq!(e["delete_marker"], true);
            continue;
        };
        if e["is_latest"] == true {
            let rel = path.strip_prefix(&format!("buckets/{}/", e["bucket"].as_str().unwrap())).unwrap();
            assert_eq!(kaligon::offline::export::path_key(rel).as_deref(), e["key"].as_str(), "{path}");
        }
        let file = out_dir.join(path);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), e["size"].as_u64().unwrap(), "{path}");
        if !e["etag"].as_str().unwrap().contains('-') {
            assert_eq!(format!("\"{}\"", md5_hex(&file)), e["etag"].as_str().unwrap(), "{path}");
        }
    }
    for (path, bucket, key) in [
        ("buckets/ver/a%obj", "ver", "a"),
        ("buckets/ver/a/b%obj", "ver", "a/b"),
        ("buckets/ver/a/b/c", "ver", "a/b/c"),
        ("buckets/ver/%2E%2E/x", "ver", "../x"),
        ("buckets/ver/dir/%_%obj", "ver", "dir/"),
        ("buckets/ver/mp", "ver", "mp"),
        ("buckets/plain/a%obj", "plain", "a"),
    ] {
        assert_eq!(md5_hex(&out_dir.join(path)), latest(&before, bucket, key)["md5"], "{path}");
    }
    let mp = m.iter().find(|e| e["key"] == "mp").unwrap();
    assert_eq!(mp["checksum"]["type"], "COMPOSITE");
    assert_eq!(mp["part_sizes"].as_array().unwrap().len(), 3);
    let a = m.iter().find(|e| e["key"] == "a" && e["bucket"] == "ver" && e["is_latest"] == true).unwrap();
    assert_eq!(a["tags"], serde_json::json!([["only", "one"]]));
    assert!(m.iter().any(|e| e["key"] == "gone" && e["delete_marker"] == true && e["is_latest"] == true));

    // Interrupted after a few versions, with a torn last line: run again.
    let whole = std::fs::read_to_string(out_dir.join("manifest.jsonl")).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    let cut = format!("{}\n{}", lines[..5].join("\n"), &lines[5][..lines[5].len() / 2]);
    std::fs::write(out_dir.join("manifest.jsonl"), cut).unwrap();
    std::fs::remove_file(out_dir.join("buckets/ver/mp")).unwrap();
    let r = ok_json(&export(&data, &out_dir, true));
    assert_eq!(r["resumed"].as_u64(), Some(5), "{r}");
    let mut again: Vec<&str> =
        std::fs::read_to_string(out_dir.join("manifest.jsonl")).unwrap().leak().lines().collect();
    let mut want = lines.clone();
    again.sort();
    want.sort();
    assert_eq!(again, want, "the resumed manifest lists every version once");
    assert_eq!(md5_hex(&out_dir.join("buckets/ver/mp")), latest(&before, "ver", "mp")["md5"]);

    assert_eq!(import_and_dump(&out_dir, "export-dst"), before, "the imported node differs");

    // kill -9 instead of a stop: what was acknowledged is exported.
    node.start_again();
    boto3(&node, &["more", "7"]);
    let before = dump(&node);
    node.kill9();
    let out2 = node.dir.join("export2");
    ok_json(&export(&data, &out2, true));
    assert_eq!(import_and_dump(&out2, "export-dst2"), before, "the node imported after kill -9 differs");

    // Without --all-versions: each key's current version only.
    let out3 = node.dir.join("export3");
    ok_json(&export(&data, &out3, false));
    let m3 = manifest(&out3);
    assert!(m3.iter().all(|e| e["is_latest"] == true && e["delete_marker"] == false));
    assert!(!out3.join("versions").exists());
    assert!(!m3.iter().any(|e| e["key"] == "gone"), "a deleted key is not exported");
}

#[test]
fn a_flipped_bit_is_reported_for_exactly_its_object() {
    let fixture = repo().join("tests/fixtures/flipped");
    let dir = temp_dir("export-flipped");
    assert!(Command::new("cp").arg("-r").arg(&fixture).arg(dir.join("data")).status().unwrap().success());
    let out_dir = dir.join("out");
    let out = export(&dir.join("data"), &out_dir, true);
    assert!(!out.status.success(), "an export with damage exits non-zero");
    let damaged = std::fs::read_to_string(out_dir.join("damaged.jsonl")).unwrap();
    let lines: Vec<Value> = damaged.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{damaged}");
    assert_eq!((lines[0]["bucket"].as_str(), lines[0]["key"].as_str()), (Some("fix"), Some("medium")));
    assert!(!out_dir.join("buckets/fix/medium").exists(), "a damaged object is never written");
    assert!(!out_dir.join("buckets/fix/medium%tmp").exists());
    let m = manifest(&out_dir);
    assert!(!m.iter().any(|e| e["key"] == "medium"));
    assert_eq!(m.iter().filter(|e| e["delete_marker"] == false).count(), 9, "every other version is exported");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rclone_versions_and_the_export_hold_the_same_bytes() {
    let mut node = Node::start("export-rclone", &[]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("rcl").send().await.unwrap();
        let on = aws_sdk_s3::types::VersioningConfiguration::builder()
            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
            .build();
        c.put_bucket_versioning().bucket("rcl").versioning_configuration(on).send().await.unwrap();
        for (i, (key, size)) in [
            ("docs/one.txt", 10),
            ("docs/one.txt", 2000),
            ("docs/two.bin", 3 << 20),
            ("docs/one.txt", 77),
            ("img/p", 5),
        ]
        .into_iter()
        .enumerate()
        {
            let body = aws_sdk_s3::primitives::ByteStream::from(bytes(i as u64, size));
            c.put_object().bucket("rcl").key(key).body(body).send().await.unwrap();
            // rclone names an old version by its time to the millisecond:
            // two versions of a key in one millisecond would get one name.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        c.delete_object().bucket("rcl").key("img/p").send().await.unwrap();
    });
    let local = node.dir.join("rclone");
    rclone_as(&node, ACCESS_KEY, SECRET_KEY, &["copy", "--s3-versions", "kal:rcl", local.to_str().unwrap()]);
    node.stop();
    let out_dir = node.dir.join("export");
    ok_json(&export(&node.data_dir(), &out_dir, true));
    let sums = |root: &Path| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for f in files_under(root, "") {
            *m.entry(md5_hex(&f)).or_default() += 1;
        }
        m
    };
    assert_eq!(
        sums(&local),
        sums(&out_dir.join("buckets/rcl")).into_iter().chain(sums(&out_dir.join("versions/rcl"))).fold(
            BTreeMap::new(),
            |mut acc, (k, n)| {
                *acc.entry(k).or_default() += n;
                acc
            }
        )
    );
    // The current versions at the same paths.
    for key in ["docs/one.txt", "docs/two.bin"] {
        assert_eq!(md5_hex(&local.join(key)), md5_hex(&out_dir.join("buckets/rcl").join(key)), "{key}");
    }
    assert_eq!(sums(&local).values().sum::<usize>(), 5, "rclone copied every version, markers aside");
}
