//! Canonical forms of the request parts that SigV4 signs: URI, query string and headers.
//!
//! The rules are those of "Create a canonical request" (AWS General Reference, Signature
//! Version 4) as S3 applies them ("Signature Calculations for the Authorization Header:
//! Transferring Payload in a Single Chunk", Amazon S3 API Reference): every byte outside the
//! unreserved set `A-Za-z0-9-_.~` is percent-encoded once with uppercase hex, S3 paths are
//! not normalised (`//` and `.` segments stay), query parameters are sorted by encoded name,
//! and header values are trimmed with inner runs of spaces collapsed.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Whether SigV4 leaves this byte as is ("URI-encode each byte... except the unreserved
/// characters", Create a canonical request).
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

fn push_encoded(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(byte) {
        out.push(char::from(byte));
    } else {
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes and re-encodes every byte the SigV4 way, in one pass.
///
/// Re-encoding what the client sent (rather than signing it verbatim) makes the result
/// independent of how the client spelled its escapes: `%c3%a9`, `%C3%A9` and a raw `é` all
/// become `%C3%A9`, and a raw `$` becomes `%24` as in AWS's PUT Object example. A `+` is a
/// literal plus, never a space, because S3 clients encode spaces as `%20`. A `%` that does not
/// start a valid escape is taken literally and becomes `%25`. In a path, a literal `/`
/// separates segments and stays, while an escaped `%2F` is part of a key and stays escaped,
/// which is what a client that sent it signed.
fn recode(raw: &str, keep_literal_slash: bool, out: &mut String) {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value))
        {
            push_encoded(out, hi << 4 | lo);
            i += 3;
            continue;
        }
        if byte == b'/' && keep_literal_slash {
            out.push('/');
        } else {
            push_encoded(out, byte);
        }
        i += 1;
    }
}

/// The canonical URI of an S3 request from its path as it appeared on the request line.
///
/// S3 is the one service whose canonical URI is the path encoded once, without removing
/// empty or dot segments (Create a canonical request: "Each path segment must be URI-encoded
/// twice (except for Amazon S3 which only gets URI-encoded once)" and "Normalize URI paths
/// according to RFC 3986... with the exception of Amazon S3"). An empty path is `/`, and a
/// path lacking its leading slash (as in the PUT Object example's request line) gets one.
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    let mut out = String::with_capacity(raw_path.len() + 8);
    if !raw_path.starts_with('/') {
        out.push('/');
    }
    recode(raw_path, true, &mut out);
    out
}

/// One `name[=value]` item of a raw query string, still percent-encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryParam<'a> {
    pub(crate) raw_name: &'a str,
    /// `None` when the item had no `=` at all (`?acl`), `Some("")` for `?acl=`.
    pub(crate) raw_value: Option<&'a str>,
}

impl<'a> QueryParam<'a> {
    /// The decoded name; invalid UTF-8 is replaced rather than rejected because names are only
    /// compared against ASCII parameter names.
    pub(crate) fn name(&self) -> Cow<'a, str> {
        percent_decode_str(self.raw_name).decode_utf8_lossy()
    }

    /// The decoded value (empty when there was none); `+` stays a plus.
    pub(crate) fn value(&self) -> Cow<'a, str> {
        percent_decode_str(self.raw_value.unwrap_or("")).decode_utf8_lossy()
    }
}

/// Splits a raw query string into its items; empty items (`a=1&&b=2`) are dropped.
pub(crate) fn parse_query(raw_query: &str) -> Vec<QueryParam<'_>> {
    raw_query
        .split('&')
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((name, value)) => QueryParam { raw_name: name, raw_value: Some(value) },
            None => QueryParam { raw_name: item, raw_value: None },
        })
        .collect()
}

