//! A shard's append-only log: the current segment, space allocation,
//! sequence numbers, which files need a sync, and spare segments.
//!
//! Allocation is synchronous (the shard thread owns the log), so records get
//! their offsets and sequence numbers in order even though the writes
//! themselves complete out of order; the shard's group commit waits for every
//! earlier write before it syncs.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::fs::File;
use compio::io::AsyncWriteAt;

use super::format::{SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::engine::Error;
use crate::engine::types::{SegmentId, ShardId};
use crate::runtime::buf::{ALIGN, AlignedBuf, align_up};

/// A reserved, 4096-aligned region of the log.
pub struct Alloc {
    pub segment: SegmentId,
    pub offset: u64,
    pub file: File,
}

/// Spare segments prepared in the background, shared between the log and
/// its preparer task (same thread).
#[derive(Default)]
struct Spares {
    ready: BTreeMap<u64, File>,
    /// Ids of ready spares made from reclaimed files.
    reused_ids: BTreeSet<u64>,
    /// Reclaimed segment files no core holds open any more, waiting to
    /// become spares (at most `reuse_max`; more are deleted).
    recyclable: Vec<PathBuf>,
    /// How many spares the preparer keeps ready.
    capacity: usize,
    /// How many reclaimed files may wait for reuse.
    reuse_max: usize,
    /// Ids below this are taken; a preparer working on one abandons it.
    wanted_from: u64,
    last_write: Option<Instant>,
    /// When the shard last served a request of any kind.
    last_request: Option<Instant>,
}

/// Zero-fill rate while the shard serves requests but writes nothing: the fill's writes
/// queue ahead of foreground reads on the disk, and two 256 MiB fills at full speed right
/// after a write burst held 4 KiB GETs for up to 150 ms
/// (tuning/results/2026-11-24-reclaim-stall.md).
const BUSY_FILL_BYTES_PER_S: u64 = 32 << 20;
/// Write size of the zero-fill while requests are being served.
const BUSY_FILL_CHUNK: usize = 1 << 20;

pub struct Log {
    dir: PathBuf,
    shard: ShardId,
    segment_bytes: u64,
    current: (SegmentId, File),
    pos: u64,
    next_seq: u64,
    /// Every segment this shard has written to, open for writing and syncing.
    files: BTreeMap<SegmentId, File>,
    dirty: BTreeSet<SegmentId>,
    spares: Rc<RefCell<Spares>>,
    /// Segments created without a zero-fill because no spare was ready.
    pub fallback_segments: u64,
    /// Segments written into a reclaimed file (no unwritten extents).
    pub reused_segments: u64,
    /// The last attempt to start a segment found the disk full.
    pub full: bool,
}

/// Bytes at the end of each segment that only metadata records may use.
pub const META_RESERVE_BYTES: u64 = 1 << 20;

pub fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("seg-{:010}", id.0))
}

/// Opens a segment file for O_DIRECT I/O as a compio file.
pub fn open_direct(path: &Path, write: bool, create: bool) -> std::io::Result<File> {
    // SAFETY: the fd was just opened by us and ownership moves into the File.
    Ok(unsafe { File::from_raw_fd(open_direct_std(path, write, create)?.into_raw_fd()) })
}

/// Opens a segment file for O_DIRECT I/O for blocking calls.
fn open_direct_std(path: &Path, write: bool, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
}

/// `header` encoded into the aligned block that starts a segment file.
fn header_block(header: SegmentHeader) -> AlignedBuf {
    let mut b = AlignedBuf::new(SEGMENT_HEADER_BYTES as usize);
    b.set_len(SEGMENT_HEADER_BYTES as usize);
    header.encode(b.as_mut_slice());
    b
}

/// A reclaimed file becomes a segment of the current size only.
fn check_reusable(len: u64, header: SegmentHeader) -> std::io::Result<()> {
    if len != header.size {
        return Err(std::io::Error::other(format!("size {len}, segments are now {}", header.size)));
    }
    Ok(())
}

