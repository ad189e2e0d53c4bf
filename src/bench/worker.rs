//! The load: one pinned thread per `--threads`, each running a compio (io_uring) runtime with
//! its share of the connections; each connection runs one request at a time in a loop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::body::Bodies;
use super::client::{Conn, Payload, Sink, Transport, error_code};
use super::hist::Histogram;
use crate::auth::sign::{self, RequestToSign, Signer};

/// The S3 operations a run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Put,
    Get,
    Stat,
    Delete,
    List,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [OpKind::Put, OpKind::Get, OpKind::Stat, OpKind::Delete, OpKind::List];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Stat => "stat",
            OpKind::Delete => "delete",
            OpKind::List => "list",
        }
    }

    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How keys are picked for the operations of a phase.
#[derive(Debug, Clone, Copy)]
pub enum KeyPick {
    /// Fresh indexes 0, 1, 2, ... across all connections; the phase ends when they run out.
    Sequential { count: Option<u64> },
    /// Uniformly random indexes below `count`.
    Random { count: u64 },
}

/// What the connections of one phase do.
pub struct Plan {
    /// Operation kinds with their weights (a single kind for the plain workloads).
    pub mix: Vec<(OpKind, u32)>,
    pub keys: KeyPick,
    /// Stop issuing after this many operations in total.
    pub ops: Option<u64>,
    /// Stop issuing after this long.
    pub duration: Option<Duration>,
}

/// Everything a connection needs to build requests; shared by all threads.
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header: the endpoint's authority.
    pub host: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub unsigned_payload: bool,
    pub verify: bool,
    /// `Some(path)`: null mode, plain unsigned requests to this path.
    pub null_path: Option<String>,
    pub list_max_keys: u32,
    pub request_timeout: Option<Duration>,
    pub bodies: Bodies,
}

impl Target {
    /// The key of object `index`.
    pub fn key(&self, index: u64) -> String {
        format!("{}{index:08}", self.prefix)
    }
}

/// Counters read once a second for the progress line; one slot per thread, apart from the
/// others' cache lines.
#[repr(align(128))]
#[derive(Default)]
pub struct Progress {
    pub ops: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// State shared by every connection of a phase.
pub struct Phase {
    pub target: Arc<Target>,
    pub plan: Plan,
    issued: AtomicU64,
    next_key: AtomicU64,
    /// Set when sequential keys ran out (a delete run deleted everything).
    pub keys_exhausted: AtomicBool,
    pub progress: Vec<Progress>,
    /// Lets every thread connect before any starts its clock.
    barrier: Barrier,
}

impl Phase {
    pub fn new(target: Arc<Target>, plan: Plan, threads: usize) -> Phase {
        Phase {
            target,
            plan,
            issued: AtomicU64::new(0),
            next_key: AtomicU64::new(0),
            keys_exhausted: AtomicBool::new(false),
            progress: (0..threads).map(|_| Progress::default()).collect(),
            barrier: Barrier::new(threads),
        }
    }
}

/// Results of one kind of operation.
#[derive(Clone, Default)]
pub struct OpStats {
    /// Successful operations.
    pub ok: u64,
    /// Object bytes moved by successful operations (PUT bodies sent, GET bodies received).
    pub bytes: u64,
    /// Latency of successful operations, from the first byte written to the last read.
    pub latency: Histogram,
    /// Time to the first response byte, successful operations.
    pub ttfb: Histogram,
    /// Failed operations by S3 error code, `HTTP<status>` or `transport:<what>`.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.bytes += other.bytes;
        self.latency.merge(&other.latency);
        self.ttfb.merge(&other.ttfb);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One second of the run.
#[derive(Clone, Copy, Default)]
pub struct Second {
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// What one thread measured.
#[derive(Default)]
pub struct ThreadStats {
    pub ops: [OpStats; 5],
    pub timeline: Vec<Second>,
    /// From this thread's start to its last completion.
    pub elapsed: Duration,
}

impl ThreadStats {
    fn second(&mut self, at: Duration) -> &mut Second {
        let i = at.as_secs() as usize;
        if self.timeline.len() <= i {
            self.timeline.resize(i + 1, Second::default());
        }
        &mut self.timeline[i]
    }

