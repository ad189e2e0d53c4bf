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

    /// Starts a document whose root element has no namespace (S3's
    /// PostResponse comes that way).
    pub fn bare(root: &str) -> Self {
        Self { out: format!("{DECL}<{root}>") }
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

    /// `<tag><ID>id</ID><DisplayName>name</DisplayName></tag>` (Owner,
    /// Initiator) for the user `(canonical id, display name)`.
    pub fn owner(&mut self, tag: &str, who: &(String, String)) -> &mut Self {
        self.open(tag).elem("ID", &who.0).elem("DisplayName", &who.1).close(tag)
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

/// A parsed request document: elements by local name (namespaces dropped),
/// the text directly inside each, children in document order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child called `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Elements deeper than this make a document MalformedXML (S3's documents
/// nest five levels at most).
const DEPTH_MAX: usize = 16;

/// Parses a whole request document (MalformedXML when it is not one
/// well-formed element).
pub fn parse(body: &[u8]) -> Result<Node, super::error::S3Error> {
    use quick_xml::events::Event;
    let malformed = || super::error::S3Error::new(super::error::S3ErrorCode::MalformedXML);
    let mut r = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let name_of = |n: quick_xml::name::LocalName<'_>| String::from_utf8(n.as_ref().to_vec()).map_err(|_| malformed());
    loop {
        match r.read_event().map_err(|_| malformed())? {
            Event::Start(e) => {
                if root.is_some() || stack.len() >= DEPTH_MAX {
                    return Err(malformed());
                }
                stack.push(Node { name: name_of(e.local_name())?, ..Default::default() });
            }
            Event::Empty(e) => {
                let node = Node { name: name_of(e.local_name())?, ..Default::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err(malformed()),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(malformed)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| malformed())?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(malformed()),
                }
            }
            Event::CData(t) => {
                let n = stack.last_mut().ok_or_else(malformed)?;
                n.text.push_str(std::str::from_utf8(&t).map_err(|_| malformed())?);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed());
    }
    root.ok_or_else(malformed)
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
    fn documents_parse_into_trees() {
        let n = parse(b"<?xml version=\"1.0\"?><A xmlns=\"x\"><B>t&amp;u</B><C/><B> v </B></A>").unwrap();
        assert_eq!(n.name, "A");
        assert_eq!(n.text_of("B"), Some("t&u"));
        assert_eq!(n.all("B").count(), 2);
        assert!(n.child("C").is_some_and(|c| c.text.is_empty()));
        for bad in [&b"<A><B></A>"[..], b"<A></A><B/>", b"", b"text", b"<A>"] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn writer_escapes() {
        let mut x = Xml::new("R");
        x.elem("K", "a<b&c");
        assert!(x.finish("R").ends_with("<K>a&lt;b&amp;c</K></R>"));
    }
}
