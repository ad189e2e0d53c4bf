//! The storage engine: the only API `s3/` calls.
//!
//! Placement: every (bucket, key) has one owning shard (a hash of both), and
//! every bucket one owning shard (a hash of its name). The owner orders all
//! changes to what it owns, so versions and conditional writes are decided
//! in one place. Object bytes are read from the socket on whichever core took
//! the connection, into 4096-aligned buffers, and the buffers are handed to
//! the owner by pointer; with O_DIRECT no CPU copies them on either side, and
//! each shard's log stays self-contained (recovery, group commit and space
//! reclamation never need another shard). Reads go the other way: the owner
//! answers with the version's extents and the reading core reads the owner's
//! segment files itself.

mod batch;
pub mod codec;
mod compact;
pub mod index;
mod read;
pub mod record;
pub mod recover;
pub mod segment;
pub mod shard;
pub mod types;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use compio::fs::File;

pub use index::map::{ListEntry, ListQuery, ObjectSummary, Stored, VersionEntry, VersionSummary, VersionsQuery};
pub use index::uploads::{UploadEntry, UploadSummary, UploadsQuery};
pub use read::ObjectReader;
use segment::format::{CHUNK_STRIDE_BYTES, RECORD_HEADER_BYTES, RecordHeader, RecordKind};
pub use types::*;

use crate::config::Durability;
use crate::runtime::buf::AlignedBuf;

/// What can go wrong in the engine; `s3::error` maps each to an S3 error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("the version does not exist")]
    NoSuchVersion,
    #[error("the current version is a delete marker")]
    DeleteMarker(VersionId),
    #[error("the version is a delete marker")]
    MethodNotAllowed(VersionId),
    #[error("the bucket name is taken")]
    BucketAlreadyExists,
    #[error("you already own the bucket")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the write's precondition does not hold")]
    PreconditionFailed,
    #[error("a conflicting operation on the bucket is in progress")]
    OperationAborted,
    #[error("a write or sync failed earlier ({0}); this shard refuses writes until the node restarts")]
    Poisoned(String),
    #[error("stored data failed its checksum: {0}")]
    Corrupt(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("retry the request: {0}")]
    Retry(String),
    #[error("the disk is full: no room for a new segment; delete data or add capacity")]
    DiskFull,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("a part named in the completion is missing or changed")]
    InvalidPart,
    #[error("the upload is too fragmented to complete: {0}")]
    TooFragmented(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Reply<T> = flume::Sender<Result<T, Error>>;

/// Object bytes in an aligned buffer: the payload sits after
/// `RECORD_HEADER_BYTES` of room for the record header.
pub struct Chunk {
    pub buf: AlignedBuf,
    pub len: usize,
    /// xxh64 of the payload, computed where the bytes arrived.
    pub hash: u64,
}

impl Chunk {
    /// A buffer with room for one full data record (from the pool).
    pub fn buffer() -> AlignedBuf {
        AlignedBuf::pooled()
    }

    /// A buffer for an object known to hold `len` bytes in total: small
    /// objects get a small buffer instead of a pooled megabyte.
    pub fn buffer_for(len: Option<u64>) -> AlignedBuf {
        match len {
            // One spare byte: a body longer than declared fills it and is refused.
            Some(n) if n < CHUNK_STRIDE_BYTES / 4 => AlignedBuf::new(RECORD_HEADER_BYTES + n as usize + 1),
            _ => AlignedBuf::pooled(),
        }
    }

    /// Payload bytes this chunk's buffer can hold.
    pub fn room(buf: &AlignedBuf) -> usize {
        (buf.capacity() - RECORD_HEADER_BYTES).min(segment::format::CHUNK_PAYLOAD_BYTES as usize)
    }

    /// Where payload bytes go in a chunk buffer.
    pub const PAYLOAD_AT: usize = RECORD_HEADER_BYTES;
}

/// A write precondition (conditional writes, AWS "Conditional requests").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    None,
    /// `If-Match` and/or `If-None-Match` as sent (ETag lists, `*` any);
    /// both must hold.
    Match {
        if_match: Option<String>,
        if_none_match: Option<String>,
    },
}

impl Condition {
    /// Judges the condition against the key's current version (a delete
    /// marker counts as no object): `If-Match` on a missing key is
    /// NoSuchKey, a failed test PreconditionFailed.
    pub fn judge(&self, current: Option<&ETag>) -> Result<(), Error> {
        let Condition::Match { if_match, if_none_match } = self else { return Ok(()) };
        if let Some(want) = if_match {
            match current {
                None => return Err(Error::NoSuchKey),
                Some(e) if !etag_matches(want, e) => return Err(Error::PreconditionFailed),
                Some(_) => {}
            }
        }
        if let (Some(want), Some(e)) = (if_none_match, current)
            && etag_matches(want, e)
        {
            return Err(Error::PreconditionFailed);
        }
        Ok(())
    }
}

