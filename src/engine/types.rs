//! The values the engine stores: versions, their extents and metadata, and
//! bucket state. Everything later features need (version ids, delete markers,
//! the null version, multipart parts, tags, storage class, per-bucket
//! configuration) is here from the first format version.

use super::codec::{Dec, DecodeError, Enc};
use std::fmt;

/// Index of a shard (one per core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u32);

/// Index of a segment file within one shard's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

/// An object version id. `NULL` is S3's `null` version (written while a
/// bucket is unversioned or suspended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(pub u128);

impl VersionId {
    pub const NULL: VersionId = VersionId(0);

    pub fn is_null(self) -> bool {
        self.0 == 0
    }

    /// A new unique id: the high 64 bits are the time in nanoseconds, the low
    /// 64 bits random, so ids never repeat across restarts or shards.
    pub fn generate(now_nanos: u64) -> Self {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("the OS random source works");
        let v = ((now_nanos as u128) << 64) | u64::from_le_bytes(r) as u128;
        VersionId(v.max(1))
    }

    /// Parses the text form used in `versionId=` (`null` or 32 hex digits).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "null" {
            return Some(Self::NULL);
        }
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(s, 16).ok().filter(|&v| v != 0).map(VersionId)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() { f.write_str("null") } else { write!(f, "{:032x}", self.0) }
    }
}

/// A multipart upload id: time-ordered like a version id (so a key's
/// uploads sort by initiation), printed as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(pub u128);

impl UploadId {
    pub fn generate(now_nanos: u64) -> Self {
        UploadId(VersionId::generate(now_nanos).0)
    }

    pub fn parse(s: &str) -> Option<Self> {
        VersionId::parse(s).filter(|v| !v.is_null()).map(|v| UploadId(v.0))
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// One uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub size: u64,
    pub md5: [u8; 16],
    pub mtime_ms: i64,
    /// The part's own checksum (FULL_OBJECT form over the part's bytes).
    pub checksum: Option<Checksum>,
    pub extents: Box<[Extent]>,
}

/// A multipart upload in progress: what CreateMultipartUpload fixed, and
/// the parts uploaded so far by part number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub id: UploadId,
    pub initiated_ms: i64,
    /// Access key of the user who started it.
    pub initiator: String,
    /// The checksum algorithm asked for, and whether the object's checksum
    /// is FULL_OBJECT (true) or COMPOSITE (false).
    pub checksum: Option<(ChecksumAlgo, bool)>,
    /// Content headers, user metadata and storage class for the object.
    pub meta: MetaBlob,
    pub parts: std::collections::BTreeMap<u32, Part>,
}

/// A run of data records in the owning shard's log: the first record starts
/// at `offset` in `segment`; `len` payload bytes follow in records of
/// `CHUNK_PAYLOAD_BYTES` (the last shorter), each `CHUNK_STRIDE_BYTES` apart.
/// A run with `len <= CHUNK_PAYLOAD_BYTES` is a single record anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub segment: SegmentId,
}

impl Extent {
    /// The data records of this run, each as a one-record extent.
    pub fn records(self) -> impl Iterator<Item = Extent> {
        use super::segment::format::{CHUNK_PAYLOAD_BYTES, CHUNK_STRIDE_BYTES};
        (0..self.len.div_ceil(CHUNK_PAYLOAD_BYTES).max(1)).map(move |i| Extent {
            segment: self.segment,
            offset: self.offset + i * CHUNK_STRIDE_BYTES,
            len: (self.len - i * CHUNK_PAYLOAD_BYTES).min(CHUNK_PAYLOAD_BYTES),
        })
    }
}

/// An S3 ETag: the MD5 of the body, or for multipart uploads the MD5 of the
/// part MD5s with the part count (`parts > 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ETag {
    pub md5: [u8; 16],
    pub parts: u32,
}

impl fmt::Display for ETag {
    /// The quoted form S3 sends in headers and XML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}", hex::encode(self.md5))?;
        if self.parts > 0 {
            write!(f, "-{}", self.parts)?;
        }
        f.write_str("\"")
    }
}

/// The additional checksum algorithms of S3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ChecksumAlgo {
    Crc32 = 1,
    Crc32c = 2,
    Crc64Nvme = 3,
    Sha1 = 4,
    Sha256 = 5,
}

