//! The load: one pinned thread per `--threads`, each running a compio (io_uring) runtime with
//! its share of the connections; each connection runs one request at a time in a loop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::body::{Bodies, Sizes};
use super::client::{Conn, Payload, Response, Sink, Transport, error_code};
use super::hist::Histogram;
use crate::auth::sign::{self, RequestToSign, Signer};
use crate::engine::types::ChecksumAlgo;

/// The S3 operations a run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Put,
    Get,
    Stat,
    Delete,
    List,
    /// A whole multipart upload: create, every part in turn, complete.
    Multipart,
}

impl OpKind {
    pub const ALL: [OpKind; 6] =
        [OpKind::Put, OpKind::Get, OpKind::Stat, OpKind::Delete, OpKind::List, OpKind::Multipart];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Stat => "stat",
            OpKind::Delete => "delete",
            OpKind::List => "list",
            OpKind::Multipart => "multipart",
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
    /// Open loop: operations are scheduled at this many per second in total, whether or not
    /// earlier ones have finished, and latency counts from the scheduled time. `None`: closed
    /// loop, each connection sends its next request when the last one is answered.
    pub rate: Option<f64>,
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
    pub sizes: Sizes,
    /// `x-amz-checksum-*` sent with every PUT and part, and asked for on every GET.
    pub checksum: Option<ChecksumAlgo>,
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
    /// The slowest successful operation that finished in this second.
    pub max_latency_ns: u64,
}

/// What one thread measured.
#[derive(Default)]
pub struct ThreadStats {
    pub ops: [OpStats; OpKind::ALL.len()],
    pub timeline: Vec<Second>,
    /// Open loop: requests sent more than [`LATE_AFTER`] after their scheduled time because
    /// every connection was busy.
    pub late: u64,
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
            mine.max_latency_ns = mine.max_latency_ns.max(theirs.max_latency_ns);
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.late += other.late;
    }
}

/// An open-loop request sent later than this after its scheduled time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(1);

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
    let buf_bytes = phase.target.sizes.max().clamp(64 * 1024, 1024 * 1024) + 16 * 1024;
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

/// The next operation of a connection: its kind, key index and, in open loop, the time it is
/// scheduled for; `None` when the phase is over for it.
fn next_op(
    phase: &Phase,
    rng: &mut Rng,
    start: Instant,
    deadline: Option<Instant>,
) -> Option<(OpKind, u64, Option<Instant>)> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return None;
    }
    let plan = &phase.plan;
    let ticket = (plan.ops.is_some() || plan.rate.is_some()).then(|| phase.issued.fetch_add(1, Ordering::Relaxed));
    if let (Some(ops), Some(ticket)) = (plan.ops, ticket)
        && ticket >= ops
    {
        return None;
    }
    let scheduled = match (plan.rate, ticket) {
        (Some(rate), Some(ticket)) => {
            let at = start + Duration::from_secs_f64(ticket as f64 / rate);
            if deadline.is_some_and(|d| at >= d) {
                return None;
            }
            Some(at)
        }
        _ => None,
    };
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
    Some((kind, key, scheduled))
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
    while let Some((kind, index, scheduled)) = next_op(&phase, &mut rng, start, deadline) {
        if let Some(at) = scheduled {
            let now = Instant::now();
            if at > now {
                compio::time::sleep(at - now).await;
            } else if now - at > LATE_AFTER {
                stats.borrow_mut().late += 1;
            }
        }
        // Open loop: latency counts from the scheduled time, so a server that falls behind
        // shows it in the percentiles instead of slowing the load down (coordinated omission).
        let began = scheduled.unwrap_or_else(Instant::now);
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
            let latency = now.duration_since(began).as_nanos() as u64;
            let second = stats.second(at);
            second.ops += 1;
            second.bytes += bytes;
            second.max_latency_ns = second.max_latency_ns.max(latency);
            let op = &mut stats.ops[kind.index()];
            op.ok += 1;
            op.bytes += bytes;
            op.latency.record(latency);
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
    if kind == OpKind::Multipart {
        return multipart_upload(conn, builder, target, index).await;
    }
    let null = target.null_path.is_some();
    let key = if kind == OpKind::List || null { String::new() } else { target.key(index) };
    let bodies = target.sizes.of(index);
    let size = bodies.size();
    let payload = match kind {
        OpKind::Put => bodies.payload(bodies.whole(), &key),
        _ => Payload::None,
    };
    let head = match fixed {
        Some(fixed) => {
            let mut head = std::mem::take(&mut builder.buf);
            head.clear();
            head.extend_from_slice(fixed);
            head
        }
        None => builder.object_head(target, kind, &key, bodies),
    };
    let verify = target.verify && kind == OpKind::Get && !null;
    let mut sink_for = |status: u16| match status {
        200..=299 if verify => Sink::Verify(bodies.verifier(&key)),
        200..=299 => Sink::Discard,
        _ => Sink::Capture(Vec::new()),
    };
    let keep_headers = verify && target.checksum.is_some();
    let response = send(conn, builder, head, payload, kind == OpKind::Stat, keep_headers, &mut sink_for).await?;
    if let Some(failed) = failure(&response) {
        return Ok(failed);
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
        if let Some(label) = checksum_mismatch(target, bodies, &key, &response) {
            return Ok(Outcome::Failed(label.to_owned()));
        }
    }
    let bytes = match kind {
        OpKind::Put => size as u64,
        OpKind::Get => response.body_len,
        _ => 0,
    };
    Ok(Outcome::Ok { bytes, first_byte: response.first_byte })
}

