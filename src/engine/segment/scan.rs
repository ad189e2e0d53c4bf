//! Reading a segment from start to end at recovery: every record whose
//! header and payload checksums hold, in order, with the damage reported.

use std::path::Path;

use super::format::{
    HeaderFault, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader, payload_hash,
};
use crate::engine::types::SegmentId;
use crate::runtime::buf::{ALIGN, align_up};

/// What a scan of one segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub records: u64,
    /// Records whose payload checksum failed (skipped by their length).
    pub corrupt_payloads: u64,
    /// Places where a header was torn or corrupt and the scan moved on to
    /// the next block that holds a valid record.
    pub resyncs: u64,
    /// Offset just past the last valid record.
    pub end: u64,
    pub max_seq: Option<u64>,
}

/// Calls `f(header, offset, payload)` for each valid record of segment `id`
/// at or after `start` whose sequence number is at least `min_seq`; the
/// payload is `None` when its checksum fails (the record is there, its
/// bytes are damaged).
pub fn scan(
    path: &Path,
    id: SegmentId,
    start: u64,
    min_seq: u64,
    mut f: impl FnMut(&RecordHeader, u64, Option<&[u8]>),
) -> std::io::Result<ScanReport> {
    let file = std::fs::File::open(path)?;
    // SAFETY: segment files are only appended to by this process's own
    // writer, which is not running during recovery; the map is read-only.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let mut report = ScanReport { end: start, ..Default::default() };
    match SegmentHeader::decode(&map) {
        Some(h) if h.segment == id.0 => {}
        _ if let Some(v) = SegmentHeader::newer_format(&map) => {
            return Err(std::io::Error::other(format!(
                "{} was written in on-disk format version {v}; this kaligon reads version {}: run the newer kaligon that wrote it",
                path.display(),
                super::format::FORMAT_VERSION
            )));
        }
        _ => {
            tracing::warn!(path = %path.display(), "segment header is missing or damaged; skipping the segment");
            return Ok(report);
        }
    }
    let len = map.len() as u64;
    let mut off = start.max(SEGMENT_HEADER_BYTES);
    let mut last_seq = min_seq.checked_sub(1);
    while off + RECORD_HEADER_BYTES as u64 <= len {
        let at = off as usize;
        let fresh = |h: &RecordHeader| h.segment_low == id.0 as u32 && last_seq.is_none_or(|s| h.seq > s);
        match RecordHeader::decode(&map[at..at + RECORD_HEADER_BYTES]) {
            Ok(h) if fresh(&h) && off + h.packed_len() <= len + 7 => {
                let p = at + RECORD_HEADER_BYTES;
                let payload = &map[p..(p + h.payload_len as usize).min(map.len())];
                if payload.len() == h.payload_len as usize && payload_hash(payload) == h.payload_hash {
                    f(&h, off, Some(payload));
                    report.records += 1;
                } else {
                    tracing::warn!(path = %path.display(), offset = off, seq = h.seq, "record payload checksum mismatch; skipped");
                    report.corrupt_payloads += 1;
                    f(&h, off, None);
                }
                last_seq = Some(h.seq);
                report.max_seq = Some(h.seq);
                off += h.packed_len();
                report.end = off;
            }
            Err(HeaderFault::Zero) if !off.is_multiple_of(ALIGN as u64) => off = align_up(off),
            Err(HeaderFault::Zero) => break,
            _ => match resync(&map, off, id, last_seq) {
                Some(next) => {
                    tracing::warn!(path = %path.display(), offset = off, resumed_at = next, "torn or corrupt record header; resumed at the next valid block");
                    report.resyncs += 1;
                    off = next;
                }
                None => break,
            },
        }
    }
    Ok(report)
}

/// The next 4096-aligned offset after `off` that starts a valid, newer
/// record. Every write starts on such a boundary, so only the rest of the
/// damaged write is lost; object bytes inside records are never parsed as
/// headers this way unless they sit exactly on a boundary inside a batch.
fn resync(map: &[u8], off: u64, id: SegmentId, last_seq: Option<u64>) -> Option<u64> {
    let mut at = align_up(off + 1);
    while at + RECORD_HEADER_BYTES as u64 <= map.len() as u64 {
        let b = &map[at as usize..at as usize + RECORD_HEADER_BYTES];
        if let Ok(h) = RecordHeader::decode(b)
            && h.segment_low == id.0 as u32
            && last_seq.is_none_or(|s| h.seq > s)
        {
            return Some(at);
        }
        at += ALIGN as u64;
    }
    None
}

/// Segment ids present in a shard directory, ascending; removes leftovers of
/// interrupted spare preparation.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<SegmentId>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".prep") {
            std::fs::remove_file(dir.join(name))?;
            continue;
        }
        if let Some(n) = name.strip_prefix("seg-").and_then(|n| n.parse::<u64>().ok()) {
            ids.push(SegmentId(n));
        }
    }
    ids.sort_unstable();
    Ok(ids)
}