impl ChecksumAlgo {
    pub const ALL: [ChecksumAlgo; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| *a as u8 == v)
    }

    /// The lowercase name used in `x-amz-checksum-<name>` headers.
    pub fn header_suffix(self) -> &'static str {
        match self {
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Crc64Nvme => "crc64nvme",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    /// The header that carries a value of this algorithm.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The uppercase name used in `x-amz-checksum-algorithm` and XML.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }
}

/// A stored checksum value (raw digest bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algo: ChecksumAlgo,
    pub value: Vec<u8>,
    /// 0 for a checksum of the whole body (FULL_OBJECT); N for a COMPOSITE
    /// checksum of N part checksums.
    pub parts: u32,
}

/// Metadata stored with a version and returned on GET/HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lowercased without the prefix, in order.
    pub user: Vec<(String, String)>,
    pub checksum: Option<Checksum>,
    pub tags: Vec<(String, String)>,
    pub storage_class: Option<String>,
    /// Sizes of the parts of a multipart object, in part order.
    pub part_sizes: Vec<u64>,
    /// The checksum value of each part, in part order, for a multipart
    /// object uploaded with checksums (GetObjectAttributes, GET by part).
    pub part_checksums: Vec<Vec<u8>>,
    /// The upload a multipart object was completed from, so a repeated
    /// CompleteMultipartUpload (an SDK retry after a lost response) finds
    /// its result.
    pub completed_upload: Option<UploadId>,
    /// Who wrote the object (an access key), where that is not the
    /// bucket's owner; None: the bucket owner owns it.
    pub owner: Option<String>,
    /// The object's ACL (`s3::access::Acl` encoded); None: private to its owner.
    pub acl: Option<Vec<u8>>,
}

/// One version of a key: an object or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub id: VersionId,
    /// Shard sequence number of the commit; orders versions (newest first).
    pub seq: u64,
    pub mtime_ms: i64,
    pub size: u64,
    pub etag: ETag,
    pub delete_marker: bool,
    pub extents: Box<[Extent]>,
    pub meta: MetaBlob,
}

/// `ObjectMeta` kept in its encoded form (the tagged fields of the record
/// format): a few dozen bytes per object in the index instead of a few
/// hundred; decoded when a GET or HEAD needs it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetaBlob(Box<[u8]>);

impl MetaBlob {
    pub fn new(meta: &ObjectMeta) -> Self {
        let mut e = Enc::new();
        meta.encode(&mut e);
        MetaBlob(e.buf.into_boxed_slice())
    }

    /// The metadata (blobs are only made by `new`, so they always decode).
    pub fn get(&self) -> ObjectMeta {
        let mut m = ObjectMeta::default();
        let mut d = Dec::new(&self.0);
        while !d.is_empty() {
            let Ok((tag, mut f)) = d.field() else { break };
            let _ = m.decode_field(tag, &mut f);
        }
        m
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the object has neither a writer other than the bucket owner
    /// nor an ACL: the access check's common case, answered by walking the
    /// field tags without decoding anything.
    pub fn owned_by_bucket_owner_privately(&self) -> bool {
        let mut d = Dec::new(&self.0);
        while !d.is_empty() {
            match d.field() {
                Ok((F_OBJECT_OWNER | F_ACL, _)) => return false,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        true
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A blob from bytes that `as_bytes` of another blob returned.
    pub(crate) fn from_encoded(bytes: Box<[u8]>) -> Self {
        MetaBlob(bytes)
    }
}

impl From<ObjectMeta> for MetaBlob {
    fn from(m: ObjectMeta) -> Self {
        MetaBlob::new(&m)
    }
}

impl Version {
    /// Bytes of log space this version's data occupies (for liveness).
    pub fn stored_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }
}

/// A bucket's versioning state; a bucket never returns to `Unversioned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Versioning {
    #[default]
    Unversioned = 0,
    Enabled = 1,
    Suspended = 2,
}

/// Everything known about a bucket; replicated to every shard.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BucketState {
    pub owner: String,
    pub created_ms: i64,
    pub versioning: Versioning,
    /// Per-bucket configuration documents by name (`lifecycle`, `cors`,
    /// `tagging`, …), stored as the validated XML the client sent.
    pub configs: Vec<(String, Vec<u8>)>,
}

impl BucketState {
    /// Whether this is the bucket `owner` created at `created_ms`, not one
    /// of the same name made again since.
    pub fn is(&self, owner: &str, created_ms: i64) -> bool {
        self.owner == owner && self.created_ms == created_ms
    }

