//! SigV2: the examples of "Signing and authenticating REST requests", and refusals.

use super::*;
use crate::auth::date::parse_http_date;
use crate::auth::testutil::{ACCESS_KEY, MapStore, headers};
use crate::auth::{PayloadCheck, authenticate};

/// One of the page's examples (bucket `johnsmith`, its credentials).
struct Example<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    bucket: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    signature: &'a str,
}

impl Example<'_> {
    fn run(&self) -> Result<Authenticated, Error> {
        let date = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("date"))
            .and_then(|(_, v)| parse_http_date(v))
            .expect("examples carry a Date header");
        let mut h = headers(&self.headers);
        h.push(("authorization".into(), format!("AWS {ACCESS_KEY}:{}", self.signature)));
        authenticate(
            &RequestView {
                method: self.method,
                raw_path: self.path,
                raw_query: self.query,
                headers: &h,
                now_unix: date,
                region: "us-east-1",
                virtual_host_bucket: self.bucket,
            },
            &MapStore::with(&[]),
        )
    }
}

fn examples() -> Vec<Example<'static>> {
    vec![
        // Object GET, virtual-hosted.
        Example {
            method: "GET",
            path: "/photos/puppy.jpg",
            query: "",
            bucket: Some("johnsmith"),
            headers: vec![("Host", "johnsmith.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 19:36:42 +0000")],
            signature: "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
        },
        // Object PUT with Content-Type.
        Example {
            method: "PUT",
            path: "/photos/puppy.jpg",
            query: "",
            bucket: Some("johnsmith"),
            headers: vec![
                ("Content-Type", "image/jpeg"),
                ("Content-Length", "94328"),
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ],
            signature: "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
        },
        // List: the query parameters are not sub-resources and are not signed.
        Example {
            method: "GET",
            path: "/",
            query: "prefix=photos&max-keys=50&marker=puppy",
            bucket: Some("johnsmith"),
            headers: vec![
                ("User-Agent", "Mozilla/5.0"),
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 19:42:41 +0000"),
            ],
            signature: "htDYFYduRNen8P9ZfE/s9SuKy0U=",
        },
        // Fetch the ACL sub-resource.
        Example {
            method: "GET",
            path: "/",
            query: "acl",
            bucket: Some("johnsmith"),
            headers: vec![("Host", "johnsmith.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 19:44:46 +0000")],
            signature: "c2WLPFtWHVgbEmeEG93a4cG37dM=",
        },
        // Delete, path-style, with x-amz-date overriding Date.
        Example {
            method: "DELETE",
            path: "/johnsmith/photos/puppy.jpg",
            query: "",
            bucket: None,
            headers: vec![
                ("User-Agent", "dotnet"),
                ("Host", "s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 21:20:27 +0000"),
                ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
            ],
            signature: "lx3byBScXR6KzyMaifNkardMwNk=",
        },
        // Upload to a CNAME bucket with repeated metadata headers.
        Example {
            method: "PUT",
            path: "/db-backup.dat.gz",
            query: "",
            bucket: Some("static.johnsmith.net"),
            headers: vec![
                ("User-Agent", "curl/7.15.5"),
                ("Host", "static.johnsmith.net:8080"),
                ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
                ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
                ("X-Amz-Meta-FileChecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("Content-Disposition", "attachment; filename=database.dat"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "5913339"),
            ],
            signature: "ilyl83RwaSoYIEdixDQcA4OnAnc=",
        },
        // List all my buckets.
        Example {
            method: "GET",
            path: "/",
            query: "",
            bucket: None,
            headers: vec![("Host", "s3.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:29:59 +0000")],
            signature: "qGdzdERIC03wnaRNKh6OqZehG9s=",
        },
        // Unicode keys: the path is signed exactly as sent, escapes and their case included.
        Example {
            method: "GET",
            path: "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
            query: "",
            bucket: None,
            headers: vec![("Host", "s3.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:49:49 +0000")],
            signature: "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
        },
    ]
}

#[test]
fn aws_header_examples() {
    for example in examples() {
        let auth = example.run().unwrap_or_else(|e| panic!("{} {}: {e:?}", example.method, example.path));
        assert_eq!(auth.identity, Identity::User { access_key: ACCESS_KEY.into() });
        assert!(matches!(auth.payload, PayloadCheck::Unsigned));
    }
}

