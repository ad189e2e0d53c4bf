//! Every knob and limit of the node, in one place. Defaults are explained in
//! `tuning/README.md`. Names put the unit last: `segment_bytes`,
//! `checkpoint_interval_ms`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Whether a write waits for fdatasync before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge only what is on stable storage (the default; the contract).
    Strict,
    /// Skip fdatasync: for experiments only, a crash may lose acknowledged writes.
    Relaxed,
}

/// The whole configuration (a TOML file may set any field; flags win).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data: Vec<PathBuf>,
    pub listen: SocketAddr,
    pub region: String,
    pub shards: usize,
    pub users: Option<PathBuf>,
    /// Base domain for virtual-hosted–style requests (`bucket.<domain>`).
    pub domain: Option<String>,
    pub durability: Durability,

    // Engine
    pub segment_bytes: u64,
    pub segment_spares: usize,
    /// Reclaimed segment files a shard keeps to write into again.
    pub segment_reuse_max: usize,
    pub checkpoint_interval_ms: u64,
    pub checkpoint_bytes: u64,
    /// A shard compacts once its sealed segments (all but one) hold less
    /// live data than this share of their room, or a segment less than a
    /// quarter of it; disk use under overwrites stays within about 1/ratio of
    /// live data plus a few segments per shard.
    pub compaction_live_ratio: f64,

    // Lifecycle
    /// Test knob: one lifecycle "day" lasts this many seconds, due times do
    /// not round to day boundaries, and the worker passes at least every
    /// quarter of it (like Ceph's rgw_lc_debug_interval). Never in production.
    pub lifecycle_day_secs: Option<u64>,
    /// Time between the starts of two lifecycle passes over a shard's keys.
    pub lifecycle_interval_ms: u64,

    // HTTP limits
    pub header_bytes_max: usize,
    pub header_count_max: usize,
    pub connections_max: usize,
    /// Requests one core serves at once; more get 503 SlowDown with
    /// Retry-After (bounding queues and the memory of request bodies).
    pub requests_max_per_core: usize,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub body_read_timeout_ms: u64,

    // Behind a load balancer
    /// Expect a PROXY protocol (v1 or v2) header on every connection from a
    /// trusted proxy, and take the client's address from it.
    pub proxy_protocol: bool,
    /// Addresses (CIDR) whose PROXY headers and X-Forwarded-For/-Proto are
    /// believed; nobody else's are.
    pub trusted_proxies: Vec<crate::http::proxy::Cidr>,
    /// Where to write one JSON line per request (`-`: stdout); none: off.
    pub access_log: Option<PathBuf>,
    /// Batches (up to 64 KiB of lines each) the access log may hold waiting
    /// for its writer; past that, lines are dropped (and counted) rather
    /// than slowing requests.
    pub access_log_queue_batches: usize,
    /// Serve `GET /admin/metrics` to anyone (for a Prometheus scraper);
    /// otherwise only to the administrator's signed requests.
    pub metrics_public: bool,

    // S3 limits (AWS's values)
    pub key_bytes_max: usize,
    pub user_metadata_bytes_max: usize,
    pub put_bytes_max: u64,
    pub delete_objects_keys_max: usize,
    pub list_keys_max: usize,
    pub clock_skew_max_s: i64,
    /// Smallest part a multipart upload may have, except its last.
    pub part_bytes_min: u64,
    pub part_bytes_max: u64,
    pub parts_max: u32,
    /// Largest object a multipart upload may make.
    pub object_bytes_max: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: vec![PathBuf::from("kaligon-data")],
            listen: "127.0.0.1:9000".parse().expect("valid default address"),
            region: "us-east-1".into(),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            users: None,
            domain: None,
            durability: Durability::Strict,
            segment_bytes: 256 << 20,
            segment_spares: 1,
            segment_reuse_max: 16,
            checkpoint_interval_ms: 60_000,
            checkpoint_bytes: 1 << 30,
            compaction_live_ratio: 0.5,
            lifecycle_day_secs: None,
            lifecycle_interval_ms: 600_000,
            header_bytes_max: 64 << 10,
            header_count_max: 128,
            connections_max: 4096,
            requests_max_per_core: 512,
            header_read_timeout_ms: 30_000,
            idle_timeout_ms: 75_000,
            body_read_timeout_ms: 60_000,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            access_log: None,
            access_log_queue_batches: 1024,
            metrics_public: false,
            key_bytes_max: 1024,
            user_metadata_bytes_max: 2048,
            put_bytes_max: 5 << 30,
            delete_objects_keys_max: 1000,
            list_keys_max: 1000,
            clock_skew_max_s: 15 * 60,
            part_bytes_min: 5 << 20,
            part_bytes_max: 5 << 30,
            parts_max: 10_000,
            object_bytes_max: 5 << 40,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// `kaligon serve` flags; any flag given overrides the config file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Data directory (repeat once per drive). Default: ./kaligon-data
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Address to listen on. Default: 127.0.0.1:9000
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Region the node answers for. Default: us-east-1
    #[arg(long)]
    pub region: Option<String>,
    /// Number of shards (one per core by default).
    #[arg(long)]
    pub shards: Option<usize>,
    /// TOML file with any of the settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TOML file with extra users.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Base domain for virtual-hosted–style bucket addressing.
    #[arg(long)]
    pub domain: Option<String>,
    /// strict (default): fdatasync before acknowledging; relaxed: experiments only.
    #[arg(long, value_enum)]
    pub durability: Option<Durability>,
    /// Size of each segment file in bytes.
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Reclaimed segment files each shard keeps to write into again.
    #[arg(long)]
    pub segment_reuse_max: Option<usize>,
    /// Checkpoint interval in milliseconds.
    #[arg(long)]
    pub checkpoint_interval_ms: Option<u64>,
    /// Log bytes written between checkpoints.
    #[arg(long)]
    pub checkpoint_bytes: Option<u64>,
    /// Test knob: a lifecycle "day" lasts this many seconds (no rounding to
    /// midnight; the worker runs at least every quarter of it).
    #[arg(long)]
    pub lifecycle_day_secs: Option<u64>,
    /// Milliseconds between lifecycle passes. Default: 600000
    #[arg(long)]
    pub lifecycle_interval_ms: Option<u64>,
    /// Keep-alive idle timeout in ms; keep it above the load balancer's
    /// (HAProxy `timeout http-keep-alive`, nginx `keepalive_timeout`). Default: 75000
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Time a client has to send a whole request head, in ms. Default: 30000
    #[arg(long)]
    pub header_read_timeout_ms: Option<u64>,
    /// Time a request body may stall between reads, in ms. Default: 60000
    #[arg(long)]
    pub body_read_timeout_ms: Option<u64>,
    /// Open connections at most (all cores together); more are closed at once. Default: 4096
    #[arg(long)]
    pub connections_max: Option<usize>,
    /// Requests one core serves at once; more are answered 503 SlowDown. Default: 512
    #[arg(long)]
    pub requests_max_per_core: Option<usize>,
    /// Expect a PROXY protocol v1/v2 header on connections from --trusted-proxy addresses.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// A proxy (CIDR, repeatable) whose PROXY headers and X-Forwarded-For/-Proto are believed.
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<crate::http::proxy::Cidr>,
    /// Write one JSON line per request to this file (`-`: stdout).
    #[arg(long)]
    pub access_log: Option<PathBuf>,
    /// Serve GET /admin/metrics without authentication (for Prometheus).
    #[arg(long)]
    pub metrics_public: bool,
}

