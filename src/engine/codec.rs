//! Little-endian binary encoding used by metadata records and checkpoints.
//!
//! Structures are written as tagged fields (`tag: u8, len: u32, bytes`), so a
//! later version can add fields without a format break: a reader skips tags
//! it does not know. Scalars inside a field are fixed-width little-endian;
//! strings and byte strings carry a u32 length prefix.

/// Why bytes could not be decoded: they are truncated or corrupt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("metadata bytes are truncated or malformed")]
pub struct DecodeError;

#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u128(&mut self, v: u128) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).expect("field under 4 GiB"));
        self.buf.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// Writes a tagged field whose body is produced by `f`.
    pub fn field(&mut self, tag: u8, f: impl FnOnce(&mut Enc)) -> &mut Self {
        self.buf.push(tag);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        f(self);
        let len = u32::try_from(self.buf.len() - at - 4).expect("field under 4 GiB");
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self
    }
}

pub struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| DecodeError)?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| DecodeError)?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()? as i64)
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().map_err(|_| DecodeError)?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError)
    }
    /// Reads the next tagged field: its tag and a decoder over its body.
    pub fn field(&mut self) -> Result<(u8, Dec<'a>), DecodeError> {
        let tag = self.u8()?;
        let body = self.bytes()?;
        Ok((tag, Dec::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields() {
        let mut e = Enc::new();
        e.field(1, |e| {
            e.u64(7).str("k");
        });
        e.field(200, |e| {
            e.u32(9);
        });
        let mut d = Dec::new(&e.buf);
        let (t, mut f) = d.field().unwrap();
        assert_eq!((t, f.u64().unwrap(), f.string().unwrap()), (1, 7, "k".into()));
        let (t, _) = d.field().unwrap();
        assert_eq!(t, 200);
        assert!(d.is_empty());
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let mut e = Enc::new();
        e.field(1, |e| {
            e.str("hello");
        });
        for n in 0..e.buf.len() {
            let mut d = Dec::new(&e.buf[..n]);
            assert!(d.field().and_then(|(_, mut f)| f.string()).is_err());
        }
    }
}
