//! `kaligon check --data DIR…`: an offline scrub. Recovers every shard as
//! a start would, then reads every stored version and every uploaded part
//! back, checking each record and the object's ETag and checksum, and the
//! index's own consistency (placement, buckets, sizes).

use std::path::PathBuf;

use super::{Store, read_verified};
use crate::engine::types::{ETag, MetaBlob, ObjectMeta, Version, VersionId};
use crate::engine::{bucket_shard, key_shard};

/// What a check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub shards: usize,
    pub buckets: usize,
    pub keys: u64,
    pub versions: u64,
    pub delete_markers: u64,
    pub bytes: u64,
    pub upload_parts: u64,
    /// Checkpoints that failed their checksum (recovery used an older one
    /// or replayed the whole log).
    pub damaged_checkpoints: u32,
    /// Records in the log tails that failed their checksum: torn writes of
    /// a crash, which recovery drops (nothing acknowledged depends on them).
    pub torn_records: u64,
    pub damaged: Vec<Damage>,
}

#[derive(Debug, serde::Serialize)]
pub struct Damage {
    pub bucket: String,
    pub key: String,
    /// A version id, or `upload <id> part <n>` for an uploaded part.
    pub version: String,
    pub why: String,
}

impl CheckReport {
    /// Whether anything stored is damaged (the exit status).
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.damaged_checkpoints == 0
    }
}

pub fn run(data: Vec<PathBuf>, progress: bool) -> Result<CheckReport, String> {
    let store = Store::open(data)?;
    let n = store.shards.len() as u64;
    let mut r = CheckReport { shards: store.shards.len(), ..Default::default() };
    let buckets = store.buckets();
    r.buckets = buckets.len();
    for s in &store.shards {
        r.damaged_checkpoints += s.report.damaged_checkpoints;
        r.torn_records += s.report.corrupt_payloads;
        for name in s.index.owned_buckets().keys() {
            if bucket_shard(name, n) != s.id {
                r.damaged.push(Damage {
                    bucket: name.clone(),
                    key: String::new(),
                    version: String::new(),
                    why: format!("bucket record on shard {} but placed on another", s.id.0),
                });
            }
        }
    }
    let keys = store.keys();
    let mut progress = super::export::Progress::new(progress, keys.len() as u64, "checked");
    for ((bucket, key), (shard, versions)) in &keys {
        r.keys += 1;
        let s = &store.shards[*shard];
        let mut damage = |version: String, why: String| {
            r.damaged.push(Damage { bucket: bucket.clone(), key: key.clone(), version, why });
        };
        if !buckets.contains_key(bucket) {
            damage(String::new(), "the key's bucket does not exist".into());
        }
        if key_shard(bucket, key, n) != s.id {
            damage(String::new(), format!("key on shard {} but placed on another", s.id.0));
        }
        for v in versions {
            if v.delete_marker {
                r.delete_markers += 1;
                continue;
            }
            r.versions += 1;
            r.bytes += v.size;
            if let Err(why) = read_verified(&s.dir, v, |_| Ok(())) {
                damage(v.id.to_string(), why);
            }
        }
        progress.step(versions.iter().map(|v| v.size).sum());
    }
    for s in &store.shards {
        s.index.for_each_upload(|bucket, key, upload| {
            for (number, part) in &upload.parts {
                r.upload_parts += 1;
                let meta = ObjectMeta { checksum: part.checksum.clone(), ..Default::default() };
                let as_version = Version {
                    id: VersionId::NULL,
                    seq: 0,
                    mtime_ms: part.mtime_ms,
                    size: part.size,
                    etag: ETag { md5: part.md5, parts: 0 },
                    delete_marker: false,
                    extents: part.extents.clone(),
                    meta: MetaBlob::new(&meta),
                };
                if let Err(why) = read_verified(&s.dir, &as_version, |_| Ok(())) {
                    r.damaged.push(Damage {
                        bucket: bucket.into(),
                        key: key.into(),
                        version: format!("upload {} part {number}", upload.id),
                        why,
                    });
                }
            }
        });
    }
    progress.done();
    Ok(r)
}