    pub fn config(&self, name: &str) -> Option<&[u8]> {
        self.configs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// What the meter counts, for one bucket, one user and one hour: payload
/// bytes received and stored, object bytes sent, and requests by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub reads: u64,
    pub writes: u64,
    pub lists: u64,
    pub deletes: u64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.reads += o.reads;
        self.writes += o.writes;
        self.lists += o.lists;
        self.deletes += o.deletes;
    }

    /// The counters in their stored order.
    pub fn to_array(self) -> [u64; 6] {
        [self.bytes_in, self.bytes_out, self.reads, self.writes, self.lists, self.deletes]
    }

    pub fn from_array(a: [u64; 6]) -> Usage {
        let [bytes_in, bytes_out, reads, writes, lists, deletes] = a;
        Usage { bytes_in, bytes_out, reads, writes, lists, deletes }
    }
}

/// One meter entry: (bucket, user's access key or "" for anonymous, hour
/// since the Unix epoch) and its counters.
pub type UsageEntry = (String, String, u32, Usage);

// Field tags; never reuse a number.
const F_ID: u8 = 1;
const F_SEQ: u8 = 2;
const F_MTIME: u8 = 3;
const F_SIZE: u8 = 4;
const F_ETAG: u8 = 5;
const F_DELETE_MARKER: u8 = 6;
const F_EXTENT: u8 = 7;
const F_CONTENT_TYPE: u8 = 10;
const F_CONTENT_ENCODING: u8 = 11;
const F_CONTENT_DISPOSITION: u8 = 12;
const F_CONTENT_LANGUAGE: u8 = 13;
const F_CACHE_CONTROL: u8 = 14;
const F_EXPIRES: u8 = 15;
const F_USER_META: u8 = 16;
const F_CHECKSUM: u8 = 17;
const F_TAG: u8 = 18;
const F_STORAGE_CLASS: u8 = 19;
const F_PART_SIZE: u8 = 20;
const F_UPLOAD_ID: u8 = 21;
const F_INITIATED: u8 = 22;
const F_INITIATOR: u8 = 23;
const F_UPLOAD_CHECKSUM: u8 = 24;
const F_COMPLETED_UPLOAD: u8 = 25;
const F_PART_CHECKSUM: u8 = 26;
const F_OBJECT_OWNER: u8 = 27;
const F_ACL: u8 = 28;
const F_OWNER: u8 = 30;
const F_CREATED: u8 = 31;
const F_VERSIONING: u8 = 32;
const F_CONFIG: u8 = 33;

impl Version {
    pub fn encode(&self, e: &mut Enc) {
        e.field(F_ID, |e| {
            e.u128(self.id.0);
        });
        e.field(F_SEQ, |e| {
            e.u64(self.seq);
        });
        e.field(F_MTIME, |e| {
            e.i64(self.mtime_ms);
        });
        e.field(F_SIZE, |e| {
            e.u64(self.size);
        });
        e.field(F_ETAG, |e| {
            e.bytes(&self.etag.md5).u32(self.etag.parts);
        });
        if self.delete_marker {
            e.field(F_DELETE_MARKER, |_| {});
        }
        encode_extents(e, &self.extents);
        e.buf.extend_from_slice(&self.meta.0);
    }

    pub fn decode(d: &mut Dec) -> Result<Self, DecodeError> {
        let mut v = Version {
            id: VersionId::NULL,
            seq: 0,
            mtime_ms: 0,
            size: 0,
            etag: ETag::default(),
            delete_marker: false,
            extents: Box::new([]),
            meta: MetaBlob::default(),
        };
        let mut extents = Vec::new();
        let mut meta = ObjectMeta::default();
        while !d.is_empty() {
            let (tag, mut f) = d.field()?;
            match tag {
                F_ID => v.id = VersionId(f.u128()?),
                F_SEQ => v.seq = f.u64()?,
                F_MTIME => v.mtime_ms = f.i64()?,
                F_SIZE => v.size = f.u64()?,
                F_ETAG => {
                    v.etag.md5 = f.bytes()?.try_into().map_err(|_| DecodeError)?;
                    v.etag.parts = f.u32()?;
                }
                F_DELETE_MARKER => v.delete_marker = true,
                F_EXTENT => extents.push(decode_extent(&mut f)?),
                _ => meta.decode_field(tag, &mut f)?,
            }
        }
        v.extents = extents.into_boxed_slice();
        v.meta = MetaBlob::new(&meta);
        Ok(v)
    }
}

fn encode_extents(e: &mut Enc, extents: &[Extent]) {
    for x in extents {
        e.field(F_EXTENT, |e| {
            e.u64(x.segment.0).u64(x.offset).u64(x.len);
        });
    }
}

fn decode_extent(f: &mut Dec) -> Result<Extent, DecodeError> {
    Ok(Extent { segment: SegmentId(f.u64()?), offset: f.u64()?, len: f.u64()? })
}

impl Part {
    pub fn encode(&self, e: &mut Enc) {
        e.field(F_SIZE, |e| {
            e.u64(self.size);
        });
        e.field(F_ETAG, |e| {
            e.bytes(&self.md5).u32(0);
        });
        e.field(F_MTIME, |e| {
            e.i64(self.mtime_ms);
        });
        encode_extents(e, &self.extents);
        if let Some(c) = &self.checksum {
            encode_checksum(e, c);
        }
    }

