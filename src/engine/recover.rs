//! Startup of one shard: the newest valid checkpoint, then every record
//! written after it, in log order.

use std::path::Path;

use super::Error;
use super::index::checkpoint::{self, Position};
use super::index::map::Index;
use super::record::MetaOp;
use super::segment::format::{RecordKind, SEGMENT_HEADER_BYTES};
use super::segment::scan::{self, ScanReport};
use super::types::{SegmentId, ShardId};

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
}

pub fn recover(dir: &Path, shard: ShardId) -> Result<Recovered, Error> {
    std::fs::create_dir_all(dir)?;
    let segments = scan::list_segments(dir)?;
    let mut report = RecoveryReport::default();
    let mut start = None;
    for path in checkpoint::list(dir)? {
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| checkpoint::decode(shard, &b).map_err(|e| e.to_string()))
        {
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
    for id in segments.iter().copied().filter(|id| *id >= pos.segment) {
        let from = if id == pos.segment { pos.offset } else { SEGMENT_HEADER_BYTES };
        let path = super::segment::log::segment_path(dir, id);
        let r: ScanReport = scan::scan(&path, id, from, next_seq, |h, _, payload| {
            report.replayed_records += 1;
            if h.kind != RecordKind::Meta {
                return;
            }
            match MetaOp::decode(payload) {
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
