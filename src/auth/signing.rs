//! The SigV4 cryptography: signing key, string to sign, signature and its comparison.
//!
//! Follows "Create a signature" and "Derive a signing key" (AWS General Reference, Signature
//! Version 4); the S3 pages ("Authenticating Requests (AWS Signature Version 4)") use the same
//! chain with the service name `s3`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The algorithm name in `Authorization`, `X-Amz-Algorithm` and the string to sign.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The only service this node answers for.
pub(crate) const SERVICE: &str = "s3";
/// The fixed last element of every credential scope.
pub(crate) const TERMINATOR: &str = "aws4_request";
/// SHA-256 of the empty string, which chunk strings to sign carry in place of a header hash
/// ("Signature Calculations for the Authorization Header: Transferring Payload in Multiple
/// Chunks").
pub(crate) const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC is defined for keys of every length (longer ones are hashed first), so this
    // constructor has no failure case; an error here would be a bug in the hmac crate.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The signing key for one day, region and the `s3` service ("Derive a signing key").
pub(crate) fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, SERVICE.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// `date/region/s3/aws4_request`.
pub(crate) fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{SERVICE}/{TERMINATOR}")
}

/// The string to sign of a request: algorithm, timestamp, scope, hash of the canonical request.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Decodes a 64-digit hex signature (either case); anything else is `None`.
pub(crate) fn parse_signature(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Compares two byte strings in time independent of where they differ, so response timing
/// cannot be used to guess a valid signature byte by byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `provided` (hex) is the signature of `string_to_sign` under `key`.
///
/// Text that is not 64 hex digits never matches; whether it parses reveals nothing about
/// the expected value, so only the byte comparison needs to be constant-time.
pub(crate) fn signature_matches(key: &[u8; 32], string_to_sign: &str, provided: &str) -> bool {
    let expected = hmac_sha256(key, string_to_sign.as_bytes());
    parse_signature(provided).is_some_and(|provided| constant_time_eq(&expected, &provided))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn empty_hash_constant_is_sha256_of_nothing() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256_HEX);
    }

    #[test]
    fn get_object_string_to_sign_and_signature() {
        // "Example: GET Object", Signature Calculations for the Authorization Header:
        // Transferring Payload in a Single Chunk (Amazon S3 API Reference).
        let canonical = "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n\
            range:bytes=0-9\n\
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-amz-date:20130524T000000Z\n\n\
            host;range;x-amz-content-sha256;x-amz-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sts = string_to_sign("20130524T000000Z", &scope("20130524", "us-east-1"), canonical);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let key = signing_key(SECRET, "20130524", "us-east-1");
        assert_eq!(
            hex::encode(hmac_sha256(&key, sts.as_bytes())),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(signature_matches(&key, &sts, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
        assert!(signature_matches(&key, &sts, "F0E8BDB87C964420E857BD35B5D6ED310BD44F0170ABA48DD91039C6036BDB41"));
        assert!(!signature_matches(&key, &sts, "f0e8"));
        assert!(!signature_matches(&key, &sts, ""));
        assert!(!signature_matches(&key, &sts, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42"));
    }

    #[test]
    fn signature_parsing_rejects_bad_text() {
        assert!(parse_signature(&"a".repeat(64)).is_some());
        assert!(parse_signature(&"a".repeat(63)).is_none());
        assert!(parse_signature(&"a".repeat(65)).is_none());
        assert!(parse_signature(&"g".repeat(64)).is_none());
        assert!(parse_signature(&"é".repeat(32)).is_none());
    }

    #[test]
    fn constant_time_eq_handles_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
