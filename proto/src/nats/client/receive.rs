//! What the connection does with each op the server sends.

use bytes::{Bytes, BytesMut};

use super::subscription::{message_size, Offer, SharedRoom};
use super::{Auth, Connection, ConnectionError, Event, Phase, PingKind, RequestError, SubscriptionEnd};
use crate::chassis::SegmentedBuffer;
use crate::lex::parse_u64;
use crate::nats::{
    encode, ConnectOptions, Headers, Message, MessageRef, ServerError, ServerErrorKind, ServerFrame, ServerInfo,
    ServerOp, Sid,
};

impl Connection {
    /// Decodes and acts on ops until the input runs out, a message stalls, or the
    /// connection is poisoned; then reports drops.
    ///
    /// Every frame is decoded by the borrowed frame decoder on the first received
    /// segment, and every field of a message is a view of that segment: nothing is
    /// copied. Only a frame that straddles segments is copied, once, into a segment of
    /// its own (see [`join_front`] and [`Gathering`]). A message its subscription takes
    /// at once (the common case) is built straight into the subscription's queue; any
    /// other frame becomes a [`ServerOp`] for [`on_op`](Self::on_op).
    pub(super) fn pump(&mut self) {
        if self.deferred {
            // Received bytes wait for `visit_messages` (or the end of deferral); only a
            // stalled message moves, into the room a take just made.
            self.place_stalled();
            self.report_drops();
            return;
        }
        self.decode_input(&mut NoVisitor);
    }

