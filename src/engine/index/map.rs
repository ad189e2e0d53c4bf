//! A shard's in-memory index: bucket → key → versions (newest first).
//!
//! Keys are kept as UTF-8 bytes in a `BTreeMap`, so listings walk them in
//! S3's order (byte order of UTF-8) and a delimiter's common prefix can be
//! skipped with one range lookup.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use super::packed::{Entry, Versions};
use crate::engine::record::MetaOp;
use crate::engine::types::{
    BucketState, ETag, Extent, SegmentId, Upload, UploadId, Usage, UsageEntry, Version, VersionId,
};

#[derive(Default)]
pub struct Index {
    /// Keys of every bucket that has keys on this shard.
    keys: HashMap<String, BTreeSet<Entry>>,
    /// Buckets this shard owns (their records are in this shard's log).
    owned_buckets: BTreeMap<String, BucketState>,
    /// Multipart uploads in progress: bucket → key → uploads by id.
    pub(super) uploads: HashMap<String, Uploads>,
    /// The meter of the buckets this shard owns: bucket → (user, hour) →
    /// totals. Saved only by checkpoints.
    usage: HashMap<String, BTreeMap<(String, u32), Usage>>,
    /// What each bucket holds on this shard, kept as changes apply (so
    /// recovery rebuilds it from the checkpoint and the log).
    stored: HashMap<String, Stored>,
}

/// What a bucket holds: the bytes of every version, the versions and
/// delete markers, and the keys whose current version is an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stored {
    pub bytes: u64,
    pub versions: u64,
    pub delete_markers: u64,
    pub objects: u64,
}

impl Stored {
    fn of(v: Versions<'_>) -> Stored {
        let mut s = Stored::default();
        for (i, v) in v.iter().enumerate() {
            if v.delete_marker {
                s.delete_markers += 1;
            } else {
                s.versions += 1;
                s.bytes += v.size;
                s.objects += u64::from(i == 0);
            }
        }
        s
    }

    pub fn add(&mut self, o: &Stored) {
        self.bytes += o.bytes;
        self.versions += o.versions;
        self.delete_markers += o.delete_markers;
        self.objects += o.objects;
    }

    fn sub(&mut self, o: &Stored) {
        self.bytes -= o.bytes;
        self.versions -= o.versions;
        self.delete_markers -= o.delete_markers;
        self.objects -= o.objects;
    }
}

pub(super) type Uploads = BTreeMap<Box<[u8]>, BTreeMap<UploadId, Upload>>;

/// What a listing asks one shard for.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Entries must sort strictly after these bytes (a marker, a start-after,
    /// or a continuation position).
    pub after: Vec<u8>,
    pub limit: usize,
}

/// The part of a version a listing shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: ETag,
    pub mtime_ms: i64,
    pub storage_class: Option<String>,
    /// The object's writer where it is not the bucket owner.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListEntry {
    Object(ObjectSummary),
    Prefix(String),
}

impl ListEntry {
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object(o) => &o.key,
            ListEntry::Prefix(p) => p,
        }
    }
}

/// Where an index scan stopped: (bucket, last key looked at).
pub type ScanCursor = (String, Vec<u8>);

/// What ListObjectVersions asks one shard for: entries after
/// (`key_marker`, `version_marker`) in (key ascending, newest first) order.
#[derive(Clone, Debug, Default)]
pub struct VersionsQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub version_marker: Option<VersionId>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSummary {
    pub id: VersionId,
    pub size: u64,
    pub etag: ETag,
    pub mtime_ms: i64,
    pub delete_marker: bool,
    pub latest: bool,
    pub storage_class: Option<String>,
    /// The version's writer where it is not the bucket owner.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionEntry {
    Version { key: String, version: VersionSummary },
    Prefix(String),
}

impl VersionEntry {
    pub fn name(&self) -> &str {
        match self {
            VersionEntry::Version { key, .. } => key,
            VersionEntry::Prefix(p) => p,
        }
    }
}