#[test]
fn x_amz_date_in_the_documented_rule_form() {
    // The page's rule (empty date line, x-amz-date among the x-amz headers), as s3cmd signs.
    let secret = crate::auth::testutil::SECRET_KEY;
    let sts = "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg";
    let signature = BASE64.encode(hmac_sha1(secret.as_bytes(), sts.as_bytes()));
    let mut example: Example<'_> = examples().swap_remove(4);
    assert_eq!(example.method, "DELETE");
    example.signature = &signature;
    example.run().expect("rule form");
}

#[test]
fn tampering_and_time() {
    let mut example = examples().swap_remove(0);
    example.signature = "bWq2s1WEIj+Ydj0vQ697zp+IXMV=";
    assert_eq!(example.run().unwrap_err().code(), "SignatureDoesNotMatch");
    let mut example = examples().swap_remove(0);
    example.path = "/photos/kitten.jpg";
    let Err(Error::SignatureDoesNotMatch(details)) = example.run() else { panic!("mismatch expected") };
    assert_eq!(details.string_to_sign, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/kitten.jpg");
    let mut example = examples().swap_remove(3);
    example.query = "acl&versionId=1";
    assert_eq!(example.run().unwrap_err().code(), "SignatureDoesNotMatch");

    let example = examples().swap_remove(0);
    let mut h = headers(&example.headers);
    h.push(("authorization".into(), format!("AWS {ACCESS_KEY}:{}", example.signature)));
    let at = |now| {
        authenticate(
            &RequestView {
                method: "GET",
                raw_path: example.path,
                raw_query: "",
                headers: &h,
                now_unix: now,
                region: "us-east-1",
                virtual_host_bucket: example.bucket,
            },
            &MapStore::with(&[]),
        )
        .map(|_| "OK")
        .unwrap_or_else(|e| e.code())
    };
    let signed_at = 1_175_024_202;
    assert_eq!(at(signed_at + 900), "OK");
    assert_eq!(at(signed_at - 900), "OK");
    assert_eq!(at(signed_at + 901), "RequestTimeTooSkewed");
    assert_eq!(at(signed_at - 901), "RequestTimeTooSkewed");
}

#[test]
fn unknown_key_and_malformed_headers() {
    let run = |authorization: &str, date: Option<&str>| {
        let mut h = headers(&[("Host", "s3.amazonaws.com")]);
        if let Some(date) = date {
            h.push(("date".into(), date.into()));
        }
        h.push(("authorization".into(), authorization.into()));
        authenticate(
            &RequestView {
                method: "GET",
                raw_path: "/",
                raw_query: "",
                headers: &h,
                now_unix: 1_175_045_399,
                region: "us-east-1",
                virtual_host_bucket: None,
            },
            &MapStore::with(&[]),
        )
        .map(|_| "OK")
        .unwrap_or_else(|e| e.code())
    };
    let date = Some("Wed, 28 Mar 2007 01:29:59 +0000");
    assert_eq!(run("AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=", date), "OK");
    assert_eq!(run("AWS NOPE:qGdzdERIC03wnaRNKh6OqZehG9s=", date), "InvalidAccessKeyId");
    assert_eq!(run("AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=", None), "AccessDenied");
    assert_eq!(run("AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=", Some("soon")), "AccessDenied");
    // Before the epoch: no valid date, not a skewed one.
    let before_epoch = Some("Tue, 07 Jul 1950 21:53:04 GMT");
    assert_eq!(run("AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=", before_epoch), "AccessDenied");
    for bad in ["AWS ", "AWS nocolon", "AWS :sig", "AWS key:", "AWS  :  "] {
        assert_eq!(run(bad, date), "InvalidArgument", "{bad:?}");
    }
    for bad in ["AWS AKIAIOSFODNN7EXAMPLE:!!!", "AWS AKIAIOSFODNN7EXAMPLE:é", "AWS AKIAIOSFODNN7EXAMPLE:AAAA"] {
        assert_eq!(run(bad, date), "SignatureDoesNotMatch", "{bad:?}");
    }
}

fn presigned(query: &str, now: i64) -> Result<Authenticated, Error> {
    let h = headers(&[("Host", "johnsmith.s3.amazonaws.com")]);
    authenticate(
        &RequestView {
            method: "GET",
            raw_path: "/photos/puppy.jpg",
            raw_query: query,
            headers: &h,
            now_unix: now,
            region: "us-east-1",
            virtual_host_bucket: Some("johnsmith"),
        },
        &MapStore::with(&[]),
    )
}

const QUERY: &str = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE\
    &Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620";

#[test]
fn aws_query_string_example() {
    let auth = presigned(QUERY, 1_175_139_620).expect("AWS query-string example");
    assert_eq!(auth.identity, Identity::User { access_key: ACCESS_KEY.into() });
    // An unencoded `+` in the signature is the base64 character, not a space.
    let raw_plus = QUERY.replace("%2B", "+");
    presigned(&raw_plus, 1_175_139_620).expect("raw plus");
    assert_eq!(presigned(QUERY, 1_175_139_621).unwrap_err(), Error::AccessDenied("Request has expired".into()));
    // A URL used long before its expiry is fine: SigV2 query auth has no skew window.
    presigned(QUERY, 1_000_000_000).expect("early use");
}

#[test]
fn query_string_refusals() {
    let now = 1_175_139_000;
    let code = |query: &str| presigned(query, now).map(|_| "OK").unwrap_or_else(|e| e.code());
    assert_eq!(code(&QUERY.replace("AKIAIOSFODNN7EXAMPLE", "NOPE")), "InvalidAccessKeyId");
    assert_eq!(code(&QUERY.replace("Sn8%3D", "Sn9%3D")), "SignatureDoesNotMatch");
    assert_eq!(code(&QUERY.replace("1175139620", "1175139619")), "SignatureDoesNotMatch");
    assert_eq!(code(&format!("{QUERY}&acl")), "SignatureDoesNotMatch");
    assert_eq!(code(&format!("{QUERY}&prefix=x")), "OK");
    for bad in [
        QUERY.replace("Expires=1175139620", "Expires=soon"),
        QUERY.replace("Expires=1175139620", "Expires=-5"),
        QUERY.replace("Expires=1175139620", "Expires="),
        QUERY.replace("&Expires=1175139620", ""),
        QUERY.replace("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&", ""),
        "Signature=x".to_owned(),
        "AWSAccessKeyId=".to_owned(),
    ] {
        assert_eq!(code(&bad), "AccessDenied", "{bad}");
    }
    assert_eq!(code(&format!("{QUERY}&Signature=x")), "InvalidArgument");
    // An expiry too large for any clock never expires, but it is signed, so it must match.
    let far = format!("Expires={}", "9".repeat(40));
    assert_eq!(code(&QUERY.replace("Expires=1175139620", &far)), "SignatureDoesNotMatch");
}

#[test]
fn canonical_pieces() {
    let h = headers(&[
        ("X-Amz-Meta-B", " 2 "),
        ("x-amz-meta-a", "1"),
        ("X-AMZ-META-B", "3"),
        ("x-amz-date", "d"),
        ("content-type", "t"),
    ]);
    assert_eq!(canonical_amz_headers(&h, false), "x-amz-date:d\nx-amz-meta-a:1\nx-amz-meta-b:2,3\n");
    assert_eq!(canonical_amz_headers(&h, true), "x-amz-meta-a:1\nx-amz-meta-b:2,3\n");
    assert_eq!(canonical_amz_headers(&[], false), "");
    let params =
        crate::auth::canonical::parse_query("versionId=a%2Bb&uploads&prefix=p&response-content-type=text%2Fplain&acl=");
    let req = RequestView {
        method: "GET",
        raw_path: "/k%20ey",
        raw_query: "",
        headers: &[],
        now_unix: 0,
        region: "us-east-1",
        virtual_host_bucket: Some("b"),
    };
    assert_eq!(
        canonical_resources(&req, &params),
        ["/b/k%20ey?acl=&response-content-type=text/plain&uploads&versionId=a+b"]
    );
    let root = RequestView { raw_path: "", virtual_host_bucket: None, ..req };
    assert_eq!(canonical_resources(&root, &[]), ["/"]);
    // A path-style bucket request also has the trailing-slash form botocore signs.
    let bucket = RequestView { raw_path: "/bucket", virtual_host_bucket: None, ..req };
    assert_eq!(
        canonical_resources(&bucket, &crate::auth::canonical::parse_query("acl")),
        ["/bucket?acl", "/bucket/?acl"]
    );
    let virtual_bucket = RequestView { raw_path: "/key", ..req };
    assert_eq!(canonical_resources(&virtual_bucket, &[]), ["/b/key"]);
}
