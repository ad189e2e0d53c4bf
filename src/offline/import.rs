//! `kaligon import --from OUT --data DIR…`: loads what `kaligon export`
//! wrote into a node's data directories (new ones, or ones without those
//! buckets), keeping every version id, delete marker, time, ETag, checksum
//! and metadata, so the imported node answers as the exported one did.
//!
//! The node's engine runs as for `serve`, without the HTTP front end; the
//! import drives it from the first core, several keys at a time, each key's
//! versions oldest first.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt as _;

use super::export::{BucketEntry, Entry, Progress, versioning_name};
use crate::config::Config;
use crate::engine::segment::format::payload_hash;
use crate::engine::types::{BucketState, Checksum, ChecksumAlgo, ETag, ObjectMeta, VersionId, Versioning};
use crate::engine::{Chunk, Commit, Condition, Engine, Target};
use crate::runtime::md5::Md5;

pub struct ImportArgs {
    pub from: PathBuf,
    pub data: Vec<PathBuf>,
    pub shards: Option<usize>,
    /// Size of new segment files (default: as for `serve`).
    pub segment_bytes: Option<u64>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub buckets: usize,
    pub versions: u64,
    pub delete_markers: u64,
    pub bytes: u64,
}

/// Keys imported at once (each key's versions go in order).
const KEYS_IN_FLIGHT: usize = 16;

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1)))
        .collect()
}

fn parse_etag(s: &str) -> Option<ETag> {
    let s = s.trim_matches('"');
    let (hex, parts) = match s.split_once('-') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, 0),
    };
    let md5 = hex::decode(hex).ok()?.try_into().ok()?;
    Some(ETag { md5, parts })
}

fn bucket_state(b: &BucketEntry) -> Result<BucketState, String> {
    let versioning = [Versioning::Enabled, Versioning::Suspended, Versioning::Unversioned]
        .into_iter()
        .find(|v| versioning_name(*v) == b.versioning)
        .ok_or_else(|| format!("bucket {}: unknown versioning {:?}", b.name, b.versioning))?;
    let mut configs = Vec::new();
    for c in &b.configs {
        let doc = match (&c.text, &c.base64) {
            (Some(t), _) => t.clone().into_bytes(),
            (None, Some(b64)) => B64.decode(b64).map_err(|e| format!("bucket {} config {}: {e}", b.name, c.name))?,
            (None, None) => return Err(format!("bucket {} config {}: no document", b.name, c.name)),
        };
        configs.push((c.name.clone(), doc));
    }
    Ok(BucketState { owner: b.owner.clone(), created_ms: b.created_ms, versioning, configs })
}

/// The stored metadata an entry describes.
fn meta(e: &Entry) -> Result<ObjectMeta, String> {
    let bad = |what: &str| format!("{}/{} version {}: bad {what}", e.bucket, e.key, e.version_id);
    let b64 = |s: &str, what: &str| B64.decode(s).map_err(|_| bad(what));
    let checksum = match &e.checksum {
        None => None,
        Some(c) => Some(Checksum {
            algo: ChecksumAlgo::from_name(&c.algorithm).ok_or_else(|| bad("checksum algorithm"))?,
            value: b64(&c.value, "checksum")?,
            parts: c.parts,
        }),
    };
    Ok(ObjectMeta {
        content_type: e.content_type.clone(),
        content_encoding: e.content_encoding.clone(),
        content_disposition: e.content_disposition.clone(),
        content_language: e.content_language.clone(),
        cache_control: e.cache_control.clone(),
        expires: e.expires.clone(),
        user: e.user_metadata.clone(),
        checksum,
        tags: e.tags.clone(),
        storage_class: e.storage_class.clone(),
        part_sizes: e.part_sizes.clone(),
        part_checksums: e.part_checksums.iter().map(|c| b64(c, "part checksum")).collect::<Result<_, _>>()?,
        completed_upload: None,
        owner: e.owner.clone(),
        acl: e.acl.as_deref().map(|a| b64(a, "acl")).transpose()?,
    })
}

