//! Object bodies: deterministic from (key, size), generated once, checked on the way back.
//!
//! A body is a shared block of pseudo-random bytes (incompressible, seeded by the size)
//! followed by a 16-byte tag derived from the key and size. Sending one costs no copy of the
//! shared part, and a GET of the wrong object, a truncated one or damaged bytes anywhere all
//! show as a mismatch. The tag sits at the *end* so that the SHA-256 of a signed payload can
//! start from the saved hash state of the shared part: a signed 64 MiB PUT then costs the
//! client one 64-byte block of hashing, not 64 MiB (the server still hashes every byte).

use std::ops::Range;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::client::Payload;
use crate::engine::types::ChecksumAlgo;
use crate::s3::checksum::{Hasher, encode_value};

/// Bytes at the end of each body that depend on the key.
pub const TAG_BYTES: usize = 16;

/// The key-dependent tail of a body.
pub fn tag(key: &str, size: usize) -> [u8; TAG_BYTES] {
    xxhash_rust::xxh3::xxh3_128_with_seed(key.as_bytes(), size as u64).to_le_bytes()
}

/// A byte range of a body — the whole body, or one multipart part — as a range of the shared
/// part followed by a range of the key's tag, with the digest states after the shared range,
/// so that each request only hashes the (at most 16) tag bytes.
pub struct Piece {
    shared: Range<usize>,
    tail: Range<usize>,
    sha256: Sha256,
    checksum: Option<Hasher>,
}

impl Piece {
    fn new(shared_bytes: &[u8], shared: Range<usize>, tail: Range<usize>, checksum: Option<ChecksumAlgo>) -> Piece {
        let bytes = &shared_bytes[shared.clone()];
        let mut sha256 = Sha256::new();
        sha256.update(bytes);
        let checksum = checksum.map(|algo| {
            let mut h = Hasher::new(algo);
            h.update(bytes);
            h
        });
        Piece { shared, tail, sha256, checksum }
    }

    /// The piece's length in bytes.
    pub fn bytes(&self) -> usize {
        self.shared.len() + self.tail.len()
    }
}

/// The bodies of one object size.
pub struct Bodies {
    size: usize,
    /// The first `size - TAG_BYTES` bytes of every body (empty for tiny objects).
    shared: Arc<Vec<u8>>,
    whole: Piece,
    /// The body cut into multipart parts of the configured part size.
    parts: Vec<Piece>,
}

/// `len` pseudo-random bytes (xorshift64*), the same for the same seed.
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let n = word.len().min(len - out.len());
        out.extend_from_slice(&word[..n]);
    }
    out
}

impl Bodies {
    /// Generates the shared part for `size` (about 1 ms per 16 MiB) and its digest states: of
    /// the whole body and, with `part_size`, of each part.
    pub fn new(size: usize, checksum: Option<ChecksumAlgo>, part_size: Option<usize>) -> Bodies {
        let shared_len = size.saturating_sub(TAG_BYTES);
        // Seeded by the size: the same size always gives the same bytes.
        let shared = filler(shared_len, size as u64);
        // Body byte b is shared[b] below shared_len, else tag[b - shared_len].
        let piece = |range: Range<usize>| {
            let in_shared = range.start.min(shared_len)..range.end.min(shared_len);
            let in_tail = range.start.max(shared_len) - shared_len..range.end.max(shared_len) - shared_len;
            Piece::new(&shared, in_shared, in_tail, checksum)
        };
        let whole = piece(0..size);
        let parts = match part_size {
            Some(part) => {
                let count = size.div_ceil(part.max(1)).max(1);
                (0..count).map(|i| piece(i * part..((i + 1) * part).min(size))).collect()
            }
            None => Vec::new(),
        };
        Bodies { size, shared: Arc::new(shared), whole, parts }
    }

    /// The object size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The whole body.
    pub fn whole(&self) -> &Piece {
        &self.whole
    }

    /// The multipart parts (empty unless a part size was given).
    pub fn parts(&self) -> &[Piece] {
        &self.parts
    }

    /// The bytes of `piece` of `key`'s body, to be sent without copying the shared part.
    pub fn payload(&self, piece: &Piece, key: &str) -> Payload {
        Payload::Object {
            shared: self.shared.clone(),
            range: piece.shared.clone(),
            tail: tag(key, self.size),
            tail_range: piece.tail.clone(),
        }
    }

    /// Hex SHA-256 of `piece` of `key`'s body, from the saved state of its shared range.
    pub fn sha256_hex(&self, piece: &Piece, key: &str) -> String {
        let mut hash = piece.sha256.clone();
        hash.update(&tag(key, self.size)[piece.tail.clone()]);
        hex::encode(hash.finalize())
    }

