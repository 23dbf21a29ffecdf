//! A ZeroMQ socket's rules ([`SocketLogic`]) as a body drives them: up to four peers
//! attaching, shaking hands, sending bytes or whole messages, detaching and coming
//! back; the application sending, receiving and subscribing; small high-water marks.
//!
//! Input: two header bytes (bits 0-1 of the first: the send HWM, 1 to 3 or none;
//! bits 2-3 the receive HWM; bit 4 a 64-byte send byte HWM; bit 5 a relaxed REQ; the
//! second is unused),
//! then the socket type (mod 11) and operations. An operation byte names a peer slot
//! (bits 0-1) and what happens (bits 2-7 mod 12), some followed by a length byte and
//! that many bytes:
//!
//! 0. a connection starts (`add_peer`; a slot with a peer redials it: `disconnected`
//!    first, as the body does);
//! 1. the peer's greeting and `READY` arrive (a compatible type, the identity `len`
//!    bytes long);
//! 2. `len` bytes from the network;
//! 3. a decoded message of `len` bytes (frames cut at each `|`), behind a tag frame
//!    and an empty delimiter when the length byte is odd;
//! 4. the connection is lost (`disconnected`); 5. the peer is gone (`remove_peer`);
//! 6. the application sends `len` bytes (cut at `|`; a ROUTER's first frame is the
//!    identity of slot `len & 3` when the length byte's bit 7 is set);
//! 7. the application receives; 8. every connection takes its queued messages;
//! 9. the application subscribes (even length) or unsubscribes to `len` bytes;
//! 10. messages the body held back are handed over when the HWM allows;
//! 11. the peer (un)subscribes to `len` bytes.
//!
//! Checks, panicking on the first that fails: nothing panics; the logic's bookkeeping
//! holds after every step ([`SocketLogic::assert_invariants`]: queues within the
//! HWM, a ROUTER's routes exactly its established peers); a DEALER, PUSH, REQ or PAIR
//! send queues the message for exactly one peer, or none when it would block; a
//! ROUTER send reaches at most the one established peer with that identity; nothing
//! is queued for a detached peer; a REQ takes only the reply of the peer it asked, and
//! refuses a second request before it unless relaxed; a REP's reply goes back to the peer whose
//! request it was (its tag frame comes back on that peer's connection).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::chassis::Session;
use crate::zmtp::socket::{SocketError, SocketLogic, SocketOptions};
use crate::zmtp::{
    Command, Connection, ConnectionConfig, Event, Greeting, HandshakeConfig, MechanismName, Message, Metadata,
    SocketType, Subscription, ZmtpError,
};
use crate::IoArena;

const TYPES: [SocketType; 11] = [
    SocketType::Pair,
    SocketType::Pub,
    SocketType::Sub,
    SocketType::Req,
    SocketType::Rep,
    SocketType::Dealer,
    SocketType::Router,
    SocketType::Pull,
    SocketType::Push,
    SocketType::Xpub,
    SocketType::Xsub,
];

/// One slot's peer: its key in the logic, its connection while there is one, and the
/// messages the body held back (the peer's inbound queue was at the HWM).
struct Slot {
    key: u32,
    conn: Option<Connection>,
    held: VecDeque<Message>,
}

struct Harness {
    socket_type: SocketType,
    logic: SocketLogic<u32>,
    slots: [Option<Slot>; 4],
    next_key: u32,
    now: Instant,
    /// Tag frames of decoded requests, by address: which peer's request each was.
    tags: HashMap<usize, u32>,
    /// Kept alive so no other frame gets a tag's address.
    tag_frames: Vec<Bytes>,
    /// A REQ's peer it sent its request to, until the reply is in.
    req_awaits: Option<u32>,
    /// Whether the socket is a relaxed REQ (options bit 0x20).
    relaxed: bool,
}

