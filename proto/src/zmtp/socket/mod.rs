//! The routing and queueing rules of ZeroMQ socket types, sans-IO: which peer an
//! outgoing message goes to, in what order received messages are delivered, and what
//! happens at the high-water mark. A body keeps one [`Connection`](super::Connection)
//! per peer and moves messages between them and a [`SocketLogic`].
//!
//! - DEALER and PUSH: round robin out over peers whose queue has room; when none has
//!   (or there is no peer) [`SocketLogic::send`] says [`SocketError::WouldBlock`], as
//!   libzmq blocks.
//! - ROUTER: received messages get the sender's identity as first frame; a sent
//!   message's first frame picks the peer; an unknown identity or a full queue drops
//!   the message (libzmq without `ROUTER_MANDATORY`).
//! - PUB: a message goes to every established peer that subscribed to a prefix of its
//!   first frame (by a `SUBSCRIBE` command or ZMTP 3.0's message form); a full queue
//!   drops it for that peer.
//! - SUB: [`SocketLogic::subscribe`] sends the subscription to every peer (again on
//!   every new connection) and filters received messages by it too.
//! - REQ: a request goes round robin with an empty delimiter frame in front; only the
//!   reply of the peer asked (delimiter removed) is delivered, and the next request
//!   waits for it ([`SocketError::WrongState`]). With [`SocketOptions::req_relaxed`]
//!   (`ZMQ_REQ_RELAXED`) a new request may go instead, and whatever was received is
//!   dropped; with [`SocketOptions::req_correlate`] (`ZMQ_REQ_CORRELATE`) each
//!   request carries a 4-byte request id before the delimiter and only the reply
//!   echoing the last one is delivered, so a late answer to an abandoned request is
//!   not taken for the new one's.
//! - REP: a request's envelope (frames up to the empty delimiter) is kept and put
//!   back in front of the reply, which goes to the peer that asked.
//! - XPUB: a PUB whose `recv` delivers its subscribers' subscriptions in ZMTP 3.0's
//!   message form, each topic's first subscribe and last cancel only (libzmq without
//!   `XPUB_VERBOSE`).
//! - XSUB: a SUB that does not filter; subscriptions are sent as messages (`\x01topic`,
//!   forwarded to every peer; `\x00topic` when the last one is cancelled), kept and
//!   sent again on every new connection; other messages go to every peer.
//! - PAIR: one peer (a second is refused by [`SocketLogic::add_peer`]), sending
//!   blocks at the HWM.
//! - DEALER, ROUTER, PULL, SUB, REP and PAIR receive fair-queued ([`FairQueue`]).
//!
//! High-water marks count messages and bytes (a [`BytePermits`] per peer and
//! direction; an empty queue always takes one message, however large). Sending, the
//! queue per peer is bounded by [`SocketOptions::send_hwm`] and
//! [`SocketOptions::send_hwm_bytes`]; receiving, [`SocketLogic::accepts_from`] says
//! whether a peer's inbound queue is under [`SocketOptions::recv_hwm`] and
//! [`SocketOptions::recv_hwm_bytes`]: a body stops taking that peer's messages (and
//! so stops reading its socket) while it is not, which is backpressure down to TCP.
//!
//! Peers are named by a key `P` the body chooses (a connection id, or an endpoint that
//! survives reconnects). A peer is [`add_peer`](SocketLogic::add_peer)ed when its
//! connection starts (DEALER and PUSH queue for it before the handshake, as libzmq
//! does for a connecting socket), [`established`](SocketLogic::established) after the
//! handshake, [`disconnected`](SocketLogic::disconnected) when its connection ends but
//! will be redialed, and [`remove_peer`](SocketLogic::remove_peer)d when it is gone.

mod error;
mod fair_queue;
mod subscriptions;

pub use error::SocketError;
pub use fair_queue::FairQueue;
pub use subscriptions::Subscriptions;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use bytes::Bytes;

use super::{Established, Message, SocketType, Subscription};
use crate::BytePermits;

/// The byte high-water marks' default: 64 MiB per peer and direction (libzmq has no
/// byte limit; ours bounds memory when messages are large).
pub const DEFAULT_HWM_BYTES: usize = 64 << 20;

