//! The additional checksums of S3 (`x-amz-checksum-*`): computing them over
//! a streamed body and checking what the client declared, in a header or a
//! trailer. Values travel base64-encoded, big-endian for CRCs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::{S3Error, S3ErrorCode};
use crate::engine::types::{Checksum, ChecksumAlgo};
use crate::http::head::Head;

#[derive(Clone)]
pub enum Hasher {
    Crc(ChecksumAlgo, crc_fast::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub fn new(algo: ChecksumAlgo) -> Self {
        use crc_fast::CrcAlgorithm as A;
        match algo {
            ChecksumAlgo::Crc32 => Self::Crc(algo, crc_fast::Digest::new(A::Crc32IsoHdlc)),
            ChecksumAlgo::Crc32c => Self::Crc(algo, crc_fast::Digest::new(A::Crc32Iscsi)),
            ChecksumAlgo::Crc64Nvme => Self::Crc(algo, crc_fast::Digest::new(A::Crc64Nvme)),
            ChecksumAlgo::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgo::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(_, d) => d.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest bytes (CRCs big-endian, as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc(ChecksumAlgo::Crc64Nvme, d) => d.finalize().to_be_bytes().to_vec(),
            Self::Crc(_, d) => (d.finalize() as u32).to_be_bytes().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// What the client asked us to check.
pub struct Expected {
    pub algo: ChecksumAlgo,
    /// The value, or None when it comes in a trailer.
    pub value: Option<Vec<u8>>,
}

fn digest_len(algo: ChecksumAlgo) -> usize {
    match algo {
        ChecksumAlgo::Crc32 | ChecksumAlgo::Crc32c => 4,
        ChecksumAlgo::Crc64Nvme => 8,
        ChecksumAlgo::Sha1 => 20,
        ChecksumAlgo::Sha256 => 32,
    }
}

/// Decodes a base64 checksum value of the right length for `algo`.
pub fn decode_value(algo: ChecksumAlgo, v: &str) -> Result<Vec<u8>, S3Error> {
    match B64.decode(v.trim()) {
        Ok(b) if b.len() == digest_len(algo) => Ok(b),
        _ => Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!("Value for x-amz-checksum-{} header is invalid.", algo.header_suffix()),
        )),
    }
}

pub fn encode_value(v: &[u8]) -> String {
    B64.encode(v)
}

/// Reads the checksum a request declares: one `x-amz-checksum-<alg>`
/// header, or a trailer announced by `x-amz-trailer`; both, or two
/// algorithms, are refused (AWS returns InvalidRequest).
pub fn expected(head: &Head) -> Result<Option<Expected>, S3Error> {
    let mut found: Option<Expected> = None;
    for algo in ChecksumAlgo::ALL {
        let name = algo.header_name();
        if let Some(v) = head.header(name) {
            if found.is_some() {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                ));
            }
            found = Some(Expected { algo, value: Some(decode_value(algo, v)?) });
        }
    }
    if let Some(t) = head.header("x-amz-trailer") {
        let t = t.trim().to_ascii_lowercase();
        let algo = t
            .strip_prefix("x-amz-checksum-")
            .and_then(|s| ChecksumAlgo::ALL.into_iter().find(|a| a.header_suffix() == s))
            .ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "The value specified in the x-amz-trailer header is not supported",
                )
            })?;
        if found.is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "Expecting a single x-amz-checksum- header",
            ));
        }
        found = Some(Expected { algo, value: None });
    }
    if let (Some(sdk), Some(f)) = (head.header("x-amz-sdk-checksum-algorithm"), &found)
        && ChecksumAlgo::from_name(sdk) != Some(f.algo)
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Value for x-amz-sdk-checksum-algorithm header is invalid.",
        ));
    }
    Ok(found)
}

/// Compares the computed digest with the declared one.
pub fn verify(algo: ChecksumAlgo, declared: &[u8], computed: Vec<u8>) -> Result<Checksum, S3Error> {
    if declared != computed.as_slice() {
        return Err(S3Error::with_message(
            S3ErrorCode::BadDigest,
            format!("The {} you specified did not match the calculated checksum.", algo.name()),
        ));
    }
    Ok(Checksum { algo, value: computed, parts: 0 })
}

/// The integrity check AWS requires on some configuration bodies
/// (lifecycle, CORS): Content-MD5 (checked by `read_small_body`) or an
/// `x-amz-checksum-*` header or trailer.
pub fn require_integrity(head: &Head, body: &[u8]) -> Result<(), S3Error> {
    if head.has_header("content-md5") {
        return Ok(());
    }
    match expected(head)? {
        Some(e) => match e.value {
            Some(declared) => {
                let mut h = Hasher::new(e.algo);
                h.update(body);
                verify(e.algo, &declared, h.finish()).map(|_| ())
            }
            // A trailer: the aws-chunked framing carried and checked it.
            None => Ok(()),
        },
        None => Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algo: ChecksumAlgo, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.finish()
    }

    #[test]
    fn check_values() {
        // Standard check values of "123456789".
        assert_eq!(digest(ChecksumAlgo::Crc32, b"123456789"), 0xCBF43926u32.to_be_bytes());
        assert_eq!(digest(ChecksumAlgo::Crc32c, b"123456789"), 0xE3069283u32.to_be_bytes());
        assert_eq!(digest(ChecksumAlgo::Crc64Nvme, b"123456789"), 0xAE8B14860A799888u64.to_be_bytes());
        assert_eq!(hex::encode(digest(ChecksumAlgo::Sha1, b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
