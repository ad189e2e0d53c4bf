//! The ETag's MD5, hashed several uploads at a time.
//!
//! One MD5 stream is a chain of dependent 64-byte blocks: a core hashes it at
//! about 800 MB/s (md5-many's scalar kernel; md-5 does ~590 MB/s here), which
//! made MD5 more than half of a 1 MiB PUT's CPU time
//! (`tuning/results/2026-11-24-put-profile.md`). Independent uploads are
//! independent chains, so a core hashes the full chunks of all the uploads it
//! is receiving together, one upload per SIMD lane: 8 lanes (AVX2) hash
//! ~4.7 GB/s, 16 lanes (AVX-512) ~6.4 GB/s on the development VM.
//!
//! A connection with a full chunk hands it to its core's batch and waits.
//! The batch is hashed once every upload now receiving on the core has
//! added a chunk, once it holds 8, or `BATCH_WAIT` after its first chunk,
//! whichever comes first: a lone upload is hashed at once (after one task
//! switch), and a slow client holds the others back by at most
//! `BATCH_WAIT`. With 16 connections of 1 MiB PUTs on 2 cores, waiting
//! up to 1 ms made batches 3.3 chunks long instead of 1.9 and cut the
//! node's CPU time per MiB by 17 % at the same throughput and latency
//! (`tuning/results/2026-11-25-md5-lanes.md`).
//!
//! md5-many's incremental API is fast only for equal, block-aligned updates
//! in groups of exactly 8 or 16 streams (5-7 streams ran at ~200 MB/s in
//! total), so a batch is padded to 8 or 16 lanes with throwaway copies of its
//! last stream. The tests below check its digests against md-5.

use std::cell::RefCell;
use std::future::Future as _;
use std::ops::Range;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use md5_many::{Md5Many, Md5State};

use super::buf::AlignedBuf;

/// Updates shorter than this are hashed in place: batching costs two task
/// switches, which only pays for itself on long runs of blocks.
const BATCH_BYTES_MIN: usize = 64 * 1024;

/// A batch this long is hashed at once (8 lanes is md5-many's AVX2 kernel,
/// ~4.7 of the 6.4 GB/s that 16 give).
const BATCH_FULL: usize = 8;

/// The longest a chunk waits for others to join its batch.
const BATCH_WAIT: Duration = Duration::from_millis(1);

/// An MD5 in progress (the ETag of one body).
#[derive(Default)]
pub struct Md5 {
    state: Md5State,
    len: u64,
    /// Counted in this core's `Batch::receiving` until dropped.
    receiving: bool,
}

impl Clone for Md5 {
    /// A copy of the digest state, not counted as a second upload.
    fn clone(&self) -> Self {
        Self { state: self.state, len: self.len, receiving: false }
    }
}

impl Drop for Md5 {
    fn drop(&mut self) {
        if self.receiving {
            BATCH.with(|b| {
                let mut b = b.borrow_mut();
                b.receiving -= 1;
                b.wake_if_ready();
            });
        }
    }
}

impl Md5 {
    pub fn new() -> Self {
        Self::default()
    }

    /// The MD5 of a body about to be received on this core: one whose
    /// length is unknown or long enough to be batched counts as an upload
    /// that batches wait for until this is dropped.
    pub fn for_body(len: Option<u64>) -> Self {
        let receiving = len.is_none_or(|n| n >= BATCH_BYTES_MIN as u64);
        if receiving {
            BATCH.with(|b| b.borrow_mut().receiving += 1);
        }
        Self { receiving, ..Self::default() }
    }

