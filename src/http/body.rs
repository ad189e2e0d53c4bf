//! Request bodies: Content-Length or `Transfer-Encoding: chunked` framing.
//! A Content-Length body is read from the socket straight into the caller's
//! aligned buffer; only bytes that arrived with the head are copied.

use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::AsyncRead;

use super::Error;
use super::conn::Conn;
use super::head::Head;
use crate::runtime::buf::AlignedBuf;

#[derive(Debug)]
enum Framing {
    Length { remaining: u64 },
    Chunked(ChunkState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
    Done,
}

/// Longest chunk-size line (size, extensions) we accept.
const CHUNK_LINE_BYTES_MAX: usize = 4096;

pub struct BodyReader {
    framing: Framing,
    /// A read failed (bad framing, truncation): the connection cannot be reused.
    failed: bool,
    timeout: Duration,
    /// Bytes of body data handed out so far.
    pub received: u64,
}

impl BodyReader {
    pub fn new(head: &Head, timeout: Duration) -> Result<Self, Error> {
        let framing = if head.is_chunked() {
            Framing::Chunked(ChunkState::Size)
        } else {
            Framing::Length { remaining: head.content_length()?.unwrap_or(0) }
        };
        Ok(Self { framing, failed: false, timeout, received: 0 })
    }

    /// Declared length, when the framing has one.
    pub fn declared_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length { remaining } => Some(remaining + self.received),
            Framing::Chunked(_) => None,
        }
    }

    pub fn is_done(&self) -> bool {
        !self.failed && matches!(self.framing, Framing::Length { remaining: 0 } | Framing::Chunked(ChunkState::Done))
    }

    /// Copies up to `out.len()` body bytes into `out`; 0 at the end.
    pub async fn read(&mut self, conn: &mut Conn, out: &mut [u8]) -> Result<usize, Error> {
        if self.failed {
            return Err(Error::BadFraming("the body already failed"));
        }
        let r = self.read_inner(conn, out).await;
        self.failed |= r.is_err();
        r
    }

    async fn read_inner(&mut self, conn: &mut Conn, out: &mut [u8]) -> Result<usize, Error> {
        let timeout = self.timeout;
        loop {
            let available = match self.framing {
                Framing::Length { remaining } => remaining,
                Framing::Chunked(ChunkState::Data { remaining }) => remaining,
                Framing::Chunked(ChunkState::Done) => return Ok(0),
                Framing::Chunked(state) => {
                    let next = chunk_step(conn, state, timeout).await?;
                    self.framing = Framing::Chunked(next);
                    continue;
                }
            };
            if available == 0 || <[u8]>::is_empty(out) {
                return Ok(0);
            }
            if conn.buffered().is_empty() && conn.fill(timeout).await? == 0 {
                return Err(Error::Truncated);
            }
            let n = conn.buffered().len().min(out.len()).min(available as usize);
            out[..n].copy_from_slice(&conn.buffered()[..n]);
            conn.consume(n);
            let left = available - n as u64;
            self.framing = match self.framing {
                Framing::Length { .. } => Framing::Length { remaining: left },
                _ if left == 0 => Framing::Chunked(ChunkState::DataEnd),
                _ => Framing::Chunked(ChunkState::Data { remaining: left }),
            };
            self.received += n as u64;
            return Ok(n);
        }
    }

    /// Fills `buf[at..at + max]` with body bytes; for Content-Length bodies
    /// the socket reads straight into the buffer. Returns bytes read (0 at end).
    pub async fn read_into(
        &mut self,
        conn: &mut Conn,
        mut buf: AlignedBuf,
        at: usize,
        max: usize,
    ) -> (Result<usize, Error>, AlignedBuf) {
        let direct = !self.failed && matches!(self.framing, Framing::Length { .. }) && conn.buffered().is_empty();
        if !direct {
            let r = self.read(conn, &mut buf.full_mut()[at..at + max]).await;
            return (r, buf);
        }
        let Framing::Length { remaining } = &mut self.framing else { unreachable!() };
        let want = (max as u64).min(*remaining) as usize;
        if want == 0 {
            return (Ok(0), buf);
        }
        buf.set_len(at);
        let read = conn.stream.read(buf.slice(at..at + want));
        let (r, buf) = match compio::time::timeout(self.timeout, read).await {
            Ok(BufResult(r, slice)) => (r, slice.into_inner()),
            Err(_) => {
                self.failed = true;
                return (Err(Error::Timeout), AlignedBuf::new(0));
            }
        };
        match r {
            Ok(0) => {
                self.failed = true;
                (Err(Error::Truncated), buf)
            }
            Ok(n) => {
                *remaining -= n as u64;
                self.received += n as u64;
                (Ok(n), buf)
            }
            Err(e) => {
                self.failed = true;
                (Err(Error::Io(e)), buf)
            }
        }
    }

    /// Reads and discards the rest of the body (to keep the connection).
    pub async fn drain(&mut self, conn: &mut Conn, limit: u64) -> Result<(), Error> {
        let mut scratch = vec![0u8; 64 << 10];
        let mut total = 0u64;
        while !self.is_done() {
            let n = self.read(conn, &mut scratch).await?;
            total += n as u64;
            if n == 0 || total > limit {
                return Err(Error::Truncated);
            }
        }
        Ok(())
    }
}

