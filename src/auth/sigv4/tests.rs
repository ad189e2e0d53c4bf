//! SigV4 header authentication: AWS's worked examples, client round trips, refusals.

use sha2::{Digest, Sha256};

use super::*;
use crate::auth::testutil::{ACCESS_KEY, ClientRequest, EMPTY_HASH, EXAMPLE_NOW, MapStore, SECRET_KEY, headers, view};
use crate::auth::{PayloadCheck, authenticate};

const SCOPE: &str = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";

fn auth_header(signed: &str, signature: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders={signed},Signature={signature}")
}

fn run(method: &str, path: &str, query: &str, h: &[(String, String)]) -> Result<Authenticated, Error> {
    authenticate(&view(method, path, query, h, EXAMPLE_NOW), &MapStore::with(&[]))
}

/// "Example: GET Object" (Single Chunk page): the first 10 bytes of test.txt.
fn get_object_headers(signature: &str) -> Vec<(String, String)> {
    headers(&[
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_HASH),
        ("x-amz-date", "20130524T000000Z"),
        ("Authorization", &auth_header("host;range;x-amz-content-sha256;x-amz-date", signature)),
    ])
}

const GET_OBJECT_SIG: &str = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

#[test]
fn aws_example_get_object() {
    let h = get_object_headers(GET_OBJECT_SIG);
    let auth = run("GET", "/test.txt", "", &h).expect("AWS GET Object example");
    assert_eq!(auth.identity, Identity::User { access_key: ACCESS_KEY.into() });
    let PayloadCheck::Sha256(hash) = auth.payload else { panic!("a hex x-amz-content-sha256 must be checked") };
    assert_eq!(hex::encode(hash), EMPTY_HASH);
}

