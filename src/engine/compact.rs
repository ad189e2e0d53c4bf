//! Space reclamation. Overwrites and deletes leave dead bytes in sealed
//! segments; once a shard's sealed segments hold less live data than
//! `compaction_live_ratio` of their room (or one segment less than a
//! quarter of that), it picks the segment with the least live data, copies the live
//! records out in bounded
//! steps, commits each moved version's new extents through the normal group
//! commit, and deletes the segment once nothing refers to it and every kept
//! checkpoint starts its replay after it (so recovery never reads it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;

use super::batch::{Batch, push_extent};
use super::record::MetaOp;
use super::shard::{Done, INLINE_DATA_BYTES_MAX, Queued, Shard};
use super::types::{Extent, SegmentId, VersionId};
use super::{Chunk, Error, ObjectReader, Request, Shared};

/// Keys looked at per scan step (bounds the time one step holds the core).
const SCAN_KEYS_PER_STEP: usize = 2048;
/// Versions whose records are being read at once.
const READS_IN_FLIGHT_MAX: usize = 4;

/// One piece of a moved version's new extent list, in order.
pub enum Piece {
    /// An extent that stays (outside the victim) or was already rewritten.
    Keep(Extent),
    /// Small data to pack into the group-commit buffer.
    Data(Chunk),
}

/// A version whose extents in the victim were copied; committed like any
/// change, and only if the version is still there, unchanged.
pub struct Relocation {
    pub bucket: String,
    pub key: String,
    pub id: VersionId,
    pub old: Box<[Extent]>,
    pub pieces: Vec<Piece>,
}

pub struct Moved {
    bucket: String,
    key: String,
    id: VersionId,
    old: Box<[Extent]>,
    /// For each old extent: None if it stays, else its records' payloads.
    result: Result<Vec<Option<Vec<Chunk>>>, Error>,
}

pub struct Compaction {
    pub victim: SegmentId,
    cursor: Option<(String, Vec<u8>)>,
    scan_done: bool,
    todo: VecDeque<(String, String, VersionId)>,
    pub reads: FuturesUnordered<LocalBoxFuture<'static, Moved>>,
    pub pending: usize,
    failed: bool,
}

/// Compaction bookkeeping kept by each shard.
#[derive(Default)]
pub struct Reclaim {
    /// Live payload bytes per segment.
    pub live: HashMap<SegmentId, u64>,
    pub active: Option<Compaction>,
    /// Emptied segments waiting until no kept checkpoint replays them.
    reclaimable: Vec<SegmentId>,
    /// Replay-start segments of the checkpoints on disk, oldest first.
    pub kept: VecDeque<SegmentId>,
    /// Deleted segments: a commit that still refers to one is refused.
    pub deleted: HashSet<SegmentId>,
    /// Segments whose compaction failed (damaged data); left alone.
    quarantined: HashSet<SegmentId>,
    pub segments_reclaimed: u64,
}

impl Reclaim {
    pub fn new(live: HashMap<SegmentId, u64>, kept: VecDeque<SegmentId>) -> Self {
        Self { live, kept, ..Default::default() }
    }

    /// Whether emptied segments wait for checkpoints.
    pub fn waiting(&self) -> bool {
        !self.reclaimable.is_empty()
    }

    /// Adjusts live bytes for an applied change.
    pub fn account(&mut self, op: &MetaOp, freed: &[Extent]) {
        for e in op.added_extents() {
            *self.live.entry(e.segment).or_default() += e.len;
        }
        for e in freed {
            let v = self.live.entry(e.segment).or_default();
            *v = v.saturating_sub(e.len);
        }
    }
}

/// Reads every record of the extents of `old` that lie in `victim`.
async fn read_moved(shared: Rc<Shared>, owner: super::types::ShardId, victim: SegmentId, m: Moved) -> Moved {
    let mut out = Vec::with_capacity(m.old.len());
    for e in m.old.iter() {
        if e.segment != victim {
            out.push(None);
            continue;
        }
        let mut reader = ObjectReader::new(shared.clone(), owner, &[*e], 0, e.len, None);
        let mut chunks = Vec::new();
        while let Some(piece) = reader.next().await {
            let (buf, range) = match piece {
                Ok(p) => p,
                Err(err) => return Moved { result: Err(err), ..m },
            };
            let len = range.len();
            let mut chunk = Chunk::buffer();
            chunk.full_mut()[Chunk::PAYLOAD_AT..Chunk::PAYLOAD_AT + len].copy_from_slice(&buf.full()[range]);
            let hash = super::segment::format::payload_hash(&chunk.full()[Chunk::PAYLOAD_AT..Chunk::PAYLOAD_AT + len]);
            chunks.push(Chunk { buf: chunk, len, hash });
            reader.give_back(buf);
        }
        out.push(Some(chunks));
    }
    Moved { result: Ok(out), ..m }
}

