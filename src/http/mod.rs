//! HTTP/1.1: bounded head parsing, request bodies (Content-Length, chunked,
//! aws-chunked, multipart/form-data), responses, and the per-connection loop.

pub mod aws_chunked;
pub mod body;
pub mod conn;
pub mod form;
pub mod head;
pub mod proxy;
pub mod response;

/// What went wrong on the wire; `s3::error` turns it into an S3 error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request head is malformed")]
    BadHead,
    #[error("the request head is larger than allowed")]
    HeadTooLarge,
    #[error("the request has too many headers")]
    TooManyHeaders,
    #[error("the body framing is malformed: {0}")]
    BadFraming(&'static str),
    #[error("the body ended before its declared length")]
    Truncated,
    #[error("the client was too slow")]
    Timeout,
    #[error("the connection closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
