//! The role-typed codec: [`ClientCodec`] (decodes server ops, encodes client ops) and
//! [`ServerCodec`] (the reverse), one [`Codec`] over a [`Role`].

use std::marker::PhantomData;

use bytes::Bytes;

use super::decode::{Frame, Framer, OpSpec, CLIENT_OPS, SERVER_OPS};
use super::decode_fast;
use super::{
    encode, ClientOp, ConnectOptions, DecodeError, EncodeError, Headers, Limits, Message, OpName, Publish, ServerError,
    ServerInfo, ServerOp, Sid, Subscribe, Unsubscribe,
};
use crate::chassis::{IoArena, MonocoqueCodec, SegmentedBuffer};

/// Why a NATS codec failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input stream is malformed or over a limit (fatal).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An op cannot be encoded (nothing was written).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// One side of a NATS connection, naming what a [`Codec`] decodes and encodes:
/// [`ClientSide`] or [`ServerSide`]. Sealed: the two roles are the protocol's.
pub trait Role: sealed::RoleOps + 'static {}

/// The client role: decodes [`ServerOp`]s, encodes [`ClientOp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSide {}

/// The server role (a broker, a proxy, a test peer): decodes [`ClientOp`]s, encodes
/// [`ServerOp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSide {}

impl Role for ClientSide {}
impl Role for ServerSide {}

// The sealed half of `Role`: public in name only (outside the crate it can be neither
// named nor implemented), so it may speak of the crate's private framer types.
#[allow(private_interfaces)]
mod sealed {
    use super::*;

    /// What differs between the roles; the codec around it is shared.
    pub trait RoleOps {
        /// What this side receives.
        type Decoded: std::fmt::Debug;
        /// What this side sends.
        type Encoded: std::fmt::Debug;
        /// The ops this side accepts.
        const OPS: &'static [OpSpec];
        /// The fast path: a canonical frame whole in the first segment, or `None`
        /// (nothing consumed) for the general framer.
        fn fast(src: &mut SegmentedBuffer, limits: &Limits) -> Option<Self::Decoded>;
        /// A frame from the general framer, as an op.
        fn from_frame(frame: Frame) -> Result<Self::Decoded, DecodeError>;
        /// Writes `op`.
        fn encode(op: &Self::Encoded, limits: &Limits, dst: &mut IoArena) -> Result<(), EncodeError>;
    }

    impl RoleOps for ClientSide {
        type Decoded = ServerOp;
        type Encoded = ClientOp;
        const OPS: &'static [OpSpec] = SERVER_OPS;

        #[inline]
        fn fast(src: &mut SegmentedBuffer, limits: &Limits) -> Option<ServerOp> {
            decode_fast::server_op(src, limits)
        }

        #[inline]
        fn from_frame(frame: Frame) -> Result<ServerOp, DecodeError> {
            server_op(frame)
        }

        fn encode(op: &ClientOp, limits: &Limits, dst: &mut IoArena) -> Result<(), EncodeError> {
            match op {
                ClientOp::Publish(p) => encode::publish(
                    dst,
                    limits,
                    &p.subject,
                    p.reply.as_deref(),
                    p.headers.as_ref(),
                    &p.payload,
                ),
                ClientOp::Subscribe(s) => {
                    encode::subscribe(dst, limits, &s.subject, s.queue.as_deref(), s.sid.as_bytes())
                }
                ClientOp::Unsubscribe(u) => encode::unsubscribe(dst, limits, u.sid.as_bytes(), u.max_msgs),
                ClientOp::Connect(c) => encode::json(dst, limits, b"CONNECT", c.as_ref()),
                ClientOp::Ping => {
                    dst.put_slice(b"PING\r\n");
                    Ok(())
                }
                ClientOp::Pong => {
                    dst.put_slice(b"PONG\r\n");
                    Ok(())
                }
            }
        }
    }

    impl RoleOps for ServerSide {
        type Decoded = ClientOp;
        type Encoded = ServerOp;
        const OPS: &'static [OpSpec] = CLIENT_OPS;

        #[inline]
        fn fast(src: &mut SegmentedBuffer, limits: &Limits) -> Option<ClientOp> {
            decode_fast::client_op(src, limits)
        }

        #[inline]
        fn from_frame(frame: Frame) -> Result<ClientOp, DecodeError> {
            client_op(frame)
        }

        fn encode(op: &ServerOp, limits: &Limits, dst: &mut IoArena) -> Result<(), EncodeError> {
            match op {
                ServerOp::Message(m) => encode::message(
                    dst,
                    limits,
                    &m.subject,
                    m.sid.as_bytes(),
                    m.reply.as_deref(),
                    m.headers.as_ref(),
                    &m.payload,
                ),
                ServerOp::Info(info) => encode::json(dst, limits, b"INFO", info.as_ref()),
                ServerOp::Ok => {
                    dst.put_slice(b"+OK\r\n");
                    Ok(())
                }
                ServerOp::Err(e) => encode::err(dst, limits, e.text()),
                ServerOp::Ping => {
                    dst.put_slice(b"PING\r\n");
                    Ok(())
                }
                ServerOp::Pong => {
                    dst.put_slice(b"PONG\r\n");
                    Ok(())
                }
            }
        }
    }
}

/// A NATS codec for one side of a connection, typed by its [`Role`]: use [`ClientCodec`]
/// or [`ServerCodec`].
///
/// Decoding is resumable: a control line whose payload has not fully arrived is parsed
/// once and kept, and a payload arriving in many segments is copied once as it arrives.
/// Subjects, replies, sids, headers and payloads are views of the received segments
/// when the frame lies inside one.
pub struct Codec<R: Role> {
    framer: Framer,
    role: PhantomData<R>,
}

impl<R: Role> std::fmt::Debug for Codec<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("role", &std::any::type_name::<R>())
            .field("framer", &self.framer)
            .finish()
    }
}

