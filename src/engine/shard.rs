//! One shard: the task that owns a slice of the index and a log, on one core.
//!
//! Requests arrive by message from any core. Reads of the index are answered
//! at once from committed state. Writes of object bytes are appended to the
//! log as soon as they arrive. Metadata changes queue up and are committed in
//! groups: one write and one fdatasync for every change that arrived while
//! the previous group was being synced (group commit). A change is applied to
//! the index, and acknowledged, only after its group is durable, so readers
//! never see what a crash could take back.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::rc::Rc;
use std::task::Poll;

use compio::BufResult;
use compio::io::AsyncWriteAt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::{FutureExt, future::LocalBoxFuture};

use super::batch::{BATCH_BYTES_MAX, Batch, push_extent};
use super::index::map::Index;
use super::record::MetaOp;
use super::segment::format::{RECORD_HEADER_BYTES, packed_len};
use super::segment::log::Log;
use super::types::{BucketState, Extent, MetaBlob, Part, Upload, Version, VersionId, Versioning};
use super::{
    BucketChange, BucketTable, Commit, CommitOutcome, DeleteOutcome, DeleteReq, Error, Reply, Request, Shared, Target,
    UploadChange, stamp_data_header,
};
use crate::config::Durability;
use crate::runtime::buf::{AlignedBuf, align_up};

/// Largest object tail copied into the shared group-commit buffer; larger
/// tails are written from their own buffer without a copy.
pub(super) const INLINE_DATA_BYTES_MAX: usize = 64 << 10;

/// Who gets a data write's buffer back once it has finished (or its error).
type GiveBack = Box<dyn FnOnce(Result<AlignedBuf, Error>)>;

/// A finished write: its ticket, the segment it went to, its result, and
/// its buffer with whom to give it to.
type WriteDone = (u64, super::types::SegmentId, Result<(), Error>, Option<(AlignedBuf, GiveBack)>);

/// Metadata changes waiting for the next group.
pub(super) enum Queued {
    Commit(Box<Commit>, Reply<CommitOutcome>),
    Delete(DeleteReq, Reply<DeleteOutcome>),
    Bucket(String, BucketChange, Reply<()>),
    Relocate(Box<super::compact::Relocation>),
    Upload(String, String, UploadChange, Reply<()>),
    Tags(super::TagReq, Reply<VersionId>),
}

/// What to do once a group is durable.
pub(super) enum Done {
    Commit(Reply<CommitOutcome>, CommitOutcome),
    Delete(Reply<DeleteOutcome>, DeleteOutcome),
    Bucket(Reply<()>, String, Option<BucketState>),
    Relocated,
    Upload(Reply<()>),
    Tagged(Reply<VersionId>, VersionId),
}

/// A group whose writes are issued and whose sync is pending.
struct Group {
    last_ticket: u64,
    ops: Vec<MetaOp>,
    done: Vec<Done>,
    /// When the group was formed, and when its sync started.
    formed: std::time::Instant,
    sync_started: Option<std::time::Instant>,
}

/// Group-commit counters, for the shard statistics.
#[derive(Default, Clone, Copy, Debug)]
pub struct GroupStats {
    /// Groups that wrote records and synced them.
    pub groups: u64,
    /// Changes those groups committed.
    pub ops: u64,
    /// Time from forming a group to starting its sync (its writes, and any
    /// it waits for), summed.
    pub wait_nanos: u64,
    /// Time in the groups' syncs, summed.
    pub sync_nanos: u64,
}

impl GroupStats {
    /// Adds another shard's counters.
    pub fn add(&mut self, o: &GroupStats) {
        self.groups += o.groups;
        self.ops += o.ops;
        self.wait_nanos += o.wait_nanos;
        self.sync_nanos += o.sync_nanos;
    }
}

pub struct Shard {
    pub index: Index,
    pub log: Log,
    pub(super) shared: Rc<Shared>,
    durability: Durability,
    pub(super) queue: VecDeque<Queued>,
    writes: FuturesUnordered<LocalBoxFuture<'static, WriteDone>>,
    in_flight: BTreeSet<u64>,
    next_ticket: u64,
    group: Option<Group>,
    sync: Option<LocalBoxFuture<'static, Result<(), Error>>>,
    pub(super) poisoned: Option<String>,
    /// A checkpoint is due and starts as soon as no group is in flight.
    checkpoint_due: bool,
    /// A checkpoint being encoded, a slice of keys per step.
    walk: Option<super::index::checkpoint::Walk>,
    /// A checkpoint being written and synced.
    checkpoint: Option<LocalBoxFuture<'static, Option<Vec<super::types::SegmentId>>>>,
    pub(super) reclaim: super::compact::Reclaim,
    pub(super) bytes_since_checkpoint: u64,
    last_checkpoint: std::time::Instant,
    group_stats: GroupStats,
}

enum Event {
    Request(Request),
    Closed,
    Write(WriteDone),
    Synced(Result<(), Error>),
    Checkpointed(Option<Vec<super::types::SegmentId>>),
    Tick,
    Moved(super::compact::Moved),
    CompactStep,
    CheckpointStep,
}

/// How often a shard checks whether a checkpoint or a compaction is due.
const TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// How often emptied segments waiting for checkpoints cause one.
pub(super) const RECLAIM_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Pause between compaction steps, so requests always get the core.
const COMPACT_STEP: std::time::Duration = std::time::Duration::from_millis(1);
/// Keys a checkpoint encodes per step (~1 ms on the development VM), and the
/// pause between steps.
const CHECKPOINT_STEP_KEYS: usize = 1024;
const CHECKPOINT_STEP: std::time::Duration = std::time::Duration::from_millis(1);

