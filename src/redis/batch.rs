//! The requests buffered since the last flush, in order: not yet handed to the
//! connection, on the wire, or answered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use monocoque_proto::resp::{Cmd, Value};

use super::Error;

/// Identifies one request buffered on a [`Client`](super::Client): its position in the
/// client's sequence of requests (never reused, across flushes and reconnects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What a buffered request sends.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// One command.
    Cmd(Cmd),
    /// `MULTI`, these commands, `EXEC`.
    Transaction(Vec<Cmd>),
}

impl Request {
    /// Bytes on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Cmd(c) => c.encoded_len(),
            Request::Transaction(cmds) => 30 + cmds.iter().map(Cmd::encoded_len).sum::<usize>(),
        }
    }

    /// The name of the command, when it is one command.
    pub fn name(&self) -> Option<&[u8]> {
        match self {
            Request::Cmd(c) => Some(c.name()),
            Request::Transaction(_) => None,
        }
    }
}

/// One buffered request.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Not handed to any connection yet: safe to send on a new one. Boxed: it is the
    /// rare case, and the common ones stay small.
    Unsent(Box<Request>),
    /// Handed to the current connection; its outcome comes as an event.
    Sent,
    /// Answered (or failed).
    Done(Result<Value, Error>),
    /// Its outcome was returned by `query`; `flush` skips it.
    Taken,
}

/// The requests buffered since the last flush.
///
/// Slots are in request order; `slots[..cursor]` were handed to a connection (or failed
/// without being sent), `slots[cursor..]` are all [`Slot::Unsent`].
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The sequence number of `slots[0]`.
    pub base: u64,
    pub slots: VecDeque<Slot>,
    pub cursor: usize,
    /// Encoded size of the unsent slots.
    pub unsent_bytes: usize,
    /// Slots that are `Done` or `Taken`.
    pub finished: usize,
    /// Slots that are `Taken`.
    pub taken: usize,
    /// When each unsent slot was buffered, in slot order: held requests have a
    /// deadline too, counted from here.
    pub held_at: VecDeque<Instant>,
}

impl Batch {
    /// The id the next request gets.
    pub fn next_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Appends an unsent request, buffered at `now`.
    pub fn push_unsent(&mut self, request: Request, now: Instant) -> RequestId {
        let id = RequestId(self.next_seq());
        self.unsent_bytes += request.encoded_len();
        self.held_at.push_back(now);
        self.slots.push_back(Slot::Unsent(Box::new(request)));
        id
    }

    /// Appends a request already handed to the connection (the cursor moves past it).
    pub fn push_sent(&mut self) -> RequestId {
        debug_assert_eq!(self.cursor, self.slots.len());
        let id = RequestId(self.next_seq());
        self.slots.push_back(Slot::Sent);
        self.cursor += 1;
        id
    }

    /// Whether there are unsent requests.
    pub fn has_unsent(&self) -> bool {
        self.cursor < self.slots.len()
    }

    /// The next unsent request.
    pub fn next_unsent(&self) -> Option<&Request> {
        match self.slots.get(self.cursor) {
            Some(Slot::Unsent(r)) => Some(&**r),
            _ => None,
        }
    }

    /// The next unsent request was handed to the connection.
    pub fn mark_next_sent(&mut self) {
        if let Some(slot) = self.slots.get_mut(self.cursor) {
            if let Slot::Unsent(r) = std::mem::replace(slot, Slot::Sent) {
                self.unsent_bytes = self.unsent_bytes.saturating_sub(r.encoded_len());
                self.held_at.pop_front();
            }
            self.cursor += 1;
        }
    }

    /// The next unsent request fails without being sent.
    pub fn fail_next_unsent(&mut self, error: Error) {
        if let Some(slot) = self.slots.get_mut(self.cursor) {
            if let Slot::Unsent(r) = std::mem::replace(slot, Slot::Done(Err(error))) {
                self.unsent_bytes = self.unsent_bytes.saturating_sub(r.encoded_len());
                self.held_at.pop_front();
            }
            self.finished += 1;
            self.cursor += 1;
        }
    }

    /// Every unsent request fails without being sent.
    pub fn fail_unsent(&mut self, error: &Error) {
        while self.has_unsent() {
            self.fail_next_unsent(error.clone());
        }
    }

