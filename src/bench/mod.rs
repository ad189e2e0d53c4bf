//! `kaligon bench`: a load generator for any S3 endpoint.
//!
//! It runs on the node's own runtime, one pinned compio (io_uring) thread per `--threads`,
//! with `--concurrency` keep-alive HTTP/1.1 connections spread over them, each sending one
//! SigV4-signed request at a time (closed loop). Bodies are generated once per size and are
//! deterministic per key, so `--verify` can check every GET byte for byte. It reports ops/s,
//! MiB/s, latency and time-to-first-byte percentiles, errors by S3 code, and a per-second
//! timeline, on stdout and optionally as JSON (`--json FILE`) and CSV (`--csv FILE`).
//! `--compare URL2` runs the same workload against a second endpoint in alternating rounds
//! and reports the ratio of the medians.
//!
//! `--null` sends plain unsigned requests to `--path` instead, to measure an HTTP server (or
//! this tool) without S3 in the way.

#[cfg(test)]
mod against_node;
mod body;
mod client;
pub mod engine;
mod hist;
mod report;
mod worker;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use body::{SizeSpec, Sizes};
use client::{Conn, Payload, Sink, error_code};
use worker::{KeyPick, OpKind, Phase, Plan, Target, ThreadStats};

use crate::auth::sign::{self, RequestToSign, Signer};
use crate::engine::types::ChecksumAlgo;

/// The largest object a single PUT may carry in S3 ("Uploading objects": 5 GB).
const OBJECT_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Parts of one multipart upload at most (S3's limit).
const PARTS_MAX: u64 = 10_000;
/// Objects pre-uploaded by default: about this many bytes, at least one per connection, at
/// most `PRELOAD_OBJECTS_MAX`.
const PRELOAD_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
const PRELOAD_OBJECTS_MAX: u64 = 1000;

/// `kaligon bench` options.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The S3 endpoint (http only), e.g. http://127.0.0.1:9000.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Access key [default: $KALIGON_ACCESS_KEY, else $AWS_ACCESS_KEY_ID].
    #[arg(long)]
    pub access_key: Option<String>,
    /// Secret key [default: $KALIGON_SECRET_KEY, else $AWS_SECRET_ACCESS_KEY].
    #[arg(long)]
    pub secret_key: Option<String>,
    /// The region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The bucket to use; created unless --no-create.
    #[arg(long, default_value = "kaligon-bench")]
    pub bucket: String,
    /// Do not create the bucket.
    #[arg(long)]
    pub no_create: bool,
    /// Key prefix; object i is named PREFIX followed by i in 8 digits.
    #[arg(long, default_value = "kaligon-bench/")]
    pub prefix: String,
    /// What to do: put, get, mixed, delete, stat (HEAD), list (ListObjectsV2) or multipart
    /// (whole multipart uploads of --size objects in --part-size parts) [default: put; get
    /// with --null].
    #[arg(long, value_enum)]
    pub workload: Option<Workload>,
    /// Operation weights for --workload mixed, from get, put, stat, delete, list, multipart.
    #[arg(long, default_value = "get=70,put=30")]
    pub mix: String,
    /// Object size: a number of bytes, or with a unit (4KiB, 1MiB, 64MiB, 1GiB; KB/MB/GB are
    /// powers of 1000); or a distribution of sizes with weights, e.g. 4KiB:70,1MiB:25,64MiB:5
    /// (each key always gets the same size of it).
    #[arg(long, default_value = "4KiB", value_parser = body::parse_sizes)]
    pub size: SizeSpec,
    /// Part size of the multipart workload; the last part takes the rest.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Additional checksum of every PUT and part (x-amz-checksum-*, computed by this tool and
    /// checked by the server); GETs then ask for it (x-amz-checksum-mode) and --verify
    /// compares it.
    #[arg(long, value_enum, default_value = "none")]
    pub checksum: ChecksumChoice,
    /// Objects in the key space. get, stat, mixed, delete and list upload them first (not
    /// timed); put overwrites random ones of them (without it, every put writes a new key).
    /// [default: about 256 MiB of objects, at most 1000 but at least one per connection; delete: --ops]
    #[arg(long)]
    pub objects: Option<u64>,
    /// Skip the upload before get, stat, mixed, delete and list: the objects already exist
    /// from an earlier run with the same --prefix, --objects and --size.
    #[arg(long)]
    pub no_preload: bool,
    /// Connections in total, spread over the threads; each has one request in flight.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Threads, each pinned to a core with its own io_uring runtime [default: cores].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Open loop: start this many operations per second in total, on schedule, whether or not
    /// earlier ones have been answered; latency counts from each operation's scheduled time
    /// (no coordinated omission). Without it, closed loop: each connection sends its next
    /// request when the last one is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to run (10s, 500ms, 2m) [default: 10s unless --ops].
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many operations (with --duration: whichever comes first).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Compare every GET body with what was written.
    #[arg(long)]
    pub verify: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the results as CSV to this file: one row per endpoint, round and operation.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// A second endpoint: run the same workload against both in alternating rounds (A B, B A,
    /// …) and report medians and the ratio second/first, so a noisy machine still compares
    /// fairly. Each endpoint gets its own bucket setup and preload.
    #[arg(long)]
    pub compare: Option<String>,
    /// Access key of the --compare endpoint [default: the first endpoint's].
    #[arg(long)]
    pub compare_access_key: Option<String>,
    /// Secret key of the --compare endpoint [default: the first endpoint's].
    #[arg(long)]
    pub compare_secret_key: Option<String>,
    /// Measured rounds per endpoint with --compare.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Sign `UNSIGNED-PAYLOAD` instead of each body's SHA-256.
    #[arg(long)]
    pub unsigned_payload: bool,
    /// Null mode: plain unsigned HTTP requests to --path (GET, or PUT for --workload put),
    /// no bucket, no S3.
    #[arg(long)]
    pub null: bool,
    /// The request path of null mode.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// max-keys of each list request.
    #[arg(long, default_value_t = 1000)]
    pub list_max_keys: u32,
    /// A request taking longer than this counts as transport:timeout and its connection is
    /// replaced; 0 for no limit.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not pin threads to cores.
    #[arg(long)]
    pub no_pin: bool,
}

