//! A connection's place in the driver: [`Conn`] in a [`Slot`], and [`Sends`], the
//! sends in flight.
//!
//! One `Slot` sits in the driver for every connection, idle or not, so it holds only
//! what an idle connection needs: its session, its socket, the state of its receive,
//! its armed timer (8 bytes, see [`PackedInstant`]) and its yes/no facts in one byte.
//! The send in flight lives in the driver's [`Sends`] (the connection holds its
//! place, 4 bytes), so the memory of a send is paid per send, not per connection, and
//! reused without an allocation; what few connections ever have (a connect in flight,
//! input received while paused, an error to report) is in [`Rare`], a box allocated
//! when one of them is set and freed when all are empty again.
#![deny(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::num::NonZeroU32;

use bytes::Bytes;
use monocoque_proto::chassis::PackedInstant;

use crate::ops::InFlight;

/// Where a connection's socket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A `Connect` operation is in flight.
    Connecting,
    /// Established.
    Open,
    /// Waiting for in-flight operations before closing the socket.
    Closing,
    /// The socket is closed; the session waits for `remove`.
    Closed,
}

/// The multishot receive of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    /// Not armed.
    Idle,
    /// Armed: completions keep coming.
    Armed,
    /// A cancellation is on its way; the final completion is still due.
    Cancelling,
    /// Ended with `ENOBUFS`: re-armed once receive buffers come back.
    Starved,
}

/// A connection's yes/no facts, a bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// The send in flight is being cancelled.
    pub(crate) const SEND_CANCELLED: u8 = 1;
    /// No more reading: end of stream, an error, or a failed connect.
    pub(crate) const EOF: u8 = 1 << 1;
    /// `handle_eof` was fed (after the stash drained).
    pub(crate) const EOF_FED: u8 = 1 << 2;
    /// No more writing: a send or the connect failed.
    pub(crate) const FAILED: u8 = 1 << 3;
    /// `Closed` was reported.
    pub(crate) const CLOSED_REPORTED: u8 = 1 << 4;
    /// On the dirty list.
    pub(crate) const DIRTY: u8 = 1 << 5;
    /// `Ready` was reported in this turn (cleared when the next turn starts).
    pub(crate) const READY: u8 = 1 << 6;

    /// Whether fact `bit` (one of the constants) holds.
    pub(crate) fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Sets or clears fact `bit` (one of the constants).
    pub(crate) fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

/// What few connections ever have; see the module doc.
#[derive(Default)]
struct Rare {
    /// Only an outgoing connection has one, and only while connecting.
    connect: Option<InFlight>,
    /// Received while the session did not want input (the completions were already
    /// on their way when `wants_read` turned false): fed once it wants input again.
    stash: VecDeque<Bytes>,
    /// The first error, reported with `Closed`.
    error: Option<io::Error>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.connect.is_none() && self.stash.is_empty() && self.error.is_none()
    }
}

/// A connection's [`Rare`] part: `None` while all of it is empty.
#[derive(Default)]
pub(crate) struct RareBox(Option<Box<Rare>>);

impl RareBox {
    fn get(&mut self) -> &mut Rare {
        self.0.get_or_insert_with(Box::default)
    }

    /// Frees the box once nothing is in it.
    fn settle(&mut self) {
        if self.0.as_ref().is_some_and(|r| r.is_empty()) {
            self.0 = None;
        }
    }

    /// Whether a connect is in flight.
    pub(crate) fn connecting(&self) -> bool {
        self.0.as_ref().is_some_and(|r| r.connect.is_some())
    }

    pub(crate) fn set_connect(&mut self, op: InFlight) {
        self.get().connect = Some(op);
    }

    pub(crate) fn take_connect(&mut self) -> Option<InFlight> {
        let op = self.0.as_mut()?.connect.take();
        self.settle();
        op
    }

    pub(crate) fn stash_is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|r| r.stash.is_empty())
    }

    pub(crate) fn stash_push(&mut self, data: Bytes) {
        self.get().stash.push_back(data);
    }

    pub(crate) fn stash_pop(&mut self) -> Option<Bytes> {
        let rare = self.0.as_mut()?;
        let data = rare.stash.pop_front();
        if rare.stash.is_empty() {
            // The queue's memory goes with it.
            rare.stash = VecDeque::new();
            self.settle();
        }
        data
    }

    pub(crate) fn stash_clear(&mut self) {
        if let Some(rare) = self.0.as_mut() {
            rare.stash = VecDeque::new();
            self.settle();
        }
    }

    /// Keeps `error` unless an earlier one is kept.
    pub(crate) fn record_error(&mut self, error: io::Error) {
        self.get().error.get_or_insert(error);
    }

    pub(crate) fn take_error(&mut self) -> Option<io::Error> {
        let error = self.0.as_mut()?.error.take();
        self.settle();
        error
    }

    /// Whether the box is allocated (tests).
    #[cfg(test)]
    fn allocated(&self) -> bool {
        self.0.is_some()
    }
}