/// The bytes of a message's frames (what the byte high-water marks count).
pub fn message_size(frames: &[Bytes]) -> usize {
    frames.iter().map(Bytes::len).sum()
}

/// The limits of a [`SocketLogic`].
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Messages queued per peer before sending blocks or drops (`ZMQ_SNDHWM`, 1000 by
    /// default as in libzmq); 0: no limit.
    pub send_hwm: usize,
    /// Bytes of message frames queued per peer before sending blocks or drops
    /// ([`DEFAULT_HWM_BYTES`]); 0: no limit. A message always fits an empty queue.
    pub send_hwm_bytes: usize,
    /// Messages received from one peer and not yet taken before the body should stop
    /// reading that peer (`ZMQ_RCVHWM`, 1000); 0: no limit.
    pub recv_hwm: usize,
    /// The same bound in bytes ([`DEFAULT_HWM_BYTES`]); 0: no limit.
    pub recv_hwm_bytes: usize,
    /// The first identity a ROUTER generates for a peer that announced none (libzmq
    /// starts from a random number; a body seeds this).
    pub first_generated_id: u32,
    /// `ZMQ_REQ_RELAXED`: a REQ may send a new request before the reply to the last
    /// one came (the way out when the peer asked is gone for good); the old reply, if
    /// it comes, is not delivered.
    pub req_relaxed: bool,
    /// `ZMQ_REQ_CORRELATE`: a REQ puts a request id frame in front of each request's
    /// delimiter and delivers only the reply that echoes the last one.
    pub req_correlate: bool,
    /// The id before a REQ's first correlated request (libzmq starts from a random
    /// number, so a late reply to an earlier socket's request cannot match; a body
    /// seeds this).
    pub first_request_id: u32,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            send_hwm: 1000,
            send_hwm_bytes: DEFAULT_HWM_BYTES,
            recv_hwm: 1000,
            recv_hwm_bytes: DEFAULT_HWM_BYTES,
            first_generated_id: 0x6d6f_6e6f,
            req_relaxed: false,
            req_correlate: false,
            first_request_id: 0,
        }
    }
}

#[derive(Debug)]
struct Peer<P> {
    key: P,
    established: bool,
    /// The identity a ROUTER routes to it by (empty until established).
    identity: Bytes,
    /// Subscriptions it sent (a PUB's peer).
    subscriptions: Subscriptions,
    /// Messages of ours the HWM does not count (a SUB's subscriptions), sent first.
    control: VecDeque<Message>,
    /// Messages waiting for the connection to take them, at most `send_hwm`.
    out: VecDeque<Message>,
    /// The bytes of `out`, at most `send_hwm_bytes` (or one message, and empty ones).
    out_bytes: BytePermits,
}

impl<P> Peer<P> {
    /// Whether a message of `size` bytes fits under both high-water marks.
    fn fits(&self, size: usize, hwm: usize) -> bool {
        (hwm == 0 || self.out.len() < hwm) && (self.out_bytes.used() == 0 || size <= self.out_bytes.available())
    }

    /// Queues a message that [`fits`](Self::fits).
    fn queue(&mut self, frames: Message, size: usize) {
        // `fits` said yes, or the queue is being filled past it on purpose (never).
        let _ = self.out_bytes.try_acquire(size);
        self.out.push_back(frames);
    }

    /// The next queued message, its bytes given back.
    fn unqueue(&mut self) -> Option<Message> {
        let frames = self.out.pop_front()?;
        self.out_bytes.release(frames.size().min(self.out_bytes.used()));
        Some(frames)
    }
}

fn byte_budget(hwm_bytes: usize) -> BytePermits {
    BytePermits::new(if hwm_bytes == 0 { usize::MAX } else { hwm_bytes })
}