/// An unsuccessful response as an outcome, counted under its S3 error code.
fn failure(response: &Response) -> Option<Outcome> {
    if (200..=299).contains(&response.status) {
        return None;
    }
    let code = match &response.sink {
        Sink::Capture(body) => error_code(body).map(str::to_owned),
        _ => None,
    };
    Some(Outcome::Failed(code.unwrap_or_else(|| format!("HTTP{}", response.status))))
}

/// With a checksum algorithm, a verified GET must carry the object's checksum as written.
/// Multipart objects with a composite checksum (`value-N`) are checked by their bytes only.
fn checksum_mismatch(target: &Target, bodies: &Bodies, key: &str, response: &Response) -> Option<&'static str> {
    let algo = target.checksum?;
    match &response.checksum {
        None => Some("verify:checksum-missing"),
        Some((name, _)) if !name.eq_ignore_ascii_case(algo.header_suffix()) => Some("verify:checksum-algorithm"),
        Some((_, value)) if value.contains('-') => None,
        Some((_, value)) => (Some(value) != bodies.checksum(bodies.whole(), key).as_ref()).then_some("verify:checksum"),
    }
}

/// Sends a request on `conn` (see [`Conn::exchange`]) and hands the head buffer back to
/// `builder` for the next request.
async fn send(
    conn: &mut Conn,
    builder: &mut RequestBuilder,
    head: Vec<u8>,
    payload: Payload,
    is_head: bool,
    keep_headers: bool,
    sink_for: super::client::SinkFor<'_>,
) -> Result<Response, Transport> {
    let (head, response) = conn.exchange(head, payload, is_head, keep_headers, sink_for).await?;
    if let Some(head) = head {
        builder.buf = head;
    }
    Ok(response)
}

/// Sends a request whose response body (XML) is kept, whatever its status.
async fn send_keeping_body(
    conn: &mut Conn,
    builder: &mut RequestBuilder,
    head: Vec<u8>,
) -> Result<Response, Transport> {
    send(conn, builder, head, Payload::None, false, false, &mut |_| Sink::Capture(Vec::new())).await
}

