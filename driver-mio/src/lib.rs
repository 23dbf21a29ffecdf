//! `monocoque-mio`: the portable readiness driver (mio, `readv`/`writev`). It arrives
//! with the Redis client; for now the crate only names the contract it will implement.

pub use monocoque_proto::Session;
