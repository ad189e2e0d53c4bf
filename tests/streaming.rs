//! Streaming uploads made by hand on a raw socket (FIELD_NOTES B1): signed
//! aws-chunked bodies with chunk signatures, signed and unsigned trailers
//! with `x-amz-checksum-crc32`, and `Transfer-Encoding: chunked` without a
//! Content-Length around all of them. A refused upload stores nothing.

mod common;
#[path = "common/sign.rs"]
mod sign;

use common::*;
use sign::*;

const SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const CHUNK: usize = 64 << 10;

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

/// How a streaming upload is framed and what it gets wrong on purpose.
struct Upload<'a> {
    payload: &'static str,
    content_encoding: &'a str,
    /// Declared trailer name (`x-amz-trailer`), if any.
    trailer_name: Option<&'a str>,
    /// Trailer lines sent after the final chunk.
    trailers: Vec<(&'a str, String)>,
    /// Alters chunk signature `i` (usize::MAX: the trailer signature).
    tamper: &'a dyn Fn(usize, String) -> String,
    /// Leaves `x-amz-trailer-signature` out of a signed trailer.
    drop_trailer_signature: bool,
    /// Added to the true length in `x-amz-decoded-content-length`.
    decoded_length_delta: i64,
    /// Send with `Transfer-Encoding: chunked` (pieces of this size), no Content-Length.
    http_chunked: Option<usize>,
}

impl Default for Upload<'_> {
    fn default() -> Self {
        Upload {
            payload: SIGNED,
            content_encoding: "aws-chunked",
            trailer_name: None,
            trailers: Vec::new(),
            tamper: &|_, s| s,
            drop_trailer_signature: false,
            decoded_length_delta: 0,
            http_chunked: None,
        }
    }
}

/// The aws-chunked body of `data` for `up`, given the request's signature.
fn encode(up: &Upload<'_>, data: &[u8], unix: i64, seed: &str) -> Vec<u8> {
    let trailers: Vec<(&str, &str)> = up.trailers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if up.payload == UNSIGNED_TRAILER {
        return aws_chunked_unsigned(data, CHUNK, &trailers);
    }
    let mut signer = ChunkSigner::new(&creds(), unix, seed);
    let body = aws_chunked_signed(data, CHUNK, &mut signer, &trailers, up.tamper);
    if !up.drop_trailer_signature {
        return body;
    }
    // Cut the x-amz-trailer-signature line out of the finished body.
    let marker = b"x-amz-trailer-signature:";
    let at = body.windows(marker.len()).rposition(|w| w == marker).expect("a signed trailer");
    let end = at + body[at..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    [&body[..at], &body[end..]].concat()
}

/// Sends a streaming PUT of `data` to `bucket/key`.
fn put_streaming(node: &Node, bucket: &str, key: &str, data: &[u8], up: &Upload<'_>) -> RawResponse {
    let unix = now_unix();
    let encoded_len = encode(up, data, unix, &"0".repeat(64)).len();
    let decoded = (data.len() as i64 + up.decoded_length_delta).to_string();
    let mut req = Request::new("PUT", &object_path(bucket, key), &node.addr.to_string())
        .header("Content-Encoding", up.content_encoding)
        .header("x-amz-decoded-content-length", &decoded);
    if let Some(t) = up.trailer_name {
        req = req.header("x-amz-trailer", t);
    }
    req = match up.http_chunked {
        None => req.header("Content-Length", &encoded_len.to_string()),
        Some(_) => req.header("Transfer-Encoding", "chunked"),
    };
    let mut req = req.sign_v4_at(&creds(), unix, up.payload);
    let body = encode(up, data, unix, &req.signature);
    req.body = match up.http_chunked {
        None => body,
        Some(piece) => http_chunked(&body, piece),
    };
    send(node.addr, &req)
}

fn get(node: &Node, bucket: &str, key: &str, extra: &[(&str, &str)]) -> RawResponse {
    let mut req = Request::new("GET", &object_path(bucket, key), &node.addr.to_string());
    for (n, v) in extra {
        req = req.header(n, v);
    }
    send(node.addr, &req.sign_v4(&creds()))
}

/// The signature with its first hex digit changed.
fn flip(s: String) -> String {
    let first = if s.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &s[1..])
}

