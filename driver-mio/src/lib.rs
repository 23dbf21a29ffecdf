//! # monocoque-mio
//!
//! The portable Monocoque driver: mio readiness (epoll, kqueue), edge-triggered, with
//! pooled zero-copy receive buffers and one vectored write per connection per loop
//! iteration. It runs any [`Session`](monocoque_proto::Session) through the
//! [`Driver`](monocoque_proto::Driver) contract, exactly as the io_uring driver does, so
//! bodies pick either at run time.
//!
//! ## How a turn goes
//!
//! 1. Timers that are due fire (`handle_timeout`).
//! 2. Connections known to be readable, whose session `wants_read`, are read until the
//!    socket is drained — `WouldBlock`, or on epoll/kqueue a read shorter than the buffer
//!    offered (a new edge announces anything later, so the confirming `WouldBlock` call
//!    is skipped unless the peer's end of stream is pending) — or a per-connection budget
//!    is spent, for fairness. Every read lands in the spare room of a pooled chunk and
//!    reaches the session as a frozen [`Bytes`](bytes::Bytes) view of it, with no copy.
//! 3. Every connection that was fed input or touched through
//!    [`session_for_output`](monocoque_proto::Driver::session_for_output) — and only those, kept on a
//!    dirty list, so idle connections cost nothing — gets one `sendmsg` of its whole
//!    arena (an iovec per chunk; `sendmsg` is `writev` for sockets, with `MSG_NOSIGNAL`
//!    so a vanished peer is an `EPIPE`, never a `SIGPIPE`); after a short write it waits
//!    for the writable edge. Then its timer is re-armed from `poll_timeout`, its reading
//!    resumed if `wants_read` turned true (the socket may still hold data no new edge
//!    will announce), and its socket closed once `is_closed` (or the peer's end of
//!    stream) and an empty arena say so.
//! 4. If that produced nothing to report, the driver waits in `poll` until readiness,
//!    the earliest timer or the deadline, and goes round again.
//!
//! ## Example
//!
//! ```no_run
//! use monocoque_mio::MioDriver;
//! use monocoque_proto::{Activity, Driver, IoArena, Session};
//! use std::time::{Duration, Instant};
//!
//! /// Echoes every byte back.
//! struct Echo(IoArena);
//!
//! impl Session for Echo {
//!     type Event = ();
//!     fn handle_input(&mut self, data: bytes::Bytes, _now: Instant) {
//!         self.0.put_shared(data);
//!     }
//!     fn handle_eof(&mut self, _now: Instant) {}
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self) -> Option<&mut IoArena> {
//!         Some(&mut self.0)
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> {
//!         None
//!     }
//!     fn poll_event(&mut self) -> Option<()> {
//!         None
//!     }
//!     fn is_closed(&self) -> bool {
//!         false
//!     }
//! }
//!
//! let mut driver = MioDriver::new()?;
//! let listener = driver.listen("127.0.0.1:0".parse().unwrap(), Box::new(|_, _, _| Echo(IoArena::new())))?;
//! println!("echo server on {}", driver.listener_addr(listener)?);
//! let mut out = Vec::new();
//! loop {
//!     driver.turn(Some(Instant::now() + Duration::from_secs(1)), &mut out)?;
//!     for activity in out.drain(..) {
//!         if let Activity::Closed { conn, .. } = activity {
//!             driver.remove(conn);
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

mod conn;
mod driver;
mod pool;
mod slab;
mod sys;
mod timers;

use std::io;

pub use driver::MioDriver;
pub use pool::PoolStats;

/// Tuning for a [`MioDriver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MioConfig {
    /// Size of each pooled receive chunk, in bytes (default 64 KiB). One `recv` reads
    /// at most this much.
    pub recv_buffer_size: usize,
    /// A chunk with less free room than this is retired and the next read goes to a
    /// fresh or reclaimed chunk (default 4 KiB; at most `recv_buffer_size`).
    pub min_read_space: usize,
    /// How many retired chunks the pool keeps, waiting for their views to drop so their
    /// memory can be reused (default 64, i.e. 4 MiB with the default chunk size).
    pub pool_size: usize,
    /// Readiness events taken from the kernel per `poll` (default 1024).
    pub max_events: usize,
    /// Bytes read from one connection per loop iteration before the others get their
    /// turn (default 1 MiB); the rest is read in the next iteration.
    pub read_budget: usize,
    /// The `listen(2)` backlog of every listener (default 1024).
    pub listen_backlog: i32,
    /// Set `SO_REUSEPORT` on listeners, so one driver per thread can listen on the same
    /// port (default `false`).
    pub reuse_port: bool,
    /// The core this driver serves: every [`ConnId`](monocoque_proto::ConnId) and
    /// [`ListenerId`](monocoque_proto::ListenerId) it hands out names it, so a message
    /// about a connection can be routed back to its driver (default 0).
    pub core: monocoque_proto::CoreId,
}

impl Default for MioConfig {
    fn default() -> Self {
        Self {
            recv_buffer_size: 64 * 1024,
            min_read_space: 4 * 1024,
            pool_size: 64,
            max_events: 1024,
            read_budget: 1024 * 1024,
            listen_backlog: 1024,
            reuse_port: false,
            core: monocoque_proto::CoreId(0),
        }
    }
}

impl MioConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), MioError> {
        if self.recv_buffer_size == 0 {
            return Err(MioError::ZeroRecvBuffer);
        }
        if self.min_read_space == 0 || self.min_read_space > self.recv_buffer_size {
            return Err(MioError::MinReadSpace {
                min_read_space: self.min_read_space,
                recv_buffer_size: self.recv_buffer_size,
            });
        }
        if self.max_events == 0 {
            return Err(MioError::ZeroMaxEvents);
        }
        if self.read_budget == 0 {
            return Err(MioError::ZeroReadBudget);
        }
        Ok(())
    }
}

/// What the mio driver itself can reject (I/O errors come from the kernel as they are).
/// Every variant converts into an [`io::Error`] with a fitting kind, since the
/// [`Driver`](monocoque_proto::Driver) contract speaks `io::Result`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MioError {
    /// `recv_buffer_size` is zero.
    #[error("recv_buffer_size must be at least 1 byte")]
    ZeroRecvBuffer,
    /// `min_read_space` is zero or larger than a chunk.
    #[error("min_read_space ({min_read_space}) must be between 1 and recv_buffer_size ({recv_buffer_size})")]
    MinReadSpace {
        /// The configured value.
        min_read_space: usize,
        /// The chunk size it must fit in.
        recv_buffer_size: usize,
    },
    /// `max_events` is zero.
    #[error("max_events must be at least 1")]
    ZeroMaxEvents,
    /// `read_budget` is zero.
    #[error("read_budget must be at least 1 byte")]
    ZeroReadBudget,
    /// No listener with this id is open in this driver.
    #[error("no listener {0} in this driver")]
    UnknownListener(u32),
    /// The driver already holds as many connections as its ids can name.
    #[error("too many connections in one driver")]
    TooManyConnections,
}

impl From<MioError> for io::Error {
    fn from(err: MioError) -> Self {
        let kind = match err {
            MioError::UnknownListener(_) => io::ErrorKind::NotFound,
            MioError::TooManyConnections => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}