/// The metadata that makes written chunks a visible object version.
pub struct Commit {
    pub bucket: String,
    pub key: String,
    pub extents: Vec<Extent>,
    /// The last chunk, written together with the metadata record.
    pub tail: Option<Chunk>,
    pub size: u64,
    pub etag: ETag,
    pub meta: ObjectMeta,
    pub condition: Condition,
    pub now_ms: i64,
    pub target: Target,
}

/// What a commit makes of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A new version of the key.
    Object,
    /// Part `number` of an upload (replacing an earlier one).
    Part { upload: UploadId, number: u32 },
    /// A new version made of the named parts of an upload, each given with
    /// the MD5 and size the completion was computed from (checked again
    /// here, so a part replaced meanwhile fails the completion).
    Complete { upload: UploadId, parts: Vec<(u32, [u8; 16], u64)> },
    /// A version as it was elsewhere (`kaligon import`): its id, and
    /// whether it is a delete marker, are kept rather than decided by the
    /// bucket's versioning state; `now_ms` is its original time.
    Restore { id: VersionId, delete_marker: bool },
}

/// CreateMultipartUpload and AbortMultipartUpload.
pub enum UploadChange {
    Create(Box<Upload>),
    Abort(UploadId),
}

#[derive(Clone, Copy, Debug)]
pub struct CommitOutcome {
    pub version_id: VersionId,
    /// Whether the bucket has versioning (enabled or suspended), so the
    /// response carries `x-amz-version-id`.
    pub versioned: bool,
    pub mtime_ms: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct DeleteOutcome {
    pub delete_marker: bool,
    pub version_id: Option<VersionId>,
}

pub struct DeleteReq {
    pub bucket: String,
    pub key: String,
    pub version: Option<VersionId>,
    pub now_ms: i64,
    /// A lifecycle action's check, made where the delete is planned.
    pub guard: Option<Guard>,
}

/// What a lifecycle action saw when it decided: the delete goes ahead only
/// if the version it acts on (the one named, else the current one) is still
/// the one of sequence `seq`, and with `sole`, the key's only version. A
/// write that came in meanwhile is never expired by a rule that did not
/// see it. A failed check answers PreconditionFailed and changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard {
    pub seq: u64,
    pub sole: bool,
}

/// PutObjectTagging / DeleteObjectTagging / PutObjectAcl: replaces the tag
/// set or the ACL of one version (the current one when `version` is None);
/// data and other metadata stay as they are.
#[derive(Clone)]
pub struct TagReq {
    pub bucket: String,
    pub key: String,
    pub version: Option<VersionId>,
    pub edit: MetaEdit,
    /// Log bytes the owner reserves for the record (set by the owner).
    reserve: usize,
}

/// What a `TagReq` changes in a version's metadata.
#[derive(Clone)]
pub enum MetaEdit {
    Tags(Vec<(String, String)>),
    Acl(Option<Vec<u8>>),
}

/// One key's versions as a lifecycle scan sees them (newest first).
pub struct ScannedKey {
    pub key: String,
    pub versions: Vec<Version>,
}