    pub fn decode(d: &mut Dec) -> Result<Self, DecodeError> {
        let mut p = Part { size: 0, md5: [0; 16], mtime_ms: 0, checksum: None, extents: Box::new([]) };
        let mut extents = Vec::new();
        while !d.is_empty() {
            let (tag, mut f) = d.field()?;
            match tag {
                F_SIZE => p.size = f.u64()?,
                F_ETAG => p.md5 = f.bytes()?.try_into().map_err(|_| DecodeError)?,
                F_MTIME => p.mtime_ms = f.i64()?,
                F_EXTENT => extents.push(decode_extent(&mut f)?),
                F_CHECKSUM => p.checksum = Some(decode_checksum(&mut f)?),
                _ => {}
            }
        }
        p.extents = extents.into_boxed_slice();
        Ok(p)
    }
}

impl Upload {
    /// Encodes what CreateMultipartUpload fixed (parts travel in their own
    /// records).
    pub fn encode_header(&self, e: &mut Enc) {
        e.field(F_UPLOAD_ID, |e| {
            e.u128(self.id.0);
        });
        e.field(F_INITIATED, |e| {
            e.i64(self.initiated_ms);
        });
        e.field(F_INITIATOR, |e| {
            e.str(&self.initiator);
        });
        if let Some((algo, full)) = self.checksum {
            e.field(F_UPLOAD_CHECKSUM, |e| {
                e.u8(algo as u8).u8(full as u8);
            });
        }
        e.buf.extend_from_slice(&self.meta.0);
    }

    pub fn decode_header(d: &mut Dec) -> Result<Self, DecodeError> {
        let mut u = Upload {
            id: UploadId(0),
            initiated_ms: 0,
            initiator: String::new(),
            checksum: None,
            meta: MetaBlob::default(),
            parts: Default::default(),
        };
        let mut meta = ObjectMeta::default();
        while !d.is_empty() {
            let (tag, mut f) = d.field()?;
            match tag {
                F_UPLOAD_ID => u.id = UploadId(f.u128()?),
                F_INITIATED => u.initiated_ms = f.i64()?,
                F_INITIATOR => u.initiator = f.string()?,
                F_UPLOAD_CHECKSUM => {
                    let algo = ChecksumAlgo::from_u8(f.u8()?).ok_or(DecodeError)?;
                    u.checksum = Some((algo, f.u8()? != 0));
                }
                _ => meta.decode_field(tag, &mut f)?,
            }
        }
        u.meta = MetaBlob::new(&meta);
        Ok(u)
    }

    /// Log bytes held by the parts.
    pub fn stored_bytes(&self) -> u64 {
        self.parts.values().flat_map(|p| p.extents.iter()).map(|e| e.len).sum()
    }
}

fn encode_checksum(e: &mut Enc, c: &Checksum) {
    e.field(F_CHECKSUM, |e| {
        e.u8(c.algo as u8).bytes(&c.value).u32(c.parts);
    });
}

fn decode_checksum(f: &mut Dec) -> Result<Checksum, DecodeError> {
    let algo = ChecksumAlgo::from_u8(f.u8()?).ok_or(DecodeError)?;
    let value = f.bytes()?.to_vec();
    let parts = f.u32()?;
    Ok(Checksum { algo, value, parts })
}

impl ObjectMeta {
    /// An upper bound of the encoded size (for group-commit sizing).
    pub fn approx_encoded_len(&self) -> usize {
        let strings = [
            &self.content_type,
            &self.content_encoding,
            &self.content_disposition,
            &self.content_language,
            &self.cache_control,
            &self.expires,
            &self.storage_class,
        ];
        let s: usize = strings.iter().map(|v| v.as_ref().map_or(0, |s| s.len() + 16)).sum();
        let pairs: usize = self.user.iter().chain(&self.tags).map(|(k, v)| k.len() + v.len() + 16).sum();
        let checksum = self.checksum.as_ref().map_or(0, |c| c.value.len() + 32);
        s + pairs
            + checksum
            + self.part_sizes.len() * 16
            + self.part_checksums.iter().map(|c| c.len() + 8).sum::<usize>()
            + self.completed_upload.map_or(0, |_| 24)
            + self.owner.as_ref().map_or(0, |o| o.len() + 16)
            + self.acl.as_ref().map_or(0, |a| a.len() + 16)
    }