/// The text of the first `<element>` of a kept XML body.
fn xml_text(response: &Response, element: &str) -> Option<String> {
    let Sink::Capture(body) = &response.sink else { return None };
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{element}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{element}>"))? + start;
    quick_xml::escape::unescape(&text[start..end]).ok().map(|t| t.into_owned())
}

/// One multipart upload of object `index` on this connection: CreateMultipartUpload, every
/// part in order (each with its own SHA-256 or UNSIGNED-PAYLOAD, and the checksum if one was
/// asked for), CompleteMultipartUpload. Counted as one operation moving the object's bytes;
/// its time to first byte is the CreateMultipartUpload answer's.
async fn multipart_upload(
    conn: &mut Conn,
    builder: &mut RequestBuilder,
    target: &Target,
    index: u64,
) -> Result<Outcome, Transport> {
    use std::fmt::Write as _;
    let key = target.key(index);
    let bodies = target.sizes.of(index);
    let empty = if target.unsigned_payload { sign::UNSIGNED_PAYLOAD } else { sign::EMPTY_PAYLOAD_SHA256 };
    let algorithm = target.checksum.map(|a| ("x-amz-checksum-algorithm", a.name()));
    let head = builder.build(target, "POST", &key, "uploads", algorithm.as_slice(), empty, Some(0));
    let created = send_keeping_body(conn, builder, head).await?;
    if let Some(failed) = failure(&created) {
        return Ok(failed);
    }
    let Some(upload_id) = xml_text(&created, "UploadId") else {
        return Ok(Outcome::Failed("multipart:no-upload-id".to_owned()));
    };
    let mut id = String::new();
    sign::uri_encode(&upload_id, false, &mut id);
    let mut complete = String::from("<CompleteMultipartUpload>");
    for (i, piece) in bodies.parts().iter().enumerate() {
        let query = format!("partNumber={}&uploadId={id}", i + 1);
        let sha;
        let payload = if target.unsigned_payload {
            sign::UNSIGNED_PAYLOAD
        } else {
            sha = bodies.sha256_hex(piece, &key);
            sha.as_str()
        };
        let checksum = target.checksum.zip(bodies.checksum(piece, &key));
        let header = checksum.as_ref().map(|(algo, value)| (algo.header_name(), value.as_str()));
        let head = builder.build(target, "PUT", &key, &query, header.as_slice(), payload, Some(piece.bytes()));
        let mut sink_for = |status: u16| if status < 300 { Sink::Discard } else { Sink::Capture(Vec::new()) };
        let response = send(conn, builder, head, bodies.payload(piece, &key), false, true, &mut sink_for).await?;
        if let Some(failed) = failure(&response) {
            return Ok(failed);
        }
        let Some(etag) = response.etag else {
            return Ok(Outcome::Failed("multipart:no-etag".to_owned()));
        };
        let _ = write!(
            complete,
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>",
            i + 1,
            quick_xml::escape::escape(&etag)
        );
        if let Some((algo, value)) = &checksum {
            let _ = write!(complete, "<Checksum{0}>{value}</Checksum{0}>", algo.name());
        }
        complete.push_str("</Part>");
    }
    complete.push_str("</CompleteMultipartUpload>");
    let sha;
    let payload = if target.unsigned_payload {
        sign::UNSIGNED_PAYLOAD
    } else {
        sha = sign::payload_sha256_hex(complete.as_bytes());
        sha.as_str()
    };
    let mut head = builder.build(target, "POST", &key, &format!("uploadId={id}"), &[], payload, Some(complete.len()));
    head.extend_from_slice(complete.as_bytes());
    let done = send_keeping_body(conn, builder, head).await?;
    if let Some(failed) = failure(&done) {
        return Ok(failed);
    }
    // CompleteMultipartUpload may fail after its 200 status line: the error is in the body.
    if let Sink::Capture(body) = &done.sink
        && let Some(code) = error_code(body)
    {
        return Ok(Outcome::Failed(code.to_owned()));
    }
    Ok(Outcome::Ok { bytes: bodies.size() as u64, first_byte: created.first_byte })
}

