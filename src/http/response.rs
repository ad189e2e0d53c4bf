//! Responses: status, headers, and a body that is either bytes in memory
//! (XML, errors) or an object streamed from the engine.

use crate::engine::ObjectReader;

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// HEAD: announce a length without sending a body.
    Head(u64),
    /// Object bytes, `len` in total.
    Object {
        reader: ObjectReader,
        len: u64,
    },
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Body::Empty }
    }

    pub fn xml(status: u16, xml: String) -> Self {
        Self::new(status).header("content-type", "application/xml").bytes(xml.into_bytes())
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn bytes(mut self, b: Vec<u8>) -> Self {
        self.body = Body::Bytes(b);
        self
    }

    fn content_length(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Head(n) => *n,
            Body::Object { len, .. } => *len,
        }
    }

    /// The status line and headers, ending with the blank line.
    pub fn encode_head(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.headers.len() * 48);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes());
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let no_body = self.status == 204 || self.status == 304 || (100..200).contains(&self.status);
        if !no_body {
            out.extend_from_slice(format!("content-length: {}\r\n", self.content_length()).as_bytes());
        }
        out.extend_from_slice(
            format!("date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes(),
        );
        out.extend_from_slice(b"server: Kaligon\r\n");
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        416 => "Requested Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}