/// Writes one version through the engine: its file's bytes (checked
/// against the manifest's size and, for a single-part object, its ETag)
/// and then the version itself with its original id and time.
async fn import_version(engine: &Engine, from: &Path, e: &Entry) -> Result<u64, String> {
    let what = || format!("{}/{} version {}", e.bucket, e.key, e.version_id);
    let id = VersionId::parse(&e.version_id).ok_or_else(|| format!("{}: bad version id", what()))?;
    let meta = meta(e)?;
    let etag = if e.delete_marker {
        ETag::default()
    } else {
        parse_etag(&e.etag).ok_or_else(|| format!("{}: bad ETag {:?}", what(), e.etag))?
    };
    let mut stream = engine.put(&e.bucket, &e.key);
    let mut tail = None;
    let mut size = 0u64;
    if !e.delete_marker {
        let rel = e.path.as_deref().ok_or_else(|| format!("{}: no path", what()))?;
        let path = from.join(rel);
        let mut file = std::fs::File::open(&path).map_err(|err| format!("{}: {}: {err}", what(), path.display()))?;
        let mut md5 = Md5::new();
        let mut buf = Chunk::buffer_for(Some(e.size));
        loop {
            let room = Chunk::room(&buf);
            let at = Chunk::PAYLOAD_AT;
            let mut len = 0;
            while len < room {
                let payload = &mut buf.full_mut()[at + len..at + room];
                match file.read(payload) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(format!("{}: {}: {err}", what(), path.display())),
                }
            }
            let payload = &buf.full()[at..at + len];
            md5.update(payload);
            let hash = payload_hash(payload);
            size += len as u64;
            if len < room {
                tail = (len > 0).then_some(Chunk { buf, len, hash });
                break;
            }
            buf = stream.write(Chunk { buf, len, hash }).await.map_err(|err| format!("{}: {err}", what()))?;
        }
        if size != e.size {
            return Err(format!("{}: the file holds {size} bytes, the manifest says {}", what(), e.size));
        }
        if etag.parts == 0 && md5.finalize() != etag.md5 {
            return Err(format!("{}: the file's MD5 is not the ETag {}", what(), e.etag));
        }
    }
    let commit = Commit {
        bucket: e.bucket.clone(),
        key: e.key.clone(),
        extents: Vec::new(),
        tail,
        size,
        etag,
        meta,
        condition: Condition::None,
        now_ms: e.last_modified_ms,
        target: Target::Restore { id, delete_marker: e.delete_marker },
    };
    stream.commit(commit).await.map_err(|err| format!("{}: {err}", what()))?;
    Ok(size)
}

async fn import_all(engine: Engine, from: PathBuf) -> Result<ImportReport, String> {
    let buckets: Vec<BucketEntry> = read_lines(&from.join("buckets.jsonl"))?;
    let entries: Vec<Entry> = read_lines(&from.join("manifest.jsonl"))?;
    let mut report = ImportReport { buckets: buckets.len(), ..Default::default() };
    for b in &buckets {
        let state = bucket_state(b)?;
        engine.create_bucket(&b.name, state).await.map_err(|e| format!("bucket {}: {e}", b.name))?;
    }
    // Each key's versions, oldest first, so the newest ends up current.
    let mut keys: BTreeMap<(String, String), Vec<Entry>> = BTreeMap::new();
    for e in entries {
        if !buckets.iter().any(|b| b.name == e.bucket) {
            return Err(format!("{}/{}: the bucket is not in buckets.jsonl", e.bucket, e.key));
        }
        keys.entry((e.bucket.clone(), e.key.clone())).or_default().push(e);
    }
    for versions in keys.values_mut() {
        versions.sort_by_key(|e| std::cmp::Reverse(e.order));
    }
    let mut progress =
        Progress::new(std::io::IsTerminal::is_terminal(&std::io::stderr()), keys.len() as u64, "imported");
    let (engine, from) = (&engine, &from);
    let mut results = futures_util::stream::iter(keys.into_values())
        .map(|versions| async move {
            let mut done = Vec::new();
            for e in &versions {
                done.push((e.delete_marker, import_version(engine, from, e).await?));
            }
            Ok::<_, String>(done)
        })
        .buffer_unordered(KEYS_IN_FLIGHT);
    while let Some(r) = results.next().await {
        let mut bytes = 0;
        for (marker, size) in r? {
            if marker {
                report.delete_markers += 1;
            } else {
                report.versions += 1;
                bytes += size;
            }
        }
        report.bytes += bytes;
        progress.step(bytes);
    }
    progress.done();
    Ok(report)
}

pub fn run(args: ImportArgs) -> Result<ImportReport, String> {
    let mut config = Config { data: args.data, ..Default::default() };
    if let Some(n) = args.shards {
        config.shards = n;
    } else if let Ok(Some(n)) = super::layout_shards(&config.data[0]) {
        // Existing directories keep their shard count.
        config.shards = n;
    }
    if let Some(n) = args.segment_bytes {
        config.segment_bytes = n;
    }
    config.validate().map_err(|e| e.to_string())?;
    let (tx, rx) = flume::bounded(1);
    let from = args.from;
    let driver: crate::runtime::Driver = Arc::new(move |core, engine| {
        let (tx, from) = (tx.clone(), from.clone());
        Box::pin(async move {
            if core == 0 {
                let _ = tx.send_async(import_all(engine, from).await).await;
            }
        })
    });
    let node = crate::runtime::Node::start_driven(config, driver).map_err(|e| e.to_string())?;
    let result = rx.recv().map_err(|_| "the import stopped without an answer".to_string());
    // A clean stop: every shard writes its checkpoint.
    node.shutdown(std::time::Duration::from_secs(5));
    result?
}