/// The client side of a connection: decodes [`ServerOp`]s, encodes [`ClientOp`]s.
///
/// ```
/// use bytes::Bytes;
/// use monocoque_proto::{IoArena, MonocoqueCodec, SegmentedBuffer};
/// use monocoque_proto::nats::{ClientCodec, ClientOp, Publish, ServerOp};
///
/// let mut codec = ClientCodec::default();
/// let mut out = IoArena::new();
/// let publish = Publish { subject: "greet".into(), reply: None, headers: None, payload: "hi".into() };
/// codec.encode(&ClientOp::Publish(publish), &mut out).unwrap();
/// assert_eq!(out.to_vec(), b"PUB greet 2\r\nhi\r\n");
///
/// let mut src = SegmentedBuffer::new();
/// src.push_slice(b"MSG greet 1 2\r\nh");
/// assert_eq!(codec.decode(&mut src).unwrap(), None); // the payload is incomplete
/// src.push_slice(b"i\r\nPING\r\n");
/// let Some(ServerOp::Message(msg)) = codec.decode(&mut src).unwrap() else { panic!() };
/// assert_eq!((&msg.subject[..], msg.sid.as_u64(), &msg.payload[..]), (&b"greet"[..], Some(1), &b"hi"[..]));
/// assert_eq!(codec.decode(&mut src).unwrap(), Some(ServerOp::Ping));
/// ```
pub type ClientCodec = Codec<ClientSide>;

/// The server side of a connection (a broker, a proxy, a test peer): decodes
/// [`ClientOp`]s, encodes [`ServerOp`]s.
pub type ServerCodec = Codec<ServerSide>;

impl<R: Role> Default for Codec<R> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<R: Role> Codec<R> {
    /// A codec with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            framer: Framer::new(R::OPS, limits),
            role: PhantomData,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.framer.limits
    }

    /// Whether part of a frame was taken from the input but not yet returned.
    pub fn is_mid_frame(&self) -> bool {
        self.framer.is_mid_frame()
    }

    /// Forgets any partial frame (the connection was replaced).
    pub fn reset(&mut self) {
        self.framer.reset();
    }

    /// Decodes the next op the other side sent from the front of `src`.
    pub fn decode_op(&mut self, src: &mut SegmentedBuffer) -> Result<Option<R::Decoded>, DecodeError> {
        if self.framer.is_idle() {
            if let Some(op) = R::fast(src, &self.framer.limits) {
                return Ok(Some(op));
            }
        }
        self.decode_framed(src)
    }

    /// Every frame the fast path leaves: through the general framer.
    #[inline(never)]
    fn decode_framed(&mut self, src: &mut SegmentedBuffer) -> Result<Option<R::Decoded>, DecodeError> {
        let Some(frame) = self.framer.next(src)? else {
            return Ok(None);
        };
        R::from_frame(frame).map(Some)
    }

    /// Writes `op`.
    pub fn encode_op(&self, op: &R::Encoded, dst: &mut IoArena) -> Result<(), EncodeError> {
        R::encode(op, self.limits(), dst)
    }
}

impl ClientCodec {
    /// Adopts the server's `max_payload` (from `INFO`) for both directions. A negative
    /// or zero value (no limit announced) leaves the limit unchanged.
    pub fn set_max_payload(&mut self, max_payload: i64) {
        if let Ok(max) = usize::try_from(max_payload) {
            if max > 0 {
                self.framer.limits.max_payload = max;
            }
        }
    }

    /// Adopts the smaller of the server's `max_payload` (from `INFO`) and the client's
    /// own `ceiling`, for both directions: a server that announces a huge limit cannot
    /// make the client accept (and hold) a message past what it was configured for. A
    /// negative or zero announcement (no limit) keeps the current limit, capped too.
    /// Returns the limit now in force.
    pub fn adopt_max_payload(&mut self, announced: i64, ceiling: usize) -> usize {
        let current = self.framer.limits.max_payload;
        let server = usize::try_from(announced).ok().filter(|&m| m > 0).unwrap_or(current);
        let effective = server.min(ceiling.max(1));
        self.framer.limits.max_payload = effective;
        effective
    }

    /// Writes a `PUB` (or, with headers, an `HPUB`) without building a [`Publish`]: the
    /// publishing hot path.
    pub fn encode_publish(
        &self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
        dst: &mut IoArena,
    ) -> Result<(), EncodeError> {
        encode::publish(dst, self.limits(), subject, reply, headers, payload)
    }
}

impl ServerCodec {
    /// Writes a `MSG` (or, with headers, an `HMSG`) without building a [`Message`]: the
    /// delivery hot path.
    pub fn encode_message(
        &self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
        dst: &mut IoArena,
    ) -> Result<(), EncodeError> {
        encode::message(dst, self.limits(), subject, sid, reply, headers, payload)
    }
}

impl<R: Role> MonocoqueCodec for Codec<R> {
    type Decoded = R::Decoded;
    type Encoded = R::Encoded;
    type Error = CodecError;

    fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<R::Decoded>, CodecError> {
        Ok(self.decode_op(src)?)
    }

    fn encode(&mut self, item: &R::Encoded, dst: &mut IoArena) -> Result<(), CodecError> {
        Ok(self.encode_op(item, dst)?)
    }
}

fn field_count(frame: &Frame, min: usize) -> Result<bool, DecodeError> {
    match frame.fields.count {
        n if n == min => Ok(false),
        n if n == min + 1 => Ok(true),
        count => Err(DecodeError::WrongFieldCount { op: frame.op, count }),
    }
}