/// Merges per-shard ListObjectVersions pages. A key's versions all come
/// from one shard, already newest first; the sort is stable to keep that.
pub fn merge_version_pages(pages: Vec<Vec<VersionEntry>>, limit: usize) -> (Vec<VersionEntry>, bool) {
    let mut all: Vec<VersionEntry> = pages.into_iter().flatten().collect();
    all.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    all.dedup_by(|a, b| matches!((&*a, &*b), (VersionEntry::Prefix(x), VersionEntry::Prefix(y)) if x == y));
    let truncated = all.len() > limit;
    all.truncate(limit);
    (all, truncated)
}

/// Bytes that sort after every key starting with `prefix` and before every
/// other key greater than it (0xFF never occurs in UTF-8).
pub fn after_prefix(prefix: &str) -> Vec<u8> {
    let mut b = prefix.as_bytes().to_vec();
    b.push(0xFF);
    b
}

impl Index {
    /// Adds metered requests to a bucket this shard owns; false (nothing
    /// counted) when it owns no such bucket.
    pub fn add_usage(&mut self, bucket: &str, user: &str, hour: u32, usage: &Usage) -> bool {
        if !self.owned_buckets.contains_key(bucket) {
            return false;
        }
        let per = self.usage.entry(bucket.to_string()).or_default();
        per.entry((user.to_string(), hour)).or_default().add(usage);
        true
    }

    /// The meter of every bucket this shard owns, from hour `since` on.
    pub fn usage_since(&self, since: u32) -> Vec<UsageEntry> {
        let mut out = Vec::new();
        for (bucket, per) in &self.usage {
            for ((user, hour), u) in per.iter().filter(|((_, h), _)| *h >= since) {
                out.push((bucket.clone(), user.clone(), *hour, *u));
            }
        }
        out
    }

    /// What each bucket holds on this shard.
    pub fn stored(&self) -> &HashMap<String, Stored> {
        &self.stored
    }

    /// Moves a bucket's totals from what a key held to what it holds now.
    fn account(&mut self, bucket: &str, before: Stored, after: Stored) {
        if before == after {
            return;
        }
        let s = self.stored.entry(bucket.to_string()).or_default();
        s.add(&after);
        s.sub(&before);
        if *s == Stored::default() {
            self.stored.remove(bucket);
        }
    }

    /// Applies one metadata change; returns the extents it made dead.
    pub fn apply(&mut self, op: &MetaOp) -> Vec<Extent> {
        match op {
            MetaOp::PutVersion { bucket, key, version } => self.put_version(bucket, key, version),
            MetaOp::DeleteVersion { bucket, key, id } => {
                let Some(map) = self.keys.get_mut(bucket.as_str()) else {
                    return Vec::new();
                };
                let Some(old) = map.get(key.as_bytes()) else { return Vec::new() };
                let before = Stored::of(old.versions());
                let Some((rest, freed)) = old.versions().without(key.as_bytes(), *id) else {
                    return Vec::new();
                };
                let after = rest.as_ref().map_or_else(Stored::default, |e| Stored::of(e.versions()));
                match rest {
                    Some(entry) => {
                        map.replace(entry);
                    }
                    None => {
                        map.remove(key.as_bytes());
                        if map.is_empty() {
                            self.keys.remove(bucket.as_str());
                        }
                    }
                }
                self.account(bucket, before, after);
                freed
            }
            MetaOp::PutBucket { name, state } => {
                self.owned_buckets.insert(name.clone(), state.clone());
                Vec::new()
            }
            MetaOp::DeleteBucket { name } => {
                self.owned_buckets.remove(name);
                self.usage.remove(name);
                Vec::new()
            }
            MetaOp::Usage { bucket, user, hour, usage } => {
                self.usage.entry(bucket.clone()).or_default().insert((user.clone(), *hour), *usage);
                Vec::new()
            }
            MetaOp::CompleteUpload { bucket, key, upload, version } => {
                let mut freed = self.remove_upload(bucket, key, *upload);
                freed.extend(self.put_version(bucket, key, version));
                freed
            }
            MetaOp::CreateUpload { .. } | MetaOp::PutPart { .. } | MetaOp::AbortUpload { .. } => self.apply_upload(op),
        }
    }

