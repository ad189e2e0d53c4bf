//! Startup of one shard: the newest valid checkpoint, then every record
//! written after it, in log order.
//!
//! A metadata record is applied only if every data record it names is in
//! the log. A chunk's data write and its commit record may be in flight at
//! once (the commit's group sync waits for both, so nothing acknowledged
//! depends on this), and after a crash the commit record can be on disk
//! without the data: the log then holds zeros there, where replay stops,
//! stale bytes (a reused segment file) that replay skips, or a torn write
//! whose payload fails its checksum. Such a change was never acknowledged
//! and is dropped (`incomplete_ops`), so the key keeps its previous version.
//! The price: a record that rotted after it was acknowledged but before the
//! next checkpoint also drops its change (logged) instead of failing reads.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::Error;
use super::index::checkpoint::{self, Position};
use super::index::map::Index;
use super::record::MetaOp;
use super::segment::format::{RECORD_HEADER_BYTES, RecordHeader, RecordKind, SEGMENT_HEADER_BYTES, payload_hash};
use super::segment::scan::{self, ScanReport};
use super::types::{Extent, SegmentId, ShardId};

/// The state a shard resumes from.
pub struct Recovered {
    pub index: Index,
    pub next_seq: u64,
    /// The fresh segment the log appends to (after every existing one).
    pub next_segment: SegmentId,
    pub segments: Vec<SegmentId>,
    pub report: RecoveryReport,
}

#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub checkpoint: Option<String>,
    pub damaged_checkpoints: u32,
    pub replayed_records: u64,
    pub replayed_ops: u64,
    pub corrupt_payloads: u64,
    pub resyncs: u64,
    pub undecodable_ops: u64,
    /// Metadata records dropped because a data record they name is missing.
    pub incomplete_ops: u64,
}

pub fn recover(dir: &Path, shard: ShardId) -> Result<Recovered, Error> {
    std::fs::create_dir_all(dir)?;
    let segments = scan::list_segments(dir)?;
    let mut report = RecoveryReport::default();
    let mut start = None;
    for path in checkpoint::list(dir)? {
        let decoded = std::fs::read(&path).map(|b| checkpoint::decode(shard, &b));
        // Newer data than this code knows is refused, not taken for damage.
        if let Ok(Err(e @ checkpoint::DecodeError::NewerFormat(_))) = &decoded {
            return Err(Error::Io(std::io::Error::other(format!("{}: {e}", path.display()))));
        }
        match decoded.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(found) => {
                report.checkpoint = Some(path.display().to_string());
                start = Some(found);
                break;
            }
            Err(why) => {
                tracing::error!(path = %path.display(), why, "checkpoint unusable; trying an older one");
                report.damaged_checkpoints += 1;
            }
        }
    }
    let first = segments.first().copied().unwrap_or(SegmentId(0));
    let (pos, mut index) =
        start.unwrap_or((Position { next_seq: 0, segment: first, offset: SEGMENT_HEADER_BYTES }, Index::default()));
    let mut next_seq = pos.next_seq;
    let mut data = DataRecords { dir, from: (pos.segment, pos.offset), seen: HashSet::new(), files: HashMap::new() };
    for id in segments.iter().copied().filter(|id| *id >= pos.segment) {
        let from = if id == pos.segment { pos.offset } else { SEGMENT_HEADER_BYTES };
        let path = super::segment::log::segment_path(dir, id);
        let r: ScanReport = scan::scan(&path, id, from, next_seq, |h, off, payload| {
            report.replayed_records += payload.is_some() as u64;
            if h.kind != RecordKind::Meta {
                // A payload failing its checksum is a write that did not
                // finish: not there.
                if payload.is_some() {
                    data.seen.insert((id, off, h.payload_len as u64));
                }
                return;
            }
            let Some(payload) = payload else { return };
            match MetaOp::decode(payload) {
                Ok(op) if !data.all_there(&op) => {
                    tracing::warn!(
                        segment = id.0,
                        offset = off,
                        seq = h.seq,
                        "a change names data that is not in the log (its write did not finish); dropped"
                    );
                    report.incomplete_ops += 1;
                }
                Ok(op) => {
                    index.apply(&op);
                    report.replayed_ops += 1;
                }
                Err(_) => report.undecodable_ops += 1,
            }
        })?;
        report.corrupt_payloads += r.corrupt_payloads;
        report.resyncs += r.resyncs;
        if let Some(s) = r.max_seq {
            next_seq = next_seq.max(s + 1);
        }
    }
    let next_segment = SegmentId(segments.last().map_or(0, |s| s.0 + 1));
    Ok(Recovered { index, next_seq, next_segment, segments, report })
}

/// The data records replay has seen, and a way to look at older ones.
struct DataRecords<'a> {
    dir: &'a Path,
    /// Where replay started: records before it are looked up on disk.
    from: (SegmentId, u64),
    /// (segment, offset, payload length) of every data record replayed.
    seen: HashSet<(SegmentId, u64, u64)>,
    files: HashMap<SegmentId, Option<std::fs::File>>,
}

impl DataRecords<'_> {
    /// Whether every data record the change names is in the log.
    fn all_there(&mut self, op: &MetaOp) -> bool {
        // Completion names parts whose own records were checked when they
        // were applied (a part is applied only after its sync).
        if matches!(op, MetaOp::CompleteUpload { .. }) {
            return true;
        }
        op.added_extents().iter().flat_map(|e| e.records()).all(|r| self.there(r))
    }

    fn there(&mut self, r: Extent) -> bool {
        if (r.segment, r.offset) >= self.from {
            return self.seen.contains(&(r.segment, r.offset, r.len));
        }
        // Before the checkpoint's position: written before it was taken, or
        // in flight then; read it back and check it as the scan would.
        let dir = self.dir;
        let file = self
            .files
            .entry(r.segment)
            .or_insert_with(|| std::fs::File::open(super::segment::log::segment_path(dir, r.segment)).ok());
        let Some(file) = file else { return false };
        let mut b = vec![0u8; RECORD_HEADER_BYTES + r.len as usize];
        if file.read_exact_at(&mut b, r.offset).is_err() {
            return false;
        }
        RecordHeader::decode(&b[..RECORD_HEADER_BYTES]).is_ok_and(|h| {
            h.kind == RecordKind::Data
                && h.segment_low == r.segment.0 as u32
                && h.payload_len as u64 == r.len
                && payload_hash(&b[RECORD_HEADER_BYTES..]) == h.payload_hash
        })
    }
}