    /// The receive loop behind [`pump`](Self::pump) and
    /// [`visit_messages`](Self::visit_messages): as `pump` describes, except that a
    /// message for the subscription `visitor` visits, which that subscription takes
    /// (not ended, nothing queued before it), goes to the visitor as the frame decoded
    /// on the segment, with no view built and nothing queued. It stops once the visitor
    /// is done, before decoding another frame.
    #[inline(always)]
    pub(super) fn decode_input<V: Visitor>(&mut self, visitor: &mut V) {
        while !self.guard.is_poisoned() {
            if V::VISITS && visitor.done() {
                break;
            }
            if self.paused() && !self.place_stalled() {
                break;
            }
            if self.gathering.total > 0 && !gather(&mut self.gathering, &mut self.input) {
                break;
            }
            let Some(front) = self.input.segments().next() else {
                break;
            };
            let decoded = match self.decoder.decode(front) {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.poison(ConnectionError::Decode(e));
                    break;
                }
            };
            match decoded {
                Some((ServerFrame::Message(m), len)) if self.phase == Phase::Connected => {
                    // The fields below are disjoint from `input`, which `front` borrows.
                    let size = m.payload.len() + m.headers.map_or(0, <[u8]>::len);
                    let shared = SharedRoom {
                        available: self.config.max_pending_bytes.saturating_sub(self.queued_bytes),
                        capacity: self.config.max_pending_bytes,
                    };
                    let key = parse_u64(m.sid);
                    if V::VISITS && key == Some(visitor.key()) {
                        if let Some(sub) = self.subs.get_mut(&visitor.key()).filter(|s| s.visitable()) {
                            // This message and the run of the subscription's messages
                            // right behind it in the segment, decoded in place: one
                            // lookup, one count and one advance for the run. Whatever
                            // ends the run is decoded again by the loop above (the
                            // decoder allows it: same bytes).
                            let budget = run_budget(visitor.left(), sub.remaining());
                            let sid = m.sid;
                            visitor.visit(m);
                            let (mut count, mut at) = (1, len);
                            while count < budget {
                                // Only canonical messages with the same sid bytes stay in
                                // the run: anything else (another spelling of the same
                                // sid included) goes back to the loop above.
                                let Some(rest) = front.get(at..) else { break };
                                match self.decoder.decode_fast_message(rest) {
                                    Some((next, n)) if same_sid(next.sid, sid) => {
                                        visitor.visit(next);
                                        count += 1;
                                        at += n;
                                    }
                                    _ => break,
                                }
                            }
                            visitor.visited(count);
                            // Counted as delivered, as queued messages are.
                            sub.received += count as u64;
                            let ended = sub.remaining() == Some(0);
                            sub.ended |= ended;
                            self.input.advance(at);
                            if ended {
                                let sid = sub.sid.clone();
                                self.events.push_back(Event::SubscriptionEnded {
                                    sid,
                                    reason: SubscriptionEnd::MaxReached,
                                });
                                self.forget_if_drained(visitor.key());
                            }
                            continue;
                        }
                    }
                    let sub = match key {
                        Some(key) if self.requests.sid != Some(key) => self.subs.get_mut(&key),
                        _ => None,
                    };
                    match sub {
                        Some(sub) if sub.accepts(size, shared) => {
                            // The sid is the subscription's own (the server echoes it):
                            // one reference count fewer on the segment.
                            let (notify, ended) = sub.push(message(front, &m, sub.sid.clone()), size);
                            self.queued_bytes += size;
                            // The sid is cloned only for an event: most messages join a
                            // queue that already has one.
                            if notify {
                                self.events.push_back(Event::Messages { sid: sub.sid.clone() });
                            }
                            if ended {
                                self.events.push_back(Event::SubscriptionEnded {
                                    sid: sub.sid.clone(),
                                    reason: SubscriptionEnd::MaxReached,
                                });
                            }
                            self.input.advance(len);
                        }
                        _ => {
                            let op = owned(front, ServerFrame::Message(m));
                            self.input.advance(len);
                            self.on_op(op);
                        }
                    }
                }
                Some((frame, len)) => {
                    let op = owned(front, frame);
                    self.input.advance(len);
                    self.on_op(op);
                }
                None => {
                    let limits = self.decoder.limits();
                    let max_line = limits.max_control_line.max(limits.max_json_line);
                    match self.decoder.needed() {
                        // The line is whole, the rest has not all arrived: gather it as
                        // it comes.
                        Some(total) if total > self.input.len() => self.gathering.total = total,
                        needed => {
                            if !join_front(&mut self.input, needed, max_line) {
                                break;
                            }
                        }
                    }
                }
            }
        }
        self.report_drops();
    }

    fn on_op(&mut self, op: ServerOp) {
        match op {
            ServerOp::Info(info) => self.on_info(info),
            ServerOp::Err(error) => self.on_server_error(error),
            _ if self.phase == Phase::AwaitInfo => {
                self.poison(ConnectionError::ExpectedInfo);
            }
            // Every SUB (the inbox's too) is sent after the handshake: nothing before it
            // can be for this connection's subscriptions.
            ServerOp::Message(_) if self.phase != Phase::Connected => {}
            ServerOp::Message(message) => self.on_message(message),
            ServerOp::Ok => {}
            ServerOp::Ping => {
                self.out
                    .control::<()>(false, |a| {
                        a.put_slice(b"PONG\r\n");
                        Ok(())
                    })
                    .ok();
            }
            ServerOp::Pong => self.on_pong(),
        }
    }

    fn on_info(&mut self, info: Box<ServerInfo>) {
        let added: Vec<String> = info
            .connect_urls
            .iter()
            .filter(|url| !self.known_servers.contains(url))
            .fold(Vec::new(), |mut added, url| {
                if !added.contains(url) {
                    added.push(url.clone());
                }
                added
            });
        if !added.is_empty() {
            self.known_servers.extend(added.iter().cloned());
            self.events.push_back(Event::ServersDiscovered { added });
        }
        if info.ldm && !self.lame_duck {
            self.lame_duck = true;
            self.events.push_back(Event::LameDuck);
        }
        self.decoder
            .adopt_max_payload(info.max_payload, self.config.max_payload);
        if self.phase == Phase::AwaitInfo {
            self.headers_supported = info.headers;
            if info.tls_required {
                self.poison(ConnectionError::TlsRequired);
                return;
            }
            let connect = match self.connect_options(&info) {
                Ok(c) => c,
                Err(e) => {
                    self.poison(e);
                    return;
                }
            };
            let limits = *self.decoder.limits();
            let written = self.out.control(false, |a| {
                encode::json(a, &limits, b"CONNECT", &connect)?;
                a.put_slice(b"PING\r\n");
                Ok(())
            });
            if let Err(e) = written {
                self.poison(ConnectionError::Connect(e));
                return;
            }
            self.pings.push_back(PingKind::Handshake);
            self.phase = Phase::AwaitPong;
            self.first_info = Some(info.clone());
        }
        self.info = Some(info);
    }

    /// The `CONNECT` for this server.
    fn connect_options(&self, info: &ServerInfo) -> Result<ConnectOptions, ConnectionError> {
        let mut opts = ConnectOptions::client();
        opts.verbose = self.config.verbose;
        opts.pedantic = self.config.pedantic;
        opts.echo = self.config.echo;
        opts.name.clone_from(&self.config.name);
        let nonce = || info.nonce.as_deref().ok_or(ConnectionError::NonceMissing);
        match &self.config.auth {
            Auth::None => {}
            Auth::Token(token) => opts.auth_token = Some(token.clone()),
            Auth::UserPassword { user, password } => {
                opts.user = Some(user.clone());
                opts.pass = Some(password.clone());
            }
            Auth::NKey(key) => {
                opts.sig = Some(key.sign_nonce(nonce()?));
                opts.nkey = Some(key.public_key());
            }
            Auth::Jwt { jwt, key } => {
                opts.sig = Some(key.sign_nonce(nonce()?));
                opts.jwt = Some(jwt.clone());
            }
        }
        Ok(opts)
    }

    fn on_pong(&mut self) {
        match self.pings.pop_front() {
            Some(PingKind::Handshake) => {
                self.phase = Phase::Connected;
                self.handshake_deadline = None;
                self.next_ping = Some(self.now + self.config.ping_interval.max(std::time::Duration::from_millis(1)));
                self.out.release_held();
                self.pings.extend(self.held_pings.drain(..));
                let info = self.first_info.clone().unwrap_or_default();
                self.events.push_back(Event::Connected { info });
            }
            Some(PingKind::Keepalive) => self.keepalives_out = self.keepalives_out.saturating_sub(1),
            Some(PingKind::User(id)) => self.events.push_back(Event::Pong { id: super::PingId(id) }),
            None => {}
        }
    }

    fn on_server_error(&mut self, error: ServerError) {
        match error.kind() {
            ServerErrorKind::SubscribePermissionViolation => {
                if !self.refuse_subscription(&error) {
                    self.events.push_back(Event::ServerError(error));
                }
            }
            ServerErrorKind::PublishPermissionViolation
            | ServerErrorKind::InvalidSubject
            | ServerErrorKind::InvalidPublishSubject
            | ServerErrorKind::MaxSubscriptionsExceeded => self.events.push_back(Event::ServerError(error)),
            _ => {
                self.poison(ConnectionError::Server(error));
            }
        }
    }

    /// Ends the oldest subscription (that has received nothing) to the subject and queue
    /// group the violation names; whether there was one.
    fn refuse_subscription(&mut self, error: &ServerError) -> bool {
        let message = error.message();
        let mut quoted = message.split(|&b| b == b'"').skip(1).step_by(2);
        let Some(subject) = quoted.next() else {
            return false;
        };
        let queue = if memchr::memmem::find(&message, b"using queue").is_some() {
            quoted.next()
        } else {
            None
        };
        let key = self
            .subs
            .iter()
            .filter(|(_, s)| {
                !s.ended && s.received == 0 && s.subject[..] == *subject && s.queue_group.as_deref() == queue
            })
            .map(|(key, _)| *key)
            .min();
        let Some(key) = key else {
            return false;
        };
        if let Some(sub) = self.subs.get_mut(&key) {
            sub.ended = true;
            self.events.push_back(Event::SubscriptionEnded {
                sid: sub.sid.clone(),
                reason: SubscriptionEnd::Refused(error.clone()),
            });
        }
        self.forget_if_drained(key);
        true
    }

    fn on_message(&mut self, message: Message) {
        let Some(key) = message.sid.as_u64() else {
            return;
        };
        if self.requests.sid == Some(key) {
            self.on_reply(message);
            return;
        }
        self.offer(key, message);
    }

    /// Offers a message to its subscription, within its own bounds and the
    /// connection-wide one; a full backpressured one stalls it.
    fn offer(&mut self, key: u64, message: Message) {
        let shared = self.shared_room();
        let Some(sub) = self.subs.get_mut(&key) else {
            // Unsubscribed: what the server sent before it processed the UNSUB.
            return;
        };
        let size = message_size(&message);
        match sub.offer(message, shared) {
            Offer::Queued { notify, ended } => {
                self.queued_bytes += size;
                // The sid is cloned (a reference count) only for an event: most
                // messages join a queue that already has one.
                if notify {
                    self.events.push_back(Event::Messages { sid: sub.sid.clone() });
                }
                if ended {
                    self.events.push_back(Event::SubscriptionEnded {
                        sid: sub.sid.clone(),
                        reason: SubscriptionEnd::MaxReached,
                    });
                }
            }
            Offer::Dropped { ended } => {
                if sub.unreported_drops > 0 && !self.slow.contains(&key) {
                    self.slow.push(key);
                }
                if ended {
                    let sid = sub.sid.clone();
                    self.report_drops();
                    self.events.push_back(Event::SubscriptionEnded {
                        sid,
                        reason: SubscriptionEnd::MaxReached,
                    });
                    self.forget_if_drained(key);
                }
            }
            Offer::Full(message) => self.stalled = Some(message),
        }
    }

    /// Puts the stalled message into its subscription if it fits now (or drops it if the
    /// subscription is gone); whether decoding may resume.
    pub(super) fn place_stalled(&mut self) -> bool {
        let Some(message) = self.stalled.take() else {
            return true;
        };
        let Some(key) = message.sid.as_u64() else {
            return true;
        };
        let shared = self.shared_room();
        match self.subs.get(&key) {
            Some(sub) if !sub.has_room_for(message_size(&message), shared) => {
                self.stalled = Some(message);
                false
            }
            Some(_) => {
                self.offer(key, message);
                self.stalled.is_none()
            }
            None => true,
        }
    }

    fn on_reply(&mut self, message: Message) {
        let Some(id) = self.requests.complete(&message.subject) else {
            // A late reply (the request timed out) or a second one.
            return;
        };
        if message.is_no_responders() {
            self.events.push_back(Event::RequestFailed {
                id,
                error: RequestError::NoResponders,
            });
        } else {
            self.events.push_back(Event::Response { id, message });
        }
    }

    /// Emits one [`Event::SlowConsumer`] per subscription with unreported drops.
    pub(super) fn report_drops(&mut self) {
        for key in std::mem::take(&mut self.slow) {
            if let Some(sub) = self.subs.get_mut(&key) {
                if sub.unreported_drops > 0 {
                    let dropped = std::mem::take(&mut sub.unreported_drops);
                    self.events.push_back(Event::SlowConsumer {
                        sid: sub.sid.clone(),
                        dropped,
                    });
                }
            }
        }
    }
}