    pub fn merge(&mut self, other: &ThreadStats) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.merge(theirs);
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), Second::default());
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.ops += theirs.ops;
            mine.bytes += theirs.bytes;
            mine.errors += theirs.errors;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

/// Pins the calling thread to `core` (inside the thread: compio intersects affinities, so a
/// pinned parent would pin every child to its own core; RUNTIME.md §6.8).
fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(core, "could not pin bench thread to its core");
        }
    }
}

/// Runs a phase on `threads` threads with `connections[t]` connections on thread `t`.
pub fn run_phase(phase: &Arc<Phase>, connections: &[usize], pin: bool) -> std::io::Result<Vec<ThreadStats>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut handles = Vec::new();
    for (t, &conns) in connections.iter().enumerate() {
        let phase = phase.clone();
        let handle = std::thread::Builder::new().name(format!("kaligon-bench-{t}")).spawn(move || {
            if pin {
                pin_to_core(t % cores);
            }
            // Completions are collected when the thread next enters the ring instead of by an
            // interrupt: on a loopback run sharing cores with the server this cut the client's
            // CPU per request by about 10% against the defaults (null GETs, 8 alternating
            // rounds). The node keeps the defaults (RUNTIME.md §6.8).
            let mut proactor = compio::driver::ProactorBuilder::new();
            proactor.coop_taskrun(true).taskrun_flag(true);
            let rt = compio::runtime::Runtime::builder()
                .with_proactor(proactor)
                .build()
                .expect("io_uring runtime (is io_uring enabled?)");
            rt.block_on(thread_main(t, conns, phase))
        })?;
        handles.push(handle);
    }
    Ok(handles.into_iter().map(|h| h.join().expect("bench thread panicked")).collect())
}

/// Runs on each thread: connect, wait for the others, run the connections, collect.
async fn thread_main(thread: usize, conns: usize, phase: Arc<Phase>) -> ThreadStats {
    let buf_bytes = phase.target.bodies.size().clamp(64 * 1024, 1024 * 1024) + 16 * 1024;
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::connect(phase.target.addr, buf_bytes).await);
    }
    phase.barrier.wait();
    let start = Instant::now();
    let stats = Rc::new(RefCell::new(ThreadStats::default()));
    let mut tasks = Vec::with_capacity(conns);
    for (i, conn) in opened.into_iter().enumerate() {
        let seed = (thread as u64) << 32 | i as u64;
        let task = connection_loop(conn, seed, buf_bytes, phase.clone(), thread, stats.clone(), start);
        tasks.push(compio::runtime::spawn(task));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut stats = Rc::try_unwrap(stats).ok().expect("every connection task has ended").into_inner();
    stats.elapsed = stats.elapsed.max(start.elapsed());
    stats
}

/// A small, fast generator for key indexes and mix choices (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The next operation of a connection, or `None` when the phase is over for it.
fn next_op(phase: &Phase, rng: &mut Rng, deadline: Option<Instant>) -> Option<(OpKind, u64)> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return None;
    }
    if let Some(ops) = phase.plan.ops
        && phase.issued.fetch_add(1, Ordering::Relaxed) >= ops
    {
        return None;
    }
    if phase.keys_exhausted.load(Ordering::Relaxed) {
        return None;
    }
    let kind = match phase.plan.mix.as_slice() {
        [(only, _)] => *only,
        mix => {
            let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
            let mut pick = rng.below(total);
            mix.iter()
                .find(|(_, w)| {
                    let hit = pick < u64::from(*w);
                    pick = pick.saturating_sub(u64::from(*w));
                    hit
                })
                .map_or(mix[0].0, |(k, _)| *k)
        }
    };
    let key = match phase.plan.keys {
        KeyPick::Sequential { count } => {
            let index = phase.next_key.fetch_add(1, Ordering::Relaxed);
            if count.is_some_and(|c| index >= c) {
                phase.keys_exhausted.store(true, Ordering::Relaxed);
                return None;
            }
            index
        }
        KeyPick::Random { count } => rng.below(count.max(1)),
    };
    Some((kind, key))
}

/// What one request came to.
enum Outcome {
    Ok { bytes: u64, first_byte: Instant },
    Failed(String),
}

