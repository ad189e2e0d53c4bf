//! `kaligon export --data DIR… --to OUT`: every bucket and object of a
//! stopped node as plain files, with a manifest of everything S3 knows
//! about each version (docs/FORMAT.md, "Export").
//!
//! ```text
//! OUT/buckets.jsonl                     one line per bucket
//! OUT/manifest.jsonl                    one line per exported version or delete marker
//! OUT/damaged.jsonl                     what could not be exported, and why
//! OUT/buckets/<bucket>/<key path>       each key's current version
//! OUT/versions/<bucket>/<key path>%v/<version id>
//!                                       older versions (--all-versions)
//! ```
//!
//! Key paths are the key split at `/`, each segment escaped reversibly
//! (`escape_segment`). Every byte written was checked against its record's
//! checksum and the object's ETag and S3 checksum first; a damaged version
//! is listed in `damaged.jsonl`, never written. An interrupted export run
//! again with the same arguments goes on from the manifest.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead as _, BufWriter, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Store, read_verified};
use crate::engine::types::{BucketState, Version, Versioning};

/// One line of `manifest.jsonl`: one version (or delete marker) of a key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub bucket: String,
    pub key: String,
    /// `null` or 32 hex digits, as S3 shows it.
    pub version_id: String,
    /// The key's versions are numbered newest first: 0 is the current one.
    pub order: u32,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// As S3 sends it, quoted (`"<md5>"` or `"<md5>-<parts>"`).
    pub etag: String,
    pub last_modified: String,
    pub last_modified_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` without the prefix, in the order they were sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_metadata: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// None: STANDARD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Part sizes of a multipart object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
    /// Base64 per-part checksums of a multipart object with checksums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_checksums: Vec<String>,
    /// The writer's access key where it is not the bucket owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The object ACL in the node's own encoding, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// The file holding the bytes, relative to the export directory (none
    /// for a delete marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChecksumEntry {
    pub algorithm: String,
    /// Base64, as in `x-amz-checksum-*` (for COMPOSITE without the `-N`).
    pub value: String,
    /// FULL_OBJECT or COMPOSITE.
    #[serde(rename = "type")]
    pub kind: String,
    /// The number of parts of a COMPOSITE checksum, else 0.
    pub parts: u32,
}

/// One line of `buckets.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketEntry {
    pub name: String,
    pub owner: String,
    pub created: String,
    pub created_ms: i64,
    /// Enabled, Suspended or Unversioned.
    pub versioning: String,
    /// The bucket's configuration documents (cors, lifecycle, tagging,
    /// policy, acl …) as stored: text where it is UTF-8, else base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfigEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// One line of `damaged.jsonl`.
#[derive(Debug, serde::Serialize)]
struct DamagedEntry<'a> {
    bucket: &'a str,
    key: &'a str,
    version_id: String,
    why: String,
}

pub fn versioning_name(v: Versioning) -> &'static str {
    match v {
        Versioning::Enabled => "Enabled",
        Versioning::Suspended => "Suspended",
        Versioning::Unversioned => "Unversioned",
    }
}

impl BucketEntry {
    fn new(name: &str, s: &BucketState) -> Self {
        let configs = s
            .configs
            .iter()
            .map(|(n, d)| match std::str::from_utf8(d) {
                Ok(t) => ConfigEntry { name: n.clone(), text: Some(t.into()), base64: None },
                Err(_) => ConfigEntry { name: n.clone(), text: None, base64: Some(B64.encode(d)) },
            })
            .collect();
        BucketEntry {
            name: name.into(),
            owner: s.owner.clone(),
            created: crate::s3::xml::iso8601(s.created_ms),
            created_ms: s.created_ms,
            versioning: versioning_name(s.versioning).into(),
            configs,
        }
    }
}

impl Entry {
    fn new(bucket: &str, key: &str, order: usize, v: &Version, path: Option<String>) -> Self {
        let m = v.meta.get();
        let checksum = m.checksum.as_ref().map(|c| ChecksumEntry {
            algorithm: c.algo.name().into(),
            value: B64.encode(&c.value),
            kind: if c.parts > 0 { "COMPOSITE" } else { "FULL_OBJECT" }.into(),
            parts: c.parts,
        });
        Entry {
            bucket: bucket.into(),
            key: key.into(),
            version_id: v.id.to_string(),
            order: order as u32,
            is_latest: order == 0,
            delete_marker: v.delete_marker,
            size: v.size,
            etag: if v.delete_marker { String::new() } else { v.etag.to_string() },
            last_modified: crate::s3::xml::iso8601(v.mtime_ms),
            last_modified_ms: v.mtime_ms,
            checksum,
            content_type: m.content_type,
            content_encoding: m.content_encoding,
            content_disposition: m.content_disposition,
            content_language: m.content_language,
            cache_control: m.cache_control,
            expires: m.expires,
            user_metadata: m.user,
            tags: m.tags,
            storage_class: m.storage_class,
            part_sizes: m.part_sizes,
            part_checksums: m.part_checksums.iter().map(|c| B64.encode(c)).collect(),
            owner: m.owner,
            acl: m.acl.map(|a| B64.encode(a)),
            path,
        }
    }
}

