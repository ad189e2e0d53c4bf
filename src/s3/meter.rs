//! The per-bucket meter: payload bytes received and stored, object bytes
//! sent, and requests by class, per bucket, per user and per hour.
//!
//! Each core adds up what its requests did and hands the sums to the shards
//! owning the buckets at least once a second (and whenever a connection
//! ends, so a drain hands over everything before the final checkpoints). A
//! shard keeps its buckets' totals in its index and saves them only in its
//! checkpoints, as absolute values: a clean shutdown loses nothing, kill -9
//! loses at most what came after the last checkpoint (at most the
//! checkpoint interval plus this second), and replay never counts twice.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::route::Op;
use crate::engine::{Engine, Usage};

/// How long a core keeps sums before handing them over.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Distinct (bucket, user, hour) sums a core holds before handing them over early.
const PENDING_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
    List,
    Delete,
}

/// The class a bucket operation counts in (None: not about one bucket).
pub fn class_of(op: Op) -> Option<Class> {
    use Op as O;
    Some(match op {
        O::ListBuckets | O::NotImplemented(_) | O::AdminUsage | O::AdminMetrics => return None,
        O::ListObjects | O::ListObjectsV2 | O::ListObjectVersions | O::ListParts | O::ListMultipartUploads => {
            Class::List
        }
        O::DeleteBucket
        | O::DeleteObject
        | O::DeleteObjects
        | O::AbortMultipartUpload
        | O::DeleteObjectTagging
        | O::DeleteBucketTagging
        | O::DeleteBucketLifecycle
        | O::DeleteBucketPolicy
        | O::DeleteBucketOwnershipControls
        | O::DeletePublicAccessBlock
        | O::DeleteBucketCors => Class::Delete,
        O::HeadBucket
        | O::GetBucketLocation
        | O::GetBucketVersioning
        | O::GetObject
        | O::HeadObject
        | O::GetObjectAttributes
        | O::GetObjectTagging
        | O::GetBucketTagging
        | O::GetBucketLifecycleConfiguration
        | O::GetBucketAcl
        | O::GetObjectAcl
        | O::GetBucketPolicy
        | O::GetBucketPolicyStatus
        | O::GetBucketOwnershipControls
        | O::GetPublicAccessBlock
        | O::GetBucketCors => Class::Read,
        _ => Class::Write,
    })
}

pub fn hour_of(ms: i64) -> u32 {
    (ms.max(0) / 3_600_000) as u32
}

struct Pending {
    sums: HashMap<(String, String, u32), Usage>,
    since: Instant,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending { sums: HashMap::new(), since: Instant::now() });
}

/// Counts one request on `bucket` by `user` ("" when anonymous).
pub fn record(engine: &Engine, bucket: &str, user: &str, class: Class, bytes_in: u64, bytes_out: u64) {
    let hour = hour_of(super::now_ms());
    let due = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let u = p.sums.entry((bucket.to_string(), user.to_string(), hour)).or_default();
        u.bytes_in += bytes_in;
        u.bytes_out += bytes_out;
        match class {
            Class::Read => u.reads += 1,
            Class::Write => u.writes += 1,
            Class::List => u.lists += 1,
            Class::Delete => u.deletes += 1,
        }
        p.sums.len() >= PENDING_MAX || p.since.elapsed() >= FLUSH_EVERY
    });
    if due {
        flush(engine);
    }
}

/// Hands this core's sums to the shards owning their buckets.
pub fn flush(engine: &Engine) {
    let sums = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.since = Instant::now();
        std::mem::take(&mut p.sums)
    });
    if !sums.is_empty() {
        engine.meter(sums.into_iter().map(|((b, u, h), usage)| (b, u, h, usage)).collect());
    }
}

/// Runs on every core: hands sums over at least every `FLUSH_EVERY`, also
/// when no further request comes to trigger it.
pub async fn flusher(engine: Engine) {
    loop {
        compio::runtime::time::sleep(FLUSH_EVERY).await;
        flush(&engine);
        super::access_log::flush_local();
    }
}

/// Totals of one bucket: over all its users, and per user.
#[derive(serde::Serialize)]
struct BucketReport {
    bucket: String,
    owner: String,
    total: Usage,
    /// What the bucket holds now (not limited by `since`).
    stored: crate::engine::Stored,
    users: std::collections::BTreeMap<String, Usage>,
}

#[derive(serde::Serialize)]
struct Report {
    /// The first hour counted (UTC), or null: since each bucket was created.
    since: Option<String>,
    buckets: Vec<BucketReport>,
    /// Per user over the buckets shown.
    users: std::collections::BTreeMap<String, Usage>,
}

