//! `multipart/form-data` request bodies (RFC 7578), as browsers send S3 POST
//! uploads: the fields before the file are read into memory (bounded), then
//! the file's bytes stream out without the file ever being held whole.
//! Whatever follows the file is left unread, as S3 ignores it.

use memchr::memmem::Finder;

use super::Error as HttpError;
use super::body::BodyReader;
use super::conn::Conn;

const STAGE_BYTES: usize = 256 << 10;
/// Longest header section of one part.
const PART_HEAD_BYTES_MAX: usize = 8 << 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the body is not well-formed multipart/form-data: {0}")]
    Malformed(&'static str),
    #[error("the fields before the file are too large")]
    FieldsTooLarge,
    #[error("the form has no file field")]
    NoFile,
    #[error("{0}")]
    Http(#[from] HttpError),
}

/// A field's name as sent and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// The part named `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// The boundary parameter of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

pub struct Form {
    /// `\r\n--<boundary>`: every delimiter, the first one included once the
    /// stage starts with a CRLF of our own.
    finder: Finder<'static>,
    stage: Vec<u8>,
    pos: usize,
    /// Bytes consumed before the file (fields, part heads).
    before_file: usize,
    file_done: bool,
}

impl Form {
    pub fn new(boundary: &str) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut stage = Vec::with_capacity(STAGE_BYTES);
        stage.extend_from_slice(b"\r\n");
        Self { finder: Finder::new(&delimiter).into_owned(), stage, pos: 0, before_file: 0, file_done: false }
    }

    fn delimiter_len(&self) -> usize {
        self.finder.needle().len()
    }

    async fn refill(&mut self, conn: &mut Conn, body: &mut BodyReader) -> Result<bool, Error> {
        Ok(super::body::refill_stage(&mut self.stage, &mut self.pos, STAGE_BYTES, conn, body).await?)
    }

    fn consume(&mut self, n: usize, fields_max: usize) -> Result<(), Error> {
        self.pos += n;
        self.before_file += n;
        if self.before_file > fields_max {
            return Err(Error::FieldsTooLarge);
        }
        Ok(())
    }

    /// Returns the bytes up to the next delimiter and steps over it.
    async fn until_delimiter(
        &mut self,
        conn: &mut Conn,
        body: &mut BodyReader,
        fields_max: usize,
    ) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(i) = self.finder.find(&self.stage[self.pos..]) {
                let out = self.stage[self.pos..self.pos + i].to_vec();
                self.consume(i + self.delimiter_len(), fields_max)?;
                return Ok(out);
            }
            if self.before_file + self.stage.len() - self.pos > fields_max {
                return Err(Error::FieldsTooLarge);
            }
            if !self.refill(conn, body).await? {
                return Err(Error::Malformed("the body ends before the closing boundary"));
            }
        }
    }

    /// Ensures `n` bytes are staged after `pos`; false at the end of the body.
    async fn want(&mut self, conn: &mut Conn, body: &mut BodyReader, n: usize) -> Result<bool, Error> {
        while self.stage.len() - self.pos < n {
            if !self.refill(conn, body).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the fields that precede the part named `file` (names compared
    /// without case), stopping at the start of the file's content.
    pub async fn fields(
        &mut self,
        conn: &mut Conn,
        body: &mut BodyReader,
        fields_max: usize,
    ) -> Result<(Vec<Field>, FilePart), Error> {
        // A preamble before the first delimiter is allowed and ignored.
        self.until_delimiter(conn, body, fields_max).await?;
        let mut fields = Vec::new();
        loop {
            if !self.want(conn, body, 2).await? {
                return Err(Error::Malformed("the body ends after a boundary"));
            }
            if &self.stage[self.pos..self.pos + 2] == b"--" {
                return Err(Error::NoFile);
            }
            // Transport padding (spaces, tabs) may follow a delimiter.
            let head = loop {
                let staged = &self.stage[self.pos..];
                if let Some(end) = memchr::memmem::find(staged, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&staged[..end]).into_owned();
                    self.consume(end + 4, fields_max)?;
                    break head;
                }
                if staged.len() > PART_HEAD_BYTES_MAX {
                    return Err(Error::Malformed("a part's header section is too long"));
                }
                if !self.refill(conn, body).await? {
                    return Err(Error::Malformed("the body ends inside a part's headers"));
                }
            };
            let part = PartHead::parse(&head)?;
            if part.name.eq_ignore_ascii_case("file") {
                return Ok((fields, FilePart { filename: part.filename, content_type: part.content_type }));
            }
            let value = self.until_delimiter(conn, body, fields_max).await?;
            let value = String::from_utf8(value).map_err(|_| Error::Malformed("a field's value is not UTF-8"))?;
            fields.push(Field { name: part.name, value });
        }
    }

    /// Copies file bytes into `out`; 0 once the delimiter after the file
    /// has been reached.
    pub async fn read_file(&mut self, conn: &mut Conn, body: &mut BodyReader, out: &mut [u8]) -> Result<usize, Error> {
        loop {
            if self.file_done || out.is_empty() {
                return Ok(0);
            }
            let staged = &self.stage[self.pos..];
            let (n, done) = match self.finder.find(staged) {
                Some(i) => (i.min(out.len()), i <= out.len()),
                // Everything but a possible start of the delimiter is file data.
                None => (staged.len().saturating_sub(self.delimiter_len() - 1).min(out.len()), false),
            };
            if n > 0 || done {
                out[..n].copy_from_slice(&staged[..n]);
                self.pos += n;
                if done {
                    self.pos += self.delimiter_len();
                    self.file_done = true;
                }
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            if !self.refill(conn, body).await? {
                return Err(Error::Malformed("the body ends inside the file"));
            }
        }
    }
}

/// The headers of one part that matter here.
struct PartHead {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl PartHead {
    fn parse(text: &str) -> Result<Self, Error> {
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        // The first line is what followed the delimiter: padding, then CRLF.
        for line in text.split("\r\n").skip(1) {
            let Some((h, v)) = line.split_once(':') else {
                return Err(Error::Malformed("a part header has no colon"));
            };
            let h = h.trim();
            if h.eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            } else if h.eq_ignore_ascii_case("content-disposition") {
                let mut params = split_params(v);
                if !params.next().is_some_and(|(d, _)| d.eq_ignore_ascii_case("form-data")) {
                    return Err(Error::Malformed("a part is not form-data"));
                }
                for (k, v) in params {
                    if k.eq_ignore_ascii_case("name") {
                        name = Some(v);
                    } else if k.eq_ignore_ascii_case("filename") {
                        filename = Some(v);
                    }
                }
            }
        }
        if !text.split("\r\n").next().unwrap_or("").trim().is_empty() {
            return Err(Error::Malformed("text follows a boundary"));
        }
        let name = name.ok_or(Error::Malformed("a part has no name"))?;
        Ok(Self { name, filename, content_type })
    }
}

/// `form-data; name="a"; filename="b c"` → ("form-data", ""), ("name", "a"), …
/// Quoted values may contain `;` and backslash-escaped quotes.
fn split_params(v: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let mut rest = v.trim();
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim().to_string();
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            return Some((key, String::new()));
        };
        let after = after.trim_start();
        let mut value = String::new();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = after.find(';').unwrap_or(after.len());
            value = after[..end].trim().to_string();
            rest = &after[end..];
        }
        Some((key, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary("Multipart/Form-Data;boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn part_heads() {
        let h = PartHead::parse("\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;\\\"b\\\".png\"\r\nContent-Type: image/png")
            .unwrap();
        assert_eq!(h.name, "file");
        assert_eq!(h.filename.as_deref(), Some("a;\"b\".png"));
        assert_eq!(h.content_type.as_deref(), Some("image/png"));
        let h = PartHead::parse("  \r\ncontent-disposition: form-data; name=key").unwrap();
        assert_eq!((h.name.as_str(), h.filename), ("key", None));
        assert!(PartHead::parse("\r\nContent-Disposition: attachment; name=\"x\"").is_err());
        assert!(PartHead::parse("\r\nContent-Type: text/plain").is_err());
        assert!(PartHead::parse("junk\r\nContent-Disposition: form-data; name=\"x\"").is_err());
    }
}
