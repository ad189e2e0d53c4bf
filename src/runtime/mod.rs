//! Executors pinned one per core, the cross-core mesh, and node start-up and
//! shutdown. Each core runs one compio (io_uring) runtime with its shard, its
//! listener (SO_REUSEPORT spreads connections) and its connections.

pub mod buf;
pub mod md5;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::config::Config;
use crate::engine::segment::log::Log;
use crate::engine::shard::Shard;
use crate::engine::types::{BucketState, ShardId};
use crate::engine::{Engine, EngineConfig, Request, Shared, recover};
use crate::s3::Users;

/// Room for the tasks a core runs besides its connections (shard, preparer,
/// listener, MD5 batch flushers, compaction and replica broadcasts) in its
/// queue of wake-ups from other cores.
///
/// compio's queue of cross-thread wake-ups has a fixed size (64 by default)
/// and a core that finds another core's queue full spins until it drains. A
/// shard acknowledging a group of commits wakes one connection task per
/// commit, many of them on the other cores, so with more than 64 requests in
/// flight two shards could each spin on the other's full queue for ever
/// (seen with `kaligon bench-engine -c 1024` on 2 shards: both threads in
/// sched_yield under `Remote::schedule`). A task is queued at most once until
/// it runs, so a queue longer than the number of tasks a core can hold never
/// fills.
const BACKGROUND_TASKS_MAX: usize = 4096;

/// Node-wide flags read by health checks and the accept loops.
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    pub connections: AtomicUsize,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Engine(#[from] crate::engine::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the data directory was created with {found} shards; start with --shards {found} (changing the shard count needs a migration)"
    )]
    ShardCount { found: usize },
    #[error("{0}")]
    Locked(String),
    #[error("shard {0} failed to start")]
    ShardStart(u32),
}

/// Per-core context handed to every connection on that core.
pub struct Ctx {
    pub engine: Engine,
    /// Connections waiting for their next request (closed on drain).
    pub idle: std::cell::RefCell<std::collections::HashSet<std::os::fd::RawFd>>,
    pub config: Arc<Config>,
    pub users: Arc<Users>,
    pub health: Arc<Health>,
}

/// A running node; `shutdown` drains it.
pub struct Node {
    pub addr: SocketAddr,
    pub health: Arc<Health>,
    mesh: Vec<flume::Sender<Request>>,
    stop: Vec<flume::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The data directories' locks (`offline::LOCK_FILE`): no second node
    /// and no offline tool opens them while this one runs.
    _locks: Vec<std::fs::File>,
}

/// Remembers the shard count in the first data directory: placement hashes
/// keys by it, so it cannot change under existing data.
fn check_layout(config: &Config) -> Result<(), Error> {
    let path = config.data[0].join("kaligon-layout");
    std::fs::create_dir_all(&config.data[0])?;
    match crate::offline::layout_shards(&config.data[0]) {
        Ok(found) => {
            let found = found.unwrap_or(0);
            if found != config.shards {
                return Err(Error::ShardCount { found });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("shards={}\n", config.shards))?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(core, "could not pin shard thread to its core");
        }
    }
}

/// Runs on every core in place of the HTTP front end once the core's shard
/// is up (`kaligon bench-engine`): called with the core's index and its
/// engine handle; the node stays up until `shutdown`.
pub type Driver = Arc<dyn Fn(usize, Engine) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

/// What a core serves once its shard is up.
enum Front {
    Http(std::net::TcpListener),
    Driver(Driver),
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

impl Node {
    /// Recovers every shard, then starts serving on `config.listen`.
    pub fn start(config: Config, users: Users) -> Result<Node, Error> {
        Self::launch(config, users, None)
    }

    /// Recovers every shard, then runs `driver` on every core instead of
    /// listening.
    pub fn start_driven(config: Config, driver: Driver) -> Result<Node, Error> {
        Self::launch(config, Users::default(), Some(driver))
    }

    fn launch(config: Config, users: Users, driver: Option<Driver>) -> Result<Node, Error> {
        let locks = crate::offline::lock(&config.data).map_err(Error::Locked)?;
        check_layout(&config)?;
        let config = Arc::new(config);
        let users = Arc::new(users);
        let health = Arc::new(Health::default());
        let n = config.shards;
        let engine_config = Arc::new(EngineConfig {
            shards: n,
            shard_dirs: config.shard_dirs(),
            segment_bytes: config.segment_bytes,
            segment_spares: config.segment_spares,
            segment_reuse_max: config.segment_reuse_max,
            checkpoint_interval_ms: config.checkpoint_interval_ms,
            checkpoint_bytes: config.checkpoint_bytes,
            durability: config.durability,
            compaction_live_ratio: config.compaction_live_ratio,
        });
        let (addr, mut fronts) = match driver {
            Some(d) => (config.listen, (0..n).map(|_| Some(Front::Driver(d.clone()))).collect::<Vec<_>>()),
            None => {
                // The first listener decides the port (port 0 picks one for all).
                let first = listener(config.listen).map_err(|source| Error::Listen { addr: config.listen, source })?;
                let addr = first.local_addr()?;
                let mut fronts = vec![Some(Front::Http(first))];
                for _ in 1..n {
                    fronts.push(Some(Front::Http(listener(addr).map_err(|source| Error::Listen { addr, source })?)));
                }
                (addr, fronts)
            }
        };
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::unbounded::<Request>()).unzip();
        let (stop_txs, stop_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::bounded::<()>(1)).unzip();
        let (up_tx, up_rx) = mpsc::channel::<StartReport>();
        let mut table_txs = Vec::new();
        let mut threads = Vec::new();
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let wake_queue = config.connections_max + BACKGROUND_TASKS_MAX;
        for (i, (rx, stop_rx)) in rxs.into_iter().zip(stop_rxs).enumerate() {
            let (table_tx, table_rx) = mpsc::channel::<Vec<(String, BucketState)>>();
            table_txs.push(table_tx);
            let ctx = (config.clone(), users.clone(), health.clone(), engine_config.clone(), txs.clone());
            let up = up_tx.clone();
            let front = fronts[i].take().expect("one front per shard");
            let t = std::thread::Builder::new().name(format!("kaligon-shard-{i}")).spawn(move || {
                pin_to_core(i % cores);
                let rt = compio::runtime::Runtime::builder()
                    .sync_queue_size(wake_queue)
                    .build()
                    .expect("io_uring runtime (is io_uring enabled?)");
                rt.block_on(shard_main(i, ctx, rx, stop_rx, front, up, table_rx));
            })?;
            threads.push(t);
        }
        drop(up_tx);
        let mut all = Vec::new();
        for _ in 0..n {
            match up_rx.recv() {
                Ok((_, Ok(b))) => all.extend(b),
                Ok((i, Err(e))) => {
                    tracing::error!(shard = i, error = %e, "shard failed to recover");
                    return Err(e);
                }
                Err(_) => return Err(Error::ShardStart(0)),
            }
        }
        for tx in &table_txs {
            let _ = tx.send(all.clone());
        }
        for _ in 0..n {
            if let Ok((i, Err(e))) = up_rx.recv() {
                tracing::error!(shard = i, error = %e, "shard failed to start");
                return Err(e);
            }
        }
        health.ready.store(true, Ordering::SeqCst);
        Ok(Node { addr, health, mesh: txs, stop: stop_txs, threads, _locks: locks })
    }