impl Shard {
    /// Starts compacting the emptiest sealed segment once the shard's
    /// sealed segments, all but one, hold less live data than
    /// `compaction_live_ratio` of their room, or when a segment holds less
    /// than a quarter of that ratio (a segment with nothing live is freed at once).
    /// Runs on the shard's tick.
    ///
    /// The trigger is the shard's space amplification, not each segment's
    /// own ratio: compacting every segment the moment it drops below the
    /// ratio moved up to half of it, and under overwrites of a working set
    /// smaller than a segment that was every sealed segment, right away
    /// (1 MiB PUTs over 256 keys ran at ~60 % of the rate of new keys).
    /// Waiting until the shard as a whole is over the bound lets the
    /// emptiest segments decay further, so each compaction copies less for
    /// the same disk bound.
    pub(super) fn compaction_tick(&mut self) {
        if self.reclaim.active.is_some() || self.poisoned.is_some() {
            return;
        }
        let (current, _) = self.log.position();
        let usable = (self.log.segment_bytes() - super::segment::format::SEGMENT_HEADER_BYTES) as f64;
        let threshold = self.shared.config.compaction_live_ratio;
        let due: HashSet<SegmentId> = self.reclaim.reclaimable.iter().copied().collect();
        // Parts of uploads in progress are not moved; their segments wait.
        let parts = self.index.segments_with_parts();
        let sealed: Vec<(SegmentId, u64)> = self
            .log
            .segments()
            .filter(|s| {
                *s != current && !due.contains(s) && !self.reclaim.quarantined.contains(s) && !parts.contains(s)
            })
            .map(|s| (s, self.reclaim.live.get(&s).copied().unwrap_or(0)))
            .collect();
        let live_total: u64 = sealed.iter().map(|(_, live)| live).sum();
        // One sealed segment of slack: a working set smaller than a segment
        // otherwise puts every segment over the bound the moment it is sealed.
        let room = usable * sealed.len().saturating_sub(1) as f64;
        let over_bound = (live_total as f64) < room * threshold;
        // A segment at under a quarter of the ratio is cheap to empty (at
        // most an eighth of a segment copied at the default): always worth it.
        let cheap = |live: u64| (live as f64) < usable * threshold / 4.0;
        let victim = sealed
            .into_iter()
            .filter(|(_, live)| *live == 0 || over_bound || cheap(*live))
            // With the disk full, only segments needing no copy can help.
            .filter(|(_, live)| !self.log.full || *live == 0)
            .min_by_key(|(_, live)| *live);
        if let Some((victim, live)) = victim {
            tracing::debug!(shard = self.shared.shard.0, segment = victim.0, live, "compacting segment");
            self.reclaim.active = Some(Compaction {
                victim,
                cursor: None,
                scan_done: false,
                todo: VecDeque::new(),
                reads: FuturesUnordered::new(),
                pending: 0,
                failed: false,
            });
        }
    }

    /// One bounded step: scan part of the index, start reads, and finish
    /// the compaction when everything moved is committed.
    pub(super) fn compaction_step(&mut self) {
        let Some(c) = self.reclaim.active.as_mut() else { return };
        if !c.scan_done {
            let (found, next) = self.index.versions_in_segment(c.victim, c.cursor.take(), SCAN_KEYS_PER_STEP);
            c.todo.extend(found);
            c.scan_done = next.is_none();
            c.cursor = next;
        }
        while c.reads.len() < READS_IN_FLIGHT_MAX
            && let Some((bucket, key, id)) = c.todo.pop_front()
        {
            let Some(v) = self.index.version(&bucket, &key, id) else { continue };
            let m = Moved { bucket, key, id, old: v.extents.clone(), result: Ok(Vec::new()) };
            c.reads.push(Box::pin(read_moved(self.shared.clone(), self.shared.shard, c.victim, m)));
        }
        if c.scan_done && c.todo.is_empty() && c.reads.is_empty() && c.pending == 0 {
            let c = self.reclaim.active.take().expect("active compaction");
            self.finish_compaction(c);
        }
    }

    fn finish_compaction(&mut self, c: Compaction) {
        let live = self.reclaim.live.get(&c.victim).copied().unwrap_or(0);
        if c.failed {
            tracing::warn!(segment = c.victim.0, live, "segment holds damaged data; leaving it");
            self.reclaim.quarantined.insert(c.victim);
            return;
        }
        if live > 0 {
            // A write committed into it meanwhile; it will be picked again.
            return;
        }
        self.reclaim.reclaimable.push(c.victim);
        // The segment goes once the kept checkpoints all start after it. With the disk full
        // that is urgent; otherwise the shard's tick checkpoints at most once per
        // `RECLAIM_CHECKPOINT_EVERY`, so a run of compactions shares checkpoints instead of
        // encoding and syncing the index once per segment.
        if self.log.full {
            self.force_checkpoint();
        }
        self.delete_reclaimable();
    }