/// A connection of the driver.
pub(crate) struct Conn<S> {
    /// `None` once `remove` took it while operations were still in flight.
    pub(crate) session: Option<S>,
    /// `None` once closed. A Unix stream socket travels in a `TcpStream` too: the
    /// driver only takes its descriptor for ring operations and closes it by dropping
    /// it, the same for either family.
    pub(crate) stream: Option<TcpStream>,
    /// The send in flight, in the driver's [`Sends`].
    pub(crate) send: Option<SendRef>,
    /// The instant the timer is armed for, packed by the driver's epoch.
    pub(crate) timer: PackedInstant,
    /// What few connections have.
    pub(crate) rare: RareBox,
    pub(crate) phase: Phase,
    pub(crate) recv: Recv,
    pub(crate) flags: Flags,
}

impl<S> Conn<S> {
    pub(crate) fn new(stream: TcpStream, session: S, phase: Phase) -> Self {
        Self {
            session: Some(session),
            stream: Some(stream),
            send: None,
            timer: PackedInstant::NONE,
            rare: RareBox::default(),
            phase,
            recv: Recv::Idle,
            flags: Flags::default(),
        }
    }

    /// Whether an operation on the socket is still owed a completion.
    pub(crate) fn busy(&self) -> bool {
        matches!(self.recv, Recv::Armed | Recv::Cancelling) || self.send.is_some() || self.rare.connecting()
    }
}

/// A slot of the driver: a connection, or nothing, and the generation of its current
/// (or next) occupant.
pub(crate) struct Slot<S> {
    pub(crate) gen: u32,
    pub(crate) conn: Option<Conn<S>>,
}

/// The place of a send in [`Sends`] (its index plus one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendRef(NonZeroU32);

/// The driver's sends in flight (at most one per connection), in a slab whose free
/// places are reused: its size is the most sends ever in flight at once, not the
/// number of connections.
#[derive(Default)]
pub(crate) struct Sends {
    ops: Vec<Option<InFlight>>,
    free: Vec<u32>,
}

impl Sends {
    /// Keeps `op` until [`take`](Self::take).
    pub(crate) fn insert(&mut self, op: InFlight) -> io::Result<SendRef> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.ops.len())
                    .ok()
                    .filter(|&i| i < u32::MAX)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "too many sends in flight"))?;
                self.ops.push(None);
                index
            }
        };
        self.ops[index as usize] = Some(op);
        let place = NonZeroU32::new(index + 1).expect("index below u32::MAX");
        Ok(SendRef(place))
    }

    /// The send kept at `place`; the place is free again.
    pub(crate) fn take(&mut self, place: SendRef) -> Option<InFlight> {
        let index = place.0.get() - 1;
        let op = self.ops.get_mut(index as usize)?.take();
        if op.is_some() {
            self.free.push(index);
        }
        op
    }

    /// Every send still kept (the driver's drop, once the kernel is done).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.free.clear();
        self.ops.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// A connected loopback socket (its peer dropped: these tests only store it).
    fn stream() -> TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        TcpStream::connect(listener.local_addr().expect("addr")).expect("connect")
    }

    /// A stand-in for an 80-byte session with a niche, as the MQTT broker's
    /// `Connection` is.
    #[allow(dead_code)]
    struct Session80(Box<u8>, [u64; 9]);

    /// What the driver adds to every connection's session: a field added to `Conn`
    /// costs a million idle connections its size.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_adds_little_to_its_session() {
        assert_eq!(size_of::<Session80>(), 80);
        assert_eq!(size_of::<Conn<Session80>>(), 112);
        assert_eq!(size_of::<Slot<Session80>>(), 120);
    }

    #[test]
    fn rare_state_is_freed_once_empty() {
        let mut conn = Conn::new(stream(), (), Phase::Open);
        assert!(!conn.rare.allocated());
        conn.rare.stash_push(Bytes::from_static(b"x"));
        conn.rare.record_error(io::Error::from(io::ErrorKind::BrokenPipe));
        conn.rare.record_error(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(conn.rare.stash_pop().as_deref(), Some(&b"x"[..]));
        assert!(conn.rare.stash_is_empty());
        assert!(conn.rare.allocated(), "the error is still kept");
        assert_eq!(
            conn.rare.take_error().map(|e| e.kind()),
            Some(io::ErrorKind::BrokenPipe)
        );
        assert!(!conn.rare.allocated());
        conn.rare.stash_push(Bytes::from_static(b"y"));
        conn.rare.stash_clear();
        assert!(!conn.rare.allocated());
    }

    #[test]
    fn flags_are_independent() {
        let mut conn = Conn::new(stream(), (), Phase::Open);
        conn.flags.set(Flags::EOF, true);
        conn.flags.set(Flags::READY, true);
        assert!(conn.flags.has(Flags::EOF) && conn.flags.has(Flags::READY) && !conn.flags.has(Flags::DIRTY));
        conn.flags.set(Flags::EOF, false);
        assert!(!conn.flags.has(Flags::EOF) && conn.flags.has(Flags::READY));
    }
}
