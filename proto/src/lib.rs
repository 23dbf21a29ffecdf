//! # monocoque-proto
//!
//! The sans-IO half of Monocoque: everything that decides, nothing that waits. This
//! crate never opens a socket, spawns a thread or reads the clock; time is an argument.
//! Drivers (`monocoque-uring`, `monocoque-mio`) move bytes between the kernel and the
//! sessions defined here.
//!
//! ## The chassis
//!
//! [`SegmentedBuffer`] holds received bytes as reference-counted segments; decoders
//! take zero-copy views of it. [`IoArena`] holds encoded output, small writes copied into
//! one contiguous buffer and large payloads shared as they are; the driver hands it to
//! the kernel in one call. [`MonocoqueCodec`] is the framing trait, [`PoisonGuard`] the
//! terminal state of a connection whose stream can't be trusted, [`BytePermits`] the byte
//! budget that bounds every queue.
//!
//! ## The run-loop rule
//!
//! Every [`Session`] is driven the same way, by every driver:
//!
//! 1. feed input: `handle_input(bytes, now)` for each received buffer, `handle_eof` when
//!    the peer closed, `handle_timeout(now)` when `poll_timeout()` has passed;
//! 2. drain output before the next input: `poll_transmit()` (flush the arena, then
//!    `advance` by what the kernel took), `poll_event()` until `None`, and re-arm the
//!    timer from `poll_timeout()`;
//! 3. stop reading while `wants_read()` is false; close once `is_closed()` and the
//!    arena is empty.
//!
//! [`sim::Pair`] wires two sessions together in memory with a virtual clock and seeded
//! random byte splitting, so every protocol can be tested without a socket.
//!
//! ## Engines
//!
//! - [`resp`]: Redis RESP2/RESP3 — values, a resumable decoder, command encoding and the
//!   client connection state machine.
//! - [`nats`]: NATS — client and server ops, a zero-allocation resumable codec for each
//!   role, lazily parsed headers, `INFO`/`CONNECT` JSON.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chassis;
pub mod nats;
pub mod resp;

/// The fuzz harness: one entry point per cargo-fuzz target, shared with the corpus
/// replay test. Only with the `fuzzing` feature (test and fuzz builds), never shipped.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use chassis::{
    sim, Activity, Backpressure, BytePermits, ConnId, CoreId, Driver, Either, IoArena, ListenerId, Mailbox,
    MailboxError, MailboxSender, MonocoqueCodec, PoisonGuard, SegmentedBuffer, Session, SessionFactory, WakeLatch,
    WakeSignal, Waker, DEFAULT_SHARE_THRESHOLD,
};
