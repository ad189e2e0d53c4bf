//! The on-disk format of segment files, byte by byte.
//!
//! A shard's log is a sequence of segment files `seg-<id:010>` in the shard's
//! directory. Every integer is little-endian.
//!
//! ## Segment header (the first 4096 bytes of a segment file)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KLGNSEG1` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 4 | shard id |
//! | 16 | 8 | segment id |
//! | 24 | 8 | segment size in bytes |
//! | 32 | 8 | xxh64 (seed 0) of bytes 0..32 |
//! | 40 | 4056 | zero |
//!
//! ## Records (from offset 4096 on)
//! Each record is a 40-byte header followed by `payload_len` payload bytes.
//! Records inside one write are packed at 8-byte alignment; every write
//! starts on a 4096-byte boundary and its tail is zero up to the next one.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic [`RECORD_MAGIC`] (`KLR1`); zero means "padding up to the next 4096 boundary" |
//! | 4 | 1 | kind ([`RecordKind`]) |
//! | 5 | 3 | zero |
//! | 8 | 4 | payload length |
//! | 12 | 4 | low 32 bits of the segment id (a recycled segment's stale records do not match) |
//! | 16 | 8 | sequence number, strictly increasing per shard |
//! | 24 | 8 | xxh64 (seed 0) of the payload |
//! | 32 | 8 | xxh64 (seed 0) of header bytes 0..32 |
//!
//! A reader scanning a segment stops at the first zero magic whose next
//! 4096-aligned block is zero too (the end of what was written). A segment
//! file reused from a reclaimed one (segment/log.rs) still holds the old
//! segment's records past what was written: their segment id does not
//! match, so the scan looks for a newer record of this segment, finds none
//! and ends there (reading the rest of the file once). A header
//! that fails its checksum is a torn or corrupt record: the scan looks for the
//! next valid header with a higher sequence number. A payload that fails its
//! checksum is skipped by its (verified) length and reported.

use xxhash_rust::xxh64::xxh64;

/// Version of the segment and record format; bump on any layout change.
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_MAGIC: &[u8; 8] = b"KLGNSEG1";
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"KLR1");
/// Bytes reserved at the start of each segment for its header.
pub const SEGMENT_HEADER_BYTES: u64 = 4096;
pub const RECORD_HEADER_BYTES: usize = 40;
/// Largest payload of one data record. Objects are split into records of
/// exactly this many bytes (the last one shorter), so a run of records can be
/// addressed by its first offset and total length. Part of the format.
pub const CHUNK_PAYLOAD_BYTES: u64 = 1 << 20;
/// Distance between consecutive full data records written on their own.
pub const CHUNK_STRIDE_BYTES: u64 = crate::runtime::buf::align_up(CHUNK_PAYLOAD_BYTES + RECORD_HEADER_BYTES as u64);

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// Object bytes; referenced by extents, never interpreted on replay.
    Data = 1,
    /// A metadata change of the index (see `engine::record`).
    Meta = 2,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::Meta),
            _ => None,
        }
    }
}

/// A decoded, checksum-verified record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub payload_len: u32,
    pub segment_low: u32,
    pub seq: u64,
    pub payload_hash: u64,
}

/// Why a header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// All-zero magic: padding or the end of the written log.
    Zero,
    /// Wrong magic, checksum, kind or length: torn or corrupt.
    Corrupt,
}

impl RecordHeader {
    /// Writes the header into `out[..40]`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        out[4] = self.kind as u8;
        out[5..8].fill(0);
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.segment_low.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.payload_hash.to_le_bytes());
        let h = xxh64(&out[0..32], 0);
        out[32..40].copy_from_slice(&h.to_le_bytes());
    }

    /// Reads and verifies a header from `b[..40]`.
    pub fn decode(b: &[u8]) -> Result<Self, HeaderFault> {
        if b.len() < RECORD_HEADER_BYTES {
            return Err(HeaderFault::Corrupt);
        }
        let magic = u32_at(b, 0);
        if magic == 0 {
            return Err(HeaderFault::Zero);
        }
        if magic != RECORD_MAGIC || u64_at(b, 32) != xxh64(&b[0..32], 0) || b[5..8] != [0; 3] {
            return Err(HeaderFault::Corrupt);
        }
        let kind = RecordKind::from_u8(b[4]).ok_or(HeaderFault::Corrupt)?;
        let payload_len = u32_at(b, 8);
        if kind == RecordKind::Data && payload_len as u64 > CHUNK_PAYLOAD_BYTES {
            return Err(HeaderFault::Corrupt);
        }
        Ok(Self { kind, payload_len, segment_low: u32_at(b, 12), seq: u64_at(b, 16), payload_hash: u64_at(b, 24) })
    }

    /// Bytes from this record's start to where the next packed record may start.
    pub fn packed_len(&self) -> u64 {
        packed_len(self.payload_len as usize) as u64
    }
}