/// The canonical query string, leaving out parameters whose decoded name is `exclude`.
///
/// Names and values are decoded and re-encoded, pairs are sorted by encoded name and then
/// value, and a parameter without a value signs as `name=` (Create a canonical request; the
/// GET Bucket Lifecycle example signs `?lifecycle` as `lifecycle=`). Presigned URLs exclude
/// `X-Amz-Signature`, which cannot sign itself.
pub(crate) fn canonical_query(params: &[QueryParam<'_>], exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|p| exclude.is_none_or(|name| p.name() != name))
        .map(|p| {
            let mut name = String::with_capacity(p.raw_name.len());
            recode(p.raw_name, false, &mut name);
            let mut value = String::new();
            recode(p.raw_value.unwrap_or(""), false, &mut value);
            (name, value)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// All values of a header, in the order received. Names are compared case-insensitively so a
/// caller that forgot to lowercase cannot make a signed header look absent.
pub(crate) fn header_values<'h>(headers: &'h [(String, String)], name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The single value of a header, `Ok(None)` if absent, `Err(())` if it appears more than once.
pub(crate) fn single_header<'h>(headers: &'h [(String, String)], name: &'h str) -> Result<Option<&'h str>, ()> {
    let mut values = header_values(headers, name);
    let first = values.next();
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// A header value with surrounding whitespace removed and inner runs of spaces and tabs
/// collapsed to one space ("Trimall", Create a canonical request).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical value of a header: every occurrence trimmed, joined with `,` in the order
/// received. `None` when the header is absent.
pub(crate) fn canonical_header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut values = header_values(headers, name).peekable();
    values.peek()?;
    Some(values.map(trim_all).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn canonical_uri_encodes_each_byte_once() {
        assert_eq!(canonical_uri("/test.txt"), "/test.txt");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("test$file.text"), "/test%24file.text");
        assert_eq!(canonical_uri("/test%24file.text"), "/test%24file.text");
        assert_eq!(canonical_uri("/b/my%20key"), "/b/my%20key");
        assert_eq!(canonical_uri("/b/my key"), "/b/my%20key");
        assert_eq!(canonical_uri("/b/a+b"), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b/a%2Bb"), "/b/a%2Bb");
        assert_eq!(canonical_uri("/b/100%25"), "/b/100%25");
        assert_eq!(canonical_uri("/b/100%"), "/b/100%25");
        assert_eq!(canonical_uri("/b/%zz"), "/b/%25zz");
        assert_eq!(canonical_uri("/b/a=b&c"), "/b/a%3Db%26c");
        assert_eq!(canonical_uri("/b/caf%c3%a9"), "/b/caf%C3%A9");
        assert_eq!(canonical_uri("/b/café"), "/b/caf%C3%A9");
        assert_eq!(canonical_uri("/b/a%2Fb"), "/b/a%2Fb");
        assert_eq!(canonical_uri("/b//./../x"), "/b//./../x");
        assert_eq!(canonical_uri("/b/~_-.x"), "/b/~_-.x");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        let q = parse_query("max-keys=2&prefix=J");
        assert_eq!(canonical_query(&q, None), "max-keys=2&prefix=J");
        let q = parse_query("prefix=J&max-keys=2");
        assert_eq!(canonical_query(&q, None), "max-keys=2&prefix=J");
        assert_eq!(canonical_query(&parse_query("lifecycle"), None), "lifecycle=");
        assert_eq!(canonical_query(&parse_query(""), None), "");
        assert_eq!(canonical_query(&parse_query("a=1&&b"), None), "a=1&b=", "empty items are dropped");
        assert_eq!(canonical_query(&parse_query("prefix=a b+c/d%2Fe"), None), "prefix=a%20b%2Bc%2Fd%2Fe");
        assert_eq!(canonical_query(&parse_query("k=v2&k=v1&K=z"), None), "K=z&k=v1&k=v2");
        assert_eq!(canonical_query(&parse_query("X-Amz-Signature=abc&a=1"), Some("X-Amz-Signature")), "a=1");
        assert_eq!(
            canonical_query(
                &parse_query("response-content-disposition=attachment%3B%20filename%3D%22%C3%A9.txt%22"),
                None
            ),
            "response-content-disposition=attachment%3B%20filename%3D%22%C3%A9.txt%22"
        );
    }

    #[test]
    fn query_params_decode_names_and_values() {
        let q = parse_query("X-Amz-Credential=AK%2B%2Fx%2F20130524&acl&e=");
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].name(), "X-Amz-Credential");
        assert_eq!(q[0].value(), "AK+/x/20130524");
        assert_eq!(q[1].raw_value, None);
        assert_eq!(q[2].raw_value, Some(""));
        assert_eq!(parse_query("%ff=%fe")[0].name(), "\u{fffd}");
    }

    #[test]
    fn header_values_trim_collapse_and_join() {
        let h = headers(&[
            ("x-amz-meta-a", "  one   two  "),
            ("x-amz-meta-a", "three\t\tfour"),
            ("host", "example.com"),
            ("x-empty", ""),
        ]);
        assert_eq!(canonical_header_value(&h, "x-amz-meta-a").as_deref(), Some("one two,three four"));
        assert_eq!(canonical_header_value(&h, "HOST").as_deref(), Some("example.com"));
        assert_eq!(canonical_header_value(&h, "x-empty").as_deref(), Some(""));
        assert_eq!(canonical_header_value(&h, "missing"), None);
        assert_eq!(single_header(&h, "host"), Ok(Some("example.com")));
        assert_eq!(single_header(&h, "x-amz-meta-a"), Err(()));
        assert_eq!(single_header(&h, "missing"), Ok(None));
    }
}