/// One connection's loop: next operation, request, response, record; reconnect after a
/// transport error or `Connection: close`.
async fn connection_loop(
    conn: Result<Conn, Transport>,
    seed: u64,
    buf_bytes: usize,
    phase: Arc<Phase>,
    thread: usize,
    stats: Rc<RefCell<ThreadStats>>,
    start: Instant,
) {
    let target = phase.target.clone();
    let deadline = phase.plan.duration.map(|d| start + d);
    let mut rng = Rng(seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5DEE_CE66_D1CE_4E5B);
    let mut builder = RequestBuilder::new(&target);
    let fixed = target.null_path.as_ref().map(|_| RequestBuilder::null_head(&target, phase.plan.mix[0].0));
    // The first connect happened before the clock started; its failure counts as the first
    // operation's.
    let (mut conn, mut pending_error) = match conn {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e.label())),
    };
    while let Some((kind, index)) = next_op(&phase, &mut rng, deadline) {
        let began = Instant::now();
        if let Some(label) = pending_error.take() {
            record(&stats, &phase.progress[thread], kind, began, start, Outcome::Failed(label));
            continue;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::connect(target.addr, buf_bytes).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    // Do not spin on a server that refuses connections.
                    compio::time::sleep(Duration::from_millis(20)).await;
                    record(&stats, &phase.progress[thread], kind, began, start, Outcome::Failed(e.label()));
                    continue;
                }
            },
        };
        let request = execute(c, &mut builder, &target, fixed.as_deref(), kind, index);
        let result = match target.request_timeout {
            Some(limit) => compio::time::timeout(limit, request).await.unwrap_or(Err(Transport::Timeout)),
            None => request.await,
        };
        let outcome = match result {
            Ok(outcome) => {
                if c.closed() {
                    conn = None;
                }
                outcome
            }
            Err(e) => {
                conn = None;
                Outcome::Failed(e.label())
            }
        };
        record(&stats, &phase.progress[thread], kind, began, start, outcome);
    }
}