/// Refills a look-ahead buffer for parsers that must see past what they
/// consume (aws-chunked framing, form boundaries): moves the unread bytes
/// `stage[*pos..]` to the front and reads more body bytes after them, up to
/// `cap` bytes staged. Returns false at the end of the body.
pub async fn refill_stage(
    stage: &mut Vec<u8>,
    pos: &mut usize,
    cap: usize,
    conn: &mut Conn,
    body: &mut BodyReader,
) -> Result<bool, Error> {
    stage.drain(..*pos);
    *pos = 0;
    let have = stage.len();
    stage.resize(cap.max(have + 1), 0);
    let n = body.read(conn, &mut stage[have..]).await?;
    stage.truncate(have + n);
    Ok(n > 0)
}

/// Advances chunked framing outside chunk data: parses a size line, the CRLF
/// after data, or the trailer section.
async fn chunk_step(conn: &mut Conn, state: ChunkState, timeout: Duration) -> Result<ChunkState, Error> {
    let line = read_line(conn, timeout).await?;
    match state {
        ChunkState::Size => {
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| Error::BadFraming("bad chunk size"))?;
            Ok(if size == 0 { ChunkState::Trailers } else { ChunkState::Data { remaining: size } })
        }
        ChunkState::DataEnd if line.is_empty() => Ok(ChunkState::Size),
        ChunkState::DataEnd => Err(Error::BadFraming("missing CRLF after chunk data")),
        ChunkState::Trailers if line.is_empty() => Ok(ChunkState::Done),
        ChunkState::Trailers => Ok(ChunkState::Trailers),
        ChunkState::Data { .. } | ChunkState::Done => unreachable!("not a framing line"),
    }
}

/// Reads one CRLF-terminated line (without the CRLF) from the connection.
pub async fn read_line(conn: &mut Conn, timeout: Duration) -> Result<String, Error> {
    loop {
        if let Some(i) = conn.buffered().windows(2).position(|w| w == b"\r\n") {
            let line = std::str::from_utf8(&conn.buffered()[..i])
                .map_err(|_| Error::BadFraming("line is not UTF-8"))?
                .to_string();
            conn.consume(i + 2);
            return Ok(line);
        }
        if conn.buffered().len() > CHUNK_LINE_BYTES_MAX {
            return Err(Error::BadFraming("framing line too long"));
        }
        if conn.fill(timeout).await? == 0 {
            return Err(Error::Truncated);
        }
    }
}