/// See the module's documentation.
pub fn zmtp_socket(data: &[u8]) {
    let [options, _, socket_type, ops @ ..] = data else {
        return;
    };
    let socket_type = TYPES[usize::from(*socket_type) % TYPES.len()];
    let mut h = Harness::new(socket_type, *options);
    let mut rest = ops;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let slot = usize::from(op & 3);
        let kind = (op >> 2) % 12;
        let mut chunk = || -> Option<(u8, &[u8])> {
            let [len, tail @ ..] = rest else { return None };
            let n = usize::from(*len & 0x7f).min(tail.len());
            let (chunk, tail) = tail.split_at(n);
            rest = tail;
            Some((*len, chunk))
        };
        match kind {
            0 => h.connect(slot),
            1 => {
                let Some((len, _)) = chunk() else { return };
                h.handshake(slot, len);
            }
            2 => {
                let Some((_, bytes)) = chunk() else { return };
                h.network(slot, bytes);
            }
            3 => {
                let Some((len, bytes)) = chunk() else { return };
                h.decoded(slot, len, bytes);
            }
            4 => h.disconnect(slot),
            5 => h.remove(slot),
            6 => {
                let Some((len, bytes)) = chunk() else { return };
                h.send(len, bytes);
            }
            7 => h.recv(),
            8 => h.flush(),
            9 => {
                let Some((len, bytes)) = chunk() else { return };
                let topic = Bytes::copy_from_slice(bytes);
                if len % 2 == 0 {
                    h.logic.subscribe(topic);
                } else {
                    h.logic.unsubscribe(topic);
                }
            }
            10 => h.resume(slot),
            _ => {
                let Some((len, bytes)) = chunk() else { return };
                if let Some(s) = &h.slots[slot] {
                    let topic = Bytes::copy_from_slice(bytes);
                    let sub = if len % 2 == 0 {
                        Subscription::Subscribe(topic)
                    } else {
                        Subscription::Cancel(topic)
                    };
                    h.logic.handle_subscription(s.key, sub);
                }
            }
        }
        h.logic.assert_invariants();
    }
}

/// Frames of `bytes` cut at each `|` (so one byte makes one frame, empty ones too).
fn frames(bytes: &[u8]) -> Message {
    bytes.split(|&b| b == b'|').map(Bytes::copy_from_slice).collect()
}

impl Harness {
    fn new(socket_type: SocketType, options: u8) -> Harness {
        let relaxed = options & 0x20 != 0;
        let options = SocketOptions {
            send_hwm: usize::from(options & 3),
            recv_hwm: usize::from((options >> 2) & 3),
            send_hwm_bytes: if options & 0x10 != 0 { 64 } else { 0 },
            recv_hwm_bytes: 0,
            req_relaxed: relaxed,
            ..SocketOptions::default()
        };
        Harness {
            socket_type,
            logic: SocketLogic::new(socket_type, options),
            slots: [None, None, None, None],
            next_key: 0,
            now: Instant::now(),
            tags: HashMap::new(),
            tag_frames: Vec::new(),
            req_awaits: None,
            relaxed,
        }
    }

    fn config(&self) -> ConnectionConfig {
        let mut config = ConnectionConfig::new(HandshakeConfig::null(self.socket_type));
        config.max_frame_size = 4096;
        config.max_message_frames = 16;
        config
    }

    /// A queued count per slot's key (0 for an empty slot).
    fn queued(&self) -> [(Option<u32>, usize); 4] {
        let mut out = [(None, 0); 4];
        for (o, s) in out.iter_mut().zip(&self.slots) {
            if let Some(s) = s {
                *o = (Some(s.key), self.logic.queued_for(s.key));
            }
        }
        out
    }

