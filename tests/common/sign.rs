//! A client-side signer for hand-made requests, written from the AWS pages
//! (not from the server's code) so the two can disagree: SigV4 in the
//! `Authorization` header and as a presigned URL, signed streaming chunks and
//! trailers, SigV2 in the header and in the query, and the aws-chunked and
//! HTTP chunked body framings.
//!
//! Used with `#[path = "common/sign.rs"] mod sign;` next to `mod common;`
//! (it reads responses with `common::read_response`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::common::{RawResponse, read_response};

/// SHA-256 of nothing, the hash line of a GET.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key, its secret and the region the signatures are scoped to.
#[derive(Clone, Debug)]
pub struct Creds {
    pub access: String,
    pub secret: String,
    pub region: String,
}

impl Creds {
    pub fn new(access: &str, secret: &str) -> Creds {
        Creds { access: access.into(), secret: secret.into(), region: "us-east-1".into() }
    }

    pub fn region(mut self, region: &str) -> Creds {
        self.region = region.into();
        self
    }
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `YYYYMMDDTHHMMSSZ` of unix seconds (proleptic Gregorian, UTC).
pub fn amz_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = era * 400 + yoe + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// An RFC 7231 date (`Date` header, SigV2) of unix seconds.
pub fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix as u64))
}

pub fn hmac256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// Content-MD5 header value of a body.
pub fn content_md5(data: &[u8]) -> String {
    b64(&<md5::Md5 as md5::Digest>::digest(data))
}

/// CRC-32 (ISO-HDLC, the one `x-amz-checksum-crc32` uses), bit by bit.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The `x-amz-checksum-crc32` value of a body: base64 of the big-endian CRC.
pub fn crc32_b64(data: &[u8]) -> String {
    b64(&crc32(data).to_be_bytes())
}

/// SigV4 URI encoding: every byte outside `A-Za-z0-9-_.~` as `%XX`
/// (uppercase); `/` is kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path-style request path of an object, encoded once.
pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", uri_encode(key, true))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical query string of a raw query: each name and value decoded
/// then encoded the SigV4 way, sorted; a bare `name` signs as `name=`.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(n), false), uri_encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

/// The SigV4 signing key for a day (`YYYYMMDD`) and region.
pub fn signing_key(secret: &str, date8: &str, region: &str) -> [u8; 32] {
    let k = hmac256(format!("AWS4{secret}").as_bytes(), date8.as_bytes());
    let k = hmac256(&k, region.as_bytes());
    let k = hmac256(&k, b"s3");
    hmac256(&k, b"aws4_request")
}

fn scope(date8: &str, region: &str) -> String {
    format!("{date8}/{region}/s3/aws4_request")
}

/// Signs a canonical request: returns the hex signature.
fn sign_canonical(creds: &Creds, amz: &str, canonical: &str) -> String {
    let date8 = &amz[..8];
    let sts = format!("AWS4-HMAC-SHA256\n{amz}\n{}\n{}", scope(date8, &creds.region), sha256_hex(canonical.as_bytes()));
    hex::encode(hmac256(&signing_key(&creds.secret, date8, &creds.region), sts.as_bytes()))
}

