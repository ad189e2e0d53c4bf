//! SigV4 presigned URLs: AWS's worked example, client round trips, refusals.

use super::*;
use crate::auth::testutil::{ACCESS_KEY, ClientRequest, EMPTY_HASH, EXAMPLE_NOW, MapStore, SECRET_KEY, headers, view};
use crate::auth::{PayloadCheck, authenticate};

/// The presigned URL of "Example: GET Object" on the Query Parameters page.
const AWS_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

fn host_only() -> Vec<(String, String)> {
    headers(&[("Host", "examplebucket.s3.amazonaws.com")])
}

fn run_at(query: &str, h: &[(String, String)], now: i64) -> Result<Authenticated, Error> {
    authenticate(&view("GET", "/test.txt", query, h, now), &MapStore::with(&[("AK+/x", "s+/=ecret")]))
}

fn code_at(query: &str, now: i64) -> &'static str {
    run_at(query, &host_only(), now).map(|_| "OK").unwrap_or_else(|e| e.code())
}

#[test]
fn aws_example_presigned_get_object() {
    let auth = run_at(AWS_QUERY, &host_only(), EXAMPLE_NOW).expect("AWS presigned example");
    assert_eq!(auth.identity, Identity::User { access_key: ACCESS_KEY.into() });
    assert!(matches!(auth.payload, PayloadCheck::Unsigned));
    // The canonical request AWS prints for this URL, and its hash in the string to sign.
    let params = crate::auth::canonical::parse_query(AWS_QUERY);
    let query = canonical_query(&params, Some("X-Amz-Signature"));
    let canonical =
        canonical_request("GET", "/test.txt", &query, &host_only(), &["host".to_owned()], "UNSIGNED-PAYLOAD");
    assert_eq!(
        signing::sha256_hex(canonical.as_bytes()),
        "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
    );
}

#[test]
fn validity_window() {
    assert_eq!(code_at(AWS_QUERY, EXAMPLE_NOW + 86_400), "OK");
    let expired = run_at(AWS_QUERY, &host_only(), EXAMPLE_NOW + 86_401).unwrap_err();
    assert_eq!(expired, Error::AccessDenied("Request has expired".into()));
    // Presigned URLs are not bound by the 15-minute skew: a day-old URL is still fine.
    assert_eq!(code_at(AWS_QUERY, EXAMPLE_NOW + 3_600), "OK");
    assert_eq!(code_at(AWS_QUERY, EXAMPLE_NOW - 900), "OK");
    let early = run_at(AWS_QUERY, &host_only(), EXAMPLE_NOW - 901).unwrap_err();
    assert_eq!(early, Error::AccessDenied("Request is not yet valid".into()));
}

#[test]
fn expires_must_be_one_second_to_seven_days() {
    for (expires, ok) in [
        ("1", true),
        ("604800", true),
        ("-1", false),
        ("604801", false),
        ("99999999999999999999999", false),
        ("abc", false),
        ("", false),
        ("+5", false),
        ("1e3", false),
        ("5%20", false),
    ] {
        let query = AWS_QUERY.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={expires}"));
        let code = code_at(&query, EXAMPLE_NOW);
        if ok {
            // The signature covers X-Amz-Expires, so a changed value fails only at the end.
            assert_eq!(code, "SignatureDoesNotMatch", "{expires:?}");
        } else {
            assert_eq!(code, "AuthorizationQueryParametersError", "{expires:?}");
        }
    }
    let zero = AWS_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=0");
    assert_eq!(
        run_at(&zero, &host_only(), EXAMPLE_NOW).unwrap_err(),
        Error::AccessDenied("Request has expired".into())
    );
    let duplicated = format!("{AWS_QUERY}&X-Amz-Expires=86400");
    assert_eq!(code_at(&duplicated, EXAMPLE_NOW), "AuthorizationQueryParametersError");
}

#[test]
fn malformed_parameters() {
    let without = |name: &str| AWS_QUERY.split('&').filter(|p| !p.starts_with(name)).collect::<Vec<_>>().join("&");
    for name in
        ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"]
    {
        assert_eq!(code_at(&without(name), EXAMPLE_NOW), "AuthorizationQueryParametersError", "{name}");
    }
    let swaps = [
        ("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"),
        ("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
        ("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
        ("%2Fus-east-1%2F", "%2Feu-west-1%2F"),
        ("%2Fs3%2F", "%2Fiam%2F"),
        ("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range"),
        ("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3B%3Brange"),
    ];
    for (from, to) in swaps {
        let query = AWS_QUERY.replace(from, to);
        assert_eq!(code_at(&query, EXAMPLE_NOW), "AuthorizationQueryParametersError", "{to}");
    }
    let region =
        run_at(&AWS_QUERY.replace("%2Fus-east-1%2F", "%2Feu-west-1%2F"), &host_only(), EXAMPLE_NOW).unwrap_err();
    assert!(region.to_string().contains("the region 'eu-west-1' is wrong; expecting 'us-east-1'"));
}

#[test]
fn tampering_and_unknown_keys() {
    let unknown = AWS_QUERY.replace("AKIAIOSFODNN7EXAMPLE", "AKIANOSUCHKEY");
    assert_eq!(code_at(&unknown, EXAMPLE_NOW), "InvalidAccessKeyId");
    let tampered = AWS_QUERY.replace("f604d404", "f604d405");
    assert_eq!(code_at(&tampered, EXAMPLE_NOW), "SignatureDoesNotMatch");
    let added = format!("{AWS_QUERY}&response-content-type=text%2Fhtml");
    assert_eq!(code_at(&added, EXAMPLE_NOW), "SignatureDoesNotMatch");
    let other_host = headers(&[("Host", "otherbucket.s3.amazonaws.com")]);
    assert_eq!(run_at(AWS_QUERY, &other_host, EXAMPLE_NOW).unwrap_err().code(), "SignatureDoesNotMatch");
    let no_host = run_at(AWS_QUERY, &[], EXAMPLE_NOW).unwrap_err();
    assert_eq!(no_host, Error::MissingSecurityHeader { header: "host".into() });
    let mut injected = host_only();
    injected.push(("x-amz-copy-source".into(), "/secret/object".into()));
    assert_eq!(
        run_at(AWS_QUERY, &injected, EXAMPLE_NOW).unwrap_err(),
        Error::HeadersNotSigned { headers: "x-amz-copy-source".into() }
    );
}

fn presigned<'a>(key: &'a str, query: &[(&str, &str)], extra: &[(&str, &str)]) -> ClientRequest<'a> {
    let mut signed = vec![("host".to_owned(), "localhost:9000".to_owned())];
    signed.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    ClientRequest {
        method: "PUT",
        path: key,
        query: query.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        headers: signed,
        payload: "UNSIGNED-PAYLOAD",
        amz_date: "20130524T000000Z",
        region: "us-east-1",
    }
}