#[test]
fn aws_example_put_object() {
    // "Example: PUT Object": test$file.text, body "Welcome to Amazon S3.". The request line in
    // the example has no leading slash; the raw `$` and its escape must sign alike.
    let body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(hex::encode(Sha256::digest(b"Welcome to Amazon S3.")), body_hash);
    let h = headers(&[
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", body_hash),
        (
            "Authorization",
            &auth_header(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
        ),
    ]);
    for path in ["test$file.text", "/test$file.text", "/test%24file.text"] {
        let auth = run("PUT", path, "", &h).expect(path);
        let PayloadCheck::Sha256(hash) = auth.payload else { panic!("signed payload expected") };
        assert_eq!(hex::encode(hash), body_hash);
    }
}

#[test]
fn aws_example_get_bucket_lifecycle() {
    let h = headers(&[
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_HASH),
        (
            "Authorization",
            &auth_header(
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
        ),
    ]);
    run("GET", "/", "lifecycle", &h).expect("AWS GET Bucket Lifecycle example");
}

#[test]
fn aws_example_list_objects() {
    let h = headers(&[
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY_HASH),
        (
            "Authorization",
            &auth_header(
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ),
    ]);
    run("GET", "/", "max-keys=2&prefix=J", &h).expect("AWS GET Bucket example");
    // The same request with its parameters in the other order signs identically.
    run("GET", "/", "prefix=J&max-keys=2", &h).expect("query order is irrelevant");
}

fn streaming_headers(payload: &str, signed: &str, signature: &str) -> Vec<(String, String)> {
    let mut h = headers(&[
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", payload),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
    ]);
    h.push(("authorization".into(), auth_header(signed, signature)));
    h
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[test]
fn aws_example_chunked_upload_seed_and_chain() {
    // "Example: PUT Object" of the Multiple Chunks page: seed signature from the headers,
    // then the three chunk signatures chain from it.
    let h = streaming_headers(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
         x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    );
    let auth = run("PUT", "/examplebucket/chunkObject.txt", "", &h).expect("seed");
    let PayloadCheck::StreamingSigned { mut verifier, trailer } = auth.payload else {
        panic!("streaming payload expected")
    };
    assert!(!trailer);
    for (signature, data) in [
        ("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", &[b'a'; 65_536][..]),
        ("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", &[b'a'; 1_024][..]),
        ("b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", &[][..]),
    ] {
        verifier.verify_chunk(signature, &sha(data)).expect("chunk");
    }
}

#[test]
fn aws_example_chunked_upload_with_trailer() {
    // The trailing-headers page's example: seed over headers that include x-amz-trailer.
    let mut h = streaming_headers(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;\
         x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    );
    h.push(("x-amz-trailer".into(), "x-amz-checksum-crc32c".into()));
    let auth = run("PUT", "/examplebucket/chunkObject.txt", "", &h).expect("trailer seed");
    let PayloadCheck::StreamingSigned { mut verifier, trailer } = auth.payload else {
        panic!("streaming payload expected")
    };
    assert!(trailer);
    verifier
        .verify_chunk("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2", &sha(&[b'a'; 65_536]))
        .expect("chunk 1");
    verifier
        .verify_chunk("1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7", &sha(&[b'a'; 1_024]))
        .expect("chunk 2");
    verifier
        .verify_chunk("2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", &sha(b""))
        .expect("final chunk");
    verifier
        .verify_trailer(
            "x-amz-checksum-crc32c:sOO8/Q==\n",
            "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
        )
        .expect("trailer");
}

/// A client-signed request for `key`, with the given payload line and extra signed headers.
fn client_request<'a>(key: &'a str, payload: &'a str) -> ClientRequest<'a> {
    ClientRequest {
        method: "PUT",
        path: key,
        query: Vec::new(),
        headers: vec![
            ("host".into(), "localhost:9000".into()),
            ("x-amz-content-sha256".into(), payload.into()),
            ("x-amz-date".into(), "20130524T000000Z".into()),
        ],
        payload,
        amz_date: "20130524T000000Z",
        region: "us-east-1",
    }
}

fn send(req: &ClientRequest<'_>, authorization: &str, now: i64) -> Result<Authenticated, Error> {
    let mut h = req.headers.clone();
    h.push(("authorization".into(), authorization.into()));
    let (path, query) = (req.raw_path(), req.raw_query());
    authenticate(&view(req.method, &path, &query, &h, now), &MapStore::with(&[("AK+/=x", "secret/with+chars")]))
}

#[test]
fn client_round_trip_for_awkward_keys() {
    for key in [
        "/bucket/my key.txt",
        "/bucket/a+b=c&d",
        "/bucket/100%",
        "/bucket/café/日本語/🎉",
        "/bucket/a//b/./c/../d",
        "/bucket/sp ace/ tab\t/!*'();:@$,[]#?",
        "/bucket/~user_name-1.0",
    ] {
        let mut req = client_request(key, EMPTY_HASH);
        req.query = vec![
            ("prefix".into(), "a b+c/é".into()),
            ("delimiter".into(), "/".into()),
            ("empty".into(), String::new()),
        ];
        let authorization = req.authorization(ACCESS_KEY, SECRET_KEY);
        send(&req, &authorization, EXAMPLE_NOW).unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
    }
}

#[test]
fn every_payload_form_is_accepted_and_classified() {
    let cases = [
        ("UNSIGNED-PAYLOAD", "unsigned"),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "signed"),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "signed-trailer"),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "unsigned-trailer"),
        (EMPTY_HASH, "sha256"),
    ];
    for (payload, kind) in cases {
        let req = client_request("/bucket/key", payload);
        let authorization = req.authorization(ACCESS_KEY, SECRET_KEY);
        let auth = send(&req, &authorization, EXAMPLE_NOW).expect(payload);
        let got = match auth.payload {
            PayloadCheck::Unsigned => "unsigned",
            PayloadCheck::StreamingSigned { trailer: false, .. } => "signed",
            PayloadCheck::StreamingSigned { trailer: true, .. } => "signed-trailer",
            PayloadCheck::StreamingUnsignedTrailer => "unsigned-trailer",
            PayloadCheck::Sha256(_) => "sha256",
        };
        assert_eq!(got, kind, "{payload}");
    }
}

#[test]
fn access_keys_with_special_characters() {
    let req = client_request("/bucket/key", "UNSIGNED-PAYLOAD");
    let authorization = req.authorization("AK+/=x", "secret/with+chars");
    let auth = send(&req, &authorization, EXAMPLE_NOW).expect("key with + / =");
    assert_eq!(auth.identity, Identity::User { access_key: "AK+/=x".into() });
}