fn trim_all(v: &str) -> String {
    v.split([' ', '\t']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A request as it goes on the wire.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path as sent, already encoded.
    pub path: String,
    /// Raw query, without `?`.
    pub query: String,
    /// In send order, names as given.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The signature the last `sign_v4` made (the streaming seed).
    pub signature: String,
}

impl Request {
    pub fn new(method: &str, path: &str, host: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: vec![("Host".into(), host.into())],
            body: Vec::new(),
            signature: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Request {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn target(&self) -> String {
        if self.query.is_empty() { self.path.clone() } else { format!("{}?{}", self.path, self.query) }
    }

    /// Adds `Content-Length` for the body unless the request already frames
    /// it (`Content-Length` or `Transfer-Encoding` present) or has none.
    pub fn with_length(mut self) -> Request {
        if self.get("content-length").is_none() && self.get("transfer-encoding").is_none() && !self.body.is_empty() {
            let n = self.body.len().to_string();
            self.headers.push(("Content-Length".into(), n));
        }
        self
    }

    /// The head as sent (request line, headers, blank line).
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target()).into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Head and body.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// SigV4 in the `Authorization` header at `unix`, with `payload` as the
    /// hashed-payload line (`x-amz-content-sha256`); `Content-Length` is
    /// added first (and signed) when the body needs one. Every header present
    /// is signed. The signature is kept in `self.signature`.
    pub fn sign_v4_at(mut self, creds: &Creds, unix: i64, payload: &str) -> Request {
        self = self.with_length();
        let amz = amz_date(unix);
        self.headers.retain(|(n, _)| {
            !["authorization", "x-amz-date", "x-amz-content-sha256"].contains(&n.to_ascii_lowercase().as_str())
        });
        self.headers.push(("x-amz-date".into(), amz.clone()));
        self.headers.push(("x-amz-content-sha256".into(), payload.into()));
        let mut names: Vec<String> = self.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        let mut canonical_headers = String::new();
        for name in &names {
            let values: Vec<String> =
                self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| trim_all(v)).collect();
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let signed = names.join(";");
        let canonical = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload}",
            self.method,
            self.path,
            canonical_query(&self.query)
        );
        let signature = sign_canonical(creds, &amz, &canonical);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed}, Signature={signature}",
            creds.access,
            scope(&amz[..8], &creds.region)
        );
        self.headers.push(("Authorization".into(), auth));
        self.signature = signature;
        self
    }

    /// SigV4 now, signing the body's SHA-256.
    pub fn sign_v4(self, creds: &Creds) -> Request {
        let hash = sha256_hex(&self.body);
        self.sign_v4_at(creds, now_unix(), &hash)
    }

    /// SigV2 in the `Authorization` header (`AWS key:signature`) with a
    /// `Date` header at `unix`. `bucket` is the virtual-host bucket, if any,
    /// which the canonical resource starts with.
    pub fn sign_v2_at(mut self, creds: &Creds, unix: i64, vhost_bucket: Option<&str>) -> Request {
        self = self.with_length();
        self.headers.retain(|(n, _)| !["authorization", "date"].contains(&n.to_ascii_lowercase().as_str()));
        let date = http_date(unix);
        self.headers.push(("Date".into(), date.clone()));
        let sts = v2_string_to_sign(&self, &date, vhost_bucket);
        let sig = b64(&hmac_sha1(creds.secret.as_bytes(), sts.as_bytes()));
        self.headers.push(("Authorization".into(), format!("AWS {}:{sig}", creds.access)));
        self
    }

    pub fn sign_v2(self, creds: &Creds) -> Request {
        self.sign_v2_at(creds, now_unix(), None)
    }
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Sub-resources SigV2 signs (Signing and authenticating REST requests).
const V2_SUBRESOURCES: [&str; 22] = [
    "acl",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
];

/// SigV2 string to sign; `date_line` is the `Date` header or, in a
/// presigned URL, `Expires`.
fn v2_string_to_sign(req: &Request, date_line: &str, vhost_bucket: Option<&str>) -> String {
    let first = |name: &str| req.get(name).map(str::trim).unwrap_or("").to_string();
    let mut amz: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("x-amz-"))
        .collect();
    amz.sort_by(|a, b| a.0.cmp(&b.0));
    let mut amz_block = String::new();
    let mut i = 0;
    while i < amz.len() {
        let name = amz[i].0.clone();
        let values: Vec<&str> = amz.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect();
        amz_block.push_str(&format!("{name}:{}\n", values.join(",")));
        i += values.len();
    }
    let mut resource = String::new();
    if let Some(b) = vhost_bucket {
        resource.push('/');
        resource.push_str(b);
    }
    resource.push_str(&req.path);
    let mut subs: Vec<(String, Option<String>)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (decode(n), Some(decode(v))),
            None => (decode(p), None),
        })
        .filter(|(n, _)| V2_SUBRESOURCES.contains(&n.as_str()))
        .collect();
    subs.sort();
    for (i, (n, v)) in subs.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(n);
        if let Some(v) = v {
            resource.push('=');
            resource.push_str(v);
        }
    }
    format!("{}\n{}\n{}\n{date_line}\n{amz_block}{resource}", req.method, first("content-md5"), first("content-type"))
}

