//! The NATS decoder: the ops of a contiguous buffer as frames of slices of it. The
//! decoder and its contract are documented on [`FrameDecoder`] (the module is private;
//! its items are re-exported from `nats`).

use std::marker::PhantomData;

use bytes::Bytes;

use super::decode::{op_at, parse_control, parse_size, Control, OpSpec, CLIENT_OPS, HEAD, SERVER_OPS};
use super::decode_fast::{message_line, publish_line, Line};
use super::{
    ClientOp, ConnectOptions, DecodeError, Headers, Limits, Message, OpName, Publish, ServerError, ServerInfo,
    ServerOp, Sid, Subscribe, Unsubscribe,
};

/// `PUB` or `HPUB`, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRef<'a> {
    /// Where the message goes.
    pub subject: &'a [u8],
    /// Where answers go, for a request.
    pub reply: Option<&'a [u8]>,
    /// The header block as received (`Some` for `HPUB`, `None` for `PUB`).
    pub headers: Option<&'a [u8]>,
    /// The payload, without headers.
    pub payload: &'a [u8],
}

/// `MSG` or `HMSG`, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The subject it was published to.
    pub subject: &'a [u8],
    /// The subscription it is delivered to, as on the wire.
    pub sid: &'a [u8],
    /// Where answers go, for a request.
    pub reply: Option<&'a [u8]>,
    /// The header block as received (`Some` for `HMSG`, `None` for `MSG`).
    pub headers: Option<&'a [u8]>,
    /// The payload, without headers.
    pub payload: &'a [u8],
}

/// `SUB`, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeRef<'a> {
    /// The subject, wildcards allowed.
    pub subject: &'a [u8],
    /// The queue group, if any.
    pub queue: Option<&'a [u8]>,
    /// The id the server will echo in `MSG`, as on the wire.
    pub sid: &'a [u8],
}

/// `UNSUB`, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeRef<'a> {
    /// The subscription, as on the wire.
    pub sid: &'a [u8],
    /// Deliver this many messages in all before ending.
    pub max_msgs: Option<u64>,
}

