//! The lifecycle worker: one per core, walking the keys its shard owns in
//! every bucket that has rules, and doing what the rules say through the
//! engine's ordinary requests (so each action is durable and ordered with
//! clients' writes like any other change). Bounded work per step: a page of
//! keys, its actions a few at a time, then a pause for foreground requests.
//! Where it stopped is kept in the shard's directory, so a restart resumes
//! the pass instead of starting over.
//!
//! Every action carries what the worker saw (`engine::Guard`): a version
//! written, or a key changed, after the worker looked is left alone.

use std::path::PathBuf;
use std::time::Duration;

use super::rules::{Clock, Rules, When};
use crate::engine::types::{Version, VersionId};
use crate::engine::{Engine, Error, Guard, ScannedKey, UploadId};

/// Keys looked at per step, and actions in flight at once.
const PAGE_KEYS: usize = 256;
const ACTIONS_IN_FLIGHT: usize = 32;
/// Pause between steps, so a pass never holds the shard's queue for long.
const STEP_PAUSE: Duration = Duration::from_millis(2);

pub struct WorkerConfig {
    pub clock: Clock,
    /// Time between the starts of two passes.
    pub pass_interval: Duration,
    /// Where the pass in progress stands (bucket and last key done).
    pub cursor_path: PathBuf,
}

/// What a rule asks for one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// DeleteObject of `version` (None: the current one, which adds a
    /// delete marker in a versioned bucket).
    Delete {
        key: String,
        version: Option<VersionId>,
        guard: Guard,
    },
    Abort {
        key: String,
        upload: UploadId,
    },
}

#[derive(Default, Debug, Clone, Copy)]
pub struct PassStats {
    pub keys: u64,
    pub done: u64,
    /// Actions whose key changed since it was looked at.
    pub skipped: u64,
    pub failed: u64,
}

/// Runs passes until the engine shuts down.
pub async fn run(engine: Engine, config: WorkerConfig) {
    let mut cursor = load_cursor(&config.cursor_path);
    loop {
        compio::time::sleep(config.pass_interval).await;
        match pass(&engine, &config, &mut cursor).await {
            Ok(stats) if stats.done + stats.failed > 0 => {
                tracing::info!(shard = engine.shard().0, ?stats, "lifecycle pass");
            }
            Ok(_) => {}
            Err(Error::ShuttingDown) => return,
            Err(e) => tracing::warn!(error = %e, "lifecycle pass stopped; the next one resumes"),
        }
    }
}

type Cursor = Option<(String, String)>;

fn load_cursor(path: &std::path::Path) -> Cursor {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8(text).ok()?;
    let (b, k) = text.split_once('\0')?;
    Some((b.to_string(), k.to_string()))
}

