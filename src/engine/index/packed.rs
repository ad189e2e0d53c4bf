//! A key's versions, newest first, packed into one exact-size allocation.
//!
//! The index holds millions of keys, most with a single version of a small object, so what a
//! version costs in memory decides how many objects a node can hold. A [`Version`] struct is
//! 96 bytes plus two boxes (extents, metadata); packed, an unversioned object with one extent
//! and a common content type takes about 40 bytes: variable-length integers, no version id for
//! the null version, no extent length when the one extent is the whole object, and one byte
//! for the metadata of the most common content types.
//!
//! Layout, per version, newest first: `len` (varint, bytes that follow) and then
//!
//! | field | encoding |
//! |---|---|
//! | flags | u8: [`F_DELETE_MARKER`], [`F_ID`], [`F_LEN_IS_SIZE`], [`F_META_COMMON`], [`F_NO_ETAG`] |
//! | id | 16 bytes LE, only with `F_ID` (else the null version) |
//! | seq, mtime (zigzag), size | varints |
//! | md5, parts | 16 bytes and a varint, unless `F_NO_ETAG` |
//! | extents | count varint, then segment, offset and (unless `F_LEN_IS_SIZE`) len varints |
//! | metadata | one byte indexing [`COMMON_META`] with `F_META_COMMON`, else the `MetaBlob` bytes to the end |
//!
//! An [`Entry`] puts the key in front of its versions, so the index's sorted set holds one
//! pointer per key. This form lives only in memory; records and checkpoints keep their own
//! formats.

use std::ops::Range;
use std::sync::LazyLock;

use crate::engine::types::{ETag, Extent, MetaBlob, ObjectMeta, SegmentId, Version, VersionId};

const F_DELETE_MARKER: u8 = 1;
/// A non-null version id follows.
const F_ID: u8 = 2;
/// One extent whose length is the object size (not stored).
const F_LEN_IS_SIZE: u8 = 4;
/// The metadata is the entry of [`COMMON_META`] named by one byte.
const F_META_COMMON: u8 = 8;
/// The ETag is the default one (delete markers).
const F_NO_ETAG: u8 = 16;

/// Content types whose metadata (that content type and nothing else) is stored as one byte.
const COMMON_CONTENT_TYPES: [&str; 16] = [
    "application/octet-stream",
    "binary/octet-stream",
    "text/plain",
    "text/html",
    "text/css",
    "text/csv",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-directory",
    "image/jpeg",
    "image/png",
    "video/mp4",
];