    /// The base64 `x-amz-checksum-*` value of `piece` of `key`'s body, if a checksum was asked for.
    pub fn checksum(&self, piece: &Piece, key: &str) -> Option<String> {
        let mut hash = piece.checksum.clone()?;
        hash.update(&tag(key, self.size)[piece.tail.clone()]);
        Some(encode_value(&hash.finish()))
    }

    /// The whole body of `key`.
    #[cfg(test)]
    pub fn body(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        out.extend_from_slice(&self.shared);
        out.extend_from_slice(&tag(key, self.size)[self.whole.tail.clone()]);
        out
    }

    /// A checker for a GET of `key`.
    pub fn verifier(&self, key: &str) -> Verifier {
        Verifier {
            shared: self.shared.clone(),
            tail: tag(key, self.size),
            tail_len: self.whole.tail.len(),
            offset: 0,
            ok: true,
        }
    }
}

/// Object sizes with weights: every key has one size, picked from the weights by a hash of its
/// index, so a key is always written and read back at the same size.
pub struct Sizes {
    bodies: Vec<Bodies>,
    /// Running sums of the weights.
    cumulative: Vec<u64>,
}

impl Sizes {
    pub fn new(spec: &SizeSpec, checksum: Option<ChecksumAlgo>, part_size: Option<usize>) -> Sizes {
        let mut sum = 0;
        let cumulative = spec
            .0
            .iter()
            .map(|(_, w)| {
                sum += u64::from(*w);
                sum
            })
            .collect();
        let bodies = spec.0.iter().map(|(size, _)| Bodies::new(*size as usize, checksum, part_size)).collect();
        Sizes { bodies, cumulative }
    }

    /// The bodies of object `index`.
    pub fn of(&self, index: u64) -> &Bodies {
        if self.bodies.len() == 1 {
            return &self.bodies[0];
        }
        let total = *self.cumulative.last().expect("at least one size");
        let pick = ((u128::from(mix64(index)) * u128::from(total)) >> 64) as u64;
        let at = self.cumulative.partition_point(|&c| c <= pick);
        &self.bodies[at]
    }

    /// The largest size.
    pub fn max(&self) -> usize {
        self.bodies.iter().map(Bodies::size).max().unwrap_or(0)
    }
}

/// A bijective 64-bit mix (splitmix64's finaliser).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `--size`: one size, or sizes with weights (`4KiB:70,1MiB:25,64MiB:5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeSpec(pub Vec<(u64, u32)>);

impl SizeSpec {
    pub fn largest(&self) -> u64 {
        self.0.iter().map(|(s, _)| *s).max().unwrap_or(0)
    }

    /// The weighted mean size.
    pub fn mean(&self) -> u64 {
        let weights: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let bytes: u128 = self.0.iter().map(|(s, w)| u128::from(*s) * u128::from(*w)).sum();
        (bytes / u128::from(weights.max(1))) as u64
    }

    /// The single size, if there is only one.
    pub fn single(&self) -> Option<u64> {
        match self.0.as_slice() {
            [(size, _)] => Some(*size),
            _ => None,
        }
    }
}

/// Parses `4KiB` or `4KiB:70,1MiB:25,64MiB:5`.
pub fn parse_sizes(text: &str) -> Result<SizeSpec, String> {
    let mut sizes = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (size, weight) = match item.split_once(':') {
            Some((size, weight)) => {
                let weight: u32 =
                    weight.trim().parse().map_err(|_| format!("weight '{weight}' in --size is not a number"))?;
                (size, weight)
            }
            None if !text.contains(',') => (item, 1),
            None => return Err(format!("'{item}': give every size of a distribution a weight, as 4KiB:70")),
        };
        let size = super::parse_size(size)?;
        if sizes.iter().any(|(s, _)| *s == size) {
            return Err(format!("size {size} appears twice in --size"));
        }
        if weight > 0 {
            sizes.push((size, weight));
        }
    }
    if sizes.is_empty() {
        return Err("--size needs at least one size with a weight above 0".to_owned());
    }
    Ok(SizeSpec(sizes))
}

/// Compares a body with what was written, piece by piece as it arrives.
pub struct Verifier {
    shared: Arc<Vec<u8>>,
    tail: [u8; TAG_BYTES],
    tail_len: usize,
    offset: usize,
    ok: bool,
}

impl Verifier {
    /// Checks the next piece of the body.
    pub fn update(&mut self, mut piece: &[u8]) {
        if !self.ok {
            return;
        }
        let shared_len = self.shared.len();
        if self.offset < shared_len {
            let n = piece.len().min(shared_len - self.offset);
            if piece[..n] != self.shared[self.offset..self.offset + n] {
                self.ok = false;
                return;
            }
            self.offset += n;
            piece = &piece[n..];
        }
        if piece.is_empty() {
            return;
        }
        let at = self.offset - shared_len;
        if at + piece.len() > self.tail_len || piece != &self.tail[at..at + piece.len()] {
            self.ok = false;
            return;
        }
        self.offset += piece.len();
    }

