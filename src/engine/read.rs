//! Streaming an object's bytes out of the log: record by record, with
//! O_DIRECT into aligned buffers, each record's header and payload checksum
//! verified before a byte of it is handed out.

use std::ops::Range;
use std::rc::Rc;

use compio::BufResult;
use compio::buf::IntoInner;
use compio::io::AsyncReadAt;

use super::segment::format::{RECORD_HEADER_BYTES, RecordHeader, RecordKind, payload_hash};
use super::types::{ETag, Extent, SegmentId, ShardId, VersionId};
use super::{Error, Request, Shared};
use crate::runtime::buf::{AlignedBuf, align_down, align_up};

/// Records up to this size are read into a buffer of their own size; larger
/// ones use a pooled megabyte buffer.
const SMALL_READ_BYTES: usize = 64 << 10;

/// How many times one read follows its version to new extents after the
/// compactor moved it and deleted the old segment.
const RELOOKUPS_MAX: u32 = 4;

/// The version a reader streams, so it can look the version up again when
/// the compactor moved its bytes (same id and ETag: the same bytes) and
/// deleted the segment before this reader opened it.
pub(super) struct Origin {
    pub bucket: String,
    pub key: String,
    pub id: VersionId,
    pub etag: ETag,
    pub size: u64,
}

/// Yields the bytes `[start, end)` of an object as (buffer, range) pairs.
pub struct ObjectReader {
    shared: Rc<Shared>,
    owner: ShardId,
    /// (record location, payload length, object offset of its first byte)
    records: std::vec::IntoIter<(Extent, u64)>,
    start: u64,
    end: u64,
    spare: Option<AlignedBuf>,
    /// The segment file last read, held so a deletion cannot pull it away
    /// between the records of one extent.
    file: Option<(SegmentId, compio::fs::File)>,
    origin: Option<Origin>,
    relookups: u32,
}

impl ObjectReader {
    pub(super) fn new(
        shared: Rc<Shared>,
        owner: ShardId,
        extents: &[Extent],
        start: u64,
        end: u64,
        origin: Option<Origin>,
    ) -> Self {
        Self {
            shared,
            owner,
            records: records_of(extents, start, end).into_iter(),
            start,
            end,
            spare: None,
            file: None,
            origin,
            relookups: 0,
        }
    }

    /// Returns a buffer for reuse by the next read.
    pub fn give_back(&mut self, buf: AlignedBuf) {
        if let Some(old) = self.spare.replace(buf) {
            old.recycle();
        }
    }

    /// Hands the spare buffer back to the pool.
    pub fn finish(mut self) {
        if let Some(b) = self.spare.take() {
            b.recycle();
        }
    }

    /// The next piece: a buffer and the range of it to send.
    pub async fn next(&mut self) -> Option<Result<(AlignedBuf, Range<usize>), Error>> {
        loop {
            let (rec, obj_at) = self.records.next()?;
            let want = (align_up(rec.offset + RECORD_HEADER_BYTES as u64 + rec.len) - align_down(rec.offset)) as usize;
            let buf = match self.spare.take() {
                Some(b) if b.capacity() >= want => b,
                _ if want <= SMALL_READ_BYTES => AlignedBuf::new(want),
                _ => AlignedBuf::pooled(),
            };
            let file = match &self.file {
                Some((id, f)) if *id == rec.segment => f.clone(),
                _ => match self.shared.reader(self.owner, rec.segment) {
                    Ok(f) => {
                        self.file = Some((rec.segment, f.clone()));
                        f
                    }
                    Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.spare = Some(buf);
                        match self.follow_move(obj_at).await {
                            Ok(()) => continue,
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    Err(e) => return Some(Err(e)),
                },
            };
            match self.read_record(&file, rec, obj_at, buf).await {
                Ok(Some(piece)) => return Some(Ok(piece)),
                Ok(None) => {
                    // The file was reclaimed and reused under this read.
                    match self.follow_move(obj_at).await {
                        Ok(()) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The segment holding the next record is gone: the compactor moved the
    /// version. Looks it up again and goes on from `obj_at`, where the bytes
    /// handed out so far end.
    async fn follow_move(&mut self, obj_at: u64) -> Result<(), Error> {
        let gone = || Error::Corrupt("the object's segment was deleted while it was read".into());
        let Some(o) = &self.origin else { return Err(gone()) };
        if self.relookups >= RELOOKUPS_MAX {
            return Err(gone());
        }
        self.relookups += 1;
        tracing::debug!(bucket = %o.bucket, key = %o.key, at = obj_at, "segment deleted under a read; following the moved version");
        let (tx, rx) = flume::bounded(1);
        let msg = Request::Get { bucket: o.bucket.clone(), key: o.key.clone(), version: Some(o.id), reply: tx };
        self.shared.mesh[self.owner.0 as usize].send_async(msg).await.map_err(|_| Error::ShuttingDown)?;
        let v = rx.recv_async().await.map_err(|_| Error::ShuttingDown)??;
        if v.etag != o.etag || v.size != o.size || v.delete_marker {
            return Err(gone());
        }
        self.start = self.start.max(obj_at);
        self.records = records_of(&v.extents, self.start, self.end).into_iter();
        self.file = None;
        Ok(())
    }

    async fn read_record(
        &self,
        file: &compio::fs::File,
        rec: Extent,
        obj_at: u64,
        mut buf: AlignedBuf,
    ) -> Result<Option<(AlignedBuf, Range<usize>)>, Error> {
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
        let fault = match RecordHeader::decode(&bytes[h_at..h_at + RECORD_HEADER_BYTES]) {
            Err(_) => Some("bad record header"),
            Ok(h)
                if h.kind != RecordKind::Data
                    || h.payload_len as u64 != rec.len
                    || h.segment_low != rec.segment.0 as u32 =>
            {
                Some("record header does not match the index")
            }
            Ok(h) => {
                let p = h_at + RECORD_HEADER_BYTES;
                (payload_hash(&bytes[p..p + rec.len as usize]) != h.payload_hash).then_some("payload checksum mismatch")
            }
        };
        if let Some(why) = fault {
            // A reclaimed segment's file becomes a spare with new records
            // over the old ones: not damage, the version moved.
            if self.shared.is_forgotten(self.owner, rec.segment) {
                buf.recycle();
                return Ok(None);
            }
            return Err(corrupt(rec, why));
        }
        let p = h_at + RECORD_HEADER_BYTES;
        let skip = self.start.saturating_sub(obj_at);
        let take = (self.end - obj_at).min(rec.len);
        Ok(Some((buf, p + skip as usize..p + take as usize)))
    }
}

/// The records of `extents` that hold bytes of `[start, end)`, each with the
/// object offset of its first byte.
fn records_of(extents: &[Extent], start: u64, end: u64) -> Vec<(Extent, u64)> {
    let mut records = Vec::new();
    let mut at = 0u64;
    for rec in extents.iter().flat_map(|e| e.records()) {
        if at + rec.len > start && at < end {
            records.push((rec, at));
        }
        at += rec.len;
    }
    records
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
