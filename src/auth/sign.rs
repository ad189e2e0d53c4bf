//! Client-side SigV4: signs the requests this crate sends itself (`kaligon bench`).
//!
//! Header signing only, as "Signature Calculations for the Authorization Header: Transferring
//! Payload in a Single Chunk" (Amazon S3 API Reference) describes it: the payload line is the
//! body's SHA-256 in hex or `UNSIGNED-PAYLOAD`. Written from the client's side and apart from
//! the verifier in this module's siblings, except for the calendar arithmetic in [`super::date`].
//! The signing key depends only on the day, so a [`Signer`] derives it once per day; what is
//! left per request is one SHA-256 of the canonical request and one HMAC.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The payload line of a request whose body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Hex SHA-256 of the empty body: the payload line of requests without a body.
pub const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Percent-encodes `text` the SigV4 way onto `out`: every byte outside `A-Za-z0-9-_.~` once,
/// uppercase hex; `/` stays when `keep_slash` (object keys in paths).
///
/// Requests built with it sign exactly what goes on the request line, so the canonical URI
/// and query are the raw ones ("Create a canonical request").
pub fn uri_encode(text: &str, keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Hex SHA-256 of a body, the payload line of a signed-payload request.
pub fn payload_sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `x-amz-date` for unix seconds: `YYYYMMDD'T'HHMMSS'Z'`.
pub fn amz_date(unix: i64) -> String {
    super::date::format_amz_date(unix)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; the constructor cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Signs requests for one access key in one region.
pub struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    /// The day (`YYYYMMDD`) and its signing key ("Derive a signing key").
    day_key: Option<(String, [u8; 32])>,
    /// Reused between requests to keep the hot path free of allocations.
    canonical: String,
}

/// A request as it is about to be sent, in the form the signer needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The path exactly as on the request line, already encoded with [`uri_encode`].
    pub raw_path: &'a str,
    /// The query exactly as on the request line (no `?`), names and values already encoded
    /// with [`uri_encode`]; may be empty and in any order.
    pub raw_query: &'a str,
    /// The headers to sign, names in lowercase. Must hold `host`, `x-amz-date` and
    /// `x-amz-content-sha256` (the S3 verifier refuses a request without them).
    pub headers: &'a [(&'a str, &'a str)],
    /// The `x-amz-content-sha256` value: hex SHA-256 of the body or [`UNSIGNED_PAYLOAD`].
    pub payload: &'a str,
    /// The `x-amz-date` value.
    pub amz_date: &'a str,
}

