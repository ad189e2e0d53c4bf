//! One connection: read a head, hand the request to `s3`, write the answer,
//! repeat while keep-alive holds. Memory per connection is bounded: one
//! head buffer plus the chunk buffers of the request in flight.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;

use super::Error;
use super::head::{self, Head};
use crate::runtime::Ctx;

/// How long and how much a closing connection keeps discarding input.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 64 << 20;

pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    /// The client: the socket's peer, or the address a PROXY header gave.
    pub peer: Option<std::net::SocketAddr>,
    /// The socket's peer (the load balancer, behind one).
    pub hop: Option<std::net::SocketAddr>,
}

impl Conn {
    fn new(stream: TcpStream, cap: usize) -> Self {
        let peer = stream.peer_addr().ok();
        Self { stream, buf: Vec::with_capacity(cap), start: 0, peer, hop: peer }
    }

    /// Reads the PROXY protocol header a trusted proxy sends first and takes
    /// the client's address from it; an error closes the connection.
    async fn read_proxy_header(&mut self, timeout: Duration) -> Result<(), &'static str> {
        loop {
            if let Some((header, n)) = super::proxy::parse(self.buffered())? {
                self.consume(n);
                if let super::proxy::Header::Proxied(client) = header {
                    self.peer = Some(client);
                }
                return Ok(());
            }
            match self.fill(timeout).await {
                Ok(n) if n > 0 => {}
                _ => return Err("the connection ended before its PROXY header"),
            }
        }
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
        }
    }

    /// Reads more bytes into the buffer (compacting it first); Ok(0) at EOF.
    pub async fn fill(&mut self, timeout: Duration) -> Result<usize, Error> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let cap = self.buf.capacity();
        if self.buf.len() == cap {
            return Err(Error::HeadTooLarge);
        }
        let buf = std::mem::take(&mut self.buf);
        let at = buf.len();
        let read = self.stream.read(buf.slice(at..cap));
        let BufResult(r, slice) = compio::time::timeout(timeout, read).await.map_err(|_| Error::Timeout)?;
        self.buf = slice.into_inner();
        Ok(r?)
    }

    /// Reads the next request head; None when the client closed cleanly.
    pub async fn read_head(&mut self, ctx: &Ctx, first_wait: Duration) -> Result<Option<Head>, Error> {
        let cfg = &ctx.config;
        let mut wait = first_wait;
        loop {
            if !self.buffered().is_empty() {
                let limit = self.buffered().len().min(cfg.header_bytes_max);
                match head::parse(&self.buffered()[..limit], cfg.header_count_max)? {
                    Some((h, n)) => {
                        self.consume(n);
                        return Ok(Some(h));
                    }
                    None if self.buffered().len() >= cfg.header_bytes_max => {
                        return Err(Error::HeadTooLarge);
                    }
                    None => {}
                }
            }
            let n = self.fill(wait).await?;
            if n == 0 {
                return if self.buffered().is_empty() { Ok(None) } else { Err(Error::Closed) };
            }
            wait = Duration::from_millis(cfg.header_read_timeout_ms);
        }
    }

    pub async fn write_all(&mut self, data: Vec<u8>) -> Result<(), Error> {
        let BufResult(r, _) = self.stream.write_all(data).await;
        r.map_err(Error::Io)
    }

    /// Writes `[range]` of an owned buffer, returning the buffer.
    pub async fn write_range<B: IoBuf>(&mut self, buf: B, range: std::ops::Range<usize>) -> (Result<(), Error>, B) {
        let BufResult(r, slice) = self.stream.write_all(buf.slice(range)).await;
        (r.map_err(Error::Io), slice.into_inner())
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.flush().await.map_err(Error::Io)
    }

    /// Closes gently: stops sending, then reads and discards what the client
    /// still sends (for a bounded time and size), so an unread request body
    /// does not turn the close into a reset that destroys our answer.
    async fn linger(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown(2) on the socket this connection owns.
        unsafe { libc::shutdown(self.stream.as_raw_fd(), libc::SHUT_WR) };
        let until = std::time::Instant::now() + LINGER;
        let mut discarded = 0usize;
        while discarded < LINGER_BYTES_MAX {
            self.start = 0;
            self.buf.clear();
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.fill(left).await {
                Ok(n) if n > 0 => discarded += n,
                _ => return,
            }
        }
    }
}

/// Accepts connections on this core until told to stop.
pub async fn accept_loop(listener: compio::net::TcpListener, ctx: Rc<Ctx>, stop: flume::Receiver<()>) {
    loop {
        let accepted = futures_util::future::select(Box::pin(listener.accept()), Box::pin(stop.recv_async())).await;
        let (stream, _) = match accepted {
            futures_util::future::Either::Left((Ok(s), _)) => s,
            futures_util::future::Either::Left((Err(e), _)) => {
                tracing::warn!(error = %e, "accept failed");
                compio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            futures_util::future::Either::Right(_) => {
                // Draining: wake idle keep-alive connections so they close.
                for fd in ctx.idle.borrow().iter() {
                    // SAFETY: shutdown(2) on a socket owned by a live connection task.
                    unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
                }
                return;
            }
        };
        let open = ctx.health.connections.fetch_add(1, Ordering::SeqCst);
        if open >= ctx.config.connections_max {
            ctx.health.connections.fetch_sub(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        compio::runtime::spawn(async move {
            serve(stream, &ctx).await;
            // Before the connection stops counting: a drain waits for it.
            crate::s3::meter::flush(&ctx.engine);
            crate::s3::access_log::flush_local();
            ctx.health.connections.fetch_sub(1, Ordering::SeqCst);
        })
        .detach();
    }
}

async fn serve(stream: TcpStream, ctx: &Ctx) {
    use std::os::fd::AsRawFd;
    let mut conn = Conn::new(stream, ctx.config.header_bytes_max + 4096);
    let idle = Duration::from_millis(ctx.config.idle_timeout_ms);
    if ctx.config.proxy_protocol && conn.hop.is_some_and(|a| ctx.config.trusted(a.ip())) {
        let wait = Duration::from_millis(ctx.config.header_read_timeout_ms);
        if let Err(why) = conn.read_proxy_header(wait).await {
            tracing::warn!(hop = ?conn.hop, why, "closing a connection from a trusted proxy without a valid PROXY header");
            return;
        }
    }
    let fd = conn.stream.as_raw_fd();
    loop {
        // Between requests the connection is idle: a drain may close it.
        let waiting = conn.buffered().is_empty();
        if waiting {
            ctx.idle.borrow_mut().insert(fd);
        }
        let read = conn.read_head(ctx, idle).await;
        if waiting {
            ctx.idle.borrow_mut().remove(&fd);
        }
        let head = match read {
            Ok(Some(h)) => h,
            Ok(None) | Err(Error::Timeout) | Err(Error::Closed) | Err(Error::Io(_)) => return,
            Err(e) => {
                let _ = crate::s3::reject_unparsed(&mut conn, &e).await;
                conn.linger().await;
                return;
            }
        };
        let keep = crate::s3::handle(ctx, &mut conn, head).await;
        if !keep {
            conn.linger().await;
            return;
        }
        if ctx.health.draining.load(Ordering::Relaxed) {
            return;
        }
    }
}
