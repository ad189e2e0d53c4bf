//! The access log: one JSON line per request (`--access-log FILE|-`),
//! written by a thread of its own. Each core gathers its lines in a buffer
//! and hands it over in batches (64 KiB, or every 200 ms, at the latest
//! within a second, and when a connection ends) to a bounded queue, never
//! waiting: when the writer falls behind (a slow disk, a blocked pipe)
//! batches are dropped and their lines counted, and the count is written as
//! a line of its own (`{"dropped_lines": N}`) once the writer catches up.
//! No line is synced; a crash may lose the last second of lines.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::config::Config;

/// One request, as logged.
#[derive(serde::Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub request_id: &'a str,
    /// The client (behind a trusted proxy: the address it reported).
    pub remote: Option<String>,
    /// The access key that signed the request (empty: anonymous or unauthenticated).
    pub user: &'a str,
    pub operation: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub status: u16,
    /// The S3 error code of an error answer.
    pub error: Option<&'a str>,
    /// Body bytes received (payload, after aws-chunked framing).
    pub bytes_in: u64,
    /// Object bytes sent.
    pub bytes_out: u64,
    /// From the parsed request head to the last byte of the answer written.
    pub latency_ms: f64,
    /// From the parsed request head to the answer's head handed to the socket.
    pub ttfb_ms: f64,
}

enum Msg {
    Lines(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

struct Sink {
    tx: flume::Sender<Msg>,
    dropped: AtomicU64,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts the writer if the configuration asks for a log (once per process).
pub fn start(config: &Config) -> std::io::Result<()> {
    let Some(path) = &config.access_log else { return Ok(()) };
    if SINK.get().is_some() {
        return Ok(());
    }
    let out: Box<dyn std::io::Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
    };
    let (tx, rx) = flume::bounded(config.access_log_queue_batches.max(1));
    if SINK.set(Sink { tx, dropped: AtomicU64::new(0) }).is_err() {
        return Ok(());
    }
    std::thread::Builder::new().name("kaligon-access-log".into()).spawn(move || write_lines(rx, out))?;
    Ok(())
}

fn write_lines(rx: flume::Receiver<Msg>, out: Box<dyn std::io::Write + Send>) {
    let mut w = std::io::BufWriter::with_capacity(256 << 10, out);
    let sink = SINK.get().expect("started");
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => Some(m),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        let mut acks = Vec::new();
        for m in msg.into_iter().chain(rx.try_iter()) {
            match m {
                Msg::Lines(l) => {
                    let _ = w.write_all(&l);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        let dropped = sink.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "the access log fell behind; lines were dropped");
            let _ =
                writeln!(w, "{{\"time\":\"{}\",\"dropped_lines\":{dropped}}}", super::xml::iso8601(super::now_ms()));
        }
        let _ = w.flush();
        for a in acks {
            let _ = a.send(());
        }
    }
}

pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// A batch is handed over at this size or age.
const BATCH_BYTES: usize = 64 << 10;
const BATCH_AGE: Duration = Duration::from_millis(200);

thread_local! {
    static BATCH: RefCell<(Vec<u8>, Instant)> = RefCell::new((Vec::new(), Instant::now()));
}

/// Adds one line to this core's batch (handed over when due).
pub fn record(entry: &Entry<'_>) {
    if SINK.get().is_none() {
        return;
    }
    let due = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        if serde_json::to_writer(&mut b.0, entry).is_ok() {
            b.0.push(b'\n');
        }
        b.0.len() >= BATCH_BYTES || b.1.elapsed() >= BATCH_AGE
    });
    if due {
        flush_local();
    }
}

/// Hands this core's batch to the writer (dropped and counted if the
/// writer is behind). Runs when a batch is due, every second from the
/// meter's flusher, and when a connection ends.
pub fn flush_local() {
    let Some(sink) = SINK.get() else { return };
    let batch = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.1 = Instant::now();
        std::mem::take(&mut b.0)
    });
    if batch.is_empty() {
        return;
    }
    let lines = batch.iter().filter(|c| **c == b'\n').count() as u64;
    if sink.tx.try_send(Msg::Lines(batch)).is_err() {
        sink.dropped.fetch_add(lines, Ordering::Relaxed);
        super::metrics::count_dropped_lines(lines);
    }
}

/// Waits (at most a second) until every queued line is written: at shutdown.
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let (tx, rx) = std::sync::mpsc::channel();
    if sink.tx.send_timeout(Msg::Flush(tx), Duration::from_secs(1)).is_ok() {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
}

static HOST_TAG: OnceLock<[u8; 12]> = OnceLock::new();

/// `x-amz-id-2` and the error body's `<HostId>`: this process's random tag
/// and the request id, base64 (AWS's is an opaque token of this shape).
pub fn host_id(request_id: &str) -> String {
    let tag = HOST_TAG.get_or_init(|| {
        let mut b = [0u8; 12];
        let _ = getrandom::fill(&mut b);
        b
    });
    let mut raw = tag.to_vec();
    raw.extend_from_slice(request_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}