/// What a client sends, as a [`ServerFrameDecoder`] reads it: [`ClientOp`] with slices
/// of the input in place of owned views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// `PUB` or `HPUB`.
    Publish(PublishRef<'a>),
    /// `SUB`.
    Subscribe(SubscribeRef<'a>),
    /// `UNSUB`.
    Unsubscribe(UnsubscribeRef<'a>),
    /// `CONNECT`, its JSON parsed.
    Connect(Box<ConnectOptions>),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// What a server sends, as a [`ClientFrameDecoder`] reads it: [`ServerOp`] with slices
/// of the input in place of owned views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// `MSG` or `HMSG`.
    Message(MessageRef<'a>),
    /// `INFO`, its JSON parsed.
    Info(Box<ServerInfo>),
    /// `+OK`.
    Ok,
    /// `-ERR`: its text, leading spaces and tabs skipped (as [`ServerError::text`]).
    Err(&'a [u8]),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

fn copy(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

impl ClientFrame<'_> {
    /// The frame as a [`ClientOp`], with copies of the slices (for keeping a frame past
    /// the buffer's life).
    pub fn to_op(&self) -> ClientOp {
        match self {
            ClientFrame::Publish(p) => ClientOp::Publish(Publish {
                subject: copy(p.subject),
                reply: p.reply.map(copy),
                headers: p.headers.map(|h| Headers::from_raw(copy(h))),
                payload: copy(p.payload),
            }),
            ClientFrame::Subscribe(s) => ClientOp::Subscribe(Subscribe {
                subject: copy(s.subject),
                queue: s.queue.map(copy),
                sid: Sid::from_bytes(copy(s.sid)),
            }),
            ClientFrame::Unsubscribe(u) => ClientOp::Unsubscribe(Unsubscribe {
                sid: Sid::from_bytes(copy(u.sid)),
                max_msgs: u.max_msgs,
            }),
            ClientFrame::Connect(c) => ClientOp::Connect(c.clone()),
            ClientFrame::Ping => ClientOp::Ping,
            ClientFrame::Pong => ClientOp::Pong,
        }
    }
}

impl ServerFrame<'_> {
    /// The frame as a [`ServerOp`], with copies of the slices (for keeping a frame past
    /// the buffer's life).
    pub fn to_op(&self) -> ServerOp {
        match self {
            ServerFrame::Message(m) => ServerOp::Message(Message {
                subject: copy(m.subject),
                sid: Sid::from_bytes(copy(m.sid)),
                reply: m.reply.map(copy),
                headers: m.headers.map(|h| Headers::from_raw(copy(h))),
                payload: copy(m.payload),
            }),
            ServerFrame::Info(i) => ServerOp::Info(i.clone()),
            ServerFrame::Ok => ServerOp::Ok,
            ServerFrame::Err(text) => ServerOp::Err(ServerError::new(copy(text))),
            ServerFrame::Ping => ServerOp::Ping,
            ServerFrame::Pong => ServerOp::Pong,
        }
    }
}

/// A whole frame off the general path: its op, control line (without the line ending)
/// and parsed fields, and its header block and payload.
struct Raw<'a> {
    op: OpName,
    text: &'a [u8],
    control: Control,
    headers: Option<&'a [u8]>,
    payload: &'a [u8],
}

impl<'a> Raw<'a> {
    fn field(&self, i: usize) -> &'a [u8] {
        self.control.fields.raw(self.text, i)
    }

    /// Whether an op with an optional last field (`SUB`'s queue, `UNSUB`'s maximum)
    /// has it: `min` fields or `min + 1`, anything else an error.
    fn optional(&self, min: usize) -> Result<bool, DecodeError> {
        match self.control.fields.count {
            n if n == min => Ok(false),
            n if n == min + 1 => Ok(true),
            count => Err(DecodeError::WrongFieldCount { op: self.op, count }),
        }
    }

    /// The arguments of a JSON or text op (`CONNECT`, `INFO`, `-ERR`).
    fn args(&self) -> &'a [u8] {
        self.text.get(self.control.args..).unwrap_or_default()
    }
}

/// How far the line at the front of the caller's buffer was searched for its end, and
/// the limits: the state both frame decoders keep.
#[derive(Debug, Clone, Copy)]
struct General {
    limits: Limits,
    /// Bytes at the front of the buffer already searched for the line's `\n` (or the
    /// position of that `\n` once found, while the payload is incomplete).
    scanned: usize,
    /// After `Ok(None)`: the whole frame's length when its control line was complete
    /// (the payload is what is missing), 0 when the line itself is.
    needed: usize,
}

impl General {
    /// The next frame of `buf` through the general path, and its length.
    fn next<'a>(&mut self, ops: &'static [OpSpec], buf: &'a [u8]) -> Result<Option<(Raw<'a>, usize)>, DecodeError> {
        self.needed = 0;
        let Some(spec) = op_at(ops, buf.get(..HEAD).unwrap_or(buf))? else {
            return Ok(None);
        };
        let max = spec.max_line(&self.limits);
        // A shorter buffer than last time is not the same stream: search it all.
        let from = if self.scanned <= buf.len() { self.scanned } else { 0 };
        let Some(lf) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) else {
            // The line will be at least one byte shorter than what is buffered (its `\r`
            // may be the last byte received).
            if buf.len() > max.saturating_add(1) {
                return Err(spec.too_long(&self.limits));
            }
            self.scanned = buf.len();
            return Ok(None);
        };
        let len = lf - usize::from(lf > 0 && buf[lf - 1] == b'\r');
        if len > max {
            return Err(spec.too_long(&self.limits));
        }
        let text = &buf[..len];
        let control = parse_control(spec, text, &self.limits)?;
        let body = lf + 1;
        let Some((header_len, total)) = control.sizes else {
            self.scanned = 0;
            let raw = Raw {
                op: spec.op,
                text,
                control,
                headers: None,
                payload: &[],
            };
            return Ok(Some((raw, body)));
        };
        // `total` is at most 999,999,999: no overflow.
        let end = body + total;
        let after = buf.get(end..).unwrap_or_default();
        let n = after.len().min(2);
        if after[..n] != b"\r\n"[..n] {
            return Err(DecodeError::MissingPayloadCrlf);
        }
        if n < 2 {
            self.scanned = lf;
            self.needed = end + 2;
            return Ok(None);
        }
        self.scanned = 0;
        let h = header_len.unwrap_or(0);
        let raw = Raw {
            op: spec.op,
            text,
            control,
            headers: header_len.map(|_| &buf[body..body + h]),
            payload: &buf[body + h..end],
        };
        Ok(Some((raw, end + 2)))
    }
}

