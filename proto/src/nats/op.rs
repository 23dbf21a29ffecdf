//! The operations of the NATS client protocol, typed by who sends them.

use std::fmt;

use bytes::Bytes;

use super::{ConnectOptions, Headers, ServerInfo};

/// A subscription id: an opaque token chosen by the client in `SUB` and echoed by the
/// server in `MSG`/`HMSG`. Clients (this crate's included) use decimal numbers.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(Bytes);

impl Sid {
    /// A decimal subscription id. Below 10,000 (the sids a client numbers from 1) it
    /// is a view of a static table: cloning and dropping it touch no reference count,
    /// which the receive path does for every message it hands out.
    pub fn from_u64(n: u64) -> Self {
        if let Some(token) = static_sid(n) {
            return Sid(Bytes::from_static(token));
        }
        let mut buf = itoa::Buffer::new();
        Sid(Bytes::copy_from_slice(buf.format(n).as_bytes()))
    }

    /// Wraps a token as it is on the wire.
    pub fn from_bytes(token: Bytes) -> Self {
        Sid(token)
    }

    /// The token as it is on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The id as a number, when it is a decimal number that fits in a `u64` (leading
    /// zeros are accepted).
    pub fn as_u64(&self) -> Option<u64> {
        crate::lex::parse_u64(&self.0)
    }
}

/// Sids below this are views of [`SID_TOKENS`].
const STATIC_SIDS: u64 = 10_000;

/// The decimal tokens of 0 to 9,999, back to back: `0123...9101112...9999`.
static SID_TOKENS: [u8; 38_890] = sid_tokens();

const fn sid_tokens() -> [u8; 38_890] {
    let mut out = [0u8; 38_890];
    let (mut n, mut at) = (0u64, 0usize);
    while n < STATIC_SIDS {
        let len = token_len(n);
        let (mut i, mut rest) = (len, n);
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        at += len;
        n += 1;
    }
    out
}

/// Digits in `n`'s decimal token, for `n` below [`STATIC_SIDS`].
const fn token_len(n: u64) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

/// `n`'s decimal token in [`SID_TOKENS`], if it is there.
fn static_sid(n: u64) -> Option<&'static [u8]> {
    if n >= STATIC_SIDS {
        return None;
    }
    // Where the tokens of each length start: 10 of 1 digit, 90 of 2, 900 of 3.
    let (first, start) = match n {
        0..=9 => (0, 0),
        10..=99 => (10, 10),
        100..=999 => (100, 190),
        _ => (1_000, 2_890),
    };
    let len = token_len(n);
    #[allow(clippy::cast_possible_truncation)] // n < 10,000
    let at = start + (n - first) as usize * len;
    SID_TOKENS.get(at..at + len)
}

impl From<u64> for Sid {
    fn from(n: u64) -> Self {
        Sid::from_u64(n)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({:?})", self.0)
    }
}

/// `PUB` (no headers) or `HPUB` (headers): a message a client publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Where the message goes.
    pub subject: Bytes,
    /// Where answers go, for a request.
    pub reply: Option<Bytes>,
    /// `Some` for `HPUB` (the block as received, parsed lazily), `None` for `PUB`.
    pub headers: Option<Headers>,
    /// The payload, without headers.
    pub payload: Bytes,
}

/// `MSG` (no headers) or `HMSG` (headers): a message delivered to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: Bytes,
    /// The subscription it is delivered to.
    pub sid: Sid,
    /// Where answers go, for a request.
    pub reply: Option<Bytes>,
    /// `Some` for `HMSG` (the block as received, parsed lazily), `None` for `MSG`.
    pub headers: Option<Headers>,
    /// The payload, without headers.
    pub payload: Bytes,
}

impl Message {
    /// Whether this is the status message nats-server sends to a request's reply subject
    /// when nobody subscribes to the request's subject (status 503, empty payload).
    pub fn is_no_responders(&self) -> bool {
        self.payload.is_empty() && self.headers.as_ref().is_some_and(Headers::is_no_responders)
    }

    /// The message as a [`MessageRef`](super::MessageRef) of slices of its views, as a
    /// visitor sees a message straight from the decoder
    /// ([`Connection::visit_messages`](super::client::Connection::visit_messages)).
    pub fn as_message_ref(&self) -> super::MessageRef<'_> {
        super::MessageRef {
            subject: &self.subject,
            sid: self.sid.as_bytes(),
            reply: self.reply.as_deref(),
            headers: self.headers.as_ref().map(|h| &h.as_bytes()[..]),
            payload: &self.payload,
        }
    }
}

