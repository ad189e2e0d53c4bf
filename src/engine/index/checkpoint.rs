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

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh64::xxh64;

use super::map::Index;
use crate::engine::record::MetaOp;
use crate::engine::segment::format::FORMAT_VERSION;
use crate::engine::types::{SegmentId, ShardId};

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

/// Serialises the index; cheap enough to run on the shard thread (the file
/// write and syncs happen elsewhere).
pub fn encode(shard: ShardId, pos: Position, index: &Index) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&shard.0.to_le_bytes());
    out.extend_from_slice(&pos.next_seq.to_le_bytes());
    out.extend_from_slice(&pos.segment.0.to_le_bytes());
    out.extend_from_slice(&pos.offset.to_le_bytes());
    let mut push = |op: MetaOp| {
        let b = op.encode();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    };
    for (name, state) in index.owned_buckets() {
        push(MetaOp::PutBucket { name: name.clone(), state: state.clone() });
    }
    index.for_each_upload(|bucket, key, u| {
        let upload = Box::new(crate::engine::types::Upload { parts: Default::default(), ..u.clone() });
        push(MetaOp::CreateUpload { bucket: bucket.into(), key: key.into(), upload });
        for (number, part) in &u.parts {
            let (bucket, key) = (bucket.into(), key.into());
            push(MetaOp::PutPart { bucket, key, upload: u.id, number: *number, part: part.clone() });
        }
    });
    index.for_each_key(|bucket, key, versions| {
        for v in versions {
            push(MetaOp::PutVersion { bucket: bucket.into(), key: key.into(), version: v.clone() });
        }
    });
    let h = xxh64(&out, 0);
    out.extend_from_slice(&h.to_le_bytes());
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("checkpoint is truncated or its checksum does not match")]
    Checksum,
    #[error("checkpoint has an unknown magic or format version")]
    Format,
    #[error("checkpoint belongs to shard {0}")]
    WrongShard(u32),
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
/// removes all but the newest `KEEP`.
pub fn write(dir: &Path, next_seq: u64, bytes: &[u8]) -> std::io::Result<()> {
    let name = file_name(next_seq);
    let tmp = dir.join(format!("{name}.tmp"));
    let attempt = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
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
    for old in list(dir)?.into_iter().skip(KEEP) {
        fs::remove_file(old)?;
    }
    ensure_reserve(dir, bytes.len() as u64);
    Ok(())
}

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
