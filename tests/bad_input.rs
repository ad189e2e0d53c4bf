//! Bad and unusual input on raw sockets: truncated and lying bodies, broken
//! chunked framing, oversized heads, S3 size limits, digests, pipelining and
//! `Expect: 100-continue`. Every refusal is checked for status and S3 code,
//! and the node must keep serving afterwards.

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::io::Write;
use std::time::Duration;

use common::*;
use sign::*;

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

struct Fixture {
    node: Node,
    host: String,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let node = Node::start(name, &[]);
        let host = node.addr.to_string();
        let f = Fixture { node, host };
        assert_eq!(f.send(f.req("PUT", "/bad").sign_v4(&creds())).status, 200);
        f
    }
    fn req(&self, method: &str, path: &str) -> Request {
        Request::new(method, path, &self.host)
    }
    fn put(&self, key: &str, body: &[u8]) -> Request {
        self.req("PUT", &object_path("bad", key)).body(body.to_vec())
    }
    fn get(&self, key: &str) -> Request {
        self.req("GET", &object_path("bad", key))
    }
    fn send(&self, r: Request) -> RawResponse {
        send(self.node.addr, &r)
    }
    /// The node answers a fresh, signed request.
    #[track_caller]
    fn assert_serving(&self) {
        let r = self.send(self.req("GET", "/bad?list-type=2").sign_v4(&creds()));
        assert_eq!(r.status, 200, "node stopped serving: {}", r.text());
    }
    #[track_caller]
    fn assert_absent(&self, key: &str) {
        assert_error(&self.send(self.get(key).sign_v4(&creds())), 404, "NoSuchKey");
    }
    #[track_caller]
    fn assert_body(&self, key: &str, body: &[u8]) {
        let r = self.send(self.get(key).sign_v4(&creds()));
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert!(r.body == body, "{key}: {} bytes stored, {} expected", r.body.len(), body.len());
    }
}

#[test]
fn truncated_and_lying_bodies() {
    let f = Fixture::new("bad-body");
    let data = bytes(1, 100_000);

    // Content-Length larger than what is sent, then a half-close: the node
    // answers IncompleteBody and stores nothing.
    let req = f.put("half", &data).sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD");
    let bytes_out = req.bytes();
    let mut s = connect(f.node.addr);
    s.write_all(&bytes_out[..bytes_out.len() - 60_000]).unwrap();
    finish_sending(&s);
    match read_response(&mut s, false) {
        Ok(r) => assert_error(&r, 400, "IncompleteBody"),
        Err(e) => panic!("no answer to a truncated body: {e}"),
    }
    f.assert_absent("half");
    // The same, but the client vanishes entirely.
    let req = f.put("gone", &data).sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD");
    let bytes_out = req.bytes();
    let mut s = connect(f.node.addr);
    s.write_all(&bytes_out[..bytes_out.len() - 1]).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    f.assert_absent("gone");
    // A truncated signed body (hex SHA-256).
    let req = f.put("half-signed", &data).sign_v4(&creds());
    let bytes_out = req.bytes();
    let mut s = connect(f.node.addr);
    s.write_all(&bytes_out[..bytes_out.len() - 10]).unwrap();
    finish_sending(&s);
    if let Ok(r) = read_response(&mut s, false) {
        assert_error(&r, 400, "IncompleteBody");
    }
    f.assert_absent("half-signed");

    // A lying Content-Length followed by a second request on the same
    // connection: the body is framed by Content-Length, so the second
    // request's bytes are body bytes and never run as a request.
    assert_eq!(f.send(f.put("victim", b"still here").sign_v4(&creds())).status, 200);
    let delete = f.req("DELETE", &object_path("bad", "victim")).sign_v4(&creds()).bytes();
    let head_len = 5 + delete.len();
    let mut lying = f
        .req("PUT", &object_path("bad", "liar"))
        .header("Content-Length", &head_len.to_string())
        .sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD")
        .head_bytes();
    lying.extend_from_slice(b"hello");
    lying.extend_from_slice(&delete);
    let mut s = connect(f.node.addr);
    s.write_all(&lying).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The connection then serves a real request, in order.
    s.write_all(&f.get("liar").sign_v4(&creds()).bytes()).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, [b"hello".as_slice(), &delete].concat());
    f.assert_body("victim", b"still here");

    // Content-Length smaller than the bytes sent: the extra bytes start the
    // next request, which is garbage and refused with S3 XML.
    let mut short = f
        .req("PUT", &object_path("bad", "short"))
        .header("Content-Length", "3")
        .sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD")
        .head_bytes();
    short.extend_from_slice(b"abc\x01\x02 garbage \x03\r\n\r\n");
    let mut s = connect(f.node.addr);
    s.write_all(&short).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = read_response(&mut s, false).unwrap();
    assert_error(&r, 400, "InvalidRequest");
    f.assert_body("short", b"abc");
    // Two different Content-Lengths.
    let mut two = f.put("two-lengths", b"abcd").sign_v4(&creds());
    two.headers.push(("Content-Length".into(), "5".into()));
    assert_error(&f.send(two), 400, "InvalidRequest");
    f.assert_absent("two-lengths");
    f.assert_serving();
}