async fn save_cursor(path: &std::path::Path, cursor: &Cursor) {
    let (path, cursor) = (path.to_path_buf(), cursor.clone());
    let _ = compio::runtime::spawn_blocking(move || match cursor {
        Some((b, k)) => {
            let tmp = path.with_extension("tmp");
            let _ = std::fs::write(&tmp, format!("{b}\0{k}")).and_then(|()| std::fs::rename(&tmp, &path));
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    })
    .await;
}

/// One walk over every bucket with rules, from `cursor` on.
pub async fn pass(engine: &Engine, config: &WorkerConfig, cursor: &mut Cursor) -> Result<PassStats, Error> {
    let mut stats = PassStats::default();
    let shard = engine.shard();
    for (name, state) in engine.buckets() {
        if cursor.as_ref().is_some_and(|(b, _)| *b > name) {
            continue;
        }
        let Some(rules) = super::bucket_rules(&state) else { continue };
        let mut after = cursor.take().filter(|(b, _)| *b == name).map(|(_, k)| k);
        loop {
            let page = engine.scan_keys(shard, &name, after.clone(), PAGE_KEYS).await?;
            let Some(last) = page.last().map(|k| k.key.clone()) else { break };
            stats.keys += page.len() as u64;
            let now = super::super::now_ms();
            let actions: Vec<Action> = page.iter().flat_map(|k| plan_key(&rules, config.clock, now, k)).collect();
            act(engine, &name, actions, &mut stats).await?;
            *cursor = Some((name.clone(), last.clone()));
            save_cursor(&config.cursor_path, cursor).await;
            if page.len() < PAGE_KEYS {
                break;
            }
            after = Some(last);
            compio::time::sleep(STEP_PAUSE).await;
        }
        let now = super::super::now_ms();
        let uploads = engine.scan_uploads(shard, &name).await?;
        let aborts = uploads
            .into_iter()
            .filter(|(key, _, initiated)| rules.abort(config.clock, key, *initiated).is_some_and(|(at, _)| now >= at))
            .map(|(key, upload, _)| Action::Abort { key, upload })
            .collect();
        act(engine, &name, aborts, &mut stats).await?;
    }
    *cursor = None;
    save_cursor(&config.cursor_path, cursor).await;
    Ok(stats)
}

async fn act(engine: &Engine, bucket: &str, actions: Vec<Action>, stats: &mut PassStats) -> Result<(), Error> {
    let mut actions = actions.into_iter().peekable();
    while actions.peek().is_some() {
        let batch: Vec<Action> = actions.by_ref().take(ACTIONS_IN_FLIGHT).collect();
        let results = futures_util::future::join_all(batch.into_iter().map(|a| async move {
            let now = super::super::now_ms();
            match a {
                Action::Delete { key, version, guard } => {
                    engine.delete_guarded(bucket, &key, version, now, guard).await.map(|_| ())
                }
                Action::Abort { key, upload } => engine.abort_upload(bucket, &key, upload).await,
            }
        }))
        .await;
        for r in results {
            match r {
                Ok(()) => stats.done += 1,
                Err(Error::PreconditionFailed | Error::NoSuchUpload | Error::NoSuchBucket) => stats.skipped += 1,
                Err(Error::ShuttingDown) => return Err(Error::ShuttingDown),
                Err(e) => {
                    tracing::debug!(error = %e, "lifecycle action failed; the next pass retries it");
                    stats.failed += 1;
                }
            }
        }
    }
    Ok(())
}

/// What the rules ask of one key now (AWS user guide "Lifecycle
/// configuration elements": Expiration, NoncurrentVersionExpiration,
/// ExpiredObjectDeleteMarker).
pub fn plan_key(rules: &Rules, clock: Clock, now: i64, k: &ScannedKey) -> Vec<Action> {
    let mut out = Vec::new();
    let Some(current) = k.versions.first() else { return out };
    let tags = |v: &Version| v.meta.get().tags;
    let delete = |version: Option<VersionId>, v: &Version, sole: bool| Action::Delete {
        key: k.key.clone(),
        version,
        guard: Guard { seq: v.seq, sole },
    };
    // Noncurrent versions: noncurrent since their successor was written;
    // the `NewerNoncurrentVersions` newest of them are kept.
    for (i, v) in k.versions.iter().enumerate().skip(1) {
        let newer_noncurrent = (i - 1) as u32;
        let since = k.versions[i - 1].mtime_ms;
        let due = rules.0.iter().filter(|r| r.matches(&k.key, v.size, &tags(v))).any(|r| {
            r.noncurrent_expiration.as_ref().is_some_and(|e| {
                newer_noncurrent >= e.newer_versions.unwrap_or(0) && now >= clock.due(since, &When::Days(e.days))
            })
        });
        if due {
            out.push(delete(Some(v.id), v, false));
        }
    }
    if !current.delete_marker {
        if rules.expiry(clock, &k.key, current.size, &tags(current), current.mtime_ms).is_some_and(|(at, _)| now >= at)
        {
            // Unversioned: the object goes; versioned or suspended: a delete
            // marker takes its place (the engine's DeleteObject decides).
            out.push(delete(None, current, false));
        }
    } else if k.versions.len() == 1 {
        // An expired object delete marker: the only version left.
        let due = rules.0.iter().filter(|r| r.matches(&k.key, 0, &[])).any(|r| {
            r.expiration.as_ref().is_some_and(|e| match &e.when {
                None => e.expired_object_delete_marker == Some(true),
                Some(when) => now >= clock.due(current.mtime_ms, when),
            })
        });
        if due {
            out.push(delete(Some(current.id), current, true));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::{ETag, MetaBlob, ObjectMeta};

    fn version(id: u128, seq: u64, mtime_ms: i64, marker: bool) -> Version {
        Version {
            id: VersionId(id),
            seq,
            mtime_ms,
            size: 10,
            etag: ETag::default(),
            delete_marker: marker,
            extents: Box::new([]),
            meta: MetaBlob::new(&ObjectMeta::default()),
        }
    }

    fn rules(xml: &str) -> Rules {
        let doc = format!("<LifecycleConfiguration>{xml}</LifecycleConfiguration>");
        super::super::rules::parse(doc.as_bytes(), &[]).unwrap()
    }

    const DAY: i64 = 1000;

    #[test]
    fn noncurrent_versions_expire_from_when_they_became_noncurrent_keeping_the_newest() {
        let r = rules(
            "<Rule><ID>n</ID><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>\
             <NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>",
        );
        let clock = Clock::new(Some(1));
        // Newest first: current at 10 days, then versions superseded at 10, 9 and 1 days.
        let k = ScannedKey {
            key: "k".into(),
            versions: vec![
                version(4, 4, 10 * DAY, false),
                version(3, 3, 9 * DAY, false),
                version(2, 2, DAY, false),
                version(1, 1, 0, false),
            ],
        };
        let ids: Vec<_> = plan_key(&r, clock, 11 * DAY, &k)
            .into_iter()
            .map(|a| match a {
                Action::Delete { version, .. } => version.unwrap().0,
                Action::Abort { .. } => 0,
            })
            .collect();
        // Version 3 is the one kept; version 2 became noncurrent at day 9 (not due
        // until 11), version 1 at day 1.
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(plan_key(&r, clock, 10 * DAY, &k).len(), 1);
    }

    #[test]
    fn a_sole_delete_marker_goes_and_a_current_object_gets_its_marker() {
        let clock = Clock::new(Some(1));
        let eodm = rules(
            "<Rule><ID>d</ID><Prefix/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>",
        );
        let marker = ScannedKey { key: "k".into(), versions: vec![version(5, 7, 0, true)] };
        assert_eq!(
            plan_key(&eodm, clock, 1, &marker),
            vec![Action::Delete { key: "k".into(), version: Some(VersionId(5)), guard: Guard { seq: 7, sole: true } }]
        );
        let with_old = ScannedKey { key: "k".into(), versions: vec![version(5, 7, 0, true), version(4, 6, 0, false)] };
        assert!(plan_key(&eodm, clock, 1, &with_old).is_empty());
        let days =
            rules("<Rule><ID>e</ID><Prefix/><Status>Enabled</Status><Expiration><Days>5</Days></Expiration></Rule>");
        assert!(plan_key(&days, clock, 4 * DAY, &marker).is_empty());
        assert_eq!(plan_key(&days, clock, 5 * DAY, &marker).len(), 1);
        let object = ScannedKey { key: "k".into(), versions: vec![version(5, 7, 0, false)] };
        assert_eq!(
            plan_key(&days, clock, 5 * DAY, &object),
            vec![Action::Delete { key: "k".into(), version: None, guard: Guard { seq: 7, sole: false } }]
        );
        let disabled =
            rules("<Rule><ID>e</ID><Prefix/><Status>Disabled</Status><Expiration><Days>5</Days></Expiration></Rule>");
        assert!(plan_key(&disabled, clock, 50 * DAY, &object).is_empty());
    }
}