impl BenchArgs {
    /// The `--workload` name.
    pub fn workload_name(&self) -> &'static str {
        self.workload().name()
    }

    /// `--workload`, by default put (get in null mode).
    pub fn workload(&self) -> Workload {
        self.workload.unwrap_or(if self.null { Workload::Get } else { Workload::Put })
    }
}

/// The workloads of `--workload`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Put,
    Get,
    Mixed,
    Delete,
    Stat,
    List,
    Multipart,
}

/// The choices of `--checksum`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumChoice {
    None,
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

impl ChecksumChoice {
    pub fn algorithm(self) -> Option<ChecksumAlgo> {
        match self {
            ChecksumChoice::None => None,
            ChecksumChoice::Crc32 => Some(ChecksumAlgo::Crc32),
            ChecksumChoice::Crc32c => Some(ChecksumAlgo::Crc32c),
            ChecksumChoice::Crc64nvme => Some(ChecksumAlgo::Crc64Nvme),
            ChecksumChoice::Sha1 => Some(ChecksumAlgo::Sha1),
            ChecksumChoice::Sha256 => Some(ChecksumAlgo::Sha256),
        }
    }
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Delete => "delete",
            Workload::Stat => "stat",
            Workload::List => "list",
            Workload::Multipart => "multipart",
        }
    }
}

/// Why a bench could not run, or what went wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {endpoint}: {source}")]
    Resolve { endpoint: String, source: std::io::Error },
    #[error("cannot start the bench threads: {0}")]
    Threads(std::io::Error),
    #[error("cannot create bucket {bucket}: {reason}")]
    CreateBucket { bucket: String, reason: String },
    #[error("the upload before the run failed: {0}")]
    Preload(String),
    #[error("cannot write {path}: {source}")]
    Json { path: PathBuf, source: std::io::Error },
    #[error("{failed} of {total} requests failed (see the summary)")]
    RequestsFailed { failed: u64, total: u64 },
}

/// Parses `4096`, `4KiB`, `1MiB`, `64M`, `1GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("'{text}' is not a size like 4KiB or 1MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit '{other}' (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("'{text}' is not a duration like 10s or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit '{other}' (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is not a valid duration"))
}