    /// Graceful drain: readiness fails first, then listeners close, open
    /// connections finish (up to `grace`), shards write checkpoints.
    pub fn shutdown(self, grace: std::time::Duration) {
        self.health.ready.store(false, Ordering::SeqCst);
        self.health.draining.store(true, Ordering::SeqCst);
        for s in &self.stop {
            let _ = s.send(());
        }
        let until = std::time::Instant::now() + grace;
        while self.health.connections.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for tx in &self.mesh {
            let (rtx, rrx) = flume::bounded(1);
            if tx.send(Request::Shutdown(rtx)).is_ok() {
                let _ = rrx.recv();
            }
        }
        drop(self.mesh);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A shard's report to the starting thread: its buckets, or why it failed.
type StartReport = (usize, Result<Vec<(String, BucketState)>, Error>);

type ShardCtx = (Arc<Config>, Arc<Users>, Arc<Health>, Arc<EngineConfig>, Vec<flume::Sender<Request>>);

async fn shard_main(
    i: usize,
    (config, users, health, engine_config, mesh): ShardCtx,
    rx: flume::Receiver<Request>,
    stop: flume::Receiver<()>,
    front: Front,
    up: mpsc::Sender<StartReport>,
    table: mpsc::Receiver<Vec<(String, BucketState)>>,
) {
    let shard = ShardId(i as u32);
    let dir = engine_config.shard_dirs[i].clone();
    let opened = recover::recover(&dir, shard).and_then(|r| {
        tracing::info!(shard = i, report = ?r.report, "recovered");
        let log = Log::open(&dir, shard, engine_config.segment_bytes, r.next_segment, r.next_seq, &r.segments)?;
        Ok((r.index, log))
    });
    let (index, log) = match opened {
        Ok(x) => {
            let owned = x.0.owned_buckets().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let _ = up.send((i, Ok(owned)));
            x
        }
        Err(e) => {
            let _ = up.send((i, Err(e.into())));
            return;
        }
    };
    let Ok(all) = table.recv() else { return };
    let shared = Rc::new(Shared::new(shard, mesh, engine_config.clone()));
    for (name, state) in all {
        shared.buckets.borrow_mut().insert(name, state);
    }
    let preparer = log.preparer(
        engine_config.segment_spares,
        engine_config.segment_reuse_max,
        std::time::Duration::from_millis(5),
    );
    compio::runtime::spawn(preparer).detach();
    let mut shard_task = Shard::new(index, log, shared.clone(), engine_config.durability);
    // A fresh checkpoint moves the replay start past any torn tail.
    shard_task.force_checkpoint();
    let run = compio::runtime::spawn(shard_task.run(rx));
    match front {
        Front::Http(std_listener) => {
            let listener = match compio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    let _ = up.send((i, Err(e.into())));
                    return;
                }
            };
            let _ = up.send((i, Ok(Vec::new())));
            let worker = crate::s3::lifecycle::worker::WorkerConfig {
                clock: crate::s3::lifecycle::Clock::new(config.lifecycle_day_secs),
                pass_interval: config.lifecycle_pass_interval(),
                cursor_path: engine_config.shard_dirs[i].join("lifecycle-cursor"),
            };
            compio::runtime::spawn(crate::s3::lifecycle::worker::run(Engine::new(shared.clone()), worker)).detach();
            compio::runtime::spawn(crate::s3::meter::flusher(Engine::new(shared.clone()))).detach();
            let ctx = Rc::new(Ctx { engine: Engine::new(shared), idle: Default::default(), config, users, health });
            crate::http::conn::accept_loop(listener, ctx, stop).await;
        }
        Front::Driver(driver) => {
            let _ = up.send((i, Ok(Vec::new())));
            compio::runtime::spawn(driver(i, Engine::new(shared))).detach();
        }
    }
    let _ = run.await;
}

/// Blocks SIGTERM and SIGINT in this thread (and every thread spawned after
/// it), so they are only taken by `wait_for_stop_signal`.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a local, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

pub fn wait_for_stop_signal(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: `set` holds the blocked signals; sigwait writes one number.
    unsafe { libc::sigwait(set, &mut sig) };
}