/// A frame from a client, as an op (the framer only returns ops in `CLIENT_OPS`).
#[inline]
fn client_op(frame: Frame) -> Result<ClientOp, DecodeError> {
    let (f, line) = (&frame.fields, &frame.line);
    Ok(match frame.op {
        OpName::Pub | OpName::Hpub => {
            // The framer checked the count: 2 or 3 for PUB, 3 or 4 for HPUB.
            let with_reply = f.count == if frame.op == OpName::Pub { 3 } else { 4 };
            ClientOp::Publish(Publish {
                subject: f.get(line, 0),
                reply: with_reply.then(|| f.get(line, 1)),
                headers: frame.headers.map(Headers::from_raw),
                payload: frame.payload,
            })
        }
        OpName::Sub => {
            let queue = field_count(&frame, 2)?;
            ClientOp::Subscribe(Subscribe {
                subject: f.get(line, 0),
                queue: queue.then(|| f.get(line, 1)),
                sid: Sid::from_bytes(f.get(line, f.count - 1)),
            })
        }
        OpName::Unsub => {
            let max = field_count(&frame, 1)?;
            let max_msgs = if max {
                Some(super::decode::parse_size(f.raw(line, 1))? as u64)
            } else {
                None
            };
            ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_bytes(f.get(line, 0)),
                max_msgs,
            })
        }
        OpName::Connect => {
            let opts: ConnectOptions =
                serde_json::from_slice(&line[frame.args..]).map_err(|e| DecodeError::json(OpName::Connect, &e))?;
            ClientOp::Connect(Box::new(opts))
        }
        OpName::Ping => ClientOp::Ping,
        OpName::Pong => ClientOp::Pong,
        // Not in CLIENT_OPS: never returned by the framer of a server codec.
        OpName::Info | OpName::Msg | OpName::Hmsg | OpName::Ok | OpName::Err => return Err(DecodeError::UnknownOp),
    })
}