/// Parses `get=70,put=30`.
pub fn parse_mix(text: &str) -> Result<Vec<(OpKind, u32)>, String> {
    let mut mix: Vec<(OpKind, u32)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, weight) = item.split_once('=').ok_or_else(|| format!("mix item '{item}' is not op=weight"))?;
        let kind = OpKind::from_name(name.trim())
            .ok_or_else(|| format!("unknown operation '{name}' in --mix (use get, put, stat, delete, list)"))?;
        let weight: u32 = weight.trim().parse().map_err(|_| format!("weight '{weight}' in --mix is not a number"))?;
        if mix.iter().any(|(k, _)| *k == kind) {
            return Err(format!("'{name}' appears twice in --mix"));
        }
        if weight > 0 {
            mix.push((kind, weight));
        }
    }
    if mix.is_empty() {
        return Err("--mix needs at least one operation with a weight above 0".to_owned());
    }
    Ok(mix)
}

/// `http://host[:port][/]` → (address to connect to, `Host` header value).
fn parse_endpoint(endpoint: &str) -> Result<(SocketAddr, String), Error> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| Error::Usage(format!("--endpoint {endpoint}: only http:// endpoints are supported (no TLS)")))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains('/') {
        return Err(Error::Usage(format!("--endpoint {endpoint}: expected http://host[:port] without a path")));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    let with_port = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|source| Error::Resolve { endpoint: endpoint.to_owned(), source })?
        .next()
        .ok_or_else(|| Error::Resolve {
            endpoint: endpoint.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    Ok((addr, authority.to_owned()))
}

fn credential(flag: &Option<String>, names: [&str; 2]) -> Option<String> {
    flag.clone().or_else(|| names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty())))
}

/// The settled configuration of a run, as reported.
pub struct Settings {
    pub args: BenchArgs,
    pub threads: usize,
    pub connections: Vec<usize>,
    pub mix: Vec<(OpKind, u32)>,
    pub objects: Option<u64>,
    pub duration: Option<Duration>,
}

