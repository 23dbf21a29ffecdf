//! Why a ZMTP stream, a command or a handshake was rejected.

use thiserror::Error;

use super::SocketType;

/// A fatal ZMTP error: the stream can no longer be trusted, or the peer is not one this
/// connection may talk to. Stored once in the connection's `PoisonGuard`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZmtpError {
    /// The first byte of the greeting is not `0xFF`, or the tenth has no low bit: a ZMTP
    /// 1.0 peer, or not ZMTP at all.
    #[error("the peer's greeting has no ZMTP 2.0+ signature (byte {at} is {byte:#04x})")]
    BadSignature {
        /// Offset of the offending byte (0 or 9).
        at: usize,
        /// Its value.
        byte: u8,
    },
    /// The peer speaks a major version before 3 (ZMTP 1.0 or 2.0), which is not
    /// supported.
    #[error("the peer speaks ZMTP {major}.{minor}; 3.0 or later is needed")]
    UnsupportedVersion {
        /// The peer's major version.
        major: u8,
        /// The peer's minor version.
        minor: u8,
    },
    /// The peer's greeting names another security mechanism than ours.
    #[error("the peer uses the {theirs} mechanism, this side {ours}")]
    MechanismMismatch {
        /// Our mechanism.
        ours: &'static str,
        /// The peer's, as it spelled it (lossy UTF-8).
        theirs: String,
    },
    /// The mechanism field of the greeting is not upper-case letters, digits, `-`, `_`,
    /// `.` or `+` followed by NUL padding.
    #[error("the peer's greeting names a malformed mechanism")]
    BadMechanismName,
    /// A frame's flags byte sets one of the reserved bits 3 to 7.
    #[error("frame flags {flags:#04x} set reserved bits")]
    ReservedFlags {
        /// The flags byte.
        flags: u8,
    },
    /// A command frame has the MORE flag: commands are always a single frame.
    #[error("a command frame has the MORE flag")]
    CommandWithMore,
    /// A CURVE handshake was made without its fresh random bytes (a
    /// [`CurveRandom`](super::curve::CurveRandom)), or the caller could not draw them.
    #[error("a CURVE handshake needs fresh random bytes for each connection, and has none")]
    CurveRandomMissing,
    /// A frame announces more bytes than the configured maximum; nothing was reserved.
    #[error("a frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced size.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A multipart message has more frames than the configured maximum.
    #[error("a message of more than {max} frames")]
    TooManyFrames {
        /// The configured maximum.
        max: usize,
    },
    /// A command body could not be parsed (what is said names which part).
    #[error("malformed {command} command: {what}")]
    MalformedCommand {
        /// The command name (`READY`, `PING`, ...).
        command: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// A command body is empty or its name length runs past the body.
    #[error("a command frame without a well-formed name")]
    MalformedCommandName,
    /// The peer sent a command the handshake did not expect at this point.
    #[error("unexpected {command} command during the {mechanism} handshake")]
    UnexpectedCommand {
        /// The command's name (lossy UTF-8).
        command: String,
        /// The mechanism in use.
        mechanism: &'static str,
    },
    /// A message frame arrived before the handshake was complete.
    #[error("a message frame arrived before the handshake completed")]
    MessageBeforeReady,
    /// The peer's metadata has no `Socket-Type`, or names an unknown socket type.
    #[error("the peer announced no known Socket-Type")]
    MissingSocketType,
    /// The peer's socket type may not talk to ours (RFC 23's table).
    #[error("a {ours} socket may not talk to a {theirs} peer")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The peer's.
        theirs: SocketType,
    },
    /// The peer's `Identity` is longer than 255 bytes or starts with a zero byte
    /// (reserved for identities a ROUTER makes up).
    #[error("the peer announced an invalid Identity")]
    InvalidIdentity,
    /// The peer refused the handshake with an `ERROR` command.
    #[error("the peer refused the handshake: {reason}")]
    Refused {
        /// The reason it gave (lossy UTF-8; a PLAIN server's is a ZAP status code).
        reason: String,
    },
    /// Our authentication hook denied the peer's credentials.
    #[error("authentication denied: {status} {reason}")]
    AuthenticationDenied {
        /// The ZAP status code (`400` for wrong credentials, `500` for an internal
        /// error).
        status: u16,
        /// The reason text.
        reason: String,
    },
    /// No verdict could be had from the ZAP handler (a malformed reply, or none in
    /// time): the peer was refused with status `500`.
    #[error("authentication failed: {0}")]
    Zap(#[from] super::zap::ZapError),
    /// Something to encode breaks a length rule of the protocol (a PLAIN user name of
    /// more than 255 bytes, a property name that is not a token).
    #[error("cannot encode: {what}")]
    Encode {
        /// Which rule.
        what: &'static str,
    },
    /// A CURVE box did not open: the peer used another key than the one expected
    /// (a wrong server key, a forged vouch), or the bytes were changed on the way.
    #[error("a CURVE {command} box did not open (wrong key or tampered bytes)")]
    CurveBox {
        /// The command, or part of one (`cookie`, `vouch`), whose box failed.
        command: &'static str,
    },
    /// A CURVE `MESSAGE` whose nonce is not above the last one accepted: a replay, or
    /// frames reordered on the way.
    #[error("a CURVE MESSAGE with nonce {nonce} after nonce {last}: replayed or reordered")]
    CurveNonce {
        /// The nonce received.
        nonce: u64,
        /// The last nonce accepted.
        last: u64,
    },
    /// The handshake did not complete within the configured time.
    #[error("the handshake did not complete in time")]
    HandshakeTimeout,
    /// Nothing arrived from the peer within the heartbeat timeout (ours after a `PING`,
    /// or the TTL the peer's `PING` announced).
    #[error("the peer sent nothing within the heartbeat timeout")]
    HeartbeatTimeout,
    /// The peer closed the connection before the handshake completed.
    #[error("the peer closed the connection during the handshake")]
    ClosedDuringHandshake,
}