pub enum BucketChange {
    Create(BucketState),
    /// Replaces the state the request read (`expect`) with `new`. The
    /// request reads its core's copy and may take long to send its body;
    /// meanwhile the bucket may be deleted and made again by someone else,
    /// or changed by another request, and writing `new` over that would
    /// hand the new bucket to the old owner or undo the other change.
    Update {
        expect: BucketState,
        new: BucketState,
    },
    /// Deletes the bucket `owner` created at `created_ms` (read when the
    /// request was authorised), not one of the same name made again since.
    Delete {
        owner: String,
        created_ms: i64,
    },
    /// Sets (or with None removes) one configuration document of the
    /// bucket `owner` created at `created_ms`, leaving the rest of its state
    /// as it is now: concurrent changes to other parts both stay, and of
    /// two changes to the same document the last one wins, as in AWS.
    SetConfig {
        owner: String,
        created_ms: i64,
        name: String,
        doc: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ShardStats {
    pub objects: usize,
    pub key_bytes: usize,
    pub fallback_segments: u64,
    pub reused_segments: u64,
    /// Reclaimed segment files waiting to be written again.
    pub reuse_waiting: usize,
    pub live_bytes: u64,
    pub segments: usize,
    pub segments_reclaimed: u64,
    pub groups: shard::GroupStats,
    /// Changes queued for the next commit group.
    pub queue_depth: usize,
    /// Since the last checkpoint began.
    pub checkpoint_age_ms: u64,
    /// Whether the shard refuses writes after a failed write or sync.
    pub poisoned: bool,
}

/// What the owner says about a chunk it writes.
pub enum Written {
    /// Where the chunk goes; its write is in flight.
    Placed(Extent),
    /// The write finished; the buffer is free again.
    Done(AlignedBuf),
}

/// Messages between cores.
pub enum Request {
    /// Answered twice: `Placed` when the write is issued, `Done` when it
    /// has finished (or an error).
    WriteChunk {
        buf: Chunk,
        reply: Reply<Written>,
    },
    Commit(Box<Commit>, Reply<CommitOutcome>),
    Delete(DeleteReq, Reply<DeleteOutcome>),
    /// Answers the version id whose tags were replaced.
    SetTags(TagReq, Reply<VersionId>),
    /// Up to `limit` keys of `bucket` held by this shard, after `after`.
    ScanKeys {
        bucket: String,
        after: Option<String>,
        limit: usize,
        reply: Reply<Vec<ScannedKey>>,
    },
    /// Every upload in progress of `bucket` on this shard: (key, id, initiated).
    ScanUploads {
        bucket: String,
        reply: Reply<Vec<(String, UploadId, i64)>>,
    },
    PutBucket {
        name: String,
        change: BucketChange,
        reply: Reply<()>,
    },
    Get {
        bucket: String,
        key: String,
        version: Option<VersionId>,
        reply: Reply<Version>,
    },
    Versions {
        bucket: String,
        key: String,
        reply: Reply<Vec<Version>>,
    },
    List {
        bucket: String,
        query: ListQuery,
        reply: Reply<Vec<ListEntry>>,
    },
    ListVersions {
        bucket: String,
        query: VersionsQuery,
        reply: Reply<Vec<VersionEntry>>,
    },
    Replica {
        name: String,
        state: Option<BucketState>,
        reply: Reply<()>,
    },
    /// Freezes (or thaws) a bucket for the DeleteBucket holding `token`;
    /// answers whether the shard holds or is landing keys of it.
    Freeze {
        name: String,
        token: u64,
        frozen: bool,
        reply: Reply<bool>,
    },
    OwnedBucket {
        name: String,
        reply: Reply<Option<BucketState>>,
    },
    Upload {
        bucket: String,
        key: String,
        change: UploadChange,
        reply: Reply<()>,
    },
    GetUpload {
        bucket: String,
        key: String,
        id: UploadId,
        /// false: only what CreateMultipartUpload fixed (no copy of the parts).
        with_parts: bool,
        reply: Reply<Upload>,
    },
    ListUploads {
        bucket: String,
        query: UploadsQuery,
        reply: Reply<Vec<UploadEntry>>,
    },
    Stats(Reply<ShardStats>),
    /// What each bucket holds on the shard.
    Stored(Reply<HashMap<String, Stored>>),
    /// Metered requests for buckets this shard owns, added to its meter
    /// (no answer: the meter never holds up a request).
    Meter(Vec<UsageEntry>),
    /// The meter of the buckets this shard owns, from an hour on.
    Usage {
        since_hour: u32,
        reply: Reply<Vec<UsageEntry>>,
    },
    /// A segment is being deleted: drop cached read handles to it, never
    /// open it again, then answer (the file is unlinked once every core
    /// has answered).
    ForgetSegment {
        shard: ShardId,
        segment: SegmentId,
        reply: Reply<()>,
    },
    Shutdown(Reply<()>),
}

/// Engine settings (a slice of `config::Config`).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub shards: usize,
    /// One directory per shard (shards spread over the data directories).
    pub shard_dirs: Vec<PathBuf>,
    pub segment_bytes: u64,
    pub segment_spares: usize,
    pub segment_reuse_max: usize,
    pub checkpoint_interval_ms: u64,
    pub checkpoint_bytes: u64,
    pub durability: Durability,
    /// Sealed segments with less live data than this share are compacted.
    pub compaction_live_ratio: f64,
}

pub struct BucketEntry {
    pub state: BucketState,
    /// The DeleteBuckets checking emptiness right now, by token; writes are
    /// refused while any is. Each lifts only its own freeze: one that failed
    /// (BucketNotEmpty) must not thaw the bucket under another that is
    /// still checking, or a write could land beside that one's delete.
    frozen_by: Vec<u64>,
}

impl BucketEntry {
    pub fn frozen(&self) -> bool {
        !self.frozen_by.is_empty()
    }
}

/// Every bucket, replicated on each core (changed only by its owner shard).
#[derive(Default)]
pub struct BucketTable {
    map: BTreeMap<String, BucketEntry>,
}

impl BucketTable {
    pub fn insert(&mut self, name: String, state: BucketState) {
        let frozen_by = self.map.remove(&name).map(|e| e.frozen_by).unwrap_or_default();
        self.map.insert(name, BucketEntry { state, frozen_by });
    }
    pub fn remove(&mut self, name: &str) {
        self.map.remove(name);
    }
    pub fn get(&self, name: &str) -> Option<&BucketEntry> {
        self.map.get(name)
    }
    /// Adds or lifts the freeze of the DeleteBucket holding `token`.
    pub fn set_frozen(&mut self, name: &str, token: u64, frozen: bool) {
        if let Some(e) = self.map.get_mut(name) {
            e.frozen_by.retain(|t| *t != token);
            if frozen {
                e.frozen_by.push(token);
            }
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &BucketEntry)> {
        self.map.iter()
    }
}

/// Per-core state shared by the shard task and the connections on the core.
pub struct Shared {
    pub shard: ShardId,
    pub mesh: Vec<flume::Sender<Request>>,
    pub buckets: RefCell<BucketTable>,
    pub poisoned: Cell<bool>,
    pub config: Arc<EngineConfig>,
    /// Read-only O_DIRECT handles to segment files of every shard.
    readers: RefCell<HashMap<(ShardId, SegmentId), File>>,
    /// Segments deleted (or being deleted) that this core must not open.
    forgotten: RefCell<HashSet<(ShardId, SegmentId)>>,
}

impl Shared {
    pub fn new(shard: ShardId, mesh: Vec<flume::Sender<Request>>, config: Arc<EngineConfig>) -> Self {
        Self {
            shard,
            mesh,
            buckets: RefCell::default(),
            poisoned: Cell::new(false),
            config,
            readers: RefCell::default(),
            forgotten: RefCell::default(),
        }
    }