    /// A version's records were read: rewrite large ones now (their own
    /// writes), keep small ones to pack into the next group, queue the commit.
    pub(super) fn on_moved(&mut self, m: Moved) {
        let Some(c) = self.reclaim.active.as_mut() else { return };
        let parts = match m.result {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(segment = c.victim.0, key = %m.key, error = %e, "cannot move damaged data");
                c.failed = true;
                return;
            }
        };
        let mut pieces = Vec::new();
        for (old, moved) in m.old.iter().zip(parts) {
            let Some(chunks) = moved else {
                pieces.push(Piece::Keep(*old));
                continue;
            };
            for chunk in chunks {
                if chunk.len <= INLINE_DATA_BYTES_MAX {
                    pieces.push(Piece::Data(chunk));
                    continue;
                }
                match self.issue_data_write(chunk, None) {
                    Ok(e) => pieces.push(Piece::Keep(e)),
                    Err(_) => return,
                }
            }
        }
        if let Some(c) = self.reclaim.active.as_mut() {
            c.pending += 1;
        }
        let r = Relocation { bucket: m.bucket, key: m.key, id: m.id, old: m.old, pieces };
        self.queue.push_back(Queued::Relocate(Box::new(r)));
    }

    /// Commits a relocation if the version is unchanged since it was read.
    pub(super) fn plan_relocate(&mut self, r: Relocation, batch: &mut Batch) -> Option<(Option<MetaOp>, Done)> {
        let Some(v) = self.index.version(&r.bucket, &r.key, r.id) else {
            return Some((None, Done::Relocated));
        };
        if v.extents != r.old {
            return Some((None, Done::Relocated));
        }
        let mut version = v;
        let mut extents = Vec::new();
        for p in r.pieces {
            let e = match p {
                Piece::Keep(e) => e,
                Piece::Data(chunk) => batch.push_data(&mut self.log, &chunk),
            };
            push_extent(&mut extents, e);
        }
        version.extents = extents.into_boxed_slice();
        Some((Some(MetaOp::PutVersion { bucket: r.bucket, key: r.key, version }), Done::Relocated))
    }

    pub(super) fn relocated(&mut self) {
        if let Some(c) = self.reclaim.active.as_mut() {
            c.pending = c.pending.saturating_sub(1);
        }
    }

    /// After a checkpoint was written: `kept` are the replay-start
    /// segments of the checkpoints now on disk.
    pub(super) fn after_checkpoint(&mut self, kept: Vec<SegmentId>) {
        self.reclaim.kept = kept.into_iter().collect();
        self.reclaim.kept.make_contiguous().sort();
        self.delete_reclaimable();
    }

    /// Deletes emptied segments that every kept checkpoint replays after,
    /// and tells every core to drop its handles; asks for another
    /// checkpoint while some still wait.
    pub(super) fn delete_reclaimable(&mut self) {
        let oldest = self.reclaim.kept.iter().min().copied().unwrap_or(SegmentId(0));
        let (due, later): (Vec<_>, Vec<_>) = self.reclaim.reclaimable.drain(..).partition(|s| *s < oldest);
        if !due.is_empty() {
            tracing::debug!(oldest = oldest.0, ?due, waiting = ?later, "deleting reclaimed segments");
        }
        self.reclaim.reclaimable = later;
        if !self.reclaim.reclaimable.is_empty() {
            self.bytes_since_checkpoint = self.bytes_since_checkpoint.max(1);
        }
        // A change in the group being synced was planned while its data's
        // segment still existed; its data becomes live when the group is
        // applied, so that segment must stay.
        let landing: HashSet<SegmentId> =
            self.group_ops().flat_map(|op| op.added_extents()).map(|e| e.segment).collect();
        for segment in due {
            if self.reclaim.live.get(&segment).copied().unwrap_or(0) > 0 || landing.contains(&segment) {
                continue;
            }
            let unlink = self.log.remove_segment(segment);
            self.reclaim.live.remove(&segment);
            self.reclaim.deleted.insert(segment);
            self.reclaim.segments_reclaimed += 1;
            // Every core closes its handles first, while the file is still
            // linked (a cheap close), so the unlink drops the last reference
            // and frees the extents on io_uring's worker. Closed after the
            // unlink, the last handle freed 256 MiB of extents inside close()
            // on an executor thread: 32-52 ms with every request of that
            // core waiting (strace; tuning/results/2026-11-25-reclaim-stall-discard.md).
            let (mesh, shard) = (self.shared.mesh.clone(), self.shared.shard);
            compio::runtime::spawn(async move {
                for tx in &mesh {
                    let (rtx, rrx) = flume::bounded(1);
                    if tx.send_async(Request::ForgetSegment { shard, segment, reply: rtx }).await.is_err() {
                        return;
                    }
                    let _ = rrx.recv_async().await;
                }
                unlink.await;
            })
            .detach();
        }
    }
}