/// The rules of one socket over many peers. Methods: getters; `add_peer`,
/// `established`, `disconnected`, `remove_peer` (the peers' lives); `handle_message`,
/// `handle_subscription` (input from a peer); `send`, `subscribe`, `unsubscribe` (the
/// user's requests); `poll_outgoing`, `recv` (to drain).
#[derive(Debug)]
pub struct SocketLogic<P> {
    socket_type: SocketType,
    options: SocketOptions,
    peers: Vec<Peer<P>>,
    /// Where DEALER and PUSH look first for a peer with room.
    next_out: usize,
    inbound: FairQueue<P>,
    /// A ROUTER's identities of established peers.
    routes: HashMap<Bytes, P>,
    next_generated_id: u32,
    /// A SUB's or XSUB's own subscriptions; an XPUB's: the union of its peers'.
    subscriptions: Subscriptions,
    /// Messages PUB and ROUTER dropped at the HWM or as unroutable.
    dropped: u64,
    /// A REQ's peer whose reply it waits for.
    awaiting_reply: Option<P>,
    /// A REQ's id of its last correlated request.
    request_id: u32,
    /// A REP's request being answered: the peer and the envelope to send back.
    answering: Option<(P, Message)>,
}

impl<P: Copy + Eq + Hash> SocketLogic<P> {
    /// The logic of a `socket_type` socket (every type of RFC 23).
    pub fn new(socket_type: SocketType, options: SocketOptions) -> Self {
        SocketLogic {
            socket_type,
            next_generated_id: options.first_generated_id,
            request_id: options.first_request_id,
            options,
            peers: Vec::new(),
            next_out: 0,
            inbound: FairQueue::default(),
            routes: HashMap::new(),
            subscriptions: Subscriptions::new(),
            dropped: 0,
            awaiting_reply: None,
            answering: None,
        }
    }

    /// The socket type.
    pub fn socket_type(&self) -> SocketType {
        self.socket_type
    }

    /// Messages PUB and ROUTER dropped so far (a full queue, an unknown identity, or a
    /// PUB with no subscriber for them is not counted: that is filtering).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages received and not yet taken by [`recv`](Self::recv).
    pub fn received_len(&self) -> usize {
        self.inbound.len()
    }

    /// Messages queued for `peer`, not yet taken by [`poll_outgoing`](Self::poll_outgoing).
    pub fn queued_for(&self, peer: P) -> usize {
        self.peer(peer).map_or(0, |p| p.out.len() + p.control.len())
    }

    /// Bytes of messages queued for `peer` (what `send_hwm_bytes` bounds).
    pub fn queued_bytes_for(&self, peer: P) -> usize {
        self.peer(peer).map_or(0, |p| p.out_bytes.used())
    }

    /// Whether the body may hand `peer`'s next received message to
    /// [`handle_message`](Self::handle_message): its inbound queue is under the receive
    /// high-water marks. While it is not, the body leaves the peer's messages in its
    /// connection, which stops reading the socket: backpressure down to TCP.
    pub fn accepts_from(&self, peer: P) -> bool {
        let o = &self.options;
        let (len, bytes) = self.inbound.queued_of(peer);
        (o.recv_hwm == 0 || len < o.recv_hwm) && (o.recv_hwm_bytes == 0 || bytes < o.recv_hwm_bytes)
    }

    /// How many more messages, and bytes, `peer` may have queued for `recv` while
    /// [`accepts_from`](Self::accepts_from) still says yes (`usize::MAX` where a mark
    /// is off): a body taking a run of messages from one connection counts them down
    /// with what [`handle_message`](Self::handle_message) returns, and asks again
    /// only once either reaches 0, instead of looking the queue up per message.
    pub fn room_from(&self, peer: P) -> (usize, usize) {
        let o = &self.options;
        let (len, bytes) = self.inbound.queued_of(peer);
        let room = |hwm: usize, used: usize| if hwm == 0 { usize::MAX } else { hwm.saturating_sub(used) };
        (room(o.recv_hwm, len), room(o.recv_hwm_bytes, bytes))
    }

    /// Whether a peer the body stopped taking from (its queue at a receive high-water
    /// mark) may be taken from again: its inbound queue is down to half of both marks.
    /// The gap spares a connection held at the mark from being resumed and held again
    /// for every message `recv` takes.
    pub fn resumes_from(&self, peer: P) -> bool {
        let o = &self.options;
        (o.recv_hwm == 0 || self.inbound.len_of(peer) <= o.recv_hwm / 2)
            && (o.recv_hwm_bytes == 0 || self.inbound.bytes_of(peer) <= o.recv_hwm_bytes / 2)
    }

    /// Whether `peer` is established and has messages for its connection: what
    /// [`poll_outgoing`](Self::poll_outgoing) would return.
    pub fn has_outgoing(&self, peer: P) -> bool {
        self.peer(peer)
            .is_some_and(|p| p.established && !(p.out.is_empty() && p.control.is_empty()))
    }