    pub(crate) fn forget_reader(&self, shard: ShardId, segment: SegmentId) {
        self.forgotten.borrow_mut().insert((shard, segment));
        self.readers.borrow_mut().remove(&(shard, segment));
    }

    /// The segment was reclaimed: its file may be gone or reused.
    fn is_forgotten(&self, shard: ShardId, segment: SegmentId) -> bool {
        self.forgotten.borrow().contains(&(shard, segment))
    }

    fn reader(&self, shard: ShardId, segment: SegmentId) -> Result<File, Error> {
        if let Some(f) = self.readers.borrow().get(&(shard, segment)) {
            return Ok(f.clone());
        }
        // Being deleted: reopening it would keep its space (and the cost of
        // freeing it) with this core; readers follow the move instead.
        if self.is_forgotten(shard, segment) {
            return Err(Error::Io(std::io::ErrorKind::NotFound.into()));
        }
        let path = segment::log::segment_path(&self.config.shard_dirs[shard.0 as usize], segment);
        let f = segment::log::open_direct(&path, false, false)?;
        self.readers.borrow_mut().insert((shard, segment), f.clone());
        Ok(f)
    }
}

/// Writes the data record header for `len` payload bytes into `buf`.
pub fn stamp_data_header(buf: &mut AlignedBuf, len: usize, hash: u64, seq: u64, segment: SegmentId) {
    RecordHeader {
        kind: RecordKind::Data,
        payload_len: len as u32,
        segment_low: segment.0 as u32,
        seq,
        payload_hash: hash,
    }
    .encode(&mut buf.full_mut()[..RECORD_HEADER_BYTES]);
}

/// Sends a bucket's new state to every core, then answers `reply`.
pub fn broadcast_replica(shared: &Rc<Shared>, name: String, state: Option<BucketState>, reply: Reply<()>) {
    let mesh = shared.mesh.clone();
    compio::runtime::spawn(async move {
        for tx in &mesh {
            let (rtx, rrx) = flume::bounded(1);
            let msg = Request::Replica { name: name.clone(), state: state.clone(), reply: rtx };
            if tx.send_async(msg).await.is_err() || rrx.recv_async().await.is_err() {
                let _ = reply.send(Err(Error::ShuttingDown));
                return;
            }
        }
        let _ = reply.send(Ok(()));
    })
    .detach();
}

/// Placement: the shard of `shards` owning a key's metadata.
pub fn key_shard(bucket: &str, key: &str, shards: u64) -> ShardId {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(bucket.as_bytes());
    h.update(&[0]);
    h.update(key.as_bytes());
    ShardId((h.digest() % shards) as u32)
}

/// Placement: the shard of `shards` owning a bucket's record.
pub fn bucket_shard(bucket: &str, shards: u64) -> ShardId {
    ShardId((xxhash_rust::xxh3::xxh3_64(bucket.as_bytes()) % shards) as u32)
}

/// Whether an `If-Match` value names this ETag (quotes optional, `*` any).
pub fn etag_matches(want: &str, etag: &ETag) -> bool {
    let have = etag.to_string();
    want.split(',').map(str::trim).any(|w| w == "*" || w == have || w == have.trim_matches('"'))
}

/// The engine as seen from one core.
#[derive(Clone)]
pub struct Engine {
    shared: Rc<Shared>,
}

impl Engine {
    pub fn new(shared: Rc<Shared>) -> Self {
        Self { shared }
    }