    fn connect(&mut self, slot: usize) {
        let config = self.config();
        let Ok(conn) = Connection::new(config, self.now) else {
            panic!("a NULL configuration is valid")
        };
        if let Some(s) = &mut self.slots[slot] {
            // A redial: the old connection is lost first.
            self.logic.disconnected(s.key);
            s.conn = Some(conn);
            return;
        }
        let key = self.next_key;
        if !self.logic.add_peer(key) {
            assert_eq!(self.socket_type, SocketType::Pair, "only a PAIR refuses a peer");
            return;
        }
        self.next_key += 1;
        self.slots[slot] = Some(Slot {
            key,
            conn: Some(conn),
            held: VecDeque::new(),
        });
    }

    fn handshake(&mut self, slot: usize, len: u8) {
        let peer_type = TYPES
            .into_iter()
            .find(|t| self.socket_type.is_compatible_with(*t))
            .unwrap_or(self.socket_type);
        // Identities 0..=3 bytes long, all `x`: peers may announce the same one.
        let identity = vec![b'x'; usize::from(len & 3)];
        let mut properties = vec![("Socket-Type", peer_type.as_str().as_bytes())];
        if !identity.is_empty() {
            properties.push(("Identity", &identity[..]));
        }
        let Ok(metadata) = Metadata::from_properties(properties) else {
            panic!("valid properties")
        };
        let mut bytes = Greeting::new(MechanismName::Null, false).encode().to_vec();
        let mut arena = IoArena::new();
        if Command::Ready(metadata).encode(&mut arena).is_err() {
            return;
        }
        bytes.extend_from_slice(&arena.to_vec());
        self.network(slot, &bytes);
    }

    fn network(&mut self, slot: usize, bytes: &[u8]) {
        let now = self.now;
        let Some(s) = &mut self.slots[slot] else { return };
        let Some(conn) = &mut s.conn else { return };
        conn.handle_input(Bytes::copy_from_slice(bytes), now);
        if let Some(out) = conn.poll_transmit() {
            out.clear();
        }
        self.events(slot);
    }