/// A SigV4 presigned URL's request target (`path?query`).
///
/// `expires` goes into `X-Amz-Expires` verbatim (so tests can send `0` or
/// `abc`); `headers` are the extra signed headers besides `host`, which the
/// caller must also send; `extra_query` (raw, encoded) is signed too.
#[derive(Clone, Debug)]
pub struct Presign {
    pub creds: Creds,
    pub method: String,
    pub path: String,
    pub host: String,
    pub unix: i64,
    pub expires: String,
    pub headers: Vec<(String, String)>,
    pub extra_query: String,
}

impl Presign {
    pub fn new(creds: &Creds, method: &str, path: &str, host: &str, unix: i64, expires: &str) -> Presign {
        Presign {
            creds: creds.clone(),
            method: method.into(),
            path: path.into(),
            host: host.into(),
            unix,
            expires: expires.into(),
            headers: Vec::new(),
            extra_query: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Presign {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn target(&self) -> String {
        let amz = amz_date(self.unix);
        let mut names: Vec<String> = vec!["host".into()];
        names.extend(self.headers.iter().map(|(n, _)| n.to_ascii_lowercase()));
        names.sort();
        let signed = names.join(";");
        let credential = format!("{}/{}", self.creds.access, scope(&amz[..8], &self.creds.region));
        let mut query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz}&X-Amz-Expires={}&X-Amz-SignedHeaders={}",
            uri_encode(&credential, false),
            uri_encode(&self.expires, false),
            uri_encode(&signed, false)
        );
        if !self.extra_query.is_empty() {
            query.push('&');
            query.push_str(&self.extra_query);
        }
        let mut canonical_headers = String::new();
        for name in &names {
            let value = if name == "host" {
                self.host.to_string()
            } else {
                trim_all(&self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).unwrap().1)
            };
            canonical_headers.push_str(&format!("{name}:{value}\n"));
        }
        let canonical = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD",
            self.method,
            self.path,
            canonical_query(&query)
        );
        let signature = sign_canonical(&self.creds, &amz, &canonical);
        format!("{}?{query}&X-Amz-Signature={signature}", self.path)
    }
}

/// A SigV2 presigned URL's target: `path?[query&]AWSAccessKeyId=&Expires=&Signature=`;
/// `target` may carry a query (sub-resources in it are signed).
pub fn presign_v2(creds: &Creds, method: &str, target: &str, expires_unix: i64, vhost_bucket: Option<&str>) -> String {
    let req = Request::new(method, target, "unused");
    let sts = v2_string_to_sign(&req, &expires_unix.to_string(), vhost_bucket);
    let sig = b64(&hmac_sha1(creds.secret.as_bytes(), sts.as_bytes()));
    let sep = if req.query.is_empty() { '?' } else { '&' };
    format!("{target}{sep}AWSAccessKeyId={}&Expires={expires_unix}&Signature={}", creds.access, uri_encode(&sig, false))
}

/// The chain of chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
/// body, seeded with the request's own signature.
pub struct ChunkSigner {
    key: [u8; 32],
    amz: String,
    scope: String,
    previous: String,
}

impl ChunkSigner {
    /// `unix` must be the time the request was signed at, `seed` its signature.
    pub fn new(creds: &Creds, unix: i64, seed: &str) -> ChunkSigner {
        let amz = amz_date(unix);
        ChunkSigner {
            key: signing_key(&creds.secret, &amz[..8], &creds.region),
            scope: scope(&amz[..8], &creds.region),
            amz,
            previous: seed.into(),
        }
    }

