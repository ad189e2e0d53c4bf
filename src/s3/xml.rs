//! XML output helpers and the encodings S3 uses inside XML.

use std::fmt::Write;

pub const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// A small XML writer: `open`, `elem`, `close` in document order.
pub struct Xml {
    pub out: String,
}

impl Xml {
    /// Starts a document whose root element carries the S3 namespace.
    pub fn new(root: &str) -> Self {
        let mut out = String::with_capacity(1024);
        out.push_str(DECL);
        let _ = write!(out, "<{root} xmlns=\"{NS}\">");
        Self { out }
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>");
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.out, "</{name}>");
        self
    }

    pub fn elem(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>{}</{name}>", escape(value));
        self
    }

    /// `<tag><ID>id</ID><DisplayName>id</DisplayName></tag>` (Owner, Initiator).
    pub fn owner(&mut self, tag: &str, id: &str) -> &mut Self {
        self.open(tag).elem("ID", id).elem("DisplayName", id).close(tag)
    }

    /// One `<CommonPrefixes>` entry of a listing.
    pub fn common_prefix(&mut self, prefix: &str) -> &mut Self {
        self.open("CommonPrefixes").elem("Prefix", prefix).close("CommonPrefixes")
    }

    pub fn finish(mut self, root: &str) -> String {
        let _ = write!(self.out, "</{root}>");
        self.out
    }
}

/// S3's `encoding-type=url` form: like a form encoding of each UTF-8 byte,
/// keeping unreserved characters and `/`; space becomes `+` (measured
/// against AWS, see FIELD_NOTES B7).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `2013-05-24T00:00:00.000Z`
pub fn iso8601(unix_ms: i64) -> String {
    crate::auth::date::format_iso8601_millis(unix_ms)
}

/// `Fri, 24 May 2013 00:00:00 GMT`
pub fn http_date(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_aws() {
        assert_eq!(url_encode("a b+c%/é"), "a+b%2Bc%25/%C3%A9");
    }

    #[test]
    fn writer_escapes() {
        let mut x = Xml::new("R");
        x.elem("K", "a<b&c");
        assert!(x.finish("R").ends_with("<K>a&lt;b&amp;c</K></R>"));
    }
}
