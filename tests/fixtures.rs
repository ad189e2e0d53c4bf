//! The checked-in data directories of tests/fixtures/ (made by an earlier
//! build with tests/fixtures/make.py) opened with today's code: what
//! `kaligon check` reports, and what a node started on each serves. A change
//! that makes today's code read yesterday's bytes differently fails here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The segment size the fixtures were written with (`make.py`).
const SEGMENT_BYTES: &str = "4210688";

fn fixture(name: &str) -> (PathBuf, Value) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expect: Value = serde_json::from_slice(&std::fs::read(here.join(format!("{name}.json"))).unwrap()).unwrap();
    // Recovery and a start change a directory (spares, checkpoints): work on a copy.
    let dir = temp_dir(&format!("fixture-{name}"));
    let status = Command::new("cp").arg("-r").arg(here.join(name)).arg(dir.join("data")).status().unwrap();
    assert!(status.success());
    (dir, expect)
}

/// Byte j of a fixture object with seed s (`make.py`).
fn body(seed: u64, size: u64) -> Vec<u8> {
    (0..size).map(|j| ((j * 31 + seed * 7) % 251) as u8).collect()
}

fn check(data: &Path) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kaligon")).args(["check", "--data"]).arg(data).output().unwrap();
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// Starts a node on the fixture and compares every bucket's versions and
/// every object's bytes with what the fixture was made with; `damaged` keys
/// must fail to read, never come back with wrong bytes; `absent` keys of
/// `fix` must not exist.
fn serves(dir: PathBuf, expect: &Value, damaged: &[&str], absent: &[&str]) {
    let node = Node::start_in(dir, &["--shards", "1", "--segment-bytes", SEGMENT_BYTES]);
    let rt = rt();
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        let objects = expect["objects"].as_array().unwrap();
        for bucket in ["fix", "plain"] {
            let listed = c.list_object_versions().bucket(bucket).send().await.unwrap();
            let mut got: Vec<(String, String)> = listed
                .versions()
                .iter()
                .map(|v| (v.key().unwrap().to_string(), v.version_id().unwrap().to_string()))
                .chain(
                    listed.delete_markers().iter().map(|m| (m.key().unwrap().into(), m.version_id().unwrap().into())),
                )
                .collect();
            let mut want: Vec<(String, String)> = objects
                .iter()
                .filter(|o| o["bucket"] == bucket)
                .map(|o| (s(&o["key"]).to_string(), s(&o["version_id"]).to_string()))
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "versions of {bucket}");
        }
        for o in objects.iter().filter(|o| o["delete_marker"] != true) {
            let (bucket, key, vid) = (s(&o["bucket"]), s(&o["key"]), s(&o["version_id"]));
            let r = c.get_object().bucket(bucket).key(key).version_id(vid).send().await;
            let got = match r {
                Ok(r) => {
                    assert_eq!(r.e_tag(), Some(s(&o["etag"])), "{bucket}/{key} {vid}");
                    r.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| format!("{e:?}"))
                }
                Err(e) => Err(format!("{e:?}")),
            };
            let want = body(o["seed"].as_u64().unwrap(), o["size"].as_u64().unwrap());
            if damaged.contains(&key) {
                assert!(got.is_err(), "{key}: damaged object served");
            } else {
                assert_eq!(got.as_ref().map(Vec::len), Ok(want.len()), "{bucket}/{key} {vid}");
                assert!(got.unwrap() == want, "{bucket}/{key} {vid}: bytes differ");
            }
        }
        let tagged = c.get_object_tagging().bucket("fix").key("tagged").send().await.unwrap();
        assert_eq!(tagged.tag_set()[0].key(), "kind");
        let head = c.head_object().bucket("fix").key("tagged").send().await.unwrap();
        assert_eq!(head.content_type(), Some("text/csv"));
        assert_eq!(head.metadata().unwrap()["owner"], "fixtures");
        let current = c.get_object().bucket("fix").key("deleted").send().await;
        assert!(current.is_err(), "the delete marker hides fix/deleted");
        for key in absent {
            let e = c.head_object().bucket("fix").key(*key).send().await.unwrap_err();
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404), "{key}");
        }
    });
}

