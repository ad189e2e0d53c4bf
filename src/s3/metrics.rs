//! Prometheus metrics: `GET /admin/metrics` (the first user's signature, or
//! nobody's with `--metrics-public`), in the OpenMetrics text format as the
//! `prometheus-client` crate writes it.
//!
//! Request metrics are counted as requests finish, through handles each
//! core caches (no lock, no allocation per request); shard, disk and
//! connection gauges are read when scraped. Label sets are bounded:
//! operations and status classes are fixed lists, and per-bucket byte
//! counters cover the first `BUCKET_LABELS_MAX` buckets seen, the rest
//! summed under `bucket="_other"`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::mem::Discriminant;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::route::Op;

/// Buckets that get byte counters of their own.
pub const BUCKET_LABELS_MAX: usize = 100;
/// The label of every bucket past the cap.
pub const OTHER_BUCKET: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriveLabels {
    path: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<ClassLabels, Histogram, fn() -> Histogram>,
    bytes_in: Family<BucketLabels, Counter>,
    bytes_out: Family<BucketLabels, Counter>,
    bucket_labels: Mutex<HashSet<String>>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);
static SLOWDOWNS: AtomicU64 = AtomicU64::new(0);

/// A request refused with 503 SlowDown by back-pressure.
pub fn count_slowdown() {
    SLOWDOWNS.fetch_add(1, Ordering::Relaxed);
}

fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics {
        requests: Family::default(),
        latency: Family::new_with_constructor(latency_histogram),
        bytes_in: Family::default(),
        bytes_out: Family::default(),
        bucket_labels: Mutex::new(HashSet::new()),
    })
}

/// Access-log lines dropped (the access log reports them here too).
pub fn count_dropped_lines(n: u64) {
    DROPPED_LINES.fetch_add(n, Ordering::Relaxed);
}

/// This core's handles into the shared metrics.
#[derive(Default)]
struct Local {
    requests: HashMap<(Option<Discriminant<Op>>, u16), Counter>,
    latency: HashMap<&'static str, Histogram>,
    buckets: HashMap<String, (Counter, Counter)>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The latency class of an operation (the meter's, plus admin and other).
fn class_of(op: Option<Op>) -> &'static str {
    match op.and_then(super::meter::class_of) {
        Some(super::meter::Class::Read) => "read",
        Some(super::meter::Class::Write) => "write",
        Some(super::meter::Class::List) => "list",
        Some(super::meter::Class::Delete) => "delete",
        None => "other",
    }
}

/// One finished request.
pub fn record(op: Option<Op>, status: u16, seconds: f64, bucket: Option<&str>, bytes_in: u64, bytes_out: u64) {
    let m = metrics();
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let key = (op.as_ref().map(std::mem::discriminant), status / 100);
        l.requests
            .entry(key)
            .or_insert_with(|| {
                let operation = op.map_or_else(|| "unknown".to_string(), op_name);
                m.requests.get_or_create(&RequestLabels { operation, status: status_class(status).into() }).clone()
            })
            .inc();
        let c = class_of(op);
        l.latency
            .entry(c)
            .or_insert_with(|| m.latency.get_or_create(&ClassLabels { class: c.into() }).clone())
            .observe(seconds);
        if let Some(b) = bucket
            && (bytes_in > 0 || bytes_out > 0)
        {
            if !l.buckets.contains_key(b) {
                let label = {
                    let mut seen = m.bucket_labels.lock().expect("not poisoned");
                    if seen.contains(b) || seen.len() < BUCKET_LABELS_MAX {
                        seen.insert(b.to_string());
                        b.to_string()
                    } else {
                        OTHER_BUCKET.to_string()
                    }
                };
                let labels = BucketLabels { bucket: label };
                let handles = (m.bytes_in.get_or_create(&labels).clone(), m.bytes_out.get_or_create(&labels).clone());
                l.buckets.insert(b.to_string(), handles);
            }
            let (i, o) = &l.buckets[b];
            i.inc_by(bytes_in);
            o.inc_by(bytes_out);
        }
    });
}

/// `GetObject`, `PutObject`, … (an unsupported operation: `NotImplemented`).
pub fn op_name(op: Op) -> String {
    match op {
        Op::NotImplemented(_) => "NotImplemented".into(),
        o => format!("{o:?}"),
    }
}

/// What the scrape reads from the node besides the request metrics.
pub struct NodeState {
    pub shards: Vec<crate::engine::ShardStats>,
    pub connections: usize,
    /// Free bytes per data directory.
    pub drives: Vec<(String, u64)>,
}