    fn shards(&self) -> u64 {
        self.shared.mesh.len() as u64
    }

    /// The shard owning a key's metadata.
    pub fn owner(&self, bucket: &str, key: &str) -> ShardId {
        key_shard(bucket, key, self.shards())
    }

    /// The shard owning a bucket's record.
    pub fn bucket_owner(&self, bucket: &str) -> ShardId {
        bucket_shard(bucket, self.shards())
    }

    /// Hands metered requests to the shards owning their buckets, without
    /// waiting (the channels are unbounded).
    pub fn meter(&self, entries: Vec<UsageEntry>) {
        let mut per: Vec<Vec<UsageEntry>> = (0..self.shards()).map(|_| Vec::new()).collect();
        for e in entries {
            per[self.bucket_owner(&e.0).0 as usize].push(e);
        }
        for (i, v) in per.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let _ = self.shared.mesh[i].send(Request::Meter(v));
        }
    }

    /// The meter of every bucket from hour `since_hour` on, from every shard.
    pub async fn usage(&self, since_hour: u32) -> Result<Vec<UsageEntry>, Error> {
        let mut out = Vec::new();
        for i in 0..self.shards() {
            out.extend(self.call(ShardId(i as u32), |reply| Request::Usage { since_hour, reply }).await?);
        }
        Ok(out)
    }

    async fn call<T>(&self, shard: ShardId, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, Error> {
        let (tx, rx) = flume::bounded(1);
        self.shared.mesh[shard.0 as usize].send_async(make(tx)).await.map_err(|_| Error::ShuttingDown)?;
        rx.recv_async().await.map_err(|_| Error::ShuttingDown)?
    }

    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.get()
    }

    pub fn bucket(&self, name: &str) -> Option<BucketState> {
        self.shared.buckets.borrow().get(name).map(|e| e.state.clone())
    }

    /// One configuration document of a bucket, without copying the rest of
    /// its state (asked on every object request).
    pub fn bucket_config(&self, name: &str, config: &str) -> Option<Vec<u8>> {
        self.shared.buckets.borrow().get(name)?.state.config(config).map(<[u8]>::to_vec)
    }

    pub fn buckets(&self) -> Vec<(String, BucketState)> {
        self.shared.buckets.borrow().iter().map(|(n, e)| (n.clone(), e.state.clone())).collect()
    }

    pub async fn create_bucket(&self, name: &str, state: BucketState) -> Result<(), Error> {
        let change = BucketChange::Create(state);
        self.call(self.bucket_owner(name), |reply| Request::PutBucket { name: name.into(), change, reply }).await
    }

    /// Changes a bucket's state from `expect` (as read) to `new`: NoSuchBucket
    /// if the bucket was deleted (or deleted and made again) meanwhile. If
    /// another change came first, a versioning change still applies (the
    /// last one wins, as in AWS); anything else is OperationAborted.
    pub async fn update_bucket(&self, name: &str, expect: BucketState, new: BucketState) -> Result<(), Error> {
        let change = BucketChange::Update { expect, new };
        self.call(self.bucket_owner(name), |reply| Request::PutBucket { name: name.into(), change, reply }).await
    }

    /// Deletes an empty bucket: freezes it on every core (refusing new
    /// writes), checks that no core holds a key, then removes it.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), Error> {
        // Read before the first await: the state the request was authorised
        // against (the copy changes only between awaits).
        let Some(state) = self.bucket(name) else {
            return Err(Error::NoSuchBucket);
        };
        static NEXT_TOKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let token = NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = match self.freeze_all(name, token).await {
            // No object anywhere: uploads in progress go with the bucket, as
            // in S3 (aborted durably first, so none outlives it).
            Ok(true) => match self.abort_all_uploads(name).await {
                Err(e) => Err(e),
                Ok(()) => {
                    let change = BucketChange::Delete { owner: state.owner, created_ms: state.created_ms };
                    let owner = self.bucket_owner(name);
                    self.call(owner, |reply| Request::PutBucket { name: name.into(), change, reply }).await
                }
            },
            Ok(false) => Err(Error::BucketNotEmpty),
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.thaw_all(name, token).await;
        }
        r
    }

