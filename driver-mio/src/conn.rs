//! [`Conn`]: one connection of the driver, its session and what the driver knows about
//! its socket.
//!
//! One sits in the driver's slab for every connection, idle or not: a field added to
//! it costs a million idle connections its size. Its yes/no facts are a bit each
//! ([`Flags`]); its armed timer is 8 bytes ([`PackedInstant`], counted from the
//! driver's epoch) rather than a 16-byte `Option<Instant>`; an error to report in the
//! next turn (rare) is kept beside the slab, its presence a flag; whether it reported
//! `Ready` in this turn is a bit the driver clears when the next turn starts, rather
//! than the number of the turn it last did.

use mio::net::TcpStream;
use monocoque_proto::chassis::PackedInstant;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `connect` started; waiting for the socket to become writable.
    Connecting,
    /// Established.
    Open,
    /// The socket is gone; the session waits for [`Driver::remove`](monocoque_proto::Driver::remove).
    Closed,
}

/// A connection's yes/no facts, a bit each.
pub(crate) struct Flags;

impl Flags {
    /// The socket may hold unread bytes: set by a readable edge, cleared by
    /// `WouldBlock`. It survives a pause (`wants_read` false), because no new edge
    /// will announce the bytes already there.
    pub(crate) const READABLE: u8 = 1;
    /// The socket may take more bytes: cleared by `WouldBlock`, set by a writable edge.
    pub(crate) const WRITABLE: u8 = 1 << 1;
    /// An event said the peer closed its side: the end of stream waits behind whatever
    /// data is queued, so a short read no longer proves the socket drained.
    pub(crate) const READ_CLOSED: u8 = 1 << 2;
    /// The session has been given `handle_eof`.
    pub(crate) const EOF_FED: u8 = 1 << 3;
    /// On the dirty list.
    pub(crate) const DIRTY: u8 = 1 << 4;
    /// On the read list.
    pub(crate) const READ_QUEUED: u8 = 1 << 5;
    /// `Activity::Ready` was reported for it in this turn.
    pub(crate) const READY: u8 = 1 << 6;
    /// The driver holds an error to report for it in the next turn (a `connect` that
    /// failed at once): kept beside the slab, as few connections ever have one.
    pub(crate) const PENDING_ERROR: u8 = 1 << 7;
}

/// One connection: its session and what the driver knows about its socket.
pub(crate) struct Conn<S> {
    pub(crate) session: S,
    /// The socket (a Unix one too: see [`crate::sys::unix_in_tcp_stream`]).
    pub(crate) stream: Option<TcpStream>,
    /// The deadline armed in the timer wheel, packed by the driver's epoch.
    pub(crate) timer: PackedInstant,
    pub(crate) phase: Phase,
    /// [`Flags`] bits.
    flags: u8,
}

impl<S> Conn<S> {
    /// A connection not yet on any list, with no timer armed; writable once open.
    pub(crate) fn new(session: S, stream: TcpStream, phase: Phase, readable: bool) -> Self {
        let mut conn = Conn {
            session,
            stream: Some(stream),
            timer: PackedInstant::NONE,
            phase,
            flags: 0,
        };
        conn.set(Flags::READABLE, readable);
        conn.set(Flags::WRITABLE, phase == Phase::Open);
        conn
    }

    /// Whether fact `bit` (a [`Flags`] constant) holds.
    pub(crate) fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// Sets or clears fact `bit` (a [`Flags`] constant).
    pub(crate) fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;
    use crate::slab::Slab;

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
        // mio's stream is its descriptor (4 bytes) in a release build; a debug build
        // adds a selector id to it.
        let stream = size_of::<Option<TcpStream>>();
        // Session, stream, timer, phase and flags: 96 bytes released.
        let conn = (80 + stream + 8 + 2).next_multiple_of(8);
        assert_eq!(size_of::<Conn<Session80>>(), conn);
        assert_eq!(Slab::<Conn<Session80>>::slot_size(), conn + 8);
    }

    #[test]
    fn flags_are_independent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let std_stream = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let mut conn = Conn::new((), TcpStream::from_std(std_stream), Phase::Open, true);
        assert!(conn.has(Flags::READABLE) && conn.has(Flags::WRITABLE) && !conn.has(Flags::DIRTY));
        conn.set(Flags::READY, true);
        conn.set(Flags::READABLE, false);
        assert!(!conn.has(Flags::READABLE) && conn.has(Flags::WRITABLE) && conn.has(Flags::READY));
    }
}