impl Config {
    pub fn load(args: &ServeArgs) -> Result<Self, Error> {
        let mut c = match &args.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.clone(), source })?;
                toml::from_str(&text).map_err(|source| Error::Parse { path: path.clone(), source })?
            }
            None => Config::default(),
        };
        if !args.data.is_empty() {
            c.data = args.data.clone();
        }
        macro_rules! flag {
            ($($f:ident),*) => { $( if let Some(v) = &args.$f { c.$f = v.clone(); } )* };
        }
        flag!(
            listen,
            region,
            shards,
            durability,
            segment_bytes,
            segment_reuse_max,
            checkpoint_interval_ms,
            checkpoint_bytes,
            lifecycle_interval_ms,
            idle_timeout_ms,
            header_read_timeout_ms,
            body_read_timeout_ms,
            connections_max,
            requests_max_per_core
        );
        if args.proxy_protocol {
            c.proxy_protocol = true;
        }
        if !args.trusted_proxies.is_empty() {
            c.trusted_proxies = args.trusted_proxies.clone();
        }
        if args.metrics_public {
            c.metrics_public = true;
        }
        if args.access_log.is_some() {
            c.access_log = args.access_log.clone();
        }
        if args.lifecycle_day_secs.is_some() {
            c.lifecycle_day_secs = args.lifecycle_day_secs;
        }
        if args.users.is_some() {
            c.users = args.users.clone();
        }
        if args.domain.is_some() {
            c.domain = args.domain.clone();
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), Error> {
        let min_segment = 4 * crate::engine::segment::format::CHUNK_STRIDE_BYTES;
        if self.segment_bytes < min_segment || !self.segment_bytes.is_multiple_of(4096) {
            return Err(Error::Invalid(format!("segment_bytes must be a multiple of 4096 and at least {min_segment}")));
        }
        if !(0.0..=0.95).contains(&self.compaction_live_ratio) {
            return Err(Error::Invalid("compaction_live_ratio must be between 0 and 0.95".into()));
        }
        if self.requests_max_per_core == 0 {
            return Err(Error::Invalid("requests_max_per_core must be at least 1".into()));
        }
        if self.shards == 0 || self.shards > 1024 {
            return Err(Error::Invalid("shards must be between 1 and 1024".into()));
        }
        if self.lifecycle_day_secs == Some(0) || self.lifecycle_interval_ms == 0 {
            return Err(Error::Invalid("lifecycle_day_secs and lifecycle_interval_ms must be positive".into()));
        }
        if self.data.is_empty() {
            return Err(Error::Invalid("at least one data directory is needed".into()));
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(Error::Invalid("--proxy-protocol needs at least one --trusted-proxy".into()));
        }
        Ok(())
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn trusted(&self, addr: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(addr))
    }

    /// How often the lifecycle worker passes over a shard's keys.
    pub fn lifecycle_pass_interval(&self) -> std::time::Duration {
        let ms = match self.lifecycle_day_secs {
            Some(s) => self.lifecycle_interval_ms.min((s * 1000 / 4).max(100)),
            None => self.lifecycle_interval_ms,
        };
        std::time::Duration::from_millis(ms)
    }

    /// The directory of each shard: shards are spread over the data
    /// directories round-robin.
    pub fn shard_dirs(&self) -> Vec<PathBuf> {
        (0..self.shards).map(|i| self.data[i % self.data.len()].join(format!("shard-{i:03}"))).collect()
    }
}