#[test]
fn refusals_carry_the_s3_codes() {
    let req = client_request("/bucket/key", "UNSIGNED-PAYLOAD");
    let good = req.authorization(ACCESS_KEY, SECRET_KEY);
    let code =
        |authorization: &str, now: i64| send(&req, authorization, now).map(|_| "OK").unwrap_or_else(|e| e.code());
    assert_eq!(code(&good, EXAMPLE_NOW), "OK");
    assert_eq!(code(&good, EXAMPLE_NOW + 900), "OK");
    assert_eq!(code(&good, EXAMPLE_NOW + 901), "RequestTimeTooSkewed");
    assert_eq!(code(&good, EXAMPLE_NOW - 901), "RequestTimeTooSkewed");
    let unknown = req.authorization("NOSUCHKEY", SECRET_KEY);
    assert_eq!(code(&unknown, EXAMPLE_NOW), "InvalidAccessKeyId");
    let wrong_secret = req.authorization(ACCESS_KEY, "not-the-secret");
    assert_eq!(code(&wrong_secret, EXAMPLE_NOW), "SignatureDoesNotMatch");
    let last = good.chars().last().expect("non-empty");
    let flipped = format!("{}{}", &good[..good.len() - 1], if last == '0' { '1' } else { '0' });
    assert_eq!(code(&flipped, EXAMPLE_NOW), "SignatureDoesNotMatch");
    let other_region = good.replace("/us-east-1/", "/eu-west-1/");
    let err = send(&req, &other_region, EXAMPLE_NOW).unwrap_err();
    assert_eq!(err.code(), "AuthorizationHeaderMalformed");
    assert_eq!(
        err.to_string(),
        "The authorization header is malformed; the region 'eu-west-1' is wrong; \
         expecting 'us-east-1'"
    );
    let other_service = good.replace("/s3/", "/ec2/");
    assert_eq!(code(&other_service, EXAMPLE_NOW), "AuthorizationHeaderMalformed");
    let other_terminal = good.replace("aws4_request", "aws5_request");
    assert_eq!(code(&other_terminal, EXAMPLE_NOW), "AuthorizationHeaderMalformed");
    let other_day = good.replace("/20130524/", "/20130525/");
    assert_eq!(code(&other_day, EXAMPLE_NOW), "AuthorizationHeaderMalformed");
}

#[test]
fn signature_mismatch_reports_the_canonical_request() {
    let req = client_request("/bucket/my key", "UNSIGNED-PAYLOAD");
    let authorization = req.authorization(ACCESS_KEY, "wrong");
    let Err(Error::SignatureDoesNotMatch(details)) = send(&req, &authorization, EXAMPLE_NOW) else {
        panic!("mismatch expected")
    };
    assert_eq!(details.access_key, ACCESS_KEY);
    let canonical = details.canonical_request.expect("SigV4 has a canonical request");
    assert!(canonical.starts_with("PUT\n/bucket/my%20key\n\n"));
    assert!(canonical.ends_with("\nUNSIGNED-PAYLOAD"));
    assert!(details.string_to_sign.starts_with("AWS4-HMAC-SHA256\n20130524T000000Z\n"));
}

#[test]
fn headers_rules() {
    // A header the signature lists but the request lacks.
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.retain(|(n, _)| n != "range");
    let err = run("GET", "/test.txt", "", &h).unwrap_err();
    assert_eq!(err, Error::MissingSecurityHeader { header: "range".into() });
    // An x-amz header the signature does not cover.
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.push(("x-amz-acl".into(), "public-read".into()));
    h.push(("x-amz-copy-source".into(), "/b/k".into()));
    let err = run("GET", "/test.txt", "", &h).unwrap_err();
    assert_eq!(err, Error::HeadersNotSigned { headers: "x-amz-acl,x-amz-copy-source".into() });
    // Duplicate headers join with commas, so adding a second Range changes the signature.
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.push(("range".into(), "bytes=10-19".into()));
    assert_eq!(run("GET", "/test.txt", "", &h).unwrap_err().code(), "SignatureDoesNotMatch");
    // Unsigned headers that are not x-amz-* do not matter.
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.push(("user-agent".into(), "test".into()));
    h.push(("x-amzn-trace-id".into(), "Root=1".into()));
    run("GET", "/test.txt", "", &h).expect("unsigned ordinary headers are fine");
}

#[test]
fn content_sha256_is_required_and_validated() {
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.retain(|(n, _)| n != "x-amz-content-sha256");
    let err = run("GET", "/test.txt", "", &h).unwrap_err();
    assert_eq!(err, Error::InvalidRequest("Missing required header for this request: x-amz-content-sha256".into()));
    for bad in ["", "abc", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "unsigned-payload"] {
        let mut h = get_object_headers(GET_OBJECT_SIG);
        for (n, v) in h.iter_mut() {
            if n == "x-amz-content-sha256" {
                *v = bad.into();
            }
        }
        assert_eq!(run("GET", "/test.txt", "", &h).unwrap_err().code(), "InvalidArgument", "{bad:?}");
    }
}

