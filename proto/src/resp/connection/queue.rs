//! The FIFO that correlates replies with requests, in wire order.

use std::collections::VecDeque;
use std::time::Instant;

use super::pubsub::SubCommand;
use super::{HandshakeCommand, RequestId};
use crate::resp::{Cmd, Protocol, Value};

/// One command on the wire that the server will answer. Plain data (no drop glue, see
/// [`Kind`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// The request this entry belongs to (0 for handshake commands). Non-decreasing
    /// along the FIFO, so a request is found by binary search.
    pub owner: u64,
    /// What the reply means.
    pub role: Role,
    /// When the request fails with a timeout. Non-decreasing along the FIFO.
    pub deadline: Option<Instant>,
}

/// What the reply to an entry is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// A handshake command, answered internally.
    Handshake(Step),
    /// `MULTI` of a `send_transaction`: `+OK` expected.
    Multi,
    /// The `index`th command of a `send_transaction`: `+QUEUED` expected.
    Queued(usize),
    /// The entry whose reply completes a user request.
    Request(Request),
    /// The connection's own health-check `PING`: any reply proves the server alive and
    /// is dropped. Its entry has no deadline (staleness is judged on silence instead).
    Health,
}

/// A handshake command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `HELLO 3 ...`.
    Hello,
    /// `AUTH`.
    Auth,
    /// `CLIENT SETNAME`.
    SetName,
    /// `SELECT`.
    Select,
    /// A `SELECT` pipelined after a `HELLO` that failed: it ran before `AUTH`, so it is
    /// sent again and this reply means nothing.
    Stale,
}

impl Step {
    /// The command, for errors.
    pub fn command(self) -> HandshakeCommand {
        match self {
            Step::Hello => HandshakeCommand::Hello,
            Step::Auth => HandshakeCommand::Auth,
            Step::SetName => HandshakeCommand::SetName,
            Step::Select | Step::Stale => HandshakeCommand::Select,
        }
    }
}

/// A user request still waiting for its reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// Its id.
    pub id: RequestId,
    /// Whether someone still wants the reply.
    pub fate: Fate,
    /// How its reply is recognised and what it changes.
    pub kind: Kind,
}

/// Whether the reply is still wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// No terminal event yet.
    Waiting,
    /// [`abandon`](super::Connection::abandon)ed: drop the reply.
    Abandoned,
    /// Failed with a timeout: drop the reply.
    TimedOut,
    /// Sent by the connection itself to restore a lost connection's state
    /// ([`resume`](super::Connection::resume)): the reply is consumed here, and an error
    /// reply becomes [`Event::RestoreFailed`](super::Event::RestoreFailed).
    Restore,
}

/// What kind of command a request is.
///
/// No variant owns heap memory (what a tracking or subscribe-family request carries is
/// in [`Extras`]), so an [`Entry`] has no drop glue: a run of visited entries leaves the
/// FIFO without each being looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One reply.
    Plain,
    /// One reply, which the server may legitimately hold back for long (`BLPOP`,
    /// `XREAD ... BLOCK`, `WAIT`): silence is not staleness while it is the oldest.
    Blocking,
    /// `HELLO 2|3`: switches protocol when it succeeds.
    Hello(Protocol),
    /// `RESET`: back to RESP2, no subscriptions.
    Reset,
    /// `EXEC` of a `send_transaction`.
    Exec,
    /// `CLIENT TRACKING ON ...` or `OFF`: takes effect when the server answers `+OK`
    /// (its [`Extra::Tracking`] says which).
    Tracking,
    /// A subscribe-family command: completed by confirmations, not by a reply (its
    /// [`Extra::Subscribe`] collects them).
    Subscribe,
}

/// What a tracking or subscribe-family request carries beyond its [`Kind`].
#[derive(Debug)]
pub(crate) enum Extra {
    /// `CLIENT TRACKING ON ...` (the command, to replay on a new connection) or
    /// `CLIENT TRACKING OFF` (`None`).
    Tracking(Option<Cmd>),
    /// A subscribe-family command's confirmations.
    Subscribe(Subscribing),
}