impl Signer {
    /// A signer for `access_key`/`secret_key` in `region` (e.g. `us-east-1`).
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        Signer {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            region: region.to_owned(),
            day_key: None,
            canonical: String::with_capacity(512),
        }
    }

    fn signing_key(&mut self, day: &str) -> [u8; 32] {
        if let Some((cached, key)) = &self.day_key
            && cached == day
        {
            return *key;
        }
        let k_date = hmac(format!("AWS4{}", self.secret_key).as_bytes(), day.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        let key = hmac(&k_service, b"aws4_request");
        self.day_key = Some((day.to_owned(), key));
        key
    }

    /// Builds the canonical request into `self.canonical` and returns the signed header list.
    fn canonical_request(&mut self, req: &RequestToSign<'_>) -> String {
        let out = &mut self.canonical;
        out.clear();
        out.push_str(req.method);
        out.push('\n');
        if !req.raw_path.starts_with('/') {
            out.push('/');
        }
        out.push_str(req.raw_path);
        out.push('\n');
        let mut params: Vec<(&str, &str)> = req
            .raw_query
            .split('&')
            .filter(|item| !item.is_empty())
            .map(|item| item.split_once('=').unwrap_or((item, "")))
            .collect();
        params.sort_unstable();
        for (index, (name, value)) in params.iter().enumerate() {
            if index > 0 {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        out.push('\n');
        let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
        // Stable: repeated headers keep their order and are joined with ','.
        headers.sort_by(|a, b| a.0.cmp(b.0));
        let mut signed = String::with_capacity(64);
        let mut previous: Option<&str> = None;
        for (name, value) in &headers {
            debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "header names to sign are lowercase");
            if previous == Some(name) {
                out.push(',');
            } else {
                if previous.is_some() {
                    out.push('\n');
                    signed.push(';');
                }
                out.push_str(name);
                out.push(':');
                signed.push_str(name);
            }
            // Trimmed, inner runs of spaces collapsed ("Trimall").
            for (i, word) in value.split([' ', '\t']).filter(|w| !w.is_empty()).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(word);
            }
            previous = Some(name);
        }
        out.push_str("\n\n");
        out.push_str(&signed);
        out.push('\n');
        out.push_str(req.payload);
        signed
    }

    /// The hex signature of a request and its signed header list.
    pub fn signature(&mut self, req: &RequestToSign<'_>) -> (String, String) {
        assert!(req.amz_date.len() == 16, "x-amz-date is YYYYMMDDTHHMMSSZ");
        let day = &req.amz_date[..8];
        let key = self.signing_key(day);
        let signed = self.canonical_request(req);
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(req.amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(day);
        string_to_sign.push('/');
        string_to_sign.push_str(&self.region);
        string_to_sign.push_str("/s3/aws4_request\n");
        string_to_sign.push_str(&hex::encode(Sha256::digest(self.canonical.as_bytes())));
        (hex::encode(hmac(&key, string_to_sign.as_bytes())), signed)
    }

    /// The `Authorization` header value for `req`.
    pub fn authorization(&mut self, req: &RequestToSign<'_>) -> String {
        let (signature, signed) = self.signature(req);
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{}/s3/aws4_request, SignedHeaders={signed}, Signature={signature}",
            self.access_key,
            &req.amz_date[..8],
            self.region
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ACCESS_KEY, EXAMPLE_NOW, MapStore, SECRET_KEY};
    use super::super::{Identity, PayloadCheck, RequestView, authenticate, verify_payload_sha256};
    use super::*;

    #[test]
    fn get_object_example_from_aws_docs() {
        // "Example: GET Object", Signature Calculations for the Authorization Header:
        // Transferring Payload in a Single Chunk (Amazon S3 API Reference).
        let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY, "us-east-1");
        let date = amz_date(EXAMPLE_NOW);
        assert_eq!(date, "20130524T000000Z");
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", date.as_str()),
        ];
        let req = RequestToSign {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: "",
            headers: &headers,
            payload: EMPTY_PAYLOAD_SHA256,
            amz_date: &date,
        };
        assert_eq!(
            signer.authorization(&req),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn list_objects_example_sorts_the_query() {
        // "Example: GET Bucket (List Objects)" from the same page; the query is given out of
        // order to check that the signer sorts it.
        let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY, "us-east-1");
        let date = amz_date(EXAMPLE_NOW);
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", date.as_str()),
        ];
        let req = RequestToSign {
            method: "GET",
            raw_path: "/",
            raw_query: "prefix=J&max-keys=2",
            headers: &headers,
            payload: EMPTY_PAYLOAD_SHA256,
            amz_date: &date,
        };
        assert_eq!(signer.signature(&req).0, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    }

    /// Signs a request the way `kaligon bench` sends it and runs it through the node's verifier.
    fn round_trip(method: &str, key: &str, query: &str, body: &[u8], unsigned: bool) {
        let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY, "us-east-1");
        let now = EXAMPLE_NOW + 86_400 * 365 * 12 + 4_321;
        let date = amz_date(now);
        let mut raw_path = String::from("/bench-bucket/");
        uri_encode(key, true, &mut raw_path);
        let payload = if unsigned { UNSIGNED_PAYLOAD.to_owned() } else { payload_sha256_hex(body) };
        let signed_headers = [("host", "127.0.0.1:9400"), ("x-amz-content-sha256", &payload), ("x-amz-date", &date)];
        let authorization = signer.authorization(&RequestToSign {
            method,
            raw_path: &raw_path,
            raw_query: query,
            headers: &signed_headers,
            payload: &payload,
            amz_date: &date,
        });
        // As the server receives them: lowercase names, plus headers that were not signed.
        let mut received: Vec<(String, String)> =
            signed_headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        received.push(("authorization".into(), authorization));
        received.push(("content-length".into(), body.len().to_string()));
        let view = RequestView {
            method,
            raw_path: &raw_path,
            raw_query: query,
            headers: &received,
            now_unix: now + 30,
            region: "us-east-1",
            virtual_host_bucket: None,
        };
        let authed = authenticate(&view, &MapStore::with(&[])).expect("the node accepts the bench signer");
        assert_eq!(authed.identity, Identity::User { access_key: ACCESS_KEY.into() });
        match authed.payload {
            PayloadCheck::Sha256(expected) => {
                assert!(!unsigned);
                verify_payload_sha256(&expected, &Sha256::digest(body).into()).expect("payload hash matches");
            }
            PayloadCheck::Unsigned => assert!(unsigned),
            other => panic!("unexpected payload check {other:?}"),
        }

        // A wrong secret is refused with SignatureDoesNotMatch.
        let mut wrong = Signer::new(ACCESS_KEY, "not-the-secret", "us-east-1");
        let bad = wrong.authorization(&RequestToSign {
            method,
            raw_path: &raw_path,
            raw_query: query,
            headers: &signed_headers,
            payload: &payload,
            amz_date: &date,
        });
        received.iter_mut().find(|(n, _)| n == "authorization").expect("present").1 = bad;
        let view = RequestView {
            method,
            raw_path: &raw_path,
            raw_query: query,
            headers: &received,
            now_unix: now + 30,
            region: "us-east-1",
            virtual_host_bucket: None,
        };
        assert_eq!(authenticate(&view, &MapStore::with(&[])).unwrap_err().code(), "SignatureDoesNotMatch");
    }

    #[test]
    fn node_accepts_signed_requests() {
        round_trip("PUT", "kaligon-bench/00000001", "", b"hello body", false);
        round_trip("PUT", "dir/a key+with=odd&chars~é", "", &[7u8; 5000], false);
        round_trip("PUT", "k", "", b"unsigned body", true);
        round_trip("GET", "kaligon-bench/00000001", "", b"", false);
        round_trip("HEAD", "x/y/z", "", b"", true);
        round_trip("DELETE", "x", "", b"", false);
        round_trip("GET", "", "prefix=kaligon-bench%2F&max-keys=1000&list-type=2", b"", false);
        round_trip("GET", "", "acl", b"", false);
    }

    #[test]
    fn signing_key_is_cached_per_day() {
        let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY, "us-east-1");
        let first = signer.signing_key("20130524");
        assert_eq!(signer.signing_key("20130524"), first);
        assert_ne!(signer.signing_key("20130525"), first);
        assert_eq!(signer.signing_key("20130524"), first);
    }

    #[test]
    fn encoding_matches_sdks() {
        let mut out = String::new();
        uri_encode("a b+c/d~e_f.g-h$é", true, &mut out);
        assert_eq!(out, "a%20b%2Bc/d~e_f.g-h%24%C3%A9");
        out.clear();
        uri_encode("a/b", false, &mut out);
        assert_eq!(out, "a%2Fb");
    }
}