fn make_bucket(node: &Node, bucket: &str) {
    let r = send(node.addr, &Request::new("PUT", &format!("/{bucket}"), &node.addr.to_string()).sign_v4(&creds()));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[track_caller]
fn assert_stored(node: &Node, key: &str, data: &[u8]) {
    let r = get(node, "stream", key, &[]);
    assert_eq!(r.status, 200, "{key}: {}", r.text());
    assert!(r.body == data, "{key}: stored {} bytes, sent {}", r.body.len(), data.len());
    assert!(
        !r.header("content-encoding").is_some_and(|e| e.to_ascii_lowercase().contains("aws-chunked")),
        "{key}: aws-chunked leaked into the stored Content-Encoding: {:?}",
        r.header("content-encoding")
    );
}

#[track_caller]
fn assert_absent(node: &Node, key: &str) {
    assert_error(&get(node, "stream", key, &[]), 404, "NoSuchKey");
}

#[test]
fn signed_chunks() {
    let node = Node::start("stream-signed", &[]);
    make_bucket(&node, "stream");
    let data = bytes(1, 3 * CHUNK + 1234);

    let r = put_streaming(&node, "stream", "ok", &data, &Upload::default());
    assert_eq!(r.status, 200, "{}", r.text());
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&data));
    assert_eq!(r.header("etag"), Some(format!("\"{md5}\"").as_str()), "ETag is the MD5 of the decoded bytes");
    assert_stored(&node, "ok", &data);
    assert_eq!(get(&node, "stream", "ok", &[]).header("content-encoding"), None);

    // A real encoding next to aws-chunked is kept, without aws-chunked.
    let up = Upload { content_encoding: "aws-chunked,gzip", ..Upload::default() };
    assert_eq!(put_streaming(&node, "stream", "gz", &data, &up).status, 200);
    assert_stored(&node, "gz", &data);
    assert_eq!(get(&node, "stream", "gz", &[]).header("content-encoding"), Some("gzip"));

    // An empty object: only the final chunk.
    assert_eq!(put_streaming(&node, "stream", "empty", b"", &Upload::default()).status, 200);
    assert_stored(&node, "empty", b"");

    // One chunk signature altered (the second, the final one): refused, nothing stored.
    for (i, key) in [(1usize, "bad-second"), (4, "bad-final"), (0, "bad-first")] {
        let tamper = move |j: usize, s: String| if j == i { flip(s) } else { s };
        let up = Upload { tamper: &tamper, ..Upload::default() };
        let r = put_streaming(&node, "stream", key, &data, &up);
        assert_error(&r, 403, "SignatureDoesNotMatch");
        assert_absent(&node, key);
    }
    // An existing object is not replaced by a refused upload.
    let tamper = |j: usize, s: String| if j == 2 { "f".repeat(64) } else { s };
    let r =
        put_streaming(&node, "stream", "ok", &bytes(2, CHUNK * 3), &Upload { tamper: &tamper, ..Upload::default() });
    assert_error(&r, 403, "SignatureDoesNotMatch");
    assert_stored(&node, "ok", &data);

    // x-amz-decoded-content-length that is not the decoded length.
    let up = Upload { decoded_length_delta: 1, ..Upload::default() };
    let r = put_streaming(&node, "stream", "short", &data, &up);
    assert_error(&r, 400, "IncompleteBody");
    assert_absent(&node, "short");

    // Chunk bytes changed after signing (same length): the chunk signature fails.
    let unix = now_unix();
    let up = Upload::default();
    let encoded_len = encode(&up, &data, unix, &"0".repeat(64)).len();
    let mut req = Request::new("PUT", &object_path("stream", "flipped"), &node.addr.to_string())
        .header("Content-Encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("Content-Length", &encoded_len.to_string())
        .sign_v4_at(&creds(), unix, SIGNED);
    let mut body = encode(&up, &data, unix, &req.signature);
    let at = body.len() / 2;
    body[at] ^= 0x55;
    req.body = body;
    assert_error(&send(node.addr, &req), 403, "SignatureDoesNotMatch");
    assert_absent(&node, "flipped");
}