/// Who receives the messages of one subscription straight from the frame decoder
/// (see [`Connection::visit_messages`]).
pub(super) trait Visitor {
    /// Whether this visitor visits at all (`false` for the plain receive path, whose
    /// checks then compile away).
    const VISITS: bool;
    /// The visited subscription's key.
    fn key(&self) -> u64;
    /// How many more messages it wants.
    fn left(&self) -> usize;
    /// Whether it wants no more messages.
    #[inline(always)]
    fn done(&self) -> bool {
        self.left() == 0
    }
    /// Hands it one message of its subscription (counted by [`visited`](Self::visited)
    /// once the run ends, not here: one count per run).
    fn visit(&mut self, message: MessageRef<'_>);
    /// Counts `n` messages handed to [`visit`](Self::visit).
    fn visited(&mut self, n: usize);
}

/// The plain receive path: every message is queued.
pub(super) struct NoVisitor;

impl Visitor for NoVisitor {
    const VISITS: bool = false;
    fn key(&self) -> u64 {
        0
    }
    fn left(&self) -> usize {
        0
    }
    fn visit(&mut self, _: MessageRef<'_>) {}
    fn visited(&mut self, _: usize) {}
}

/// How many messages a run may hand to the visitor: what it wants, and no more than
/// the subscription's maximum leaves (`remaining`, `None` without a maximum).
#[inline(always)]
fn run_budget(left: usize, remaining: Option<u64>) -> usize {
    match remaining {
        Some(r) => left.min(usize::try_from(r).unwrap_or(usize::MAX)),
        None => left,
    }
}

/// Whether two sids are the same bytes. Sids are short (the client writes them as
/// decimal counters): a byte loop beats `memcmp`'s call.
#[inline(always)]
fn same_sid(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// What the receive path keeps between reads: the frame decoder, and the bytes of a
/// frame that straddles received segments while the rest of it arrives.
#[derive(Debug, Default)]
pub(super) struct Gathering {
    /// The frame's bytes so far (copied once each, as they arrive, so the received
    /// segments, for io_uring views of the ring's buffers, are released at once).
    bytes: BytesMut,
    /// The frame's whole length; 0 when no frame is being gathered.
    total: usize,
}

impl Gathering {
    /// Forgets a partial frame (the connection is poisoned).
    pub(super) fn clear(&mut self) {
        self.bytes = BytesMut::new();
        self.total = 0;
    }
}

/// Moves what has arrived of the frame being gathered out of `input` (one copy);
/// once all of it is there, puts it back at the front of `input` as a segment of its
/// own. Whether it did.
#[inline(never)]
fn gather(gathering: &mut Gathering, input: &mut SegmentedBuffer) -> bool {
    while gathering.bytes.len() < gathering.total {
        let piece = input.split_front(gathering.total - gathering.bytes.len());
        if piece.is_empty() {
            return false;
        }
        gathering.bytes.extend_from_slice(&piece);
    }
    let frame = std::mem::take(&mut gathering.bytes).freeze();
    gathering.total = 0;
    prepend(input, frame);
    true
}

/// Puts `segment` in front of what `input` holds.
fn prepend(input: &mut SegmentedBuffer, segment: Bytes) {
    let rest = std::mem::take(input);
    input.push(segment);
    for segment in rest.segments() {
        input.push(segment.clone());
    }
}

/// A view of `part`, a slice of `segment`.
#[inline(always)]
fn view(segment: &Bytes, part: &[u8]) -> Bytes {
    // An empty part may be a literal `&[]` that points nowhere near `segment`.
    if part.is_empty() {
        return Bytes::new();
    }
    // `Bytes::slice_ref` with its checks left out: every part is a slice of `segment`
    // (the decoder's output borrows it), so its offset is in range.
    let start = (part.as_ptr() as usize).wrapping_sub(segment.as_ptr() as usize);
    segment.slice(start..start + part.len())
}

/// A message decoded from `segment`, as views of it, delivered to `sid`.
#[inline(always)]
fn message(segment: &Bytes, m: &MessageRef<'_>, sid: Sid) -> Message {
    Message {
        subject: view(segment, m.subject),
        sid,
        reply: m.reply.map(|r| view(segment, r)),
        headers: m.headers.map(|h| Headers::from_raw(view(segment, h))),
        payload: view(segment, m.payload),
    }
}

/// A frame decoded from `segment`, as an op of views of it.
#[inline(never)]
fn owned(segment: &Bytes, frame: ServerFrame<'_>) -> ServerOp {
    match frame {
        ServerFrame::Message(m) => ServerOp::Message(message(segment, &m, Sid::from_bytes(view(segment, m.sid)))),
        ServerFrame::Info(info) => ServerOp::Info(info),
        ServerFrame::Ok => ServerOp::Ok,
        ServerFrame::Err(text) => ServerOp::Err(ServerError::new(view(segment, text))),
        ServerFrame::Ping => ServerOp::Ping,
        ServerFrame::Pong => ServerOp::Pong,
    }
}

/// The first segment holds only part of a frame: joins the front of `input` into one
/// segment when that can complete (or refuse) it; whether it did. `needed` is the
/// decoder's [`needed`](ClientFrameDecoder::needed): with the control line whole and
/// all of the frame arrived, the frame; with the line split, up to its end, and never
/// more than two bytes past the longest line any op may have (so the decoder reports a
/// line too long exactly as it would on one segment, without joining all of it).
#[inline(never)]
fn join_front(input: &mut SegmentedBuffer, needed: Option<usize>, max_line: usize) -> bool {
    let front = input.chunk().len();
    let n = match needed {
        Some(total) => total,
        None => input
            .find_byte(0, b'\n')
            .map_or(input.len(), |lf| lf + 1)
            .min(max_line.saturating_add(2)),
    };
    if n <= front || n > input.len() {
        // Everything there is, or enough to fail, is in the first segment already.
        return false;
    }
    let joined = input.split_to(n);
    prepend(input, joined);
    true
}
