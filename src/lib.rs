//! Kaligon node: an S3-compatible object store, thread-per-core on io_uring.
//! Modules in data-path order.

/// SigV4 (header, presigned, streaming, trailers) and SigV2.
pub mod auth;
/// `kaligon bench`: an S3 load generator for any endpoint.
pub mod bench;
/// Every knob and limit.
pub mod config;
/// Shards, segments, index, checkpoints and recovery.
pub mod engine;
/// HTTP/1.1 heads, bodies (length, chunked, aws-chunked), responses, connections.
pub mod http;
/// Offline tools on a stopped node's data: check, export, import (docs/FORMAT.md).
pub mod offline;
/// Executors pinned per core, aligned buffers, node start-up and drain.
pub mod runtime;
/// S3 operations, routing, XML, and the one error table.
pub mod s3;

pub mod credentials;

/// Runs the node until SIGTERM or SIGINT, then drains it.
pub fn serve(config: config::Config) -> Result<(), Box<dyn std::error::Error>> {
    let signals = runtime::block_stop_signals();
    let users = credentials::load(&config)?;
    s3::access_log::start(&config)?;
    let node = runtime::Node::start(config, users)?;
    tracing::info!(addr = %node.addr, "kaligon node is serving");
    println!("kaligon: listening on http://{}", node.addr);
    runtime::wait_for_stop_signal(&signals);
    tracing::info!("stop signal received; draining");
    node.shutdown(std::time::Duration::from_secs(30));
    s3::access_log::flush();
    Ok(())
}