    fn encode(&self, e: &mut Enc) {
        let strings = [
            (F_CONTENT_TYPE, &self.content_type),
            (F_CONTENT_ENCODING, &self.content_encoding),
            (F_CONTENT_DISPOSITION, &self.content_disposition),
            (F_CONTENT_LANGUAGE, &self.content_language),
            (F_CACHE_CONTROL, &self.cache_control),
            (F_EXPIRES, &self.expires),
            (F_STORAGE_CLASS, &self.storage_class),
            (F_OBJECT_OWNER, &self.owner),
        ];
        for (tag, value) in strings {
            if let Some(s) = value {
                e.field(tag, |e| {
                    e.str(s);
                });
            }
        }
        for (tag, pairs) in [(F_USER_META, &self.user), (F_TAG, &self.tags)] {
            for (k, v) in pairs {
                e.field(tag, |e| {
                    e.str(k).str(v);
                });
            }
        }
        if let Some(c) = &self.checksum {
            encode_checksum(e, c);
        }
        for size in &self.part_sizes {
            e.field(F_PART_SIZE, |e| {
                e.u64(*size);
            });
        }
        for c in &self.part_checksums {
            e.field(F_PART_CHECKSUM, |e| {
                e.bytes(c);
            });
        }
        if let Some(id) = self.completed_upload {
            e.field(F_COMPLETED_UPLOAD, |e| {
                e.u128(id.0);
            });
        }
        if let Some(acl) = &self.acl {
            e.field(F_ACL, |e| {
                e.bytes(acl);
            });
        }
    }

    fn decode_field(&mut self, tag: u8, f: &mut Dec) -> Result<(), DecodeError> {
        let slot = match tag {
            F_CONTENT_TYPE => &mut self.content_type,
            F_CONTENT_ENCODING => &mut self.content_encoding,
            F_CONTENT_DISPOSITION => &mut self.content_disposition,
            F_CONTENT_LANGUAGE => &mut self.content_language,
            F_CACHE_CONTROL => &mut self.cache_control,
            F_EXPIRES => &mut self.expires,
            F_STORAGE_CLASS => &mut self.storage_class,
            F_OBJECT_OWNER => &mut self.owner,
            F_ACL => {
                self.acl = Some(f.bytes()?.to_vec());
                return Ok(());
            }
            F_USER_META => {
                self.user.push((f.string()?, f.string()?));
                return Ok(());
            }
            F_TAG => {
                self.tags.push((f.string()?, f.string()?));
                return Ok(());
            }
            F_CHECKSUM => {
                self.checksum = Some(decode_checksum(f)?);
                return Ok(());
            }
            F_PART_SIZE => {
                self.part_sizes.push(f.u64()?);
                return Ok(());
            }
            F_PART_CHECKSUM => {
                self.part_checksums.push(f.bytes()?.to_vec());
                return Ok(());
            }
            F_COMPLETED_UPLOAD => {
                self.completed_upload = Some(UploadId(f.u128()?));
                return Ok(());
            }
            // A field a later version added: skip it.
            _ => return Ok(()),
        };
        *slot = Some(f.string()?);
        Ok(())
    }
}

impl BucketState {
    pub fn encode(&self, e: &mut Enc) {
        e.field(F_OWNER, |e| {
            e.str(&self.owner);
        });
        e.field(F_CREATED, |e| {
            e.i64(self.created_ms);
        });
        e.field(F_VERSIONING, |e| {
            e.u8(self.versioning as u8);
        });
        for (name, doc) in &self.configs {
            e.field(F_CONFIG, |e| {
                e.str(name).bytes(doc);
            });
        }
    }