    /// Records the outcome of the sent request `seq`. Returns false if there is no such
    /// request waiting.
    pub fn complete(&mut self, seq: u64, outcome: Result<Value, Error>) -> bool {
        let Some(index) = seq.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()) else {
            return false;
        };
        match self.slots.get_mut(index) {
            Some(slot @ Slot::Sent) => {
                *slot = Slot::Done(outcome);
                self.finished += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether request `seq` has its outcome (or is not in the batch any more).
    pub fn is_finished(&self, seq: u64) -> bool {
        match seq.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()) {
            Some(index) => !matches!(self.slots.get(index), Some(Slot::Unsent(_) | Slot::Sent)),
            None => true,
        }
    }

    /// Whether every request has its outcome.
    pub fn all_finished(&self) -> bool {
        self.finished == self.slots.len()
    }

    /// Takes the outcome of request `seq` (leaving [`Slot::Taken`]); when every slot is
    /// taken, the batch is emptied.
    pub fn take(&mut self, seq: u64) -> Option<Result<Value, Error>> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let slot = self.slots.get_mut(index)?;
        if !matches!(slot, Slot::Done(_)) {
            return None;
        }
        let Slot::Done(outcome) = std::mem::replace(slot, Slot::Taken) else {
            return None;
        };
        self.taken += 1;
        if self.taken == self.slots.len() {
            self.clear();
        }
        Some(outcome)
    }