/// The encoded metadata of each common content type; index 16 is "no metadata at all".
static COMMON_META: LazyLock<Vec<MetaBlob>> = LazyLock::new(|| {
    let mut blobs: Vec<MetaBlob> = COMMON_CONTENT_TYPES
        .iter()
        .map(|t| MetaBlob::new(&ObjectMeta { content_type: Some((*t).to_owned()), ..ObjectMeta::default() }))
        .collect();
    blobs.push(MetaBlob::default());
    blobs
});

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*at`. The bytes were written by this module, so they are well formed.
fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends the packed form of `v` (its length first).
fn encode(v: &Version, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64);
    let mut flags = 0;
    if v.delete_marker {
        flags |= F_DELETE_MARKER;
    }
    if !v.id.is_null() {
        flags |= F_ID;
    }
    let len_is_size = matches!(&*v.extents, [e] if e.len == v.size);
    if len_is_size {
        flags |= F_LEN_IS_SIZE;
    }
    let common = COMMON_META.iter().position(|m| *m == v.meta);
    if common.is_some() {
        flags |= F_META_COMMON;
    }
    if v.etag == ETag::default() {
        flags |= F_NO_ETAG;
    }
    body.push(flags);
    if !v.id.is_null() {
        body.extend_from_slice(&v.id.0.to_le_bytes());
    }
    put_varint(&mut body, v.seq);
    put_varint(&mut body, zigzag(v.mtime_ms));
    put_varint(&mut body, v.size);
    if flags & F_NO_ETAG == 0 {
        body.extend_from_slice(&v.etag.md5);
        put_varint(&mut body, u64::from(v.etag.parts));
    }
    put_varint(&mut body, v.extents.len() as u64);
    for e in v.extents.iter() {
        put_varint(&mut body, e.segment.0);
        put_varint(&mut body, e.offset);
        if !len_is_size {
            put_varint(&mut body, e.len);
        }
    }
    match common {
        Some(i) => body.push(i as u8),
        None => body.extend_from_slice(v.meta.as_bytes()),
    }
    put_varint(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// One packed version, read in place: the fixed fields decoded, extents and metadata on demand.
#[derive(Clone, Copy)]
pub struct VersionRef<'a> {
    pub id: VersionId,
    pub seq: u64,
    pub mtime_ms: i64,
    pub size: u64,
    pub etag: ETag,
    pub delete_marker: bool,
    extent_count: usize,
    len_is_size: bool,
    extents: &'a [u8],
    meta: &'a [u8],
    meta_common: bool,
}

impl<'a> VersionRef<'a> {
    fn decode(body: &'a [u8]) -> VersionRef<'a> {
        let flags = body[0];
        let mut at = 1;
        let id = if flags & F_ID != 0 {
            at += 16;
            VersionId(u128::from_le_bytes(body[1..17].try_into().expect("16 bytes")))
        } else {
            VersionId::NULL
        };
        let seq = varint(body, &mut at);
        let mtime_ms = unzigzag(varint(body, &mut at));
        let size = varint(body, &mut at);
        let etag = if flags & F_NO_ETAG == 0 {
            let md5 = body[at..at + 16].try_into().expect("16 bytes");
            at += 16;
            ETag { md5, parts: varint(body, &mut at) as u32 }
        } else {
            ETag::default()
        };
        let extent_count = varint(body, &mut at) as usize;
        let len_is_size = flags & F_LEN_IS_SIZE != 0;
        let start = at;
        for _ in 0..extent_count {
            varint(body, &mut at);
            varint(body, &mut at);
            if !len_is_size {
                varint(body, &mut at);
            }
        }
        VersionRef {
            id,
            seq,
            mtime_ms,
            size,
            etag,
            delete_marker: flags & F_DELETE_MARKER != 0,
            extent_count,
            len_is_size,
            extents: &body[start..at],
            meta: &body[at..],
            meta_common: flags & F_META_COMMON != 0,
        }
    }

    /// The extents holding the object's bytes, in order.
    pub fn extents(&self) -> impl Iterator<Item = Extent> + use<'a> {
        let (bytes, len_is_size, size) = (self.extents, self.len_is_size, self.size);
        let mut at = 0;
        (0..self.extent_count).map(move |_| {
            let segment = SegmentId(varint(bytes, &mut at));
            let offset = varint(bytes, &mut at);
            let len = if len_is_size { size } else { varint(bytes, &mut at) };
            Extent { offset, len, segment }
        })
    }

    fn meta_blob(&self) -> MetaBlob {
        if self.meta_common {
            COMMON_META[usize::from(self.meta[0])].clone()
        } else {
            MetaBlob::from_encoded(self.meta.into())
        }
    }

    /// The storage class named in the metadata, if any.
    pub fn storage_class(&self) -> Option<String> {
        self.class_and_owner().0
    }

    /// The storage class and the writer (when not the bucket owner), as
    /// listings report them: one metadata decode for both.
    pub fn class_and_owner(&self) -> (Option<String>, Option<String>) {
        if self.meta_common {
            return (None, None);
        }
        let m = self.meta_blob().get();
        (m.storage_class, m.owner)
    }

    /// The version as the rest of the engine uses it.
    pub fn to_version(&self) -> Version {
        Version {
            id: self.id,
            seq: self.seq,
            mtime_ms: self.mtime_ms,
            size: self.size,
            etag: self.etag,
            delete_marker: self.delete_marker,
            extents: self.extents().collect(),
            meta: self.meta_blob(),
        }
    }
}

/// A key's packed versions, newest first (by commit sequence), read in place.
#[derive(Clone, Copy, Default)]
pub struct Versions<'a>(&'a [u8]);

impl<'a> Versions<'a> {
    /// Each version with the byte range it occupies.
    fn spans(self) -> impl Iterator<Item = (Range<usize>, VersionRef<'a>)> {
        let b = self.0;
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= b.len() {
                return None;
            }
            let start = at;
            let len = varint(b, &mut at) as usize;
            let body = &b[at..at + len];
            at += len;
            Some((start..at, VersionRef::decode(body)))
        })
    }

    pub fn iter(self) -> impl Iterator<Item = VersionRef<'a>> {
        self.spans().map(|(_, v)| v)
    }

    /// The newest version.
    pub fn first(self) -> Option<VersionRef<'a>> {
        self.iter().next()
    }

    pub fn find(self, id: VersionId) -> Option<VersionRef<'a>> {
        self.iter().find(|v| v.id == id)
    }

    pub fn len(self) -> usize {
        self.spans().count()
    }

    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(self) -> Vec<Version> {
        self.iter().map(|v| v.to_version()).collect()
    }

    /// `key`'s entry holding these versions and `version`, in sequence order, in place of a
    /// version with the same id; and the extents of the version it replaced.
    pub fn with(self, key: &[u8], version: &Version) -> (Entry, Vec<Extent>) {
        let mut out = entry_head(key, self.0.len() + 64);
        let (mut freed, mut placed) = (Vec::new(), false);
        for (range, v) in self.spans() {
            if v.id == version.id {
                freed = v.extents().collect();
                continue;
            }
            if !placed && v.seq < version.seq {
                encode(version, &mut out);
                placed = true;
            }
            out.extend_from_slice(&self.0[range]);
        }
        if !placed {
            encode(version, &mut out);
        }
        (Entry(out.into_boxed_slice()), freed)
    }

    /// `key`'s entry without version `id` (`None` when no version is left) and that version's
    /// extents; `None` if it is not here.
    pub fn without(self, key: &[u8], id: VersionId) -> Option<(Option<Entry>, Vec<Extent>)> {
        let (range, v) = self.spans().find(|(_, v)| v.id == id)?;
        let freed = v.extents().collect();
        if range.len() == self.0.len() {
            return Some((None, freed));
        }
        let mut out = entry_head(key, self.0.len() - range.len());
        out.extend_from_slice(&self.0[..range.start]);
        out.extend_from_slice(&self.0[range.end..]);
        Some((Some(Entry(out.into_boxed_slice())), freed))
    }
}

/// The start of an entry's bytes: the key's length and the key, with room for `more`.
fn entry_head(key: &[u8], more: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + more + 3);
    put_varint(&mut out, key.len() as u64);
    out.extend_from_slice(key);
    out
}

/// A key and its packed versions in one exact-size allocation (key length varint, key bytes,
/// versions), ordered by the key bytes: an index slot is one pointer and a length.
#[derive(PartialEq, Eq)]
pub struct Entry(Box<[u8]>);

impl Entry {
    #[cfg(test)]
    fn new(key: &[u8], versions: &[u8]) -> Entry {
        let mut out = entry_head(key, versions.len());
        out.extend_from_slice(versions);
        Entry(out.into_boxed_slice())
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let mut at = 0;
        let len = varint(&self.0, &mut at) as usize;
        self.0[at..].split_at(len)
    }

    pub fn key(&self) -> &[u8] {
        self.split().0
    }

    /// The key as text (keys are UTF-8; S3 requires it).
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key()).expect("keys are UTF-8")
    }

    pub fn versions(&self) -> Versions<'_> {
        Versions(self.split().1)
    }
}

impl std::borrow::Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: u128, seq: u64, size: u64, extents: Vec<Extent>, meta: ObjectMeta) -> Version {
        Version {
            id: VersionId(id),
            seq,
            mtime_ms: 1_700_000_000_123 + seq as i64,
            size,
            etag: ETag { md5: [seq as u8; 16], parts: (extents.len() > 1) as u32 * extents.len() as u32 },
            delete_marker: false,
            extents: extents.into(),
            meta: MetaBlob::new(&meta),
        }
    }

    fn extent(segment: u64, offset: u64, len: u64) -> Extent {
        Extent { offset, len, segment: SegmentId(segment) }
    }

    #[test]
    fn versions_round_trip_in_sequence_order() {
        let plain = version(
            0,
            5,
            4096,
            vec![extent(3, 1 << 30, 4096)],
            ObjectMeta { content_type: Some("application/octet-stream".into()), ..ObjectMeta::default() },
        );
        let mut custom_meta = ObjectMeta { content_type: Some("x/y".into()), ..ObjectMeta::default() };
        custom_meta.user.push(("a".into(), "b".into()));
        custom_meta.storage_class = Some("STANDARD_IA".into());
        let multi =
            version(7 << 70 | 9, 9, 3 << 20, vec![extent(1, 0, 1 << 20), extent(2, 4096, 2 << 20)], custom_meta);
        let marker = Version {
            id: VersionId(u128::MAX),
            seq: 7,
            mtime_ms: -5,
            size: 0,
            etag: ETag::default(),
            delete_marker: true,
            extents: Box::new([]),
            meta: MetaBlob::default(),
        };
        let put = |e: &Entry, v: &Version| e.versions().with(e.key(), v);
        let remove = |e: &Entry, id: VersionId| {
            e.versions()
                .without(e.key(), id)
                .map(|(rest, freed)| (rest.unwrap_or_else(|| Entry::new(e.key(), &[])), freed))
        };
        let vs = Entry::new(b"some/key", &[]);
        assert!(vs.versions().is_empty());
        let (vs, freed) = put(&vs, &plain);
        assert!(freed.is_empty());
        let (vs, _) = put(&vs, &multi);
        let (vs, _) = put(&vs, &marker);
        assert_eq!(vs.key(), b"some/key");
        assert_eq!(vs.versions().to_vec(), vec![multi.clone(), marker.clone(), plain.clone()]);
        assert_eq!(vs.versions().len(), 3);
        assert_eq!(vs.versions().first().map(|v| v.id), Some(multi.id));
        assert_eq!(vs.versions().find(VersionId::NULL).map(|v| v.to_version()), Some(plain.clone()));
        assert_eq!(vs.versions().find(multi.id).and_then(|v| v.storage_class()), Some("STANDARD_IA".to_owned()));
        // A common content type costs one byte; the whole unversioned 4 KiB object about 40.
        let (alone, _) = put(&Entry::new(b"", &[]), &plain);
        assert!(alone.0.len() <= 40, "{} bytes", alone.0.len());

        // Replacing a version (compaction moving it) keeps its place and frees the old extents.
        let mut moved = plain.clone();
        moved.extents = Box::new([extent(8, 0, 4096)]);
        let (vs, freed) = put(&vs, &moved);
        assert_eq!(freed, vec![extent(3, 1 << 30, 4096)]);
        assert_eq!(vs.versions().to_vec(), vec![multi.clone(), marker.clone(), moved.clone()]);
        let (vs, freed) = remove(&vs, marker.id).expect("the marker is there");
        assert!(freed.is_empty());
        assert!(remove(&vs, marker.id).is_none());
        let (vs, freed) = remove(&vs, multi.id).expect("there");
        assert_eq!(freed, multi.extents.to_vec());
        assert_eq!(vs.versions().to_vec(), vec![moved.clone()]);
        let (vs, freed) = remove(&vs, VersionId::NULL).expect("there");
        assert_eq!(freed, moved.extents.to_vec());
        assert!(vs.versions().is_empty());
        assert_eq!(vs.key(), b"some/key");
    }

    #[test]
    fn entries_order_by_key_bytes() {
        use std::ops::Bound;
        let mut set = std::collections::BTreeSet::new();
        for key in ["b", "a/b", "a", "é", "a0"] {
            set.insert(Entry::new(key.as_bytes(), &[1, 2, 3]));
        }
        let keys: Vec<&str> = set.iter().map(Entry::key_str).collect();
        assert_eq!(keys, ["a", "a/b", "a0", "b", "é"]);
        assert!(set.contains(b"a/b".as_slice()));
        assert_eq!(set.range::<[u8], _>((Bound::Included(b"a0".as_slice()), Bound::Unbounded)).count(), 3);
    }

    #[test]
    fn varints_cover_the_range() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut at = 0;
            assert_eq!(varint(&out, &mut at), v);
            assert_eq!(at, out.len());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