/// The [`Extra`]s of the requests in the FIFOs, by request id. They are few (a request
/// of these kinds is rare), so a list searched from the end serves.
#[derive(Debug, Default)]
pub(crate) struct Extras(Vec<(RequestId, Extra)>);

impl Extras {
    /// Keeps `extra` for request `id`.
    pub fn insert(&mut self, id: RequestId, extra: Extra) {
        self.0.push((id, extra));
    }

    /// The confirmations collected for subscribe-family request `id`.
    pub fn subscribing(&mut self, id: RequestId) -> Option<&mut Subscribing> {
        self.0.iter_mut().rev().find_map(|(i, e)| match e {
            Extra::Subscribe(sub) if *i == id => Some(sub),
            _ => None,
        })
    }

    /// Removes and returns what request `id` carries (its entry left the FIFO).
    pub fn take(&mut self, id: RequestId) -> Option<Extra> {
        let at = self.0.iter().position(|(i, _)| *i == id)?;
        Some(self.0.remove(at).1)
    }

    /// Forgets everything (the FIFOs were emptied).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A subscribe-family command waiting for its confirmations.
#[derive(Debug)]
pub(crate) struct Subscribing {
    /// Which command (confirmations must carry the same name).
    pub command: SubCommand,
    /// Confirmations expected; `None` for an unsubscribe-all until it reaches the front
    /// of the FIFO.
    pub expected: Option<usize>,
    /// Confirmations received so far.
    pub confirmations: Vec<Value>,
}

impl Entry {
    /// Whether this entry is a plain request still waited for: its reply may be handed
    /// to a visit as it is (see [`Fifo::all_plain`]).
    #[inline(always)]
    pub fn is_plain_waiting(&self) -> bool {
        matches!(
            self.role,
            Role::Request(Request {
                fate: Fate::Waiting,
                kind: Kind::Plain | Kind::Blocking,
                ..
            })
        )
    }
}

/// Entries in wire order, with a cursor past those whose deadline was handled, and a
/// count of the entries that are not plain requests still waited for.
///
/// The entries are only changed through its methods, which keep that count: when it is
/// zero, a visit hands over a run of replies without looking at each entry.
#[derive(Debug, Default)]
pub(crate) struct Fifo {
    entries: VecDeque<Entry>,
    /// The first `expired` entries' deadlines have passed and were handled.
    pub expired: usize,
    /// How many entries are not [`plain and waiting`](Entry::is_plain_waiting).
    irregular: usize,
}

impl Fifo {
    /// The entries, oldest first.
    #[inline]
    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// Whether every entry is a plain request still waited for (none is a handshake
    /// step, a transaction's, a health check, a special command or one whose reply is
    /// no longer wanted).
    #[inline]
    pub fn all_plain(&self) -> bool {
        self.irregular == 0
    }

    /// Appends `entry`, raising its deadline to the last one's so deadlines stay in order
    /// (the reply cannot come before those of earlier entries anyway).
    pub fn push(&mut self, mut entry: Entry) {
        if let (Some(d), Some(Some(last))) = (entry.deadline, self.entries.back().map(|e| e.deadline)) {
            entry.deadline = Some(d.max(last));
        }
        self.irregular += usize::from(!entry.is_plain_waiting());
        self.entries.push_back(entry);
    }

    /// Removes the oldest entry.
    pub fn pop(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.expired = self.expired.saturating_sub(1);
        self.irregular -= usize::from(!e.is_plain_waiting());
        Some(e)
    }

    /// Removes the `n` oldest entries, which must all be plain requests still waited
    /// for (a visited run): the count of the others is unchanged.
    pub fn take_plain(&mut self, n: usize) {
        debug_assert!(self.entries.range(..n).all(Entry::is_plain_waiting));
        self.entries.drain(..n);
        // A request still waited for is never among the entries whose deadline was
        // handled, so this only keeps the count in step, as `pop` does.
        self.expired = self.expired.saturating_sub(n);
    }

