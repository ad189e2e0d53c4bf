//! Object bodies: deterministic from (key, size), generated once, checked on the way back.
//!
//! A body is a shared block of pseudo-random bytes (incompressible, seeded by the size)
//! followed by a 16-byte tag derived from the key and size. Sending one costs no copy of the
//! shared part, and a GET of the wrong object, a truncated one or damaged bytes anywhere all
//! show as a mismatch. The tag sits at the *end* so that the SHA-256 of a signed payload can
//! start from the saved hash state of the shared part: a signed 64 MiB PUT then costs the
//! client one 64-byte block of hashing, not 64 MiB (the server still hashes every byte).

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Bytes at the end of each body that depend on the key.
pub const TAG_BYTES: usize = 16;

/// The bodies of one object size.
pub struct Bodies {
    size: usize,
    /// The first `size - TAG_BYTES` bytes of every body (empty for tiny objects).
    shared: Arc<Vec<u8>>,
    /// SHA-256 state after hashing `shared`.
    shared_hash: Sha256,
}

/// The key-dependent tail of a body.
pub fn tag(key: &str, size: usize) -> [u8; TAG_BYTES] {
    xxhash_rust::xxh3::xxh3_128_with_seed(key.as_bytes(), size as u64).to_le_bytes()
}

impl Bodies {
    /// Generates the shared part for `size` (about 1 ms per 16 MiB).
    pub fn new(size: usize) -> Bodies {
        let shared_len = size.saturating_sub(TAG_BYTES);
        let mut shared = Vec::with_capacity(shared_len);
        // xorshift64*, seeded by the size: the same size always gives the same bytes.
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (size as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        while shared.len() < shared_len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            let n = word.len().min(shared_len - shared.len());
            shared.extend_from_slice(&word[..n]);
        }
        let mut shared_hash = Sha256::new();
        shared_hash.update(&shared);
        Bodies { size, shared: Arc::new(shared), shared_hash }
    }

    /// The object size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The part every body of this size shares, to be sent without copying.
    pub fn shared(&self) -> &Arc<Vec<u8>> {
        &self.shared
    }

    /// The tail of `key`'s body that follows [`Bodies::shared`] (`min(size, 16)` bytes).
    pub fn tail(&self, key: &str) -> ([u8; TAG_BYTES], usize) {
        (tag(key, self.size), self.size.min(TAG_BYTES))
    }

    /// Hex SHA-256 of `key`'s body, from the saved state of the shared part.
    pub fn sha256_hex(&self, key: &str) -> String {
        let (tail, n) = self.tail(key);
        let mut hash = self.shared_hash.clone();
        hash.update(&tail[..n]);
        hex::encode(hash.finalize())
    }

    /// The whole body of `key`.
    #[cfg(test)]
    pub fn body(&self, key: &str) -> Vec<u8> {
        let (tail, n) = self.tail(key);
        let mut out = Vec::with_capacity(self.size);
        out.extend_from_slice(&self.shared);
        out.extend_from_slice(&tail[..n]);
        out
    }

    /// A checker for a GET of `key`.
    pub fn verifier(&self, key: &str) -> Verifier {
        let (tail, tail_len) = self.tail(key);
        Verifier { shared: self.shared.clone(), tail, tail_len, offset: 0, ok: true }
    }
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
            let bodies = Bodies::new(size);
            let a = bodies.body("a");
            assert_eq!(a.len(), size);
            assert_eq!(a, Bodies::new(size).body("a"));
            if size >= 4 {
                // One- to three-byte bodies can collide by chance.
                assert_ne!(a, bodies.body("b"));
            }
            assert_eq!(bodies.sha256_hex("a"), hex::encode(Sha256::digest(&a)));
        }
        assert_ne!(Bodies::new(4096).body("a")[..64], Bodies::new(8192).body("a")[..64]);
    }

    #[test]
    fn verifier_accepts_any_split_and_rejects_damage() {
        let bodies = Bodies::new(5000);
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
}