/// The client side of a connection: its [`FrameDecoder`] ([`ClientFrameDecoder`])
/// reads what servers send ([`ServerFrame`]s); it sends [`ClientOp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSide {}

/// The server side of a connection (a broker, a proxy, a test peer): its
/// [`FrameDecoder`] ([`ServerFrameDecoder`]) reads what clients send
/// ([`ClientFrame`]s); it sends [`ServerOp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSide {}

/// A side whose frames a [`FrameDecoder`] reads: [`ClientSide`] (what servers send,
/// as [`ServerFrame`]s) or [`ServerSide`] (what clients send, as [`ClientFrame`]s).
/// Sealed: the two roles are the protocol's.
pub trait FrameRole: sealed::FrameOps + 'static {}

impl FrameRole for ClientSide {}
impl FrameRole for ServerSide {}

// The sealed half of `FrameRole`: public in name only, so it may speak of the crate's
// private framer types.
#[allow(private_interfaces)]
mod sealed {
    use super::*;

    /// What differs between the sides; the decoder around it is shared.
    pub trait FrameOps {
        /// What this side receives, borrowed from the input.
        type Frame<'a>: std::fmt::Debug;
        /// The ops this side accepts.
        const OPS: &'static [OpSpec];
        /// A canonical payload frame at the front of `buf`, and its length.
        fn fast<'a>(buf: &'a [u8], limits: &Limits) -> Option<(Self::Frame<'a>, usize)>;
        /// A frame off the general path.
        fn from_raw(raw: Raw<'_>) -> Result<Self::Frame<'_>, DecodeError>;
    }

    impl FrameOps for ServerSide {
        type Frame<'a> = ClientFrame<'a>;
        const OPS: &'static [OpSpec] = CLIENT_OPS;

        #[inline(always)]
        fn fast<'a>(buf: &'a [u8], limits: &Limits) -> Option<(ClientFrame<'a>, usize)> {
            let (line, headers) = publish_line(buf, limits)?;
            Some((ClientFrame::Publish(publish(buf, &line, headers)?), line.len()))
        }

        fn from_raw(raw: Raw<'_>) -> Result<ClientFrame<'_>, DecodeError> {
            Ok(match raw.op {
                OpName::Pub | OpName::Hpub => {
                    // The sizes were checked with the count: 2 or 3 for PUB, 3 or 4 for HPUB.
                    let reply = raw.control.fields.count == if raw.op == OpName::Pub { 3 } else { 4 };
                    ClientFrame::Publish(PublishRef {
                        subject: raw.field(0),
                        reply: reply.then(|| raw.field(1)),
                        headers: raw.headers,
                        payload: raw.payload,
                    })
                }
                OpName::Sub => ClientFrame::Subscribe(SubscribeRef {
                    subject: raw.field(0),
                    queue: raw.optional(2)?.then(|| raw.field(1)),
                    sid: raw.field(raw.control.fields.count - 1),
                }),
                OpName::Unsub => ClientFrame::Unsubscribe(UnsubscribeRef {
                    sid: raw.field(0),
                    max_msgs: if raw.optional(1)? {
                        Some(parse_size(raw.field(1))? as u64)
                    } else {
                        None
                    },
                }),
                OpName::Connect => ClientFrame::Connect(Box::new(
                    serde_json::from_slice(raw.args()).map_err(|e| DecodeError::json(OpName::Connect, &e))?,
                )),
                OpName::Ping => ClientFrame::Ping,
                OpName::Pong => ClientFrame::Pong,
                // Not in CLIENT_OPS.
                OpName::Info | OpName::Msg | OpName::Hmsg | OpName::Ok | OpName::Err => {
                    return Err(DecodeError::UnknownOp)
                }
            })
        }
    }

    impl FrameOps for ClientSide {
        type Frame<'a> = ServerFrame<'a>;
        const OPS: &'static [OpSpec] = SERVER_OPS;

        #[inline(always)]
        fn fast<'a>(buf: &'a [u8], limits: &Limits) -> Option<(ServerFrame<'a>, usize)> {
            let (line, headers) = message_line(buf, limits)?;
            Some((ServerFrame::Message(message(buf, &line, headers)?), line.len()))
        }

        fn from_raw(raw: Raw<'_>) -> Result<ServerFrame<'_>, DecodeError> {
            Ok(match raw.op {
                OpName::Msg | OpName::Hmsg => {
                    // The sizes were checked with the count: 3 or 4 for MSG, 4 or 5 for HMSG.
                    let reply = raw.control.fields.count == if raw.op == OpName::Msg { 4 } else { 5 };
                    ServerFrame::Message(MessageRef {
                        subject: raw.field(0),
                        sid: raw.field(1),
                        reply: reply.then(|| raw.field(2)),
                        headers: raw.headers,
                        payload: raw.payload,
                    })
                }
                OpName::Info => ServerFrame::Info(Box::new(
                    serde_json::from_slice(raw.args()).map_err(|e| DecodeError::json(OpName::Info, &e))?,
                )),
                OpName::Err => ServerFrame::Err(raw.args()),
                OpName::Ok => ServerFrame::Ok,
                OpName::Ping => ServerFrame::Ping,
                OpName::Pong => ServerFrame::Pong,
                // Not in SERVER_OPS.
                OpName::Connect | OpName::Pub | OpName::Hpub | OpName::Sub | OpName::Unsub => {
                    return Err(DecodeError::UnknownOp)
                }
            })
        }
    }
}

/// The NATS decoder of one side: reads the frames that side receives out of a
/// contiguous buffer. Used through its aliases, [`ServerFrameDecoder`] (a broker's:
/// [`ClientFrame`]s) and [`ClientFrameDecoder`] (a client's: [`ServerFrame`]s).
///
/// Subjects, replies, queue groups, sids, header blocks and payloads are `&[u8]` slices
/// of the buffer, so decoding a frame costs no reference count and no allocation (only
/// `INFO` and `CONNECT`, whose JSON is parsed, allocate). The caller keeps the received
/// bytes in one buffer until it is done with the frames; [`ClientFrame::to_op`] and
/// [`ServerFrame::to_op`] copy a frame into an owned op when it must outlive the buffer.
///
/// A canonical `PUB`/`HPUB`/`MSG`/`HMSG` is split by the fast path, every other line by
/// the general path: op recognition, field splitting, size parsing and limit checks as
/// nats-server's parser does them (the rules are in the `decode` module's source).
/// [`decode`](Self::decode) returns the frame and its length, `Ok(None)` when the buffer
/// holds only part of a frame (nothing is consumed), or the error that makes the stream
/// unusable.
///
/// ```
/// use monocoque_proto::nats::{ClientFrame, ServerFrameDecoder};
///
/// let buf = b"PUB orders.new 5\r\nhello\r\nSUB orders.* workers 7\r\nPUB x 3\r\nab";
/// let mut decoder = ServerFrameDecoder::default();
/// let mut at = 0;
/// let mut subjects = Vec::new();
/// while let Some((frame, len)) = decoder.decode(&buf[at..]).unwrap() {
///     match frame {
///         ClientFrame::Publish(p) => subjects.push(p.subject),
///         ClientFrame::Subscribe(s) => assert_eq!((s.queue, s.sid), (Some(&b"workers"[..]), &b"7"[..])),
///         other => panic!("{other:?}"),
///     }
///     at += len;
/// }
/// assert_eq!(subjects, [&b"orders.new"[..]]);
/// assert_eq!(&buf[at..], b"PUB x 3\r\nab"); // incomplete: kept for the next read
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder<R> {
    general: General,
    role: PhantomData<R>,
}

/// A broker's decoder: [`ClientFrame`]s (what clients send).
pub type ServerFrameDecoder = FrameDecoder<ServerSide>;

/// A client's decoder: [`ServerFrame`]s (what servers send).
pub type ClientFrameDecoder = FrameDecoder<ClientSide>;

impl<R: FrameRole> Default for FrameDecoder<R> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<R: FrameRole> FrameDecoder<R> {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            general: General {
                limits,
                scanned: 0,
                needed: 0,
            },
            role: PhantomData,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.general.limits
    }