impl Shard {
    pub fn new(index: Index, log: Log, shared: Rc<Shared>, durability: Durability) -> Self {
        let index_live = index.live_bytes();
        let dir = log.dir().to_path_buf();
        let mut kept: std::collections::VecDeque<_> = super::index::checkpoint::list(&dir)
            .unwrap_or_default()
            .iter()
            .map(|p| super::index::checkpoint::replay_segment(p))
            .collect();
        kept.make_contiguous().sort();
        super::index::checkpoint::ensure_reserve(&dir, 0);
        Self {
            index,
            log,
            shared,
            durability,
            queue: VecDeque::new(),
            writes: FuturesUnordered::new(),
            in_flight: BTreeSet::new(),
            next_ticket: 0,
            group: None,
            sync: None,
            poisoned: None,
            checkpoint_due: false,
            walk: None,
            checkpoint: None,
            reclaim: super::compact::Reclaim::new(index_live, kept),
            bytes_since_checkpoint: 0,
            last_checkpoint: std::time::Instant::now(),
            group_stats: GroupStats::default(),
        }
    }

    fn buckets(&self) -> &RefCell<BucketTable> {
        &self.shared.buckets
    }

    /// Serves requests until a shutdown arrives (or every sender is gone);
    /// then finishes what is queued and writes a final checkpoint.
    pub async fn run(mut self, rx: flume::Receiver<Request>) {
        let mut stream = rx.into_stream();
        let mut timer: LocalBoxFuture<'static, ()> = Box::pin(compio::time::sleep(TICK));
        let mut compact_timer: LocalBoxFuture<'static, ()> = Box::pin(compio::time::sleep(COMPACT_STEP));
        let mut walk_timer: LocalBoxFuture<'static, ()> = Box::pin(compio::time::sleep(CHECKPOINT_STEP));
        let mut stopping: Option<Option<Reply<()>>> = None;
        loop {
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(Some(w)) = self.writes.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Write(w));
                }
                if let Some(s) = self.sync.as_mut()
                    && let Poll::Ready(r) = s.poll_unpin(cx)
                {
                    return Poll::Ready(Event::Synced(r));
                }
                if let Some(c) = self.checkpoint.as_mut()
                    && let Poll::Ready(ok) = c.poll_unpin(cx)
                {
                    return Poll::Ready(Event::Checkpointed(ok));
                }
                if let Some(c) = self.reclaim.active.as_mut() {
                    if let Poll::Ready(Some(m)) = c.reads.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Moved(m));
                    }
                    if compact_timer.poll_unpin(cx).is_ready() {
                        return Poll::Ready(Event::CompactStep);
                    }
                }
                if self.walk.is_some() && walk_timer.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Event::CheckpointStep);
                }
                if timer.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Event::Tick);
                }
                if stopping.is_some() {
                    return Poll::Pending;
                }
                match stream.poll_next_unpin(cx) {
                    Poll::Ready(Some(r)) => Poll::Ready(Event::Request(r)),
                    Poll::Ready(None) => Poll::Ready(Event::Closed),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match event {
                Event::Request(Request::Shutdown(reply)) => stopping = Some(Some(reply)),
                Event::Request(r) => self.handle(r),
                Event::Closed => stopping = Some(None),
                Event::Write((ticket, segment, result, back)) => {
                    self.in_flight.remove(&ticket);
                    // Dirty once written: a sync started while a write is
                    // in flight does not cover it, the next one must.
                    self.log.mark_dirty(segment);
                    if let Err(e) = &result {
                        self.poison(e);
                    }
                    if let Some((buf, give_back)) = back {
                        give_back(result.map(|()| buf));
                    }
                }
                Event::Synced(r) => self.finish_group(r),
                Event::Checkpointed(written) => {
                    self.checkpoint = None;
                    if let Some(kept) = written {
                        self.after_checkpoint(kept);
                    }
                }
                Event::Tick => {
                    timer = Box::pin(compio::time::sleep(TICK));
                    self.maybe_checkpoint();
                    self.log.retry_when_full();
                    self.delete_reclaimable();
                    if stopping.is_none() {
                        self.compaction_tick();
                    }
                }
                Event::Moved(m) => self.on_moved(m),
                Event::CompactStep => {
                    compact_timer = Box::pin(compio::time::sleep(COMPACT_STEP));
                    self.compaction_step();
                }
                Event::CheckpointStep => {
                    walk_timer = Box::pin(compio::time::sleep(CHECKPOINT_STEP));
                    self.checkpoint_step();
                }
            }
            self.advance();
            if stopping.is_some() {
                self.reclaim.active = None;
            }
            let idle = self.queue.is_empty() && self.group.is_none() && self.writes.is_empty();
            if idle && stopping.is_some() && !self.checkpointing() {
                if self.poisoned.is_none() && self.bytes_since_checkpoint > 0 {
                    self.start_checkpoint();
                    continue;
                }
                if let Some(Some(reply)) = stopping.take() {
                    let _ = reply.send(Ok(()));
                }
                return;
            }
        }
    }

    fn poison(&mut self, e: &Error) {
        if self.poisoned.is_none() {
            tracing::error!(error = %e, "write or sync failed; the shard refuses writes until restart");
            self.poisoned = Some(e.to_string());
            self.shared.poisoned.set(true);
        }
    }

    fn check_writable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn handle(&mut self, r: Request) {
        if !matches!(r, Request::ForgetSegment { .. }) {
            self.log.note_request(std::time::Instant::now());
        }
        match r {
            Request::WriteChunk { buf, reply } => self.write_chunk(buf, reply),
            Request::Commit(mut c, reply) => {
                if let Err(e) = self.check_writable() {
                    let _ = reply.send(Err(e));
                    return;
                }
                // A completion's record size depends on its parts' extents:
                // resolve them now so the group estimate is exact.
                if let Target::Complete { upload, parts } = &c.target {
                    let resolved = match self.index.upload(&c.bucket, &c.key, *upload) {
                        None => Err(Error::NoSuchUpload),
                        Some(u) => part_extents(u, parts),
                    };
                    match resolved {
                        Ok(extents) => c.extents = extents,
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            return;
                        }
                    }
                    if commit_estimate(&c) > BATCH_BYTES_MAX {
                        let why = format!("{} extents do not fit one completion record", c.extents.len());
                        let _ = reply.send(Err(Error::TooFragmented(why)));
                        return;
                    }
                }
                // Tails too big to copy are written now, like any chunk.
                if let Some(tail) = c.tail.take_if(|t| t.len > INLINE_DATA_BYTES_MAX) {
                    let len = tail.len;
                    match self.issue_data_write(tail, None) {
                        Ok(extent) => {
                            debug_assert_eq!(extent.len, len as u64);
                            push_extent(&mut c.extents, extent);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            return;
                        }
                    }
                }
                self.queue.push_back(Queued::Commit(c, reply));
            }
            Request::Delete(d, reply) => match self.check_writable() {
                Ok(()) => self.queue.push_back(Queued::Delete(d, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::SetTags(mut t, reply) => match self.check_writable() {
                Ok(()) => {
                    // Room for the version's record as it is now, with the new tags.
                    let now = self.tags_op(t.clone());
                    t.reserve = now.map_or(0, |(op, _)| packed_len(op.encode().len()));
                    self.queue.push_back(Queued::Tags(t, reply))
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::ScanKeys { bucket, after, limit, reply } => {
                let keys = self.index.keys_after(&bucket, after.as_deref().map(str::as_bytes));
                let keys = keys.take(limit).map(|(k, versions)| super::ScannedKey { key: k.to_string(), versions });
                let _ = reply.send(Ok(keys.collect()));
            }
            Request::ScanUploads { bucket, reply } => {
                let mut out = Vec::new();
                self.index.for_each_upload(|b, k, u| {
                    if b == bucket {
                        out.push((k.to_string(), u.id, u.initiated_ms));
                    }
                });
                let _ = reply.send(Ok(out));
            }
            Request::PutBucket { name, change, reply } => match self.check_writable() {
                Ok(()) => self.queue.push_back(Queued::Bucket(name, change, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Upload { bucket, key, change, reply } => match self.check_writable() {
                Ok(()) => self.queue.push_back(Queued::Upload(bucket, key, change, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::GetUpload { bucket, key, id, with_parts, reply } => {
                let found = self.index.upload(&bucket, &key, id).map(|u| match with_parts {
                    true => u.clone(),
                    false => {
                        Upload { parts: Default::default(), meta: u.meta.clone(), initiator: u.initiator.clone(), ..*u }
                    }
                });
                let _ = reply.send(found.ok_or(Error::NoSuchUpload));
            }
            Request::ListUploads { bucket, query, reply } => {
                let _ = reply.send(Ok(self.index.list_uploads(&bucket, &query)));
            }
            Request::Get { bucket, key, version, reply } => {
                let _ = reply.send(self.get(&bucket, &key, version));
            }
            Request::Versions { bucket, key, reply } => {
                let _ = reply.send(Ok(self.index.versions(&bucket, &key)));
            }
            Request::List { bucket, query, reply } => {
                let _ = reply.send(Ok(self.index.list(&bucket, &query)));
            }
            Request::ListVersions { bucket, query, reply } => {
                let _ = reply.send(Ok(self.index.list_versions(&bucket, &query)));
            }
            Request::Replica { name, state, reply } => {
                let mut t = self.buckets().borrow_mut();
                match state {
                    Some(s) => t.insert(name, s),
                    None => t.remove(&name),
                }
                let _ = reply.send(Ok(()));
            }
            Request::Freeze { name, token, frozen, reply } => {
                self.buckets().borrow_mut().set_frozen(&name, token, frozen);
                // Frozen, the bucket refuses changes not yet planned; those
                // in the group being synced will land, so they count. Else a
                // DeleteBucket racing a PUT could succeed beside it and leave
                // an acknowledged object in a deleted bucket.
                let landing = self.group_ops().any(|op| op.key_bucket() == Some(name.as_str()));
                let _ = reply.send(Ok(self.index.has_keys(&name) || landing));
            }
            Request::OwnedBucket { name, reply } => {
                let _ = reply.send(Ok(self.index.owned_buckets().get(&name).cloned()));
            }
            Request::Stored(reply) => {
                let _ = reply.send(Ok(self.index.stored().clone()));
            }
            Request::Stats(reply) => {
                let (objects, key_bytes) = self.index.stats();
                let _ = reply.send(Ok(super::ShardStats {
                    objects,
                    key_bytes,
                    fallback_segments: self.log.fallback_segments,
                    reused_segments: self.log.reused_segments,
                    reuse_waiting: self.log.reuse_waiting(),
                    live_bytes: self.reclaim.live.values().sum(),
                    segments: self.log.segments().count(),
                    segments_reclaimed: self.reclaim.segments_reclaimed,
                    groups: self.group_stats,
                    queue_depth: self.queue.len(),
                    checkpoint_age_ms: self.last_checkpoint.elapsed().as_millis() as u64,
                    poisoned: self.poisoned.is_some(),
                }));
            }
            Request::Meter(entries) => {
                for (bucket, user, hour, usage) in &entries {
                    if self.index.add_usage(bucket, user, *hour, usage) {
                        // The meter is saved by checkpoints alone: a change
                        // makes one due like a logged write does.
                        self.bytes_since_checkpoint += 1;
                    }
                }
            }
            Request::Usage { since_hour, reply } => {
                let _ = reply.send(Ok(self.index.usage_since(since_hour)));
            }
            Request::ForgetSegment { shard, segment, reply } => {
                self.shared.forget_reader(shard, segment);
                let _ = reply.send(Ok(()));
            }
            Request::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    fn get(&self, bucket: &str, key: &str, version: Option<VersionId>) -> Result<Version, Error> {
        match version {
            None => match self.index.current(bucket, key) {
                Some(v) if v.delete_marker => Err(Error::DeleteMarker(v.id)),
                Some(v) => Ok(v),
                None => Err(Error::NoSuchKey),
            },
            Some(id) => match self.index.version(bucket, key, id) {
                Some(v) if v.delete_marker => Err(Error::MethodNotAllowed(v.id)),
                Some(v) => Ok(v),
                None => Err(Error::NoSuchVersion),
            },
        }
    }

    /// Writes a chunk; tells the stream where at once (so its commit can
    /// be queued while the write is in flight) and hands the buffer back
    /// when the write is done.
    fn write_chunk(&mut self, chunk: super::Chunk, reply: Reply<super::Written>) {
        if let Err(e) = self.check_writable() {
            let _ = reply.send(Err(e));
            return;
        }
        let done = reply.clone();
        let give_back: GiveBack = Box::new(move |buf| drop(done.send(buf.map(super::Written::Done))));
        match self.issue_data_write(chunk, Some(give_back)) {
            Ok(extent) => drop(reply.send(Ok(super::Written::Placed(extent)))),
            Err(e) => tracing::debug!(error = %e, "chunk write refused"),
        }
    }

    /// Stamps a data record header into `chunk` and writes it at a freshly
    /// allocated offset. `give_back` receives the buffer back on completion
    /// (without one, the buffer goes back to the core's pool).
    pub(super) fn issue_data_write(
        &mut self,
        chunk: super::Chunk,
        give_back: Option<GiveBack>,
    ) -> Result<Extent, Error> {
        let super::Chunk { mut buf, len, hash } = chunk;
        let seq = self.log.next_seq();
        let total = RECORD_HEADER_BYTES + len;
        let alloc = match self.log.alloc_data(total as u64) {
            Ok(a) => a,
            Err(Error::DiskFull) => {
                if let Some(give_back) = give_back {
                    give_back(Err(Error::DiskFull));
                }
                return Err(Error::DiskFull);
            }
            Err(e) => {
                self.poison(&e);
                if let Some(give_back) = give_back {
                    give_back(Err(Error::Poisoned(e.to_string())));
                }
                return Err(e);
            }
        };
        stamp_data_header(&mut buf, len, hash, seq, alloc.segment);
        buf.set_len(align_up(total as u64) as usize);
        buf.zero(total, buf.len());
        let extent = Extent { segment: alloc.segment, offset: alloc.offset, len: len as u64 };
        self.bytes_since_checkpoint += total as u64;
        let ticket = self.ticket();
        let file = alloc.file;
        self.writes.push(Box::pin(async move {
            let BufResult(r, buf) = (&file).write_at(buf, alloc.offset).await;
            let r = check_full_write(r, buf.len());
            let back = match give_back {
                Some(give_back) => Some((buf, give_back)),
                None => {
                    buf.recycle();
                    None
                }
            };
            (ticket, extent.segment, r, back)
        }));
        Ok(extent)
    }

    /// The changes of the group being written and synced.
    pub(super) fn group_ops(&self) -> impl Iterator<Item = &MetaOp> {
        self.group.iter().flat_map(|g| g.ops.iter())
    }

    fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.in_flight.insert(t);
        t
    }

    /// Moves the pipeline forward: start a sync when a group's writes are
    /// done, form the next group when none is in flight.
    fn advance(&mut self) {
        if self.checkpoint_due && self.group.is_none() {
            self.checkpoint_due = false;
            self.start_checkpoint();
        }
        if self.group.is_none() && !self.queue.is_empty() {
            self.form_group();
        }
        if let Some(g) = &mut self.group
            && self.sync.is_none()
            && self.in_flight.first().is_none_or(|t| *t > g.last_ticket)
        {
            g.sync_started = Some(std::time::Instant::now());
            self.start_sync();
        }
    }

    fn start_sync(&mut self) {
        let files = self.log.take_dirty();
        let durable = self.durability == Durability::Strict;
        self.sync = Some(Box::pin(async move {
            if durable {
                let syncs = files.iter().map(|f| f.sync_data());
                for r in futures_util::future::join_all(syncs).await {
                    r?;
                }
            }
            Ok(())
        }));
    }

    fn finish_group(&mut self, r: Result<(), Error>) {
        self.sync = None;
        let Some(group) = self.group.take() else {
            return;
        };
        if let Some(started) = group.sync_started {
            let s = &mut self.group_stats;
            s.groups += 1;
            s.ops += group.ops.len() as u64;
            s.wait_nanos += started.duration_since(group.formed).as_nanos() as u64;
            s.sync_nanos += started.elapsed().as_nanos() as u64;
        }
        if let Err(e) = &r {
            self.poison(e);
        }
        let failure = self.poisoned.clone();
        if failure.is_none() {
            for op in &group.ops {
                if let Some(walk) = &mut self.walk {
                    walk.before_change(&self.index, op);
                }
                let freed = self.index.apply(op);
                self.reclaim.account(op, &freed);
            }
        }
        for d in group.done {
            let err = || Error::Poisoned(failure.clone().unwrap_or_default());
            match d {
                Done::Commit(reply, o) => {
                    let _ = reply.send(if failure.is_none() { Ok(o) } else { Err(err()) });
                }
                Done::Delete(reply, o) => {
                    let _ = reply.send(if failure.is_none() { Ok(o) } else { Err(err()) });
                }
                Done::Relocated => self.relocated(),
                Done::Upload(reply) => {
                    let _ = reply.send(if failure.is_none() { Ok(()) } else { Err(err()) });
                }
                Done::Tagged(reply, id) => {
                    let _ = reply.send(if failure.is_none() { Ok(id) } else { Err(err()) });
                }
                Done::Bucket(reply, name, state) => {
                    if failure.is_some() {
                        let _ = reply.send(Err(err()));
                    } else {
                        super::broadcast_replica(&self.shared, name, state, reply);
                    }
                }
            }
        }
    }

    /// Takes queued changes into one group: checks their conditions against
    /// the committed index, encodes their records, and issues the write.
    /// A key already changed in this group waits for the next one, so each
    /// group sees every earlier change applied.
    fn form_group(&mut self) {
        let first = self.queue.front().map_or(0, estimate);
        match self.log.ensure_room(first as u64) {
            Ok(()) => {}
            Err(Error::DiskFull) => {
                // No room for even the first change: refuse what is queued.
                for q in std::mem::take(&mut self.queue) {
                    fail_queued(q, Error::DiskFull);
                }
                return;
            }
            Err(e) => self.poison(&e),
        }
        let want: usize = self.queue.iter().map(estimate).sum();
        let mut batch = Batch::new(self.log.position(), self.log.remaining(), want);
        let mut touched: HashSet<(String, String)> = HashSet::new();
        let mut deferred = VecDeque::new();
        let mut done = Vec::new();
        let mut ops = Vec::new();
        while let Some(q) = self.queue.pop_front() {
            let id = match &q {
                // Parts of one key may share a group: each only needs its
                // upload (but never with the upload's end: upload_marks).
                Queued::Commit(c, _) if let Target::Part { upload, number } = &c.target => {
                    (c.bucket.clone(), format!("{}\0{upload}\0{number}", c.key))
                }
                Queued::Commit(c, _) => (c.bucket.clone(), c.key.clone()),
                Queued::Upload(b, k, _, _) => (b.clone(), k.clone()),
                Queued::Delete(d, _) => (d.bucket.clone(), d.key.clone()),
                Queued::Tags(t, _) => (t.bucket.clone(), t.key.clone()),
                Queued::Bucket(n, _, _) => (n.clone(), String::new()),
                Queued::Relocate(r) => (r.bucket.clone(), r.key.clone()),
            };
            let upload = upload_marks(&q);
            if touched.contains(&id)
                || upload.as_ref().is_some_and(|(waits_for, _)| touched.contains(waits_for))
                || batch.used + estimate(&q) > batch.limit
            {
                deferred.push_back(q);
                continue;
            }
            if let Err(e) = self.check_writable() {
                fail_queued(q, e);
                continue;
            }
            let planned = match q {
                Queued::Commit(c, reply) => {
                    self.plan_commit(*c, &mut batch, reply).map(|(op, reply, o)| (op, Done::Commit(reply, o)))
                }
                Queued::Delete(d, reply) => {
                    self.plan_delete(d, reply).map(|(op, reply, o)| (op, Done::Delete(reply, o)))
                }
                Queued::Bucket(name, change, reply) => self.plan_bucket(name, change, reply),
                Queued::Relocate(r) => self.plan_relocate(*r, &mut batch),
                Queued::Upload(bucket, key, change, reply) => self.plan_upload(bucket, key, change, reply),
                Queued::Tags(t, reply) => self.plan_tags(t, reply),
            };
            match planned {
                Some((Some(op), d)) => {
                    touched.insert(id);
                    touched.extend(upload.map(|(_, mark)| mark));
                    batch.push_meta(&mut self.log, &op);
                    ops.push(op);
                    done.push(d);
                }
                Some((None, d)) => done.push(d),
                None => {}
            }
        }
        self.queue = deferred;
        let last_ticket = if ops.is_empty() {
            None
        } else {
            match self.write_batch(batch) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.poison(&e);
                    None
                }
            }
        };
        self.group = Some(Group {
            last_ticket: last_ticket.unwrap_or(0),
            ops,
            done,
            formed: std::time::Instant::now(),
            sync_started: None,
        });
        if last_ticket.is_none() {
            // Nothing was written: answer now (errors carry the poison).
            let r = match &self.poisoned {
                Some(why) => Err(Error::Poisoned(why.clone())),
                None => Ok(()),
            };
            self.finish_group(r);
        }
    }

    fn write_batch(&mut self, batch: Batch) -> Result<u64, Error> {
        let Batch { mut buf, used, at, .. } = batch;
        let alloc = self.log.alloc(used as u64)?;
        assert_eq!((alloc.segment, alloc.offset), at, "nothing allocates while a group forms");
        buf.set_len(align_up(used as u64) as usize);
        self.bytes_since_checkpoint += used as u64;
        let ticket = self.ticket();
        let (file, offset, segment) = (alloc.file, alloc.offset, alloc.segment);
        self.writes.push(Box::pin(async move {
            let BufResult(r, buf) = (&file).write_at(buf, offset).await;
            (ticket, segment, check_full_write(r, buf.len()), None)
        }));
        Ok(ticket)
    }

    /// Checks a commit's bucket and condition and builds its version; on
    /// failure answers the client and returns None.
    #[allow(clippy::type_complexity)]
    fn plan_commit(
        &mut self,
        c: Commit,
        batch: &mut Batch,
        reply: Reply<CommitOutcome>,
    ) -> Option<(Option<MetaOp>, Reply<CommitOutcome>, CommitOutcome)> {
        let Commit { bucket, key, mut extents, tail, size, etag, meta, condition, now_ms, target } = c;
        let refuse = |reply: Reply<CommitOutcome>, e| {
            let _ = reply.send(Err(e));
            None
        };
        let versioning = {
            let t = self.buckets().borrow();
            match t.get(&bucket) {
                None => return refuse(reply, Error::NoSuchBucket),
                Some(b) if b.frozen() => return refuse(reply, Error::OperationAborted),
                Some(b) => b.state.versioning,
            }
        };
        let upload = match &target {
            Target::Object | Target::Restore { .. } => None,
            Target::Part { upload, .. } | Target::Complete { upload, .. } => {
                match self.index.upload(&bucket, &key, *upload) {
                    Some(u) => Some(u),
                    None => return refuse(reply, Error::NoSuchUpload),
                }
            }
        };
        if !matches!(target, Target::Part { .. }) {
            let current = self.index.current(&bucket, &key).filter(|v| !v.delete_marker);
            let verdict = condition.judge(current.map(|v| v.etag).as_ref());
            if let Err(e) = verdict {
                return refuse(reply, e);
            }
        }
        // The completed object is the list of its parts' extents (no copy),
        // resolved when the request arrived; a part replaced since fails it.
        if let (Target::Complete { parts, .. }, Some(u)) = (&target, upload)
            && part_extents(u, parts).ok().as_ref() != Some(&extents)
        {
            return refuse(reply, Error::InvalidPart);
        }
        // With no room for a new segment, only metadata may use what is left.
        if self.log.full
            && (tail.is_some() || (!extents.is_empty() && matches!(target, Target::Object | Target::Restore { .. })))
        {
            return refuse(reply, Error::DiskFull);
        }
        // An upload so slow that its first chunks sat in a segment compaction
        // already reclaimed cannot be committed; the client retries it.
        if extents.iter().any(|e| self.reclaim.deleted.contains(&e.segment)) {
            return refuse(reply, Error::Retry("the upload took too long; its data was reclaimed".into()));
        }
        if let Some(tail) = tail {
            push_extent(&mut extents, batch.push_data(&mut self.log, &tail));
            tail.buf.recycle();
        }
        let extents = extents.into_boxed_slice();
        if let Target::Part { upload, number } = target {
            let part = Part { size, md5: etag.md5, mtime_ms: now_ms, checksum: meta.checksum, extents };
            let outcome = CommitOutcome { version_id: VersionId::NULL, versioned: false, mtime_ms: now_ms };
            return Some((Some(MetaOp::PutPart { bucket, key, upload, number, part }), reply, outcome));
        }
        let (id, delete_marker) = match (&target, versioning) {
            (Target::Restore { id, delete_marker }, _) => (*id, *delete_marker),
            (_, Versioning::Enabled) => (VersionId::generate(now_nanos()), false),
            (_, Versioning::Unversioned | Versioning::Suspended) => (VersionId::NULL, false),
        };
        let version = Version {
            id,
            seq: self.log.next_seq(),
            mtime_ms: now_ms,
            size,
            etag,
            delete_marker,
            extents,
            meta: MetaBlob::new(&meta),
        };
        let outcome = CommitOutcome { version_id: id, versioned: versioning == Versioning::Enabled, mtime_ms: now_ms };
        let op = match target {
            Target::Complete { upload, .. } => MetaOp::CompleteUpload { bucket, key, upload, version },
            _ => MetaOp::PutVersion { bucket, key, version },
        };
        Some((Some(op), reply, outcome))
    }

    /// Checks CreateMultipartUpload (the bucket exists) and Abort (the
    /// upload exists).
    fn plan_upload(
        &mut self,
        bucket: String,
        key: String,
        change: UploadChange,
        reply: Reply<()>,
    ) -> Option<(Option<MetaOp>, Done)> {
        let refuse = |e| {
            let _ = reply.send(Err(e));
            None
        };
        let op = match change {
            UploadChange::Create(upload) => match self.buckets().borrow().get(&bucket) {
                None => return refuse(Error::NoSuchBucket),
                Some(b) if b.frozen() => return refuse(Error::OperationAborted),
                Some(_) => MetaOp::CreateUpload { bucket, key, upload },
            },
            UploadChange::Abort(id) => match self.index.upload(&bucket, &key, id) {
                None => return refuse(Error::NoSuchUpload),
                Some(_) => MetaOp::AbortUpload { bucket, key, upload: id },
            },
        };
        Some((Some(op), Done::Upload(reply)))
    }

    /// Checks a bucket change against this shard's authoritative copy of
    /// the buckets it owns (creation is atomic here: one owner per name).
    fn plan_bucket(&mut self, name: String, change: BucketChange, reply: Reply<()>) -> Option<(Option<MetaOp>, Done)> {
        let existing = self.index.owned_buckets().get(&name);
        let refuse = |e| {
            let _ = reply.send(Err(e));
            None
        };
        let op = match change {
            BucketChange::Create(state) => match existing {
                Some(b) if b.owner == state.owner => return refuse(Error::BucketAlreadyOwnedByYou),
                Some(_) => return refuse(Error::BucketAlreadyExists),
                None => MetaOp::PutBucket { name: name.clone(), state },
            },
            BucketChange::Update { expect, new } => match existing {
                Some(b) if *b == expect => MetaOp::PutBucket { name: name.clone(), state: new },
                Some(b) if !b.is(&expect.owner, expect.created_ms) => return refuse(Error::NoSuchBucket),
                // Another versioning change came first (or the same one): the
                // last one wins, as in AWS. (Same configuration documents, so
                // the record is the size `estimate` reserved.)
                Some(b) if b.configs == new.configs => {
                    let state = BucketState { versioning: new.versioning, ..b.clone() };
                    MetaOp::PutBucket { name: name.clone(), state }
                }
                Some(_) => return refuse(Error::OperationAborted),
                None => return refuse(Error::NoSuchBucket),
            },
            BucketChange::Delete { owner, created_ms } => match existing {
                Some(b) if b.is(&owner, created_ms) => MetaOp::DeleteBucket { name: name.clone() },
                _ => return refuse(Error::NoSuchBucket),
            },
            BucketChange::SetConfig { owner, created_ms, name: config, doc } => match existing {
                Some(b) if b.is(&owner, created_ms) => {
                    let mut state = b.clone();
                    state.configs.retain(|(n, _)| *n != config);
                    state.configs.extend(doc.map(|d| (config, d)));
                    // What `estimate` reserved for the other documents.
                    let others: usize = b.configs.iter().map(|(n, d)| n.len() + d.len() + 16).sum();
                    if others > BUCKET_OTHER_CONFIGS_BYTES_MAX {
                        return refuse(Error::Retry("the bucket's configuration documents are too large".into()));
                    }
                    MetaOp::PutBucket { name: name.clone(), state }
                }
                _ => return refuse(Error::NoSuchBucket),
            },
        };
        let state = match &op {
            MetaOp::PutBucket { state, .. } => Some(state.clone()),
            _ => None,
        };
        Some((Some(op), Done::Bucket(reply, name, state)))
    }

    /// Works out what a DeleteObject does in the bucket's versioning state
    /// (AWS "Deleting object versions"): remove a version for good, add a
    /// delete marker, or replace the null version with a null marker.
    #[allow(clippy::type_complexity)]
    fn plan_delete(
        &mut self,
        d: DeleteReq,
        reply: Reply<DeleteOutcome>,
    ) -> Option<(Option<MetaOp>, Reply<DeleteOutcome>, DeleteOutcome)> {
        let (versioning, frozen) = match self.buckets().borrow().get(&d.bucket) {
            None => {
                let _ = reply.send(Err(Error::NoSuchBucket));
                return None;
            }
            Some(b) => (b.state.versioning, b.frozen()),
        };
        let DeleteReq { bucket, key, version, now_ms, guard } = d;
        if let Some(g) = guard {
            let versions = self.index.versions(&bucket, &key);
            let acted_on = match version {
                Some(id) => versions.iter().find(|v| v.id == id),
                None => versions.first(),
            };
            if acted_on.is_none_or(|v| v.seq != g.seq) || (g.sole && versions.len() != 1) {
                let _ = reply.send(Err(Error::PreconditionFailed));
                return None;
            }
        }
        if let Some(id) = version {
            let Some(v) = self.index.version(&bucket, &key, id) else {
                return Some((None, reply, DeleteOutcome { delete_marker: false, version_id: Some(id) }));
            };
            let outcome = DeleteOutcome { delete_marker: v.delete_marker, version_id: Some(id) };
            return Some((Some(MetaOp::DeleteVersion { bucket, key, id }), reply, outcome));
        }
        if versioning == Versioning::Unversioned {
            let outcome = DeleteOutcome { delete_marker: false, version_id: None };
            if self.index.version(&bucket, &key, VersionId::NULL).is_none() {
                return Some((None, reply, outcome));
            }
            return Some((Some(MetaOp::DeleteVersion { bucket, key, id: VersionId::NULL }), reply, outcome));
        }
        // A delete marker is something stored: not while a DeleteBucket
        // checks the bucket, or it could land in a deleted bucket (and come
        // back in a new one of the same name). Removals need no such care.
        if frozen {
            let _ = reply.send(Err(Error::OperationAborted));
            return None;
        }
        let id = if versioning == Versioning::Enabled { VersionId::generate(now_nanos()) } else { VersionId::NULL };
        let version = Version {
            id,
            seq: self.log.next_seq(),
            mtime_ms: now_ms,
            size: 0,
            etag: Default::default(),
            delete_marker: true,
            extents: Box::new([]),
            meta: Default::default(),
        };
        let outcome = DeleteOutcome { delete_marker: true, version_id: Some(id) };
        Some((Some(MetaOp::PutVersion { bucket, key, version }), reply, outcome))
    }

    /// Replaces one version's tag set: the same version (id, sequence,
    /// data) with new metadata, so listings and reads see no other change.
    fn plan_tags(&mut self, t: super::TagReq, reply: Reply<VersionId>) -> Option<(Option<MetaOp>, Done)> {
        let op = self.tags_op(t);
        // The group reserved the record's size as it was when the request
        // came; a version rewritten since into a bigger record retries.
        let op = op.and_then(|(op, reserved)| match packed_len(op.encode().len()) <= reserved {
            true => Ok(op),
            false => Err(Error::Retry("the version changed while its tags were being set".into())),
        });
        match op {
            Ok(op) => {
                let id = match &op {
                    MetaOp::PutVersion { version, .. } => version.id,
                    _ => unreachable!("tags_op makes a PutVersion"),
                };
                Some((Some(op), Done::Tagged(reply, id)))
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    }

    /// The record that gives a version new tags, and the room reserved for it.
    fn tags_op(&self, t: super::TagReq) -> Result<(MetaOp, usize), Error> {
        let super::TagReq { bucket, key, version, edit, reserve } = t;
        if self.buckets().borrow().get(&bucket).is_none() {
            return Err(Error::NoSuchBucket);
        }
        let mut v = match self.get(&bucket, &key, version) {
            Err(Error::DeleteMarker(_)) => return Err(Error::NoSuchKey),
            other => other?,
        };
        let mut meta = v.meta.get();
        match edit {
            super::MetaEdit::Tags(tags) => meta.tags = tags,
            super::MetaEdit::Acl(acl) => meta.acl = acl,
        }
        v.meta = MetaBlob::new(&meta);
        Ok((MetaOp::PutVersion { bucket, key, version: v }, reserve))
    }

    /// Writes a checkpoint now (at start-up, so replay starts past any torn
    /// tail of the previous run).
    pub fn force_checkpoint(&mut self) {
        self.bytes_since_checkpoint = self.bytes_since_checkpoint.max(1);
        self.start_checkpoint();
    }

    fn maybe_checkpoint(&mut self) {
        let due_bytes = self.bytes_since_checkpoint >= self.shared.config.checkpoint_bytes;
        let due_time = self.bytes_since_checkpoint > 0
            && self.last_checkpoint.elapsed().as_millis() as u64 >= self.shared.config.checkpoint_interval_ms;
        let due_reclaim = self.reclaim.waiting() && self.last_checkpoint.elapsed() >= RECLAIM_CHECKPOINT_EVERY;
        // Under steady load a group is nearly always in flight at a tick:
        // checkpoints then waited for a chance gap (3 in 3 s where 4 MB of
        // writes asked for ~15); now the next gap between groups starts it.
        if (due_bytes || due_time || due_reclaim) && !self.checkpointing() {
            self.checkpoint_due = true;
        }
    }

    fn checkpointing(&self) -> bool {
        self.walk.is_some() || self.checkpoint.is_some()
    }

    /// Begins a checkpoint of the index as it is now (between groups, so it
    /// matches the log up to the current position). It is encoded in steps
    /// while requests go on, then written on a blocking thread.
    fn start_checkpoint(&mut self) {
        // A poisoned shard writes nothing more until restart.
        if self.group.is_some() || self.checkpointing() || self.bytes_since_checkpoint == 0 || self.poisoned.is_some() {
            return;
        }
        let (segment, offset) = self.log.position();
        // Each checkpoint takes a sequence number of its own, so no two have
        // the same name (`ckpt-<next_seq>`): a checkpoint with nothing logged
        // since the last one (at a start after a clean stop, or one taken to
        // let emptied segments go) would otherwise replace the newest file,
        // and the older one kept beside it would hold those segments forever.
        self.log.next_seq();
        let pos = super::index::checkpoint::Position { next_seq: self.log.peek_seq(), segment, offset };
        self.walk = Some(super::index::checkpoint::Walk::begin(self.shared.shard, pos, &self.index));
        self.bytes_since_checkpoint = 0;
        self.last_checkpoint = std::time::Instant::now();
        self.checkpoint_step();
    }

    fn checkpoint_step(&mut self) {
        let Some(walk) = &mut self.walk else { return };
        if !walk.step(&self.index, CHECKPOINT_STEP_KEYS) {
            return;
        }
        let walk = self.walk.take().expect("walking");
        let (pos, saved) = (walk.pos, walk.saved_keys());
        let bytes = walk.finish();
        let walk_ms = self.last_checkpoint.elapsed().as_millis() as u64;
        tracing::debug!(shard = self.shared.shard.0, bytes = bytes.len(), walk_ms, saved, "checkpoint encoded");
        let dir = self.log.dir().to_path_buf();
        let task = compio::runtime::spawn_blocking(move || super::index::checkpoint::write(&dir, pos.next_seq, &bytes));
        self.checkpoint = Some(Box::pin(async move {
            match task.await {
                Ok(Ok(kept)) => Some(kept),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "checkpoint write failed; will retry");
                    None
                }
                Err(_) => {
                    tracing::error!("checkpoint task panicked");
                    None
                }
            }
        }));
    }
}

fn fail_queued(q: Queued, e: Error) {
    match q {
        Queued::Commit(_, r) => drop(r.send(Err(e))),
        Queued::Delete(_, r) => drop(r.send(Err(e))),
        Queued::Bucket(_, _, r) => drop(r.send(Err(e))),
        Queued::Relocate(_) => {}
        Queued::Upload(_, _, _, r) => drop(r.send(Err(e))),
        Queued::Tags(_, r) => drop(r.send(Err(e))),
    }
}

/// The extents of an upload's named parts, in order, each part checked to
/// be the one (MD5 and size) the completion was computed from.
fn part_extents(u: &super::types::Upload, parts: &[(u32, [u8; 16], u64)]) -> Result<Vec<Extent>, Error> {
    let mut extents = Vec::new();
    for (number, md5, len) in parts {
        match u.parts.get(number) {
            Some(p) if p.md5 == *md5 && p.size == *len => {
                for e in p.extents.iter() {
                    push_extent(&mut extents, *e);
                }
            }
            _ => return Err(Error::InvalidPart),
        }
    }
    Ok(extents)
}

const SLACK: usize = 1024;

/// Room a SetConfig reserves for the bucket's other configuration
/// documents (its Put handlers bound each document well below this).
const BUCKET_OTHER_CONFIGS_BYTES_MAX: usize = 2 << 20;

/// For a part, and for the completion or abort of an upload: what in the
/// group makes it wait, and what it marks. Parts of one upload may share a
/// group, but never with the upload's end: a completion is checked against
/// the parts applied before it, and a part after the end must find no
/// upload (AWS: InvalidPart or NoSuchUpload, never both calls answered 200).
fn upload_marks(q: &Queued) -> Option<((String, String), (String, String))> {
    let (bucket, key, upload, end) = match q {
        Queued::Commit(c, _) => match &c.target {
            Target::Part { upload, .. } => (&c.bucket, &c.key, *upload, false),
            Target::Complete { upload, .. } => (&c.bucket, &c.key, *upload, true),
            Target::Object | Target::Restore { .. } => return None,
        },
        Queued::Upload(b, k, UploadChange::Abort(upload), _) => (b, k, *upload, true),
        _ => return None,
    };
    let mark = |what: &str| (bucket.clone(), format!("{key}\0{upload}\0{what}"));
    Some(if end { (mark("parts"), mark("end")) } else { (mark("end"), mark("parts")) })
}

fn commit_estimate(c: &Commit) -> usize {
    let data = c.tail.as_ref().map_or(0, |t| packed_len(t.len));
    data + packed_len(c.bucket.len() + c.key.len() + c.meta.approx_encoded_len() + c.extents.len() * 40 + SLACK)
}

/// An upper bound of the bytes a queued change adds to a group.
fn estimate(q: &Queued) -> usize {
    match q {
        Queued::Commit(c, _) => commit_estimate(c),
        Queued::Delete(d, _) => packed_len(d.bucket.len() + d.key.len() + SLACK),
        // The version's record again, with the new tags: its extents and
        // metadata are bounded by what a commit of it could carry.
        Queued::Tags(t, _) => t.reserve,
        Queued::Upload(b, k, c, _) => {
            let meta = match c {
                UploadChange::Create(u) => u.meta.len() + u.initiator.len(),
                UploadChange::Abort(_) => 0,
            };
            packed_len(b.len() + k.len() + meta + SLACK)
        }
        Queued::Bucket(n, c, _) => {
            let state = match c {
                BucketChange::Create(s) | BucketChange::Update { new: s, .. } => Some(s),
                BucketChange::Delete { .. } | BucketChange::SetConfig { .. } => None,
            };
            let configs: usize = state.iter().flat_map(|s| s.configs.iter()).map(|(k, v)| k.len() + v.len() + 16).sum();
            // SetConfig writes the bucket's whole state, whose other
            // documents are bounded by what their Put handlers accept.
            let set = match c {
                BucketChange::SetConfig { doc, .. } => {
                    doc.as_ref().map_or(0, Vec::len) + BUCKET_OTHER_CONFIGS_BYTES_MAX
                }
                _ => 0,
            };
            packed_len(n.len() + configs + set + SLACK)
        }
        Queued::Relocate(r) => {
            let data: usize = r
                .pieces
                .iter()
                .map(|p| match p {
                    super::compact::Piece::Data(c) => packed_len(c.len),
                    super::compact::Piece::Keep(_) => 0,
                })
                .sum();
            data + packed_len(r.bucket.len() + r.key.len() + r.pieces.len() * 40 + 4096 + SLACK)
        }
    }
}

fn check_full_write(r: std::io::Result<usize>, want: usize) -> Result<(), Error> {
    match r {
        Ok(n) if n == want => Ok(()),
        Ok(n) => Err(Error::Io(std::io::Error::other(format!("short write: {n} of {want} bytes")))),
        Err(e) => Err(Error::Io(e)),
    }
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