    /// The identity a ROUTER routes `peer` by, once established.
    pub fn identity_of(&self, peer: P) -> Option<&Bytes> {
        self.peer(peer).filter(|p| p.established).map(|p| &p.identity)
    }

    fn peer(&self, key: P) -> Option<&Peer<P>> {
        self.peers.iter().find(|p| p.key == key)
    }

    fn peer_mut(&mut self, key: P) -> Option<&mut Peer<P>> {
        self.peers.iter_mut().find(|p| p.key == key)
    }

    /// A peer whose connection is starting; DEALER and PUSH queue messages for it from
    /// now on. Adding a known peer does nothing. False if the socket takes no more
    /// peers (a PAIR has one, as libzmq's: the body closes the newcomer's connection).
    #[must_use]
    pub fn add_peer(&mut self, key: P) -> bool {
        if self.socket_type == SocketType::Pair && self.peers.iter().any(|p| p.key != key) {
            return false;
        }
        if self.peer(key).is_none() {
            self.peers.push(Peer {
                key,
                established: false,
                identity: Bytes::new(),
                subscriptions: Subscriptions::new(),
                control: VecDeque::new(),
                out: VecDeque::new(),
                out_bytes: byte_budget(self.options.send_hwm_bytes),
            });
        }
        true
    }

    /// The peer's handshake completed: a ROUTER learns its identity (or makes one up,
    /// as libzmq does: a zero byte and a 32-bit counter), a SUB queues its
    /// subscriptions for it.
    pub fn established(&mut self, key: P, handshake: &Established) {
        if !self.add_peer(key) {
            return;
        }
        let identity = if self.socket_type == SocketType::Router {
            let announced = &handshake.peer_identity;
            // An identity already in use is not taken over (libzmq without
            // ROUTER_HANDOVER): the newcomer gets a generated one.
            if announced.is_empty() || self.routes.contains_key(announced) {
                self.generate_identity()
            } else {
                announced.clone()
            }
        } else {
            Bytes::new()
        };
        if !identity.is_empty() {
            self.routes.insert(identity.clone(), key);
        }
        let resubscribes = matches!(self.socket_type, SocketType::Sub | SocketType::Xsub);
        let resubscribe: Vec<Message> = self
            .subscriptions
            .topics()
            .filter(|_| resubscribes)
            .map(|t| Message::from(Subscription::Subscribe(t.clone()).message_body()))
            .collect();
        if let Some(peer) = self.peer_mut(key) {
            peer.established = true;
            peer.identity = identity;
            peer.subscriptions = Subscriptions::new();
            peer.control = resubscribe.into();
        }
    }

    fn generate_identity(&mut self) -> Bytes {
        loop {
            let id = self.next_generated_id;
            self.next_generated_id = self.next_generated_id.wrapping_add(1);
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(&id.to_be_bytes());
            let bytes = Bytes::from(bytes);
            if !self.routes.contains_key(&bytes) {
                return bytes;
            }
        }
    }

    /// The peer's connection ended and will be redialed: its identity and the
    /// subscriptions it sent are forgotten, messages queued for it wait for the next
    /// connection (as on a libzmq connecting socket).
    pub fn disconnected(&mut self, key: P) {
        let Some(peer) = self.peers.iter_mut().find(|p| p.key == key) else {
            return;
        };
        peer.established = false;
        let gone = std::mem::take(&mut peer.subscriptions);
        if self.socket_type == SocketType::Xpub {
            // Its subscriptions no longer count toward the union (not reported).
            for (topic, count) in gone.counts() {
                for _ in 0..count {
                    self.subscriptions.cancel(topic);
                }
            }
        }
        let Some(peer) = self.peer_mut(key) else { return };
        peer.control.clear();
        let identity = std::mem::take(&mut peer.identity);
        if !identity.is_empty() {
            self.routes.remove(&identity);
        }
    }

    /// The peer is gone for good; what was queued for it is dropped. Messages it sent
    /// and nobody received yet stay deliverable.
    pub fn remove_peer(&mut self, key: P) {
        self.disconnected(key);
        if let Some(i) = self.peers.iter().position(|p| p.key == key) {
            self.peers.remove(i);
            if self.next_out > i {
                self.next_out -= 1;
            }
        }
    }