#[test]
fn date_header_fallbacks() {
    // Only `Date`, in ISO 8601 basic or RFC 7231 form; both sign the same timestamp.
    for date in ["20130524T000000Z", "Fri, 24 May 2013 00:00:00 GMT"] {
        let mut req = client_request("/bucket/key", "UNSIGNED-PAYLOAD");
        req.headers.retain(|(n, _)| n != "x-amz-date");
        req.headers.push(("date".into(), date.into()));
        let authorization = req.authorization(ACCESS_KEY, SECRET_KEY);
        send(&req, &authorization, EXAMPLE_NOW).expect(date);
    }
    let mut h = get_object_headers(GET_OBJECT_SIG);
    h.retain(|(n, _)| n != "x-amz-date");
    assert_eq!(
        run("GET", "/test.txt", "", &h).unwrap_err(),
        Error::AccessDenied("AWS authentication requires a valid Date or x-amz-date header".into())
    );
}

#[test]
fn authorization_parsing() {
    let spaced = "AWS4-HMAC-SHA256 Credential=a/b,  SignedHeaders=host , Signature=ff";
    let parts = parse_authorization(spaced).expect("spaces");
    assert_eq!(parts.credential, "a/b");
    assert_eq!(parts.signed_headers, "host");
    assert_eq!(parts.signature, "ff");
    let tight = "AWS4-HMAC-SHA256 Credential=a/b,SignedHeaders=host,Signature=ff,Extra=1";
    assert!(parse_authorization(tight).is_ok());
    let cases = [
        ("AWS4-HMAC-SHA256", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 ", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential", "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 Signature=a, Signature=b, Credential=c, SignedHeaders=d", "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256X Credential=a", "InvalidArgument"),
    ];
    for (value, code) in cases {
        assert_eq!(parse_authorization(value).unwrap_err().code(), code, "{value}");
    }
}

#[test]
fn credential_parsing() {
    let ok = parse_credential("AK/x/20130524/us-east-1/s3/aws4_request", "us-east-1");
    assert_eq!(ok, Ok(Credential { access_key: "AK/x".into(), date: "20130524".into() }));
    for bad in [
        "",
        "AK",
        "20130524/us-east-1/s3/aws4_request",
        "/20130524/us-east-1/s3/aws4_request",
        "AK/2013052/us-east-1/s3/aws4_request",
        "AK/20131324/us-east-1/s3/aws4_request",
        "AK/2013052é/us-east-1/s3/aws4_request",
    ] {
        assert!(parse_credential(bad, "us-east-1").is_err(), "{bad:?}");
    }
}

#[test]
fn garbage_never_panics() {
    let long = "x".repeat(100_000);
    let values = [
        String::new(),
        " ".into(),
        "AWS4-HMAC-SHA256".into(),
        "AWS4-HMAC-SHA256 =,=,=".into(),
        "AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=".into(),
        "AWS4-HMAC-SHA256 Credential=////,SignedHeaders=;;;,Signature=zz".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={long}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={long}"
        ),
        "AWS4-HMAC-SHA256 Credential=é/20130524/us-east-1/s3/aws4_request,SignedHeaders=hóst,Signature=é".into(),
        format!("AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders=host;x-amz-date,Signature={}", "0".repeat(64)),
        "Bearer token".into(),
        "AWS4-ECDSA-P256-SHA256 Credential=x".into(),
        long.clone(),
    ];
    let header_sets = [
        vec![],
        vec![("x-amz-date", "garbage")],
        vec![("x-amz-date", "20130524T000000Z"), ("x-amz-date", "20130524T000000Z")],
        vec![("x-amz-date", "20130524T000000Z"), ("host", "h"), ("x-amz-content-sha256", "é")],
        vec![("date", "Fri, 99 May 2013 00:00:00 GMT"), ("host", "")],
        vec![("x-amz-date", "20130524T000000Z"), ("host", &long), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
    ];
    for value in &values {
        for set in &header_sets {
            let mut h = headers(set);
            h.push(("authorization".into(), value.clone()));
            for (path, query) in [("", ""), ("/%", "%=%&&=&é"), ("é//%zz", &long[..])] {
                assert!(run("GET", path, query, &h).is_err());
            }
        }
    }
}