    /// Forgets how far the front line was searched (to decode an unrelated buffer).
    pub fn reset(&mut self) {
        self.general.scanned = 0;
        self.general.needed = 0;
    }

    /// After [`decode`](Self::decode) returned `Ok(None)`: the length of the whole
    /// frame at the front of the buffer when its control line was complete (only the
    /// payload is missing), or `None` when the line itself is. A caller holding the
    /// stream in several pieces joins exactly this much once it has arrived.
    pub fn needed(&self) -> Option<usize> {
        (self.general.needed > 0).then_some(self.general.needed)
    }

    /// The frame at the front of `buf` and its length in bytes; `Ok(None)` when `buf`
    /// holds only part of a frame.
    ///
    /// After `Ok(None)`, call again with the same bytes followed by more (the decoder
    /// remembers how far it searched for the end of the line, so that a long line
    /// arriving in small pieces is searched once), or [`reset`](Self::reset) first. An
    /// `Err` is fatal: the stream is out of sync.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(R::Frame<'a>, usize)>, DecodeError> {
        if let Some(fast) = R::fast(buf, &self.general.limits) {
            self.general.scanned = 0;
            return Ok(Some(fast));
        }
        self.decode_general(buf)
    }

    /// Every frame the fast path leaves.
    #[inline(never)]
    #[allow(clippy::type_complexity)]
    fn decode_general<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(R::Frame<'a>, usize)>, DecodeError> {
        let Some((raw, len)) = self.general.next(R::OPS, buf)? else {
            return Ok(None);
        };
        Ok(Some((R::from_raw(raw)?, len)))
    }
}