#[test]
fn broken_chunked_framing() {
    let f = Fixture::new("bad-chunked");
    let cases: [(&str, &[u8]); 4] = [
        ("non-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("missing-crlf", b"5\r\nhelloXX0\r\n\r\n"),
        ("too-long", b"3\r\nhello\r\n0\r\n\r\n"),
        ("size-overflow", b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ];
    // Every case is tried before failing, so one report shows them all.
    let mut failures = Vec::new();
    for (key, body) in cases {
        let mut req =
            f.put(key, b"").header("Transfer-Encoding", "chunked").sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD");
        req.body = body.to_vec();
        let mut s = connect(f.node.addr);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&req.bytes()).unwrap();
        match read_response(&mut s, false) {
            Ok(r) if matches!((r.status, r.code().as_str()), (400, "InvalidRequest" | "IncompleteBody")) => {}
            Ok(r) => failures.push(format!("{key}: answered {} {}: {}", r.status, r.code(), r.text())),
            Err(e) => failures.push(format!("{key}: no answer within 5 s ({e})")),
        }
        f.assert_absent(key);
    }
    // Chunked body cut off mid-chunk, then half-close.
    let mut req =
        f.put("cut", b"").header("Transfer-Encoding", "chunked").sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD");
    req.body = b"10\r\nonly-part".to_vec();
    let mut s = connect(f.node.addr);
    s.write_all(&req.bytes()).unwrap();
    finish_sending(&s);
    assert_error(&read_response(&mut s, false).unwrap(), 400, "IncompleteBody");
    f.assert_absent("cut");
    f.assert_serving();
    assert!(failures.is_empty(), "broken chunked framing must be answered 400 at once:\n{}", failures.join("\n"));
}

#[test]
fn oversized_heads() {
    let f = Fixture::new("bad-head");
    // One 100 KiB header.
    let big = "a".repeat(100 << 10);
    let bytes_out = f.get("x").header("x-big", &big).bytes();
    let mut s = connect(f.node.addr);
    write_lossy(&mut s, &bytes_out);
    let r = read_response(&mut s, false).expect("an answer to an oversized head");
    assert_error(&r, 400, "RequestHeaderSectionTooLarge");
    f.assert_serving();
    // 500 small headers.
    let mut req = f.get("x");
    for i in 0..500 {
        req = req.header(&format!("x-h{i}"), "v");
    }
    let mut s = connect(f.node.addr);
    write_lossy(&mut s, &req.bytes());
    let r = read_response(&mut s, false).expect("an answer to too many headers");
    assert_error(&r, 400, "RequestHeaderSectionTooLarge");
    f.assert_serving();
    // A head that never ends but stays under the limit is not answered as a
    // request; the node keeps serving others meanwhile.
    let mut slow = connect(f.node.addr);
    slow.write_all(b"GET /bad HTTP/1.1\r\nHost: x\r\n").unwrap();
    f.assert_serving();
    drop(slow);
}

#[test]
fn s3_limits_and_digests() {
    let f = Fixture::new("bad-limits");
    let cr = creds();
    // Keys: 1024 bytes is the limit, 1025 is too long (also in multi-byte characters).
    let ok = "k".repeat(1024);
    assert_eq!(f.send(f.put(&ok, b"x").sign_v4(&cr)).status, 200);
    f.assert_body(&ok, b"x");
    let long = "k".repeat(1025);
    assert_error(&f.send(f.put(&long, b"x").sign_v4(&cr)), 400, "KeyTooLongError");
    let long_utf8 = "é".repeat(513);
    assert_error(&f.send(f.put(&long_utf8, b"x").sign_v4(&cr)), 400, "KeyTooLongError");
    f.assert_serving();

    // User metadata: 2 KiB in all (names without the prefix, plus values).
    let fits = f.put("meta-ok", b"m").header("x-amz-meta-a", &"v".repeat(2000));
    assert_eq!(f.send(fits.sign_v4(&cr)).status, 200);
    let too_much = f.put("meta-big", b"m").header("x-amz-meta-a", &"v".repeat(2100));
    assert_error(&f.send(too_much.sign_v4(&cr)), 400, "MetadataTooLarge");
    let mut many = f.put("meta-many", b"m");
    for i in 0..30 {
        many = many.header(&format!("x-amz-meta-field{i:02}"), &"v".repeat(80));
    }
    assert_error(&f.send(many.sign_v4(&cr)), 400, "MetadataTooLarge");
    f.assert_absent("meta-big");
    f.assert_absent("meta-many");

    // Content-MD5: a mismatch is BadDigest, a malformed value InvalidDigest.
    let body = b"digest me";
    let good = f.put("md5-ok", body).header("Content-MD5", &content_md5(body));
    assert_eq!(f.send(good.sign_v4(&cr)).status, 200);
    let bad = f.put("md5-bad", body).header("Content-MD5", &content_md5(b"something else"));
    assert_error(&f.send(bad.sign_v4(&cr)), 400, "BadDigest");
    f.assert_absent("md5-bad");
    for (i, value) in ["not base64!", "AAAA", "", &b64(&[0u8; 20])].iter().enumerate() {
        let key = format!("md5-invalid-{i}");
        let r = f.send(f.put(&key, body).header("Content-MD5", value).sign_v4(&cr));
        assert_error(&r, 400, "InvalidDigest");
        f.assert_absent(&key);
    }
    // x-amz-checksum-crc32 in a header: a mismatch is BadDigest.
    let r = f.send(f.put("crc-ok", body).header("x-amz-checksum-crc32", &crc32_b64(body)).sign_v4(&cr));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = f.send(f.put("crc-bad", body).header("x-amz-checksum-crc32", &crc32_b64(b"x")).sign_v4(&cr));
    assert_error(&r, 400, "BadDigest");
    f.assert_absent("crc-bad");
    f.assert_serving();
}

#[test]
fn pipelining_and_expect_continue() {
    let f = Fixture::new("bad-pipeline");
    let cr = creds();
    assert_eq!(f.send(f.put("one", b"first object").sign_v4(&cr)).status, 200);
    assert_eq!(f.send(f.put("two", &bytes(2, 300_000)).sign_v4(&cr)).status, 200);

    // Three requests in one write: answered in order.
    let mut burst = f.get("one").sign_v4(&cr).bytes();
    burst.extend(f.get("two").sign_v4(&cr).bytes());
    burst.extend(f.get("missing").sign_v4(&cr).bytes());
    let mut s = connect(f.node.addr);
    s.write_all(&burst).unwrap();
    let r1 = read_response(&mut s, false).unwrap();
    let r2 = read_response(&mut s, false).unwrap();
    let r3 = read_response(&mut s, false).unwrap();
    assert_eq!((r1.status, r1.body.as_slice()), (200, b"first object".as_slice()));
    assert_eq!(r2.status, 200);
    assert!(r2.body == bytes(2, 300_000));
    assert_error(&r3, 404, "NoSuchKey");
    // A PUT with its body pipelined with a GET of the same key.
    let mut burst = f.put("three", b"written then read").sign_v4(&cr).bytes();
    burst.extend(f.get("three").sign_v4(&cr).bytes());
    s.write_all(&burst).unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    assert_eq!(read_response(&mut s, false).unwrap().body, b"written then read");

    // A refused request with a body, pipelined with a good one: the body is
    // skipped and the next request is still answered.
    let mut burst = f.put("refused", b"body of a refused PUT").sign_v4(&Creds::new(ACCESS_KEY, "wrong")).bytes();
    burst.extend(f.get("one").sign_v4(&cr).bytes());
    s.write_all(&burst).unwrap();
    assert_error(&read_response(&mut s, false).unwrap(), 403, "SignatureDoesNotMatch");
    assert_eq!(read_response(&mut s, false).unwrap().body, b"first object");
    f.assert_absent("refused");

    // Expect: 100-continue: the interim answer comes before the body is sent.
    let body = bytes(3, 50_000);
    let req = f.put("expect", &body).header("Expect", "100-continue").sign_v4(&cr);
    let mut s = connect(f.node.addr);
    s.write_all(&req.head_bytes()).unwrap();
    let interim = read_response(&mut s, true).expect("100 Continue before the body");
    assert_eq!(interim.status, 100);
    s.write_all(&req.body).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    f.assert_body("expect", &body);
    // A request that will be refused gets its final answer instead of 100.
    let req = f.put("expect-denied", &body).header("Expect", "100-continue").sign_v4(&Creds::new(ACCESS_KEY, "wrong"));
    let mut s = connect(f.node.addr);
    s.write_all(&req.head_bytes()).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_error(&r, 403, "SignatureDoesNotMatch");
    f.assert_absent("expect-denied");
    // The same for a bucket that does not exist.
    let req = f
        .req("PUT", &object_path("no-such-bucket", "k"))
        .body(body.clone())
        .header("Expect", "100-continue")
        .sign_v4(&cr);
    let mut s = connect(f.node.addr);
    s.write_all(&req.head_bytes()).unwrap();
    assert_error(&read_response(&mut s, false).unwrap(), 404, "NoSuchBucket");
    f.assert_serving();
}

#[test]
fn malformed_content_length() {
    let f = Fixture::new("bad-length");
    let mut failures = Vec::new();
    for (i, value) in ["-1", "abc", "+5", "5, 5", "0x5", " ", "99999999999999999999999"].iter().enumerate() {
        let key = format!("len-{i}");
        let req = f.req("PUT", &object_path("bad", &key)).header("Content-Length", value);
        let mut bytes_out = req.sign_v4_at(&creds(), now_unix(), "UNSIGNED-PAYLOAD").head_bytes();
        bytes_out.extend_from_slice(b"hello");
        let mut s = connect(f.node.addr);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&bytes_out).unwrap();
        match read_response(&mut s, false) {
            Ok(r) if r.status == 400 && r.code() == "InvalidRequest" => {}
            Ok(r) => failures.push(format!("Content-Length {value:?}: {} {}", r.status, r.text())),
            Err(e) => failures.push(format!("Content-Length {value:?}: no answer ({e})")),
        }
        let g = f.send(f.get(&key).sign_v4(&creds()));
        if g.status != 404 {
            failures
                .push(format!("Content-Length {value:?} stored an object ({:?})", String::from_utf8_lossy(&g.body)));
        }
    }
    f.assert_serving();
    assert!(failures.is_empty(), "a Content-Length that is not 1*DIGIT must be refused:\n{}", failures.join("\n"));
}