    fn put_version(&mut self, bucket: &str, key: &str, version: &Version) -> Vec<Extent> {
        let map = match self.keys.get_mut(bucket) {
            Some(map) => map,
            None => self.keys.entry(bucket.to_string()).or_default(),
        };
        let old = map.get(key.as_bytes()).map_or_else(Versions::default, Entry::versions);
        let before = Stored::of(old);
        let (entry, freed) = old.with(key.as_bytes(), version);
        let after = Stored::of(entry.versions());
        map.replace(entry);
        self.account(bucket, before, after);
        freed
    }

    fn packed(&self, bucket: &str, key: &str) -> Option<Versions<'_>> {
        self.keys.get(bucket).and_then(|m| m.get(key.as_bytes())).map(Entry::versions)
    }

    /// All versions of a key, newest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<Version> {
        self.packed(bucket, key).map(Versions::to_vec).unwrap_or_default()
    }

    /// The newest version of a key (possibly a delete marker).
    pub fn current(&self, bucket: &str, key: &str) -> Option<Version> {
        self.packed(bucket, key)?.first().map(|v| v.to_version())
    }

    pub fn version(&self, bucket: &str, key: &str, id: VersionId) -> Option<Version> {
        self.packed(bucket, key)?.find(id).map(|v| v.to_version())
    }

    /// Whether any key (any version, markers included) of `bucket` is here.
    /// Whether the bucket holds an object version or delete marker here
    /// (uploads in progress do not stop DeleteBucket: it aborts them).
    pub fn has_keys(&self, bucket: &str) -> bool {
        self.keys.get(bucket).is_some_and(|m| !m.is_empty())
    }

    /// Whether the bucket has an upload in progress here.
    pub fn has_uploads(&self, bucket: &str) -> bool {
        self.uploads.get(bucket).is_some_and(|m| !m.is_empty())
    }

    pub fn owned_buckets(&self) -> &BTreeMap<String, BucketState> {
        &self.owned_buckets
    }

    /// Every (bucket, key, versions) triple.
    pub fn for_each_key(&self, mut f: impl FnMut(&str, &str, &[Version])) {
        for (bucket, map) in &self.keys {
            for entry in map {
                f(bucket, entry.key_str(), &entry.versions().to_vec());
            }
        }
    }

    /// Names of the buckets that have keys here, sorted (checkpoint walks).
    pub fn key_buckets(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keys.keys().cloned().collect();
        names.sort();
        names
    }

    /// The keys of `bucket` after `after` (all of them for None), in order,
    /// with their versions newest first (checkpoint walks).
    pub fn keys_after<'a>(
        &'a self,
        bucket: &str,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a str, Vec<Version>)> + 'a {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        // The range is made here, so the iterator does not hold `after`.
        let range = self.keys.get(bucket).map(|m| m.range::<[u8], _>((from, Bound::Unbounded)));
        range.into_iter().flatten().map(|e| (e.key_str(), e.versions().to_vec()))
    }

    /// Versions with an extent in `segment`, walking buckets and keys in
    /// order from `cursor` (exclusive) and looking at no more than `limit`
    /// keys. Returns the matches and where to continue (None when done).
    pub fn versions_in_segment(
        &self,
        segment: SegmentId,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> (Vec<(String, String, VersionId)>, Option<ScanCursor>) {
        let mut buckets: Vec<&String> = self.keys.keys().collect();
        buckets.sort();
        let mut out = Vec::new();
        let mut seen = 0;
        for bucket in buckets {
            let from = match &cursor {
                Some((b, _)) if bucket < b => continue,
                Some((b, k)) if bucket == b => Bound::Excluded(k.as_slice()),
                _ => Bound::Unbounded,
            };
            for entry in self.keys[bucket].range::<[u8], _>((from, Bound::Unbounded)) {
                for v in entry.versions().iter().filter(|v| v.extents().any(|e| e.segment == segment)) {
                    out.push((bucket.clone(), entry.key_str().to_string(), v.id));
                }
                seen += 1;
                if seen == limit {
                    // The cursor is the last key looked at: the next step starts after it.
                    return (out, Some((bucket.clone(), entry.key().to_vec())));
                }
            }
        }
        (out, None)
    }

    /// Live payload bytes per segment (for compaction after recovery).
    pub fn live_bytes(&self) -> HashMap<SegmentId, u64> {
        let mut live = HashMap::new();
        for map in self.keys.values() {
            for entry in map {
                for e in entry.versions().iter().flat_map(|v| v.extents()) {
                    *live.entry(e.segment).or_default() += e.len;
                }
            }
        }
        for e in self.part_extents() {
            *live.entry(e.segment).or_default() += e.len;
        }
        live
    }

    /// Object counts and key bytes, for memory accounting.
    pub fn stats(&self) -> (usize, usize) {
        let mut objects = 0;
        let mut key_bytes = 0;
        for map in self.keys.values() {
            for entry in map {
                objects += entry.versions().len();
                key_bytes += entry.key().len();
            }
        }
        (objects, key_bytes)
    }

    /// Up to `q.limit` entries of a ListObjects page, in order: keys whose
    /// current version is not a delete marker, with keys that contain the
    /// delimiter after the prefix rolled up into common prefixes.
    pub fn list(&self, bucket: &str, q: &ListQuery) -> Vec<ListEntry> {
        let mut out = Vec::new();
        let Some(map) = self.keys.get(bucket) else {
            return out;
        };
        let prefix = q.prefix.as_bytes();
        let mut lower: Vec<u8> = if q.after.as_slice() >= prefix { q.after.clone() } else { Vec::new() };
        let mut inclusive = lower.is_empty();
        if inclusive {
            lower = prefix.to_vec();
        }
        'restart: while out.len() < q.limit {
            let start = if inclusive { Bound::Included(lower.as_slice()) } else { Bound::Excluded(lower.as_slice()) };
            for entry in map.range::<[u8], _>((start, Bound::Unbounded)) {
                if !entry.key().starts_with(prefix) {
                    return out;
                }
                let Some(current) = entry.versions().first().filter(|v| !v.delete_marker) else {
                    continue;
                };
                let key_str = entry.key_str();
                if let Some(d) = q.delimiter.as_deref().filter(|d| !d.is_empty())
                    && let Some(i) = key_str[prefix.len()..].find(d)
                {
                    let common = &key_str[..prefix.len() + i + d.len()];
                    if common.as_bytes() > q.after.as_slice() {
                        out.push(ListEntry::Prefix(common.to_string()));
                    }
                    lower = after_prefix(common);
                    inclusive = false;
                    continue 'restart;
                }
                let (storage_class, owner) = current.class_and_owner();
                out.push(ListEntry::Object(ObjectSummary {
                    key: key_str.to_string(),
                    size: current.size,
                    etag: current.etag,
                    mtime_ms: current.mtime_ms,
                    storage_class,
                    owner,
                }));
                if out.len() >= q.limit {
                    return out;
                }
            }
            break;
        }
        out
    }
}

