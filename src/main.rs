//! `kaligon`: argv → Config → run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kaligon::config::{Config, ServeArgs};

#[derive(Parser)]
#[command(name = "kaligon", version, about = "S3-compatible object storage node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Serve(ServeArgs),
    /// Measure an S3 endpoint (this node or any other) with a load generator.
    Bench(kaligon::bench::BenchArgs),
    /// Measure the storage engine alone (no HTTP) on a fresh data directory.
    BenchEngine(kaligon::bench::engine::EngineArgs),
    /// Print the per-bucket meter (JSON) from the data directories' last
    /// checkpoints, without a running node.
    Usage(UsageArgs),
    /// Offline scrub of a stopped node's data: reads every record and
    /// object back, checks checksums and the index; prints a JSON report
    /// and exits 1 when anything is damaged.
    Check(CheckArgs),
    /// Write every bucket and object of a stopped node as plain files with
    /// a manifest (docs/FORMAT.md); resumable, verified while writing.
    Export(ExportArgs),
    /// Load an export into a node's data directories, keeping version ids,
    /// times, ETags and metadata.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Data directory (repeat once per drive, as for `serve`).
    #[arg(long, required = true)]
    data: Vec<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Data directory (repeat once per drive, as for `serve`).
    #[arg(long, required = true)]
    data: Vec<std::path::PathBuf>,
    /// Where to write (created; an interrupted export into it goes on).
    #[arg(long)]
    to: std::path::PathBuf,
    /// Only this bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// Every version and delete marker, not only each key's current version.
    #[arg(long)]
    all_versions: bool,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// A directory written by `kaligon export`.
    #[arg(long)]
    from: std::path::PathBuf,
    /// Data directory to load into (repeat once per drive).
    #[arg(long, required = true)]
    data: Vec<std::path::PathBuf>,
    /// Shards of new data directories (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Size of the segment files it creates (default: as for `serve`).
    #[arg(long)]
    segment_bytes: Option<u64>,
}

/// Prints an offline tool's JSON report; `damage` (what was found) makes
/// the exit status 1 with that said on stderr.
fn report(tool: &str, r: &impl serde::Serialize, damage: Option<String>) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    match damage {
        Some(d) => Err(format!("{tool}: {d}")),
        None => Ok(()),
    }
}

#[derive(clap::Args)]
struct UsageArgs {
    /// Data directory (repeat once per drive, as for `serve`).
    #[arg(long, required = true)]
    data: Vec<std::path::PathBuf>,
    /// Count from the start of this hour on (e.g. 2026-12-07T10:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Only this bucket.
    #[arg(long)]
    bucket: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KALIGON_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            Config::load(&args).map_err(|e| e.to_string()).and_then(|c| kaligon::serve(c).map_err(|e| e.to_string()))
        }
        Command::Bench(args) => kaligon::bench::run(args).map_err(|e| format!("bench: {e}")),
        Command::BenchEngine(args) => kaligon::bench::engine::run(args).map_err(|e| format!("bench-engine: {e}")),
        Command::Usage(a) => kaligon::s3::meter::usage_offline(a.data, a.since.as_deref(), a.bucket.as_deref())
            .map(|json| println!("{json}"))
            .map_err(|e| format!("usage: {e}")),
        Command::Check(a) => {
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            kaligon::offline::check::run(a.data, progress).map_err(|e| format!("check: {e}")).and_then(|r| {
                let damage = (!r.is_clean())
                    .then(|| format!("{} damaged, {} damaged checkpoints", r.damaged.len(), r.damaged_checkpoints));
                report("check", &r, damage)
            })
        }
        Command::Export(a) => {
            let args = kaligon::offline::export::ExportArgs {
                data: a.data,
                to: a.to,
                bucket: a.bucket,
                all_versions: a.all_versions,
            };
            kaligon::offline::export::run(args).map_err(|e| format!("export: {e}")).and_then(|r| {
                let damage = (r.damaged > 0)
                    .then(|| format!("{} damaged versions were not written (see damaged.jsonl)", r.damaged));
                report("export", &r, damage)
            })
        }
        Command::Import(a) => {
            let args = kaligon::offline::import::ImportArgs {
                from: a.from,
                data: a.data,
                shards: a.shards,
                segment_bytes: a.segment_bytes,
            };
            kaligon::offline::import::run(args)
                .map_err(|e| format!("import: {e}"))
                .and_then(|r| report("import", &r, None))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaligon: {e}");
            ExitCode::FAILURE
        }
    }
}
