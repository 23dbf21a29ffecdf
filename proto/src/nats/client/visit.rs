//! Receiving without queues: received bytes held back until the application visits a
//! subscription's messages as borrowed frames, with no reference count and no queue.
//!
//! The ordering rule: a subscription's messages reach the application in the order the
//! server sent them, each once, whichever way it takes them. A visit therefore hands
//! over what is queued for the subscription first (messages decoded before the visit,
//! while input was not deferred, and a message stalled for room), and only then
//! decodes the held input, in order; a message for the visited subscription goes to
//! the visitor only while nothing is queued for it. Every other frame is acted on as
//! [`handle_input`](Connection::handle_input) would have (other subscriptions'
//! messages queued, replies matched, `PING`s answered).

use super::receive::Visitor;
use super::Connection;
use crate::nats::{MessageRef, Sid};

/// Deferred input past which [`Connection::wants_read`] turns false, until a visit
/// decodes it: bytes (one read's budget on the mio driver), or received segments (a
/// quarter of the io_uring driver's default receive buffers, which each segment holds).
const MAX_DEFERRED_BYTES: usize = 1 << 20;
const MAX_DEFERRED_SEGMENTS: usize = 64;

/// A closure visiting one subscription, up to a number of messages.
struct Closure<F> {
    key: u64,
    left: usize,
    f: F,
}

impl<F: FnMut(MessageRef<'_>)> Visitor for Closure<F> {
    const VISITS: bool = true;

    #[inline(always)]
    fn key(&self) -> u64 {
        self.key
    }

    #[inline(always)]
    fn left(&self) -> usize {
        self.left
    }

    #[inline(always)]
    fn visit(&mut self, message: MessageRef<'_>) {
        (self.f)(message);
    }

    #[inline(always)]
    fn visited(&mut self, n: usize) {
        self.left -= n;
    }
}

impl Connection {
    /// Holds received bytes back (`true`) until [`visit_messages`](Self::visit_messages)
    /// decodes them, or decodes them as they arrive (`false`, the default; switching to
    /// it acts on everything held, queueing its messages).
    ///
    /// While input is deferred, [`handle_input`](Self::handle_input) only keeps the
    /// segment, and [`wants_read`](Self::wants_read) turns false once about 1 MiB (or
    /// 64 segments) waits: the socket is read no faster than the application visits.
    /// The end of stream, a timer and [`take_reconnect_state`](Self::take_reconnect_state)
    /// act on what is held first, so nothing received is lost and no `PONG` or reply
    /// that arrived is missed. [`next_message`](Self::next_message) sees only what is
    /// queued: a body defers input only around its visits.
    pub fn defer_input(&mut self, defer: bool) {
        if self.deferred == defer {
            return;
        }
        self.deferred = defer;
        if !defer {
            self.pump();
        }
    }

    /// Whether received bytes are held back for visits (see
    /// [`defer_input`](Self::defer_input)).
    pub fn is_input_deferred(&self) -> bool {
        self.deferred
    }

    /// Bytes received and not decoded yet (held back by
    /// [`defer_input`](Self::defer_input), or behind a stalled message).
    pub fn unread_bytes(&self) -> usize {
        self.input.len()
    }