    /// Hands a connection's events to the logic, as the body does.
    fn events(&mut self, slot: usize) {
        let Some(s) = &mut self.slots[slot] else { return };
        let key = s.key;
        let Some(conn) = &mut s.conn else { return };
        let mut lost = false;
        let mut taken = Vec::new();
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Established(e) => self.logic.established(key, &e),
                Event::Message(m) => taken.push(m),
                Event::Subscription(sub) => self.logic.handle_subscription(key, sub),
                Event::Failed(_) | Event::Closed => lost = true,
                Event::Authenticate(_) => unreachable!("NULL asks no one"),
            }
        }
        if lost {
            s.conn = None;
            self.logic.disconnected(key);
        }
        for m in taken {
            self.deliver(slot, m);
        }
    }

    /// A message from a slot's peer: to the logic if its inbound queue has room and
    /// nothing is held before it, else held.
    fn deliver(&mut self, slot: usize, message: Message) {
        let Some(s) = &mut self.slots[slot] else { return };
        let key = s.key;
        let (room, room_bytes) = self.logic.room_from(key);
        assert_eq!(
            self.logic.accepts_from(key),
            room > 0 && room_bytes > 0,
            "room_from says what accepts_from says"
        );
        if !s.held.is_empty() || !self.logic.accepts_from(key) {
            s.held.push_back(message);
            return;
        }
        let before = self.logic.received_len();
        let reply = message.first().is_some_and(Bytes::is_empty);
        let queued = self.logic.handle_message(key, message);
        let delivered = self.logic.received_len() > before;
        // What a body counts the room down by: the bytes queued, one message if any.
        let (room_after, bytes_after) = self.logic.room_from(key);
        if room_bytes != usize::MAX {
            assert_eq!(room_bytes.saturating_sub(queued), bytes_after, "the bytes queued");
        }
        if room != usize::MAX {
            assert_eq!(room - room_after, usize::from(delivered), "one message queued, or none");
        }
        assert!(delivered || queued == 0, "nothing queued, no bytes");
        if self.socket_type == SocketType::Req {
            let expected = self.req_awaits == Some(key) && reply;
            assert_eq!(delivered, expected, "a REQ took (or dropped) the wrong reply");
            if delivered {
                self.req_awaits = None;
            }
        }
    }

    fn decoded(&mut self, slot: usize, len: u8, bytes: &[u8]) {
        let Some(s) = &self.slots[slot] else { return };
        let mut message = frames(bytes);
        if len % 2 == 1 {
            let tag = Bytes::from(vec![0xee; 3]);
            self.tags.insert(tag.as_ptr() as usize, s.key);
            self.tag_frames.push(tag.clone());
            message.push_front(Bytes::new());
            message.push_front(tag);
        }
        self.deliver(slot, message);
    }

    fn disconnect(&mut self, slot: usize) {
        if let Some(s) = &mut self.slots[slot] {
            s.conn = None;
            self.logic.disconnected(s.key);
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots[slot].take() {
            self.logic.remove_peer(s.key);
            assert_eq!(self.logic.queued_for(s.key), 0, "a removed peer keeps a queue");
        }
    }

    fn send(&mut self, len: u8, bytes: &[u8]) {
        let mut message = frames(bytes);
        let routed = self.socket_type == SocketType::Router && len & 0x80 != 0;
        let identity = self.slots[usize::from(len & 3)]
            .as_ref()
            .and_then(|s| self.logic.identity_of(s.key).cloned());
        if routed {
            message.push_front(identity.unwrap_or_else(|| Bytes::from_static(b"nobody")));
        }
        // What a ROUTER routes by (the application's own bytes may name a peer too).
        let first = message.first().cloned();
        let before = self.queued();
        let result = self.logic.send(message);
        let after = self.queued();
        let grown: Vec<(u32, usize)> = before
            .iter()
            .zip(&after)
            .filter_map(|((key, b), (_, a))| key.filter(|_| a > b).map(|k| (k, a - b)))
            .collect();
        for (key, _) in &grown {
            if !matches!(
                self.socket_type,
                SocketType::Dealer | SocketType::Push | SocketType::Req | SocketType::Pair
            ) {
                assert!(self.logic.identity_of(*key).is_some(), "queued for a detached peer");
            }
        }
        match self.socket_type {
            SocketType::Dealer | SocketType::Push | SocketType::Pair | SocketType::Req => match &result {
                Ok(()) => {
                    assert!(matches!(grown[..], [(_, 1)]), "a send queued for {grown:?}");
                    if self.socket_type == SocketType::Req {
                        self.req_awaits = Some(grown[0].0);
                    }
                }
                Err(e) => {
                    assert!(grown.is_empty(), "a refused send queued for {grown:?}");
                    if self.socket_type == SocketType::Req && self.req_awaits.is_some() {
                        // A relaxed REQ sends again; only room can refuse it.
                        let expected = if self.relaxed {
                            matches!(e, SocketError::WouldBlock(_))
                        } else {
                            e == &SocketError::WrongState(SocketType::Req)
                        };
                        assert!(expected, "a REQ refused a request with {e:?}");
                    }
                }
            },
            SocketType::Router => {
                assert!(grown.len() <= 1, "a ROUTER send reached {grown:?}");
                if let Some((key, _)) = grown.first() {
                    assert_eq!(self.logic.identity_of(*key), first.as_ref(), "routed to another peer");
                }
            }
            SocketType::Rep => assert!(grown.len() <= 1, "a REP reply reached {grown:?}"),
            _ => {}
        }
    }

    fn recv(&mut self) {
        let Some(message) = self.logic.recv() else { return };
        match self.socket_type {
            SocketType::Router => {
                assert!(
                    message.first().is_some_and(|f| !f.is_empty()),
                    "a ROUTER message without identity"
                );
            }
            SocketType::Rep => {
                assert!(
                    message
                        .first()
                        .is_none_or(|f| !self.tags.contains_key(&(f.as_ptr() as usize))),
                    "a REP delivered its envelope"
                );
            }
            _ => {}
        }
    }

    fn flush(&mut self) {
        for slot in 0..4 {
            let Some(s) = &mut self.slots[slot] else { continue };
            let key = s.key;
            while let Some(message) = self.logic.poll_outgoing(key) {
                let Some(conn) = &mut s.conn else {
                    panic!("a message polled for a peer without a connection")
                };
                if let Some(tag) = message.first().and_then(|f| self.tags.get(&(f.as_ptr() as usize))) {
                    assert_eq!(*tag, key, "a reply went to a peer that did not ask");
                }
                match conn.send(&message) {
                    Ok(()) | Err(ZmtpError::Encode { .. }) => {}
                    Err(e) => panic!("an established connection refused a message: {e}"),
                }
                if let Some(out) = conn.poll_transmit() {
                    out.clear();
                }
            }
        }
    }

    fn resume(&mut self, slot: usize) {
        let Some(s) = &mut self.slots[slot] else { return };
        if !self.logic.resumes_from(s.key) {
            return;
        }
        let held = std::mem::take(&mut s.held);
        for m in held {
            self.deliver(slot, m);
        }
    }
}