    /// Freezes the bucket on every shard for DeleteBucket `token`; whether
    /// no shard holds or is landing a key of it.
    async fn freeze_all(&self, name: &str, token: u64) -> Result<bool, Error> {
        let mut empty = true;
        for s in 0..self.shards() {
            let has = self
                .call(ShardId(s as u32), |reply| Request::Freeze { name: name.into(), token, frozen: true, reply })
                .await?;
            empty &= !has;
        }
        Ok(empty)
    }

    /// Aborts every upload in progress of a frozen bucket, on every shard
    /// (a frozen bucket takes no new upload or part).
    async fn abort_all_uploads(&self, name: &str) -> Result<(), Error> {
        for s in 0..self.shards() {
            for (key, id, _) in self.scan_uploads(ShardId(s as u32), name).await? {
                match self.abort_upload(name, &key, id).await {
                    Ok(()) | Err(Error::NoSuchUpload) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Lifts DeleteBucket `token`'s freeze on every shard it can reach.
    async fn thaw_all(&self, name: &str, token: u64) {
        for s in 0..self.shards() {
            let thaw = |reply| Request::Freeze { name: name.into(), token, frozen: false, reply };
            let _ = self.call(ShardId(s as u32), thaw).await;
        }
    }

    /// Starts writing an object; bytes go to the key's owning shard.
    pub fn put(&self, bucket: &str, key: &str) -> PutStream {
        PutStream { engine: self.clone(), owner: self.owner(bucket, key), extents: Vec::new(), pending: None }
    }

    pub async fn get(&self, bucket: &str, key: &str, version: Option<VersionId>) -> Result<Version, Error> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.call(self.owner(bucket, key), |reply| Request::Get { bucket: b, key: k, version, reply }).await
    }

    pub async fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Version>, Error> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.call(self.owner(bucket, key), |reply| Request::Versions { bucket: b, key: k, reply }).await
    }

    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        now_ms: i64,
    ) -> Result<DeleteOutcome, Error> {
        let req = DeleteReq { bucket: bucket.into(), key: key.into(), version, now_ms, guard: None };
        self.call(self.owner(bucket, key), |reply| Request::Delete(req, reply)).await
    }

    /// A delete that happens only if `guard` still holds (lifecycle).
    pub async fn delete_guarded(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        now_ms: i64,
        guard: Guard,
    ) -> Result<DeleteOutcome, Error> {
        let req = DeleteReq { bucket: bucket.into(), key: key.into(), version, now_ms, guard: Some(guard) };
        self.call(self.owner(bucket, key), |reply| Request::Delete(req, reply)).await
    }

    /// Replaces the tags of a version; answers its id.
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        tags: Vec<(String, String)>,
    ) -> Result<VersionId, Error> {
        self.edit_meta(bucket, key, version, MetaEdit::Tags(tags)).await
    }

    /// Replaces the ACL of a version; answers its id.
    pub async fn set_acl(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        acl: Option<Vec<u8>>,
    ) -> Result<VersionId, Error> {
        self.edit_meta(bucket, key, version, MetaEdit::Acl(acl)).await
    }

    async fn edit_meta(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        edit: MetaEdit,
    ) -> Result<VersionId, Error> {
        let req = TagReq { bucket: bucket.into(), key: key.into(), version, edit, reserve: 0 };
        self.call(self.owner(bucket, key), |reply| Request::SetTags(req, reply)).await
    }

    /// Sets or removes one configuration document of a bucket (lifecycle,
    /// tagging, …) as its owner created it.
    pub async fn set_bucket_config(
        &self,
        name: &str,
        state: &BucketState,
        config: &str,
        doc: Option<Vec<u8>>,
    ) -> Result<(), Error> {
        let change = BucketChange::SetConfig {
            owner: state.owner.clone(),
            created_ms: state.created_ms,
            name: config.into(),
            doc,
        };
        self.call(self.bucket_owner(name), |reply| Request::PutBucket { name: name.into(), change, reply }).await
    }

