//! Engine benchmarks without the network: index insert/lookup/list rates,
//! memory per object, checkpoint encode/decode, and recovery of a shard
//! with N objects (checkpoint + log tail). `cargo bench --bench engine`
//! runs the full sizes (1M objects); under `cargo test` it runs once with
//! small sizes so it cannot rot. Prints one JSON line per measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kaligon::engine::index::checkpoint::{self, Position};
use kaligon::engine::index::map::{Index, ListQuery};
use kaligon::engine::record::MetaOp;
use kaligon::engine::segment::format::{RecordHeader, RecordKind, SegmentHeader, packed_len, payload_hash};
use kaligon::engine::types::{ETag, Extent, ObjectMeta, SegmentId, ShardId, Version, VersionId};

/// Counts live heap bytes, to measure the index's memory per object.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(i: u64) -> String {
    // Keys shaped like real ones: a few path levels, ~40 bytes.
    format!("photos/{:04}/{:02}/img-{:012}.jpg", 2000 + i % 25, i % 12, i)
}

fn version(i: u64) -> Version {
    Version {
        id: VersionId::NULL,
        seq: i,
        mtime_ms: 1_700_000_000_000 + i as i64,
        size: 4096 + i % 1000,
        etag: ETag { md5: [i as u8; 16], parts: 0 },
        delete_marker: false,
        extents: vec![Extent { segment: SegmentId(i / 50_000), offset: 4096 + (i % 50_000) * 8192, len: 4096 }].into(),
        meta: ObjectMeta { content_type: Some("image/jpeg".into()), ..Default::default() }.into(),
    }
}

fn put(i: u64) -> MetaOp {
    MetaOp::PutVersion { bucket: "bench".into(), key: key(i), version: version(i) }
}

fn report(name: &str, n: u64, secs: f64, extra: &str) {
    println!("{{\"bench\":\"{name}\",\"n\":{n},\"seconds\":{secs:.4},\"per_second\":{:.0}{extra}}}", n as f64 / secs);
}

fn index_benches(n: u64) -> Index {
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut ix = Index::default();
    for i in 0..n {
        ix.apply(&put(i));
    }
    report("index_insert", n, t.elapsed().as_secs_f64(), "");
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let (objects, key_bytes) = ix.stats();
    let per = (bytes - key_bytes) as f64 / objects as f64;
    println!(
        "{{\"bench\":\"index_memory\",\"objects\":{objects},\"heap_bytes\":{bytes},\"key_bytes\":{key_bytes},\"bytes_per_object_excluding_key\":{per:.1}}}"
    );
    let t = Instant::now();
    let mut found = 0;
    for i in 0..n {
        found += ix.current("bench", &key(i * 7919 % n)).is_some() as u64;
    }
    assert_eq!(found, n);
    report("index_lookup", n, t.elapsed().as_secs_f64(), "");
    let t = Instant::now();
    let mut listed = 0u64;
    let mut after = Vec::new();
    loop {
        let page = ix.list(
            "bench",
            &ListQuery { prefix: "photos/".into(), after: after.clone(), limit: 1000, ..Default::default() },
        );
        let Some(last) = page.last() else { break };
        after = last.name().as_bytes().to_vec();
        listed += page.len() as u64;
    }
    assert_eq!(listed, n);
    report("index_list_keys", listed, t.elapsed().as_secs_f64(), "");
    ix
}

/// Writes a log tail of `n` objects into segment 0 of `dir`: for each, a
/// small data record and the PutVersion record naming it (replay applies a
/// change only if its data is in the log).
fn write_tail(dir: &std::path::Path, first: u64, n: u64, next_seq: u64) -> u64 {
    let mut bytes = vec![0u8; 4096];
    let seg_size = 1u64 << 30;
    SegmentHeader { shard: 0, segment: 0, size: seg_size }.encode(&mut bytes);
    let mut seq = next_seq;
    let mut record = |bytes: &mut Vec<u8>, kind: RecordKind, payload: &[u8]| {
        let at = bytes.len();
        bytes.resize(at + packed_len(payload.len()), 0);
        RecordHeader {
            kind,
            payload_len: payload.len() as u32,
            segment_low: 0,
            seq,
            payload_hash: payload_hash(payload),
        }
        .encode(&mut bytes[at..at + 40]);
        bytes[at + 40..at + 40 + payload.len()].copy_from_slice(payload);
        seq += 1;
        at as u64
    };
    for i in first..first + n {
        let data = [i as u8; 100];
        let offset = record(&mut bytes, RecordKind::Data, &data);
        let mut v = version(i);
        v.size = data.len() as u64;
        v.extents = vec![Extent { segment: SegmentId(0), offset, len: data.len() as u64 }].into();
        let op = MetaOp::PutVersion { bucket: "bench".into(), key: key(i), version: v };
        record(&mut bytes, RecordKind::Meta, &op.encode());
    }
    bytes.resize(bytes.len().next_multiple_of(4096) + 8192, 0);
    let mut f = std::fs::File::create(dir.join("seg-0000000000")).unwrap();
    f.write_all(&bytes).unwrap();
    f.set_len(seg_size.max(bytes.len() as u64)).unwrap();
    seq
}

fn recovery_bench(ix: &Index, n: u64, tail: u64) {
    let dir = std::env::temp_dir().join(format!("kaligon-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pos = Position { next_seq: n, segment: SegmentId(0), offset: 4096 };
    let t = Instant::now();
    let bytes = checkpoint::encode(ShardId(0), pos, ix);
    report("checkpoint_encode", n, t.elapsed().as_secs_f64(), &format!(",\"checkpoint_bytes\":{}", bytes.len()));
    checkpoint::write(&dir, pos.next_seq, &bytes).unwrap();
    write_tail(&dir, n, tail, n);
    let t = Instant::now();
    let r = kaligon::engine::recover::recover(&dir, ShardId(0)).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.index.stats().0 as u64, n + tail);
    assert_eq!(r.report.replayed_ops, tail);
    report("recovery", n + tail, secs, &format!(",\"checkpointed\":{n},\"replayed\":{tail}"));
    black_box(r);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1_000_000 } else { 20_000 };
    let tail = n / 10;
    let ix = index_benches(n);
    recovery_bench(&ix, n, tail);
}