/// Content-Length together with Transfer-Encoding: chunked is the classic
/// request-smuggling shape (RFC 9112 section 6.3): chunked framing wins and
/// the connection must be closed after the answer.
#[test]
fn content_length_with_transfer_encoding() {
    let f = Fixture::new("bad-te-cl");
    let mut req = f.put("both", b"").header("Content-Length", "5").header("Transfer-Encoding", "chunked").sign_v4_at(
        &creds(),
        now_unix(),
        "UNSIGNED-PAYLOAD",
    );
    req.body = http_chunked(b"chunked body", 4);
    let mut s = connect(f.node.addr);
    s.write_all(&req.bytes()).unwrap();
    let r = read_response(&mut s, false).unwrap();
    if r.status == 200 {
        // If accepted, the body was framed as chunked, not by Content-Length.
        f.assert_body("both", b"chunked body");
    } else {
        assert_error(&r, 400, "InvalidRequest");
        f.assert_absent("both");
    }
    assert!(
        closed_by_server(&mut s, Duration::from_secs(3)),
        "the node kept a connection open after a request with both Content-Length and Transfer-Encoding"
    );
    f.assert_serving();
}

/// A large PUT that is refused before its body is read (unknown bucket,
/// wrong secret) must still reach the client as an S3 error: closing with
/// unread body bytes makes the kernel send a reset, which destroys the
/// answer before a client that is still writing can read it.
#[test]
fn refused_large_put_is_answered_not_reset() {
    let f = Fixture::new("bad-large-refused");
    let rt = rt();
    let good = sdk(&f.node.endpoint());
    let wrong = sdk_with(&f.node.endpoint(), ACCESS_KEY, "wrong-secret");
    let body = bytes(9, 8 << 20);
    rt.block_on(async {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        use aws_sdk_s3::primitives::ByteStream;
        let mut failures = Vec::new();
        // A few attempts each: whether the reset wins is a race.
        for _ in 0..3 {
            let e = good.put_object().bucket("no-such-bucket").key("k").body(ByteStream::from(body.clone())).send();
            let e = e.await.unwrap_err();
            if e.code() != Some("NoSuchBucket") {
                failures.push(format!("PUT 8 MiB to a missing bucket: {e:?}"));
            }
            let e = wrong.put_object().bucket("bad").key("k").body(ByteStream::from(body.clone())).send();
            let e = e.await.unwrap_err();
            if e.code() != Some("SignatureDoesNotMatch") {
                failures.push(format!("PUT 8 MiB with a wrong secret: {e:?}"));
            }
        }
        assert!(failures.is_empty(), "refused large PUTs must be answered with S3 XML:\n{}", failures.join("\n"));
    });
    f.assert_absent("k");
    f.assert_serving();
}
