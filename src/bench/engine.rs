//! `kaligon bench-engine`: the storage engine under load, without HTTP.
//!
//! It starts the engine on a fresh data directory exactly as `serve` does (one pinned
//! io_uring executor per shard, the same recovery, spare preparer, group commit, checkpoints
//! and compaction) and runs `--concurrency` writers or readers spread over the cores in place
//! of the HTTP front end. A PUT copies its body into the chunk buffers (where a socket
//! receive would put it), computes the records' xxh64 and commits through `PutStream`, so
//! what is measured is everything the engine does for a request and nothing the front end
//! does (no MD5 for the ETag, no SigV4, no parsing). Results are compared with fio on the
//! same disk by `tuning/engine-bench.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::hist::Histogram;
use crate::config::{Config, Durability};
use crate::engine::types::{BucketState, ETag, ObjectMeta, Versioning};
use crate::engine::{Chunk, Commit, Condition, Engine, Target};
use crate::runtime::Node;

const BUCKET: &str = "bench";

/// `kaligon bench-engine` options.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Data directory (repeat once per drive). It must be empty or absent; it is removed
    /// afterwards unless --keep.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Shards, one pinned executor each [default: one per core].
    #[arg(long)]
    pub shards: Option<usize>,
    /// put: write objects (new keys, or overwrite random ones of --objects); get: read random
    /// ones of --objects. --objects are written first (not timed).
    #[arg(long, value_enum, default_value = "put")]
    pub workload: EngineWorkload,
    /// Object size (4096, 4KiB, 1MiB, 64MiB).
    #[arg(long, default_value = "4KiB", value_parser = super::parse_size)]
    pub size: u64,
    /// Operations in flight in total, spread over the shards' cores.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub concurrency: usize,
    /// How long the timed phase runs.
    #[arg(long, short = 'd', default_value = "5s", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Objects in the key space [default for get: 256 MiB of objects, at most 10 000; put
    /// without it writes a new key every time].
    #[arg(long)]
    pub objects: Option<u64>,
    /// strict: every acknowledged write is fdatasync'ed (group commit); relaxed: no syncs.
    #[arg(long, value_enum, default_value = "strict")]
    pub durability: Durability,
    /// Size of each segment file [default: the node's].
    #[arg(long, value_parser = super::parse_size)]
    pub segment_bytes: Option<u64>,
    /// Reclaimed segment files each shard keeps to write into again [default: the node's].
    #[arg(long)]
    pub segment_reuse_max: Option<usize>,
    /// Log bytes written between checkpoints [default: the node's].
    #[arg(long, value_parser = super::parse_size)]
    pub checkpoint_bytes: Option<u64>,
    /// Age the data directory first, as a node that has cycled through its
    /// disk: write and delete enough 1 MiB objects to fill every shard's
    /// reuse pool (`segment_reuse_max` segments, plus two), and start once
    /// the compactor has reclaimed them (not timed).
    #[arg(long)]
    pub aged: bool,
    /// Compare every byte read with what was written.
    #[arg(long)]
    pub verify: bool,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the data directory.
    #[arg(long)]
    pub keep: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineWorkload {
    Put,
    Get,
}

/// What every core's driver shares.
struct Run {
    args: EngineArgs,
    cores: usize,
    objects: u64,
    body: Vec<u8>,
    etag: ETag,
    /// `--aged`: 1 MiB objects written and deleted before the timed phase.
    aged_objects: u64,
    aged_body: Vec<u8>,
    etag_aged: ETag,
    /// Files each shard's reuse pool holds at most.
    reuse_max: usize,
    /// Tasks that reached the start line; the timed phase begins when all have.
    arrived: AtomicUsize,
    /// Nanoseconds after `epoch` at which the timed phase began (0: not yet).
    started_ns: AtomicU64,
    epoch: Instant,
    results: flume::Sender<CoreResult>,
}

#[derive(Default)]
struct CoreResult {
    ops: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram,
    /// When this core's last operation ended, in nanoseconds after `Run::epoch`.
    ended_ns: u64,
    /// Shard statistics summed over all shards (reported by core 0 after its tasks).
    shards: Option<ShardTotals>,
}

#[derive(Default, Clone, Copy)]
struct ShardTotals {
    fallback_segments: u64,
    reused_segments: u64,
    segments_reclaimed: u64,
    segments: usize,
    groups: crate::engine::shard::GroupStats,
}

impl CoreResult {
    fn add(&mut self, r: CoreResult) {
        self.ops += r.ops;
        self.bytes += r.bytes;
        self.errors += r.errors;
        self.first_error = self.first_error.take().or(r.first_error);
        self.latency.merge(&r.latency);
        self.ended_ns = self.ended_ns.max(r.ended_ns);
        self.shards = self.shards.or(r.shards);
    }

