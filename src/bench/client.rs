//! One keep-alive HTTP/1.1 connection: write a request, read its response (httparse).
//!
//! No pipelining: a connection carries one request at a time, as S3 clients do. Response
//! bodies are consumed as they arrive, into a [`Sink`]: thrown away, checked against what was
//! written, or kept (error documents) up to a bound.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::future::Either;

use super::body::{TAG_BYTES, Verifier};

/// Response headers beyond this count are a protocol error.
const RESPONSE_HEADER_COUNT_MAX: usize = 64;
/// The most of an error body that is kept for its `<Code>`.
const CAPTURE_BYTES_MAX: usize = 64 * 1024;

/// Why a request got no complete response.
#[derive(Debug)]
pub enum Transport {
    Connect(std::io::Error),
    Io(std::io::Error),
    /// The peer closed the connection before the response was complete.
    Closed,
    /// The response was not valid HTTP/1.1.
    Protocol(&'static str),
    Timeout,
}

impl Transport {
    /// The label errors are counted under, e.g. `transport:reset`.
    pub fn label(&self) -> String {
        let kind = |e: &std::io::Error| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "refused",
            std::io::ErrorKind::ConnectionReset => "reset",
            std::io::ErrorKind::BrokenPipe => "broken-pipe",
            std::io::ErrorKind::ConnectionAborted => "aborted",
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "io",
        };
        match self {
            Transport::Connect(e) => format!("transport:connect-{}", kind(e)),
            Transport::Io(e) => format!("transport:{}", kind(e)),
            Transport::Closed => "transport:closed".to_owned(),
            Transport::Protocol(what) => format!("transport:protocol ({what})"),
            Transport::Timeout => "transport:timeout".to_owned(),
        }
    }
}

impl From<std::io::Error> for Transport {
    fn from(e: std::io::Error) -> Self {
        Transport::Io(e)
    }
}

/// What to do with a response body.
pub enum Sink {
    Discard,
    Verify(Verifier),
    Capture(Vec<u8>),
}

impl Sink {
    fn take(&mut self, piece: &[u8]) {
        match self {
            Sink::Discard => {}
            Sink::Verify(v) => v.update(piece),
            Sink::Capture(out) => {
                let room = CAPTURE_BYTES_MAX.saturating_sub(out.len());
                out.extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
    }
}

/// A complete response.
pub struct Response {
    pub status: u16,
    /// Body bytes received.
    pub body_len: u64,
    /// `Content-Length` as announced (HEAD answers carry the object's).
    pub content_length: Option<u64>,
    /// The body went to this sink.
    pub sink: Sink,
    /// When the first byte of the response arrived.
    pub first_byte: Instant,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The first `x-amz-checksum-<algorithm>` header: (algorithm, value).
    pub checksum: Option<(String, String)>,
}

/// The body that follows a request head.
pub enum Payload {
    None,
    /// `shared[range]` followed by `tail[tail_range]`, written without copying `shared`.
    Object {
        shared: Arc<Vec<u8>>,
        range: Range<usize>,
        tail: [u8; TAG_BYTES],
        tail_range: Range<usize>,
    },
}

/// How the sink for a response is chosen once its status is known.
pub type SinkFor<'a> = &'a mut dyn FnMut(u16) -> Sink;

pub struct Conn {
    stream: TcpStream,
    reader: Reader,
}

/// The receiving side of a connection: bytes read but not consumed yet.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    /// The server said `Connection: close`, or the framing leaves the stream unusable.
    closed: bool,
}

/// Bodies up to this size are copied behind the head and sent in one write.
const INLINE_BODY_BYTES_MAX: usize = 64 * 1024;

impl Conn {
    /// Opens a connection with `TCP_NODELAY` and a read buffer of `buf_bytes`.
    pub async fn connect(addr: SocketAddr, buf_bytes: usize) -> Result<Conn, Transport> {
        let stream = TcpStream::connect(addr).await.map_err(Transport::Connect)?;
        stream.set_nodelay(true).map_err(Transport::Connect)?;
        Ok(Conn { stream, reader: Reader { buf: Vec::with_capacity(buf_bytes), start: 0, closed: false } })
    }

    /// Whether the connection cannot carry another request.
    pub fn closed(&self) -> bool {
        self.reader.closed
    }