/// Longest escaped piece of a path segment (file names may hold 255 bytes;
/// the rest is room for the `%+`, `%obj`, `%v` and `%tmp` suffixes).
const PIECE_BYTES_MAX: usize = 200;

/// Escapes one `/`-separated segment of a key as a file name: `%` and
/// control characters become `%XX`, `.` and `..` become `%2E` and `%2E%2E`,
/// an empty segment (a key with `//` or a trailing `/`) becomes `%_`. An
/// escaped name never holds `%` except as `%XX`, so the suffixes the export
/// adds (`%+`, `%obj`, `%v`) cannot be mistaken for key bytes. Segments
/// longer than `PIECE_BYTES_MAX` are cut into pieces (at character
/// boundaries, never inside an escape), every piece but the last ending in
/// `%+` and made a directory.
pub fn escape_segment(seg: &str) -> Vec<String> {
    let escaped = match seg {
        "" => return vec!["%_".into()],
        "." => return vec!["%2E".into()],
        ".." => return vec!["%2E%2E".into()],
        _ => {
            let mut out = Vec::new(); // (text, is_one_unit)
            for c in seg.chars() {
                if c == '%' || c.is_control() {
                    let mut b = [0u8; 4];
                    let s: String = c.encode_utf8(&mut b).bytes().map(|x| format!("%{x:02X}")).collect();
                    out.push(s);
                } else {
                    out.push(c.to_string());
                }
            }
            out
        }
    };
    let mut pieces = vec![String::new()];
    for unit in escaped {
        if pieces.last().is_some_and(|p| p.len() + unit.len() > PIECE_BYTES_MAX) {
            pieces.last_mut().expect("one piece").push_str("%+");
            pieces.push(String::new());
        }
        pieces.last_mut().expect("one piece").push_str(&unit);
    }
    pieces
}

/// A key's path below its bucket's directory (without the `%obj` suffix a
/// key that is also another key's directory gets).
pub fn key_path(key: &str) -> String {
    key.split('/').flat_map(escape_segment).collect::<Vec<_>>().join("/")
}

/// The key a path made by `export` stands for (the inverse of `key_path`,
/// the `%obj` suffix included).
pub fn path_key(path: &str) -> Option<String> {
    let path = path.strip_suffix("%obj").unwrap_or(path);
    let mut segments = Vec::new();
    let mut current = String::new();
    for piece in path.split('/') {
        if let Some(p) = piece.strip_suffix("%+") {
            current.push_str(p);
            continue;
        }
        current.push_str(piece);
        segments.push(std::mem::take(&mut current));
    }
    let mut key = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            key.push(b'/');
        }
        if s == "%_" {
            continue;
        }
        let b = s.as_bytes();
        let mut j = 0;
        while j < b.len() {
            if b[j] == b'%' {
                let hex = std::str::from_utf8(b.get(j + 1..j + 3)?).ok()?;
                key.push(u8::from_str_radix(hex, 16).ok()?);
                j += 3;
            } else {
                key.push(b[j]);
                j += 1;
            }
        }
    }
    String::from_utf8(key).ok()
}

/// Progress on stderr when it is a terminal: items done of the total and
/// bytes, at most five times a second.
pub struct Progress {
    enabled: bool,
    total: u64,
    done: u64,
    bytes: u64,
    verb: &'static str,
    started: Instant,
    shown: Instant,
}

impl Progress {
    pub fn new(enabled: bool, total: u64, verb: &'static str) -> Self {
        let now = Instant::now();
        Progress { enabled, total, done: 0, bytes: 0, verb, started: now, shown: now }
    }

    pub fn step(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.enabled && self.shown.elapsed().as_millis() >= 200 {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn show(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mib = self.bytes as f64 / (1 << 20) as f64;
        eprint!("\r{} of {} keys {}, {mib:.1} MiB ({:.1} MiB/s)   ", self.done, self.total, self.verb, mib / secs);
    }

    pub fn done(&mut self) {
        if self.enabled {
            self.show();
            eprintln!();
        }
    }
}

/// What an export did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ExportReport {
    pub buckets: usize,
    pub versions: u64,
    pub delete_markers: u64,
    pub bytes: u64,
    /// Versions found already exported by an earlier, interrupted run.
    pub resumed: u64,
    pub damaged: u64,
}

pub struct ExportArgs {
    pub data: Vec<PathBuf>,
    pub to: PathBuf,
    pub bucket: Option<String>,
    pub all_versions: bool,
}

/// Reads the manifest an earlier run left: the versions it finished. A
/// torn last line (the run was killed while writing it) is cut off.
fn resume(path: &Path) -> Result<HashSet<(String, String, String)>, String> {
    let mut done = HashSet::new();
    let Ok(f) = File::open(path) else { return Ok(done) };
    let mut good = 0u64;
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => {
                done.insert((e.bucket, e.key, e.version_id));
                good += line.len() as u64 + 1;
            }
            Err(_) => break,
        }
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(good).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(done)
}

