//! The protocol-agnostic chassis every engine is built on.
//!
//! - [`SegmentedBuffer`]: received bytes, zero-copy views.
//! - [`IoArena`]: encoded bytes waiting for the kernel.
//! - [`PoisonGuard`]: the terminal state of an untrustworthy stream.
//! - [`BytePermits`]: byte budgets for every queue.
//! - [`Session`]: the contract a driver drives, and [`sim`] to drive it in memory.
//! - [`Driver`]: what every driver offers, so bodies run unchanged on any of them;
//!   [`Either`]: sessions of two protocols on one driver.
//! - [`Waker`]: wakes a driver from another thread; [`Mailbox`]: bounded messages into
//!   a driver's thread.
//! - [`link`]: the reconnect supervisor (server pool, backoff, give-up rule) on virtual time.

mod arena;
mod driver;
mod either;
pub mod link;
mod mailbox;
mod packed_instant;
mod permits;
mod poison;
mod segmented;
mod session;
pub mod sim;
mod timer_wheel;
mod wake;

pub use arena::{IoArena, DEFAULT_SHARE_THRESHOLD};
pub use driver::{
    Activity, ConnId, CoreId, Driver, ListenerId, SessionFactory, SocketOptions, TcpKeepalive, UNIX_PEER,
};
pub use either::Either;
pub use mailbox::{Mailbox, MailboxError, MailboxSender};
pub use packed_instant::{Epoch, PackedInstant};
pub use permits::{Backpressure, BytePermits};
pub use poison::PoisonGuard;
pub use segmented::SegmentedBuffer;
pub use session::{SentWatch, Session};
pub use timer_wheel::{DueTimer, TimerWheel};
pub use wake::{WakeLatch, WakeSignal, Waker};
