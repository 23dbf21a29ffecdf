//! The contract between a sans-IO session and the driver that runs it.

use std::time::Instant;

use bytes::Bytes;

use super::IoArena;

/// A connection's protocol logic, driven by bytes and instants only.
///
/// A driver runs every session by one rule (the run-loop rule):
///
/// 1. feed what happened: [`handle_input`](Self::handle_input) for each received
///    buffer, [`handle_eof`](Self::handle_eof) when the peer closed, and
///    [`handle_timeout`](Self::handle_timeout) when the instant from
///    [`poll_timeout`](Self::poll_timeout) has passed;
/// 2. then drain the outputs before the next input: [`poll_transmit`](Self::poll_transmit)
///    (hand the arena to the kernel, call [`IoArena::advance`] with what it took),
///    [`poll_event`](Self::poll_event) until `None`, and re-arm the timer from
///    [`poll_timeout`](Self::poll_timeout);
/// 3. stop reading the socket while [`wants_read`](Self::wants_read) is false
///    (backpressure), and close it once [`is_closed`](Self::is_closed) and the arena is
///    empty;
/// 4. after the kernel took some of the arena, ask [`handle_sent`](Self::handle_sent)
///    whether the body wants to hear of it.
///
/// Time is always an argument; a session never reads the clock.
pub trait Session {
    /// What the session reports to the application.
    type Event;

    /// Bytes received from the peer, in order.
    fn handle_input(&mut self, data: Bytes, now: Instant);

    /// The peer closed its side (or the connection failed).
    fn handle_eof(&mut self, now: Instant);

    /// The instant returned by `poll_timeout` has been reached.
    fn handle_timeout(&mut self, now: Instant);

    /// The arena to flush, if it holds anything.
    fn poll_transmit(&mut self) -> Option<&mut IoArena>;

    /// When `handle_timeout` should next be called.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Whether the driver should keep reading from the socket.
    fn wants_read(&self) -> bool {
        true
    }

    /// Whether the session is finished (poisoned or closed) and the socket can go.
    fn is_closed(&self) -> bool;

    /// The kernel took some of the arena's bytes (the driver has already called
    /// [`IoArena::advance`]). True asks the driver to report it to the body as
    /// [`Activity::Sent`](super::Activity::Sent): a body waiting for room in the arena
    /// (a blocked send, a linger) sleeps in `turn` until then instead of polling. A
    /// session answers true once per request of its body (it clears its flag); the
    /// default never asks, and costs a driver nothing past this inlined call.
    fn handle_sent(&mut self) -> bool {
        false
    }
}

/// A body's standing request to hear of a write ([`Session::handle_sent`]): the first
/// write that leaves at most `below` bytes of output is reported, once. A session keeps
/// one, sets it when its body is about to wait for the kernel (a call blocked on a full
/// buffer, a flush), and asks it from `handle_sent`; while nobody waits it is `None`,
/// and the hot path pays one branch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SentWatch(Option<usize>);

impl SentWatch {
    /// Report the first write that leaves at most `below` bytes (0: once the output is
    /// empty). A mark above 0 lets the body refill before the kernel runs dry, and keeps
    /// the writes in between large (no wake per write).
    pub fn ask(&mut self, below: usize) {
        self.0 = Some(below);
    }

    /// Whether a body is waiting.
    pub fn is_asked(&self) -> bool {
        self.0.is_some()
    }

    /// For `handle_sent`, with `left` bytes of output left: true (and the request
    /// cleared) when the body asked to hear of it.
    #[inline]
    pub fn sent(&mut self, left: usize) -> bool {
        let due = self.0.is_some_and(|mark| left <= mark);
        if due {
            self.0 = None;
        }
        due
    }
}

/// A boxed session is a session: a driver can run `Either<Small, Box<Large>>` so the
/// common kind does not pay for the size of the rare one.
impl<S: Session + ?Sized> Session for Box<S> {
    type Event = S::Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        (**self).handle_input(data, now);
    }

    fn handle_eof(&mut self, now: Instant) {
        (**self).handle_eof(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (**self).poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        (**self).poll_event()
    }

    fn wants_read(&self) -> bool {
        (**self).wants_read()
    }

    fn is_closed(&self) -> bool {
        (**self).is_closed()
    }

    fn handle_sent(&mut self) -> bool {
        (**self).handle_sent()
    }
}

#[cfg(test)]
mod tests {
    use super::SentWatch;

    #[test]
    fn a_watch_reports_once_at_its_mark() {
        let mut watch = SentWatch::default();
        assert!(!watch.sent(0), "nobody asked");
        watch.ask(100);
        assert!(watch.is_asked());
        assert!(!watch.sent(101), "above the mark");
        assert!(watch.sent(100), "at the mark");
        assert!(!watch.is_asked());
        assert!(!watch.sent(0), "once per request");
        watch.ask(0);
        assert!(!watch.sent(1));
        assert!(watch.sent(0));
    }
}