/// The exposition text.
pub fn encode(state: &NodeState) -> String {
    let m = metrics();
    let mut reg = Registry::with_prefix("kaligon");
    reg.register("requests", "Requests answered, by operation and status class", m.requests.clone());
    reg.register(
        "request_duration_seconds",
        "Time from the parsed request head to the last byte of the answer, by operation class",
        m.latency.clone(),
    );
    reg.register(
        "bucket_received_bytes",
        "Request body payload bytes received, per bucket (the first 100 buckets; the rest as _other)",
        m.bytes_in.clone(),
    );
    reg.register("bucket_sent_bytes", "Object bytes sent, per bucket (as above)", m.bytes_out.clone());
    let dropped = Counter::<u64>::default();
    dropped.inc_by(DROPPED_LINES.load(Ordering::Relaxed));
    reg.register("access_log_dropped_lines", "Access-log lines dropped because the writer fell behind", dropped);
    let slowdowns = Counter::<u64>::default();
    slowdowns.inc_by(SLOWDOWNS.load(Ordering::Relaxed));
    reg.register(
        "slowdowns",
        "Requests refused with 503 SlowDown because a core had requests_max_per_core in flight",
        slowdowns,
    );
    let connections = Gauge::<i64>::default();
    connections.set(state.connections as i64);
    reg.register("connections_open", "Client connections open", connections);

    let gauge = || Family::<ShardLabels, Gauge>::default();
    let (queue, objects, live, segments, poisoned) = (gauge(), gauge(), gauge(), gauge(), gauge());
    let age = Family::<ShardLabels, Gauge<f64, AtomicU64>>::default();
    let (groups, group_ops) = (Family::<ShardLabels, Counter>::default(), Family::<ShardLabels, Counter>::default());
    let sync = Family::<ShardLabels, Counter<f64, AtomicU64>>::default();
    for (i, s) in state.shards.iter().enumerate() {
        let l = ShardLabels { shard: i.to_string() };
        queue.get_or_create(&l).set(s.queue_depth as i64);
        objects.get_or_create(&l).set(s.objects as i64);
        live.get_or_create(&l).set(s.live_bytes as i64);
        segments.get_or_create(&l).set(s.segments as i64);
        poisoned.get_or_create(&l).set(i64::from(s.poisoned));
        age.get_or_create(&l).set(s.checkpoint_age_ms as f64 / 1000.0);
        groups.get_or_create(&l).inc_by(s.groups.groups);
        group_ops.get_or_create(&l).inc_by(s.groups.ops);
        sync.get_or_create(&l).inc_by(s.groups.sync_nanos as f64 / 1e9);
    }
    reg.register("shard_queue_depth", "Changes waiting for a shard's next commit group", queue);
    reg.register("shard_versions", "Object versions and delete markers a shard holds", objects);
    reg.register("shard_live_bytes", "Bytes of live object data in a shard's segments", live);
    reg.register("shard_segments", "Segment files of a shard", segments);
    reg.register("shard_poisoned", "1 when a shard refuses writes after a failed write or sync", poisoned);
    reg.register("shard_checkpoint_age_seconds", "Time since a shard's last checkpoint began", age);
    reg.register("shard_group_commits", "Commit groups written and synced", groups);
    reg.register(
        "shard_group_commit_changes",
        "Changes committed by those groups (size = changes / commits)",
        group_ops,
    );
    reg.register("shard_group_commit_sync_seconds", "Time spent in the groups' syncs", sync);
    let free = Family::<DriveLabels, Gauge>::default();
    for (path, bytes) in &state.drives {
        free.get_or_create(&DriveLabels { path: path.clone() }).set(*bytes as i64);
    }
    reg.register("drive_free_bytes", "Free bytes on each data directory's file system", free);
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; `c` is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
    }
}

/// `GET /admin/metrics`.
pub async fn get_metrics(ctx: &crate::runtime::Ctx) -> Result<crate::http::response::Response, super::S3Error> {
    let shards = ctx.engine.stats().await?;
    let drives = ctx.config.data.iter().map(|d| (d.display().to_string(), free_bytes(d).unwrap_or(0))).collect();
    let connections = ctx.health.connections.load(Ordering::Relaxed);
    let body = encode(&NodeState { shards, connections, drives });
    Ok(crate::http::response::Response::new(200)
        .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        .bytes(body.into_bytes()))
}