    /// Hashes `data` now, on this task.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.len += data.len() as u64;
    }

    /// Hashes `buf[range]`, together with the other uploads on this core
    /// when it is long and block-aligned; hands the buffer back.
    pub async fn update_batched(&mut self, buf: AlignedBuf, range: Range<usize>) -> AlignedBuf {
        let n = range.len();
        if n < BATCH_BYTES_MIN || !n.is_multiple_of(64) || !self.len.is_multiple_of(64) {
            self.update(&buf.full()[range]);
            return buf;
        }
        let slot = Rc::new(RefCell::new(Slot::default()));
        let job = Job { state: self.state, buf, range, slot: slot.clone() };
        let start_flush = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            b.jobs.push(job);
            b.wake_if_ready();
            b.jobs.len() == 1
        });
        if start_flush {
            compio::runtime::spawn(flush_soon()).detach();
        }
        let (state, buf) = std::future::poll_fn(|cx| {
            let mut s = slot.borrow_mut();
            match s.done.take() {
                Some(done) => Poll::Ready(done),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        self.state = state;
        self.len += n as u64;
        buf
    }

    pub fn finalize(&self) -> [u8; 16] {
        self.state.finalize()
    }

    /// MD5 of `data` in one call.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

#[derive(Default)]
struct Slot {
    done: Option<(Md5State, AlignedBuf)>,
    waker: Option<Waker>,
}

struct Job {
    state: Md5State,
    buf: AlignedBuf,
    range: Range<usize>,
    slot: Rc<RefCell<Slot>>,
}

/// Chunks waiting to be hashed on this core, and the task that will hash
/// them (woken early once the batch is ready).
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    flusher: Option<Waker>,
    /// Uploads receiving a body on this core (`Md5::for_body`).
    receiving: usize,
}

impl Batch {
    /// Every receiving upload has a chunk here, or the batch is full.
    fn ready(&self) -> bool {
        self.jobs.len() >= self.receiving.clamp(1, BATCH_FULL)
    }

    fn wake_if_ready(&mut self) {
        if self.ready()
            && let Some(w) = self.flusher.take()
        {
            w.wake();
        }
    }
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
    /// The SIMD level, detected once per core.
    static ENGINE: Md5Many = Md5Many::new();
}

/// Waits until the batch is ready or `BATCH_WAIT` has passed, then hashes
/// it.
async fn flush_soon() {
    let mut timeout = std::pin::pin!(compio::time::sleep(BATCH_WAIT));
    std::future::poll_fn(|cx| {
        let ready = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            let ready = b.ready();
            if !ready {
                b.flusher = Some(cx.waker().clone());
            }
            ready
        });
        if ready {
            return Poll::Ready(());
        }
        let timed_out = timeout.as_mut().poll(cx).is_ready();
        #[cfg(test)]
        tests::TIMEOUTS.with(|t| t.set(t.get() + timed_out as usize));
        if timed_out { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    flush();
}

/// Hashes every waiting chunk and wakes its owner.
fn flush() {
    let mut jobs = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.flusher = None;
        std::mem::take(&mut b.jobs)
    });
    tracing::trace!(chunks = jobs.len(), "md5 batch");
    #[cfg(test)]
    tests::LARGEST_BATCH.with(|l| l.set(l.get().max(jobs.len())));
    ENGINE.with(|engine| hash_jobs(*engine, &mut jobs));
    for job in jobs {
        let mut s = job.slot.borrow_mut();
        s.done = Some((job.state, job.buf));
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// Hashes jobs of equal length in padded groups of 8 or 16 lanes (others one
/// by one).
fn hash_jobs(engine: Md5Many, jobs: &mut [Job]) {
    let mut rest = jobs;
    while !rest.is_empty() {
        let n = rest.iter().take_while(|j| j.range.len() == rest[0].range.len()).count();
        let take = n.min(engine.lanes().max(1));
        let (group, tail) = rest.split_at_mut(take);
        hash_group(engine, group);
        rest = tail;
    }
}

/// Hashes up to `engine.lanes()` updates of one length side by side.
fn hash_group(engine: Md5Many, group: &mut [Job]) {
    if group.len() == 1 || engine.lanes() < 8 {
        for j in group {
            j.state.update(&j.buf.full()[j.range.clone()]);
        }
        return;
    }
    let width = if group.len() <= 8 { 8 } else { engine.lanes() };
    let mut states = [Md5State::new(); 16];
    let mut inputs: [&[u8]; 16] = [&[]; 16];
    let last = group.len() - 1;
    for lane in 0..width {
        let j = &group[lane.min(last)];
        states[lane] = j.state;
        inputs[lane] = &j.buf.full()[j.range.clone()];
    }
    engine.update_many(&mut states[..width], &inputs[..width]);
    for (j, s) in group.iter_mut().zip(states) {
        j.state = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    thread_local! {
        pub(super) static LARGEST_BATCH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        pub(super) static TIMEOUTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn body(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8 ^ seed as u8).collect()
    }

    fn chunk_of(data: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::new(data.len() + 64);
        buf.full_mut()[64..64 + data.len()].copy_from_slice(data);
        buf
    }

    /// Every batch size from 1 to 20 streams (padded lanes, two groups,
    /// scalar fallbacks), with uneven tails, gives md-5's digests.
    #[test]
    fn batched_digests_match_md5_for_every_batch_size() {
        let engine = Md5Many::new();
        let chunk = 128 * 1024;
        for streams in 1..=20usize {
            let bodies: Vec<Vec<u8>> = (0..streams).map(|s| body(s, 2 * chunk + s * 37)).collect();
            let mut jobs: Vec<Job> = Vec::new();
            let mut md5s: Vec<Md5> = vec![Md5::new(); streams];
            for round in 0..2 {
                jobs.clear();
                for (s, b) in bodies.iter().enumerate() {
                    let slot = Rc::new(RefCell::new(Slot::default()));
                    let buf = chunk_of(&b[round * chunk..(round + 1) * chunk]);
                    jobs.push(Job { state: md5s[s].state, buf, range: 64..64 + chunk, slot });
                }
                hash_jobs(engine, &mut jobs);
                for (s, j) in jobs.iter().enumerate() {
                    md5s[s].state = j.state;
                    md5s[s].len += chunk as u64;
                }
            }
            for (s, b) in bodies.iter().enumerate() {
                md5s[s].update(&b[2 * chunk..]);
                let want: [u8; 16] = md5::Md5::digest(b).into();
                assert_eq!(md5s[s].finalize(), want, "stream {s} of {streams}");
            }
        }
    }

    /// Through the core's batch: concurrent uploads on one runtime, some
    /// with unaligned updates that must bypass it, hashed in full batches.
    #[test]
    fn concurrent_updates_on_one_core_give_md5s_digests() {
        compio::runtime::Runtime::new().expect("runtime").block_on(async {
            let chunk = 256 * 1024;
            let tasks: Vec<_> = (0..11usize)
                .map(|s| {
                    compio::runtime::spawn(async move {
                        let data = body(s, 3 * chunk + 1000 * (s % 3));
                        let mut h = Md5::for_body(None);
                        if s % 4 == 3 {
                            h.update(&data[..100]);
                        }
                        let mut at = if s % 4 == 3 { 100 } else { 0 };
                        while at < data.len() {
                            let n = chunk.min(data.len() - at);
                            let buf = chunk_of(&data[at..at + n]);
                            let _ = h.update_batched(buf, 64..64 + n).await;
                            at += n;
                        }
                        let want: [u8; 16] = md5::Md5::digest(&data).into();
                        assert_eq!(h.finalize(), want, "stream {s}");
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        });
        assert!(LARGEST_BATCH.with(|l| l.get()) >= BATCH_FULL, "uploads waited for each other");
        assert_eq!(BATCH.with(|b| b.borrow().receiving), 0);
    }

    /// A lone upload is hashed at once, not after BATCH_WAIT.
    #[test]
    fn a_lone_upload_does_not_wait() {
        compio::runtime::Runtime::new().expect("runtime").block_on(async {
            let data = body(1, 1 << 20);
            let mut h = Md5::for_body(Some(data.len() as u64));
            for _ in 0..5 {
                let _ = h.update_batched(chunk_of(&data), 64..64 + data.len()).await;
            }
        });
        assert_eq!(LARGEST_BATCH.with(|l| l.get()), 1);
        assert_eq!(TIMEOUTS.with(|t| t.get()), 0, "a batch waited for BATCH_WAIT");
    }
}