/// A frame from a server, as an op (the framer only returns ops in `SERVER_OPS`).
#[inline]
fn server_op(frame: Frame) -> Result<ServerOp, DecodeError> {
    let (f, line) = (&frame.fields, &frame.line);
    Ok(match frame.op {
        OpName::Msg | OpName::Hmsg => {
            // The framer checked the count: 3 or 4 for MSG, 4 or 5 for HMSG.
            let with_reply = f.count == if frame.op == OpName::Msg { 4 } else { 5 };
            ServerOp::Message(Message {
                subject: f.get(line, 0),
                sid: Sid::from_bytes(f.get(line, 1)),
                reply: with_reply.then(|| f.get(line, 2)),
                headers: frame.headers.map(Headers::from_raw),
                payload: frame.payload,
            })
        }
        OpName::Info => {
            let info: ServerInfo =
                serde_json::from_slice(&line[frame.args..]).map_err(|e| DecodeError::json(OpName::Info, &e))?;
            ServerOp::Info(Box::new(info))
        }
        OpName::Err => ServerOp::Err(ServerError::new(line.slice(frame.args..))),
        OpName::Ok => ServerOp::Ok,
        OpName::Ping => ServerOp::Ping,
        OpName::Pong => ServerOp::Pong,
        // Not in SERVER_OPS: never returned by the framer of a client codec.
        OpName::Connect | OpName::Pub | OpName::Hpub | OpName::Sub | OpName::Unsub => {
            return Err(DecodeError::UnknownOp)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::{HeaderMap, StatusCode};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn server_ops(limits: Limits, input: &[u8]) -> Result<Vec<ServerOp>, DecodeError> {
        let mut codec = ClientCodec::new(limits);
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        let mut out = Vec::new();
        while let Some(op) = codec.decode_op(&mut src)? {
            out.push(op);
        }
        assert!(src.is_empty(), "{} bytes left", src.len());
        assert!(!codec.is_mid_frame());
        Ok(out)
    }

    fn client_ops(limits: Limits, input: &[u8]) -> Result<Vec<ClientOp>, DecodeError> {
        let mut codec = ServerCodec::new(limits);
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        let mut out = Vec::new();
        while let Some(op) = codec.decode_op(&mut src)? {
            out.push(op);
        }
        assert!(src.is_empty(), "{} bytes left", src.len());
        assert!(!codec.is_mid_frame());
        Ok(out)
    }

    /// Decoding `input` needs more bytes and produces nothing yet.
    fn needs_more_from_client(limits: Limits, input: &[u8]) {
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        assert_eq!(ServerCodec::new(limits).decode_op(&mut src), Ok(None));
    }

    fn needs_more_from_server(limits: Limits, input: &[u8]) {
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        assert_eq!(ClientCodec::new(limits).decode_op(&mut src), Ok(None));
    }

    fn from_server(input: &[u8]) -> ServerOp {
        let mut ops = server_ops(Limits::default(), input).unwrap();
        assert_eq!(ops.len(), 1, "{ops:?}");
        ops.pop().unwrap()
    }

    fn from_client(input: &[u8]) -> ClientOp {
        let mut ops = client_ops(Limits::default(), input).unwrap();
        assert_eq!(ops.len(), 1, "{ops:?}");
        ops.pop().unwrap()
    }

    fn server_err(input: &[u8]) -> DecodeError {
        server_ops(Limits::default(), input).unwrap_err()
    }

    fn client_err(input: &[u8]) -> DecodeError {
        client_ops(Limits::default(), input).unwrap_err()
    }

    fn publish(subject: &'static str, reply: Option<&'static str>, payload: &'static str) -> ClientOp {
        ClientOp::Publish(Publish {
            subject: b(subject),
            reply: reply.map(b),
            headers: None,
            payload: b(payload),
        })
    }

    fn msg(subject: &'static str, sid: &'static str, reply: Option<&'static str>, payload: &'static str) -> ServerOp {
        ServerOp::Message(Message {
            subject: b(subject),
            sid: Sid::from_bytes(b(sid)),
            reply: reply.map(b),
            headers: None,
            payload: b(payload),
        })
    }

    // -- every client op, as a server decodes it -------------------------------------

    #[test]
    fn pub_with_and_without_reply() {
        assert_eq!(from_client(b"PUB foo 5\r\nhello\r\n"), publish("foo", None, "hello"));
        assert_eq!(
            from_client(b"PUB foo _INBOX.1 5\r\nhello\r\n"),
            publish("foo", Some("_INBOX.1"), "hello")
        );
        assert_eq!(from_client(b"PUB foo 0\r\n\r\n"), publish("foo", None, ""));
        // Binary payloads may hold CRLF.
        assert_eq!(
            from_client(b"PUB foo 4\r\n\r\n\r\n\r\n"),
            publish("foo", None, "\r\n\r\n")
        );
    }

    #[test]
    fn hpub_splits_headers_from_payload() {
        let op = from_client(b"HPUB foo reply 18 23\r\nNATS/1.0\r\nA: 1\r\n\r\nhello\r\n");
        let ClientOp::Publish(p) = op else { panic!("{op:?}") };
        assert_eq!(p.subject, "foo");
        assert_eq!(p.reply.as_deref(), Some(&b"reply"[..]));
        let h = p.headers.unwrap();
        assert_eq!(h.as_bytes(), "NATS/1.0\r\nA: 1\r\n\r\n");
        assert_eq!(h.get("a").unwrap(), "1");
        assert_eq!(p.payload, "hello");
        let ClientOp::Publish(p) = from_client(b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n") else {
            panic!()
        };
        assert_eq!(p.headers.unwrap().len(), 12);
        assert!(p.payload.is_empty());
        // A header size of 0 is accepted, as nats-server does (it means no headers).
        let ClientOp::Publish(p) = from_client(b"HPUB foo 0 2\r\nhi\r\n") else {
            panic!()
        };
        assert!(p.headers.unwrap().is_empty());
    }

    #[test]
    fn sub_with_and_without_queue() {
        assert_eq!(
            from_client(b"SUB foo.* 1\r\n"),
            ClientOp::Subscribe(Subscribe {
                subject: b("foo.*"),
                queue: None,
                sid: Sid::from_u64(1)
            })
        );
        assert_eq!(
            from_client(b"SUB foo.> workers 22\r\n"),
            ClientOp::Subscribe(Subscribe {
                subject: b("foo.>"),
                queue: Some(b("workers")),
                sid: Sid::from_u64(22)
            })
        );
        // Sids are tokens, not only numbers.
        let ClientOp::Subscribe(s) = from_client(b"SUB foo abc\r\n") else {
            panic!()
        };
        assert_eq!(s.sid.as_bytes(), "abc");
        assert_eq!(s.sid.as_u64(), None);
    }

    #[test]
    fn unsub_with_and_without_max() {
        assert_eq!(
            from_client(b"UNSUB 1\r\n"),
            ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_u64(1),
                max_msgs: None
            })
        );
        assert_eq!(
            from_client(b"UNSUB 1 10\r\n"),
            ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_u64(1),
                max_msgs: Some(10)
            })
        );
        assert_eq!(client_err(b"UNSUB 1 x\r\n"), DecodeError::InvalidSize);
        assert_eq!(client_err(b"UNSUB 1 1234567890\r\n"), DecodeError::SizeTooLong);
    }

    #[test]
    fn connect_json() {
        let op = from_client(
            br#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"n","lang":"go","version":"1.31.0","protocol":1,"echo":true,"headers":true,"no_responders":true,"user":"u","pass":"p"}"#
                .iter()
                .chain(b"\r\n")
                .copied()
                .collect::<Vec<u8>>()
                .as_slice(),
        );
        let ClientOp::Connect(c) = op else { panic!("{op:?}") };
        assert!(!c.verbose && c.headers && c.no_responders && c.echo);
        assert_eq!(
            (c.user.as_deref(), c.pass.as_deref(), c.name.as_deref()),
            (Some("u"), Some("p"), Some("n"))
        );
        // No space needed before the JSON, as in nats-server.
        assert!(matches!(from_client(b"connect{}\r\n"), ClientOp::Connect(_)));
        assert!(matches!(from_client(b"CONNECT \t {} \r\n"), ClientOp::Connect(_)));
        assert!(matches!(
            client_err(b"CONNECT {\"verbose\":1}\r\n"),
            DecodeError::InvalidJson {
                op: OpName::Connect,
                category: serde_json::error::Category::Data,
                ..
            }
        ));
        assert!(matches!(
            client_err(b"CONNECT\r\n"),
            DecodeError::InvalidJson {
                op: OpName::Connect,
                category: serde_json::error::Category::Eof,
                ..
            }
        ));
        assert!(matches!(
            client_err(b"CONNECT {} x\r\n"),
            DecodeError::InvalidJson {
                category: serde_json::error::Category::Syntax,
                ..
            }
        ));
    }

    #[test]
    fn ping_pong_both_ways() {
        assert_eq!(from_client(b"PING\r\n"), ClientOp::Ping);
        assert_eq!(from_client(b"PONG\r\n"), ClientOp::Pong);
        assert_eq!(from_server(b"PING\r\n"), ServerOp::Ping);
        assert_eq!(from_server(b"PONG\r\n"), ServerOp::Pong);
        // Like nats-server, anything up to the end of the line is ignored.
        assert_eq!(from_client(b"ping extra\r\n"), ClientOp::Ping);
        assert_eq!(from_server(b"+OK whatever\n"), ServerOp::Ok);
    }

    // -- every server op, as a client decodes it -------------------------------------

    #[test]
    fn msg_with_and_without_reply() {
        assert_eq!(from_server(b"MSG foo 1 5\r\nhello\r\n"), msg("foo", "1", None, "hello"));
        assert_eq!(
            from_server(b"MSG foo 1 reply.to 5\r\nhello\r\n"),
            msg("foo", "1", Some("reply.to"), "hello")
        );
    }

    #[test]
    fn hmsg_and_no_responders() {
        let op = from_server(b"HMSG _INBOX.x.1 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let ServerOp::Message(m) = op else { panic!("{op:?}") };
        assert!(m.is_no_responders());
        assert_eq!(m.headers.as_ref().unwrap().status(), Some(StatusCode::NoResponders));
        assert_eq!(m.sid.as_u64(), Some(9));
        let op = from_server(b"HMSG foo 1 r 28 30\r\nNATS/1.0 404 No Messages\r\n\r\nhi\r\n");
        let ServerOp::Message(m) = op else { panic!("{op:?}") };
        assert!(!m.is_no_responders());
        assert_eq!(m.reply.as_deref(), Some(&b"r"[..]));
        let h = m.headers.unwrap();
        assert_eq!(h.status(), Some(StatusCode::NotFound));
        assert_eq!(h.description().unwrap(), "No Messages");
        assert_eq!(m.payload, "hi");
    }

    #[test]
    fn info_json() {
        let op = from_server(
            b"INFO {\"server_id\":\"S\",\"version\":\"2.10.0\",\"headers\":true,\"max_payload\":1048576,\"nonce\":\"n\",\"connect_urls\":[\"a:1\"],\"new\":[]}\r\n",
        );
        let ServerOp::Info(info) = op else { panic!("{op:?}") };
        assert_eq!(info.server_id, "S");
        assert_eq!(info.max_payload, 1 << 20);
        assert_eq!(info.nonce.as_deref(), Some("n"));
        assert_eq!(info.connect_urls, ["a:1"]);
        assert!(matches!(
            server_err(b"INFO {\r\n"),
            DecodeError::InvalidJson { op: OpName::Info, .. }
        ));
    }

    #[test]
    fn ok_and_err() {
        assert_eq!(from_server(b"+OK\r\n"), ServerOp::Ok);
        let ServerOp::Err(e) = from_server(b"-ERR 'Authorization Violation'\r\n") else {
            panic!()
        };
        assert_eq!(e.text(), "'Authorization Violation'");
        assert_eq!(e.message(), "Authorization Violation");
        assert_eq!(e.kind(), crate::nats::ServerErrorKind::AuthorizationViolation);
        // Leading blanks are skipped, the rest is kept as it is (a CR inside included).
        let ServerOp::Err(e) = from_server(b"-err \t 'a \r b' \r\n") else {
            panic!()
        };
        assert_eq!(e.text(), "'a \r b' ");
        let ServerOp::Err(e) = from_server(b"-ERR \r\n") else {
            panic!()
        };
        assert_eq!(e.text(), "");
        assert_eq!(server_err(b"-ERR\r\n"), DecodeError::UnknownOp);
    }

    // -- parse rules ---------------------------------------------------------------

    #[test]
    fn op_names_are_case_insensitive() {
        assert_eq!(from_client(b"pub foo 1\r\nx\r\n"), publish("foo", None, "x"));
        assert_eq!(from_client(b"pUb foo 1\r\nx\r\n"), publish("foo", None, "x"));
        assert!(matches!(from_client(b"hPuB foo 0 1\r\nx\r\n"), ClientOp::Publish(_)));
        assert!(matches!(from_client(b"sUb foo 1\r\n"), ClientOp::Subscribe(_)));
        assert!(matches!(from_client(b"UnSuB 1\r\n"), ClientOp::Unsubscribe(_)));
        assert_eq!(from_client(b"pInG\r\n"), ClientOp::Ping);
        assert_eq!(from_server(b"msg foo 1 1\r\nx\r\n"), msg("foo", "1", None, "x"));
        assert!(matches!(from_server(b"hmsg foo 1 0 1\r\nx\r\n"), ServerOp::Message(_)));
        assert!(matches!(from_server(b"info {}\r\n"), ServerOp::Info(_)));
        assert_eq!(from_server(b"+ok\r\n"), ServerOp::Ok);
        assert_eq!(from_server(b"pOnG\r\n"), ServerOp::Pong);
    }

    #[test]
    fn fields_are_separated_by_runs_of_spaces_and_tabs() {
        assert_eq!(
            from_client(b"PUB\t \tfoo  \t bar\t\t3 \t\r\nabc\r\n"),
            publish("foo", Some("bar"), "abc")
        );
        assert_eq!(
            from_server(b"MSG   foo\t1\t\t reply  3\r\nabc\r\n"),
            msg("foo", "1", Some("reply"), "abc")
        );
    }

    #[test]
    fn optional_fields_are_told_apart_by_count() {
        assert_eq!(
            client_err(b"PUB foo\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Pub,
                count: 1
            }
        );
        assert_eq!(
            client_err(b"PUB a b c 1\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Pub,
                count: 4
            }
        );
        assert_eq!(
            client_err(b"PUB \r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Pub,
                count: 0
            }
        );
        assert_eq!(
            client_err(b"HPUB foo 1\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Hpub,
                count: 2
            }
        );
        assert_eq!(
            client_err(b"HPUB a b c d e\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Hpub,
                count: 5
            }
        );
        assert_eq!(
            client_err(b"SUB foo\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Sub,
                count: 1
            }
        );
        assert_eq!(
            client_err(b"SUB a b c d\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Sub,
                count: 4
            }
        );
        assert_eq!(
            client_err(b"UNSUB \r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Unsub,
                count: 0
            }
        );
        assert_eq!(
            client_err(b"UNSUB 1 2 3\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Unsub,
                count: 3
            }
        );
        assert_eq!(
            server_err(b"MSG foo 1\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Msg,
                count: 2
            }
        );
        assert_eq!(
            server_err(b"MSG a b c d e\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Msg,
                count: 5
            }
        );
        assert_eq!(
            server_err(b"HMSG a 1 2\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Hmsg,
                count: 3
            }
        );
        assert_eq!(
            server_err(b"HMSG a b c d e f g\r\n"),
            DecodeError::WrongFieldCount {
                op: OpName::Hmsg,
                count: 7
            }
        );
    }

    #[test]
    fn bare_lf_ends_a_control_line() {
        assert_eq!(from_client(b"PUB foo 2\nhi\r\n"), publish("foo", None, "hi"));
        assert!(matches!(from_client(b"SUB foo 1\n"), ClientOp::Subscribe(_)));
        assert_eq!(from_client(b"PING\n"), ClientOp::Ping);
        assert_eq!(from_server(b"MSG foo 1 2\nhi\r\n"), msg("foo", "1", None, "hi"));
        assert!(matches!(from_server(b"INFO {}\n"), ServerOp::Info(_)));
        let ServerOp::Err(e) = from_server(b"-ERR 'x'\n") else {
            panic!()
        };
        assert_eq!(e.text(), "'x'");
    }

    #[test]
    fn crlf_is_required_after_a_payload() {
        assert_eq!(client_err(b"PUB foo 2\r\nhi\n"), DecodeError::MissingPayloadCrlf);
        assert_eq!(client_err(b"PUB foo 2\r\nhix\r\n"), DecodeError::MissingPayloadCrlf);
        assert_eq!(client_err(b"PUB foo 2\r\nhi\rx"), DecodeError::MissingPayloadCrlf);
        assert_eq!(
            server_err(b"MSG foo 1 2\r\nhiPING\r\n"),
            DecodeError::MissingPayloadCrlf
        );
        // A wrong byte is an error as soon as it arrives, not when the next one does.
        assert_eq!(client_err(b"PUB foo 2\r\nhix"), DecodeError::MissingPayloadCrlf);
    }

    #[test]
    fn cr_inside_a_field_is_rejected() {
        assert_eq!(client_err(b"PUB fo\ro 1\r\nx\r\n"), DecodeError::CarriageReturnInField);
        assert_eq!(client_err(b"PUB foo 1\r\r\nx\r\n"), DecodeError::CarriageReturnInField);
        assert_eq!(client_err(b"SUB foo \r 1\r\n"), DecodeError::CarriageReturnInField);
    }

    #[test]
    fn unknown_ops_are_rejected_at_once() {
        // Without waiting for the end of the line.
        assert_eq!(client_err(b"X"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"PUX"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"PUB\r\n"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"\r\n"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"\n"), DecodeError::UnknownOp);
        assert_eq!(client_err(b" PING\r\n"), DecodeError::UnknownOp);
        // Each role accepts only what its peer sends.
        assert_eq!(client_err(b"MSG foo 1 1\r\nx\r\n"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"INFO {}\r\n"), DecodeError::UnknownOp);
        assert_eq!(client_err(b"+OK\r\n"), DecodeError::UnknownOp);
        assert_eq!(server_err(b"PUB foo 1\r\nx\r\n"), DecodeError::UnknownOp);
        assert_eq!(server_err(b"CONNECT {}\r\n"), DecodeError::UnknownOp);
        assert_eq!(server_err(b"SUB foo 1\r\n"), DecodeError::UnknownOp);
        // A prefix of an op is not an error yet.
        needs_more_from_client(Limits::default(), b"CONNEC");
        needs_more_from_client(Limits::default(), b"p");
        needs_more_from_server(Limits::default(), b"-er");
    }

    #[test]
    fn invalid_sizes() {
        assert_eq!(client_err(b"PUB foo -1\r\n"), DecodeError::InvalidSize);
        assert_eq!(client_err(b"PUB foo 1x\r\n"), DecodeError::InvalidSize);
        assert_eq!(client_err(b"PUB foo 0x10\r\n"), DecodeError::InvalidSize);
        assert_eq!(client_err(b"PUB foo 0000000001\r\n"), DecodeError::SizeTooLong);
        assert_eq!(client_err(b"HPUB foo x 1\r\n"), DecodeError::InvalidSize);
        assert_eq!(client_err(b"HPUB foo 1 x\r\n"), DecodeError::InvalidSize);
        assert_eq!(
            client_err(b"HPUB foo 3 2\r\n"),
            DecodeError::HeadersExceedTotal { headers: 3, total: 2 }
        );
        assert_eq!(server_err(b"MSG foo 1 99999999999\r\n"), DecodeError::SizeTooLong);
        assert_eq!(
            server_err(b"HMSG foo 1 5 4\r\n"),
            DecodeError::HeadersExceedTotal { headers: 5, total: 4 }
        );
        // Nine digits are fine.
        assert_eq!(from_client(b"PUB foo 000000001\r\nx\r\n"), publish("foo", None, "x"));
    }

    // -- limits --------------------------------------------------------------------

    #[test]
    fn control_line_limit() {
        let limits = Limits {
            max_control_line: 16,
            ..Limits::default()
        };
        // 16 bytes of line are fine, with either line ending.
        assert_eq!(client_ops(limits, b"PUB abcdefghij 0\r\n\r\n").unwrap().len(), 1);
        assert_eq!(client_ops(limits, b"PUB abcdefghij 0\n\r\n").unwrap().len(), 1);
        assert_eq!(
            client_ops(limits, b"PUB abcdefghijk 0\r\n\r\n"),
            Err(DecodeError::ControlLineTooLong { max: 16 })
        );
        // Without the end of the line: refused once 18 bytes (16 + a possible CR + one
        // more) are buffered.
        needs_more_from_client(limits, b"SUB abcdefghijklm");
        assert_eq!(
            client_ops(limits, b"SUB abcdefghijklmn"),
            Err(DecodeError::ControlLineTooLong { max: 16 })
        );
        assert_eq!(
            server_ops(limits, b"-ERR 'a long error'\r\n"),
            Err(DecodeError::ControlLineTooLong { max: 16 })
        );
        // PING with trailing bytes is a control line too.
        assert_eq!(
            client_ops(limits, b"PING 0123456789abc\r\n"),
            Err(DecodeError::ControlLineTooLong { max: 16 })
        );
        // INFO and CONNECT have their own limit.
        assert_eq!(
            server_ops(limits, b"INFO {\"server_id\":\"abcdef\"}\r\n")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn json_line_limit() {
        let limits = Limits {
            max_json_line: 10,
            ..Limits::default()
        };
        assert_eq!(client_ops(limits, b"CONNECT {}\r\n").unwrap().len(), 1);
        needs_more_from_server(limits, b"INFO {\"a\":1");
        assert_eq!(
            client_ops(limits, b"CONNECT  {}\r\n"),
            Err(DecodeError::JsonLineTooLong {
                op: OpName::Connect,
                max: 10
            })
        );
        assert_eq!(
            server_ops(limits, b"INFO {\"a\":12"),
            Err(DecodeError::JsonLineTooLong {
                op: OpName::Info,
                max: 10
            })
        );
    }

    #[test]
    fn payload_limit_is_checked_before_the_payload_arrives() {
        let limits = Limits {
            max_payload: 8,
            ..Limits::default()
        };
        assert_eq!(client_ops(limits, b"PUB foo 8\r\n12345678\r\n").unwrap().len(), 1);
        assert_eq!(
            client_ops(limits, b"PUB foo 9\r\n"),
            Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
        );
        // Headers count.
        assert_eq!(
            client_ops(limits, b"HPUB foo 4 9\r\n"),
            Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
        );
        assert_eq!(
            server_ops(limits, b"MSG foo 1 999999999\r\n"),
            Err(DecodeError::PayloadTooLarge {
                size: 999_999_999,
                max: 8
            })
        );
        assert_eq!(
            server_ops(limits, b"HMSG foo 1 0 9\r\n"),
            Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
        );
        let mut codec = ClientCodec::new(limits);
        codec.set_max_payload(1 << 20);
        assert_eq!(codec.limits().max_payload, 1 << 20);
        codec.set_max_payload(-1);
        assert_eq!(codec.limits().max_payload, 1 << 20);
    }

    #[test]
    fn the_client_ceiling_caps_the_servers_max_payload() {
        let mut codec = ClientCodec::default();
        // The smaller of the two is in force, whichever side it comes from.
        assert_eq!(codec.adopt_max_payload(1_000_000_000, 64 << 20), 64 << 20);
        assert_eq!(codec.limits().max_payload, 64 << 20);
        assert_eq!(codec.adopt_max_payload(8 << 20, 64 << 20), 8 << 20);
        // No announcement keeps the current limit, still capped.
        assert_eq!(codec.adopt_max_payload(0, 64 << 20), 8 << 20);
        assert_eq!(codec.adopt_max_payload(-1, 4 << 20), 4 << 20);
        // A MSG over the ceiling is refused on its control line.
        codec.adopt_max_payload(1_000_000_000, 1024);
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"MSG foo 1 999999999\r\n");
        assert_eq!(
            codec.decode_op(&mut src).unwrap_err(),
            DecodeError::PayloadTooLarge {
                size: 999_999_999,
                max: 1024
            }
        );
    }

    // -- zero copy and resumption --------------------------------------------------------

    #[test]
    fn fields_and_payloads_are_views_of_the_segment() {
        let seg = Bytes::from_static(b"HPUB foo bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        let mut src = SegmentedBuffer::from(seg.clone());
        let op = ServerCodec::default().decode_op(&mut src).unwrap().unwrap();
        let ClientOp::Publish(p) = op else { panic!() };
        assert_eq!(p.subject.as_ptr(), seg[5..].as_ptr());
        assert_eq!(p.reply.unwrap().as_ptr(), seg[9..].as_ptr());
        assert_eq!(p.headers.unwrap().as_bytes().as_ptr(), seg[20..].as_ptr());
        assert_eq!(p.payload.as_ptr(), seg[32..].as_ptr());
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let input: &[u8] = b"INFO {\"server_id\":\"x\"}\r\nMSG a 1 3\r\nabc\r\n+OK\r\nHMSG b 2 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'x'\r\nPING\nPONG\r\nmsg c 3 0\n\r\n";
        let whole = server_ops(Limits::default(), input).unwrap();
        assert_eq!(whole.len(), 8);
        for cut in 0..=input.len() {
            let mut codec = ClientCodec::default();
            let mut src = SegmentedBuffer::new();
            let mut out = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                src.push_slice(part);
                while let Some(op) = codec.decode_op(&mut src).unwrap() {
                    out.push(op);
                }
            }
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_parsed_control_line_is_kept_while_the_payload_arrives() {
        let mut codec = ServerCodec::default();
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"PUB foo 1000\r\n");
        assert_eq!(codec.decode_op(&mut src).unwrap(), None);
        // The line was consumed: it is not parsed again.
        assert!(src.is_empty());
        assert!(codec.is_mid_frame());
        for _ in 0..1000 {
            src.push_slice(b"x");
            assert_eq!(codec.decode_op(&mut src).unwrap(), None);
            // Each byte is taken as it arrives.
            assert!(src.is_empty());
        }
        src.push_slice(b"\r");
        assert_eq!(codec.decode_op(&mut src).unwrap(), None);
        src.push_slice(b"\n");
        let Some(ClientOp::Publish(p)) = codec.decode_op(&mut src).unwrap() else {
            panic!()
        };
        assert_eq!(p.payload.len(), 1000);
        assert!(!codec.is_mid_frame());
        codec.reset();
    }

    #[test]
    fn a_line_arriving_byte_by_byte_is_scanned_once() {
        let input = b"SUB a.very.long.subject.name.indeed q 1\r\n";
        let mut codec = ServerCodec::default();
        let mut src = SegmentedBuffer::new();
        for (i, byte) in input.iter().enumerate() {
            src.push_slice(std::slice::from_ref(byte));
            let got = codec.decode_op(&mut src).unwrap();
            assert_eq!(got.is_some(), i == input.len() - 1);
        }
    }

    // -- encoding ----------------------------------------------------------------------

    fn client_wire(op: &ClientOp) -> Vec<u8> {
        let mut a = IoArena::new();
        ClientCodec::default().encode_op(op, &mut a).unwrap();
        a.to_vec()
    }

    fn server_wire(op: &ServerOp) -> Vec<u8> {
        let mut a = IoArena::new();
        ServerCodec::default().encode_op(op, &mut a).unwrap();
        a.to_vec()
    }

    #[test]
    fn encodes_every_client_op() {
        assert_eq!(client_wire(&publish("a", None, "hi")), b"PUB a 2\r\nhi\r\n");
        assert_eq!(client_wire(&publish("a", Some("r"), "")), b"PUB a r 0\r\n\r\n");
        let mut map = HeaderMap::new();
        map.insert("K", "v").unwrap();
        let hpub = ClientOp::Publish(Publish {
            subject: b("a"),
            reply: Some(b("r")),
            headers: Some(map.to_headers()),
            payload: b("hi"),
        });
        assert_eq!(client_wire(&hpub), b"HPUB a r 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\n");
        assert_eq!(
            client_wire(&ClientOp::Subscribe(Subscribe {
                subject: b("a.*"),
                queue: Some(b("q")),
                sid: Sid::from_u64(3)
            })),
            b"SUB a.* q 3\r\n"
        );
        assert_eq!(
            client_wire(&ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_u64(3),
                max_msgs: Some(5)
            })),
            b"UNSUB 3 5\r\n"
        );
        let connect = client_wire(&ClientOp::Connect(Box::new(ConnectOptions::client())));
        assert!(connect.starts_with(b"CONNECT {\"verbose\":false,"), "{connect:?}");
        assert!(connect.ends_with(b"}\r\n"));
        assert_eq!(client_wire(&ClientOp::Ping), b"PING\r\n");
        assert_eq!(client_wire(&ClientOp::Pong), b"PONG\r\n");
    }

    #[test]
    fn encodes_every_server_op() {
        assert_eq!(server_wire(&msg("a", "1", Some("r"), "hi")), b"MSG a 1 r 2\r\nhi\r\n");
        let hmsg = ServerOp::Message(Message {
            subject: b("a"),
            sid: Sid::from_u64(1),
            reply: None,
            headers: Some(Headers::from_raw(b("NATS/1.0 503\r\n\r\n"))),
            payload: Bytes::new(),
        });
        assert_eq!(server_wire(&hmsg), b"HMSG a 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let info = server_wire(&ServerOp::Info(Box::default()));
        assert!(info.starts_with(b"INFO {\"server_id\":\"\""), "{info:?}");
        assert_eq!(server_wire(&ServerOp::Ok), b"+OK\r\n");
        assert_eq!(server_wire(&ServerOp::Err(ServerError::new("'x'"))), b"-ERR 'x'\r\n");
        assert_eq!(server_wire(&ServerOp::Ping), b"PING\r\n");
        assert_eq!(server_wire(&ServerOp::Pong), b"PONG\r\n");
    }

    #[test]
    fn encoding_refuses_what_would_not_decode_the_same() {
        let codec = ClientCodec::new(Limits {
            max_control_line: 12,
            max_payload: 4,
            max_json_line: 8,
        });
        let mut a = IoArena::new();
        let p = |s: &'static str, r: Option<&'static str>, payload: &'static str| publish(s, r, payload);
        assert_eq!(
            codec.encode_op(&p("", None, ""), &mut a),
            Err(EncodeError::InvalidSubject)
        );
        assert_eq!(
            codec.encode_op(&p("a b", None, ""), &mut a),
            Err(EncodeError::InvalidSubject)
        );
        assert_eq!(
            codec.encode_op(&p("a", Some("\t"), ""), &mut a),
            Err(EncodeError::InvalidReply)
        );
        assert_eq!(
            codec.encode_op(&p("a", None, "12345"), &mut a),
            Err(EncodeError::PayloadTooLarge { size: 5, max: 4 })
        );
        assert_eq!(
            codec.encode_op(&p("abcdefgh", None, ""), &mut a),
            Err(EncodeError::ControlLineTooLong { len: 14, max: 12 })
        );
        let sub = |q: Option<&'static str>, sid: &'static str| {
            ClientOp::Subscribe(Subscribe {
                subject: b("s"),
                queue: q.map(b),
                sid: Sid::from_bytes(b(sid)),
            })
        };
        assert_eq!(
            codec.encode_op(&sub(Some("a\r"), "1"), &mut a),
            Err(EncodeError::InvalidQueue)
        );
        assert_eq!(codec.encode_op(&sub(None, ""), &mut a), Err(EncodeError::InvalidSid));
        assert_eq!(
            codec.encode_op(
                &ClientOp::Unsubscribe(Unsubscribe {
                    sid: Sid::from_u64(1),
                    max_msgs: Some(1_000_000_000)
                }),
                &mut a
            ),
            Err(EncodeError::MaxMsgsTooLarge(1_000_000_000))
        );
        assert!(matches!(
            codec.encode_op(&ClientOp::Connect(Box::default()), &mut a),
            Err(EncodeError::JsonLineTooLong { .. })
        ));
        let server = ServerCodec::default();
        for bad in ["a\nb", " lead", "\tlead"] {
            assert_eq!(
                server.encode_op(&ServerOp::Err(ServerError::new(bad)), &mut a),
                Err(EncodeError::InvalidErrorText)
            );
        }
        assert_eq!(
            server.encode_op(&msg("a", "x y", None, ""), &mut a),
            Err(EncodeError::InvalidSid)
        );
        // Nothing was written by any of the refusals.
        assert!(a.is_empty());
    }

    #[test]
    fn large_payloads_are_shared_not_copied() {
        let payload = Bytes::from(vec![7u8; 64 << 10]);
        let mut a = IoArena::new();
        ClientCodec::default()
            .encode_publish(b"big", None, None, &payload, &mut a)
            .unwrap();
        assert!(a.chunks().any(|c| c.as_ptr() == payload.as_ptr()));
        assert_eq!(a.len(), b"PUB big 65536\r\n".len() + payload.len() + 2);
    }
}