#[test]
fn clean_fixture_checks_clean_and_serves_everything() {
    let (dir, expect) = fixture("clean");
    let (ok, r) = check(&dir.join("data"));
    assert!(ok, "{r}");
    assert_eq!(
        (r["keys"].as_u64(), r["versions"].as_u64(), r["delete_markers"].as_u64()),
        (Some(8), Some(10), Some(1))
    );
    assert_eq!((r["torn_records"].as_u64(), r["damaged_checkpoints"].as_u64()), (Some(0), Some(0)));
    assert_eq!(r["damaged"], Value::Array(vec![]));
    serves(dir, &expect, &[], &[]);
}

#[test]
fn torn_tail_loses_only_the_unfinished_write() {
    let (dir, expect) = fixture("torn");
    let (ok, r) = check(&dir.join("data"));
    // A torn tail is what a crash leaves, not damage: nothing acknowledged depends on it.
    assert!(ok, "{r}");
    assert!(r["torn_records"].as_u64().unwrap() >= 1, "the torn record is reported: {r}");
    assert_eq!(r["versions"].as_u64(), Some(10), "{r}");
    let lost = s(&expect["lost"][0]["key"]).to_string();
    serves(dir, &expect, &[], &[&lost]);
}

#[test]
fn damaged_checkpoint_falls_back_and_serves_everything() {
    let (dir, expect) = fixture("damaged-checkpoint");
    let (ok, r) = check(&dir.join("data"));
    assert!(!ok, "a damaged checkpoint makes check fail: {r}");
    assert_eq!(r["damaged_checkpoints"].as_u64(), Some(1), "{r}");
    assert_eq!(r["damaged"], Value::Array(vec![]), "every object is still whole: {r}");
    assert_eq!(r["versions"].as_u64(), Some(10), "{r}");
    serves(dir, &expect, &[], &[]);
}

#[test]
fn flipped_payload_bit_is_reported_and_never_served() {
    let (dir, expect) = fixture("flipped");
    let (ok, r) = check(&dir.join("data"));
    assert!(!ok, "{r}");
    let damaged = r["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{r}");
    assert_eq!((s(&damaged[0]["bucket"]), s(&damaged[0]["key"])), ("fix", "medium"));
    let medium = expect["objects"].as_array().unwrap().iter().find(|o| o["key"] == "medium").unwrap();
    assert_eq!(damaged[0]["version"], medium["version_id"]);
    assert!(s(&damaged[0]["why"]).contains("checksum"), "{r}");
    serves(dir, &expect, &["medium"], &[]);
}

/// Data from a newer format version is refused with a clear message,
/// never read as damage (a skipped segment holds nothing live and would be
/// deleted by compaction; a skipped checkpoint would be replaced).
#[test]
fn a_newer_format_version_is_refused_not_skipped() {
    use xxhash_rust::xxh64::xxh64;
    let bump_segment = |data: &Path| {
        let path = data.join("shard-000/seg-0000000000");
        let mut b = std::fs::read(&path).unwrap();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let h = xxh64(&b[0..32], 0);
        b[32..40].copy_from_slice(&h.to_le_bytes());
        std::fs::write(&path, b).unwrap();
    };
    let bump_checkpoint = |data: &Path| {
        let newest = files_under(&data.join("shard-000"), "ckpt-").into_iter().max().unwrap();
        let mut b = std::fs::read(&newest).unwrap();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let n = b.len() - 8;
        let h = xxh64(&b[..n], 0);
        b[n..].copy_from_slice(&h.to_le_bytes());
        std::fs::write(&newest, b).unwrap();
    };
    for (what, bump) in [("segment", &bump_segment as &dyn Fn(&Path)), ("checkpoint", &bump_checkpoint)] {
        let (dir, _) = fixture("clean");
        let data = dir.join("data");
        bump(&data);
        let out = Command::new(env!("CARGO_BIN_EXE_kaligon")).args(["check", "--data"]).arg(&data).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(err.contains("format version 2; this kaligon reads version 1"), "{what}: {err}");
        let out = Command::new(env!("CARGO_BIN_EXE_kaligon"))
            .args(["serve", "--shards", "1", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("KALIGON_ACCESS_KEY", ACCESS_KEY)
            .env("KALIGON_SECRET_KEY", SECRET_KEY)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what}: a node must not start on newer data");
        assert!(String::from_utf8_lossy(&out.stderr).contains("format version 2"), "{what}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// docs/FORMAT.md is enough to read the data without Kaligon's code:
/// tests/format_reader.py, written from the document alone, lists every
/// fixture's versions and reads their bytes as the fixtures' JSON says.
#[test]
fn an_independent_reader_written_from_format_md_reads_the_fixtures() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(repo.join("tests/format_reader.py"))
        .arg("--check-fixtures")
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