fn record(
    stats: &RefCell<ThreadStats>,
    progress: &Progress,
    kind: OpKind,
    began: Instant,
    start: Instant,
    outcome: Outcome,
) {
    let now = Instant::now();
    let mut stats = stats.borrow_mut();
    let at = now.duration_since(start);
    stats.elapsed = stats.elapsed.max(at);
    match outcome {
        Outcome::Ok { bytes, first_byte } => {
            let second = stats.second(at);
            second.ops += 1;
            second.bytes += bytes;
            let op = &mut stats.ops[kind.index()];
            op.ok += 1;
            op.bytes += bytes;
            op.latency.record(now.duration_since(began).as_nanos() as u64);
            op.ttfb.record(first_byte.saturating_duration_since(began).as_nanos() as u64);
            progress.ops.fetch_add(1, Ordering::Relaxed);
            progress.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        Outcome::Failed(label) => {
            stats.second(at).errors += 1;
            *stats.ops[kind.index()].errors.entry(label).or_default() += 1;
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one request on `conn` and reads its response.
async fn execute(
    conn: &mut Conn,
    builder: &mut RequestBuilder,
    target: &Target,
    fixed: Option<&[u8]>,
    kind: OpKind,
    index: u64,
) -> Result<Outcome, Transport> {
    let null = target.null_path.is_some();
    let key = if kind == OpKind::List || null { String::new() } else { target.key(index) };
    let size = target.bodies.size();
    let payload = match kind {
        OpKind::Put => {
            let (tail, tail_len) = target.bodies.tail(&key);
            Payload::Object { shared: target.bodies.shared().clone(), tail, tail_len }
        }
        _ => Payload::None,
    };
    let head = match fixed {
        Some(fixed) => {
            let mut head = std::mem::take(&mut builder.buf);
            head.clear();
            head.extend_from_slice(fixed);
            head
        }
        None => builder.head(target, kind, &key),
    };
    let verify = target.verify && kind == OpKind::Get && !null;
    let mut sink_for = |status: u16| match status {
        200..=299 if verify => Sink::Verify(target.bodies.verifier(&key)),
        200..=299 => Sink::Discard,
        _ => Sink::Capture(Vec::new()),
    };
    let (head, response) = conn.exchange(head, payload, kind == OpKind::Stat, &mut sink_for).await?;
    if let Some(head) = head {
        builder.buf = head;
    }
    if !(200..=299).contains(&response.status) {
        let label = match &response.sink {
            Sink::Capture(body) => error_code(body).map(str::to_owned),
            _ => None,
        };
        return Ok(Outcome::Failed(label.unwrap_or_else(|| format!("HTTP{}", response.status))));
    }
    if target.verify && kind == OpKind::Stat && !null && response.content_length != Some(size as u64) {
        return Ok(Outcome::Failed("verify:length".to_owned()));
    }
    if let Sink::Verify(v) = &response.sink {
        if response.body_len != size as u64 {
            return Ok(Outcome::Failed("verify:length".to_owned()));
        }
        if !v.finish() {
            return Ok(Outcome::Failed("verify:mismatch".to_owned()));
        }
    }
    let bytes = match kind {
        OpKind::Put => size as u64,
        OpKind::Get => response.body_len,
        _ => 0,
    };
    Ok(Outcome::Ok { bytes, first_byte: response.first_byte })
}

/// Builds request heads, reusing its buffers; one per connection.
struct RequestBuilder {
    signer: Signer,
    /// The head buffer, handed to the socket and back.
    buf: Vec<u8>,
    path: String,
    query: String,
    /// `x-amz-date`, recomputed when the second changes.
    date: String,
    date_unix: i64,
}

impl RequestBuilder {
    fn new(target: &Target) -> RequestBuilder {
        RequestBuilder {
            signer: Signer::new(&target.access_key, &target.secret_key, &target.region),
            buf: Vec::with_capacity(1024),
            path: String::with_capacity(256),
            query: String::with_capacity(256),
            date: String::new(),
            date_unix: i64::MIN,
        }
    }

    /// The unsigned request head of null mode, the same every time: a GET, or a PUT of the
    /// object size.
    fn null_head(target: &Target, kind: OpKind) -> Vec<u8> {
        let path = target.null_path.as_deref().unwrap_or("/");
        let head = match kind {
            OpKind::Put => {
                format!(
                    "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n",
                    target.host,
                    target.bodies.size()
                )
            }
            _ => format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", target.host),
        };
        head.into_bytes()
    }

    fn head(&mut self, target: &Target, kind: OpKind, key: &str) -> Vec<u8> {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if unix != self.date_unix {
            self.date = sign::amz_date(unix);
            self.date_unix = unix;
        }
        self.path.clear();
        self.path.push('/');
        self.path.push_str(&target.bucket);
        self.query.clear();
        let method = match kind {
            OpKind::Put => "PUT",
            OpKind::Get => "GET",
            OpKind::Stat => "HEAD",
            OpKind::Delete => "DELETE",
            OpKind::List => "GET",
        };
        if kind == OpKind::List {
            self.query.push_str("list-type=2&max-keys=");
            self.query.push_str(&target.list_max_keys.to_string());
            self.query.push_str("&prefix=");
            sign::uri_encode(&target.prefix, false, &mut self.query);
        } else {
            self.path.push('/');
            sign::uri_encode(key, true, &mut self.path);
        }
        let sha;
        let payload = if target.unsigned_payload {
            sign::UNSIGNED_PAYLOAD
        } else if kind == OpKind::Put {
            sha = target.bodies.sha256_hex(key);
            sha.as_str()
        } else {
            sign::EMPTY_PAYLOAD_SHA256
        };
        let headers = [("host", target.host.as_str()), ("x-amz-content-sha256", payload), ("x-amz-date", &self.date)];
        let authorization = self.signer.authorization(&RequestToSign {
            method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
            payload,
            amz_date: &self.date,
        });
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        write_head(&mut out, method, &self.path, &self.query, &headers, &authorization);
        if kind == OpKind::Put {
            out.truncate(out.len() - 2);
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(target.bodies.size().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        }
        out
    }
}

/// Request line and headers, ending with the blank line.
fn write_head(out: &mut Vec<u8>, method: &str, path: &str, query: &str, headers: &[(&str, &str)], auth: &str) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if !query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"authorization: ");
    out.extend_from_slice(auth.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}