    /// Keys of `bucket` that `shard` holds, in order, after `after`.
    pub async fn scan_keys(
        &self,
        shard: ShardId,
        bucket: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ScannedKey>, Error> {
        self.call(shard, |reply| Request::ScanKeys { bucket: bucket.into(), after, limit, reply }).await
    }

    /// Uploads in progress of `bucket` that `shard` holds.
    pub async fn scan_uploads(&self, shard: ShardId, bucket: &str) -> Result<Vec<(String, UploadId, i64)>, Error> {
        self.call(shard, |reply| Request::ScanUploads { bucket: bucket.into(), reply }).await
    }

    /// This core's shard.
    pub fn shard(&self) -> ShardId {
        self.shared.shard
    }

    /// One ListObjects page merged across shards: entries and whether more follow.
    pub async fn list(&self, bucket: &str, query: ListQuery) -> Result<(Vec<ListEntry>, bool), Error> {
        let limit = query.limit;
        let ask = ListQuery { limit: limit + 1, ..query };
        let pages = self.ask_all(|reply| Request::List { bucket: bucket.into(), query: ask.clone(), reply }).await?;
        Ok(index::map::merge_pages(pages, limit))
    }

    /// One ListObjectVersions page merged across shards.
    pub async fn list_versions(&self, bucket: &str, query: VersionsQuery) -> Result<(Vec<VersionEntry>, bool), Error> {
        let limit = query.limit;
        let ask = VersionsQuery { limit: limit + 1, ..query };
        let pages =
            self.ask_all(|reply| Request::ListVersions { bucket: bucket.into(), query: ask.clone(), reply }).await?;
        Ok(index::map::merge_version_pages(pages, limit))
    }

    /// Sends one request to every shard at once and collects the answers.
    async fn ask_all<T>(&self, make: impl Fn(Reply<T>) -> Request) -> Result<Vec<T>, Error> {
        let mut waits = Vec::new();
        for s in 0..self.shards() {
            let (tx, rx) = flume::bounded(1);
            self.shared.mesh[s as usize].send_async(make(tx)).await.map_err(|_| Error::ShuttingDown)?;
            waits.push(rx);
        }
        let mut answers = Vec::new();
        for rx in waits {
            answers.push(rx.recv_async().await.map_err(|_| Error::ShuttingDown)??);
        }
        Ok(answers)
    }

    /// Starts a multipart upload (its id is in `upload`).
    pub async fn create_upload(&self, bucket: &str, key: &str, upload: Upload) -> Result<(), Error> {
        let change = UploadChange::Create(Box::new(upload));
        let (b, k) = (bucket.to_string(), key.to_string());
        self.call(self.owner(bucket, key), |reply| Request::Upload { bucket: b, key: k, change, reply }).await
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, id: UploadId) -> Result<(), Error> {
        let change = UploadChange::Abort(id);
        let (b, k) = (bucket.to_string(), key.to_string());
        self.call(self.owner(bucket, key), |reply| Request::Upload { bucket: b, key: k, change, reply }).await
    }

    /// An upload in progress with its parts.
    pub async fn upload(&self, bucket: &str, key: &str, id: UploadId) -> Result<Upload, Error> {
        self.get_upload(bucket, key, id, true).await
    }

    /// An upload in progress without its parts (cheap: for each UploadPart).
    pub async fn upload_header(&self, bucket: &str, key: &str, id: UploadId) -> Result<Upload, Error> {
        self.get_upload(bucket, key, id, false).await
    }

    async fn get_upload(&self, bucket: &str, key: &str, id: UploadId, with_parts: bool) -> Result<Upload, Error> {
        let (b, k) = (bucket.to_string(), key.to_string());
        let make = |reply| Request::GetUpload { bucket: b, key: k, id, with_parts, reply };
        self.call(self.owner(bucket, key), make).await
    }

    /// One ListMultipartUploads page merged across shards.
    pub async fn list_uploads(&self, bucket: &str, query: UploadsQuery) -> Result<(Vec<UploadEntry>, bool), Error> {
        let limit = query.limit;
        let ask = UploadsQuery { limit: limit + 1, ..query };
        let pages =
            self.ask_all(|reply| Request::ListUploads { bucket: bucket.into(), query: ask.clone(), reply }).await?;
        Ok(index::uploads::merge_upload_pages(pages, limit))
    }

    /// Streams bytes `[start, end)` of a version stored by the key's owner.
    pub fn read(&self, bucket: &str, key: &str, version: &Version, start: u64, end: u64) -> ObjectReader {
        let origin = read::Origin {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: version.id,
            etag: version.etag,
            size: version.size,
        };
        ObjectReader::new(self.shared.clone(), self.owner(bucket, key), &version.extents, start, end, Some(origin))
    }

    /// What each bucket holds, over every shard.
    pub async fn stored(&self) -> Result<HashMap<String, Stored>, Error> {
        let mut all: HashMap<String, Stored> = HashMap::new();
        for s in 0..self.shards() {
            for (bucket, st) in self.call(ShardId(s as u32), Request::Stored).await? {
                all.entry(bucket).or_default().add(&st);
            }
        }
        Ok(all)
    }

    pub async fn stats(&self) -> Result<Vec<ShardStats>, Error> {
        let mut out = Vec::new();
        for s in 0..self.shards() {
            out.push(self.call(ShardId(s as u32), Request::Stats).await?);
        }
        Ok(out)
    }
}

/// An object being written: full chunks go to the owner as they fill (one
/// in flight while the next fills), the last one rides with the commit.
pub struct PutStream {
    engine: Engine,
    owner: ShardId,
    extents: Vec<Extent>,
    /// The owner's answers about the last chunk sent.
    pending: Option<flume::Receiver<Result<Written, Error>>>,
}

impl PutStream {
    /// Sends a full chunk to the owner; returns a buffer to fill next (the
    /// one that came back from the previous write when there is one).
    pub async fn write(&mut self, chunk: Chunk) -> Result<AlignedBuf, Error> {
        let (tx, rx) = flume::bounded(2);
        let tx_shard = &self.engine.shared.mesh[self.owner.0 as usize];
        tx_shard.send_async(Request::WriteChunk { buf: chunk, reply: tx }).await.map_err(|_| Error::ShuttingDown)?;
        let previous = self.pending.replace(rx);
        match previous {
            Some(rx) => {
                batch::push_extent(&mut self.extents, placed(&rx).await?);
                done(&rx).await
            }
            None => Ok(Chunk::buffer()),
        }
    }

