//! Multipart uploads in a shard's index: applying their records, looking
//! them up, and the ListMultipartUploads walk.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::map::{Index, KeyWalk};
use crate::engine::record::MetaOp;
use crate::engine::types::{ChecksumAlgo, Extent, SegmentId, Upload, UploadId};

/// What ListMultipartUploads asks one shard for: uploads after
/// (`key_marker`, `upload_marker`) in (key, initiation) order.
#[derive(Clone, Debug, Default)]
pub struct UploadsQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: String,
    pub upload_marker: Option<UploadId>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSummary {
    pub key: String,
    pub id: UploadId,
    pub initiated_ms: i64,
    pub initiator: String,
    pub storage_class: Option<String>,
    pub checksum: Option<(ChecksumAlgo, bool)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadEntry {
    Upload(UploadSummary),
    Prefix(String),
}

impl UploadEntry {
    pub fn name(&self) -> &str {
        match self {
            UploadEntry::Upload(u) => &u.key,
            UploadEntry::Prefix(p) => p,
        }
    }
}

/// Merges per-shard pages; a key's uploads all come from one shard, already
/// in order, and the sort is stable to keep that.
pub fn merge_upload_pages(pages: Vec<Vec<UploadEntry>>, limit: usize) -> (Vec<UploadEntry>, bool) {
    let mut all: Vec<UploadEntry> = pages.into_iter().flatten().collect();
    all.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    all.dedup_by(|a, b| matches!((&*a, &*b), (UploadEntry::Prefix(x), UploadEntry::Prefix(y)) if x == y));
    let truncated = all.len() > limit;
    all.truncate(limit);
    (all, truncated)
}

impl Index {
    /// Applies CreateUpload, PutPart or AbortUpload; returns the extents made
    /// dead (a replaced part, an aborted upload's parts, or a part that
    /// arrived for an upload already gone).
    pub(super) fn apply_upload(&mut self, op: &MetaOp) -> Vec<Extent> {
        match op {
            MetaOp::CreateUpload { bucket, key, upload } => {
                let uploads = self.uploads.entry(bucket.clone()).or_default();
                let by_id = uploads.entry(key.as_bytes().into()).or_default();
                by_id.entry(upload.id).or_insert_with(|| (**upload).clone());
                Vec::new()
            }
            MetaOp::PutPart { bucket, key, upload, number, part } => match self.upload_mut(bucket, key, *upload) {
                Some(u) => u.parts.insert(*number, part.clone()).map(|old| old.extents.to_vec()).unwrap_or_default(),
                None => part.extents.to_vec(),
            },
            MetaOp::AbortUpload { bucket, key, upload } => self.remove_upload(bucket, key, *upload),
            _ => unreachable!("apply_upload takes upload records only"),
        }
    }

    fn upload_mut(&mut self, bucket: &str, key: &str, id: UploadId) -> Option<&mut Upload> {
        self.uploads.get_mut(bucket)?.get_mut(key.as_bytes())?.get_mut(&id)
    }

    /// Removes an upload; returns its parts' extents.
    pub(super) fn remove_upload(&mut self, bucket: &str, key: &str, id: UploadId) -> Vec<Extent> {
        let Some(keys) = self.uploads.get_mut(bucket) else { return Vec::new() };
        let Some(by_id) = keys.get_mut(key.as_bytes()) else { return Vec::new() };
        let removed = by_id.remove(&id);
        if by_id.is_empty() {
            keys.remove(key.as_bytes());
            if keys.is_empty() {
                self.uploads.remove(bucket);
            }
        }
        removed.map(|u| u.parts.into_values().flat_map(|p| p.extents.into_vec()).collect()).unwrap_or_default()
    }

    pub fn upload(&self, bucket: &str, key: &str, id: UploadId) -> Option<&Upload> {
        self.uploads.get(bucket)?.get(key.as_bytes())?.get(&id)
    }

    /// Every (bucket, key, upload), for checkpoints.
    pub fn for_each_upload(&self, mut f: impl FnMut(&str, &str, &Upload)) {
        for (bucket, keys) in &self.uploads {
            for (key, by_id) in keys {
                for u in by_id.values() {
                    f(bucket, std::str::from_utf8(key).expect("keys are UTF-8"), u);
                }
            }
        }
    }

    /// Extents held by the parts of uploads in progress.
    pub fn part_extents(&self) -> impl Iterator<Item = &Extent> + '_ {
        self.uploads
            .values()
            .flat_map(|keys| keys.values())
            .flat_map(|by_id| by_id.values())
            .flat_map(|u| u.parts.values())
            .flat_map(|p| p.extents.iter())
    }

    /// Segments holding parts of uploads in progress (the compactor leaves
    /// them alone until the upload ends).
    pub fn segments_with_parts(&self) -> std::collections::HashSet<SegmentId> {
        self.part_extents().map(|e| e.segment).collect()
    }

    /// Up to `q.limit` entries of a ListMultipartUploads page.
    pub fn list_uploads(&self, bucket: &str, q: &UploadsQuery) -> Vec<UploadEntry> {
        let mut out = Vec::new();
        let Some(map) = self.uploads.get(bucket) else {
            return out;
        };
        let walk = KeyWalk {
            prefix: &q.prefix,
            delimiter: q.delimiter.as_deref(),
            marker: &q.key_marker,
            sub_marker: q.upload_marker.is_some(),
            limit: q.limit,
        };
        let range = |from: Bound<&[u8]>| map.range::<[u8], _>((from, Bound::Unbounded)).map(|(k, v)| (&**k, v));
        walk.run(range, &mut out, UploadEntry::Prefix, |key, by_id: &BTreeMap<UploadId, Upload>, at_marker, out| {
            for u in by_id.values() {
                if at_marker && q.upload_marker.is_some_and(|m| u.id <= m) {
                    continue;
                }
                out.push(UploadEntry::Upload(UploadSummary {
                    key: key.to_string(),
                    id: u.id,
                    initiated_ms: u.initiated_ms,
                    initiator: u.initiator.clone(),
                    storage_class: u.meta.get().storage_class,
                    checksum: u.checksum,
                }));
                if out.len() >= q.limit {
                    return;
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::{Part, SegmentId};

    fn create(index: &mut Index, key: &str, id: u128) {
        let upload = Box::new(Upload {
            id: UploadId(id),
            initiated_ms: 0,
            initiator: "AK".into(),
            checksum: None,
            meta: Default::default(),
            parts: Default::default(),
        });
        index.apply(&MetaOp::CreateUpload { bucket: "b".into(), key: key.into(), upload });
    }

    fn part(seg: u64) -> Part {
        Part {
            size: 10,
            md5: [0; 16],
            mtime_ms: 0,
            checksum: None,
            extents: vec![Extent { segment: SegmentId(seg), offset: 4096, len: 10 }].into(),
        }
    }

    #[test]
    fn parts_replace_and_abort_frees() {
        let mut ix = Index::default();
        create(&mut ix, "k", 1);
        let put = |n, seg| MetaOp::PutPart {
            bucket: "b".into(),
            key: "k".into(),
            upload: UploadId(1),
            number: n,
            part: part(seg),
        };
        assert!(ix.apply(&put(1, 1)).is_empty());
        assert_eq!(ix.apply(&put(1, 2))[0].segment, SegmentId(1));
        assert!(ix.apply(&put(2, 3)).is_empty());
        assert_eq!(ix.segments_with_parts().len(), 2);
        assert!(ix.has_uploads("b") && !ix.has_keys("b"));
        let freed = ix.apply(&MetaOp::AbortUpload { bucket: "b".into(), key: "k".into(), upload: UploadId(1) });
        assert_eq!(freed.len(), 2);
        assert!(!ix.has_uploads("b"));
        // A part for an upload that is gone is dead at once.
        assert_eq!(ix.apply(&put(1, 4)).len(), 1);
    }

    #[test]
    fn listing_with_markers_and_delimiter() {
        let mut ix = Index::default();
        for (k, id) in [("a", 1), ("a", 2), ("b/x", 3), ("b/y", 4), ("c", 5)] {
            create(&mut ix, k, id);
        }
        let q = |marker: &str, um: Option<u128>, delim: Option<&str>| UploadsQuery {
            prefix: String::new(),
            delimiter: delim.map(str::to_string),
            key_marker: marker.into(),
            upload_marker: um.map(UploadId),
            limit: 10,
        };
        let names = |v: Vec<UploadEntry>| {
            v.iter()
                .map(|e| match e {
                    UploadEntry::Upload(u) => format!("{}:{}", u.key, u.id.0),
                    UploadEntry::Prefix(p) => p.clone(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ix.list_uploads("b", &q("", None, None))), ["a:1", "a:2", "b/x:3", "b/y:4", "c:5"]);
        assert_eq!(names(ix.list_uploads("b", &q("a", Some(1), None))), ["a:2", "b/x:3", "b/y:4", "c:5"]);
        assert_eq!(names(ix.list_uploads("b", &q("a", None, None))), ["b/x:3", "b/y:4", "c:5"]);
        assert_eq!(names(ix.list_uploads("b", &q("", None, Some("/")))), ["a:1", "a:2", "b/", "c:5"]);
    }
}
