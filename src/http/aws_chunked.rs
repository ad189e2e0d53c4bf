//! `Content-Encoding: aws-chunked` bodies (SigV4 streaming uploads):
//! `<hex-size>[;chunk-signature=<sig>]\r\n<data>\r\n … 0[;…]\r\n<trailers>\r\n`.
//! Chunk signatures are checked as each chunk ends; the trailing checksum
//! headers are collected for the caller to verify before anything becomes
//! visible (AWS "Signature calculations for the Authorization header:
//! Transferring payload in multiple chunks").

use sha2::{Digest, Sha256};

use super::Error as HttpError;
use super::body::BodyReader;
use super::conn::Conn;
use crate::auth::{self, ChunkVerifier};

/// Longest chunk header or trailer line accepted.
const LINE_BYTES_MAX: usize = 4096;
const STAGE_BYTES: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("aws-chunked framing is malformed: {0}")]
    Framing(&'static str),
    #[error("{0}")]
    Auth(#[from] auth::Error),
    #[error("{0}")]
    Http(#[from] HttpError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
    Done,
}

pub struct AwsChunked {
    stage: Vec<u8>,
    pos: usize,
    state: State,
    verifier: Option<ChunkVerifier>,
    /// Signed uploads with a trailer must carry `x-amz-trailer-signature`.
    trailer_signed: bool,
    hasher: Sha256,
    chunk_signature: String,
    /// Trailing headers (lowercase names), e.g. `x-amz-checksum-crc32`.
    pub trailers: Vec<(String, String)>,
    pub decoded: u64,
}

impl AwsChunked {
    pub fn new(verifier: Option<ChunkVerifier>, trailer_signed: bool) -> Self {
        Self {
            stage: Vec::with_capacity(STAGE_BYTES),
            pos: 0,
            state: State::Header,
            verifier,
            trailer_signed,
            hasher: Sha256::new(),
            chunk_signature: String::new(),
            trailers: Vec::new(),
            decoded: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    async fn refill(&mut self, conn: &mut Conn, body: &mut BodyReader) -> Result<bool, Error> {
        Ok(super::body::refill_stage(&mut self.stage, &mut self.pos, STAGE_BYTES, conn, body).await?)
    }

    async fn line(&mut self, conn: &mut Conn, body: &mut BodyReader) -> Result<Option<String>, Error> {
        loop {
            let avail = &self.stage[self.pos..];
            if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                let raw = &avail[..i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let s = std::str::from_utf8(raw).map_err(|_| Error::Framing("line is not UTF-8"))?.to_string();
                self.pos += i + 1;
                return Ok(Some(s));
            }
            if avail.len() > LINE_BYTES_MAX {
                return Err(Error::Framing("line too long"));
            }
            if !self.refill(conn, body).await? {
                return Ok(None);
            }
        }
    }

    /// Decodes up to `out.len()` payload bytes; 0 once the final chunk and
    /// trailers were read and every signature checked.
    pub async fn read(&mut self, conn: &mut Conn, body: &mut BodyReader, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Data { remaining } => {
                    if self.pos == self.stage.len() && !self.refill(conn, body).await? {
                        return Err(Error::Framing("body ends inside a chunk"));
                    }
                    let avail = &self.stage[self.pos..];
                    let n = avail.len().min(out.len()).min(remaining as usize);
                    out[..n].copy_from_slice(&avail[..n]);
                    if self.verifier.is_some() {
                        self.hasher.update(&avail[..n]);
                    }
                    self.pos += n;
                    self.decoded += n as u64;
                    self.state = if remaining == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data { remaining: remaining - n as u64 }
                    };
                    if n > 0 {
                        return Ok(n);
                    }
                }
                State::DataEnd => {
                    let line = self.line(conn, body).await?.ok_or(Error::Framing("missing CRLF after chunk"))?;
                    if !line.is_empty() {
                        return Err(Error::Framing("chunk data longer than its size"));
                    }
                    self.finish_chunk()?;
                    self.state = State::Header;
                }
                State::Header => {
                    let line = self.line(conn, body).await?.ok_or(Error::Framing("missing chunk header"))?;
                    let (size, ext) = line.split_once(';').unwrap_or((&line, ""));
                    let size = u64::from_str_radix(size.trim(), 16).map_err(|_| Error::Framing("bad chunk size"))?;
                    self.chunk_signature = ext.trim().strip_prefix("chunk-signature=").unwrap_or("").to_string();
                    if self.verifier.is_some() && self.chunk_signature.is_empty() {
                        return Err(Error::Framing("chunk without a signature"));
                    }
                    if size == 0 {
                        self.finish_chunk()?;
                        self.state = State::Trailers;
                    } else {
                        self.state = State::Data { remaining: size };
                    }
                }
                State::Trailers => {
                    match self.line(conn, body).await? {
                        None => self.state = State::Done,
                        Some(l) if l.is_empty() => {
                            self.state = State::Done;
                        }
                        Some(l) => {
                            let (k, v) = l.split_once(':').ok_or(Error::Framing("bad trailer line"))?;
                            self.trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                            continue;
                        }
                    }
                    self.finish_trailers()?;
                }
            }
        }
    }

    /// Checks the signature of the chunk that just ended.
    fn finish_chunk(&mut self) -> Result<(), Error> {
        if let Some(v) = self.verifier.as_mut() {
            let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            v.verify_chunk(&self.chunk_signature, &digest)?;
        }
        Ok(())
    }

    /// Checks the trailer signature when the upload is signed with trailers.
    fn finish_trailers(&mut self) -> Result<(), Error> {
        let sig =
            self.trailers.iter().position(|(k, _)| k == "x-amz-trailer-signature").map(|i| self.trailers.remove(i).1);
        match (self.verifier.as_mut(), sig) {
            (Some(v), Some(sig)) => {
                let canonical: String = self.trailers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
                v.verify_trailer(&canonical, &sig)?;
            }
            (Some(_), None) if self.trailer_signed => return Err(Error::Framing("the trailer signature is missing")),
            _ => {}
        }
        Ok(())
    }
}
