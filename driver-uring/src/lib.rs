//! `monocoque-uring`: the io_uring driver (provided-buffer ring, multishot receive,
//! registered sends, one submit per loop iteration). It arrives with the Redis client;
//! for now the crate only names the contract it will implement.

pub use monocoque_proto::Session;
