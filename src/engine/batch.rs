//! Group commit buffers: records packed at 8-byte alignment into one
//! aligned buffer at a fixed log position, written with one O_DIRECT write.

use super::Chunk;
use super::record::MetaOp;
use super::segment::format::{RECORD_HEADER_BYTES, RecordHeader, RecordKind, packed_len, payload_hash};
use super::segment::log::Log;
use super::types::{Extent, SegmentId};
use crate::runtime::buf::AlignedBuf;

/// Size of one group-commit buffer; a group that needs more writes several.
pub const BATCH_BYTES_MAX: usize = 4 << 20;

/// Appends an extent, merging it into the previous run when it continues it.
pub fn push_extent(extents: &mut Vec<Extent>, e: Extent) {
    use super::segment::format::{CHUNK_PAYLOAD_BYTES, CHUNK_STRIDE_BYTES};
    if let Some(last) = extents.last_mut()
        && last.segment == e.segment
        && last.len % CHUNK_PAYLOAD_BYTES == 0
        && last.offset + (last.len / CHUNK_PAYLOAD_BYTES) * CHUNK_STRIDE_BYTES == e.offset
    {
        last.len += e.len;
        return;
    }
    extents.push(e);
}

/// A group-commit buffer being filled with packed records at a fixed log
/// position (allocated when it is written; nothing allocates in between).
pub struct Batch {
    pub buf: AlignedBuf,
    pub used: usize,
    pub limit: usize,
    pub at: (SegmentId, u64),
}

impl Batch {
    /// A buffer for about `want` bytes of records (never more than fits in
    /// the segment or `BATCH_BYTES_MAX`): small groups stay small.
    pub fn new(at: (SegmentId, u64), remaining: u64, want: usize) -> Self {
        let limit = (remaining as usize).min(BATCH_BYTES_MAX).min(want.max(4096));
        Self { buf: AlignedBuf::new(limit), used: 0, limit, at }
    }

    /// Reserves room for a record of `payload` bytes: (segment, offset in
    /// segment, offset in buffer).
    fn place(&mut self, payload: usize) -> (SegmentId, u64, usize) {
        let need = packed_len(payload);
        let at = self.used;
        self.used += need;
        assert!(self.used <= self.limit, "group estimate was too small");
        (self.at.0, self.at.1 + at as u64, at)
    }

    pub fn push_data(&mut self, log: &mut Log, chunk: &Chunk) -> Extent {
        let (segment, offset, at) = self.place(chunk.len);
        let seq = log.next_seq();
        let payload = &chunk.buf.full()[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + chunk.len];
        let full = self.buf.full_mut();
        full[at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + chunk.len].copy_from_slice(payload);
        RecordHeader {
            kind: RecordKind::Data,
            payload_len: chunk.len as u32,
            segment_low: segment.0 as u32,
            seq,
            payload_hash: chunk.hash,
        }
        .encode(&mut full[at..at + RECORD_HEADER_BYTES]);
        Extent { segment, offset, len: chunk.len as u64 }
    }

    pub fn push_meta(&mut self, log: &mut Log, op: &MetaOp) {
        let payload = op.encode();
        let (segment, _, at) = self.place(payload.len());
        // Header sequence numbers only grow along the log (recovery relies
        // on it); a version's own `seq` (its order among versions) may be
        // older, as when compaction rewrites a version's extents.
        let seq = log.next_seq();
        let full = self.buf.full_mut();
        full[at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + payload.len()].copy_from_slice(&payload);
        RecordHeader {
            kind: RecordKind::Meta,
            payload_len: payload.len() as u32,
            segment_low: segment.0 as u32,
            seq,
            payload_hash: payload_hash(&payload),
        }
        .encode(&mut full[at..at + RECORD_HEADER_BYTES]);
    }
}
