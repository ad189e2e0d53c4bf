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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaligon: {e}");
            ExitCode::FAILURE
        }
    }
}
