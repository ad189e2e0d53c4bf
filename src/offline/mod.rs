//! Working on data directories without a running node: `kaligon check`,
//! `kaligon export`, `kaligon import` and `kaligon usage` (docs/FORMAT.md).
//!
//! A node holds an exclusive lock on `kaligon.lock` in every data directory
//! while it runs; the offline tools take the same lock, so neither can start
//! while the other has the directories.

pub mod check;
pub mod export;
pub mod import;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::engine::recover::{RecoveryReport, recover};
use crate::engine::segment::format::{RECORD_HEADER_BYTES, RecordHeader, RecordKind, payload_hash};
use crate::engine::segment::log::segment_path;
use crate::engine::types::{BucketState, Extent, ShardId, Version};
use crate::runtime::md5::Md5;
use crate::s3::checksum::Hasher;

/// The lock file a node holds in each data directory.
pub const LOCK_FILE: &str = "kaligon.lock";

/// Takes the exclusive lock of every data directory (creating them), or
/// says which one a running node (or another offline tool) holds. The
/// locks last as long as the returned files.
pub fn lock(data: &[PathBuf]) -> Result<Vec<File>, String> {
    let mut held = Vec::new();
    for dir in data {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match f.try_lock() {
            Ok(()) => held.push(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "{} is in use: a running node (or another kaligon tool) holds {}; stop it first",
                    dir.display(),
                    path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
    Ok(held)
}

/// The shard count recorded in a first data directory's `kaligon-layout`
/// (None: the file does not parse).
pub fn layout_shards(first: &Path) -> std::io::Result<Option<usize>> {
    let text = std::fs::read_to_string(first.join("kaligon-layout"))?;
    Ok(text.trim().strip_prefix("shards=").and_then(|n| n.parse().ok()))
}

/// One shard as recovery sees it.
pub struct ShardData {
    pub id: ShardId,
    pub dir: PathBuf,
    pub index: crate::engine::index::map::Index,
    pub report: RecoveryReport,
}

/// The data directories of a stopped node, recovered read-only (the lock
/// is held until this is dropped).
pub struct Store {
    pub shards: Vec<ShardData>,
    _locks: Vec<File>,
}

impl Store {
    pub fn open(data: Vec<PathBuf>) -> Result<Store, String> {
        let first = data.first().ok_or("at least one --data directory is needed")?;
        let shards = layout_shards(first)
            .map_err(|e| format!("{} is not a Kaligon data directory: {e}", first.display()))?
            .ok_or_else(|| format!("unreadable kaligon-layout in {}", first.display()))?;
        let locks = lock(&data)?;
        let config = crate::config::Config { data, shards, ..Default::default() };
        let mut out = Vec::new();
        for (i, dir) in config.shard_dirs().into_iter().enumerate() {
            let id = ShardId(i as u32);
            let r = recover(&dir, id).map_err(|e| format!("shard {i} ({}): {e}", dir.display()))?;
            out.push(ShardData { id, dir, index: r.index, report: r.report });
        }
        Ok(Store { shards: out, _locks: locks })
    }

    /// Every bucket (each is owned by exactly one shard).
    pub fn buckets(&self) -> BTreeMap<String, BucketState> {
        let mut all = BTreeMap::new();
        for s in &self.shards {
            for (name, state) in s.index.owned_buckets() {
                all.insert(name.clone(), state.clone());
            }
        }
        all
    }

    /// Every key of every bucket in key order, with its versions (newest
    /// first) and the directory of the shard holding them.
    pub fn keys(&self) -> BTreeMap<(String, String), (usize, Vec<Version>)> {
        let mut all = BTreeMap::new();
        for (i, s) in self.shards.iter().enumerate() {
            s.index.for_each_key(|bucket, key, versions| {
                all.insert((bucket.to_string(), key.to_string()), (i, versions.to_vec()));
            });
        }
        all
    }
}

/// Reads one version's bytes out of its shard's segment files, checking
/// every record (header, place, payload checksum), then the ETag (the MD5
/// of the body, or of the parts' MD5s) and the stored S3 checksum against
/// the bytes read. `sink` sees the bytes in order; on damage the error says
/// what and where, and what `sink` saw must be thrown away.
pub fn read_verified(
    dir: &Path,
    v: &Version,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), String> {
    let meta = v.meta.get();
    let mut files: BTreeMap<u64, File> = BTreeMap::new();
    let parts = &meta.part_sizes;
    let composite = meta.checksum.as_ref().is_some_and(|c| c.parts > 0);
    // The whole body's MD5 and FULL_OBJECT checksum; each part's MD5 and
    // (COMPOSITE) checksum, cut at the part boundaries.
    let mut md5 = Md5::new();
    let mut whole = meta.checksum.as_ref().filter(|_| !composite).map(|c| Hasher::new(c.algo));
    let (mut part_md5, mut part_sum) = (Md5::new(), meta.checksum.as_ref().map(|c| Hasher::new(c.algo)));
    let (mut part_md5s, mut part_sums) = (Vec::new(), Vec::new());
    let (mut part, mut left) = (0usize, parts.first().copied().unwrap_or(u64::MAX));
    let mut total = 0u64;
    let mut buf = Vec::new();
    for rec in v.extents.iter().flat_map(|e: &Extent| e.records()) {
        if let std::collections::btree_map::Entry::Vacant(e) = files.entry(rec.segment.0) {
            let path = segment_path(dir, rec.segment);
            e.insert(File::open(&path).map_err(|e| format!("segment {}: {e}", path.display()))?);
        }
        let f = &files[&rec.segment.0];
        buf.resize(RECORD_HEADER_BYTES + rec.len as usize, 0);
        f.read_exact_at(&mut buf, rec.offset)
            .map_err(|e| format!("segment {} offset {}: {e}", rec.segment.0, rec.offset))?;
        let h = RecordHeader::decode(&buf[..RECORD_HEADER_BYTES])
            .map_err(|_| format!("segment {} offset {}: bad record header", rec.segment.0, rec.offset))?;
        if h.kind != RecordKind::Data || h.payload_len as u64 != rec.len || h.segment_low != rec.segment.0 as u32 {
            return Err(format!(
                "segment {} offset {}: record header does not match the index",
                rec.segment.0, rec.offset
            ));
        }
        let payload = &buf[RECORD_HEADER_BYTES..];
        if payload_hash(payload) != h.payload_hash {
            return Err(format!("segment {} offset {}: payload checksum mismatch", rec.segment.0, rec.offset));
        }
        total += rec.len;
        md5.update(payload);
        if let Some(s) = &mut whole {
            s.update(payload);
        }
        let mut rest = payload;
        while !rest.is_empty() && !parts.is_empty() {
            let n = (rest.len() as u64).min(left) as usize;
            part_md5.update(&rest[..n]);
            if let Some(s) = &mut part_sum {
                s.update(&rest[..n]);
            }
            rest = &rest[n..];
            left -= n as u64;
            if left == 0 {
                part_md5s.push(std::mem::replace(&mut part_md5, Md5::new()).finalize());
                if let (Some(s), Some(c)) = (part_sum.take(), &meta.checksum) {
                    part_sums.push(s.finish());
                    part_sum = Some(Hasher::new(c.algo));
                }
                part += 1;
                left = parts.get(part).copied().unwrap_or(u64::MAX);
            }
        }
        sink(payload).map_err(|e| format!("writing: {e}"))?;
    }
    if total != v.size {
        return Err(format!("the index says {} bytes, the extents hold {total}", v.size));
    }
    let etag = if v.etag.parts == 0 {
        Some(md5.finalize())
    } else if parts.len() == v.etag.parts as usize && part_md5s.len() == parts.len() {
        Some(Md5::digest(&part_md5s.concat()))
    } else {
        None // a multipart object without its part sizes: only the records are checked
    };
    if etag.is_some_and(|m| m != v.etag.md5) {
        return Err(format!("the bytes do not match the ETag {}", v.etag));
    }
    if let Some(c) = &meta.checksum {
        let ok = if let Some(s) = whole {
            s.finish() == c.value
        } else if meta.part_checksums.len() == part_sums.len() {
            meta.part_checksums == part_sums
        } else {
            true // no per-part values stored: nothing to compare
        };
        if !ok {
            return Err(format!("the bytes do not match the stored {} checksum", c.algo.name()));
        }
    }
    Ok(())
}
