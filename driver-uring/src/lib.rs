//! `monocoque-uring`: Monocoque's io_uring driver.
//!
//! [`UringDriver`] implements [`monocoque_proto::Driver`]: it owns sockets, timers and
//! buffers, pushes received bytes into sans-IO [`Session`]s and drains their arenas into
//! the kernel. One driver per thread (thread per core); no async runtime.
//!
//! What it does with io_uring:
//!
//! - **One ring per driver**, created with `SINGLE_ISSUER | DEFER_TASKRUN` (plus
//!   `COOP_TASKRUN` and `SUBMIT_ALL`) where the kernel accepts them, falling back to
//!   plainer rings; [`UringDriver::features`] tells which it got.
//! - **Receive** through a provided-buffer ring and multishot receive: an idle connection
//!   holds no receive buffer. Each received buffer reaches the session as a zero-copy
//!   [`bytes::Bytes`] view and goes back to the ring when its last view drops. When every
//!   buffer is held, receives wait (the bytes stay in the socket) and resume as buffers
//!   return.
//! - **Send** by copying an arena that fits into a registered buffer, or vectored from
//!   the arena's own segments; a partial send resumes exactly where it stopped. All
//!   submissions of one loop iteration reach the kernel in one `io_uring_enter`.
//! - **Multishot accept** for listeners, `Connect` for outgoing connections, timers from
//!   each session's `poll_timeout`, and a socket closed only once no operation on it is
//!   in flight.
//!
//! Where io_uring is unusable (an old kernel, a seccomp filter, `io_uring_disabled`),
//! [`UringDriver::new`] fails with a [`UringError`] whose message names the mio driver
//! (`--driver mio`, `monocoque_mio::MioDriver`) as the way out.
//!
//! # Example
//!
//! An echo server and a client on one driver, over loopback:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use monocoque_proto::{Activity, Driver, IoArena, Session};
//! use monocoque_uring::UringDriver;
//!
//! /// Echoes what it receives (as a server) or collects it (as a client).
//! #[derive(Default)]
//! struct Echo { out: IoArena, got: Vec<u8>, server: bool, eof: bool }
//!
//! impl Session for Echo {
//!     type Event = ();
//!     fn handle_input(&mut self, data: Bytes, _now: Instant) {
//!         if self.server { self.out.put_shared(data) } else { self.got.extend_from_slice(&data) }
//!     }
//!     fn handle_eof(&mut self, _now: Instant) { self.eof = true }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self) -> Option<&mut IoArena> { (!self.out.is_empty()).then_some(&mut self.out) }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn poll_event(&mut self) -> Option<()> { None }
//!     fn is_closed(&self) -> bool { self.eof }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let mut driver = match UringDriver::<Echo>::new() {
//!     Ok(driver) => driver,
//!     Err(e) if e.is_unavailable() => return Ok(()), // no io_uring here: use monocoque-mio
//!     Err(e) => return Err(e.into()),
//! };
//! let listener = driver.listen("127.0.0.1:0".parse().unwrap(),
//!     Box::new(|_, _, _| Echo { server: true, ..Echo::default() }))?;
//! let addr = driver.listener_addr(listener)?;
//! let mut client = Echo::default();
//! client.out.put_slice(b"hello");
//! let conn = driver.connect(addr, client)?;
//!
//! let deadline = Instant::now() + Duration::from_secs(5);
//! let mut activity = Vec::new();
//! while driver.session(conn).unwrap().got.len() < 5 && Instant::now() < deadline {
//!     activity.clear();
//!     driver.turn(Some(deadline), &mut activity)?;
//! }
//! assert_eq!(driver.session(conn).unwrap().got, b"hello");
//! # Ok(())
//! # }
//! ```

mod bufring;
mod config;
mod conn;
mod driver;
mod error;
mod ops;
mod ring;
mod sys;
mod wake;

pub use config::UringConfig;
pub use driver::UringDriver;
pub use error::UringError;
pub use monocoque_proto::{Activity, ConnId, Driver, ListenerId, Session, SessionFactory};
pub use ring::{FeatureLine, RingFeatures, UringStats};
