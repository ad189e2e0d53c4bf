//! Mechanism selection, anonymous requests, payload checks and garbage input.

use super::testutil::{EMPTY_HASH, EXAMPLE_NOW, MapStore, headers, view};
use super::*;

fn run(query: &str, h: &[(String, String)]) -> Result<Authenticated, Error> {
    authenticate(&view("GET", "/bucket/key", query, h, EXAMPLE_NOW), &MapStore::with(&[]))
}

#[test]
fn no_credentials_is_anonymous() {
    for query in ["", "prefix=a&max-keys=2", "acl", "X-Amz-Date=20130524T000000Z", "Expires=1"] {
        let h = headers(&[("host", "localhost"), ("x-amz-content-sha256", EMPTY_HASH)]);
        let auth = run(query, &h).expect(query);
        assert_eq!(auth.identity, Identity::Anonymous);
        assert!(matches!(auth.payload, PayloadCheck::Unsigned));
    }
}

#[test]
fn only_one_mechanism_allowed() {
    let v4_header = ("authorization", "AWS4-HMAC-SHA256 Credential=a");
    let v2_header = ("authorization", "AWS a:b");
    let v4_query = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
    let v2_query = "AWSAccessKeyId=a&Signature=b&Expires=1";
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[v4_header], v4_query),
        (&[v4_header], v2_query),
        (&[v2_header], v4_query),
        (&[v2_header], v2_query),
        (&[], "X-Amz-Signature=a&Signature=b"),
        (&[v4_header, v2_header], ""),
    ];
    for (h, query) in cases {
        let err = run(query, &headers(h)).unwrap_err();
        assert_eq!(err.code(), "InvalidArgument", "{h:?} {query}");
        assert!(err.to_string().starts_with("Only one auth mechanism allowed"));
    }
}

#[test]
fn partial_presigned_parameters_are_an_error_not_anonymous() {
    for query in ["X-Amz-Credential=a", "X-Amz-Signature=a", "Signature=a", "AWSAccessKeyId=a"] {
        let err = run(query, &[]).unwrap_err();
        assert!(matches!(err.code(), "AuthorizationQueryParametersError" | "AccessDenied"), "{query}: {err:?}");
    }
}

#[test]
fn unsupported_authorization_types() {
    for value in ["Bearer abc", "Basic dXNlcjpwYXNz", "", "   ", "AWS4-ECDSA-P256-SHA256 x", "aws a:b"] {
        let err = run("", &headers(&[("authorization", value)])).unwrap_err();
        assert_eq!(err, Error::InvalidArgument("Unsupported Authorization Type".into()), "{value:?}");
    }
}

#[test]
fn payload_hash_comparison() {
    let a = [7u8; 32];
    let mut b = a;
    assert_eq!(verify_payload_sha256(&a, &b), Ok(()));
    b[31] ^= 1;
    let err = verify_payload_sha256(&a, &b).unwrap_err();
    assert_eq!(err.code(), "XAmzContentSHA256Mismatch");
    assert_eq!(err, Error::XAmzContentSHA256Mismatch { client_computed: hex::encode(a), s3_computed: hex::encode(b) });
}