    pub fn decode(d: &mut Dec) -> Result<Self, DecodeError> {
        let mut b = BucketState::default();
        while !d.is_empty() {
            let (tag, mut f) = d.field()?;
            match tag {
                F_OWNER => b.owner = f.string()?,
                F_CREATED => b.created_ms = f.i64()?,
                F_VERSIONING => {
                    b.versioning = match f.u8()? {
                        0 => Versioning::Unversioned,
                        1 => Versioning::Enabled,
                        2 => Versioning::Suspended,
                        _ => return Err(DecodeError),
                    }
                }
                F_CONFIG => b.configs.push((f.string()?, f.bytes()?.to_vec())),
                _ => {}
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_version() -> Version {
        Version {
            id: VersionId(0xabc),
            seq: 9,
            mtime_ms: 1_700_000_000_000,
            size: 5,
            etag: ETag { md5: [7; 16], parts: 2 },
            delete_marker: false,
            extents: vec![Extent { segment: SegmentId(3), offset: 8192, len: 5 }].into(),
            meta: MetaBlob::new(&ObjectMeta {
                content_type: Some("text/plain".into()),
                user: vec![("a".into(), "b".into())],
                checksum: Some(Checksum { algo: ChecksumAlgo::Crc32c, value: vec![1, 2, 3, 4], parts: 0 }),
                tags: vec![("t".into(), "v".into())],
                part_sizes: vec![3, 2],
                owner: Some("AKALT".into()),
                acl: Some(b"READ g:AllUsers".to_vec()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn access_fields_are_seen_without_decoding() {
        assert!(!sample_version().meta.owned_by_bucket_owner_privately());
        let plain = MetaBlob::new(&ObjectMeta { content_type: Some("a/b".into()), ..Default::default() });
        assert!(plain.owned_by_bucket_owner_privately());
        let acl_only = MetaBlob::new(&ObjectMeta { acl: Some(b"READ g:AllUsers".to_vec()), ..Default::default() });
        assert!(!acl_only.owned_by_bucket_owner_privately());
    }

    #[test]
    fn version_round_trip() {
        let v = sample_version();
        let mut e = Enc::new();
        v.encode(&mut e);
        assert_eq!(Version::decode(&mut Dec::new(&e.buf)).unwrap(), v);
    }

    #[test]
    fn upload_and_part_round_trip() {
        let u = Upload {
            id: UploadId::generate(5),
            initiated_ms: 77,
            initiator: "AK".into(),
            checksum: Some((ChecksumAlgo::Crc64Nvme, true)),
            meta: MetaBlob::new(&ObjectMeta { content_type: Some("a/b".into()), ..Default::default() }),
            parts: Default::default(),
        };
        let mut e = Enc::new();
        u.encode_header(&mut e);
        assert_eq!(Upload::decode_header(&mut Dec::new(&e.buf)).unwrap(), u);
        let p = Part {
            size: 9,
            md5: [3; 16],
            mtime_ms: 4,
            checksum: Some(Checksum { algo: ChecksumAlgo::Crc32, value: vec![1, 2, 3, 4], parts: 0 }),
            extents: vec![Extent { segment: SegmentId(1), offset: 4096, len: 9 }].into(),
        };
        let mut e = Enc::new();
        p.encode(&mut e);
        assert_eq!(Part::decode(&mut Dec::new(&e.buf)).unwrap(), p);
        assert_eq!(UploadId::parse(&u.id.to_string()), Some(u.id));
        assert_eq!(UploadId::parse("null"), None);
    }

    #[test]
    fn bucket_round_trip() {
        let b = BucketState {
            owner: "AK".into(),
            created_ms: 1,
            versioning: Versioning::Suspended,
            configs: vec![("cors".into(), b"<x/>".to_vec())],
        };
        let mut e = Enc::new();
        b.encode(&mut e);
        assert_eq!(BucketState::decode(&mut Dec::new(&e.buf)).unwrap(), b);
    }

    #[test]
    fn version_id_text() {
        assert_eq!(VersionId::NULL.to_string(), "null");
        let v = VersionId::generate(123);
        assert_eq!(VersionId::parse(&v.to_string()), Some(v));
        assert_eq!(VersionId::parse("null"), Some(VersionId::NULL));
        assert_eq!(VersionId::parse("xyz"), None);
        assert_eq!(VersionId::parse(&"0".repeat(32)), None);
    }

    #[test]
    fn etag_text() {
        let e = ETag { md5: [0xab; 16], parts: 0 };
        assert_eq!(e.to_string(), format!("\"{}\"", "ab".repeat(16)));
        let e = ETag { md5: [0; 16], parts: 3 };
        assert!(e.to_string().ends_with("-3\""));
    }
}
