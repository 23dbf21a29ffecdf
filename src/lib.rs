//! # Monocoque
//!
//! A multi-protocol I/O kernel: thread per core, io_uring, pooled zero-copy buffers and
//! sans-IO state machines. The protocol engines live in [`monocoque_proto`] (re-exported
//! here as [`proto`]); the bodies people use (`redis::Client`, ...) arrive on top of the
//! drivers.

pub use monocoque_proto as proto;

pub mod driver;
/// The bodies' fuzz harness: only with the `fuzzing` feature (the fuzz targets and the
/// corpus replay), never in a shipped build.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod link;
pub mod nats;
pub mod redis;
mod url;