impl Index {
    /// Up to `q.limit` entries of a ListObjectVersions page: every version
    /// and delete marker of each key (newest first), keys in order, with
    /// delimiter roll-up into common prefixes.
    pub fn list_versions(&self, bucket: &str, q: &VersionsQuery) -> Vec<VersionEntry> {
        let mut out = Vec::new();
        let Some(map) = self.keys.get(bucket) else {
            return out;
        };
        let walk = KeyWalk {
            prefix: &q.prefix,
            delimiter: q.delimiter.as_deref(),
            marker: &q.key_marker,
            sub_marker: q.version_marker.is_some(),
            limit: q.limit,
        };
        let range =
            |from: Bound<&[u8]>| map.range::<[u8], _>((from, Bound::Unbounded)).map(|e| (e.key(), e.versions()));
        walk.run(range, &mut out, VersionEntry::Prefix, |key, versions, at_marker, out| {
            let mut skipping = at_marker;
            for (i, v) in versions.iter().enumerate() {
                if skipping {
                    skipping = Some(v.id) != q.version_marker;
                    continue;
                }
                let (storage_class, owner) = v.class_and_owner();
                out.push(VersionEntry::Version {
                    key: key.to_string(),
                    version: VersionSummary {
                        id: v.id,
                        size: v.size,
                        etag: v.etag,
                        mtime_ms: v.mtime_ms,
                        delete_marker: v.delete_marker,
                        latest: i == 0,
                        storage_class,
                        owner,
                    },
                });
                if out.len() >= q.limit {
                    return;
                }
            }
        });
        out
    }
}

