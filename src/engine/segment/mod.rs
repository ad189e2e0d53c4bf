//! Segment files: the record format, the append-only log, recovery scans.

pub mod format;
pub mod log;
pub mod scan;