/// Bytes a record with `payload_len` bytes occupies when packed (8-aligned).
pub const fn packed_len(payload_len: usize) -> usize {
    (RECORD_HEADER_BYTES + payload_len + 7) & !7
}

/// Checksum of a payload as stored in the header.
pub fn payload_hash(payload: &[u8]) -> u64 {
    xxh64(payload, 0)
}

/// The first 4096 bytes of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub shard: u32,
    pub segment: u64,
    pub size: u64,
}

impl SegmentHeader {
    pub fn encode(&self, out: &mut [u8]) {
        out[..SEGMENT_HEADER_BYTES as usize].fill(0);
        out[0..8].copy_from_slice(SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.shard.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment.to_le_bytes());
        out[24..32].copy_from_slice(&self.size.to_le_bytes());
        let h = xxh64(&out[0..32], 0);
        out[32..40].copy_from_slice(&h.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 40 || &b[0..8] != SEGMENT_MAGIC || u64_at(b, 32) != xxh64(&b[0..32], 0) {
            return None;
        }
        if u32_at(b, 8) != FORMAT_VERSION {
            return None;
        }
        Some(Self { shard: u32_at(b, 12), segment: u64_at(b, 16), size: u64_at(b, 24) })
    }

    /// The format version of an intact header written by a newer format
    /// than this code reads: such a segment is refused, never read as
    /// damage (skipping it would leave it with nothing live, and compaction
    /// would delete it).
    pub fn newer_format(b: &[u8]) -> Option<u32> {
        let intact = b.len() >= 40 && &b[0..8] == SEGMENT_MAGIC && u64_at(b, 32) == xxh64(&b[0..32], 0);
        Some(u32_at(b, 8)).filter(|v| intact && *v > FORMAT_VERSION)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
        RecordHeader {
            kind: RecordKind::Meta,
            payload_len: 77,
            segment_low: 3,
            seq: 42,
            payload_hash: payload_hash(b"x"),
        }
    }

    #[test]
    fn record_header_round_trip() {
        let mut b = [0u8; 40];
        header().encode(&mut b);
        assert_eq!(RecordHeader::decode(&b), Ok(header()));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut b = [0u8; 40];
        header().encode(&mut b);
        for i in 0..40 * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert!(RecordHeader::decode(&c).is_err(), "bit {i} flip undetected");
        }
    }

    #[test]
    fn zero_is_padding() {
        assert_eq!(RecordHeader::decode(&[0u8; 40]), Err(HeaderFault::Zero));
        assert_eq!(RecordHeader::decode(&[0u8; 10]), Err(HeaderFault::Corrupt));
    }

    #[test]
    fn oversized_data_record_is_corrupt() {
        let mut h = header();
        h.kind = RecordKind::Data;
        h.payload_len = CHUNK_PAYLOAD_BYTES as u32 + 1;
        let mut b = [0u8; 40];
        h.encode(&mut b);
        assert_eq!(RecordHeader::decode(&b), Err(HeaderFault::Corrupt));
    }

    #[test]
    fn segment_header_round_trip_and_corruption() {
        let h = SegmentHeader { shard: 1, segment: 9, size: 1 << 30 };
        let mut b = vec![0u8; 4096];
        h.encode(&mut b);
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        b[17] ^= 1;
        assert_eq!(SegmentHeader::decode(&b), None);
    }

    #[test]
    fn packing() {
        assert_eq!(packed_len(0), 40);
        assert_eq!(packed_len(1), 48);
        assert_eq!(packed_len(8), 48);
        assert_eq!(CHUNK_STRIDE_BYTES, (1 << 20) + 4096);
    }
}