/// A walk over a bucket's keys in order for the listings with a key marker
/// and a second marker within a key (ListObjectVersions' version-id-marker,
/// ListMultipartUploads' upload-id-marker): keys under `prefix`, after
/// `marker` (or from it, when `sub_marker` is set), with keys that contain
/// the delimiter after the prefix rolled up into one common prefix each.
pub(super) struct KeyWalk<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub marker: &'a str,
    pub sub_marker: bool,
    pub limit: usize,
}

impl KeyWalk<'_> {
    /// Calls `emit(key, value, at_marker, out)` for each key in order until
    /// `out` holds `limit` entries; `at_marker` tells that the key is the
    /// marker itself (so the second marker applies).
    pub fn run<'m, V, E, I>(
        &self,
        range: impl Fn(Bound<&[u8]>) -> I,
        out: &mut Vec<E>,
        prefix_entry: impl Fn(String) -> E,
        mut emit: impl FnMut(&str, V, bool, &mut Vec<E>),
    ) where
        I: Iterator<Item = (&'m [u8], V)>,
    {
        let prefix = self.prefix.as_bytes();
        let marker = self.marker.as_bytes();
        let (mut lower, mut inclusive) = match (marker > prefix, self.sub_marker) {
            (true, true) => (marker.to_vec(), true),
            (true, false) => (marker.to_vec(), false),
            (false, _) => (prefix.to_vec(), true),
        };
        'restart: while out.len() < self.limit {
            let start = if inclusive { Bound::Included(lower.as_slice()) } else { Bound::Excluded(lower.as_slice()) };
            for (key, value) in range(start) {
                if !key.starts_with(prefix) {
                    if key > prefix {
                        return;
                    }
                    continue;
                }
                let key_str = std::str::from_utf8(key).expect("keys are UTF-8");
                if let Some(d) = self.delimiter.filter(|d| !d.is_empty())
                    && let Some(i) = key_str[prefix.len()..].find(d)
                {
                    let common = &key_str[..prefix.len() + i + d.len()];
                    if common.as_bytes() > marker {
                        out.push(prefix_entry(common.to_string()));
                    }
                    lower = after_prefix(common);
                    inclusive = false;
                    continue 'restart;
                }
                emit(key_str, value, key == marker && self.sub_marker, out);
                if out.len() >= self.limit {
                    return;
                }
            }
            break;
        }
    }
}

