//! Checkpoints: a shard's whole index written to one file, so recovery only
//! replays the log written after it.
//!
//! File `ckpt-<next_seq:020>` in the shard directory, little-endian:
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KLGNCKP1` |
//! | 8 | 4 | format version (`segment::format::FORMAT_VERSION`) |
//! | 12 | 4 | shard id |
//! | 16 | 8 | next sequence number of the shard |
//! | 24 | 8 | replay start: segment id |
//! | 32 | 8 | replay start: offset in that segment |
//! | 40 | … | entries: `u32 length` + a metadata record payload (`engine::record`), repeated |
//! | end-8 | 8 | xxh64 (seed 0) of every byte before it |
//!
//! A checkpoint is written to `*.tmp`, synced, renamed, and the directory
//! synced; the two newest are kept, and loading takes the newest one whose
//! checksum holds.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh64::xxh64;

use super::map::Index;
use crate::engine::record::MetaOp;
use crate::engine::segment::format::FORMAT_VERSION;
use crate::engine::types::{SegmentId, ShardId, Version};

const MAGIC: &[u8; 8] = b"KLGNCKP1";
const HEADER_BYTES: usize = 40;
/// How many checkpoint files are kept (the newest may be torn by a crash).
pub const KEEP: usize = 2;

/// Where replay starts and which sequence number comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub next_seq: u64,
    pub segment: SegmentId,
    pub offset: u64,
}

/// Serialises the whole index at once (tests and benchmarks; the shard uses
/// [`Walk`] so that big indexes do not hold its requests).
pub fn encode(shard: ShardId, pos: Position, index: &Index) -> Vec<u8> {
    let mut walk = Walk::begin(shard, pos, index);
    while !walk.step(index, usize::MAX) {}
    walk.finish()
}

fn push(out: &mut Vec<u8>, op: &MetaOp) {
    let b = op.encode();
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(&b);
}

fn push_key(out: &mut Vec<u8>, bucket: &str, key: &str, versions: Vec<Version>) {
    for version in versions {
        push(out, &MetaOp::PutVersion { bucket: bucket.into(), key: key.into(), version });
    }
}

/// A checkpoint encoded a slice of keys at a time while the shard goes on
/// committing: encoding a shard of 500k objects in one go held its requests
/// for 340-460 ms on the development VM.
///
/// The file still holds the index exactly as it was when the walk began
/// (its replay start): buckets and uploads are encoded at once (few), then
/// keys in order, bucket by bucket. Before the shard changes a key the walk
/// has not reached, [`Walk::before_change`] encodes that key's versions as
/// they still are, and the walk skips the keys saved that way. A key of a
/// bucket that had no keys when the walk began did not exist then, so it
/// needs nothing. Each key ends up in the file once, in its state at the
/// start; entries are independent, so their order does not matter.
pub struct Walk {
    pub pos: Position,
    out: Vec<u8>,
    /// Buckets with keys when the walk began, sorted.
    buckets: Vec<String>,
    /// The bucket being walked (an index into `buckets`).
    at: usize,
    /// The last key of `buckets[at]` walked.
    after: Option<Vec<u8>>,
    /// Per bucket: keys ahead of the walk already saved by `before_change`.
    saved: Vec<HashSet<Box<[u8]>>>,
}

impl Walk {
    pub fn begin(shard: ShardId, pos: Position, index: &Index) -> Walk {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&shard.0.to_le_bytes());
        out.extend_from_slice(&pos.next_seq.to_le_bytes());
        out.extend_from_slice(&pos.segment.0.to_le_bytes());
        out.extend_from_slice(&pos.offset.to_le_bytes());
        for (name, state) in index.owned_buckets() {
            push(&mut out, &MetaOp::PutBucket { name: name.clone(), state: state.clone() });
        }
        for (bucket, user, hour, usage) in index.usage_since(0) {
            push(&mut out, &MetaOp::Usage { bucket, user, hour, usage });
        }
        index.for_each_upload(|bucket, key, u| {
            let upload = Box::new(crate::engine::types::Upload { parts: Default::default(), ..u.clone() });
            push(&mut out, &MetaOp::CreateUpload { bucket: bucket.into(), key: key.into(), upload });
            for (number, part) in &u.parts {
                let (bucket, key) = (bucket.into(), key.into());
                push(&mut out, &MetaOp::PutPart { bucket, key, upload: u.id, number: *number, part: part.clone() });
            }
        });
        let buckets = index.key_buckets();
        let saved = vec![HashSet::new(); buckets.len()];
        Walk { pos, out, buckets, at: 0, after: None, saved }
    }

    /// Encodes up to `keys` more keys; true when every key is done.
    pub fn step(&mut self, index: &Index, keys: usize) -> bool {
        let mut left = keys;
        while let Some(bucket) = self.buckets.get(self.at) {
            let mut last = None;
            for (key, versions) in index.keys_after(bucket, self.after.as_deref()) {
                if left == 0 {
                    break;
                }
                left -= 1;
                if !self.saved[self.at].contains(key.as_bytes()) {
                    push_key(&mut self.out, bucket, key, versions);
                }
                last = Some(key);
            }
            match last {
                Some(key) if left == 0 => {
                    self.after = Some(key.as_bytes().to_vec());
                    return false;
                }
                // This bucket is done (possibly exactly at the budget).
                _ => {
                    self.at += 1;
                    self.after = None;
                    if left == 0 {
                        return self.at >= self.buckets.len();
                    }
                }
            }
        }
        true
    }

    /// Call before applying `op` to `index`: keeps the state the walk must
    /// record for a key it has not reached yet.
    pub fn before_change(&mut self, index: &Index, op: &MetaOp) {
        let (bucket, key) = match op {
            MetaOp::PutVersion { bucket, key, .. }
            | MetaOp::DeleteVersion { bucket, key, .. }
            | MetaOp::CompleteUpload { bucket, key, .. } => (bucket, key),
            // Buckets and uploads were encoded when the walk began.
            _ => return,
        };
        let Ok(b) = self.buckets.binary_search(bucket) else {
            return; // no keys then: every key of it is new
        };
        let walked = b < self.at || (b == self.at && self.after.as_deref().is_some_and(|a| key.as_bytes() <= a));
        if walked || !self.saved[b].insert(key.as_bytes().into()) {
            return;
        }
        push_key(&mut self.out, bucket, key, index.versions(bucket, key));
    }

    /// Keys saved ahead of the walk so far.
    pub fn saved_keys(&self) -> usize {
        self.saved.iter().map(HashSet::len).sum()
    }

    /// The finished file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let h = xxh64(&self.out, 0);
        self.out.extend_from_slice(&h.to_le_bytes());
        self.out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("checkpoint is truncated or its checksum does not match")]
    Checksum,
    #[error("checkpoint has an unknown magic or format version")]
    Format,
    #[error("checkpoint belongs to shard {0}")]
    WrongShard(u32),
    #[error(
        "checkpoint was written in on-disk format version {0}; this kaligon reads version {FORMAT_VERSION}: run the newer kaligon that wrote it"
    )]
    NewerFormat(u32),
    #[error("checkpoint entry is malformed")]
    Entry,
}

/// Parses and verifies a checkpoint into an index.
pub fn decode(shard: ShardId, b: &[u8]) -> Result<(Position, Index), DecodeError> {
    if b.len() < HEADER_BYTES + 8 {
        return Err(DecodeError::Checksum);
    }
    let (body, tail) = b.split_at(b.len() - 8);
    if xxh64(body, 0).to_le_bytes() != tail {
        return Err(DecodeError::Checksum);
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    if &body[0..8] == MAGIC && u32_at(8) > FORMAT_VERSION {
        return Err(DecodeError::NewerFormat(u32_at(8)));
    }
    if &body[0..8] != MAGIC || u32_at(8) != FORMAT_VERSION {
        return Err(DecodeError::Format);
    }
    if u32_at(12) != shard.0 {
        return Err(DecodeError::WrongShard(u32_at(12)));
    }
    let pos = Position { next_seq: u64_at(16), segment: SegmentId(u64_at(24)), offset: u64_at(32) };
    let mut index = Index::default();
    let mut at = HEADER_BYTES;
    while at < body.len() {
        let len = body.get(at..at + 4).ok_or(DecodeError::Entry)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let entry = body.get(at + 4..at + 4 + len).ok_or(DecodeError::Entry)?;
        index.apply(&MetaOp::decode(entry).map_err(|_| DecodeError::Entry)?);
        at += 4 + len;
    }
    Ok((pos, index))
}

fn file_name(next_seq: u64) -> String {
    format!("ckpt-{next_seq:020}")
}

/// Checkpoint files in `dir`, newest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ckpt-") && !n.ends_with(".tmp") && n != RESERVE)
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Writes a checkpoint durably (blocking; run off the shard thread) and
/// removes all but the newest `KEEP`. Returns the replay-start segments of
/// the checkpoints left on disk, read back from their files: a checkpoint
/// whose name repeats the newest one's (no sequence number used since, as
/// at a start after a clean stop) replaces that file, so counting the
/// checkpoints written would forget an older one still kept, and let
/// compaction delete segments that one replays.
pub fn write(dir: &Path, next_seq: u64, bytes: &[u8]) -> std::io::Result<Vec<SegmentId>> {
    let name = file_name(next_seq);
    let tmp = dir.join(format!("{name}.tmp"));
    let attempt = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        // In steps with a sync after each, so that no more than a step of
        // dirty pages waits for the disk at once: one 80 MB write and sync
        // held the shard's own fdatasyncs behind it (PUT max 140 ms).
        for piece in bytes.chunks(WRITE_STEP_BYTES) {
            f.write_all(piece)?;
            f.sync_data()?;
        }
        f.sync_all()
    };
    match attempt() {
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && fs::remove_file(dir.join(RESERVE)).is_ok() => {
            // The disk is full: give up the reserve so the checkpoint that
            // lets reclaimed segments go can still be written.
            tracing::warn!(dir = %dir.display(), "disk full: using the checkpoint reserve");
            attempt()?;
        }
        r => r?,
    }
    fs::rename(&tmp, dir.join(&name))?;
    fs::File::open(dir)?.sync_all()?;
    let all = list(dir)?;
    for old in all.iter().skip(KEEP) {
        fs::remove_file(old)?;
    }
    ensure_reserve(dir, bytes.len() as u64);
    Ok(all.iter().take(KEEP).map(|p| replay_segment(p)).collect())
}

/// Bytes of a checkpoint written between syncs.
const WRITE_STEP_BYTES: usize = 4 << 20;

/// A preallocated file released when a checkpoint finds the disk full.
const RESERVE: &str = "ckpt-reserve";

/// Keeps a reserve of twice the last checkpoint's size (at least 4 MiB);
/// failing to make one (a full disk) is not an error.
pub fn ensure_reserve(dir: &Path, checkpoint_bytes: u64) {
    let want = (2 * checkpoint_bytes).max(4 << 20);
    let path = dir.join(RESERVE);
    if fs::metadata(&path).is_ok_and(|m| m.len() >= want) {
        return;
    }
    let made = fs::OpenOptions::new().write(true).create(true).truncate(false).open(&path).and_then(|f| {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an fd we own.
        match unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, want as libc::off_t) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    if made.is_err() {
        let _ = fs::remove_file(&path);
    }
}

/// The replay start recorded in a checkpoint file's header (not verified:
/// a damaged header reads as segment 0, which only makes reclamation wait).
pub fn replay_segment(path: &Path) -> SegmentId {
    let mut head = [0u8; HEADER_BYTES];
    let ok = fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok();
    if !ok || &head[0..8] != MAGIC {
        return SegmentId(0);
    }
    SegmentId(u64::from_le_bytes(head[24..32].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::{BucketState, ETag, Version, VersionId};

    fn sample() -> Index {
        let mut ix = Index::default();
        ix.apply(&MetaOp::PutBucket { name: "b".into(), state: BucketState::default() });
        for i in 0..50u64 {
            ix.apply(&MetaOp::PutVersion {
                bucket: "b".into(),
                key: format!("k{i}"),
                version: Version {
                    id: VersionId(i as u128),
                    seq: i,
                    mtime_ms: 1,
                    size: i,
                    etag: ETag::default(),
                    delete_marker: false,
                    extents: Box::new([]),
                    meta: Default::default(),
                },
            });
        }
        ix
    }

    #[test]
    fn round_trip() {
        let pos = Position { next_seq: 51, segment: SegmentId(2), offset: 8192 };
        let b = encode(ShardId(1), pos, &sample());
        let (p, ix) = decode(ShardId(1), &b).unwrap();
        assert_eq!(p, pos);
        assert_eq!(ix.stats(), sample().stats());
        assert_eq!(ix.owned_buckets().len(), 1);
        assert_eq!(decode(ShardId(0), &b).err(), Some(DecodeError::WrongShard(1)));
    }

    /// A checkpoint taken with no sequence number used since the newest
    /// one (a start after a clean stop) has the newest one's name and
    /// replaces it: the kept replay starts are those of the files left, so
    /// the older checkpoint's segments stay protected.
    #[test]
    fn a_repeated_name_keeps_the_older_checkpoints_replay_start() {
        let dir = std::env::temp_dir().join(format!("kaligon-ckpt-names-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let ix = sample();
        let at = |next_seq, segment| {
            encode(ShardId(0), Position { next_seq, segment: SegmentId(segment), offset: 4096 }, &ix)
        };
        assert_eq!(write(&dir, 5, &at(5, 1)).unwrap(), vec![SegmentId(1)]);
        assert_eq!(write(&dir, 9, &at(9, 3)).unwrap(), vec![SegmentId(3), SegmentId(1)]);
        // Same name, later start (a fresh segment after the restart).
        assert_eq!(write(&dir, 9, &at(9, 4)).unwrap(), vec![SegmentId(4), SegmentId(1)]);
        assert_eq!(list(&dir).unwrap().len(), 2);
        assert_eq!(write(&dir, 12, &at(12, 6)).unwrap(), vec![SegmentId(6), SegmentId(4)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn version(id: u64) -> Version {
        Version {
            id: VersionId(id as u128),
            seq: id,
            mtime_ms: id as i64,
            size: id,
            etag: ETag::default(),
            delete_marker: false,
            extents: Box::new([]),
            meta: Default::default(),
        }
    }

    fn dump(ix: &Index) -> Vec<(String, String, Vec<Version>)> {
        let mut all = Vec::new();
        ix.for_each_key(|b, k, v| all.push((b.to_string(), k.to_string(), v.to_vec())));
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    /// A walk interleaved with changes (new versions, deleted versions and
    /// keys, new keys behind and ahead of it, a new bucket) records the
    /// index exactly as it was when it began.
    #[test]
    fn a_walk_records_the_index_as_it_began() {
        for seed in 1..=20u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut ix = Index::default();
            let mut id = 0u64;
            for b in 0..3 {
                for k in 0..150 {
                    for _ in 0..1 + next(3) {
                        id += 1;
                        let op = MetaOp::PutVersion {
                            bucket: format!("b{b}"),
                            key: format!("k{k:03}"),
                            version: version(id),
                        };
                        ix.apply(&op);
                    }
                }
            }
            let before = dump(&ix);
            let pos = Position { next_seq: id + 1, segment: SegmentId(3), offset: 4096 };
            let mut walk = Walk::begin(ShardId(0), pos, &ix);
            while !walk.step(&ix, 1 + next(40) as usize) {
                for _ in 0..next(12) {
                    let bucket = format!("b{}", next(4)); // b3 had no keys when the walk began
                    let key = format!("k{:03}", next(170)); // k150.. are new keys
                    let op = match ix.versions(&bucket, &key).first() {
                        Some(v) if next(2) == 0 => MetaOp::DeleteVersion { bucket, key, id: v.id },
                        _ => {
                            id += 1;
                            MetaOp::PutVersion { bucket, key, version: version(id) }
                        }
                    };
                    walk.before_change(&ix, &op);
                    ix.apply(&op);
                }
            }
            let (p, decoded) = decode(ShardId(0), &walk.finish()).unwrap();
            assert_eq!(p, pos);
            assert!(dump(&decoded) == before, "seed {seed}: the checkpoint differs from the index at its start");
            assert!(dump(&ix) != before, "seed {seed}: the test changed nothing");
        }
    }

    #[test]
    fn any_corruption_is_detected() {
        let pos = Position { next_seq: 1, segment: SegmentId(0), offset: 4096 };
        let b = encode(ShardId(0), pos, &sample());
        for i in (0..b.len()).step_by(7) {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode(ShardId(0), &c).is_err(), "flip at {i} undetected");
        }
        assert!(decode(ShardId(0), &b[..b.len() - 1]).is_err());
    }

    #[test]
    fn keeps_the_newest_two() {
        let dir = std::env::temp_dir().join(format!("kaligon-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for seq in [5u64, 9, 12] {
            write(&dir, seq, b"x").unwrap();
        }
        let names: Vec<String> =
            list(&dir).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec![file_name(12), file_name(9)]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