    /// A whole message from `peer`: queued for [`recv`](Self::recv) with a ROUTER's
    /// identity frame in front, filtered by a SUB's subscriptions, ignored by the types
    /// that do not receive (PUB, PUSH). Returns the bytes it added to the peer's
    /// receive queue (what the byte high-water mark counts; 0 if it queued nothing).
    #[inline]
    pub fn handle_message(&mut self, key: P, mut frames: Message) -> usize {
        match self.socket_type {
            SocketType::Router => {
                let Some(identity) = self.identity_of(key).cloned() else {
                    return 0;
                };
                frames.push_front(identity);
            }
            SocketType::Sub => {
                let first = frames.first().map_or(&[][..], |f| &f[..]);
                if !self.subscriptions.matches(first) {
                    return 0;
                }
            }
            SocketType::Req => {
                // Only the reply to our request (behind its id, if correlated, as
                // libzmq compares it: 4 bytes in host order), behind its empty
                // delimiter.
                if self.awaiting_reply != Some(key) {
                    return 0;
                }
                if self.options.req_correlate {
                    if frames.first().map(|f| &f[..]) != Some(&self.request_id.to_ne_bytes()[..]) {
                        return 0;
                    }
                    frames.pop_front();
                }
                if !frames.first().is_some_and(|f| f.is_empty()) {
                    return 0;
                }
                frames.pop_front();
                self.awaiting_reply = None;
            }
            SocketType::Dealer
            | SocketType::Pull
            | SocketType::Rep
            | SocketType::Pair
            | SocketType::Xsub
            | SocketType::Xpub => {}
            _ => return 0,
        }
        self.inbound.push(key, frames)
    }

    /// A subscription change from a peer (either form); a PUB or XPUB keeps it, an
    /// XPUB also delivers a topic's first subscribe and last cancel to `recv`.
    pub fn handle_subscription(&mut self, key: P, subscription: Subscription) {
        if !matches!(self.socket_type, SocketType::Pub | SocketType::Xpub) {
            return;
        }
        let Some(peer) = self.peer_mut(key) else { return };
        match &subscription {
            Subscription::Subscribe(topic) => {
                peer.subscriptions.subscribe(topic.clone());
            }
            Subscription::Cancel(topic) => {
                if !peer.subscriptions.cancel(topic) && !peer.subscriptions.topics().any(|t| t == topic) {
                    // Never subscribed by this peer: nothing changes.
                    return;
                }
            }
        }
        if self.socket_type == SocketType::Xpub {
            let changed = match &subscription {
                Subscription::Subscribe(topic) => self.subscriptions.subscribe(topic.clone()),
                Subscription::Cancel(topic) => self.subscriptions.cancel(topic),
            };
            if changed {
                self.inbound.push(key, Message::from(subscription.message_body()));
            }
        }
    }

    /// Offers a message to the socket's peers by the type's rule (see the module
    /// documentation). `Ok` means taken or, for PUB and ROUTER, deliberately dropped.
    pub fn send(&mut self, frames: Message) -> Result<(), SocketError> {
        self.send_direct(frames, |_, _| false).map(|_| ())
    }