/// Merges per-shard pages (each sorted, each holding up to `limit` entries)
/// into what one sorted map would return: the first `limit` distinct entries
/// and whether more exist.
pub fn merge_pages(pages: Vec<Vec<ListEntry>>, limit: usize) -> (Vec<ListEntry>, bool) {
    let mut all: Vec<ListEntry> = pages.into_iter().flatten().collect();
    all.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    all.dedup_by(|a, b| a.name() == b.name());
    let truncated = all.len() > limit;
    all.truncate(limit);
    (all, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: u128, seq: u64, marker: bool) -> Version {
        Version {
            id: VersionId(id),
            seq,
            mtime_ms: 0,
            size: seq,
            etag: ETag::default(),
            delete_marker: marker,
            extents: Box::new([]),
            meta: Default::default(),
        }
    }

    fn put(ix: &mut Index, key: &str, id: u128, seq: u64, marker: bool) -> Vec<Extent> {
        ix.apply(&MetaOp::PutVersion { bucket: "b".into(), key: key.into(), version: version(id, seq, marker) })
    }

    fn names(entries: &[ListEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name()).collect()
    }

    #[test]
    fn a_segment_scan_in_steps_sees_every_key() {
        // A step used to stop *at* a key and the next step started after it, so every
        // `limit + 1`-th key was never looked at: compaction left those versions behind and
        // picked the same segment again forever.
        let mut ix = Index::default();
        for bucket in ["a", "b"] {
            for i in 0..10u64 {
                let mut v = version(0, i + 1, false);
                v.extents = Box::new([Extent { offset: 4096 * i, len: 4096, segment: SegmentId(1) }]);
                ix.apply(&MetaOp::PutVersion { bucket: bucket.into(), key: format!("k{i}"), version: v });
            }
        }
        for limit in [1, 3, 10, 11, 100] {
            let (mut found, mut cursor) = (Vec::new(), None);
            loop {
                let (step, next) = ix.versions_in_segment(SegmentId(1), cursor, limit);
                found.extend(step);
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(found.len(), 20, "limit {limit}");
        }
    }

    #[test]
    fn versions_are_newest_first_and_null_is_replaced() {
        let mut ix = Index::default();
        put(&mut ix, "k", 0, 1, false);
        put(&mut ix, "k", 7, 2, false);
        put(&mut ix, "k", 0, 3, false);
        let v: Vec<_> = ix.versions("b", "k").iter().map(|v| (v.id.0, v.seq)).collect();
        assert_eq!(v, vec![(0, 3), (7, 2)]);
        ix.apply(&MetaOp::DeleteVersion { bucket: "b".into(), key: "k".into(), id: VersionId(0) });
        ix.apply(&MetaOp::DeleteVersion { bucket: "b".into(), key: "k".into(), id: VersionId(7) });
        assert!(!ix.has_keys("b"));
    }

    #[test]
    fn flat_namespace_and_delimiters() {
        let mut ix = Index::default();
        for (i, k) in ["a", "a/b", "a/c/d", "b", "c/x", "c/y"].iter().enumerate() {
            put(&mut ix, k, 0, i as u64 + 1, false);
        }
        put(&mut ix, "gone", 0, 99, true);
        let all = ix.list("b", &ListQuery { limit: 100, ..Default::default() });
        assert_eq!(names(&all), ["a", "a/b", "a/c/d", "b", "c/x", "c/y"]);
        let q = ListQuery { delimiter: Some("/".into()), limit: 100, ..Default::default() };
        assert_eq!(names(&ix.list("b", &q)), ["a", "a/", "b", "c/"]);
        let q = ListQuery { prefix: "a/".into(), delimiter: Some("/".into()), limit: 100, ..Default::default() };
        assert_eq!(names(&ix.list("b", &q)), ["a/b", "a/c/"]);
        // Paging after a common prefix skips the whole prefix range.
        let q = ListQuery { delimiter: Some("/".into()), after: b"a/".to_vec(), limit: 100, ..Default::default() };
        assert_eq!(names(&ix.list("b", &q)), ["b", "c/"]);
        let q = ListQuery { after: after_prefix("c/"), limit: 100, ..Default::default() };
        assert!(ix.list("b", &q).is_empty());
    }

    #[test]
    fn merge_matches_single_map() {
        let mut one = Index::default();
        let mut shards = [Index::default(), Index::default(), Index::default()];
        for i in 0..300u64 {
            let k = format!("p{}/k{:03}", i % 7, i);
            put(&mut one, &k, 0, i + 1, false);
            put(&mut shards[(i % 3) as usize], &k, 0, i + 1, false);
        }
        for delimiter in [None, Some("/".to_string())] {
            let mut after = Vec::new();
            let mut seen = Vec::new();
            loop {
                let q =
                    ListQuery { delimiter: delimiter.clone(), after: after.clone(), limit: 11, ..Default::default() };
                let want = one.list("b", &ListQuery { limit: 12, ..q.clone() });
                let pages = shards.iter().map(|s| s.list("b", &ListQuery { limit: 12, ..q.clone() })).collect();
                let (page, more) = merge_pages(pages, 11);
                assert_eq!(names(&page), names(&want[..want.len().min(11)]));
                assert_eq!(more, want.len() > 11);
                seen.extend(page.iter().map(|e| e.name().to_string()));
                let Some(last) = page.last() else { break };
                after = match last {
                    ListEntry::Prefix(p) => after_prefix(p),
                    ListEntry::Object(o) => o.key.as_bytes().to_vec(),
                };
                if !more {
                    break;
                }
            }
            let expected = if delimiter.is_some() { 7 } else { 300 };
            assert_eq!(seen.len(), expected);
        }
    }
}
