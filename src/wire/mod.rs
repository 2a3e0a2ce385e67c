//! Bytes <-> messages. Pure code with no I/O; the fuzz targets live on this module.

pub mod frame;
pub mod ids;
pub mod lists;
pub mod message;
pub mod scan;
