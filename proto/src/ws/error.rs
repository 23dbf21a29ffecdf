//! Why a WebSocket connection fails, and the status each failure is answered with.

/// A close status code (RFC 6455 section 7.4): sent in a close frame, received in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (a server shutting down).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept (text where binary is required).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: data inconsistent with its type (a close reason that is not UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame (section 7.4.1 and 7.4.2):
    /// 1000-1003, 1007-1014 and the 3000-4999 ranges for libraries and applications.
    /// 1004, 1005, 1006 and 1015 are reserved and never go on the wire.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A frame stream the receiver must fail (RFC 6455 section 7.1.7), with the status it
/// closes with ([`close_code`](Self::close_code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A client frame without a mask (section 5.1: a server closes the connection).
    #[error("a client frame is not masked")]
    Unmasked,
    /// A server frame with a mask (section 5.1: a client closes the connection).
    #[error("a server frame is masked")]
    Masked,
    /// RSV1-3 set though no extension was negotiated (section 5.2).
    #[error("reserved bits 0x{0:02x} set without an extension")]
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves (0x3-0x7, 0xB-0xF; section 5.2).
    #[error("reserved opcode 0x{0:x}")]
    ReservedOpcode(u8),
    /// A control frame without FIN (section 5.5: control frames are not fragmented).
    #[error("a fragmented control frame")]
    FragmentedControl,
    /// A control frame whose payload is over 125 bytes (section 5.5).
    #[error("a control frame of {0} bytes (at most 125)")]
    ControlTooLong(u64),
    /// A length not in its shortest form (section 5.2: "the minimal number of bytes").
    #[error("a payload length of {0} not in its shortest form")]
    NonMinimalLength(u64),
    /// A 64-bit length with its most significant bit set (section 5.2).
    #[error("a 64-bit payload length with the high bit set")]
    LengthHighBit,
    /// A frame longer than the receiver accepts: refused from its header, before
    /// anything is reserved for it (section 10.4; closed with 1009, section 7.4.1).
    #[error("a frame of {len} bytes (at most {max})")]
    TooLarge {
        /// The length the header announced.
        len: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// A continuation frame with no fragmented message to continue (section 5.4).
    #[error("a continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (section 5.4).
    #[error("a new data frame inside a fragmented message")]
    InterleavedMessage,
    /// A close frame with a one-byte body (section 5.5.1: a code takes two).
    #[error("a close frame of one byte")]
    CloseTooShort,
    /// A close code nobody may send (section 7.4.1, 7.4.2).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (section 5.5.1; closed with 1007, section 8.1).
    #[error("a close reason that is not UTF-8")]
    CloseReasonNotUtf8,
    /// A text message where the session carries binary only (MQTT over WebSocket,
    /// [MQTT-6.0.0-1]; closed with 1003, section 7.4.1).
    #[error("a text message where binary is required")]
    TextMessage,
}

impl FrameError {
    /// The status code the connection is closed with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            FrameError::CloseReasonNotUtf8 => CloseCode::INVALID_PAYLOAD,
            FrameError::TextMessage => CloseCode::UNSUPPORTED_DATA,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// An opening handshake the server refuses (RFC 6455 section 4.2.1), with the HTTP
/// status it answers ([`status`](Self::status)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request's head is longer than the limit, or has too many header lines.
    #[error("the request head is over {0} bytes or lines")]
    TooLarge(usize),
    /// The request line is not `METHOD SP TARGET SP HTTP/x.y`.
    #[error("a malformed request line")]
    RequestLine,
    /// The method is not `GET` (section 4.1, item 2).
    #[error("the method is not GET")]
    NotGet,
    /// The HTTP version is below 1.1 (section 4.1, item 2).
    #[error("the HTTP version is not 1.1 or later")]
    HttpVersion,
    /// A header line without a colon, with an empty or invalid name, a folded line, or
    /// bytes no header may hold.
    #[error("a malformed header line")]
    HeaderLine,
    /// No `Host` header (section 4.1, item 4).
    #[error("no Host header")]
    NoHost,
    /// No `Upgrade: websocket` (section 4.2.1, item 3).
    #[error("no Upgrade: websocket header")]
    NoUpgrade,
    /// No `Upgrade` token in `Connection` (section 4.2.1, item 4).
    #[error("no Connection: Upgrade header")]
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing, repeated, or not the base64 of 16 bytes (section
    /// 4.2.1, item 5).
    #[error("no valid Sec-WebSocket-Key")]
    Key,
    /// `Sec-WebSocket-Version` missing or not 13 (section 4.2.1, item 6): answered 426
    /// with the version this server speaks (section 4.4).
    #[error("Sec-WebSocket-Version is not 13")]
    Version,
    /// None of the subprotocols the client offered is one the server speaks (for MQTT,
    /// [MQTT-6.0.0-3]/[MQTT-6.0.0-4]: the client must offer `mqtt`).
    #[error("no subprotocol the server speaks was offered")]
    Subprotocol,
}

impl HandshakeError {
    /// The HTTP status code of the refusal: 426 Upgrade Required for an unsupported
    /// version, 400 Bad Request for everything else.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            _ => 400,
        }
    }
}