    /// Makes the object visible once everything is durable. The commit is
    /// queued as soon as the last chunk has its place, while that chunk is
    /// still being written: the owner syncs a group only after every write
    /// issued before it has finished, so the commit waits for the data
    /// there, and the two overlap (recovery drops a commit whose data never
    /// reached the log; `engine::recover`).
    pub async fn commit(mut self, mut commit: Commit) -> Result<CommitOutcome, Error> {
        let last = self.pending.take();
        if let Some(rx) = &last {
            batch::push_extent(&mut self.extents, placed(rx).await?);
        }
        commit.extents = std::mem::take(&mut self.extents);
        let owner = self.owner;
        let outcome = self.engine.call(owner, |reply| Request::Commit(Box::new(commit), reply)).await;
        if let Some(rx) = last
            && let Ok(buf) = done(&rx).await
        {
            // Back to this core's pool: dropping it made the next upload
            // allocate and zero a fresh megabyte (6 % of a 1 MiB PUT's CPU).
            buf.recycle();
        }
        outcome
    }
}

/// Where the owner put a chunk (its first answer).
async fn placed(rx: &flume::Receiver<Result<Written, Error>>) -> Result<Extent, Error> {
    match rx.recv_async().await.map_err(|_| Error::ShuttingDown)?? {
        Written::Placed(e) => Ok(e),
        Written::Done(_) => Err(Error::ShuttingDown),
    }
}

/// The chunk's buffer once its write has finished (the second answer).
async fn done(rx: &flume::Receiver<Result<Written, Error>>) -> Result<AlignedBuf, Error> {
    match rx.recv_async().await.map_err(|_| Error::ShuttingDown)?? {
        Written::Done(buf) => Ok(buf),
        Written::Placed(_) => Err(Error::ShuttingDown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DeleteBucket that gives up lifts its own freeze only: the bucket
    /// stays frozen for another still checking it, and a state update
    /// (versioning) keeps the freezes.
    #[test]
    fn each_delete_bucket_lifts_only_its_own_freeze() {
        let mut t = BucketTable::default();
        let state =
            BucketState { owner: "a".into(), created_ms: 1, versioning: Versioning::Unversioned, configs: vec![] };
        t.insert("b".into(), state.clone());
        t.set_frozen("b", 1, true);
        t.set_frozen("b", 2, true);
        t.set_frozen("b", 1, false);
        assert!(t.get("b").unwrap().frozen(), "the second DeleteBucket's freeze was lifted by the first");
        t.insert("b".into(), BucketState { versioning: Versioning::Enabled, ..state });
        assert!(t.get("b").unwrap().frozen());
        t.set_frozen("b", 2, false);
        t.set_frozen("b", 2, false);
        assert!(!t.get("b").unwrap().frozen());
    }
}