/// `SUB`: interest in a subject, optionally as a member of a queue group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The subject, wildcards (`*`, `>`) allowed.
    pub subject: Bytes,
    /// The queue group: each message goes to one member of the group.
    pub queue: Option<Bytes>,
    /// The id the server will echo in `MSG`.
    pub sid: Sid,
}

/// `UNSUB`: end a subscription now, or after it has received `max_msgs` messages in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The subscription.
    pub sid: Sid,
    /// Deliver this many messages in all before ending (at most 999,999,999).
    pub max_msgs: Option<u64>,
}

/// The text of a `-ERR`, as the server sent it (usually in single quotes:
/// `-ERR 'Authorization Violation'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    text: Bytes,
}

/// What a `-ERR` is about, for the errors nats-server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerErrorKind {
    /// `Unknown Protocol Operation`: the server could not parse what it received.
    UnknownProtocolOperation,
    /// `Attempted To Connect To Route Port`.
    RoutePortConnection,
    /// `Authorization Violation`: wrong or missing credentials.
    AuthorizationViolation,
    /// `Authentication Timeout`: no `CONNECT` in time.
    AuthenticationTimeout,
    /// `Authentication Expired` (user, account or JWT).
    AuthenticationExpired,
    /// `Authentication Revoked`.
    AuthenticationRevoked,
    /// `Invalid Client Protocol`.
    InvalidClientProtocol,
    /// `Maximum Control Line Exceeded`.
    MaxControlLineExceeded,
    /// `Parser Error`.
    ParserError,
    /// `Secure Connection - TLS Required`.
    TlsRequired,
    /// `Stale Connection`: PINGs went unanswered.
    StaleConnection,
    /// `Maximum Connections Exceeded`.
    MaxConnectionsExceeded,
    /// `Slow Consumer`: the client did not read fast enough.
    SlowConsumer,
    /// `Maximum Payload Violation`: a publish was over `max_payload`.
    MaxPayloadViolation,
    /// `Invalid Subject`.
    InvalidSubject,
    /// `Invalid Publish Subject` (pedantic mode).
    InvalidPublishSubject,
    /// `Permissions Violation for Subscription to ...`.
    SubscribePermissionViolation,
    /// `Permissions Violation for Publish to ...`.
    PublishPermissionViolation,
    /// `Maximum Subscriptions Exceeded`.
    MaxSubscriptionsExceeded,
    /// Any other text.
    Other,
}

impl ServerError {
    /// An error with this text, written after `-ERR ` as it is.
    pub fn new(text: impl Into<Bytes>) -> Self {
        Self { text: text.into() }
    }

    /// The text as received, quotes included.
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// The text without the surrounding single quotes nats-server puts around it.
    pub fn message(&self) -> Bytes {
        let t = &self.text;
        if t.len() >= 2 && t[0] == b'\'' && t[t.len() - 1] == b'\'' {
            t.slice(1..t.len() - 1)
        } else {
            t.clone()
        }
    }

