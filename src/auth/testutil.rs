//! Test support: a secret store, request builders and a client-side SigV4 signer.
//!
//! The signer is written from the client's point of view and independently of the server
//! code (its own encoder, canonical request and HMAC chain), so round-trip tests compare two
//! implementations of the spec rather than one implementation with itself.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{RequestView, SecretStore};

/// The access key of AWS's documentation examples.
pub(crate) const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// The secret key of AWS's documentation examples.
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 20130524T000000Z, the time of AWS's SigV4 examples.
pub(crate) const EXAMPLE_NOW: i64 = 1_369_353_600;
/// SHA-256 of the empty body.
pub(crate) const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A store holding fixed keys.
pub(crate) struct MapStore(pub(crate) Vec<(String, String)>);

impl MapStore {
    /// The example key plus any extra pairs.
    pub(crate) fn with(extra: &[(&str, &str)]) -> MapStore {
        let mut keys = vec![(ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())];
        keys.extend(extra.iter().map(|(a, s)| (a.to_string(), s.to_string())));
        MapStore(keys)
    }
}

impl SecretStore for MapStore {
    fn secret_key(&self, access_key: &str) -> Option<String> {
        self.0.iter().find(|(a, _)| a == access_key).map(|(_, s)| s.clone())
    }
}

/// Owned header list from pairs; names are lowercased as the server would.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect()
}

/// A request view in us-east-1, path-style.
pub(crate) fn view<'a>(
    method: &'a str,
    raw_path: &'a str,
    raw_query: &'a str,
    headers: &'a [(String, String)],
    now_unix: i64,
) -> RequestView<'a> {
    RequestView { method, raw_path, raw_query, headers, now_unix, region: "us-east-1", virtual_host_bucket: None }
}

/// Percent-encodes as SDKs do: every byte outside `A-Za-z0-9-_.~` once, uppercase hex, with
/// `/` optionally kept (object keys in paths).
pub(crate) fn client_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        let plain =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || (keep_slash && byte == b'/');
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// A request as a client is about to sign it.
pub(crate) struct ClientRequest<'a> {
    pub(crate) method: &'a str,
    /// The object path, unencoded (`/bucket/my key+1`).
    pub(crate) path: &'a str,
    /// Query parameters, unencoded.
    pub(crate) query: Vec<(String, String)>,
    /// Headers to sign, lowercase names.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) payload: &'a str,
    pub(crate) amz_date: &'a str,
    pub(crate) region: &'a str,
}

impl ClientRequest<'_> {
    /// The path as it goes on the request line.
    pub(crate) fn raw_path(&self) -> String {
        client_encode(self.path, true)
    }

    /// The query as it goes on the request line (unsorted, in insertion order).
    pub(crate) fn raw_query(&self) -> String {
        self.query
            .iter()
            .map(|(n, v)| format!("{}={}", client_encode(n, false), client_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn canonical_request(&self) -> String {
        let mut query: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(n, _)| n != "X-Amz-Signature")
            .map(|(n, v)| (client_encode(n, false), client_encode(v, false)))
            .collect();
        query.sort();
        let query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut signed: Vec<&(String, String)> = self.headers.iter().collect();
        signed.sort();
        let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.raw_path(),
            query.join("&"),
            canonical_headers,
            self.signed_headers(),
            self.payload
        )
    }

    /// `SignedHeaders`, sorted.
    pub(crate) fn signed_headers(&self) -> String {
        let mut names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names.join(";")
    }

    /// The credential scope.
    pub(crate) fn scope(&self) -> String {
        format!("{}/{}/s3/aws4_request", &self.amz_date[..8], self.region)
    }

    /// The hex signature under `secret`.
    pub(crate) fn signature(&self, secret: &str) -> String {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope(),
            hex::encode(Sha256::digest(self.canonical_request().as_bytes()))
        );
        let k_date = mac(format!("AWS4{secret}").as_bytes(), &self.amz_date[..8]);
        let k_region = mac(&k_date, self.region);
        let k_service = mac(&k_region, "s3");
        let k_signing = mac(&k_service, "aws4_request");
        hex::encode(mac(&k_signing, &string_to_sign))
    }

    /// Turns the request into a presigned URL: adds the `X-Amz-*` parameters and the
    /// signature, and returns (raw path, raw query).
    pub(crate) fn presign(mut self, access_key: &str, secret: &str, expires: i64) -> (String, String) {
        let credential = format!("{access_key}/{}", self.scope());
        let signed_headers = self.signed_headers();
        for (name, value) in [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", self.amz_date.to_owned()),
            ("X-Amz-Expires", expires.to_string()),
            ("X-Amz-SignedHeaders", signed_headers),
        ] {
            self.query.push((name.to_owned(), value));
        }
        let signature = self.signature(secret);
        self.query.push(("X-Amz-Signature".to_owned(), signature));
        (self.raw_path(), self.raw_query())
    }

    /// The `Authorization` header value for header signing.
    pub(crate) fn authorization(&self, access_key: &str, secret: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/{}, SignedHeaders={}, Signature={}",
            self.scope(),
            self.signed_headers(),
            self.signature(secret)
        )
    }
}