    /// Whether everything so far matched and the body is complete.
    pub fn finish(&self) -> bool {
        self.ok && self.offset == self.shared.len() + self.tail_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_deterministic_and_key_dependent() {
        for size in [0usize, 1, 15, 16, 17, 4096, 100_000] {
            let bodies = Bodies::new(size, None, None);
            let a = bodies.body("a");
            assert_eq!(a.len(), size);
            assert_eq!(a, Bodies::new(size, None, None).body("a"));
            if size >= 4 {
                // One- to three-byte bodies can collide by chance.
                assert_ne!(a, bodies.body("b"));
            }
            assert_eq!(bodies.sha256_hex(bodies.whole(), "a"), hex::encode(Sha256::digest(&a)));
        }
        assert_ne!(Bodies::new(4096, None, None).body("a")[..64], Bodies::new(8192, None, None).body("a")[..64]);
    }

    #[test]
    fn verifier_accepts_any_split_and_rejects_damage() {
        let bodies = Bodies::new(5000, None, None);
        let body = bodies.body("key");
        for split in [1usize, 7, 16, 4096, 5000] {
            let mut v = bodies.verifier("key");
            for piece in body.chunks(split) {
                v.update(piece);
            }
            assert!(v.finish(), "{split}");
        }
        let mut v = bodies.verifier("other");
        v.update(&body);
        assert!(!v.finish(), "another key's body");
        let mut v = bodies.verifier("key");
        v.update(&body[..4999]);
        assert!(!v.finish(), "truncated");
        let mut damaged = body.clone();
        damaged[100] ^= 1;
        let mut v = bodies.verifier("key");
        v.update(&damaged);
        assert!(!v.finish(), "damaged");
        let mut v = bodies.verifier("key");
        v.update(&body);
        v.update(b"x");
        assert!(!v.finish(), "too long");
    }

    /// The bytes a payload sends.
    fn sent(payload: Payload) -> Vec<u8> {
        match payload {
            Payload::Object { shared, range, tail, tail_range } => {
                let mut out = shared[range].to_vec();
                out.extend_from_slice(&tail[tail_range]);
                out
            }
            Payload::None => Vec::new(),
        }
    }

    #[test]
    fn parts_cover_the_body_with_their_digests() {
        // Part sizes that put the tag inside the last part, across two parts, or alone.
        for (size, part) in [(10_000usize, 4096usize), (8200, 4096), (8194, 4096), (100, 7), (4096, 4096), (5, 8)] {
            let bodies = Bodies::new(size, Some(ChecksumAlgo::Crc64Nvme), Some(part));
            let body = bodies.body("k");
            assert_eq!(bodies.parts().len(), size.div_ceil(part), "{size}/{part}");
            let mut joined = Vec::new();
            for piece in bodies.parts() {
                let bytes = sent(bodies.payload(piece, "k"));
                assert_eq!(bytes.len(), piece.bytes());
                assert_eq!(bodies.sha256_hex(piece, "k"), hex::encode(Sha256::digest(&bytes)));
                let mut crc = Hasher::new(ChecksumAlgo::Crc64Nvme);
                crc.update(&bytes);
                assert_eq!(bodies.checksum(piece, "k"), Some(encode_value(&crc.finish())));
                joined.extend_from_slice(&bytes);
            }
            assert_eq!(joined, body, "{size}/{part}");
            assert_eq!(sent(bodies.payload(bodies.whole(), "k")), body);
        }
        assert_eq!(Bodies::new(100, None, None).checksum(Bodies::new(100, None, None).whole(), "k"), None);
    }

    #[test]
    fn size_distributions() {
        assert_eq!(parse_sizes("4KiB"), Ok(SizeSpec(vec![(4096, 1)])));
        let spec = parse_sizes("4KiB:70, 1MiB:30,2MiB:0").unwrap();
        assert_eq!(spec, SizeSpec(vec![(4096, 70), (1 << 20, 30)]));
        assert_eq!(spec.mean(), (4096 * 70 + (1 << 20) * 30) / 100);
        assert!(parse_sizes("4KiB,1MiB").is_err());
        assert!(parse_sizes("4KiB:1,4096:2").is_err());
        assert!(parse_sizes("4KiB:x").is_err());
        assert!(parse_sizes("4KiB:0").is_err());
        let sizes = Sizes::new(&SizeSpec(vec![(100, 3), (200, 1)]), None, None);
        let small = (0..10_000).filter(|i| sizes.of(*i).size() == 100).count();
        assert!((7_000..8_000).contains(&small), "{small} of 10000 picked the weight-3 size");
        assert!((0..100).all(|i| sizes.of(i).size() == sizes.of(i).size()));
        assert_eq!(sizes.max(), 200);
    }
}