fn write_json_line(f: &mut File, what: &impl serde::Serialize) -> Result<(), String> {
    let mut line = serde_json::to_vec(what).map_err(|e| e.to_string())?;
    line.push(b'\n');
    f.write_all(&line).map_err(|e| format!("writing the manifest: {e}"))
}

fn open_append(path: &Path, truncate: bool) -> Result<File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true)
    } else {
        o.append(true)
    };
    o.open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes one version's bytes to `rel` under `to` (through a `%tmp` file,
/// renamed once every byte was verified).
fn write_version(store: &Store, shard: usize, v: &Version, to: &Path, rel: &str) -> Result<(), String> {
    let dest = to.join(rel);
    let parent = dest.parent().expect("a path below the export directory");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = PathBuf::from(format!("{}%tmp", dest.display()));
    let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let verified = read_verified(&store.shards[shard].dir, v, |b| w.write_all(b));
    let flushed = verified.and_then(|()| w.flush().map_err(|e| format!("writing {}: {e}", tmp.display())));
    match flushed {
        Ok(()) => std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display())),
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

pub fn run(args: ExportArgs) -> Result<ExportReport, String> {
    let store = Store::open(args.data)?;
    let mut buckets = store.buckets();
    if let Some(only) = &args.bucket {
        if !buckets.contains_key(only) {
            return Err(format!("there is no bucket {only}"));
        }
        buckets.retain(|name, _| name == only);
    }
    std::fs::create_dir_all(&args.to).map_err(|e| format!("{}: {e}", args.to.display()))?;
    let mut report = ExportReport { buckets: buckets.len(), ..Default::default() };
    let mut bf = open_append(&args.to.join("buckets.jsonl"), true)?;
    for (name, state) in &buckets {
        write_json_line(&mut bf, &BucketEntry::new(name, state))?;
    }
    let manifest_path = args.to.join("manifest.jsonl");
    let done = resume(&manifest_path)?;
    let mut manifest = open_append(&manifest_path, false)?;
    let mut damaged = open_append(&args.to.join("damaged.jsonl"), true)?;
    let keys = store.keys();
    // Each bucket's directories: a key that is also a directory of another
    // key (`a` and `a/b`) gets the `%obj` suffix.
    let mut dirs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for ((bucket, key), (_, versions)) in &keys {
        if buckets.contains_key(bucket) && versions.first().is_some_and(|v| !v.delete_marker) {
            let path = key_path(key);
            let set = dirs.entry(bucket).or_default();
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                set.insert(path[..at + i].to_string());
                at += i + 1;
            }
        }
    }
    let total = keys.keys().filter(|(b, _)| buckets.contains_key(b)).count() as u64;
    let mut progress = Progress::new(std::io::stderr().is_terminal(), total, "exported");
    for ((bucket, key), (shard, versions)) in &keys {
        if !buckets.contains_key(bucket) {
            continue;
        }
        let mut bytes = 0;
        for (order, v) in versions.iter().enumerate() {
            if order > 0 && !args.all_versions {
                break;
            }
            let vid = v.id.to_string();
            if done.contains(&(bucket.clone(), key.clone(), vid.clone())) {
                report.resumed += 1;
                continue;
            }
            let path = match (v.delete_marker, order) {
                (true, _) => None,
                (false, 0) => {
                    let p = key_path(key);
                    let taken = dirs.get(bucket.as_str()).is_some_and(|d| d.contains(&p));
                    Some(format!("buckets/{}/{p}{}", key_path(bucket), if taken { "%obj" } else { "" }))
                }
                (false, _) => Some(format!("versions/{}/{}%v/{vid}", key_path(bucket), key_path(key))),
            };
            if let Some(rel) = &path {
                if let Err(why) = write_version(&store, *shard, v, &args.to, rel) {
                    report.damaged += 1;
                    write_json_line(&mut damaged, &DamagedEntry { bucket, key, version_id: vid, why })?;
                    continue;
                }
                bytes += v.size;
            }
            if v.delete_marker {
                // A current marker hides the key: only --all-versions
                // exports the history behind it.
                if !args.all_versions {
                    break;
                }
                report.delete_markers += 1;
            } else {
                report.versions += 1;
                report.bytes += v.size;
            }
            write_json_line(&mut manifest, &Entry::new(bucket, key, order, v, path))?;
        }
        progress.step(bytes);
    }
    progress.done();
    manifest.sync_all().map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_round_trip_and_stay_inside_the_bucket() {
        let long = "é".repeat(300);
        for key in ["a", "a/b", "../x", "./y/../../z", "dir/", "//", "", "%2F%obj", "tab\there\n", &long, "a%+/b"] {
            let p = key_path(key);
            assert_eq!(path_key(&p).as_deref(), Some(key), "{key:?} → {p:?}");
            assert_eq!(path_key(&format!("{p}%obj")).as_deref(), Some(key));
            for seg in p.split('/') {
                assert!(seg != "." && seg != ".." && !seg.is_empty() && seg.len() <= 255, "{key:?} → {p:?}");
                assert!(!seg.chars().any(char::is_control));
            }
        }
    }
}