    /// Classifies the error by its text (compared without regard to ASCII case).
    pub fn kind(&self) -> ServerErrorKind {
        use ServerErrorKind::*;
        let message = self.message();
        let m = message.trim_ascii();
        let starts =
            |prefix: &str| m.len() >= prefix.len() && m[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
        let contains = |needle: &str| {
            m.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        };
        if starts("Unknown Protocol Operation") {
            UnknownProtocolOperation
        } else if starts("Attempted To Connect To Route Port") {
            RoutePortConnection
        } else if starts("Authorization Violation") {
            AuthorizationViolation
        } else if starts("Authentication Timeout") || starts("Authorization Timeout") {
            AuthenticationTimeout
        } else if contains("Authentication Expired") {
            AuthenticationExpired
        } else if contains("Authentication Revoked") {
            AuthenticationRevoked
        } else if starts("Invalid Client Protocol") {
            InvalidClientProtocol
        } else if starts("Maximum Control Line Exceeded") {
            MaxControlLineExceeded
        } else if starts("Parser Error") {
            ParserError
        } else if starts("Secure Connection - TLS Required") {
            TlsRequired
        } else if starts("Stale Connection") {
            StaleConnection
        } else if starts("Maximum Connections Exceeded") {
            MaxConnectionsExceeded
        } else if starts("Slow Consumer") {
            SlowConsumer
        } else if starts("Maximum Payload") {
            MaxPayloadViolation
        } else if starts("Invalid Publish Subject") {
            InvalidPublishSubject
        } else if starts("Invalid Subject") {
            InvalidSubject
        } else if starts("Permissions Violation for Subscription") {
            SubscribePermissionViolation
        } else if starts("Permissions Violation for Publish") {
            PublishPermissionViolation
        } else if starts("Maximum Subscriptions Exceeded") {
            MaxSubscriptionsExceeded
        } else {
            Other
        }
    }
}

/// An operation a client sends, owned: written by [`ClientOp::encode`], read by a
/// [`ServerFrameDecoder`](super::ServerFrameDecoder) (as a
/// [`ClientFrame`](super::ClientFrame), [`to_op`](super::ClientFrame::to_op) for this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`.
    Connect(Box<ConnectOptions>),
    /// `PUB` or `HPUB`.
    Publish(Publish),
    /// `SUB`.
    Subscribe(Subscribe),
    /// `UNSUB`.
    Unsubscribe(Unsubscribe),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// An operation a server sends, owned: written by [`ServerOp::encode`], read by a
/// [`ClientFrameDecoder`](super::ClientFrameDecoder) (as a
/// [`ServerFrame`](super::ServerFrame), [`to_op`](super::ServerFrame::to_op) for this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json}`.
    Info(Box<ServerInfo>),
    /// `MSG` or `HMSG`.
    Message(Message),
    /// `+OK`.
    Ok,
    /// `-ERR text`.
    Err(ServerError),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_numbers() {
        assert_eq!(Sid::from_u64(42).as_bytes().as_ref(), b"42");
        assert_eq!(Sid::from(0).as_u64(), Some(0));
        assert_eq!(Sid::from_bytes(Bytes::from_static(b"007")).as_u64(), Some(7));
        assert_eq!(
            Sid::from_bytes(Bytes::from_static(b"18446744073709551615")).as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(
            Sid::from_bytes(Bytes::from_static(b"18446744073709551616")).as_u64(),
            None
        );
        assert_eq!(Sid::from_bytes(Bytes::from_static(b"a1")).as_u64(), None);
        assert_eq!(Sid::default().as_u64(), None);
    }

    #[test]
    fn every_sid_reads_as_its_decimal_token_from_the_table_and_past_it() {
        let past = STATIC_SIDS..STATIC_SIDS + 1_000;
        for n in (0..STATIC_SIDS).chain(past).chain([99_999, 100_000, u64::MAX]) {
            let sid = Sid::from_u64(n);
            assert_eq!(sid.as_bytes().as_ref(), n.to_string().as_bytes(), "{n}");
            assert_eq!(sid.as_u64(), Some(n));
            assert_eq!(sid, Sid::from_bytes(Bytes::from(n.to_string())));
        }
        assert_eq!(static_sid(STATIC_SIDS - 1), Some(&b"9999"[..]));
        assert_eq!(static_sid(STATIC_SIDS), None);
    }

    #[test]
    fn error_text_and_kind() {
        let e = ServerError::new("'Authorization Violation'");
        assert_eq!(e.message(), "Authorization Violation");
        assert_eq!(e.text(), "'Authorization Violation'");
        assert_eq!(e.kind(), ServerErrorKind::AuthorizationViolation);
        for (text, kind) in [
            (
                "'Unknown Protocol Operation'",
                ServerErrorKind::UnknownProtocolOperation,
            ),
            ("'Stale Connection'", ServerErrorKind::StaleConnection),
            ("'maximum payload violation'", ServerErrorKind::MaxPayloadViolation),
            ("'Maximum Payload Exceeded'", ServerErrorKind::MaxPayloadViolation),
            (
                "'Permissions Violation for Publish to \"foo\"'",
                ServerErrorKind::PublishPermissionViolation,
            ),
            (
                "'Permissions Violation for Subscription to \"foo\" using queue \"q\"'",
                ServerErrorKind::SubscribePermissionViolation,
            ),
            ("'User Authentication Expired'", ServerErrorKind::AuthenticationExpired),
            ("'Authentication Timeout'", ServerErrorKind::AuthenticationTimeout),
            ("'Secure Connection - TLS Required'", ServerErrorKind::TlsRequired),
            ("'Invalid Publish Subject'", ServerErrorKind::InvalidPublishSubject),
            ("'Invalid Subject'", ServerErrorKind::InvalidSubject),
            (
                "'Maximum Control Line Exceeded'",
                ServerErrorKind::MaxControlLineExceeded,
            ),
            ("'Slow Consumer'", ServerErrorKind::SlowConsumer),
            ("something new", ServerErrorKind::Other),
            ("'", ServerErrorKind::Other),
        ] {
            assert_eq!(ServerError::new(text).kind(), kind, "{text}");
        }
        assert_eq!(ServerError::new("'").message(), "'");
        assert_eq!(ServerError::new("''").message(), "");
    }
}