    pub fn chunk(&mut self, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz,
            self.scope,
            self.previous,
            sha256_hex(data)
        );
        self.previous = hex::encode(hmac256(&self.key, sts.as_bytes()));
        self.previous.clone()
    }

    /// `canonical` is the trailer block as signed: `name:value\n` per header.
    pub fn trailer(&mut self, canonical: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz,
            self.scope,
            self.previous,
            sha256_hex(canonical.as_bytes())
        );
        self.previous = hex::encode(hmac256(&self.key, sts.as_bytes()));
        self.previous.clone()
    }
}

/// A signed aws-chunked body: `chunk`-byte chunks, the final empty chunk,
/// then the trailers (with `x-amz-trailer-signature` when there are any).
/// `tamper(i, sig)` may alter the signature of chunk `i` (0-based; the final
/// empty chunk counts, the trailer signature is index `usize::MAX`).
pub fn aws_chunked_signed(
    data: &[u8],
    chunk: usize,
    signer: &mut ChunkSigner,
    trailers: &[(&str, &str)],
    tamper: &dyn Fn(usize, String) -> String,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces.push(&[]);
    for (i, piece) in pieces.iter().enumerate() {
        let sig = tamper(i, signer.chunk(piece));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        if !piece.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    }
    if !trailers.is_empty() {
        let canonical: String = trailers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let sig = tamper(usize::MAX, signer.trailer(&canonical));
        for (n, v) in trailers {
            out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An unsigned aws-chunked body (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), as
/// the SDKs send it: `<hex>\r\n<data>\r\n … 0\r\n<trailers>\r\n`.
pub fn aws_chunked_unsigned(data: &[u8], chunk: usize, trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// HTTP/1.1 `Transfer-Encoding: chunked` framing of `body` in `piece`-byte chunks.
pub fn http_chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Splits `http://host:port/path?query` into (host, target).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("plain http URL");
    let i = rest.find('/').unwrap_or(rest.len());
    let target = if i == rest.len() { "/".to_string() } else { rest[i..].to_string() };
    (rest[..i].to_string(), target)
}

/// A raw GET of a request target with only `Host` (and `extra` headers).
pub fn plain_request(method: &str, target: &str, host: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    for (n, v) in extra {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() && !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Opens a connection with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Whether the server closed the connection (EOF or reset) within `wait`;
/// a read that times out means the connection is still open.
pub fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    let r = match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    r
}

/// Writes everything, ignoring a reset (the server may answer and close
/// before reading all of an oversized request).
pub fn write_lossy(s: &mut TcpStream, data: &[u8]) {
    let _ = s.write_all(data);
}

/// Half-closes the sending side.
pub fn finish_sending(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
}

/// Sends raw bytes on a new connection and reads one response (no body is
/// read for a HEAD, whatever Content-Length says).
pub fn send_bytes(addr: SocketAddr, bytes: &[u8], head_only: bool) -> RawResponse {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    read_response(&mut s, head_only).unwrap()
}

/// Sends a request on a new connection and reads its response.
pub fn send(addr: SocketAddr, req: &Request) -> RawResponse {
    send_bytes(addr, &req.bytes(), req.method == "HEAD")
}

/// Asserts an S3 error: status, `<Code>`, and an XML error body.
#[track_caller]
pub fn assert_error(r: &RawResponse, status: u16, code: &str) {
    assert_eq!((r.status, r.code().as_str()), (status, code), "body: {}", r.text());
    assert!(r.text().contains("<Error>"), "not an S3 XML error: {}", r.text());
}

/// Asserts an S3 error that is one of `allowed` (status, code) pairs.
#[track_caller]
pub fn assert_error_in(r: &RawResponse, allowed: &[(u16, &str)]) {
    assert!(allowed.contains(&(r.status, r.code().as_str())), "got {} {}; body: {}", r.status, r.code(), r.text());
    assert!(r.text().contains("<Error>"), "not an S3 XML error: {}", r.text());
}