/// Creates `path` with its header and `segment_bytes` allocated (unwritten
/// extents). Blocking: a few small syscalls.
fn create_segment_file(path: &Path, header: SegmentHeader) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: plain syscall on an fd we own.
    let r = unsafe { libc::fallocate(fd, 0, 0, header.size as libc::off_t) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    f.write_all_at(header_block(header).as_slice(), 0)?;
    Ok(f)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Log {
    /// Opens the log to append at a fresh segment `first` (recovery decided
    /// which one), with `next_seq` the next sequence number.
    pub fn open(
        dir: &Path,
        shard: ShardId,
        segment_bytes: u64,
        first: SegmentId,
        next_seq: u64,
        old_segments: &[SegmentId],
    ) -> Result<Self, Error> {
        let current = Self::create_now(dir, shard, segment_bytes, first)?;
        let mut files = BTreeMap::new();
        for id in old_segments {
            files.insert(*id, open_direct(&segment_path(dir, *id), true, false)?);
        }
        files.insert(first, current.clone());
        let spares = Spares { wanted_from: first.0 + 1, ..Default::default() };
        Ok(Self {
            dir: dir.to_path_buf(),
            shard,
            segment_bytes,
            current: (first, current),
            pos: SEGMENT_HEADER_BYTES,
            next_seq,
            files,
            dirty: BTreeSet::new(),
            spares: Rc::new(RefCell::new(spares)),
            fallback_segments: 0,
            reused_segments: 0,
            full: false,
        })
    }

    fn create_now(dir: &Path, shard: ShardId, size: u64, id: SegmentId) -> Result<File, Error> {
        let header = SegmentHeader { shard: shard.0, segment: id.0, size };
        let f = create_segment_file(&segment_path(dir, id), header)?;
        sync_dir(dir)?;
        // SAFETY: ownership of the fd moves into the compio File.
        Ok(unsafe { File::from_raw_fd(f.into_raw_fd()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn peek_seq(&self) -> u64 {
        self.next_seq
    }

    /// Where the next allocation would start (for checkpoints).
    pub fn position(&self) -> (SegmentId, u64) {
        (self.current.0, self.pos)
    }

    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Reserves `bytes` (rounded up to 4096) in one segment, rolling over to
    /// the next segment when the current one is full.
    pub fn alloc(&mut self, bytes: u64) -> Result<Alloc, Error> {
        self.alloc_below(bytes, self.segment_bytes)
    }

    /// Reserves room for object data: the last `META_RESERVE_BYTES` of each
    /// segment are kept for metadata, so deletes (and the records that free
    /// space) still work when the disk has no room for a new segment.
    pub fn alloc_data(&mut self, bytes: u64) -> Result<Alloc, Error> {
        self.alloc_below(bytes, self.segment_bytes - META_RESERVE_BYTES)
    }

    fn alloc_below(&mut self, bytes: u64, limit: u64) -> Result<Alloc, Error> {
        let bytes = align_up(bytes);
        assert!(bytes <= limit - SEGMENT_HEADER_BYTES, "record larger than a segment");
        if self.pos + bytes > limit {
            self.roll_over()?;
        }
        let a = Alloc { segment: self.current.0, offset: self.pos, file: self.current.1.clone() };
        self.pos += bytes;
        self.spares.borrow_mut().last_write = Some(Instant::now());
        Ok(a)
    }

    /// Rolls over to the next segment unless `bytes` fit in the current one.
    pub fn ensure_room(&mut self, bytes: u64) -> Result<(), Error> {
        if self.pos + align_up(bytes) > self.segment_bytes {
            self.roll_over()?;
        }
        Ok(())
    }

    /// After the disk was found full: tries again to start a new segment
    /// (space may have been freed since).
    pub fn retry_when_full(&mut self) {
        if self.full && self.roll_over().is_ok() {
            tracing::info!(shard = self.shard.0, "disk space available again");
        }
    }

    /// Bytes left in the current segment.
    pub fn remaining(&self) -> u64 {
        self.segment_bytes - self.pos
    }

    fn roll_over(&mut self) -> Result<(), Error> {
        let id = SegmentId(self.current.0.0 + 1);
        let file = {
            let mut spares = self.spares.borrow_mut();
            spares.wanted_from = id.0 + 1;
            let ready = spares.ready.remove(&id.0);
            spares.ready.retain(|k, _| *k > id.0);
            self.reused_segments += u64::from(ready.is_some() && spares.reused_ids.remove(&id.0));
            spares.reused_ids.retain(|k| *k > id.0);
            ready
        };
        let file = match file.or_else(|| self.reuse_now(id)) {
            Some(f) => f,
            None => match Self::create_now(&self.dir, self.shard, self.segment_bytes, id) {
                Ok(f) => {
                    self.fallback_segments += 1;
                    tracing::debug!(
                        shard = self.shard.0,
                        segment = id.0,
                        "no spare ready; created the segment in place"
                    );
                    f
                }
                Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    let _ = std::fs::remove_file(segment_path(&self.dir, id));
                    self.full = true;
                    return Err(Error::DiskFull);
                }
                Err(e) => return Err(e),
            },
        };
        self.full = false;
        self.files.insert(id, file.clone());
        self.current = (id, file);
        self.pos = SEGMENT_HEADER_BYTES;
        Ok(())
    }

    /// The writer outran the preparer: turns a waiting reclaimed file into
    /// segment `id` here, on the shard thread (a rename, a header write and
    /// two syncs, as cheap as creating the file and without its unwritten
    /// extents). Also what lets a full disk go on writing into reclaimed
    /// space. The preparer may have just renamed its spare into place (its
    /// header written and synced before the rename): then the writer takes
    /// that file and the reclaimed one goes back to the pool.
    fn reuse_now(&mut self, id: SegmentId) -> Option<File> {
        let old = self.spares.borrow_mut().recyclable.pop()?;
        let header = SegmentHeader { shard: self.shard.0, segment: id.0, size: self.segment_bytes };
        let path = segment_path(&self.dir, id);
        let reused = match rename_noreplace(&old, &path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let taken = open_direct(&path, true, false).map(|f| (f, false));
                if taken.is_ok() {
                    self.spares.borrow_mut().recyclable.push(old.clone());
                }
                taken
            }
            r => r.and_then(|()| write_header_blocking(&path, header)).map(|f| (f, true)),
        };
        match reused.and_then(|f| sync_dir(&self.dir).map(|()| f)) {
            Ok((f, reused)) => {
                self.reused_segments += u64::from(reused);
                Some(f)
            }
            Err(e) => {
                tracing::warn!(shard = self.shard.0, segment = id.0, error = %e, "could not reuse a reclaimed segment");
                self.spares.borrow_mut().recyclable.retain(|p| *p != old);
                let _ = std::fs::remove_file(&old);
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Reclaimed files waiting for reuse, and ready spares made from one.
    pub fn reuse_waiting(&self) -> usize {
        let s = self.spares.borrow();
        s.recyclable.len() + s.reused_ids.len()
    }

    /// Notes a finished write to `segment`, for the next sync.
    pub fn mark_dirty(&mut self, segment: SegmentId) {
        self.dirty.insert(segment);
    }

    /// Files with writes finished since the last call; the caller syncs them.
    pub fn take_dirty(&mut self) -> Vec<File> {
        let ids = std::mem::take(&mut self.dirty);
        ids.iter().filter_map(|id| self.files.get(id).cloned()).collect()
    }

    pub fn file(&self, id: SegmentId) -> Option<&File> {
        self.files.get(&id)
    }

    pub fn segments(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.files.keys().copied()
    }

    /// Forgets a segment nothing refers to any more and deletes its file in the background.
    ///
    /// Forgets a reclaimed segment and returns what to do with its file
    /// once no core holds it open: keep it as the next spare (no new file,
    /// no zero-fill, and no freeing of its extents) or, with enough spares
    /// waiting, unlink it. Freeing a 256 MiB segment's extents took 40-60 ms
    /// inside unlink on the development VM, and with the file system's
    /// online discard the TRIM that follows held foreground reads
    /// (tuning/results/2026-11-25-reclaim-stall-discard.md). The unlink goes
    /// through io_uring, which runs it on a kernel worker. A crash before
    /// either leaves a file that recovery deletes as unreferenced.
    pub fn remove_segment(&mut self, id: SegmentId) -> impl std::future::Future<Output = ()> + 'static {
        assert!(id != self.current.0, "the current segment cannot be removed");
        self.files.remove(&id);
        let (path, shard, spares) = (segment_path(&self.dir, id), self.shard, self.spares.clone());
        async move { keep_or_delete(&spares, &path, shard).await }
    }

    /// Notes that the shard served a request: a spare is then filled slowly.
    pub fn note_request(&self, now: Instant) {
        self.spares.borrow_mut().last_request = Some(now);
    }

    /// Keeps up to `spares` segments ready ahead of the writer: a reclaimed
    /// file, else a new one zero-filled while the log has been idle for
    /// `idle` (foreground writes keep the disk) and handed over as far as it
    /// is filled when writes resume. Runs forever on the shard's executor.
    pub fn preparer(&self, spares: usize, reuse_max: usize, idle: Duration) -> impl Future<Output = ()> + 'static {
        let state = self.spares.clone();
        state.borrow_mut().capacity = spares;
        state.borrow_mut().reuse_max = reuse_max;
        let (dir, shard, size) = (self.dir.clone(), self.shard, self.segment_bytes);
        async move {
            let mut space_checked = Instant::now();
            loop {
                // Space ran low (another shard, or anything else, filled the file system):
                // give the kept files back, four a second.
                if space_checked.elapsed() >= Duration::from_millis(250) {
                    space_checked = Instant::now();
                    let surplus = (!state.borrow().recyclable.is_empty() && !plenty_free(&dir))
                        .then(|| state.borrow_mut().recyclable.pop())
                        .flatten();
                    if let Some(path) = surplus {
                        tracing::info!(shard = shard.0, path = %path.display(), "space is low: deleting a segment file kept for reuse");
                        let _ = compio::fs::remove_file(&path).await;
                        continue;
                    }
                }
                let next = {
                    let s = state.borrow();
                    let next = s.ready.keys().next_back().map_or(s.wanted_from, |k| k + 1).max(s.wanted_from);
                    (s.ready.len() < spares).then_some(next)
                };
                let Some(id) = next else {
                    compio::time::sleep(idle.max(Duration::from_millis(5))).await;
                    continue;
                };
                tracing::debug!(shard = shard.0, segment = id, "preparing a spare segment");
                let result = prepare(&dir, shard, size, id, &state, idle).await;
                tracing::debug!(shard = shard.0, segment = id, ok = result.is_ok(), "spare segment prepared");
                if result.is_err() {
                    // A failed fallocate may keep blocks: give them back.
                    let _ = compio::fs::remove_file(dir.join(format!("seg-{id:010}.prep"))).await;
                }
                match result {
                    Ok(Some(file)) => {
                        state.borrow_mut().ready.insert(id, file);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(shard = shard.0, error = %e, "preparing a spare segment failed");
                        compio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// Zero-fills a new segment under a temporary name, then renames it into
/// place if the writer has not moved past its id. Pauses while the log is
/// busy; gives up (and deletes the file) if the id is no longer wanted.
async fn prepare(
    dir: &Path,
    shard: ShardId,
    size: u64,
    id: u64,
    state: &Rc<RefCell<Spares>>,
    idle: Duration,
) -> std::io::Result<Option<File>> {
    let tmp = dir.join(format!("seg-{id:010}.prep"));
    let header = SegmentHeader { shard: shard.0, segment: id, size };
    let recycled = state.borrow_mut().recyclable.pop();
    if let Some(old) = recycled {
        tracing::debug!(shard = shard.0, segment = id, from = %old.display(), "reusing a reclaimed segment as a spare");
        match recycle(&old, &tmp, header).await {
            Ok(file) => {
                let spare = finish_spare(dir, shard, id, &tmp, file, state).await;
                if let Ok(Some(_)) = &spare {
                    state.borrow_mut().reused_ids.insert(id);
                }
                return spare;
            }
            Err(e) => {
                tracing::warn!(shard = shard.0, error = %e, "could not reuse a reclaimed segment; making a new one");
                let _ = compio::fs::remove_file(&tmp).await;
                let _ = compio::fs::remove_file(&old).await;
            }
        }
    }
    // On a blocking-pool thread: fallocate waits for journal space, which right after a
    // write burst took over 100 ms on the development VM, and the shard's requests would
    // wait with it (tuning/results/2026-11-24-reclaim-stall.md).
    let std_file = {
        let tmp = tmp.clone();
        compio::runtime::spawn_blocking(move || create_segment_file(&tmp, header))
            .await
            .map_err(|_| std::io::Error::other("segment preparation panicked"))??
    };
    // SAFETY: ownership of the fd moves into the compio File.
    let mut file = unsafe { File::from_raw_fd(std_file.into_raw_fd()) };
    const FILL: usize = 4 << 20;
    let mut zeros = AlignedBuf::new(FILL);
    let mut at = SEGMENT_HEADER_BYTES;
    while at < size {
        let wanted = state.borrow().wanted_from <= id;
        if !wanted {
            let _ = compio::fs::remove_file(&tmp).await;
            return Ok(None);
        }
        let (writing, serving) = {
            let s = state.borrow();
            let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < idle);
            (recent(s.last_write), recent(s.last_request))
        };
        if writing {
            // Hand it over as it is: the rest stays allocated but unwritten, which costs
            // the writer an extent conversion per write, but creating the segment itself
            // would stall the shard (fallocate and a directory sync on its thread).
            tracing::debug!(
                shard = shard.0,
                segment = id,
                filled = at,
                "writes resumed; the spare stays partly filled"
            );
            break;
        }
        let chunk = if serving { BUSY_FILL_CHUNK } else { FILL };
        let n = (chunk as u64).min(size - at) as usize;
        zeros.set_len(n - n % ALIGN);
        let compio::BufResult(r, z) = file.write_at(zeros, at).await;
        zeros = z;
        r?;
        at += n as u64;
        if serving {
            compio::time::sleep(Duration::from_secs_f64(n as f64 / BUSY_FILL_BYTES_PER_S as f64)).await;
        }
    }
    finish_spare(dir, shard, id, &tmp, file, state).await
}

/// Syncs a prepared spare and renames it into place, unless the writer has
/// moved past its id.
async fn finish_spare(
    dir: &Path,
    shard: ShardId,
    id: u64,
    tmp: &Path,
    file: File,
    state: &Rc<RefCell<Spares>>,
) -> std::io::Result<Option<File>> {
    file.sync_data().await?;
    if state.borrow().wanted_from > id {
        keep_or_delete(state, tmp, shard).await;
        return Ok(None);
    }
    // Never over an existing file: if the writer needed this id while the rename was in
    // flight, it created the segment itself and is writing to it; replacing that name would
    // leave its acknowledged records in an unlinked file. Found by the client suite once
    // reused spares made preparation fast enough to race a roll-over.
    let (from, to) = (tmp.to_path_buf(), segment_path(dir, SegmentId(id)));
    let renamed = compio::runtime::spawn_blocking(move || rename_noreplace(&from, &to))
        .await
        .map_err(|_| std::io::Error::other("segment rename panicked"))?;
    match renamed {
        Ok(()) => {}
        // The writer got there first (common when segments fill in milliseconds): not an
        // error, and no reason for the preparer to pause.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::debug!(segment = id, "the writer created this segment itself; dropping the spare");
            keep_or_delete(state, tmp, shard).await;
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    // Through io_uring (kernel workers): a directory sync waits for a journal commit, which
    // must not stall the shard's requests.
    compio::fs::File::open(dir).await?.sync_all().await?;
    if state.borrow().wanted_from > id {
        // The writer rolled over meanwhile and took this file under its name (or
        // truncated it): it is the writer's segment now, not a spare.
        return Ok(None);
    }
    Ok(Some(file))
}

/// Whether the file system holding `dir` has a tenth of its space or more
/// free. Below that, reclaimed segments are deleted instead of kept for
/// reuse, so their space goes back to checkpoints and other files.
fn plenty_free(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statvfs is plain old data; the call fills it or fails.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    u128::from(st.f_bavail) * 10 >= u128::from(st.f_blocks)
}

/// The blocking form of [`recycle`]'s header write, for the writer itself:
/// writes `header` into the reclaimed file now at `path` and syncs it. A
/// crash before the sync leaves the old header, and recovery skips a
/// segment whose header names another id. The caller syncs the directory.
fn write_header_blocking(path: &Path, header: SegmentHeader) -> std::io::Result<File> {
    use std::os::unix::fs::FileExt;
    let f = open_direct_std(path, true, false)?;
    check_reusable(f.metadata()?.len(), header)?;
    f.write_all_at(header_block(header).as_slice(), 0)?;
    f.sync_data()?;
    // SAFETY: ownership of the fd moves into the compio File.
    Ok(unsafe { File::from_raw_fd(f.into_raw_fd()) })
}

/// A reclaimed segment file, or a spare the writer did not take: kept for
/// reuse while the pool has room and the file system a tenth free
/// (deleting it frees its extents, which with online discard stalls reads),
/// else deleted through io_uring.
async fn keep_or_delete(state: &Rc<RefCell<Spares>>, path: &Path, shard: ShardId) {
    {
        let mut s = state.borrow_mut();
        if s.recyclable.len() < s.reuse_max && plenty_free(path.parent().unwrap_or(Path::new("."))) {
            s.recyclable.push(path.to_path_buf());
            return;
        }
    }
    if let Err(e) = compio::fs::remove_file(path).await {
        tracing::warn!(shard = shard.0, path = %path.display(), error = %e, "could not delete a segment file");
    }
}

/// rename(2) that fails with EEXIST instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; plain syscall.
    let r =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Turns a reclaimed segment file into the spare `header` describes: renamed
/// to `tmp`, its header block rewritten. Its old records stay behind the
/// header; they carry the old segment id, so recovery's scan and readers
/// never take them for this segment's (format.rs). Every block of the file
/// was written before, so the writer pays no unwritten-extent conversion
/// and no zero-fill is needed.
async fn recycle(old: &Path, tmp: &Path, header: SegmentHeader) -> std::io::Result<File> {
    compio::fs::rename(old, tmp).await?;
    let mut file = open_direct(tmp, true, false)?;
    check_reusable(file.metadata().await?.len(), header)?;
    let compio::BufResult(r, _) = file.write_at(header_block(header), 0).await;
    r?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spare must never replace a segment the writer created meanwhile.
    #[test]
    fn a_spare_rename_never_replaces_an_existing_segment() {
        let dir = std::env::temp_dir().join(format!("kaligon-noreplace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (spare, segment) = (dir.join("seg-0000000007.prep"), dir.join("seg-0000000007"));
        std::fs::write(&spare, b"spare").unwrap();
        std::fs::write(&segment, b"written by the writer").unwrap();
        let e = rename_noreplace(&spare, &segment).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert_eq!(std::fs::read(&segment).unwrap(), b"written by the writer");
        std::fs::remove_file(&segment).unwrap();
        rename_noreplace(&spare, &segment).unwrap();
        assert_eq!(std::fs::read(&segment).unwrap(), b"spare");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With no spare ready, the writer turns a reclaimed file into its next
    /// segment itself: same file, new header, nothing created.
    #[test]
    fn the_writer_reuses_a_reclaimed_file_when_no_spare_is_ready() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("kaligon-reuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if !plenty_free(&dir) {
            eprintln!("SKIPPED: less than a tenth of {} is free, so nothing is kept for reuse", dir.display());
            return;
        }
        let size = 1 << 20;
        let mut log = Log::open(&dir, ShardId(3), size, SegmentId(0), 0, &[]).unwrap();
        log.spares.borrow_mut().reuse_max = 4;
        let ino = |id: u64| std::fs::metadata(segment_path(&dir, SegmentId(id))).unwrap().ino();
        let first = ino(0);
        log.alloc(600 << 10).unwrap();
        assert_eq!(log.alloc(600 << 10).unwrap().segment, SegmentId(1));
        assert_eq!((log.fallback_segments, log.reused_segments), (1, 0));
        compio::runtime::Runtime::new().unwrap().block_on(log.remove_segment(SegmentId(0)));
        assert!(segment_path(&dir, SegmentId(0)).exists(), "kept for reuse, not deleted");
        assert_eq!(log.alloc(600 << 10).unwrap().segment, SegmentId(2));
        assert_eq!((log.fallback_segments, log.reused_segments), (1, 1));
        assert_eq!(ino(2), first, "segment 2 is the reclaimed file");
        assert!(!segment_path(&dir, SegmentId(0)).exists());
        let bytes = std::fs::read(segment_path(&dir, SegmentId(2))).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(SegmentHeader::decode(&bytes), Some(SegmentHeader { shard: 3, segment: 2, size }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