    /// Every outcome not yet taken, in request order; the batch is emptied. Only call
    /// when [`all_finished`](Self::all_finished).
    pub fn drain(&mut self) -> Vec<Result<Value, Error>> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        out
    }

    /// [`drain`](Self::drain), appending to `out`; returns how many were appended.
    pub fn drain_into(&mut self, out: &mut Vec<Result<Value, Error>>) -> usize {
        let next = self.next_seq();
        let n = self.slots.len() - self.taken;
        out.reserve(n);
        for slot in self.slots.drain(..) {
            if let Slot::Done(outcome) = slot {
                out.push(outcome);
            }
        }
        self.clear();
        self.base = next;
        n
    }

    /// Takes the front slot if it is finished: `Some(Some(outcome))` for an outcome not
    /// yet returned, `Some(None)` for one [`query`](super::Client::query) took, `None`
    /// when the front request is not finished (or there is none).
    pub fn pop_finished(&mut self) -> Option<Option<Result<Value, Error>>> {
        if !matches!(self.slots.front(), Some(Slot::Done(_) | Slot::Taken)) {
            return None;
        }
        let slot = self.slots.pop_front()?;
        self.base += 1;
        self.cursor = self.cursor.saturating_sub(1);
        self.finished = self.finished.saturating_sub(1);
        match slot {
            Slot::Done(outcome) => Some(Some(outcome)),
            _ => {
                self.taken = self.taken.saturating_sub(1);
                Some(None)
            }
        }
    }

    /// Removes the front slot if it is request `seq`, sent and waiting: its reply was
    /// handed over where it arrived. Whether it was.
    pub fn pop_sent(&mut self, seq: u64) -> bool {
        if seq != self.base || !matches!(self.slots.front(), Some(Slot::Sent)) {
            return false;
        }
        self.slots.pop_front();
        self.base += 1;
        self.cursor = self.cursor.saturating_sub(1);
        true
    }

    /// Drops every slot; ids go on from where they were.
    pub fn clear(&mut self) {
        self.base = self.next_seq();
        self.slots.clear();
        self.cursor = 0;
        self.unsent_bytes = 0;
        self.finished = 0;
        self.taken = 0;
        self.held_at.clear();
    }

    /// The instant the oldest unsent request's deadline passes, `timeout` after it was
    /// buffered.
    pub fn held_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        self.held_at.front().and_then(|at| at.checked_add(timeout?))
    }

    /// Fails with [`Error::Timeout`] every unsent request buffered `timeout` or more
    /// before `now` (they are in buffering order, so the expired ones lead).
    pub fn expire_unsent(&mut self, timeout: Option<Duration>, now: Instant) {
        self.expire_unsent_with(timeout, now, &Error::Timeout);
    }

    /// [`expire_unsent`](Self::expire_unsent), failing them with `error` (why they
    /// could not be sent in time, e.g. the reconnect's last failure).
    pub fn expire_unsent_with(&mut self, timeout: Option<Duration>, now: Instant, error: &Error) {
        while self.has_unsent() && self.held_deadline(timeout).is_some_and(|d| d <= now) {
            self.fail_next_unsent(error.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> Request {
        Request::Cmd(Cmd::new("GET").arg(key))
    }

    #[test]
    fn outcomes_come_back_in_request_order() {
        let mut b = Batch::default();
        let a = b.push_sent();
        let c = b.push_unsent(get("x"), Instant::now());
        assert!(b.has_unsent());
        assert!(b.unsent_bytes > 0);
        b.mark_next_sent();
        assert!(!b.has_unsent());
        assert_eq!(b.unsent_bytes, 0);
        assert!(b.complete(c.0, Ok(Value::Integer(2))));
        assert!(!b.all_finished());
        assert!(!b.is_finished(a.0));
        assert!(b.complete(a.0, Ok(Value::Integer(1))));
        assert!(!b.complete(a.0, Ok(Value::Integer(9))), "a request completes once");
        assert!(b.all_finished());
        let out: Vec<i64> = b
            .drain()
            .into_iter()
            .map(|r| r.unwrap().as_integer().unwrap())
            .collect();
        assert_eq!(out, [1, 2]);
        assert_eq!(b.push_sent(), RequestId(2), "ids are never reused");
    }

    #[test]
    fn taken_outcomes_are_skipped_and_an_all_taken_batch_empties() {
        let mut b = Batch::default();
        let a = b.push_sent();
        let q = b.push_sent();
        b.complete(q.0, Ok(Value::Null));
        assert_eq!(b.take(a.0).map(|_| ()), None, "not answered yet");
        assert!(b.take(q.0).unwrap().unwrap().is_null());
        b.complete(a.0, Ok(Value::Integer(1)));
        assert_eq!(b.slots.len(), 2, "one outcome is still to be returned");
        assert_eq!(b.drain().len(), 1);
        let q2 = b.push_sent();
        b.complete(q2.0, Ok(Value::Null));
        assert!(b.take(q2.0).is_some());
        assert!(b.slots.is_empty());
        assert_eq!(b.base, 3);
        assert!(b.is_finished(q2.0));
    }

    #[test]
    fn drain_into_appends_untaken_outcomes_in_order() {
        let mut b = Batch::default();
        let ids: Vec<RequestId> = (0..3).map(|_| b.push_sent()).collect();
        for (n, id) in ids.iter().enumerate().rev() {
            b.complete(id.0, Ok(Value::Integer(n as i64)));
        }
        assert!(b.take(ids[1].0).is_some());
        let mut out = vec![Ok(Value::Null)];
        assert_eq!(b.drain_into(&mut out), 2);
        let got: Vec<Value> = out.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, [Value::Null, Value::Integer(0), Value::Integer(2)]);
        assert!(b.slots.is_empty());
        assert_eq!(b.push_sent(), RequestId(3), "ids go on");
    }

    #[test]
    fn held_requests_expire_in_buffering_order() {
        let mut b = Batch::default();
        let t0 = Instant::now();
        let timeout = Some(Duration::from_secs(1));
        let a = b.push_unsent(get("a"), t0);
        let c = b.push_unsent(get("c"), t0 + Duration::from_millis(500));
        assert_eq!(b.held_deadline(timeout), Some(t0 + Duration::from_secs(1)));
        assert_eq!(b.held_deadline(None), None);
        b.expire_unsent(timeout, t0 + Duration::from_millis(999));
        assert!(!b.is_finished(a.0));
        b.expire_unsent(timeout, t0 + Duration::from_secs(1));
        assert!(matches!(b.take(a.0), Some(Err(Error::Timeout))));
        assert!(!b.is_finished(c.0));
        assert_eq!(b.held_deadline(timeout), Some(t0 + Duration::from_millis(1500)));
        b.expire_unsent(timeout, t0 + Duration::from_secs(2));
        assert!(matches!(b.take(c.0), Some(Err(Error::Timeout))));
        assert_eq!(b.held_deadline(timeout), None);
        assert_eq!(b.unsent_bytes, 0);
    }

    #[test]
    fn unsent_requests_fail_without_being_sent() {
        let mut b = Batch::default();
        b.push_unsent(get("a"), Instant::now());
        b.push_unsent(Request::Transaction(vec![Cmd::new("INCR").arg("n")]), Instant::now());
        b.fail_unsent(&Error::Timeout);
        assert!(b.all_finished());
        assert_eq!(b.unsent_bytes, 0);
        assert!(b.drain().iter().all(|r| matches!(r, Err(Error::Timeout))));
    }
}
