//! Parsing a request head with httparse, within the configured bounds.

use super::Error;

/// A parsed request line and headers. Header names are lowercased; values
/// are kept as sent.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// The request-target's path, still percent-encoded.
    pub path: String,
    /// Everything after the first `?`, raw.
    pub query: String,
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|v| v.to_ascii_lowercase());
        match self.minor_version {
            0 => conn.is_some_and(|c| c.contains("keep-alive")),
            _ => !conn.is_some_and(|c| c.contains("close")),
        }
    }

    /// The declared Content-Length (duplicates must agree).
    pub fn content_length(&self) -> Result<Option<u64>, Error> {
        let mut found = None;
        for (n, v) in &self.headers {
            if n == "content-length" {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::BadHead);
                }
                let len: u64 = v.parse().map_err(|_| Error::BadHead)?;
                if found.is_some_and(|f| f != len) {
                    return Err(Error::BadHead);
                }
                found = Some(len);
            }
        }
        Ok(found)
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// A query parameter's first value, percent-decoded (`+` stays `+`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query).find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn has_query(&self, name: &str) -> bool {
        query_pairs(&self.query).any(|(k, _)| k == name)
    }
}

/// Decoded `name=value` pairs of a raw query string, in order.
pub fn query_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

/// Percent-decodes (lossy for invalid UTF-8).
pub fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Parses a head from `buf`; `Ok(None)` means more bytes are needed.
pub fn parse(buf: &[u8], header_count_max: usize) -> Result<Option<(Head, usize)>, Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; header_count_max];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(_) => return Err(Error::BadHead),
    };
    let method = req.method.ok_or(Error::BadHead)?.to_string();
    let target = req.path.ok_or(Error::BadHead)?;
    // Absolute-form targets (proxies) carry scheme and authority: keep the path.
    let target = match target.find("://") {
        Some(i) => target[i + 3..].find('/').map_or("/", |j| &target[i + 3 + j..]),
        None => target,
    };
    if !target.starts_with('/') {
        return Err(Error::BadHead);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| Error::BadHead)?;
        out.push((h.name.to_ascii_lowercase(), value.to_string()));
    }
    let head = Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        minor_version: req.version.unwrap_or(1),
        headers: out,
    };
    Ok(Some((head, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_query_and_headers() {
        let raw = b"PUT /b/a%20b?x=1&uploads HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let (h, n) = parse(raw, 16).unwrap().unwrap();
        assert_eq!(n, raw.len() - 5);
        assert_eq!((h.method.as_str(), h.path.as_str(), h.query.as_str()), ("PUT", "/b/a%20b", "x=1&uploads"));
        assert_eq!(h.content_length().unwrap(), Some(5));
        assert!(h.has_query("uploads") && h.keep_alive());
        assert_eq!(h.query_param("x").as_deref(), Some("1"));
    }

    #[test]
    fn partial_and_bad_heads() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost", 16).unwrap().is_none());
        assert!(parse(b"GARBAGE\r\n\r\n", 16).is_err());
        assert!(matches!(parse(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", 1), Err(Error::TooManyHeaders)));
        let (h, _) = parse(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 8).unwrap().unwrap();
        assert!(h.content_length().is_err());
    }

    #[test]
    fn absolute_form_and_connection_close() {
        let (h, _) = parse(b"GET http://x:9000/b/k?q HTTP/1.1\r\nConnection: close\r\n\r\n", 8).unwrap().unwrap();
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/b/k", "q"));
        assert!(!h.keep_alive());
    }
}