    /// Hands up to `max` messages of subscription `sid` to `visit`, in order, as
    /// [`MessageRef`]s borrowed from the received bytes (subject, sid, reply, header
    /// block and payload as slices: nothing copied, no reference count, no queue), and
    /// acts on every other frame it decodes on the way; returns how many it visited.
    ///
    /// Messages already queued for `sid` come first (see the module's ordering rule),
    /// then what the input holds, decoded frame by frame until the input runs out,
    /// `max` messages were visited, or decoding pauses for a message another
    /// (backpressured) subscription has no room for. A visited message counts towards
    /// the subscription's maximum ([`unsubscribe`](Self::unsubscribe) with `Some`) and
    /// never against its queue's bounds. With input not deferred, messages are queued
    /// as they arrive, so a visit hands over what is queued. Returns 0 for a sid that
    /// is not a subscription.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::Bytes;
    /// use monocoque_proto::nats::client::{ClientConfig, Connection, SubscriptionPolicy};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let mut conn = Connection::new(ClientConfig::default(), now);
    /// let sid = conn.subscribe(b"greet", None, SubscriptionPolicy::default())?;
    /// conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)?;
    /// conn.defer_input(true);
    /// conn.handle_input(Bytes::from_static(b"MSG greet 1 2\r\nhi\r\nMSG greet 1 3\r\nyou\r\n"), now)?;
    /// let mut payloads = Vec::new();
    /// let n = conn.visit_messages(&sid, usize::MAX, |m| payloads.push(m.payload.to_vec()));
    /// assert_eq!((n, payloads), (2, vec![b"hi".to_vec(), b"you".to_vec()]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn visit_messages(&mut self, sid: &Sid, max: usize, mut visit: impl FnMut(MessageRef<'_>)) -> usize {
        let Some(key) = sid.as_u64() else {
            return 0;
        };
        if max == 0 || !self.subs.contains_key(&key) {
            return 0;
        }
        // What is queued first, oldest first; taking makes room for a message stalled
        // for this subscription, which then joins the queue and is taken in turn.
        let mut visited = 0;
        while visited < max {
            let Some(message) = self.next_message(sid) else {
                break;
            };
            visit(message.as_message_ref());
            visited += 1;
        }
        if visited == max || self.guard.is_poisoned() {
            return visited;
        }
        let mut closure = Closure {
            key,
            left: max - visited,
            f: visit,
        };
        self.decode_input(&mut closure);
        let visited = max - closure.left;
        if !self.deferred {
            // The visit stopped at `max`: the rest is acted on now, as it arrived.
            self.pump();
        }
        visited
    }

    /// Whether enough input is held back that reading should wait for a visit.
    pub(super) fn deferred_full(&self) -> bool {
        self.deferred && (self.input.len() >= MAX_DEFERRED_BYTES || self.input.segment_count() >= MAX_DEFERRED_SEGMENTS)
    }

    /// Acts on input held back, as if it had not been (for the end of stream, a timer,
    /// a reconnect).
    pub(super) fn settle(&mut self) {
        if self.deferred && !self.input.is_empty() {
            self.decode_input(&mut super::receive::NoVisitor);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::super::{ClientConfig, Connection, Event, SubscriptionEnd, SubscriptionPolicy};
    use crate::nats::Sid;

    /// A message as a visitor or `next_message` saw it: subject, reply, headers,
    /// payload.
    type Seen = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);

    fn seen(m: crate::nats::MessageRef<'_>) -> Seen {
        (
            m.subject.to_vec(),
            m.reply.map(<[u8]>::to_vec),
            m.headers.map(<[u8]>::to_vec),
            m.payload.to_vec(),
        )
    }

    /// A client past the handshake, subscribed to `s` (sid 1) and `t` (sid 2) with
    /// these policies.
    fn client(s: SubscriptionPolicy, t: SubscriptionPolicy) -> (Connection, Sid, Sid, Instant) {
        let now = Instant::now();
        let mut conn = Connection::new(ClientConfig::default(), now);
        conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
            .unwrap();
        let s = conn.subscribe(b"s", None, s).unwrap();
        let t = conn.subscribe(b"t", None, t).unwrap();
        while conn.poll_event().is_some() {}
        let n = conn.poll_transmit().map_or(0, |a| a.len());
        if let Some(arena) = conn.poll_transmit() {
            arena.advance(n);
        }
        (conn, s, t, now)
    }

    fn plain() -> (Connection, Sid, Sid, Instant) {
        client(SubscriptionPolicy::default(), SubscriptionPolicy::default())
    }

    /// `MSG <subject> <sid> 1` with a one-character payload.
    fn msg(subject: &str, sid: u64, c: char) -> String {
        format!("MSG {subject} {sid} 1\r\n{c}\r\n")
    }

    fn visit_all(conn: &mut Connection, sid: &Sid, max: usize) -> Vec<u8> {
        let mut got = Vec::new();
        conn.visit_messages(sid, max, |m| got.push(m.payload[0]));
        got
    }

    #[test]
    fn deferred_messages_are_visited_in_order_as_slices_of_the_segment() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        let segment = Bytes::from_static(b"MSG s 1 r 5\r\nhello\r\nHMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        let range = segment.as_ptr_range();
        conn.handle_input(segment.clone(), now).unwrap();
        assert_eq!(conn.unread_bytes(), segment.len(), "held, not decoded");
        assert_eq!(conn.pending_messages(&s), Some((0, 0)));
        let mut got = Vec::new();
        let n = conn.visit_messages(&s, usize::MAX, |m| {
            assert!(range.contains(&m.payload.as_ptr()) && range.contains(&m.subject.as_ptr()));
            assert_eq!(m.sid, b"1");
            got.push(seen(m));
        });
        assert_eq!(n, 2);
        assert_eq!(
            got,
            [
                (b"s".to_vec(), Some(b"r".to_vec()), None, b"hello".to_vec()),
                (b"s".to_vec(), None, Some(b"NATS/1.0\r\n\r\n".to_vec()), b"hi".to_vec()),
            ]
        );
        // Nothing was queued, so nothing was announced.
        assert_eq!(conn.pending_messages(&s), Some((0, 0)));
        assert_eq!(conn.poll_event(), None);
        assert_eq!(conn.unread_bytes(), 0);
    }

    #[test]
    fn queued_messages_come_first_and_other_frames_are_acted_on() {
        let (mut conn, s, t, now) = plain();
        // Queued before the visit: not deferred yet.
        let before = [msg("s", 1, 'a'), msg("s", 1, 'b')].concat();
        conn.handle_input(Bytes::from(before), now).unwrap();
        assert_eq!(conn.pending_messages(&s).unwrap().0, 2);
        conn.defer_input(true);
        let after = [msg("s", 1, 'c'), msg("t", 2, 'x'), "PING\r\n".into(), msg("s", 1, 'd')].concat();
        conn.handle_input(Bytes::from(after), now).unwrap();
        assert_eq!(visit_all(&mut conn, &s, 3), b"abc");
        // Stopped before the next frame: `t`'s message waits undecoded.
        assert_eq!(conn.pending_messages(&t), Some((0, 0)));
        assert_eq!(visit_all(&mut conn, &s, 10), b"d");
        assert_eq!(conn.next_message(&t).unwrap().payload, "x");
        assert_eq!(conn.poll_transmit().unwrap().to_vec(), b"PONG\r\n");
        assert_eq!(conn.pending_messages(&s), Some((0, 0)));
        assert_eq!(visit_all(&mut conn, &s, 10), b"");
    }

    #[test]
    fn ending_deferral_queues_what_is_held() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        let wire = [msg("s", 1, 'a'), msg("s", 1, 'b'), msg("s", 1, 'c')].concat();
        conn.handle_input(Bytes::from(wire), now).unwrap();
        assert_eq!(visit_all(&mut conn, &s, 1), b"a");
        conn.defer_input(false);
        assert_eq!(conn.unread_bytes(), 0);
        let rest: Vec<u8> = std::iter::from_fn(|| conn.next_message(&s))
            .map(|m| m.payload[0])
            .collect();
        assert_eq!(rest, b"bc");
        // Not deferred: a visit hands over what is queued as it arrives.
        conn.handle_input(Bytes::from(msg("s", 1, 'd')), now).unwrap();
        assert_eq!(conn.pending_messages(&s).unwrap().0, 1);
        assert_eq!(visit_all(&mut conn, &s, 10), b"d");
    }

    #[test]
    fn deferred_input_is_bounded_and_a_visit_resumes_reading() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        let mut fed = 0;
        while conn.wants_read() {
            conn.handle_input(Bytes::from(msg("s", 1, 'a')), now).unwrap();
            fed += 1;
            assert!(fed <= super::MAX_DEFERRED_SEGMENTS, "never paused");
        }
        assert_eq!(fed, super::MAX_DEFERRED_SEGMENTS);
        assert_eq!(visit_all(&mut conn, &s, usize::MAX).len(), fed);
        assert!(conn.wants_read());
        // In bytes too: one large segment of many messages pauses reading.
        let big = msg("s", 1, 'b').repeat(super::MAX_DEFERRED_BYTES / 10);
        conn.handle_input(Bytes::from(big), now).unwrap();
        assert!(!conn.wants_read());
        assert_eq!(
            visit_all(&mut conn, &s, usize::MAX).len(),
            super::MAX_DEFERRED_BYTES / 10
        );
        assert!(conn.wants_read());
    }

    #[test]
    fn a_large_frame_is_gathered_not_held_against_the_bound() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        // Under the default 1 MiB payload limit, in more pieces than the bound's.
        let payload = vec![b'z'; 900 * 1024];
        let wire = [format!("MSG s 1 {}\r\n", payload.len()).as_bytes(), &payload, b"\r\n"].concat();
        let mut pieces = wire.chunks(1024);
        let mut visited = Vec::new();
        loop {
            while conn.wants_read() {
                let Some(piece) = pieces.next() else { break };
                conn.handle_input(Bytes::copy_from_slice(piece), now).unwrap();
            }
            let n = conn.visit_messages(&s, usize::MAX, |m| visited.push(m.payload.len()));
            if n == 0 && pieces.len() == 0 {
                break;
            }
            assert!(conn.wants_read(), "a partial frame never blocks reading");
        }
        assert_eq!(visited, [payload.len()]);
    }

    #[test]
    fn end_of_stream_and_timers_act_on_held_input_first() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        conn.handle_input(Bytes::from([msg("s", 1, 'a'), msg("s", 1, 'b')].concat()), now)
            .unwrap();
        assert!(conn.handle_eof(now).is_err());
        let got: Vec<u8> = std::iter::from_fn(|| conn.next_message(&s))
            .map(|m| m.payload[0])
            .collect();
        assert_eq!(got, b"ab", "received before the end: not lost");

        // A reply that arrived before its deadline answers the request.
        let (mut conn, _, _, now) = plain();
        let id = conn
            .request(b"q", None, &Bytes::new(), Some(Duration::from_secs(1)), now)
            .unwrap();
        let reply = String::from_utf8(conn.requests.reply_subject(conn.requests.last_id)).unwrap();
        let inbox = conn.requests.sid.unwrap();
        conn.defer_input(true);
        conn.handle_input(Bytes::from(format!("MSG {reply} {inbox} 3\r\nyes\r\n")), now)
            .unwrap();
        conn.handle_timeout(now + Duration::from_secs(2)).unwrap();
        let answered = std::iter::from_fn(|| conn.poll_event())
            .any(|e| matches!(e, Event::Response { id: got, ref message } if got == id && message.payload == "yes"));
        assert!(answered);
    }

    #[test]
    fn a_visited_message_counts_towards_the_maximum() {
        let (mut conn, s, _, now) = plain();
        conn.unsubscribe(&s, Some(2)).unwrap();
        conn.defer_input(true);
        let wire = [msg("s", 1, 'a'), msg("s", 1, 'b'), msg("s", 1, 'c')].concat();
        conn.handle_input(Bytes::from(wire), now).unwrap();
        assert_eq!(visit_all(&mut conn, &s, 10), b"ab");
        assert!(std::iter::from_fn(|| conn.poll_event()).any(|e| matches!(
            e,
            Event::SubscriptionEnded {
                reason: SubscriptionEnd::MaxReached,
                ..
            }
        )));
        assert_eq!(conn.pending_messages(&s), None, "ended and drained: forgotten");
        assert_eq!(conn.unread_bytes(), 0, "the one past the maximum was dropped");
    }

    #[test]
    fn a_run_ends_where_the_fast_path_stops_and_the_visit_goes_on_after_it() {
        let (mut conn, s, _, now) = plain();
        conn.unsubscribe(&s, Some(7)).unwrap();
        conn.defer_input(true);
        // A run of canonical messages is visited without the general decoder; a run of
        // blanks, a tab, the sid spelled `01` and a lower-case op each leave it, and are
        // decoded as any frame is, for the same subscription.
        let wire = [
            msg("s", 1, 'a'),
            "MSG  s 1 1\r\nb\r\n".into(),
            "MSG s 01 1\r\nc\r\n".into(),
            msg("s", 1, 'd'),
            "MSG s\t1 1\r\ne\r\n".into(),
            "msg s 1 1\r\nf\r\n".into(),
            msg("s", 1, 'g'),
            msg("s", 1, 'h'),
        ]
        .concat();
        conn.handle_input(Bytes::from(wire), now).unwrap();
        // A visit's own maximum ends a run too, before the subscription's.
        assert_eq!(visit_all(&mut conn, &s, 3), b"abc");
        assert_eq!(conn.poll_event(), None);
        assert_eq!(visit_all(&mut conn, &s, 10), b"defg");
        assert!(std::iter::from_fn(|| conn.poll_event()).any(|e| matches!(
            e,
            Event::SubscriptionEnded {
                reason: SubscriptionEnd::MaxReached,
                ..
            }
        )));
        assert_eq!(conn.pending_messages(&s), None, "ended at its maximum of 7");
        assert_eq!(conn.unread_bytes(), 0, "the one past the maximum was dropped");
    }

    #[test]
    fn a_stalled_message_is_visited_in_its_turn() {
        let one = SubscriptionPolicy {
            max_messages: 1,
            ..SubscriptionPolicy::backpressure()
        };
        let (mut conn, s, _, now) = client(one, SubscriptionPolicy::default());
        let wire = [msg("s", 1, 'a'), msg("s", 1, 'b'), msg("s", 1, 'c')].concat();
        conn.handle_input(Bytes::from(wire), now).unwrap();
        assert!(!conn.wants_read(), "a queued, b stalled, c unread");
        conn.defer_input(true);
        conn.handle_input(Bytes::from(msg("s", 1, 'd')), now).unwrap();
        assert_eq!(visit_all(&mut conn, &s, 10), b"abcd");
        assert!(conn.wants_read());
    }

    #[test]
    fn a_full_backpressured_subscription_holds_the_visit_up() {
        let one = SubscriptionPolicy {
            max_messages: 1,
            ..SubscriptionPolicy::backpressure()
        };
        let (mut conn, s, t, now) = client(SubscriptionPolicy::default(), one);
        conn.defer_input(true);
        let wire = [msg("t", 2, 'x'), msg("t", 2, 'y'), msg("s", 1, 'a')].concat();
        conn.handle_input(Bytes::from(wire), now).unwrap();
        // `y` waits for room in `t`: `a`, behind it, cannot be decoded yet.
        assert_eq!(visit_all(&mut conn, &s, 10), b"");
        assert!(!conn.wants_read());
        assert_eq!(conn.next_message(&t).unwrap().payload, "x");
        assert_eq!(visit_all(&mut conn, &s, 10), b"a");
        assert_eq!(conn.next_message(&t).unwrap().payload, "y");
        assert!(conn.wants_read());
        assert!(!std::iter::from_fn(|| conn.poll_event()).any(|e| matches!(e, Event::SlowConsumer { .. })));
    }

    #[test]
    fn unknown_sids_and_a_zero_maximum_visit_nothing() {
        let (mut conn, s, _, now) = plain();
        conn.defer_input(true);
        conn.handle_input(Bytes::from(msg("s", 1, 'a')), now).unwrap();
        assert_eq!(visit_all(&mut conn, &Sid::from_u64(9), 10), b"");
        assert_eq!(
            visit_all(&mut conn, &Sid::from_bytes(Bytes::from_static(b"x")), 10),
            b""
        );
        assert_eq!(visit_all(&mut conn, &s, 0), b"");
        assert_eq!(conn.unread_bytes(), msg("s", 1, 'a').len());
        assert_eq!(visit_all(&mut conn, &s, 1), b"a");
    }

    /// Frames for the split tests: messages for `s` (visited) with and without reply
    /// and headers, for `t`, and ops the connection answers.
    fn stream() -> (Vec<u8>, Vec<Seen>, Vec<u8>) {
        let mut wire = Vec::new();
        let mut to_s = Vec::new();
        let mut to_t = Vec::new();
        for i in 0..24u8 {
            let body: Vec<u8> = (0..usize::from(i) * 7 % 40)
                .map(|j| b'a' + (j as u8 + i) % 26)
                .collect();
            match i % 4 {
                0 => {
                    wire.extend_from_slice(format!("MSG s.{i} 1 {}\r\n", body.len()).as_bytes());
                    to_s.push((format!("s.{i}").into_bytes(), None, None, body.clone()));
                }
                1 => {
                    let headers = format!("NATS/1.0\r\nN: {i}\r\n\r\n");
                    let total = headers.len() + body.len();
                    wire.extend_from_slice(format!("HMSG s 1 r.{i} {} {total}\r\n{headers}", headers.len()).as_bytes());
                    to_s.push((
                        b"s".to_vec(),
                        Some(format!("r.{i}").into_bytes()),
                        Some(headers.into_bytes()),
                        body.clone(),
                    ));
                }
                2 => {
                    wire.extend_from_slice(format!("MSG t 2 1\r\n{}\r\nPING\r\n", char::from(b'A' + i)).as_bytes());
                    to_t.push(b'A' + i);
                    continue;
                }
                _ => {
                    wire.extend_from_slice(format!("+OK\r\nMSG s 1 {}\r\n", body.len()).as_bytes());
                    to_s.push((b"s".to_vec(), None, None, body.clone()));
                }
            }
            wire.extend_from_slice(&body);
            wire.extend_from_slice(b"\r\n");
        }
        (wire, to_s, to_t)
    }

    #[test]
    fn the_visitor_sees_every_message_once_in_order_however_the_input_is_split() {
        let (wire, to_s, to_t) = stream();
        for at in 0..=wire.len() {
            let (mut conn, s, t, now) = plain();
            conn.defer_input(true);
            let mut got = Vec::new();
            for piece in [&wire[..at], &wire[at..]] {
                conn.handle_input(Bytes::copy_from_slice(piece), now).unwrap();
                conn.visit_messages(&s, usize::MAX, |m| got.push(seen(m)));
            }
            assert_eq!(got, to_s, "split at {at}");
            let t_got: Vec<u8> = std::iter::from_fn(|| conn.next_message(&t))
                .map(|m| m.payload[0])
                .collect();
            assert_eq!(t_got, to_t, "split at {at}");
            assert!(conn.is_connected() && conn.unread_bytes() == 0);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Input split anywhere into any number of segments, some received before
        /// deferral starts (queued), visits of any size in between, deferral switched
        /// off and on, and `next_message` interleaved: the messages for `s` are taken
        /// exactly once each, in order; `t`'s are all queued in order.
        #[test]
        fn visits_interleaved_with_anything_keep_order_and_lose_nothing(
            cuts in proptest::collection::vec(0usize..2000, 0..12),
            steps in proptest::collection::vec((0usize..4, 0usize..6), 0..16),
        ) {
            let (wire, to_s, to_t) = stream();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let (mut conn, s, t, now) = plain();
            let mut got = Vec::new();
            let mut steps = steps.into_iter();
            for piece in cuts.windows(2) {
                conn.handle_input(Bytes::copy_from_slice(&wire[piece[0]..piece[1]]), now).unwrap();
                if let Some((what, n)) = steps.next() {
                    match what {
                        0 => conn.defer_input(true),
                        1 => conn.defer_input(false),
                        2 => {
                            for _ in 0..n {
                                let Some(m) = conn.next_message(&s) else { break };
                                got.push(seen(m.as_message_ref()));
                            }
                        }
                        _ => {
                            conn.visit_messages(&s, n, |m| got.push(seen(m)));
                        }
                    }
                }
            }
            conn.visit_messages(&s, usize::MAX, |m| got.push(seen(m)));
            proptest::prop_assert_eq!(&got, &to_s);
            conn.defer_input(false);
            let t_got: Vec<u8> = std::iter::from_fn(|| conn.next_message(&t)).map(|m| m.payload[0]).collect();
            proptest::prop_assert_eq!(t_got, to_t);
            proptest::prop_assert!(conn.is_connected());
        }
    }
}
