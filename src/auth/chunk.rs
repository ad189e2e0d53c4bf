//! The chain of chunk signatures in a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)` body.
//!
//! Each chunk's signature signs the chunk's hash together with the previous signature, the
//! first one chaining from the request's own ("seed") signature, so chunks cannot be dropped,
//! reordered or replaced ("Signature Calculations for the Authorization Header: Transferring
//! Payload in Multiple Chunks (Chunked Upload)"). The trailer, when present, is signed last
//! the same way ("Signature calculations for trailing headers (chunked uploads)").

use std::fmt;

use super::Error;
use super::signing::{self, EMPTY_SHA256_HEX};

/// Verifies chunk signatures in order; built by `authenticate` for streaming uploads.
pub struct ChunkVerifier {
    access_key: String,
    signing_key: [u8; 32],
    scope: String,
    amz_date: String,
    previous: [u8; 32],
}

impl fmt::Debug for ChunkVerifier {
    // The signing key is a secret for the day and region; it must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkVerifier")
            .field("access_key", &self.access_key)
            .field("scope", &self.scope)
            .field("amz_date", &self.amz_date)
            .field("previous", &hex::encode(self.previous))
            .finish_non_exhaustive()
    }
}

impl ChunkVerifier {
    /// Starts a chain from the seed signature (the verified request signature).
    pub(crate) fn new(
        access_key: &str,
        signing_key: [u8; 32],
        scope: String,
        amz_date: String,
        seed: [u8; 32],
    ) -> ChunkVerifier {
        ChunkVerifier { access_key: access_key.to_owned(), signing_key, scope, amz_date, previous: seed }
    }

    /// Called once per chunk, in order (including the final 0-length chunk) with the
    /// chunk-signature value from the chunk header and SHA-256 of the chunk's data bytes.
    ///
    /// The string to sign is `AWS4-HMAC-SHA256-PAYLOAD`, the request time, the scope, the
    /// previous signature, the hash of the empty string and the chunk hash, one per line.
    /// After a mismatch the chain does not advance, so every later chunk fails too.
    pub fn verify_chunk(&mut self, chunk_signature_hex: &str, data_sha256: &[u8; 32]) -> Result<(), Error> {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256_HEX}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(self.previous),
            hex::encode(data_sha256)
        );
        self.advance(string_to_sign, chunk_signature_hex)
    }

    /// For the -TRAILER variant: `trailer_canonical` is the trailing header block exactly as
    /// the canonical form AWS signs (e.g. "x-amz-checksum-crc32:sOO8/Q==\n"), and
    /// `trailer_signature_hex` the `x-amz-trailer-signature` value.
    ///
    /// The string to sign is `AWS4-HMAC-SHA256-TRAILER`, the request time, the scope, the
    /// signature of the final chunk and the hash of the trailer block, one per line.
    pub fn verify_trailer(&mut self, trailer_canonical: &str, trailer_signature_hex: &str) -> Result<(), Error> {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(self.previous),
            signing::sha256_hex(trailer_canonical.as_bytes())
        );
        self.advance(string_to_sign, trailer_signature_hex)
    }

    fn advance(&mut self, string_to_sign: String, provided: &str) -> Result<(), Error> {
        let expected = signing::hmac_sha256(&self.signing_key, string_to_sign.as_bytes());
        match signing::parse_signature(provided) {
            Some(given) if signing::constant_time_eq(&expected, &given) => {
                self.previous = expected;
                Ok(())
            }
            _ => Err(Error::signature_mismatch(&self.access_key, string_to_sign, None, provided)),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn verifier(seed_hex: &str) -> ChunkVerifier {
        ChunkVerifier::new(
            "AKIAIOSFODNN7EXAMPLE",
            signing::signing_key(SECRET, "20130524", "us-east-1"),
            "20130524/us-east-1/s3/aws4_request".to_owned(),
            "20130524T000000Z".to_owned(),
            signing::parse_signature(seed_hex).expect("test seed is hex"),
        )
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// The chunked upload example of the Multiple Chunks page: 66560 bytes of 'a' in a
    /// 65536-byte chunk, a 1024-byte chunk and the final empty chunk.
    #[test]
    fn aws_chunked_upload_example() {
        let mut v = verifier("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let first = sha(&[b'a'; 65_536]);
        assert_eq!(hex::encode(first), "bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a");
        v.verify_chunk("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", &first).expect("chunk 1");
        v.verify_chunk("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", &sha(&[b'a'; 1_024]))
            .expect("chunk 2");
        v.verify_chunk("b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", &sha(b""))
            .expect("final chunk");
    }

    /// The trailer example of the trailing-headers page: the same data with a CRC32C trailer.
    #[test]
    fn aws_chunked_upload_with_trailer_example() {
        let mut v = verifier("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
        for (signature, data) in [
            ("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2", &[b'a'; 65_536][..]),
            ("1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7", &[b'a'; 1_024][..]),
            ("2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", &[][..]),
        ] {
            v.verify_chunk(signature, &sha(data)).expect("chunk");
        }
        v.verify_trailer(
            "x-amz-checksum-crc32c:sOO8/Q==\n",
            "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
        )
        .expect("trailer");
    }

    #[test]
    fn chunks_out_of_order_or_tampered_fail() {
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let mut v = verifier(seed);
        // The second chunk's signature presented first: the chain does not match.
        let err = v
            .verify_chunk("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", &sha(&[b'a'; 1_024]))
            .unwrap_err();
        assert_eq!(err.code(), "SignatureDoesNotMatch");
        // Right signature, wrong data.
        let mut v = verifier(seed);
        assert!(
            v.verify_chunk("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", &sha(&[b'b'; 65_536]),)
                .is_err()
        );
        // A failure does not advance the chain: the genuine chunk still verifies after it.
        v.verify_chunk("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", &sha(&[b'a'; 65_536]))
            .expect("genuine chunk after a rejected one");
        for garbage in ["", "zz", "ad80", &"é".repeat(40), &"0".repeat(10_000)] {
            assert!(v.verify_chunk(garbage, &sha(b"")).is_err());
            assert!(v.verify_trailer("x:y\n", garbage).is_err());
        }
    }

    #[test]
    fn debug_output_hides_the_signing_key() {
        let v = verifier("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let text = format!("{v:?}");
        assert!(!text.contains(&hex::encode(v.signing_key)));
        assert!(text.contains("20130524/us-east-1/s3/aws4_request"));
    }
}