    /// Changes the entry at `index` with `change`, keeping the count of irregular
    /// entries; `None` past the end.
    pub fn update<R>(&mut self, index: usize, change: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let entry = self.entries.get_mut(index)?;
        let was = !entry.is_plain_waiting();
        let r = change(entry);
        let is = !entry.is_plain_waiting();
        self.irregular = self.irregular + usize::from(is) - usize::from(was);
        Some(r)
    }

    /// The next deadline not yet handled (a health check, which has none, is skipped).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .range(self.expired..)
            .find(|e| !matches!(e.role, Role::Health))
            .and_then(|e| e.deadline)
    }

    /// Whether the oldest entry is a blocking command, whose silence is expected.
    pub fn front_is_blocking(&self) -> bool {
        matches!(
            self.entries.front(),
            Some(Entry {
                role: Role::Request(Request {
                    kind: Kind::Blocking,
                    ..
                }),
                ..
            })
        )
    }

    /// Marks request `id` abandoned if it is here and still waited for; returns whether
    /// it was.
    pub fn abandon(&mut self, id: RequestId) -> bool {
        let start = self.entries.partition_point(|e| e.owner < id.0);
        let at = self
            .entries
            .range(start..)
            .take_while(|e| e.owner == id.0)
            .position(|e| matches!(e.role, Role::Request(r) if r.id == id));
        let Some(at) = at else { return false };
        self.update(start + at, |e| match &mut e.role {
            Role::Request(r) if r.fate == Fate::Waiting => {
                r.fate = Fate::Abandoned;
                true
            }
            _ => false,
        })
        .unwrap_or(false)
    }

    /// Removes every entry.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry> + '_ {
        self.expired = 0;
        self.irregular = 0;
        self.entries.drain(..)
    }

    /// Whether the count of irregular entries matches the entries (for tests).
    #[cfg(test)]
    pub fn count_is_right(&self) -> bool {
        self.irregular == self.entries.iter().filter(|e| !e.is_plain_waiting()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u64, kind: Kind) -> Entry {
        Entry {
            owner: id,
            role: Role::Request(Request {
                id: RequestId(id),
                fate: Fate::Waiting,
                kind,
            }),
            deadline: None,
        }
    }

    #[test]
    fn the_fifo_counts_the_entries_that_are_not_plain_waiting_requests() {
        let mut fifo = Fifo::default();
        assert!(fifo.all_plain());
        fifo.push(request(1, Kind::Plain));
        fifo.push(request(2, Kind::Blocking));
        assert!(fifo.all_plain());
        fifo.push(request(3, Kind::Exec));
        fifo.push(Entry {
            owner: 3,
            role: Role::Health,
            deadline: None,
        });
        fifo.push(request(4, Kind::Plain));
        assert!(!fifo.all_plain() && fifo.count_is_right());
        assert!(fifo.abandon(RequestId(4)));
        assert!(!fifo.abandon(RequestId(4)), "already abandoned");
        assert!(!fifo.abandon(RequestId(9)), "never sent");
        assert!(fifo.count_is_right());
        assert_eq!(
            fifo.update(1, |e| {
                if let Role::Request(r) = &mut e.role {
                    r.fate = Fate::TimedOut;
                }
            }),
            Some(())
        );
        assert!(fifo.count_is_right());
        assert_eq!(fifo.update(5, |_| ()), None);
        fifo.take_plain(1);
        for _ in 0..3 {
            fifo.pop();
            assert!(fifo.count_is_right());
        }
        assert!(!fifo.all_plain(), "the abandoned request is left");
        fifo.pop();
        assert!(fifo.all_plain() && fifo.entries().is_empty());
        fifo.push(request(5, Kind::Subscribe));
        assert_eq!(fifo.drain().count(), 1);
        assert!(fifo.all_plain() && fifo.count_is_right());
    }
}