/// Feeds combinations of hostile headers, paths and queries through every mechanism; each
/// must come back as a value (usually an error), never a panic.
#[test]
fn garbage_through_every_mechanism_never_panics() {
    let huge = "%".repeat(20_000);
    let authorizations = [
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=00",
        "AWS4-HMAC-SHA256 ,,,,====,,,,",
        "AWS4-HMAC-SHA256 Credential=é/é/é/é/é,SignedHeaders=é,Signature=é",
        "AWS :",
        "AWS é:é",
        "AWS AKIAIOSFODNN7EXAMPLE:====",
        "\u{0}\u{1}\u{7f}",
    ];
    let queries = [
        String::new(),
        "&&&===&&&".into(),
        "%%%%=%%%%".into(),
        huge.clone(),
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%2F%2F%2F%2F&X-Amz-Date=0&X-Amz-Expires=1&X-Amz-SignedHeaders=host&X-Amz-Signature=0".into(),
        "AWSAccessKeyId=%FF&Signature=%FF&Expires=99999999999".into(),
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=%FF&Expires=9999999999".into(),
    ];
    let header_sets: [Vec<(&str, &str)>; 4] = [
        vec![],
        vec![("host", ""), ("date", ""), ("x-amz-date", "")],
        vec![("host", "h"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", EMPTY_HASH)],
        vec![("date", "Tue, 27 Mar 2007 19:36:42 +0000"), ("x-amz-meta-é", "é"), ("content-type", "\t")],
    ];
    let paths = ["", "/", "%", "/%zz/%2F/..//", "é", &huge[..]];
    for query in &queries {
        for set in &header_sets {
            for path in paths {
                for now in [i64::MIN, 0, EXAMPLE_NOW, i64::MAX] {
                    let h = headers(set);
                    let req = RequestView {
                        method: "GET",
                        raw_path: path,
                        raw_query: query,
                        headers: &h,
                        now_unix: now,
                        region: "us-east-1",
                        virtual_host_bucket: Some("b"),
                    };
                    let _ = authenticate(&req, &MapStore::with(&[]));
                    for value in authorizations {
                        let mut h = h.clone();
                        h.push(("authorization".into(), value.into()));
                        let req = RequestView { headers: &h, ..req };
                        assert!(authenticate(&req, &MapStore::with(&[])).is_err());
                    }
                }
            }
        }
    }
}

/// One request of the botocore corpus.
struct CorpusCase {
    name: String,
    method: String,
    path: String,
    query: String,
    bucket: Option<String>,
    headers: Vec<(String, String)>,
}

/// Parses `testdata/botocore.txt` (see `testdata/botocore_gen.py` for how it is made).
fn corpus() -> Vec<CorpusCase> {
    let mut cases = Vec::new();
    let mut current: Option<CorpusCase> = None;
    for line in include_str!("testdata/botocore.txt").lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match (word, current.as_mut()) {
            ("case", None) => {
                current = Some(CorpusCase {
                    name: rest.into(),
                    method: String::new(),
                    path: String::new(),
                    query: String::new(),
                    bucket: None,
                    headers: Vec::new(),
                });
            }
            ("method", Some(case)) => case.method = rest.into(),
            ("path", Some(case)) => case.path = rest.into(),
            ("query", Some(case)) => case.query = rest.into(),
            ("bucket", Some(case)) => case.bucket = Some(rest.into()),
            ("header", Some(case)) => {
                let (name, value) = rest.split_once('\t').expect("header line has a tab");
                case.headers.push((name.into(), value.into()));
            }
            ("end", Some(_)) => cases.extend(current.take()),
            _ => assert!(line.starts_with('#'), "unexpected corpus line {line:?}"),
        }
    }
    cases
}

/// When the client signed the request, from whichever field carries it.
fn signed_at(case: &CorpusCase) -> i64 {
    let params = canonical::parse_query(&case.query);
    let param = |name: &str| params.iter().find(|p| p.name() == name).map(|p| p.value().into_owned());
    let header = |name: &'static str| canonical::header_values(&case.headers, name).next();
    if let Some(text) = header("x-amz-date").or(param("X-Amz-Date").as_deref()) {
        return date::parse_amz_date(text).expect("SigV4 date");
    }
    if let Some(text) = header("date") {
        return date::parse_http_date(text).expect("SigV2 date");
    }
    // SigV2 presigned URLs carry only their expiry; the generator asks for one hour.
    param("Expires").and_then(|e| e.parse::<i64>().ok()).expect("Expires") - 3_600
}

/// Every request boto3 signs (SigV4 and SigV2, header and presigned, path and virtual-host
/// style, keys with space, `+`, `%`, `=`, `&`, unicode and `//`, aws-chunked uploads with an
/// unsigned checksum trailer) authenticates, and the same request two hours later is refused
/// for its time.
#[test]
fn botocore_corpus_authenticates() {
    let cases = corpus();
    assert!(cases.len() > 200, "corpus has {} cases", cases.len());
    for case in &cases {
        let at = |now| {
            authenticate(
                &RequestView {
                    method: &case.method,
                    raw_path: &case.path,
                    raw_query: &case.query,
                    headers: &case.headers,
                    now_unix: now,
                    region: "us-east-1",
                    virtual_host_bucket: case.bucket.as_deref(),
                },
                &MapStore::with(&[]),
            )
        };
        let time = signed_at(case);
        let auth = at(time + 30).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_eq!(auth.identity, Identity::User { access_key: "AKIAIOSFODNN7EXAMPLE".into() }, "{}", case.name);
        let streaming = canonical::header_values(&case.headers, "x-amz-content-sha256")
            .any(|v| v == "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
        assert_eq!(streaming, matches!(auth.payload, PayloadCheck::StreamingUnsignedTrailer), "{}", case.name);
        let late = at(time + 7_200).expect_err(&case.name);
        assert!(matches!(late.code(), "RequestTimeTooSkewed" | "AccessDenied"), "{}: {late:?}", case.name);
    }
}
