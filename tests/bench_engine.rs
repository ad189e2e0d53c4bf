//! `kaligon bench-engine`: the engine under load without HTTP, as a real
//! process on real files. These tests check what the benchmark relies on
//! (bytes read back equal bytes written, results reported) and a hang it
//! found: shards that wake more tasks on each other than compio's wake-up
//! queue holds.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;

/// Runs `kaligon bench-engine ARGS --data DIR --json DIR/result.json`; fails
/// the test if it does not finish within `limit` (and kills it).
fn bench_engine(dir: &Path, args: &[&str], limit: Duration) -> (Output, String) {
    let data = dir.join("data");
    let json = dir.join("result.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaligon"))
        .arg("bench-engine")
        .args(args)
        .args(["--data", data.to_str().unwrap(), "--json", json.to_str().unwrap()])
        .env("KALIGON_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "bench-engine {args:?} did not finish within {limit:?} (hung)\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bench-engine {args:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.exists(), "the data directory is removed afterwards");
    (out, std::fs::read_to_string(json).unwrap())
}

/// A number field of the flat JSON result.
fn field(json: &str, name: &str) -> f64 {
    let at = json.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[at + name.len() + 3..];
    rest.split([',', '}']).next().unwrap().trim().parse().unwrap()
}

/// 1,024 commits in flight on 2 shards: acknowledging a group wakes hundreds
/// of tasks on the other core. With compio's default 64-entry cross-thread
/// wake-up queue both shard threads spun in sched_yield for ever, each
/// waiting for the other to drain its queue (every run of this test hung).
#[test]
fn many_commits_in_flight_never_deadlock_the_shards() {
    let dir = temp_dir("bench-engine-wake");
    let (_, json) =
        bench_engine(&dir, &["--shards", "2", "--size", "4KiB", "-c", "1024", "-d", "2s"], Duration::from_secs(90));
    assert!(field(&json, "ops") > 1024.0, "{json}");
    assert_eq!(field(&json, "errors"), 0.0, "{json}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Objects larger than one record, in the smallest segments allowed, read
/// back byte for byte through the engine's reader.
#[test]
fn engine_reads_return_the_bytes_written() {
    let dir = temp_dir("bench-engine-get");
    let (out, json) = bench_engine(
        &dir,
        &[
            "--workload",
            "get",
            "--verify",
            "--size",
            "1500000",
            "--objects",
            "24",
            "--segment-bytes",
            "4210688",
            "-c",
            "8",
            "-d",
            "1s",
        ],
        Duration::from_secs(90),
    );
    assert!(field(&json, "ops") > 0.0, "{json}");
    assert_eq!(field(&json, "errors"), 0.0, "{json}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("MiB/s"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A new segment every 63 records of 1 MiB, about ten a second, while writes
/// never pause. The preparer used to wait for 5 ms without writes before it
/// made a spare, so under such a load the writer created every segment
/// itself, with a fallocate and a directory sync on the shard's thread (all
/// of them, in every run). Now spares are handed over unfilled when writes
/// do not pause. A roll-over can still outrun the preparer when the journal
/// is slow to commit (each spare needs two syncs): with 32 MiB segments,
/// 1-9 of ~50 did in most runs and 22 of 49 in one, so this allows up to
/// three in four and only catches the old behaviour.
#[test]
fn sustained_writes_roll_over_onto_prepared_spares() {
    let dir = temp_dir("bench-engine-put");
    let (_, json) = bench_engine(
        &dir,
        &["--shards", "1", "--size", "1MiB", "--segment-bytes", "67239936", "-c", "4", "-d", "3s"],
        Duration::from_secs(90),
    );
    assert_eq!(field(&json, "errors"), 0.0, "{json}");
    let roll_overs = field(&json, "segments") - 1.0;
    assert!(roll_overs >= 8.0, "too few roll-overs to say anything: {json}");
    assert!(field(&json, "fallback_segments") * 4.0 < roll_overs * 3.0, "{json}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--aged` writes and deletes enough to fill the reuse pool before the
/// timed phase, which then writes into those reclaimed files first.
#[test]
fn an_aged_run_writes_into_reclaimed_segment_files() {
    let dir = temp_dir("bench-engine-aged");
    let (out, json) = bench_engine(
        &dir,
        &[
            "--shards",
            "1",
            "--size",
            "1MiB",
            "--segment-bytes",
            "8421376",
            "--segment-reuse-max",
            "4",
            "--aged",
            "-c",
            "4",
            "-d",
            "1s",
        ],
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(field(&json, "errors"), 0.0, "{json}");
    let waiting: u64 = stdout
        .split("files waiting for reuse per shard [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pool report: {stdout}"));
    assert!(waiting >= 4, "the pool did not fill: {stdout}");
    // An 8 MiB segment holds 7 records of 1 MiB. Every roll-over after the
    // first (which may take a spare made before the pool filled) goes into
    // a reclaimed file; a disk slowed to a few MiB/s (once on a loaded
    // 2-core run: 13 PUTs in the second) leaves fewer roll-overs to check.
    let rollovers = field(&json, "ops") as u64 / 7;
    let expected = rollovers.saturating_sub(1).min(4);
    assert!(field(&json, "reused_segments") >= expected as f64, "{expected} expected: {json}");
    let _ = std::fs::remove_dir_all(dir);
}
