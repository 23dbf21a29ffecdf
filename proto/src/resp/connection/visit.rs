//! Receiving without building values: received bytes held back until the body visits
//! the replies, decoded onto a [`Tape`] and handed over as borrowed [`TapeRef`]s (no
//! reference count, no `Value`, no event per reply).
//!
//! Only the replies of plain requests are visited: the one at the front of the FIFO,
//! still waited for, not a push and not (on RESP2, while pub/sub frames may come) an
//! array. Everything else (handshake and restore replies, `MULTI` bookkeeping, `EXEC`,
//! subscribe confirmations, `HELLO`, `RESET`, `CLIENT TRACKING`, pushes, the health
//! check's `PONG`, replies to timed-out or abandoned requests) takes the owned path,
//! `to_value()` and [`on_value`](Connection::on_value), exactly as
//! [`handle_input`](Connection::handle_input) would have: its events are queued.

use std::time::Instant;

use super::queue::{Entry, Fate, Kind, Request, Role};
use super::{Connection, ConnectionError, RequestId};
use crate::resp::{Protocol, Tape, TapeKind, TapeRef};

/// Deferred input past which [`Connection::wants_read`] turns false until a visit
/// decodes it: bytes, or received segments (as the NATS client's visit).
const MAX_DEFERRED_BYTES: usize = 1 << 20;
const MAX_DEFERRED_SEGMENTS: usize = 64;

impl Connection {
    /// Holds received bytes back (`true`) until [`visit_replies`](Self::visit_replies)
    /// decodes them, or decodes them as they arrive (`false`, the default; switching to
    /// it acts on everything held, queueing its events).
    ///
    /// While input is deferred, [`handle_input`](Self::handle_input) only keeps the
    /// segment, and [`wants_read`](Self::wants_read) turns false once about 1 MiB (or 64
    /// segments) waits. The end of stream, a timer and
    /// [`take_reconnect_state`](Self::take_reconnect_state) act on what is held first,
    /// so no reply that arrived is lost or mistaken for a stalled one.
    pub fn defer_input(&mut self, defer: bool, now: Instant) {
        if self.deferred == defer {
            return;
        }
        self.deferred = defer;
        if !defer {
            self.settle(now);
        }
    }

    /// Whether received bytes are held back for visits (see
    /// [`defer_input`](Self::defer_input)).
    pub fn is_input_deferred(&self) -> bool {
        self.deferred
    }