fn send(
    req: ClientRequest<'_>,
    access_key: &str,
    secret: &str,
    sent_headers: &[(String, String)],
) -> Result<Authenticated, Error> {
    let method = req.method;
    let (path, query) = req.presign(access_key, secret, 3_600);
    authenticate(
        &RequestView {
            method,
            raw_path: &path,
            raw_query: &query,
            headers: sent_headers,
            now_unix: EXAMPLE_NOW + 60,
            region: "us-east-1",
            virtual_host_bucket: None,
        },
        &MapStore::with(&[("AK+/x", "s+/=ecret")]),
    )
}

#[test]
fn client_round_trip_for_awkward_keys_and_access_keys() {
    let sent = headers(&[("host", "localhost:9000")]);
    for key in [
        "/bucket/my key.txt",
        "/bucket/a+b",
        "/bucket/50% off",
        "/bucket/x=1&y=2",
        "/bucket/café/ünïcödé/日本/🎉.bin",
        "/bucket/dir//./../file",
        "/bucket/quotes\"and'apostrophes<>",
    ] {
        for (access_key, secret) in [(ACCESS_KEY, SECRET_KEY), ("AK+/x", "s+/=ecret")] {
            let req = presigned(
                key,
                &[
                    ("response-content-disposition", "attachment; filename=\"é t+x.txt\""),
                    ("versionId", "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
                ],
                &[],
            );
            let auth = send(req, access_key, secret, &sent).unwrap_or_else(|e| panic!("{key:?} {access_key}: {e:?}"));
            assert_eq!(auth.identity, Identity::User { access_key: access_key.into() });
        }
    }
}

#[test]
fn signed_headers_must_be_sent_as_signed() {
    let req = || presigned("/bucket/k", &[], &[("content-type", "image/png")]);
    let ok = headers(&[("host", "localhost:9000"), ("content-type", "image/png")]);
    send(req(), ACCESS_KEY, SECRET_KEY, &ok).expect("signed content-type sent");
    let changed = headers(&[("host", "localhost:9000"), ("content-type", "text/html")]);
    assert_eq!(send(req(), ACCESS_KEY, SECRET_KEY, &changed).unwrap_err().code(), "SignatureDoesNotMatch");
    let missing = headers(&[("host", "localhost:9000")]);
    assert_eq!(
        send(req(), ACCESS_KEY, SECRET_KEY, &missing).unwrap_err(),
        Error::MissingSecurityHeader { header: "content-type".into() }
    );
}

#[test]
fn content_sha256_parameter_pins_the_body() {
    let sent = headers(&[("host", "localhost:9000")]);
    let mut req = presigned("/bucket/k", &[("X-Amz-Content-Sha256", EMPTY_HASH)], &[]);
    req.payload = EMPTY_HASH;
    let auth = send(req, ACCESS_KEY, SECRET_KEY, &sent).expect("hash in the URL");
    let PayloadCheck::Sha256(hash) = auth.payload else { panic!("the pinned hash must be checked") };
    assert_eq!(hex::encode(hash), EMPTY_HASH);
    let mut req = presigned("/bucket/k", &[("X-Amz-Content-Sha256", "nonsense")], &[]);
    req.payload = "nonsense";
    assert_eq!(send(req, ACCESS_KEY, SECRET_KEY, &sent).unwrap_err().code(), "InvalidArgument");
}

#[test]
fn garbage_never_panics() {
    let long = "9".repeat(50_000);
    let queries = [
        "X-Amz-Algorithm".to_owned(),
        "X-Amz-Algorithm=&X-Amz-Credential=&X-Amz-Date=&X-Amz-Expires=&X-Amz-SignedHeaders=&X-Amz-Signature=".into(),
        "X-Amz-Signature=%".into(),
        "X-Amz-Credential=%ff%fe%2F%2F%2F%2F".into(),
        format!("{AWS_QUERY}&X-Amz-Expires={long}"),
        AWS_QUERY.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={long}")),
        AWS_QUERY.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=é"),
        AWS_QUERY.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders="),
        AWS_QUERY.replace("aeeed9bb", "é"),
        format!("{AWS_QUERY}&X-Amz-Content-Sha256=%00"),
    ];
    for query in &queries {
        for now in [i64::MIN, -1, 0, EXAMPLE_NOW, i64::MAX] {
            assert!(run_at(query, &host_only(), now).is_err(), "{query} at {now}");
        }
    }
}
