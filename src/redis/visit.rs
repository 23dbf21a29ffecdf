//! Visiting replies: a batch's outcomes handed to a closure in request order, each reply
//! as a [`TapeRef`] borrowed from the received bytes (no `Value`, no `Bytes` view per
//! string), for callers that read replies and drop them.
//!
//! During a visiting call the live connection holds its input back
//! ([`Connection::defer_input`]); after each driver turn the replies of plain requests
//! are decoded onto the connection's tape and visited where they lie
//! ([`Connection::visit_replies`]). Outcomes that come another way (a transaction's
//! `EXEC`, subscribe confirmations, failures, replies that arrived while no visit was
//! under way) are finished slots of the batch: they are visited in their turn through
//! a scratch tape that holds the owned value.

use std::time::Instant;

use monocoque_proto::resp::{Connection, TapeKind, TapeRef};
use monocoque_proto::Driver;

use super::body::{reply_outcome, Inner, Redis};
use super::{Error, ServerError};

impl<D: Driver<Connection>> Inner<D> {
    /// See [`Client::flush_visit`](super::Client::flush_visit).
    pub(crate) fn flush_visit(&mut self, visit: &mut impl FnMut(Result<TapeRef<'_>, Error>)) -> Result<usize, Error> {
        let mut n = 0;
        self.defer_live(true);
        let driven = self.drive_with(|inner| {
            let visited = inner.visit_ready(visit);
            n += visited;
            if visited > 0 {
                // Replies visited here, not in the turn: what they made room for in
                // the connection goes out with the next turn.
                inner.submit_unsent();
            }
            inner.proto.batch.slots.is_empty()
        });
        self.defer_live(false);
        driven.map(|()| n)
    }

    /// See [`Client::pump_visit`](super::Client::pump_visit).
    pub(crate) fn pump_visit(
        &mut self,
        wait_until: Option<Instant>,
        visit: &mut impl FnMut(Result<TapeRef<'_>, Error>),
    ) -> Result<usize, Error> {
        self.defer_live(true);
        let pumped = self.pump_with(wait_until, |inner| inner.visit_ready(visit));
        self.defer_live(false);
        pumped
    }

    /// Holds the live connection's input back for visits, or (`false`) acts on what it
    /// holds, handing the events that makes to the client.
    fn defer_live(&mut self, defer: bool) {
        if let Some(conn) = self.live_session() {
            conn.defer_input(defer, Instant::now());
        }
        if !defer {
            self.drain_events();
        }
    }

    /// Visits the outcomes at the front of the batch that are in: finished slots, then
    /// the replies the connection holds, up to the first request still waiting.
    /// Returns how many it visited.
    fn visit_ready(&mut self, visit: &mut impl FnMut(Result<TapeRef<'_>, Error>)) -> usize {
        let mut n = self.visit_finished(visit);
        if self.proto.batch.all_finished() {
            return n;
        }
        let now = self.last_turn;
        let Self {
            driver, proto, link, ..
        } = self;
        let Some(link) = link.as_mut().filter(|l| l.is_live()) else {
            return n;
        };
        let Some(conn) = driver.session_for_output(link.conn) else {
            return n;
        };
        if !conn.is_input_deferred() {
            // A connection made during this call: what it received so far came as
            // events; from now on its replies are visited.
            conn.defer_input(true, now);
            return n;
        }
        let Redis { batch, .. } = proto;
        let inflight = &mut link.state.inflight;
        // A decode error poisons the connection: its events say so below.
        let _ = conn.visit_replies(now, |id, reply| {
            // Replies come in send order: nearly always the front.
            let seq = match inflight.front() {
                Some(&(front, seq)) if front == id => {
                    inflight.pop_front();
                    seq
                }
                _ => match inflight.binary_search_by_key(&id, |(i, _)| *i) {
                    Ok(pos) => match inflight.remove(pos) {
                        Some((_, seq)) => seq,
                        None => return,
                    },
                    Err(_) => return,
                },
            };
            if batch.pop_sent(seq) {
                visit(borrowed_outcome(reply));
                n += 1;
            } else {
                // An earlier request's outcome is still to come (as an event): this
                // one waits its turn as an owned value.
                batch.complete(seq, reply_outcome(reply.to_value()));
            }
        });
        // What the visit acted on the owned way, and a poisoning, reach the batch; the
        // outcomes that finished at its front follow.
        self.drain_events();
        n + self.visit_finished(visit)
    }

    /// Visits the finished outcomes at the front of the batch; returns how many.
    fn visit_finished(&mut self, visit: &mut impl FnMut(Result<TapeRef<'_>, Error>)) -> usize {
        let mut n = 0;
        while let Some(slot) = self.proto.batch.pop_finished() {
            match slot {
                Some(Ok(value)) => {
                    let scratch = &mut self.proto.scratch;
                    scratch.clear();
                    scratch.push(value);
                    if let Some(reply) = scratch.get(0) {
                        visit(Ok(reply));
                    }
                }
                Some(Err(e)) => visit(Err(e)),
                // Taken by `query`.
                None => continue,
            }
            n += 1;
        }
        n
    }
}

/// A visited reply as the caller sees it: an error reply is an [`Error::Server`].
fn borrowed_outcome(reply: TapeRef<'_>) -> Result<TapeRef<'_>, Error> {
    match reply.kind() {
        TapeKind::SimpleError | TapeKind::BlobError => {
            Err(Error::Server(ServerError::new(reply.as_bytes().unwrap_or_default())))
        }
        _ => Ok(reply),
    }
}