    /// Decodes everything received (held back by [`defer_input`](Self::defer_input))
    /// onto a tape and hands each reply of a plain request to `visit`, in wire order,
    /// with its request's id, as a [`TapeRef`] borrowed from the received bytes; an
    /// error reply is handed over too (its [`kind`](TapeRef::kind) says so). A visited
    /// reply completes its request: no [`Event::Reply`](super::Event::Reply) follows.
    /// Every other value is acted on as [`handle_input`](Self::handle_input) would have
    /// (see the module's list), so its events wait in [`poll_event`](Self::poll_event).
    /// Returns how many replies were visited.
    ///
    /// A reply is visited only while no event waits in [`poll_event`](Self::poll_event),
    /// so nothing is handed over ahead of an event queued before it: drain the events
    /// before a visit, and once the visit has acted on something the owned way (a
    /// transaction's `EXEC`, a push, the end of the handshake), the replies after it
    /// come as events too, until the next visit after a drain.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::Bytes;
    /// use monocoque_proto::resp::{Cmd, Connection, ConnectionConfig, Event, Protocol};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let config = ConnectionConfig { protocol: Protocol::Resp2, ..ConnectionConfig::default() };
    /// let mut conn = Connection::new(config, now);
    /// assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
    /// let a = conn.send_buffered(&Cmd::new("GET").arg("a"), now)?;
    /// let b = conn.send_buffered(&Cmd::new("INCR").arg("n"), now)?;
    /// conn.defer_input(true, now);
    /// conn.handle_input(Bytes::from_static(b"$2\r\nhi\r\n:7\r\n"), now)?;
    /// let mut got = Vec::new();
    /// conn.visit_replies(now, |id, reply| got.push((id, reply.as_bytes().map(<[u8]>::to_vec), reply.as_integer())))?;
    /// assert_eq!(got, [(a, Some(b"hi".to_vec()), None), (b, None, Some(7))]);
    /// assert_eq!(conn.poll_event(), None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The poisoning error, if the connection is (or now becomes) poisoned; replies
    /// decoded before a malformed one are visited first.
    pub fn visit_replies(
        &mut self,
        now: Instant,
        mut visit: impl FnMut(RequestId, TapeRef<'_>),
    ) -> Result<usize, ConnectionError> {
        self.guard.check()?;
        let mut tape = std::mem::take(&mut self.tape);
        // At most one reply per entry waits, and each takes 3 bytes at least: room for
        // them at once rather than by doubling (a no-op once the kept tape is large).
        tape.reserve(self.fifo.entries().len().min(self.input.len() / 3));
        let decoded = self.decoder.decode(&mut self.input, &mut tape);
        // Only a tape that may hold a push needs each reply's kind checked for one.
        let pushes = tape.may_hold_push();
        let mut visited = 0;
        let mut at = 0;
        while at < tape.len() {
            // A reply is never handed over ahead of an event queued before it.
            if self.events.is_empty() {
                let n = self.visit_run(&tape, at, pushes, &mut visit);
                if n > 0 {
                    self.take_visited(n);
                    visited += n;
                    at += n;
                    continue;
                }
            }
            let Some(reply) = tape.get(at) else { break };
            at += 1;
            self.on_value(reply.to_value(), now);
            if self.guard.is_poisoned() {
                break;
            }
        }
        tape.clear();
        self.tape = tape;
        if let Err(e) = decoded {
            if !self.guard.is_poisoned() {
                self.poison(ConnectionError::Decode(e));
            }
        }
        self.mark_transmit(now);
        self.guard.check()?;
        Ok(visited)
    }

    /// Hands `visit` the replies from the tape's `from`th on that answer plain requests
    /// at the front of the FIFO, up to the first that does not; returns how many (their
    /// entries are still in the FIFO).
    ///
    /// A reply is visited when its entry is a plain request still waited for and it is
    /// not a push (which `pushes` says the tape may hold) nor (on RESP2, while
    /// subscribed) an array, which may be a pub/sub frame: [`on_value`](Self::on_value)
    /// tells those apart. (The other reason arrays may be frames, a subscribe-family
    /// command at the front of the FIFO, cannot hold here: the entries of a run are
    /// plain.) Nothing a run does changes the subscriptions or the FIFO, so these are
    /// decided once per run, and the loop is compiled for each case: when the FIFO
    /// holds only plain requests still waited for (its count of the others is zero,
    /// the common case), the entries are not looked at one by one.
    #[inline]
    fn visit_run(
        &self,
        tape: &Tape,
        from: usize,
        pushes: bool,
        visit: &mut impl FnMut(RequestId, TapeRef<'_>),
    ) -> usize {
        let frames = self.protocol == Protocol::Resp2 && !self.subscriptions.is_empty();
        let plain = self.fifo.all_plain();
        let (front, back) = self.fifo.entries().as_slices();
        let run = match (plain, pushes, frames) {
            (true, false, false) => visit_entries::<false, false, false>,
            (false, false, false) => visit_entries::<true, false, false>,
            (_, true, false) => visit_entries::<true, true, false>,
            (_, false, true) => visit_entries::<true, false, true>,
            (_, true, true) => visit_entries::<true, true, true>,
        };
        let n = run(front, tape, from, visit);
        if n < front.len() {
            return n;
        }
        n + run(back, tape, from + n, visit)
    }

    /// Removes the `n` entries a run answered from the front of the FIFO. They are plain
    /// data (see [`Kind`]): nothing is dropped one by one.
    fn take_visited(&mut self, n: usize) {
        self.fifo.take_plain(n);
        self.pending = self.pending.saturating_sub(n);
        self.settle_front();
    }

    /// Whether enough input is held back that reading should wait for a visit.
    pub(super) fn deferred_full(&self) -> bool {
        self.deferred && (self.input.len() >= MAX_DEFERRED_BYTES || self.input.segment_count() >= MAX_DEFERRED_SEGMENTS)
    }

    /// Acts on input held back, as if it had not been (for the end of stream, a timer,
    /// a reconnect, or input no longer deferred).
    pub(super) fn settle(&mut self, now: Instant) {
        if !self.input.is_empty() && !self.guard.is_poisoned() {
            // A decode error poisons the connection, which reports it from then on.
            let _ = self.decode_input(now);
        }
    }
}

/// [`Connection::visit_run`] over one of the FIFO's two slices: visits the replies from
/// the tape's `from`th on while each answers its entry of `entries`; returns how many.
/// `CHECK`: some entry may not be a plain request still waited for (without it, every
/// entry is one); `PUSHES`: the tape may hold pushes; `FRAMES`: arrays may be pub/sub
/// frames.
#[inline(always)]
fn visit_entries<const CHECK: bool, const PUSHES: bool, const FRAMES: bool>(
    entries: &[Entry],
    tape: &Tape,
    from: usize,
    visit: &mut impl FnMut(RequestId, TapeRef<'_>),
) -> usize {
    let mut n = 0;
    for (entry, reply) in entries.iter().zip(tape.iter_from(from)) {
        let id = if CHECK {
            let Role::Request(Request {
                id,
                fate: Fate::Waiting,
                kind: Kind::Plain | Kind::Blocking,
            }) = entry.role
            else {
                break;
            };
            id
        } else {
            // Every entry is a request's own (not a transaction's nor a handshake's), so
            // the request it belongs to is itself.
            debug_assert!(entry.is_plain_waiting());
            RequestId(entry.owner)
        };
        if PUSHES || FRAMES {
            match reply.kind() {
                // An attributed push is still a push: `kind` looks through attributes.
                TapeKind::Push if PUSHES => break,
                TapeKind::Array if FRAMES => break,
                _ => {}
            }
        }
        visit(id, reply);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::super::{Connection, ConnectionConfig, Event, RequestId};
    use crate::resp::{Cmd, Protocol, Value};

    /// What a connection delivered: each request's outcome (a reply, or the error's
    /// text), and every other event, in order.
    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        outcomes: BTreeMap<u64, Result<Value, String>>,
        others: Vec<Event>,
        visited: usize,
    }

    impl Seen {
        fn drain(&mut self, conn: &mut Connection) {
            while let Some(e) = conn.poll_event() {
                match e {
                    Event::Reply { id, value } => assert!(self.outcomes.insert(id.0, Ok(value)).is_none()),
                    Event::Failed { id, error } => {
                        assert!(self.outcomes.insert(id.0, Err(error.to_string())).is_none())
                    }
                    other => self.others.push(other),
                }
            }
        }
    }

    fn cmd(parts: &[&str]) -> Cmd {
        let mut c = Cmd::new(parts[0]);
        for p in &parts[1..] {
            c.push(*p);
        }
        c
    }

    /// A connection speaking `protocol`, connected (the `HELLO` reply fed for RESP3);
    /// its `Connected` event not yet taken.
    fn connected(protocol: Protocol, now: Instant) -> Connection {
        let config = ConnectionConfig {
            protocol,
            ..ConnectionConfig::default()
        };
        let mut conn = Connection::new(config, now);
        if protocol == Protocol::Resp3 {
            conn.handle_input(Bytes::from_static(b"%1\r\n+proto\r\n:3\r\n"), now)
                .unwrap();
        }
        assert!(conn.is_connected());
        conn
    }

    /// A connection with the script's commands sent; `hello` is fed first (RESP3).
    fn scripted(protocol: Protocol, now: Instant) -> (Connection, Vec<RequestId>) {
        let mut conn = connected(protocol, now);
        let mut ids = Vec::new();
        for parts in [&["GET", "a"][..], &["INCR", "n"], &["FOO"], &["LRANGE", "l", "0", "-1"]] {
            ids.push(conn.send_buffered(&cmd(parts), now).unwrap());
        }
        ids.push(
            conn.send_transaction(&[cmd(&["SET", "k", "v"]), cmd(&["GET", "k"])], now)
                .unwrap(),
        );
        ids.push(conn.send_buffered(&cmd(&["MULTI"]), now).unwrap());
        ids.push(conn.send_buffered(&cmd(&["INCR", "n"]), now).unwrap());
        ids.push(conn.send_buffered(&cmd(&["EXEC"]), now).unwrap());
        ids.push(conn.send_buffered(&cmd(&["GET", "big"]), now).unwrap());
        ids.push(conn.send_buffered(&cmd(&["SUBSCRIBE", "ch"]), now).unwrap());
        (conn, ids)
    }

    /// The server's side of the script, with (RESP3) a push between two replies.
    fn replies(protocol: Protocol) -> Vec<u8> {
        let mut r = b"$2\r\nhi\r\n:7\r\n-ERR unknown command\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n".to_vec();
        if protocol == Protocol::Resp3 {
            r.extend_from_slice(b">2\r\n+other\r\n:1\r\n");
        }
        r.extend_from_slice(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n+OK\r\n+QUEUED\r\n*1\r\n:8\r\n");
        r.extend_from_slice(format!("$3000\r\n{}\r\n", "x".repeat(3000)).as_bytes());
        let ty = if protocol == Protocol::Resp3 { '>' } else { '*' };
        r.extend_from_slice(format!("{ty}3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n").as_bytes());
        r.extend_from_slice(format!("{ty}3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nyo!\r\n").as_bytes());
        r
    }

    /// The script fed in `pieces`, decoded as it arrives.
    fn owned(protocol: Protocol, pieces: &[&[u8]]) -> Seen {
        let now = Instant::now();
        let (mut conn, _) = scripted(protocol, now);
        let mut seen = Seen::default();
        seen.drain(&mut conn);
        for piece in pieces {
            conn.handle_input(Bytes::copy_from_slice(piece), now).unwrap();
            seen.drain(&mut conn);
        }
        seen
    }

    /// The script fed in `pieces` while input is deferred, visited after each.
    fn visited(protocol: Protocol, pieces: &[&[u8]]) -> Seen {
        let now = Instant::now();
        let (mut conn, _) = scripted(protocol, now);
        let mut seen = Seen::default();
        seen.drain(&mut conn);
        conn.defer_input(true, now);
        for piece in pieces {
            conn.handle_input(Bytes::copy_from_slice(piece), now).unwrap();
            let mut got = Vec::new();
            let n = conn
                .visit_replies(now, |id, reply| {
                    let value = reply.to_value();
                    got.push((id, if value.is_error() { Err(value) } else { Ok(value) }))
                })
                .unwrap();
            assert_eq!(n, got.len());
            seen.visited += n;
            for (id, v) in got {
                let v = v.map_err(|e| format!("{:?}", e));
                assert!(seen.outcomes.insert(id.0, v).is_none());
            }
            seen.drain(&mut conn);
        }
        seen
    }

    /// The owned path's error replies come as `Ok(error value)`: compare alike.
    fn normalize(mut seen: Seen) -> Seen {
        for v in seen.outcomes.values_mut() {
            if let Ok(value) = v {
                if value.is_error() {
                    *v = Err(format!("{:?}", value));
                }
            }
        }
        seen.visited = 0;
        seen
    }

    #[test]
    fn visits_deliver_what_events_do_at_every_split() {
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let input = replies(protocol);
            let want = owned(protocol, &[&input]);
            assert_eq!(want.outcomes.len(), 10, "{protocol:?}: {want:?}");
            let mut whole = visited(protocol, &[&input]);
            // GET, INCR, the error and LRANGE are visited; the transaction is not (nor,
            // RESP3, the push before it), and its event holds the visit for the replies
            // behind it (MULTI's own OK, QUEUED, EXEC's array, the big GET).
            assert_eq!(whole.visited, 4, "{protocol:?}");
            whole.visited = 0;
            assert_eq!(whole, normalize(owned(protocol, &[&input])), "{protocol:?}");
            for cut in 0..=input.len() {
                let got = visited(protocol, &[&input[..cut], &input[cut..]]);
                assert_eq!(
                    normalize(got),
                    normalize(owned(protocol, &[&input])),
                    "{protocol:?} cut {cut}"
                );
            }
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(normalize(visited(protocol, &bytewise)), normalize(want));
        }
    }

    #[test]
    fn a_timed_out_request_is_not_visited_and_a_timer_settles_held_input() {
        let now = Instant::now();
        let config = ConnectionConfig {
            protocol: Protocol::Resp2,
            request_timeout: Some(Duration::from_secs(1)),
            ..ConnectionConfig::default()
        };
        let mut conn = Connection::new(config, now);
        while conn.poll_event().is_some() {}
        let a = conn.send_buffered(&cmd(&["GET", "a"]), now).unwrap();
        let b = conn.send_buffered(&cmd(&["GET", "b"]), now).unwrap();
        conn.defer_input(true, now);
        // `a`'s reply arrives, held back, before the timer: the timer acts on it first,
        // so it is a reply, not a stalled frame.
        conn.handle_input(Bytes::from_static(b"$1\r\nx\r\n"), now).unwrap();
        let later = now + Duration::from_secs(2);
        conn.handle_timeout(later).unwrap();
        assert_eq!(
            conn.poll_event(),
            Some(Event::Reply {
                id: a,
                value: Value::from("x")
            })
        );
        assert!(matches!(conn.poll_event(), Some(Event::Failed { id, .. }) if id == b));
        // `b`'s late reply is dropped, not visited.
        conn.handle_input(Bytes::from_static(b"$1\r\ny\r\n"), later).unwrap();
        assert_eq!(conn.visit_replies(later, |_, _| panic!("visited")).unwrap(), 0);
        assert_eq!(conn.poll_event(), None);
        assert_eq!(conn.pending(), 0);
    }

    #[test]
    fn a_malformed_reply_poisons_after_the_good_ones_are_visited() {
        let now = Instant::now();
        let mut conn = connected(Protocol::Resp2, now);
        while conn.poll_event().is_some() {}
        let a = conn.send_buffered(&cmd(&["GET", "a"]), now).unwrap();
        let b = conn.send_buffered(&cmd(&["GET", "b"]), now).unwrap();
        conn.defer_input(true, now);
        conn.handle_input(Bytes::from_static(b"+OK\r\n?x\r\n"), now).unwrap();
        let mut got = Vec::new();
        assert!(conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).is_err());
        assert_eq!(got, [(a, Value::SimpleString("OK".into()))]);
        assert!(matches!(conn.poll_event(), Some(Event::Failed { id, .. }) if id == b));
        assert!(matches!(conn.poll_event(), Some(Event::Poisoned(_))));
        assert!(conn.is_closed());
    }

    #[test]
    fn a_reply_never_overtakes_a_queued_event() {
        let now = Instant::now();
        let config = ConnectionConfig {
            protocol: Protocol::Resp2,
            ..ConnectionConfig::default()
        };
        let mut conn = Connection::new(config, now);
        // `Connected` waits, undrained.
        let a = conn.send_buffered(&cmd(&["GET", "a"]), now).unwrap();
        let b = conn.send_buffered(&cmd(&["GET", "b"]), now).unwrap();
        conn.defer_input(true, now);
        conn.handle_input(Bytes::from_static(b"$1\r\nx\r\n"), now).unwrap();
        assert_eq!(
            conn.visit_replies(now, |_, _| panic!("visited ahead of Connected"))
                .unwrap(),
            0
        );
        assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
        assert_eq!(
            conn.poll_event(),
            Some(Event::Reply {
                id: a,
                value: Value::from("x")
            })
        );
        conn.handle_input(Bytes::from_static(b"$1\r\ny\r\n"), now).unwrap();
        let mut got = Vec::new();
        conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap();
        assert_eq!(got, [(b, Value::from("y"))]);
    }

    #[test]
    fn a_push_begun_before_a_switch_to_resp2_is_not_visited() {
        let now = Instant::now();
        let mut conn = connected(Protocol::Resp3, now);
        let mut seen = Seen::default();
        seen.drain(&mut conn);
        let hello = conn.send_buffered(&cmd(&["HELLO", "2"]), now).unwrap();
        let get = conn.send_buffered(&cmd(&["GET", "a"]), now).unwrap();
        conn.defer_input(true, now);
        // HELLO 2's reply, then a push whose start the RESP3 decoder takes.
        conn.handle_input(Bytes::from_static(b"%1\r\n+proto\r\n:2\r\n>2\r\n+x\r\n"), now)
            .unwrap();
        assert_eq!(conn.visit_replies(now, |_, _| panic!("visited")).unwrap(), 0);
        assert_eq!(conn.protocol(), Protocol::Resp2);
        seen.drain(&mut conn);
        assert!(matches!(seen.outcomes.get(&hello.0), Some(Ok(_))));
        // The push ends on the RESP2 tape: it is a push, not GET's reply.
        conn.handle_input(Bytes::from_static(b":1\r\n$1\r\nv\r\n"), now)
            .unwrap();
        let mut got = Vec::new();
        conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap();
        seen.drain(&mut conn);
        let push = Value::Push(vec![Value::SimpleString("x".into()), Value::Integer(1)]);
        assert!(seen.others.contains(&Event::Push(push)), "{:?}", seen.others);
        let get_reply = got
            .into_iter()
            .find(|(id, _)| *id == get)
            .map(|(_, v)| Ok(v))
            .or_else(|| seen.outcomes.get(&get.0).cloned());
        assert_eq!(get_reply, Some(Ok(Value::from("v"))));
    }

    #[test]
    fn an_abandoned_request_among_plain_ones_is_not_visited() {
        let now = Instant::now();
        let mut conn = connected(Protocol::Resp2, now);
        while conn.poll_event().is_some() {}
        let ids: Vec<RequestId> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| conn.send_buffered(&cmd(&["GET", k]), now).unwrap())
            .collect();
        assert!(conn.fifo.all_plain());
        assert!(conn.abandon(ids[1]));
        // The FIFO now holds a reply nobody wants: each entry is looked at again.
        assert!(!conn.fifo.all_plain());
        conn.defer_input(true, now);
        conn.handle_input(Bytes::from_static(b"$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), now)
            .unwrap();
        let mut got = Vec::new();
        assert_eq!(
            conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap(),
            2
        );
        assert_eq!(got, [(ids[0], Value::from("a")), (ids[2], Value::from("c"))]);
        // The abandoned entry is gone: the rest is plain again.
        assert!(conn.fifo.all_plain());
        assert!(conn.fifo.count_is_right());
        conn.handle_input(Bytes::from_static(b"$1\r\nd\r\n"), now).unwrap();
        got.clear();
        assert_eq!(
            conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap(),
            1
        );
        assert_eq!(got, [(ids[3], Value::from("d"))]);
        assert_eq!(conn.poll_event(), None);
        assert_eq!(conn.pending(), 0);
    }

    #[test]
    fn a_push_on_a_resp3_tape_is_not_visited_between_plain_replies() {
        let now = Instant::now();
        let mut conn = connected(Protocol::Resp3, now);
        while conn.poll_event().is_some() {}
        let ids: Vec<RequestId> = ["a", "b", "c"]
            .iter()
            .map(|k| conn.send_buffered(&cmd(&["GET", k]), now).unwrap())
            .collect();
        conn.defer_input(true, now);
        // No push: the reply is visited.
        conn.handle_input(Bytes::from_static(b"$1\r\na\r\n"), now).unwrap();
        let mut got = Vec::new();
        conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap();
        assert_eq!(got, [(ids[0], Value::from("a"))]);
        // A push (on the fast path), then one with attributes (the inner decoder's),
        // each before a reply: they are events, not the replies of b and c.
        for (input, k) in [
            (&b">2\r\n+x\r\n:1\r\n$1\r\nb\r\n"[..], 1),
            (&b"|1\r\n+ttl\r\n:1\r\n>2\r\n+y\r\n:2\r\n$1\r\nc\r\n"[..], 2),
        ] {
            conn.handle_input(Bytes::copy_from_slice(input), now).unwrap();
            got.clear();
            conn.visit_replies(now, |id, r| got.push((id, r.to_value()))).unwrap();
            assert!(got.is_empty(), "{got:?}");
            assert!(matches!(conn.poll_event(), Some(Event::Push(_))));
            let want = Value::from(["a", "b", "c"][k]);
            assert_eq!(
                conn.poll_event(),
                Some(Event::Reply {
                    id: ids[k],
                    value: want
                })
            );
        }
    }

    #[test]
    fn deferred_input_is_bounded() {
        let now = Instant::now();
        let config = ConnectionConfig {
            protocol: Protocol::Resp2,
            ..ConnectionConfig::default()
        };
        let mut conn = Connection::new(config, now);
        conn.send_buffered(&cmd(&["GET", "a"]), now).unwrap();
        conn.defer_input(true, now);
        for _ in 0..63 {
            conn.handle_input(Bytes::from_static(b"$"), now).unwrap();
            assert!(conn.wants_read());
        }
        conn.handle_input(Bytes::from_static(b"1"), now).unwrap();
        assert!(!conn.wants_read(), "64 segments wait");
        conn.defer_input(false, now);
        assert!(conn.wants_read(), "undeferring decodes (here: keeps) what was held");
    }
}