    /// Sends a request and reads its response. `is_head` marks a HEAD request, whose response
    /// has no body; `keep_headers` asks for the ETag and checksum headers in the response (not
    /// copied out otherwise); `sink_for` picks where the body goes once the status is known.
    /// Returns the head buffer for reuse, when the write finished.
    ///
    /// The read is posted together with the write, so a small request costs one trip through
    /// the ring instead of two, and a server that answers before the body is sent (an error
    /// to a large PUT) is heard instead of ending in a broken pipe; the connection is then
    /// closed, since the rest of the body can no longer be sent.
    pub async fn exchange(
        &mut self,
        head: Vec<u8>,
        payload: Payload,
        is_head: bool,
        keep_headers: bool,
        sink_for: SinkFor<'_>,
    ) -> Result<(Option<Vec<u8>>, Response), Transport> {
        let result = {
            let Conn { stream, reader } = &mut *self;
            let write = std::pin::pin!(write_request(stream, head, payload));
            let read = std::pin::pin!(reader.read_response(stream, is_head, keep_headers, sink_for));
            match futures_util::future::select(write, read).await {
                Either::Left((Ok(head), read)) => read.await.map(|response| (Some(head), response)),
                Either::Left((Err(e), _)) => Err(e),
                Either::Right((response, _)) => response.map(|response| (None, response)),
            }
        };
        if let Ok((None, _)) = &result {
            // Answered before the request was fully written: the rest cannot follow.
            self.reader.closed = true;
        }
        result
    }
}

/// Writes a request head and its payload; returns the head buffer for reuse.
async fn write_request(mut stream: &TcpStream, mut head: Vec<u8>, payload: Payload) -> Result<Vec<u8>, Transport> {
    match payload {
        Payload::Object { shared, range, tail, tail_range }
            if range.len() + tail_range.len() > INLINE_BODY_BYTES_MAX =>
        {
            let body = (shared.slice(range), (tail.slice(tail_range),));
            let BufResult(r, (head, _)) = stream.write_vectored_all((head, body)).await;
            r?;
            Ok(head)
        }
        Payload::Object { shared, range, tail, tail_range } => {
            let head_len = head.len();
            head.extend_from_slice(&shared[range]);
            head.extend_from_slice(&tail[tail_range]);
            let BufResult(r, mut head) = stream.write_all(head).await;
            r?;
            head.truncate(head_len);
            Ok(head)
        }
        Payload::None => {
            let BufResult(r, head) = stream.write_all(head).await;
            r?;
            Ok(head)
        }
    }
}

impl Reader {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
        }
    }

    /// Reads more bytes; `Closed` at EOF.
    async fn fill(&mut self, mut stream: &TcpStream) -> Result<(), Transport> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let cap = self.buf.capacity();
        if self.buf.len() == cap {
            self.buf.reserve(cap);
        }
        let cap = self.buf.capacity();
        let buf = std::mem::take(&mut self.buf);
        let at = buf.len();
        let BufResult(r, slice) = stream.read(buf.slice(at..cap)).await;
        self.buf = slice.into_inner();
        match r? {
            0 => Err(Transport::Closed),
            _ => Ok(()),
        }
    }

    /// Reads one response (see [`Conn::exchange`]).
    async fn read_response(
        &mut self,
        stream: &TcpStream,
        is_head: bool,
        keep_headers: bool,
        sink_for: SinkFor<'_>,
    ) -> Result<Response, Transport> {
        let mut first_byte = None;
        loop {
            if self.buffered().is_empty() {
                self.fill(stream).await?;
            }
            first_byte.get_or_insert_with(Instant::now);
            let Some(head) = self.parse_head(keep_headers)? else {
                self.fill(stream).await?;
                continue;
            };
            if (100..200).contains(&head.status) {
                // An interim answer (100 Continue): the real one follows.
                continue;
            }
            if head.close {
                self.closed = true;
            }
            let mut sink = sink_for(head.status);
            let no_body = is_head || head.status == 204 || head.status == 304;
            let body_len = if no_body {
                0
            } else if head.chunked {
                self.read_chunked(stream, &mut sink).await?
            } else if let Some(n) = head.content_length {
                self.read_exact_body(stream, n, &mut sink).await?;
                n
            } else {
                self.closed = true;
                self.read_to_eof(stream, &mut sink).await?
            };
            let first_byte = first_byte.unwrap_or_else(Instant::now);
            return Ok(Response {
                status: head.status,
                body_len,
                content_length: head.content_length,
                sink,
                first_byte,
                etag: head.etag,
                checksum: head.checksum,
            });
        }
    }

    /// Parses a head from the buffer and consumes it; `None` if it is not complete yet.
    fn parse_head(&mut self, keep_headers: bool) -> Result<Option<Head>, Transport> {
        let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADER_COUNT_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let n = match response.parse(&self.buf[self.start..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Transport::Protocol("unparsable response head")),
        };
        let mut head = Head {
            status: response.code.ok_or(Transport::Protocol("no status"))?,
            content_length: None,
            chunked: false,
            close: response.version == Some(0),
            etag: None,
            checksum: None,
        };
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(h.value).map_err(|_| Transport::Protocol("content-length"))?;
                head.content_length = Some(text.trim().parse().map_err(|_| Transport::Protocol("content-length"))?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = h.value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
            } else if keep_headers && h.name.eq_ignore_ascii_case("etag") {
                head.etag = Some(String::from_utf8_lossy(h.value).into_owned());
            } else if keep_headers
                && head.checksum.is_none()
                && let Some(algo) = checksum_header(h.name)
            {
                head.checksum = Some((algo.to_owned(), String::from_utf8_lossy(h.value).into_owned()));
            } else if h.name.eq_ignore_ascii_case("connection") {
                if h.value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                    head.close = true;
                } else if h.value.windows(10).any(|w| w.eq_ignore_ascii_case(b"keep-alive")) {
                    head.close = false;
                }
            }
        }
        self.consume(n);
        Ok(Some(head))
    }

    async fn read_exact_body(&mut self, stream: &TcpStream, len: u64, sink: &mut Sink) -> Result<(), Transport> {
        let mut left = len;
        while left > 0 {
            if self.buffered().is_empty() {
                self.fill(stream).await?;
            }
            let n = self.buffered().len().min(usize::try_from(left).unwrap_or(usize::MAX));
            sink.take(&self.buf[self.start..self.start + n]);
            self.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    async fn read_to_eof(&mut self, stream: &TcpStream, sink: &mut Sink) -> Result<u64, Transport> {
        let mut total = 0u64;
        loop {
            let n = self.buffered().len();
            sink.take(self.buffered());
            self.consume(n);
            total += n as u64;
            match self.fill(stream).await {
                Ok(()) => {}
                Err(Transport::Closed) => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF) and consumes it.
    async fn read_line(&mut self, stream: &TcpStream) -> Result<String, Transport> {
        loop {
            if let Some(end) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffered()[..end]).into_owned();
                self.consume(end + 2);
                return Ok(line);
            }
            if self.buffered().len() > 8192 {
                return Err(Transport::Protocol("chunk line too long"));
            }
            self.fill(stream).await?;
        }
    }

    async fn read_chunked(&mut self, stream: &TcpStream, sink: &mut Sink) -> Result<u64, Transport> {
        let mut total = 0u64;
        loop {
            let line = self.read_line(stream).await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| Transport::Protocol("chunk size"))?;
            if size == 0 {
                // Trailers until the empty line.
                while !self.read_line(stream).await?.is_empty() {}
                return Ok(total);
            }
            self.read_exact_body(stream, size, sink).await?;
            total += size;
            if !self.read_line(stream).await?.is_empty() {
                return Err(Transport::Protocol("chunk not followed by CRLF"));
            }
        }
    }
}

struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    etag: Option<String>,
    checksum: Option<(String, String)>,
}

/// `crc32` for an `x-amz-checksum-crc32` header; not for `x-amz-checksum-type` or `-mode`.
fn checksum_header(name: &str) -> Option<&str> {
    const PREFIX: &str = "x-amz-checksum-";
    let (prefix, algo) = name.split_at_checked(PREFIX.len())?;
    if algo.is_empty() || !prefix.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    (!algo.eq_ignore_ascii_case("type") && !algo.eq_ignore_ascii_case("mode")).then_some(algo)
}

/// The `<Code>` of an S3 error document, if there is one.
pub fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    let code = text[start..end].trim();
    (!code.is_empty()).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_found() {
        let body = b"<?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(error_code(body), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code(b"<Error><Code></Code></Error>"), None);
        assert_eq!(error_code(b"not xml"), None);
        assert_eq!(error_code(b""), None);
    }
}
