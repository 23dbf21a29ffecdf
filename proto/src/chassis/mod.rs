//! The protocol-agnostic chassis every engine is built on.
//!
//! - [`SegmentedBuffer`]: received bytes, zero-copy views.
//! - [`IoArena`]: encoded bytes waiting for the kernel.
//! - [`MonocoqueCodec`]: the framing trait.
//! - [`PoisonGuard`]: the terminal state of an untrustworthy stream.
//! - [`BytePermits`]: byte budgets for every queue.
//! - [`Session`]: the contract a driver drives, and [`sim`] to drive it in memory.
//! - [`Driver`]: what every driver offers, so bodies run unchanged on any of them.
//! - [`link`]: the reconnect supervisor (server pool, backoff, give-up rule) on virtual time.

mod arena;
mod codec;
mod driver;
pub mod link;
mod permits;
mod poison;
mod segmented;
mod session;
pub mod sim;

pub use arena::{IoArena, DEFAULT_SHARE_THRESHOLD};
pub use codec::MonocoqueCodec;
pub use driver::{Activity, ConnId, Driver, ListenerId, SessionFactory};
pub use permits::{Backpressure, BytePermits};
pub use poison::PoisonGuard;
pub use segmented::SegmentedBuffer;
pub use session::Session;