    fn fail(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

fn key(i: u64) -> String {
    format!("obj-{i:010}")
}

/// One task's share of `0..objects`: every `tasks`-th key from its index.
fn own_keys(objects: u64, task: u64, tasks: u64) -> impl Iterator<Item = u64> {
    (task..objects).step_by(tasks as usize)
}

async fn put(engine: &Engine, run: &Run, key: &str) -> Result<(), crate::engine::Error> {
    put_body(engine, &run.body, run.etag, key).await
}

async fn put_body(engine: &Engine, body: &[u8], etag: ETag, key: &str) -> Result<(), crate::engine::Error> {
    let size = body.len();
    let mut stream = engine.put(BUCKET, key);
    let mut buf = Chunk::buffer_for(Some(size as u64));
    let mut off = 0usize;
    let at = Chunk::PAYLOAD_AT;
    let tail = loop {
        let room = Chunk::room(&buf);
        let len = room.min(size - off);
        let payload = &mut buf.full_mut()[at..at + len];
        payload.copy_from_slice(&body[off..off + len]);
        let hash = crate::engine::segment::format::payload_hash(payload);
        off += len;
        if len < room {
            break (len > 0).then_some(Chunk { buf, len, hash });
        }
        buf = stream.write(Chunk { buf, len, hash }).await?;
        if off == size {
            buf.recycle();
            break None;
        }
    };
    let commit = Commit {
        bucket: BUCKET.into(),
        key: key.into(),
        extents: Vec::new(),
        tail,
        size: size as u64,
        etag,
        meta: ObjectMeta::default(),
        condition: Condition::None,
        now_ms: crate::s3::now_ms(),
        target: Target::Object,
    };
    stream.commit(commit).await.map(|_| ())
}

async fn get(engine: &Engine, run: &Run, key: &str) -> Result<(), String> {
    let version = engine.get(BUCKET, key, None).await.map_err(|e| e.to_string())?;
    let mut reader = engine.read(BUCKET, key, &version, 0, version.size);
    let mut at = 0usize;
    while let Some(piece) = reader.next().await {
        let (buf, range) = piece.map_err(|e| e.to_string())?;
        let got = &buf.full()[range];
        if run.args.verify && run.body.get(at..at + got.len()) != Some(got) {
            return Err(format!("{key}: bytes {at}..{} differ from what was written", at + got.len()));
        }
        at += got.len();
        reader.give_back(buf);
    }
    reader.finish();
    if at != run.body.len() {
        return Err(format!("{key}: read {at} bytes of {}", run.body.len()));
    }
    Ok(())
}

/// Waits (without blocking the core's executor, which also runs its shard) until every
/// task has arrived; returns the start of the timed phase.
async fn start_line(run: &Run, engine: &Engine, task: u64) -> Instant {
    run.arrived.fetch_add(1, Ordering::SeqCst);
    while run.arrived.load(Ordering::SeqCst) < run.args.concurrency {
        compio::time::sleep(Duration::from_micros(200)).await;
    }
    if task == 0 {
        if run.aged_objects > 0 {
            wait_for_reuse_pools(engine, run).await;
        }
        let now = run.epoch.elapsed().as_nanos() as u64;
        run.started_ns.store(now.max(1), Ordering::SeqCst);
    }
    while run.started_ns.load(Ordering::SeqCst) == 0 {
        compio::time::sleep(Duration::from_micros(200)).await;
    }
    run.epoch + Duration::from_nanos(run.started_ns.load(Ordering::SeqCst))
}

/// After aging: waits until every shard's reuse pool is full, or no more
/// segments have been reclaimed for 3 s (at most 2 minutes), and says what
/// it found.
async fn wait_for_reuse_pools(engine: &Engine, run: &Run) {
    let started = Instant::now();
    let (mut last, mut changed) = (None, Instant::now());
    loop {
        let Ok(stats) = engine.stats().await else { return };
        let waiting: Vec<usize> = stats.iter().map(|s| s.reuse_waiting).collect();
        let reclaimed: u64 = stats.iter().map(|s| s.segments_reclaimed).sum();
        if last != Some(reclaimed) {
            (last, changed) = (Some(reclaimed), Instant::now());
        }
        let full = waiting.iter().all(|w| *w >= run.reuse_max);
        if full || changed.elapsed() > Duration::from_secs(3) || started.elapsed() > Duration::from_secs(120) {
            println!(
                "aged: {} objects of 1 MiB written and deleted; {reclaimed} segments reclaimed, files waiting for reuse per shard {waiting:?} after {:.1} s",
                run.aged_objects,
                started.elapsed().as_secs_f64()
            );
            return;
        }
        compio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One in-flight slot: preload its share of keys, wait for the start line, then loop.
async fn task(engine: Engine, run: Arc<Run>, task: u64, tasks: u64) -> CoreResult {
    let mut out = CoreResult::default();
    if run.aged_objects > 0 {
        let keys = || own_keys(run.aged_objects, task, tasks).map(|i| format!("aged-{i:010}"));
        for k in keys() {
            if let Err(e) = put_body(&engine, &run.aged_body, run.etag_aged, &k).await {
                out.fail(format!("aging: {e}"));
            }
        }
        for k in keys() {
            if let Err(e) = engine.delete(BUCKET, &k, None, crate::s3::now_ms()).await {
                out.fail(format!("aging: {e}"));
            }
        }
    }
    if run.objects > 0 {
        for i in own_keys(run.objects, task, tasks) {
            if let Err(e) = put(&engine, &run, &key(i)).await {
                out.fail(format!("preload: {e}"));
            }
        }
    }
    let start = start_line(&run, &engine, task).await;
    let end = start + run.args.duration;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (task + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut next_new = task;
    while Instant::now() < end {
        let i = if run.objects > 0 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % run.objects
        } else {
            next_new += tasks;
            next_new - tasks
        };
        let k = key(i);
        let t = Instant::now();
        let result = match run.args.workload {
            EngineWorkload::Put => put(&engine, &run, &k).await.map_err(|e| e.to_string()),
            EngineWorkload::Get => get(&engine, &run, &k).await,
        };
        out.latency.record(t.elapsed().as_nanos() as u64);
        match result {
            Ok(()) => {
                out.ops += 1;
                out.bytes += run.body.len() as u64;
            }
            Err(e) => out.fail(e),
        }
    }
    out.ended_ns = run.epoch.elapsed().as_nanos() as u64;
    out
}

async fn drive(core: usize, engine: Engine, run: Arc<Run>) {
    if core == 0 {
        let state =
            BucketState { owner: String::new(), created_ms: 0, versioning: Versioning::Unversioned, configs: vec![] };
        if let Err(e) = engine.create_bucket(BUCKET, state).await {
            tracing::error!(error = %e, "bench-engine: cannot create the bucket");
        }
    }
    while engine.bucket(BUCKET).is_none() {
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    let tasks = run.args.concurrency as u64;
    let mine: Vec<_> = (0..tasks)
        .filter(|t| *t as usize % run.cores == core)
        .map(|t| compio::runtime::spawn(task(engine.clone(), run.clone(), t, tasks)))
        .collect();
    let mut total = CoreResult::default();
    for t in mine {
        match t.await {
            Ok(r) => total.add(r),
            Err(_) => total.fail("a bench task panicked".into()),
        }
    }
    if core == 0 {
        match engine.stats().await {
            Ok(stats) => {
                let mut t = ShardTotals::default();
                for s in stats {
                    t.fallback_segments += s.fallback_segments;
                    t.reused_segments += s.reused_segments;
                    t.segments_reclaimed += s.segments_reclaimed;
                    t.segments += s.segments;
                    t.groups.add(&s.groups);
                }
                total.shards = Some(t);
            }
            Err(e) => total.fail(format!("shard statistics: {e}")),
        }
    }
    let _ = run.results.send(total);
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs the engine benchmark and prints (and optionally writes) its result.
pub fn run(args: EngineArgs) -> Result<(), String> {
    for d in &args.data {
        if std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) {
            return Err(format!("{} is not empty; bench-engine needs a fresh data directory", d.display()));
        }
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let mut config = Config { data: args.data.clone(), durability: args.durability, ..Config::default() };
    if let Some(n) = args.shards {
        config.shards = n;
    }
    // The bench's tasks stand in for connections: each core's wake-up queue is sized by it.
    config.connections_max = config.connections_max.max(args.concurrency);
    if let Some(b) = args.segment_bytes {
        config.segment_bytes = b;
    }
    if let Some(n) = args.segment_reuse_max {
        config.segment_reuse_max = n;
    }
    if let Some(b) = args.checkpoint_bytes {
        config.checkpoint_bytes = b;
    }
    config.validate().map_err(|e| e.to_string())?;
    let objects = match (args.objects, args.workload) {
        (Some(n), _) => n,
        (None, EngineWorkload::Get) => ((256 << 20) / args.size.max(1)).clamp(1, 10_000),
        (None, EngineWorkload::Put) => 0,
    };
    if args.workload == EngineWorkload::Get && objects == 0 {
        return Err("get needs --objects of at least 1".into());
    }
    let cores = config.shards;
    let body = super::body::filler(args.size as usize, args.size);
    let etag = ETag { md5: crate::runtime::md5::Md5::digest(&body), parts: 0 };
    let aged_objects = if args.aged {
        (cores as u64 * (config.segment_reuse_max as u64 + 2) * config.segment_bytes).div_ceil(1 << 20)
    } else {
        0
    };
    let aged_body = if args.aged { super::body::filler(1 << 20, 7) } else { Vec::new() };
    let etag_aged = ETag { md5: crate::runtime::md5::Md5::digest(&aged_body), parts: 0 };
    let (tx, rx) = flume::unbounded();
    let run = Arc::new(Run {
        args: args.clone(),
        cores,
        objects,
        body,
        etag,
        aged_objects,
        aged_body,
        etag_aged,
        reuse_max: config.segment_reuse_max,
        arrived: AtomicUsize::new(0),
        started_ns: AtomicU64::new(0),
        epoch: Instant::now(),
        results: tx,
    });
    let driver_run = run.clone();
    let driver: crate::runtime::Driver =
        Arc::new(move |core, engine| Box::pin(drive(core, engine, driver_run.clone())));
    let node = Node::start_driven(config, driver).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    let mut cpu_at_start = None;
    while results.len() < cores {
        if cpu_at_start.is_none() && run.started_ns.load(Ordering::SeqCst) != 0 {
            cpu_at_start = Some(cpu_seconds());
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(r) => results.push(r),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
    }
    let cpu = cpu_seconds() - cpu_at_start.unwrap_or(0.0);
    node.shutdown(Duration::from_secs(5));
    if !args.keep {
        for d in &args.data {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let mut total = CoreResult::default();
    for r in results {
        total.add(r);
    }
    let started = run.started_ns.load(Ordering::SeqCst);
    let secs = (total.ended_ns.saturating_sub(started)) as f64 / 1e9;
    let ops_s = total.ops as f64 / secs.max(1e-9);
    let mib_s = total.bytes as f64 / (1 << 20) as f64 / secs.max(1e-9);
    let q = |p: f64| total.latency.quantile(p) as f64 / 1e6;
    let workload = match args.workload {
        EngineWorkload::Put => "put",
        EngineWorkload::Get => "get",
    };
    let durability = match args.durability {
        Durability::Strict => "strict",
        Durability::Relaxed => "relaxed",
    };
    println!(
        "bench-engine {workload} size={} shards={cores} c={} durability={durability}: {} ops in {secs:.2} s, \
         {ops_s:.0} ops/s, {mib_s:.1} MiB/s; latency ms p50 {:.3} p99 {:.3} max {:.3}; \
         {cpu:.2} CPU-s; {} errors",
        args.size,
        args.concurrency,
        total.ops,
        q(0.5),
        q(0.99),
        total.latency.max() as f64 / 1e6,
        total.errors
    );
    let shards = total.shards.unwrap_or_default();
    println!(
        "segments: {} at the end, {} created in place by the writer (no spare ready), {} written into reclaimed files, {} reclaimed",
        shards.segments, shards.fallback_segments, shards.reused_segments, shards.segments_reclaimed
    );
    let g = shards.groups;
    let per_group = |v: u64| v as f64 / g.groups.max(1) as f64;
    println!(
        "group commits: {}, {:.1} changes each, {:.3} ms from forming to sync, {:.3} ms in sync (whole run, set-up included)",
        g.groups,
        per_group(g.ops),
        per_group(g.wait_nanos) / 1e6,
        per_group(g.sync_nanos) / 1e6
    );
    if let Some(e) = &total.first_error {
        println!("first error: {e}");
    }
    if let Some(path) = &args.json {
        let json = format!(
            "{{\"bench\":\"engine\",\"workload\":\"{workload}\",\"size\":{},\"shards\":{cores},\"concurrency\":{},\
             \"durability\":\"{durability}\",\"objects\":{objects},\"ops\":{},\"errors\":{},\"seconds\":{secs:.4},\
             \"ops_per_second\":{ops_s:.1},\"mib_per_second\":{mib_s:.2},\"cpu_seconds\":{cpu:.3},\
             \"segments\":{},\"fallback_segments\":{},\"reused_segments\":{},\"segments_reclaimed\":{},\"latency_ms\":{{\"p50\":{:.4},\"p90\":{:.4},\"p99\":{:.4},\"p999\":{:.4},\"max\":{:.4}}}}}\n",
            args.size,
            args.concurrency,
            total.ops,
            total.errors,
            shards.segments,
            shards.fallback_segments,
            shards.reused_segments,
            shards.segments_reclaimed,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            total.latency.max() as f64 / 1e6
        );
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if total.errors > 0 {
        return Err(format!("{} of {} operations failed", total.errors, total.ops + total.errors));
    }
    Ok(())
}