impl FrameDecoder<ClientSide> {
    /// Adopts the server's `max_payload` (from `INFO`): a negative or zero value (no
    /// limit announced) leaves the limit unchanged.
    pub fn set_max_payload(&mut self, max_payload: i64) {
        if let Ok(max) = usize::try_from(max_payload) {
            if max > 0 {
                self.general.limits.max_payload = max;
            }
        }
    }

    /// Adopts the smaller of the server's `max_payload` (from `INFO`) and the client's
    /// own `ceiling`: a server that announces a huge limit cannot make the client accept
    /// (and hold) a message past what it was configured for. A negative or zero
    /// announcement (no limit) keeps the current limit, capped too. Returns the limit
    /// now in force.
    pub fn adopt_max_payload(&mut self, announced: i64, ceiling: usize) -> usize {
        let limits = &mut self.general.limits;
        let server = usize::try_from(announced)
            .ok()
            .filter(|&m| m > 0)
            .unwrap_or(limits.max_payload);
        limits.max_payload = server.min(ceiling.max(1));
        limits.max_payload
    }

    /// The next frame when it is a canonical `MSG`/`HMSG` whole at the front of `buf`,
    /// through the fast path alone; `None` for anything else, which
    /// [`decode`](Self::decode) then decides. For a run of messages right after a frame
    /// `decode` returned (its search state is then clean, as `decode` leaves it after
    /// a fast-path frame): what `decode` would return, minus the merge with the general
    /// path's result, which costs a run of small messages a tenth of its instructions.
    #[inline(always)]
    pub(crate) fn decode_fast_message<'a>(&self, buf: &'a [u8]) -> Option<(MessageRef<'a>, usize)> {
        let (line, headers) = message_line(buf, &self.general.limits)?;
        Some((message(buf, &line, headers)?, line.len()))
    }
}

