//! A small fake nats-server, as a [`Session`], for the connection tests.
//!
//! It speaks first (`INFO`), checks `CONNECT` credentials the way nats-server does
//! (token, user/password, an NKey signature of its nonce verified with the public key,
//! a JWT), answers `PING`, keeps subscriptions (queue groups, wildcards, `UNSUB` with a
//! maximum), routes `PUB`/`HPUB` from its one client back to that client's matching
//! subscriptions (echo), sends a 503 status to a request's reply subject when nobody
//! subscribes, and has knobs for faults: silence on `PING`, `-ERR`s, `INFO`
//! updates, end of stream.
//!
//! Its events are the client ops it received, in order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use super::nkey::{base32_decode, crc16};
use crate::chassis::{IoArena, Session};
use crate::nats::{
    encode, ClientOp, ConnectOptions, HeaderMap, Headers, Limits, Publish, ServerError, ServerFrameDecoder, ServerInfo,
    ServerOp,
};

/// The credentials the server requires.
#[derive(Debug, Clone, Default)]
pub(super) enum Require {
    #[default]
    Nothing,
    Token(&'static str),
    UserPassword(&'static str, &'static str),
    /// The public NKey allowed.
    NKey(String),
    /// The JWT expected, and the public key the signature must verify with.
    Jwt(&'static str, String),
}

#[derive(Debug, Clone)]
struct Sub {
    subject: Bytes,
    queue: Option<Bytes>,
    /// Deliveries left before the `UNSUB` maximum.
    left: Option<u64>,
}

/// The fake server session.
#[derive(Debug)]
pub(super) struct FakeServer {
    pub require: Require,
    /// Answer `PING`s (a dead server does not).
    pub answer_pings: bool,
    /// Acknowledge ops with `+OK` when the client asked for verbose.
    verbose: bool,
    /// The client's `CONNECT`, once received.
    pub connect: Option<ConnectOptions>,
    nonce: String,
    /// Decodes what the client sends: the server role's borrowed frame decoder, over
    /// `input`, the received bytes not yet decoded, kept contiguous.
    decoder: ServerFrameDecoder,
    input: Vec<u8>,
    out: IoArena,
    subs: BTreeMap<Bytes, Sub>,
    log: VecDeque<ClientOp>,
    closed: bool,
}

/// Whether `subject` matches the subscription `pattern` (`*` one token, `>` the rest).
pub(super) fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|&b| b == b'.');
    let mut s = subject.split(|&b| b == b'.');
    loop {
        match (p.next(), s.next()) {
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Decodes a public user NKey (`U...`) into its Ed25519 key.
fn public_key(encoded: &str) -> Option<VerifyingKey> {
    let raw = base32_decode(encoded.as_bytes())?;
    if raw.len() != 35 || raw[0] != 20 << 3 || crc16(&raw[..33]).to_le_bytes() != raw[33..] {
        return None;
    }
    VerifyingKey::from_bytes(raw[1..33].try_into().ok()?).ok()
}

/// Decodes base64url without padding.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

impl FakeServer {
    /// A server that sends `info` (with a nonce added) as soon as it starts.
    pub fn new(mut info: ServerInfo, require: Require) -> Self {
        let nonce = "PXoWU7zWAMt75FY".to_owned();
        info.nonce = Some(nonce.clone());
        info.auth_required = !matches!(require, Require::Nothing);
        let mut out = IoArena::new();
        ServerOp::Info(Box::new(info))
            .encode(&Limits::default(), &mut out)
            .expect("INFO encodes");
        Self {
            require,
            answer_pings: true,
            verbose: false,
            connect: None,
            nonce,
            decoder: ServerFrameDecoder::default(),
            input: Vec::new(),
            out,
            subs: BTreeMap::new(),
            log: VecDeque::new(),
            closed: false,
        }
    }

    /// A plain server: headers on, 1 MiB payloads.
    pub fn plain() -> Self {
        Self::new(info(), Require::Nothing)
    }

    /// Sends `op`.
    pub fn send(&mut self, op: ServerOp) {
        op.encode(&Limits::default(), &mut self.out).expect("test op encodes");
    }

    /// Sends `-ERR 'text'`.
    pub fn error(&mut self, text: &str) {
        self.send(ServerOp::Err(ServerError::new(format!("'{text}'"))));
    }

    /// Closes the connection (after what is queued).
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The sids subscribed, in order.
    pub fn sids(&self) -> Vec<Bytes> {
        self.subs.keys().cloned().collect()
    }

    /// Another client published: deliver to the matching subscriptions (one member of
    /// each queue group); returns how many got it.
    pub fn deliver(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
    ) -> usize {
        let mut groups_served: Vec<Bytes> = Vec::new();
        let mut targets = Vec::new();
        for (sid, sub) in &self.subs {
            if !matches(&sub.subject, subject) {
                continue;
            }
            if let Some(q) = &sub.queue {
                if groups_served.contains(q) {
                    continue;
                }
                groups_served.push(q.clone());
            }
            targets.push(sid.clone());
        }
        for sid in &targets {
            encode::message(&mut self.out, &Limits::default(), subject, sid, reply, headers, payload)
                .expect("MSG encodes");
            if let Some(sub) = self.subs.get_mut(sid) {
                if let Some(left) = &mut sub.left {
                    *left -= 1;
                    if *left == 0 {
                        self.subs.remove(sid);
                    }
                }
            }
        }
        targets.len()
    }

    fn authorized(&self, c: &ConnectOptions) -> bool {
        let signed_by = |key: &str, sig: &Option<String>| {
            let (Some(key), Some(sig)) = (public_key(key), sig.as_deref().and_then(base64url_decode)) else {
                return false;
            };
            let Ok(sig) = Signature::from_slice(&sig) else {
                return false;
            };
            key.verify(self.nonce.as_bytes(), &sig).is_ok()
        };
        match &self.require {
            Require::Nothing => true,
            Require::Token(t) => c.auth_token.as_deref() == Some(*t),
            Require::UserPassword(u, p) => c.user.as_deref() == Some(*u) && c.pass.as_deref() == Some(*p),
            Require::NKey(key) => c.nkey.as_deref() == Some(key.as_str()) && signed_by(key, &c.sig),
            Require::Jwt(jwt, key) => c.jwt.as_deref() == Some(*jwt) && signed_by(key, &c.sig),
        }
    }

    fn on_op(&mut self, op: ClientOp) {
        if self.connect.is_none() && !matches!(op, ClientOp::Connect(_)) {
            self.error("Authorization Violation");
            self.closed = true;
            return;
        }
        match &op {
            ClientOp::Connect(c) => {
                if !self.authorized(c) {
                    self.error("Authorization Violation");
                    self.closed = true;
                    return;
                }
                self.verbose = c.verbose;
                self.connect = Some((**c).clone());
            }
            ClientOp::Ping => {
                if self.answer_pings {
                    self.send(ServerOp::Pong);
                }
            }
            ClientOp::Pong => {}
            ClientOp::Subscribe(s) => {
                self.subs.insert(
                    s.sid.as_bytes().clone(),
                    Sub {
                        subject: s.subject.clone(),
                        queue: s.queue.clone(),
                        left: None,
                    },
                );
            }
            ClientOp::Unsubscribe(u) => match u.max_msgs {
                Some(max) if max > 0 => {
                    if let Some(sub) = self.subs.get_mut(u.sid.as_bytes()) {
                        sub.left = Some(max);
                    }
                }
                _ => {
                    self.subs.remove(u.sid.as_bytes());
                }
            },
            ClientOp::Publish(p) => self.route(p.clone()),
        }
        if self.verbose && !matches!(op, ClientOp::Ping | ClientOp::Pong) {
            self.send(ServerOp::Ok);
        }
        self.log.push_back(op);
    }

    fn route(&mut self, p: Publish) {
        let echo = self.connect.as_ref().is_some_and(|c| c.echo);
        let delivered = if echo {
            self.deliver(&p.subject, p.reply.as_deref(), p.headers.as_ref(), &p.payload)
        } else {
            0
        };
        let no_responders = self.connect.as_ref().is_some_and(|c| c.no_responders && c.headers);
        if delivered == 0 && no_responders {
            if let Some(reply) = p.reply {
                let mut status = HeaderMap::new();
                status.set_status(503, "").expect("status");
                self.deliver(&reply, None, Some(&status.to_headers()), &Bytes::new());
            }
        }
    }
}

/// The `INFO` of a plain server.
pub(super) fn info() -> ServerInfo {
    ServerInfo {
        server_id: "FAKE".into(),
        server_name: "fake".into(),
        version: "2.10.0".into(),
        proto: 1,
        headers: true,
        max_payload: 1024 * 1024,
        ..ServerInfo::default()
    }
}

impl Session for FakeServer {
    type Event = ClientOp;

    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        if self.closed {
            return;
        }
        self.input.extend_from_slice(&data);
        let mut at = 0;
        while !self.closed {
            // The frame borrows the input: copied into an op before acting on it.
            let decoded = match self.decoder.decode(&self.input[at..]) {
                Ok(Some((frame, len))) => Ok(Some((frame.to_op(), len))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match decoded {
                Ok(Some((op, len))) => {
                    at += len;
                    self.on_op(op);
                }
                Ok(None) => break,
                Err(_) => {
                    self.error("Parser Error");
                    self.closed = true;
                }
            }
        }
        self.input.drain(..at);
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.closed = true;
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<ClientOp> {
        self.log.pop_front()
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

#[test]
fn subject_matching() {
    assert!(matches(b"a.b", b"a.b"));
    assert!(matches(b"a.*", b"a.b"));
    assert!(!matches(b"a.*", b"a.b.c"));
    assert!(matches(b"a.>", b"a.b.c"));
    assert!(!matches(b"a.>", b"a"));
    assert!(!matches(b"a.b", b"a.c"));
}
