//! Streaming an object's bytes out of the log: record by record, with
//! O_DIRECT into aligned buffers, each record's header and payload checksum
//! verified before a byte of it is handed out.

use std::ops::Range;
use std::rc::Rc;

use compio::BufResult;
use compio::buf::IntoInner;
use compio::io::AsyncReadAt;

use super::segment::format::{
    CHUNK_PAYLOAD_BYTES, CHUNK_STRIDE_BYTES, RECORD_HEADER_BYTES, RecordHeader, RecordKind, payload_hash,
};
use super::types::{Extent, ShardId};
use super::{Error, Shared};
use crate::runtime::buf::{ALIGN, AlignedBuf, align_down, align_up};

/// Yields the bytes `[start, end)` of an object as (buffer, range) pairs.
pub struct ObjectReader {
    shared: Rc<Shared>,
    owner: ShardId,
    /// (record location, payload length, object offset of its first byte)
    records: std::vec::IntoIter<(Extent, u64)>,
    start: u64,
    end: u64,
    spare: Option<AlignedBuf>,
}

impl ObjectReader {
    pub(super) fn new(shared: Rc<Shared>, owner: ShardId, extents: Vec<Extent>, start: u64, end: u64) -> Self {
        let mut records = Vec::new();
        let mut at = 0u64;
        for e in extents {
            let n = e.len.div_ceil(CHUNK_PAYLOAD_BYTES).max(1);
            for i in 0..n {
                let len = (e.len - i * CHUNK_PAYLOAD_BYTES).min(CHUNK_PAYLOAD_BYTES);
                let offset = e.offset + i * CHUNK_STRIDE_BYTES;
                if at + len > start && at < end {
                    records.push((Extent { segment: e.segment, offset, len }, at));
                }
                at += len;
            }
        }
        Self { shared, owner, records: records.into_iter(), start, end, spare: None }
    }

    /// Returns a buffer for reuse by the next read.
    pub fn give_back(&mut self, buf: AlignedBuf) {
        self.spare = Some(buf);
    }

    /// The next piece: a buffer and the range of it to send.
    pub async fn next(&mut self) -> Option<Result<(AlignedBuf, Range<usize>), Error>> {
        let (rec, obj_at) = self.records.next()?;
        let buf = self.spare.take().unwrap_or_else(|| AlignedBuf::new(CHUNK_STRIDE_BYTES as usize + ALIGN));
        Some(self.read_record(rec, obj_at, buf).await)
    }

    async fn read_record(
        &self,
        rec: Extent,
        obj_at: u64,
        mut buf: AlignedBuf,
    ) -> Result<(AlignedBuf, Range<usize>), Error> {
        let file = self.shared.reader(self.owner, rec.segment)?;
        let from = align_down(rec.offset);
        let to = align_up(rec.offset + RECORD_HEADER_BYTES as u64 + rec.len);
        let want = (to - from) as usize;
        if buf.capacity() < want {
            buf = AlignedBuf::new(want);
        }
        buf.set_len(0);
        let mut got = 0usize;
        while got < want {
            let BufResult(r, b) = file.read_at(slice_from(buf, got, want), from + got as u64).await;
            buf = b.into_inner();
            match r {
                Ok(0) => return Err(corrupt(rec, "segment ends inside the record")),
                Ok(n) => got += n,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        buf.set_len(want);
        let h_at = (rec.offset - from) as usize;
        let bytes = buf.as_slice();
        let h = RecordHeader::decode(&bytes[h_at..h_at + RECORD_HEADER_BYTES])
            .map_err(|_| corrupt(rec, "bad record header"))?;
        if h.kind != RecordKind::Data || h.payload_len as u64 != rec.len || h.segment_low != rec.segment.0 as u32 {
            return Err(corrupt(rec, "record header does not match the index"));
        }
        let p = h_at + RECORD_HEADER_BYTES;
        if payload_hash(&bytes[p..p + rec.len as usize]) != h.payload_hash {
            return Err(corrupt(rec, "payload checksum mismatch"));
        }
        let skip = self.start.saturating_sub(obj_at);
        let take = (self.end - obj_at).min(rec.len);
        Ok((buf, p + skip as usize..p + take as usize))
    }
}

/// The part `[from, to)` of `buf` as a read target; the buffer's length is
/// `from` so reads land after what was already read.
fn slice_from(mut buf: AlignedBuf, from: usize, to: usize) -> compio::buf::Slice<AlignedBuf> {
    use compio::buf::IoBuf;
    buf.set_len(to);
    buf.slice(from..to)
}

fn corrupt(rec: Extent, why: &str) -> Error {
    tracing::error!(segment = rec.segment.0, offset = rec.offset, why, "refusing to serve damaged data");
    Error::Corrupt(format!("segment {} offset {}: {why}", rec.segment.0, rec.offset))
}