/// A fast-path `PUB`/`HPUB` as slices of `buf`.
#[inline(always)]
fn publish<'a>(buf: &'a [u8], line: &Line, headers: bool) -> Option<PublishRef<'a>> {
    Some(PublishRef {
        subject: buf.get(line.subject())?,
        reply: match line.reply() {
            Some(r) => Some(buf.get(r)?),
            None => None,
        },
        headers: match headers {
            true => Some(buf.get(line.headers())?),
            false => None,
        },
        payload: buf.get(line.payload())?,
    })
}

/// A fast-path `MSG`/`HMSG` as slices of `buf`.
#[inline(always)]
fn message<'a>(buf: &'a [u8], line: &Line, headers: bool) -> Option<MessageRef<'a>> {
    Some(MessageRef {
        subject: buf.get(line.subject())?,
        sid: buf.get(line.sid())?,
        reply: match line.reply() {
            Some(r) => Some(buf.get(r)?),
            None => None,
        },
        headers: match headers {
            true => Some(buf.get(line.headers())?),
            false => None,
        },
        payload: buf.get(line.payload())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How decoding a whole buffer ended: an error, or the bytes left over.
    #[derive(Debug, PartialEq)]
    enum End {
        Left(usize),
        Error(DecodeError),
    }

    fn by_frames<R: FrameRole, T>(limits: Limits, input: &[u8], to_op: impl Fn(&R::Frame<'_>) -> T) -> (Vec<T>, End) {
        let mut decoder = FrameDecoder::<R>::new(limits);
        let (mut ops, mut at) = (Vec::new(), 0);
        loop {
            match decoder.decode(&input[at..]) {
                Ok(Some((frame, len))) => {
                    ops.push(to_op(&frame));
                    at += len;
                }
                Ok(None) => return (ops, End::Left(input.len() - at)),
                Err(e) => return (ops, End::Error(e)),
            }
        }
    }

    const FROM_CLIENTS: &[&[u8]] = &[
        b"PUB foo 5\r\nhello\r\n",
        b"pub foo _INBOX.1 5\r\nhello\r\nPING\r\npong\n",
        b"PUB\t \tfoo  \t bar\t\t3 \t\r\nabc\r\n",
        b"HPUB foo reply 18 23\r\nNATS/1.0\r\nA: 1\r\n\r\nhello\r\nHPUB foo 0 2\r\nhi\r\n",
        b"SUB foo.* 1\r\nsub foo.> workers 22\nUNSUB 1\r\nunsub 1 10\r\n",
        b"CONNECT {\"verbose\":false,\"name\":\"n\"}\r\nconnect{}\n",
        b"PUB foo 2\nhi\r\n",
        b"PUB foo 2\r\nhi\n",
        b"PUB foo 2\r\nhix",
        b"PUB fo\ro 1\r\nx\r\n",
        b"PUB foo\r\n",
        b"PUB a b c 1\r\n",
        b"SUB foo\r\n",
        b"SUB a b c d\r\n",
        b"UNSUB \r\n",
        b"UNSUB 1 2 3\r\n",
        b"UNSUB 1 x\r\n",
        b"UNSUB 1 1234567890\r\n",
        b"PUB foo 0000000001\r\n",
        b"HPUB foo 3 2\r\n",
        b"PUB foo 1048577\r\n",
        b"CONNECT {\"verbose\":1}\r\n",
        b"CONNECT\r\n",
        b"MSG foo 1 1\r\nx\r\n",
        b"X",
        b"PUX",
        b"PUB\r\n",
        b" PING\r\n",
        b"CONNEC",
        b"PUB foo 5\r\nhel",
        b"SUB abc",
        b"",
    ];

    const FROM_SERVERS: &[&[u8]] = &[
        b"MSG foo 1 5\r\nhello\r\nmsg foo 1 reply.to 5\r\nhello\r\n",
        b"HMSG _INBOX.x.1 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
        b"HMSG foo 1 r 28 30\r\nNATS/1.0 404 No Messages\r\n\r\nhi\r\n",
        b"INFO {\"server_id\":\"S\",\"max_payload\":1048576}\r\n+OK\r\n-ERR 'Authorization Violation'\r\n",
        b"-err \t 'a \r b' \r\n-ERR \r\nPING\r\nPONG\n+ok x\n",
        b"MSG   foo\t1\t\t reply  3\r\nabc\r\n",
        b"MSG foo 1 2\r\nhiPING\r\n",
        b"MSG foo 1 99999999999\r\n",
        b"HMSG foo 1 5 4\r\n",
        b"HMSG a 1 2\r\n",
        b"INFO {\r\n",
        b"-ERR\r\n",
        b"PUB foo 1\r\nx\r\n",
        b"-er",
        b"MSG foo 1 3\r\nab",
    ];

    /// Each input, alone and followed by enough bytes for the fast path's window (so
    /// its canonical frames are split in the window rather than on the slice), with
    /// default and small limits, decodes to the same ops and, when it ends in an error
    /// or on a frame boundary, ends the same way.
    fn window_and_slice_agree<R: FrameRole, T: std::fmt::Debug + PartialEq>(
        inputs: &[&[u8]],
        to_op: impl Fn(&R::Frame<'_>) -> T,
    ) {
        let small = Limits {
            max_control_line: 16,
            max_json_line: 24,
            max_payload: 8,
        };
        for limits in [Limits::default(), small] {
            for input in inputs {
                let pings = 20;
                let padded = [input, &b"PING\r\n".repeat(pings)[..]].concat();
                let (ops, end) = by_frames::<R, T>(limits, input, &to_op);
                let (mut padded_ops, padded_end) = by_frames::<R, T>(limits, &padded, &to_op);
                let shown = String::from_utf8_lossy(input);
                if end == End::Left(0) {
                    assert_eq!(padded_end, End::Left(0), "{shown:?} within {limits:?}");
                    padded_ops.truncate(padded_ops.len() - pings);
                } else if matches!(end, End::Error(_)) {
                    assert_eq!(padded_end, end, "{shown:?} within {limits:?}");
                } else {
                    padded_ops.truncate(ops.len());
                }
                assert_eq!(ops, padded_ops, "{shown:?} within {limits:?}");
            }
        }
    }

    #[test]
    fn every_client_op_decodes_alike_in_the_window_and_on_the_slice() {
        window_and_slice_agree::<ServerSide, _>(FROM_CLIENTS, |f: &ClientFrame<'_>| f.to_op());
    }

    #[test]
    fn every_server_op_decodes_alike_in_the_window_and_on_the_slice() {
        window_and_slice_agree::<ClientSide, _>(FROM_SERVERS, |f: &ServerFrame<'_>| f.to_op());
    }

    #[test]
    fn fields_are_slices_of_the_input() {
        let buf = b"HPUB foo bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\nSUB s q 9\r\nPING\r\nPING\r\nPING\r\nPING\r\n";
        let mut decoder = ServerFrameDecoder::default();
        let Ok(Some((ClientFrame::Publish(p), len))) = decoder.decode(buf) else {
            panic!()
        };
        assert_eq!(len, 36);
        assert_eq!(p.subject.as_ptr(), buf[5..].as_ptr());
        assert_eq!(p.reply.map(<[u8]>::as_ptr), Some(buf[9..].as_ptr()));
        assert_eq!(p.headers.map(<[u8]>::as_ptr), Some(buf[20..].as_ptr()));
        assert_eq!((p.payload, p.payload.as_ptr()), (&b"hi"[..], buf[32..].as_ptr()));
        let Ok(Some((ClientFrame::Subscribe(s), _))) = decoder.decode(&buf[len..]) else {
            panic!()
        };
        assert_eq!((s.subject, s.queue, s.sid), (&b"s"[..], Some(&b"q"[..]), &b"9"[..]));
        assert_eq!(s.sid.as_ptr(), buf[len + 8..].as_ptr());

        let buf = b"MSG a.b 7 r 2\r\nhi\r\n-ERR  'x'\r\n";
        let mut decoder = ClientFrameDecoder::default();
        let Ok(Some((ServerFrame::Message(m), len))) = decoder.decode(buf) else {
            panic!()
        };
        assert_eq!(
            (m.subject, m.sid, m.reply, m.headers, m.payload),
            (&b"a.b"[..], &b"7"[..], Some(&b"r"[..]), None, &b"hi"[..])
        );
        assert_eq!(m.sid.as_ptr(), buf[8..].as_ptr());
        assert_eq!(decoder.decode(&buf[len..]), Ok(Some((ServerFrame::Err(b"'x'"), 11))));
    }

    #[test]
    fn a_partial_frame_is_not_consumed_and_is_searched_once() {
        let frame = b"SUB a.very.long.subject.name.indeed q 1\r\n";
        let mut decoder = ServerFrameDecoder::default();
        for end in 0..frame.len() {
            assert_eq!(decoder.decode(&frame[..end]), Ok(None), "{end}");
            // How far the line was searched is remembered, never past what was given.
            assert!(decoder.general.scanned <= end);
        }
        assert!(matches!(
            decoder.decode(frame),
            Ok(Some((ClientFrame::Subscribe(_), 41)))
        ));
        assert_eq!(decoder.general.scanned, 0);
        // A payload still arriving: the line's end is remembered.
        assert_eq!(decoder.decode(b"PUB x 5\r\nhel"), Ok(None));
        assert_eq!(decoder.general.scanned, 8);
        assert!(matches!(decoder.decode(b"PUB x 5\r\nhello\r\n"), Ok(Some((_, 16)))));
        // A shorter buffer than the one searched is searched again from its start.
        assert_eq!(decoder.decode(b"SUB abcdefghij"), Ok(None));
        assert_eq!(decoder.decode(b"PING\r\n"), Ok(Some((ClientFrame::Ping, 6))));
        decoder.reset();
        assert_eq!(decoder.general.scanned, 0);
    }

    #[test]
    fn the_client_side_adopts_the_servers_max_payload() {
        let mut decoder = ClientFrameDecoder::new(Limits {
            max_payload: 4,
            ..Limits::default()
        });
        let msg = b"MSG a 1 5\r\nhello\r\n";
        assert_eq!(
            decoder.decode(msg),
            Err(DecodeError::PayloadTooLarge { size: 5, max: 4 })
        );
        decoder.set_max_payload(-1);
        assert_eq!(decoder.limits().max_payload, 4);
        decoder.set_max_payload(1 << 20);
        assert!(matches!(decoder.decode(msg), Ok(Some((ServerFrame::Message(_), 18)))));
    }
}