fn settle(args: &BenchArgs) -> Result<Settings, Error> {
    if args.concurrency == 0 {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    if args.size.largest() > OBJECT_BYTES_MAX {
        return Err(Error::Usage(format!(
            "--size {} is above the 5 GiB a single PUT may carry (and this tool holds in memory)",
            args.size.largest()
        )));
    }
    if args.ops == Some(0) {
        return Err(Error::Usage("--ops must be at least 1".into()));
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = args.threads.unwrap_or(cores).clamp(1, args.concurrency);
    let connections: Vec<usize> =
        (0..threads).map(|t| args.concurrency / threads + usize::from(t < args.concurrency % threads)).collect();
    let mix = match args.workload() {
        Workload::Mixed => parse_mix(&args.mix).map_err(Error::Usage)?,
        w => vec![(OpKind::from_name(w.name()).expect("plain workloads are operation names"), 1)],
    };
    if args.null && !matches!(args.workload(), Workload::Get | Workload::Put) {
        return Err(Error::Usage("--null supports --workload get and put only".into()));
    }
    if args.null && !args.path.starts_with('/') {
        return Err(Error::Usage("--path must start with '/'".into()));
    }
    if args.null && args.size.single().is_none() {
        return Err(Error::Usage("--null takes a single --size".into()));
    }
    if mix.iter().any(|(k, _)| *k == OpKind::Multipart) {
        if args.part_size == 0 {
            return Err(Error::Usage("--part-size must be at least 1 byte".into()));
        }
        if args.size.largest().div_ceil(args.part_size) > PARTS_MAX {
            return Err(Error::Usage(format!(
                "--size {} in parts of {} makes more than the {PARTS_MAX} parts S3 allows",
                args.size.largest(),
                args.part_size
            )));
        }
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(Error::Usage("--rate must be a positive number of operations per second".into()));
    }
    // At least one object per connection, even past PRELOAD_OBJECTS_MAX (clamp would panic).
    let auto_objects =
        (PRELOAD_BYTES_DEFAULT / args.size.mean().max(1)).min(PRELOAD_OBJECTS_MAX).max(args.concurrency as u64);
    let objects = match (args.workload(), args.objects) {
        (_, Some(0)) => return Err(Error::Usage("--objects must be at least 1".into())),
        (_, Some(n)) => Some(n),
        (_, None) if args.null => None,
        (Workload::Put | Workload::Multipart, None) => None,
        (Workload::Delete, None) => Some(args.ops.unwrap_or(auto_objects)),
        (_, None) => Some(auto_objects),
    };
    let duration = match (args.duration, args.ops) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    Ok(Settings { args: args.clone(), threads, connections, mix, objects, duration })
}

/// The keys of an endpoint: flags, then the environment.
fn credentials(args: &BenchArgs) -> Result<(String, String), Error> {
    if args.null {
        return Ok((String::new(), String::new()));
    }
    let access = credential(&args.access_key, ["KALIGON_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]);
    let secret = credential(&args.secret_key, ["KALIGON_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]);
    match (access, secret) {
        (Some(a), Some(s)) => Ok((a, s)),
        _ => Err(Error::Usage(
            "no credentials: pass --access-key and --secret-key, or set KALIGON_ACCESS_KEY and \
             KALIGON_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                .into(),
        )),
    }
}

/// Connects the workload to one endpoint: creates the bucket and uploads the objects the
/// workload reads (neither is timed).
fn prepare(settings: &Settings, endpoint: &str, keys: (String, String)) -> Result<Arc<Target>, Error> {
    let args = &settings.args;
    let (addr, host) = parse_endpoint(endpoint)?;
    let target = Arc::new(Target {
        addr,
        host,
        bucket: args.bucket.clone(),
        prefix: args.prefix.clone(),
        access_key: keys.0,
        secret_key: keys.1,
        region: args.region.clone(),
        unsigned_payload: args.unsigned_payload,
        verify: args.verify,
        null_path: args.null.then(|| args.path.clone()),
        list_max_keys: args.list_max_keys,
        request_timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        sizes: Sizes::new(
            &args.size,
            args.checksum.algorithm(),
            settings.mix.iter().any(|(k, _)| *k == OpKind::Multipart).then_some(args.part_size as usize),
        ),
        checksum: args.checksum.algorithm(),
    });
    if !args.null {
        if !args.no_create {
            create_bucket(&target)?;
        }
        let writes_only = matches!(args.workload(), Workload::Put | Workload::Multipart);
        if let (Some(count), false, false) = (settings.objects, writes_only, args.no_preload) {
            preload(&target, settings, count, !args.no_pin)?;
        }
    }
    Ok(target)
}

/// One timed run of the workload against a prepared endpoint.
fn measure(settings: &Settings, target: &Arc<Target>) -> Result<(ThreadStats, bool), Error> {
    let args = &settings.args;
    let keys = match (args.workload(), settings.objects) {
        (Workload::Put | Workload::Multipart, None) => KeyPick::Sequential { count: None },
        (Workload::Delete, count) => KeyPick::Sequential { count },
        (_, count) => KeyPick::Random { count: count.unwrap_or(1) },
    };
    let plan = Plan { mix: settings.mix.clone(), keys, ops: args.ops, duration: settings.duration, rate: args.rate };
    let phase = Arc::new(Phase::new(target.clone(), plan, settings.threads));
    let per_thread = run_with_progress(&phase, &settings.connections, !args.no_pin)?;
    let mut total = ThreadStats::default();
    for t in &per_thread {
        total.merge(t);
    }
    Ok((total, phase.keys_exhausted.load(Ordering::Relaxed)))
}

fn write_file(path: &PathBuf, text: String) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Json { path: path.clone(), source })
}

/// Fails the run if any request failed.
fn check_failures<'a>(totals: impl Iterator<Item = &'a ThreadStats>) -> Result<(), Error> {
    let (mut failed, mut ok) = (0, 0);
    for total in totals {
        failed += total.ops.iter().map(|o| o.error_count()).sum::<u64>();
        ok += total.ops.iter().map(|o| o.ok).sum::<u64>();
    }
    if failed > 0 {
        return Err(Error::RequestsFailed { failed, total: failed + ok });
    }
    Ok(())
}

/// Runs `kaligon bench`: prints the summary, writes the JSON and CSV, and fails if any
/// request did.
pub fn run(args: BenchArgs) -> Result<(), Error> {
    let settings = settle(&args)?;
    let keys = credentials(&args)?;
    if let Some(second) = &args.compare {
        return compare(&settings, keys, second);
    }
    let target = prepare(&settings, &args.endpoint, keys)?;
    let started_unix = unix_now();
    let (total, exhausted) = measure(&settings, &target)?;
    print!("{}", report::summary(&settings, &total, exhausted));
    if let Some(path) = &args.json {
        write_file(path, report::json(&settings, &total, started_unix, exhausted))?;
    }
    if let Some(path) = &args.csv {
        let mut csv = report::CSV_HEADER.to_owned();
        report::csv_rows(&mut csv, &args.endpoint, 1, &total);
        write_file(path, csv)?;
    }
    check_failures(std::iter::once(&total))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `--compare`: alternating rounds against two endpoints, then medians and ratios.
fn compare(settings: &Settings, keys: (String, String), second: &str) -> Result<(), Error> {
    let args = &settings.args;
    if args.rounds == 0 {
        return Err(Error::Usage("--rounds must be at least 1".into()));
    }
    let second_keys = (
        args.compare_access_key.clone().unwrap_or_else(|| keys.0.clone()),
        args.compare_secret_key.clone().unwrap_or_else(|| keys.1.clone()),
    );
    let endpoints = [args.endpoint.as_str(), second];
    let targets = [prepare(settings, endpoints[0], keys)?, prepare(settings, endpoints[1], second_keys)?];
    let started_unix = unix_now();
    let mut runs: Vec<report::Round> = Vec::new();
    for round in 1..=args.rounds {
        // A B, then B A: neither endpoint always runs on a warmer (or more tired) machine.
        let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for e in order {
            let (total, _) = measure(settings, &targets[e])?;
            let line = report::round_line(endpoints[e], round, &total);
            println!("{line}");
            runs.push(report::Round { endpoint: e, round, total });
        }
    }
    print!("{}", report::compare_summary(settings, &endpoints, &runs));
    if let Some(path) = &args.json {
        write_file(path, report::compare_json(settings, &endpoints, &runs, started_unix))?;
    }
    if let Some(path) = &args.csv {
        let mut csv = report::CSV_HEADER.to_owned();
        for r in &runs {
            report::csv_rows(&mut csv, endpoints[r.endpoint], r.round, &r.total);
        }
        write_file(path, csv)?;
    }
    check_failures(runs.iter().map(|r| &r.total))
}

/// Runs a phase; on a terminal, shows one progress line on stderr, updated every second.
fn run_with_progress(phase: &Arc<Phase>, connections: &[usize], pin: bool) -> Result<Vec<ThreadStats>, Error> {
    let tty = std::io::stderr().is_terminal();
    let runner = {
        let phase = phase.clone();
        let connections = connections.to_vec();
        std::thread::Builder::new()
            .name("kaligon-bench".into())
            .spawn(move || worker::run_phase(&phase, &connections, pin))
            .map_err(Error::Threads)?
    };
    let start = Instant::now();
    let mut last = (start, 0u64, 0u64);
    let mut shown = false;
    while !runner.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        if !tty || last.0.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let ops: u64 = phase.progress.iter().map(|p| p.ops.load(Ordering::Relaxed)).sum();
        let bytes: u64 = phase.progress.iter().map(|p| p.bytes.load(Ordering::Relaxed)).sum();
        let errors: u64 = phase.progress.iter().map(|p| p.errors.load(Ordering::Relaxed)).sum();
        let now = Instant::now();
        let secs = now.duration_since(last.0).as_secs_f64();
        eprint!(
            "\r\x1b[K{:>5.0} s  {:>10.1} ops/s  {:>9.2} MiB/s  {ops} ops  {errors} errors",
            now.duration_since(start).as_secs_f64(),
            (ops - last.1) as f64 / secs,
            (bytes - last.2) as f64 / secs / 1048576.0,
        );
        shown = true;
        last = (now, ops, bytes);
    }
    if shown {
        eprint!("\r\x1b[K");
    }
    runner.join().expect("bench runner panicked").map_err(Error::Threads)
}

/// Uploads objects 0..count (not timed); any failure stops the bench.
fn preload(target: &Arc<Target>, settings: &Settings, count: u64, pin: bool) -> Result<(), Error> {
    eprintln!(
        "kaligon bench: uploading {count} objects of {} to bucket {} under prefix {} first",
        report::sizes_text(&settings.args.size),
        target.bucket,
        target.prefix
    );
    let plan = Plan {
        mix: vec![(OpKind::Put, 1)],
        keys: KeyPick::Sequential { count: Some(count) },
        ops: None,
        duration: None,
        rate: None,
    };
    let phase = Arc::new(Phase::new(target.clone(), plan, settings.threads));
    let per_thread = run_with_progress(&phase, &settings.connections, pin)?;
    let mut total = ThreadStats::default();
    for t in &per_thread {
        total.merge(t);
    }
    let put = &total.ops[0];
    if put.error_count() > 0 {
        let errors: Vec<String> = put.errors.iter().map(|(code, n)| format!("{code} ×{n}")).collect();
        return Err(Error::Preload(format!("{} of {count} uploads failed: {}", put.error_count(), errors.join(", "))));
    }
    Ok(())
}

/// Creates the bucket; one that exists and is ours is fine.
fn create_bucket(target: &Target) -> Result<(), Error> {
    let fail = |reason: String| Error::CreateBucket { bucket: target.bucket.clone(), reason };
    let rt = compio::runtime::Runtime::new().map_err(|e| fail(format!("no io_uring runtime: {e}")))?;
    let (status, code) = rt
        .block_on(async {
            let mut conn = Conn::connect(target.addr, 64 * 1024).await?;
            let body = if target.region == "us-east-1" {
                String::new()
            } else {
                format!(
                    "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                    target.region
                )
            };
            let unix =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let date = sign::amz_date(unix);
            let mut path = String::from("/");
            sign::uri_encode(&target.bucket, false, &mut path);
            let payload = sign::payload_sha256_hex(body.as_bytes());
            let headers = [("host", target.host.as_str()), ("x-amz-content-sha256", &payload), ("x-amz-date", &date)];
            let authorization = Signer::new(&target.access_key, &target.secret_key, &target.region).authorization(
                &RequestToSign { method: "PUT", raw_path: &path, raw_query: "", headers: &headers, payload: &payload, amz_date: &date },
            );
            let mut head = format!("PUT {path} HTTP/1.1\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!("authorization: {authorization}\r\ncontent-length: {}\r\n\r\n{body}", body.len()));
            let mut sink_for = |status| if status < 300 { Sink::Discard } else { Sink::Capture(Vec::new()) };
            let (_, response) = conn.exchange(head.into_bytes(), Payload::None, false, false, &mut sink_for).await?;
            let code = match &response.sink {
                Sink::Capture(body) => error_code(body).map(str::to_owned),
                _ => None,
            };
            Ok::<_, client::Transport>((response.status, code))
        })
        .map_err(|e| fail(e.label()))?;
    match (status, code.as_deref()) {
        (200..=299, _) | (_, Some("BucketAlreadyOwnedByYou")) => Ok(()),
        (status, code) => Err(fail(format!("HTTP {status} {}", code.unwrap_or("")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn mixes() {
        assert_eq!(parse_mix("get=70,put=30"), Ok(vec![(OpKind::Get, 70), (OpKind::Put, 30)]));
        assert_eq!(parse_mix(" stat=1 , delete=0,list=2"), Ok(vec![(OpKind::Stat, 1), (OpKind::List, 2)]));
        assert!(parse_mix("get=70,get=30").is_err());
        assert!(parse_mix("copy=1").is_err());
        assert!(parse_mix("get").is_err());
        assert!(parse_mix("get=0").is_err());
    }

    #[test]
    fn endpoints() {
        let (addr, host) = parse_endpoint("http://127.0.0.1:9400").unwrap();
        assert_eq!(addr, "127.0.0.1:9400".parse().unwrap());
        assert_eq!(host, "127.0.0.1:9400");
        let (addr, host) = parse_endpoint("http://127.0.0.1/").unwrap();
        assert_eq!(addr.port(), 80);
        assert_eq!(host, "127.0.0.1");
        assert!(parse_endpoint("https://127.0.0.1").is_err());
        assert!(parse_endpoint("http://127.0.0.1:9000/prefix").is_err());
    }
}
