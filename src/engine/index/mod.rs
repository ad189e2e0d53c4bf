//! The in-memory index and its persistence: the map itself, checkpoints, and
//! recovery (checkpoint + replay of the log tail).

pub mod checkpoint;
pub mod map;
pub mod packed;
pub mod uploads;