    /// As [`send`](Self::send), but a DEALER, PUSH or PAIR first offers the message to
    /// `direct` when the peer the round robin picks is established and has nothing
    /// queued: the body writes it straight into that peer's connection if it has room
    /// (true), and it is never queued here. Order holds, since the peer's queue is
    /// empty. `Ok(true)`: queued (or dropped) here, for
    /// [`poll_outgoing`](Self::poll_outgoing); `Ok(false)`: `direct` took it. The
    /// common case of a sender that keeps up then costs no queue push and pop.
    pub fn send_direct(
        &mut self,
        frames: Message,
        mut direct: impl FnMut(P, &Message) -> bool,
    ) -> Result<bool, SocketError> {
        if frames.is_empty() {
            return Err(SocketError::EmptyMessage);
        }
        let hwm = self.options.send_hwm;
        match self.socket_type {
            SocketType::Req if self.awaiting_reply.is_some() && !self.options.req_relaxed => {
                Err(SocketError::WrongState(SocketType::Req))
            }
            SocketType::Rep => {
                let (key, mut envelope) = self.answering.take().ok_or(SocketError::WrongState(SocketType::Rep))?;
                envelope.extend(frames);
                let size = envelope.size();
                match self.peers.iter_mut().find(|p| p.key == key && p.established) {
                    Some(peer) if peer.fits(size, hwm) => peer.queue(envelope, size),
                    _ => self.dropped += 1,
                }
                Ok(true)
            }
            SocketType::Dealer | SocketType::Push | SocketType::Req | SocketType::Pair => {
                let mut frames = frames;
                let req = self.socket_type == SocketType::Req;
                if req {
                    frames.push_front(Bytes::new());
                    if self.options.req_correlate {
                        let id = self.request_id.wrapping_add(1);
                        frames.push_front(Bytes::copy_from_slice(&id.to_ne_bytes()));
                    }
                }
                let size = frames.size();
                let n = self.peers.len();
                for step in 0..n {
                    let mut i = self.next_out + step;
                    if i >= n {
                        i -= n;
                    }
                    let peer = &mut self.peers[i];
                    if peer.fits(size, hwm) {
                        self.next_out = if i + 1 == n { 0 } else { i + 1 };
                        if req {
                            if self.options.req_relaxed {
                                // A new request abandons the last: a reply received
                                // and not taken is no longer wanted (libzmq drops it
                                // too).
                                while self.inbound.pop().is_some() {}
                            }
                            self.awaiting_reply = Some(peer.key);
                            if self.options.req_correlate {
                                self.request_id = self.request_id.wrapping_add(1);
                            }
                        } else if peer.established
                            && peer.out.is_empty()
                            && peer.control.is_empty()
                            && direct(peer.key, &frames)
                        {
                            return Ok(false);
                        }
                        peer.queue(frames, size);
                        return Ok(true);
                    }
                }
                if req {
                    frames.pop_front();
                    if self.options.req_correlate {
                        frames.pop_front();
                    }
                }
                Err(SocketError::WouldBlock(frames))
            }
            SocketType::Router => {
                let mut frames = frames;
                let identity = frames.pop_front().unwrap_or_default();
                let key = self.routes.get(&identity).copied();
                let size = frames.size();
                match key.and_then(|k| self.peers.iter_mut().find(|p| p.key == k)) {
                    Some(peer) if peer.fits(size, hwm) && !frames.is_empty() => peer.queue(frames, size),
                    _ => self.dropped += 1,
                }
                Ok(true)
            }
            SocketType::Xsub => {
                match Subscription::from_message(&frames) {
                    Some(Subscription::Subscribe(topic)) => {
                        self.subscriptions.subscribe(topic.clone());
                        self.control_to_all(Subscription::Subscribe(topic));
                    }
                    Some(Subscription::Cancel(topic)) => self.unsubscribe_any(topic),
                    None => {
                        let size = frames.size();
                        for peer in self.peers.iter_mut().filter(|p| p.established) {
                            if peer.fits(size, hwm) {
                                peer.queue(frames.clone(), size);
                            } else {
                                self.dropped += 1;
                            }
                        }
                    }
                }
                Ok(true)
            }
            SocketType::Pub | SocketType::Xpub => {
                let first = frames[0].clone();
                let size = frames.size();
                for peer in self.peers.iter_mut() {
                    if !peer.established || !peer.subscriptions.matches(&first) {
                        continue;
                    }
                    if peer.fits(size, hwm) {
                        peer.queue(frames.clone(), size);
                    } else {
                        self.dropped += 1;
                    }
                }
                Ok(true)
            }
            other => Err(SocketError::CannotSend(other)),
        }
    }

    /// A SUB subscribes to `topic` (a prefix of first frames; empty: everything); the
    /// first subscription to a topic is sent to every established peer.
    pub fn subscribe(&mut self, topic: Bytes) {
        if self.socket_type == SocketType::Sub && self.subscriptions.subscribe(topic.clone()) {
            self.control_to_all(Subscription::Subscribe(topic));
        }
    }

    /// A SUB drops one subscription to `topic`; the last one's cancel is sent to every
    /// established peer.
    pub fn unsubscribe(&mut self, topic: Bytes) {
        if self.socket_type == SocketType::Sub {
            self.unsubscribe_any(topic);
        }
    }