/// The name anonymous requests are reported under.
pub const ANONYMOUS: &str = "anonymous";

/// Sums meter entries into a report: per bucket (with its owner from
/// `owners`) and per user. Buckets not in `owners` are left out.
fn report(
    entries: Vec<crate::engine::UsageEntry>,
    owners: &HashMap<String, String>,
    stored: &HashMap<String, crate::engine::Stored>,
    since_ms: Option<i64>,
) -> Report {
    let mut buckets: std::collections::BTreeMap<String, BucketReport> = Default::default();
    let mut users: std::collections::BTreeMap<String, Usage> = Default::default();
    // Since creation: every bucket shown, with what it holds, even before
    // any metered request. Since a time: the buckets with requests since.
    for (bucket, owner) in owners.iter().filter(|_| since_ms.is_none()) {
        buckets.insert(
            bucket.clone(),
            BucketReport {
                bucket: bucket.clone(),
                owner: owner.clone(),
                total: Usage::default(),
                stored: stored.get(bucket).copied().unwrap_or_default(),
                users: Default::default(),
            },
        );
    }
    for (bucket, user, _, usage) in entries {
        let Some(owner) = owners.get(&bucket) else { continue };
        let user = if user.is_empty() { ANONYMOUS.to_string() } else { user };
        let b = buckets.entry(bucket.clone()).or_insert_with(|| BucketReport {
            bucket,
            owner: owner.clone(),
            total: Usage::default(),
            stored: Default::default(),
            users: Default::default(),
        });
        b.total.add(&usage);
        b.users.entry(user.clone()).or_default().add(&usage);
        users.entry(user).or_default().add(&usage);
    }
    let since = since_ms.map(|ms| super::xml::iso8601(i64::from(hour_of(ms)) * 3_600_000));
    Report { since, buckets: buckets.into_values().collect(), users }
}

/// `GET /admin/usage[?since=ISO-8601][&bucket=NAME]`: the meter as JSON. The
/// administrator (the first user) sees every bucket, anyone else the
/// buckets it owns. `since` counts from the start of its hour.
pub async fn get_usage(req: &mut super::Req<'_>) -> Result<crate::http::response::Response, super::S3Error> {
    use super::error::{S3Error, S3ErrorCode};
    let since_ms = match req.head.query_param("since") {
        None => None,
        Some(v) => Some(super::post::parse_iso8601(&v).ok_or_else(|| {
            S3Error::with_message(S3ErrorCode::InvalidArgument, "since must be a time like 2026-12-07T10:00:00Z")
        })?),
    };
    let only = req.head.query_param("bucket");
    let admin = req.ctx.users.admin().is_some_and(|u| u.access_key == req.user);
    let owners: HashMap<String, String> = req
        .ctx
        .engine
        .buckets()
        .into_iter()
        .filter(|(name, s)| (admin || s.owner == req.user) && only.as_ref().is_none_or(|o| o == name))
        .map(|(name, s)| (name, s.owner))
        .collect();
    let entries = req.ctx.engine.usage(since_ms.map_or(0, hour_of)).await?;
    let stored = req.ctx.engine.stored().await?;
    let body = serde_json::to_vec_pretty(&report(entries, &owners, &stored, since_ms))
        .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?;
    Ok(crate::http::response::Response::new(200).header("content-type", "application/json").bytes(body))
}

/// `kaligon usage --data DIR…`: the meter as the data directories' last
/// checkpoints hold it, read without a running node (every bucket).
pub fn usage_offline(
    data: Vec<std::path::PathBuf>,
    since: Option<&str>,
    bucket: Option<&str>,
) -> Result<String, String> {
    let since_ms = match since {
        None => None,
        Some(v) => Some(super::post::parse_iso8601(v).ok_or("--since must be a time like 2026-12-07T10:00:00Z")?),
    };
    let store = crate::offline::Store::open(data)?;
    let (mut entries, mut owners) = (Vec::new(), HashMap::new());
    for s in &store.shards {
        entries.extend(s.index.usage_since(since_ms.map_or(0, hour_of)));
    }
    for (name, state) in store.buckets() {
        if bucket.is_none_or(|b| b == name) {
            owners.insert(name, state.owner);
        }
    }
    let mut stored: HashMap<String, crate::engine::Stored> = HashMap::new();
    for s in &store.shards {
        for (bucket, st) in s.index.stored() {
            stored.entry(bucket.clone()).or_default().add(st);
        }
    }
    serde_json::to_string_pretty(&report(entries, &owners, &stored, since_ms)).map_err(|e| e.to_string())
}