#[test]
fn unsigned_trailer_crc32() {
    let node = Node::start("stream-trailer", &[]);
    make_bucket(&node, "stream");
    let data = bytes(3, 2 * CHUNK + 77);
    let crc = crc32_b64(&data);
    let up = |trailers: Vec<(&'static str, String)>| Upload {
        payload: UNSIGNED_TRAILER,
        trailer_name: Some("x-amz-checksum-crc32"),
        trailers,
        ..Upload::default()
    };

    let r = put_streaming(&node, "stream", "crc", &data, &up(vec![("x-amz-checksum-crc32", crc.clone())]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-amz-checksum-crc32"), Some(crc.as_str()), "PutObject echoes the checksum");
    assert_stored(&node, "crc", &data);
    let g = get(&node, "stream", "crc", &[("x-amz-checksum-mode", "ENABLED")]);
    assert_eq!(g.header("x-amz-checksum-crc32"), Some(crc.as_str()), "GET with checksum mode echoes it");
    let g = get(&node, "stream", "crc", &[]);
    assert_eq!(g.header("x-amz-checksum-crc32"), None, "only with x-amz-checksum-mode: ENABLED");

    // The wrong CRC: BadDigest, nothing stored.
    let wrong = crc32_b64(b"something else");
    let r = put_streaming(&node, "stream", "wrong", &data, &up(vec![("x-amz-checksum-crc32", wrong)]));
    assert_error(&r, 400, "BadDigest");
    assert_absent(&node, "wrong");
    // A declared trailer that never comes.
    let r = put_streaming(&node, "stream", "missing", &data, &up(vec![]));
    assert_error(&r, 400, "IncompleteBody");
    assert_absent(&node, "missing");
    // A trailer value that is not a CRC32 at all.
    let r = put_streaming(&node, "stream", "garbage", &data, &up(vec![("x-amz-checksum-crc32", "!!".into())]));
    assert_error_in(&r, &[(400, "InvalidRequest"), (400, "BadDigest"), (400, "InvalidDigest")]);
    assert_absent(&node, "garbage");

    // Broken aws-chunked framing: a size that is not hex.
    let unix = now_unix();
    let mut body = aws_chunked_unsigned(&data, CHUNK, &[("x-amz-checksum-crc32", &crc)]);
    body[0] = b'z';
    let req = Request::new("PUT", &object_path("stream", "framing"), &node.addr.to_string())
        .header("Content-Encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", &data.len().to_string())
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(body)
        .sign_v4_at(&creds(), unix, UNSIGNED_TRAILER);
    let r = send(node.addr, &req);
    assert_error_in(&r, &[(400, "IncompleteBody"), (400, "InvalidRequest")]);
    assert_absent(&node, "framing");
    // Chunk data longer than its declared size.
    let mut body = aws_chunked_unsigned(b"hello", CHUNK, &[]);
    body.splice(3..3, b"XX".iter().copied());
    let req = Request::new("PUT", &object_path("stream", "long-chunk"), &node.addr.to_string())
        .header("Content-Encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "5")
        .body(body)
        .sign_v4_at(&creds(), unix, UNSIGNED_TRAILER);
    assert_error_in(&send(node.addr, &req), &[(400, "IncompleteBody"), (400, "InvalidRequest")]);
    assert_absent(&node, "long-chunk");
    // The node still serves.
    assert_stored(&node, "crc", &data);
}

#[test]
fn signed_trailer_crc32() {
    let node = Node::start("stream-signed-trailer", &[]);
    make_bucket(&node, "stream");
    let data = bytes(4, CHUNK + 5);
    let crc = crc32_b64(&data);
    let up = || Upload {
        payload: SIGNED_TRAILER,
        trailer_name: Some("x-amz-checksum-crc32"),
        trailers: vec![("x-amz-checksum-crc32", crc.clone())],
        ..Upload::default()
    };
    let r = put_streaming(&node, "stream", "signed", &data, &up());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-amz-checksum-crc32"), Some(crc.as_str()));
    assert_stored(&node, "signed", &data);
    let g = get(&node, "stream", "signed", &[("x-amz-checksum-mode", "ENABLED")]);
    assert_eq!(g.header("x-amz-checksum-crc32"), Some(crc.as_str()));

    // The trailer signature altered.
    let tamper = |i: usize, s: String| if i == usize::MAX { "0".repeat(64) } else { s };
    let r = put_streaming(&node, "stream", "bad-trailer-sig", &data, &Upload { tamper: &tamper, ..up() });
    assert_error(&r, 403, "SignatureDoesNotMatch");
    assert_absent(&node, "bad-trailer-sig");
    // A chunk signature altered in the trailer variant.
    let tamper = |i: usize, s: String| if i == 0 { "0".repeat(64) } else { s };
    let r = put_streaming(&node, "stream", "bad-chunk-sig", &data, &Upload { tamper: &tamper, ..up() });
    assert_error(&r, 403, "SignatureDoesNotMatch");
    assert_absent(&node, "bad-chunk-sig");
    // The wrong CRC, correctly signed: BadDigest.
    let wrong = Upload { trailers: vec![("x-amz-checksum-crc32", crc32_b64(b"nope"))], ..up() };
    let r = put_streaming(&node, "stream", "bad-crc", &data, &wrong);
    assert_error(&r, 400, "BadDigest");
    assert_absent(&node, "bad-crc");
    // The trailer signature left out: the signed-trailer form promises one,
    // so an unsigned trailer (which anyone could have rewritten) is refused.
    let r = put_streaming(&node, "stream", "no-trailer-sig", &data, &Upload { drop_trailer_signature: true, ..up() });
    assert_error_in(&r, &[(403, "SignatureDoesNotMatch"), (400, "IncompleteBody"), (400, "InvalidRequest")]);
    assert_absent(&node, "no-trailer-sig");
}

#[test]
fn transfer_encoding_chunked_without_content_length() {
    let node = Node::start("stream-te", &[]);
    make_bucket(&node, "stream");
    let data = bytes(5, 2 * CHUNK + 999);
    let crc = crc32_b64(&data);

    // aws-chunked with an unsigned trailer inside HTTP chunked (what SDKs send over TLS).
    let up = Upload {
        payload: UNSIGNED_TRAILER,
        trailer_name: Some("x-amz-checksum-crc32"),
        trailers: vec![("x-amz-checksum-crc32", crc.clone())],
        http_chunked: Some(1000),
        ..Upload::default()
    };
    let r = put_streaming(&node, "stream", "te-unsigned", &data, &up);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_stored(&node, "te-unsigned", &data);
    let g = get(&node, "stream", "te-unsigned", &[("x-amz-checksum-mode", "ENABLED")]);
    assert_eq!(g.header("x-amz-checksum-crc32"), Some(crc.as_str()));

    // Signed chunks inside HTTP chunked, in odd-sized pieces.
    let up = Upload { http_chunked: Some(7777), ..Upload::default() };
    let r = put_streaming(&node, "stream", "te-signed", &data, &up);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_stored(&node, "te-signed", &data);

    // Signed chunks with a signed trailer, inside HTTP chunked.
    let up = Upload {
        payload: SIGNED_TRAILER,
        trailer_name: Some("x-amz-checksum-crc32"),
        trailers: vec![("x-amz-checksum-crc32", crc.clone())],
        http_chunked: Some(4096),
        ..Upload::default()
    };
    let r = put_streaming(&node, "stream", "te-signed-trailer", &data, &up);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_stored(&node, "te-signed-trailer", &data);

    // A tampered chunk signature inside HTTP chunked is still caught.
    let tamper = |i: usize, s: String| if i == 1 { "a".repeat(64) } else { s };
    let up = Upload { tamper: &tamper, http_chunked: Some(5000), ..Upload::default() };
    assert_error(&put_streaming(&node, "stream", "te-bad", &data, &up), 403, "SignatureDoesNotMatch");
    assert_absent(&node, "te-bad");

    // Plain HTTP chunked (no aws-chunked), with the SHA-256 signed and unsigned.
    let h = node.addr.to_string();
    for (key, payload) in [("te-plain-sha", sha256_hex(&data)), ("te-plain-unsigned", "UNSIGNED-PAYLOAD".into())] {
        let mut req = Request::new("PUT", &object_path("stream", key), &h)
            .header("Transfer-Encoding", "chunked")
            .sign_v4_at(&creds(), now_unix(), &payload);
        req.body = http_chunked(&data, 10_000);
        let r = send(node.addr, &req);
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert_stored(&node, key, &data);
    }
    // Plain HTTP chunked whose body does not hash to the signed SHA-256.
    let mut req = Request::new("PUT", &object_path("stream", "te-plain-bad"), &h)
        .header("Transfer-Encoding", "chunked")
        .sign_v4_at(&creds(), now_unix(), &sha256_hex(b"other"));
    req.body = http_chunked(&data, 10_000);
    assert_error(&send(node.addr, &req), 400, "XAmzContentSHA256Mismatch");
    assert_absent(&node, "te-plain-bad");
}