    fn unsubscribe_any(&mut self, topic: Bytes) {
        if self.subscriptions.cancel(&topic) {
            self.control_to_all(Subscription::Cancel(topic));
        }
    }

    fn control_to_all(&mut self, subscription: Subscription) {
        let body = subscription.message_body();
        for peer in self.peers.iter_mut().filter(|p| p.established) {
            peer.control.push_back(Message::from(body.clone()));
        }
    }

    /// The next message for an established `peer`'s connection (its subscriptions
    /// first). A body takes them while the connection keeps up, which is what makes the
    /// HWM bite when it does not.
    #[must_use]
    pub fn poll_outgoing(&mut self, key: P) -> Option<Message> {
        let peer = self.peer_mut(key).filter(|p| p.established)?;
        peer.control.pop_front().or_else(|| peer.unqueue())
    }

    /// Moves every message [`recv`](Self::recv) would return now into `out`, in that
    /// order (a lone peer's at once); the count moved.
    pub fn recv_into(&mut self, out: &mut Vec<Message>) -> usize {
        let before = out.len();
        if self.socket_type == SocketType::Rep {
            while let Some(message) = self.recv() {
                out.push(message);
            }
        } else {
            self.inbound.drain_into(out);
        }
        out.len() - before
    }

    /// The next received message, fair-queued across peers.
    #[must_use]
    /// A REP delivers nothing while it owes a reply (libzmq would say `EFSM`), and
    /// drops a request without an envelope delimiter.
    pub fn recv(&mut self) -> Option<Message> {
        if self.socket_type != SocketType::Rep {
            return self.inbound.pop().map(|(_, m)| m);
        }
        while self.answering.is_none() {
            let (key, mut frames) = self.inbound.pop()?;
            if let Some(at) = frames.iter().position(|f| f.is_empty()) {
                let body = frames.split_off(at + 1);
                self.answering = Some((key, frames));
                return Some(body);
            }
        }
        None
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl<P: Copy + Eq + Hash + std::fmt::Debug> SocketLogic<P> {
    /// Panics unless the bookkeeping holds (the socket fuzz target calls it after
    /// every step): no peer's queue over the send high-water marks, its byte count the
    /// sum of its messages, a ROUTER's routes naming exactly its established peers by
    /// their identities, a REP's envelope ending in its delimiter.
    pub(crate) fn assert_invariants(&self) {
        let hwm = self.options.send_hwm;
        for peer in &self.peers {
            assert!(
                hwm == 0 || peer.out.len() <= hwm,
                "{:?}: {} queued over the HWM",
                peer.key,
                peer.out.len()
            );
            let bytes: usize = peer.out.iter().map(Message::size).sum();
            assert_eq!(peer.out_bytes.used(), bytes, "{:?}: byte count", peer.key);
            let cap = if self.options.send_hwm_bytes == 0 {
                usize::MAX
            } else {
                self.options.send_hwm_bytes
            };
            // Over the budget only by one message, taken while nothing was held: empty
            // messages hold nothing, so they may sit beside it.
            assert!(
                bytes <= cap || peer.out.iter().filter(|m| m.size() > 0).count() == 1,
                "{:?}: {bytes} bytes over the HWM",
                peer.key
            );
            assert!(
                peer.established || peer.control.is_empty(),
                "{:?}: control for a detached peer",
                peer.key
            );
            if self.socket_type == SocketType::Router && peer.established {
                assert_eq!(
                    self.routes.get(&peer.identity),
                    Some(&peer.key),
                    "an established peer without its route"
                );
            }
        }
        for (identity, key) in &self.routes {
            let peer = self.peer(*key).expect("a route to a removed peer");
            assert!(peer.established, "a route to a detached peer");
            assert_eq!(&peer.identity, identity, "a route by another identity");
        }
        if let Some((_, envelope)) = &self.answering {
            assert!(
                envelope.last().is_some_and(Bytes::is_empty),
                "an envelope without its delimiter"
            );
        }
        assert!(
            self.socket_type != SocketType::Pair || self.peers.len() <= 1,
            "a PAIR with two peers"
        );
    }
}

#[cfg(test)]
mod tests;