/// The seed streams (socket type first): for every type, two peers attach and shake
/// hands, messages arrive decoded and as bytes, the application sends, receives and
/// (un)subscribes, a peer detaches and comes back, another is removed.
pub fn zmtp_socket_seeds() -> Vec<Vec<u8>> {
    // An operation on `slot`.
    let op = |kind: u8, slot: u8| (kind << 2) | slot;
    let with = |bytes: &[u8]| [&[bytes.len() as u8][..], bytes].concat();
    (0..TYPES.len() as u8)
        .map(|t| {
            let mut s = vec![t];
            s.push(op(0, 0));
            s.extend([op(1, 0), 2]);
            s.push(op(0, 1));
            s.extend([op(1, 1), 1]);
            s.extend([op(9, 0), 0]);
            s.extend([op(11, 0), 0]);
            s.push(op(3, 0));
            s.extend(with(b"a|b"));
            // The same, behind a tag and delimiter (odd length byte: 3 bytes).
            s.push(op(3, 1));
            s.extend(with(b"req"));
            // A frame from the network: flags 0, length 5.
            s.push(op(2, 1));
            s.extend(with(b"\x00\x05hello"));
            s.push(op(7, 0));
            s.push(op(7, 0));
            s.push(op(6, 0));
            s.extend(with(b"reply"));
            // A ROUTER's send to slot 0's identity (bit 7 of the length byte).
            s.push(op(6, 0));
            s.extend([0x80 | 4, b'x', b'|', b'h', b'i']);
            s.push(op(8, 0));
            s.push(op(10, 0));
            s.push(op(4, 1));
            s.push(op(0, 1));
            s.extend([op(1, 1), 0]);
            s.push(op(5, 0));
            s.push(op(8, 0));
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_for_every_type_and_hwm() {
        for seed in zmtp_socket_seeds() {
            for options in [0u8, 1, 0x15, 0x0f] {
                zmtp_socket(&[&[options, 0][..], &seed].concat());
            }
        }
    }

    #[test]
    fn a_seed_reaches_the_logic() {
        // The DEALER seed: two peers established, messages received.
        let seed = &zmtp_socket_seeds()[5];
        let mut h = Harness::new(SocketType::Dealer, 0);
        assert_eq!(TYPES[usize::from(seed[0])], SocketType::Dealer);
        h.connect(0);
        h.handshake(0, 2);
        h.decoded(0, 3, b"a|b");
        assert_eq!(h.logic.received_len(), 1);
        let key = h.slots[0].as_ref().unwrap().key;
        h.send(1, b"x");
        assert_eq!(h.logic.queued_for(key), 1);
        h.flush();
        assert_eq!(h.logic.queued_for(key), 0);
    }
}