/// Signed headers a request may carry beyond host, x-amz-content-sha256 and x-amz-date.
const EXTRA_HEADERS_MAX: usize = 2;

/// Builds request heads, reusing its buffers; one per connection.
struct RequestBuilder {
    signer: Signer,
    /// The head buffer, handed to the socket and back.
    buf: Vec<u8>,
    path: String,
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
                    target.sizes.max()
                )
            }
            _ => format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", target.host),
        };
        head.into_bytes()
    }

    /// The head of a single-request operation on `key` (put, get, stat, delete) or on the
    /// bucket (list).
    fn object_head(&mut self, target: &Target, kind: OpKind, key: &str, bodies: &Bodies) -> Vec<u8> {
        let method = match kind {
            OpKind::Put => "PUT",
            OpKind::Stat => "HEAD",
            OpKind::Delete => "DELETE",
            _ => "GET",
        };
        let mut query = String::new();
        if kind == OpKind::List {
            query.push_str("list-type=2&max-keys=");
            query.push_str(&target.list_max_keys.to_string());
            query.push_str("&prefix=");
            sign::uri_encode(&target.prefix, false, &mut query);
        }
        let sha;
        let payload = if target.unsigned_payload {
            sign::UNSIGNED_PAYLOAD
        } else if kind == OpKind::Put {
            sha = bodies.sha256_hex(bodies.whole(), key);
            sha.as_str()
        } else {
            sign::EMPTY_PAYLOAD_SHA256
        };
        let checksum = match (kind, target.checksum) {
            (OpKind::Put, Some(algo)) => bodies.checksum(bodies.whole(), key).map(|v| (algo.header_name(), v)),
            (OpKind::Get, Some(_)) => Some(("x-amz-checksum-mode", "ENABLED".to_owned())),
            _ => None,
        };
        let extra = checksum.as_ref().map(|(name, value)| (*name, value.as_str()));
        let length = (kind == OpKind::Put).then(|| bodies.size());
        self.build(target, method, key, &query, extra.as_slice(), payload, length)
    }

    /// A signed request head: `key` empty for the bucket; `query` already encoded; `extra`
    /// headers (lowercase names) signed too; `content_length` sent when given.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        target: &Target,
        method: &str,
        key: &str,
        query: &str,
        extra: &[(&str, &str)],
        payload: &str,
        content_length: Option<usize>,
    ) -> Vec<u8> {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if unix != self.date_unix {
            self.date = sign::amz_date(unix);
            self.date_unix = unix;
        }
        self.path.clear();
        self.path.push('/');
        self.path.push_str(&target.bucket);
        if !key.is_empty() {
            self.path.push('/');
            sign::uri_encode(key, true, &mut self.path);
        }
        // On the stack: no allocation per request.
        assert!(extra.len() <= EXTRA_HEADERS_MAX, "at most {EXTRA_HEADERS_MAX} extra signed headers");
        let mut all = [("", ""); 3 + EXTRA_HEADERS_MAX];
        all[..3].copy_from_slice(&[
            ("host", target.host.as_str()),
            ("x-amz-content-sha256", payload),
            ("x-amz-date", &self.date),
        ]);
        all[3..3 + extra.len()].copy_from_slice(extra);
        let headers = &all[..3 + extra.len()];
        let authorization = self.signer.authorization(&RequestToSign {
            method,
            raw_path: &self.path,
            raw_query: query,
            headers,
            payload,
            amz_date: &self.date,
        });
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        write_head(&mut out, method, &self.path, query, headers, &authorization, content_length);
        out
    }
}

/// Request line and headers, ending with the blank line.
fn write_head(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    auth: &str,
    content_length: Option<usize>,
) {
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
    if let Some(length) = content_length {
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(length.to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}
