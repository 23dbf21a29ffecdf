//! Why a RESP stream was rejected.

/// A fatal RESP decoding error: the stream cannot be trusted past this point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte of a value is not a RESP type.
    #[error("unknown RESP type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A RESP3-only type arrived on a connection decoding RESP2.
    #[error("RESP3 type `{}` received while decoding RESP2", char::from(*.0))]
    Resp3OnResp2(u8),
    /// A bulk, blob error, verbatim or streamed string announced more than the limit.
    #[error("string of {len} bytes exceeds the limit of {max} bytes")]
    BulkTooLong {
        /// The announced (or accumulated, for streamed strings) length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// An aggregate announced (or streamed) more elements than the limit.
    #[error("aggregate of {len} elements exceeds the limit of {max}")]
    AggregateTooLong {
        /// The announced element count (pairs count twice).
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// Aggregates nested deeper than the limit.
    #[error("aggregates nested deeper than {max} levels")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// A header or simple line ran past the limit without `\r\n`.
    #[error("line longer than {max} bytes without CRLF")]
    LineTooLong {
        /// The configured limit.
        max: usize,
    },
    /// A line contains a bare `\r` or `\n`.
    #[error("bare CR or LF inside a line")]
    BareLineBreak,
    /// A length field is not a valid length.
    #[error("invalid length field")]
    InvalidLength,
    /// An `:` value is not a 64-bit signed integer.
    #[error("invalid integer")]
    InvalidInteger,
    /// A `,` value is not a double.
    #[error("invalid double")]
    InvalidDouble,
    /// A `#` value is neither `t` nor `f`.
    #[error("invalid boolean")]
    InvalidBoolean,
    /// A `(` value is not an optionally signed run of digits.
    #[error("invalid big number")]
    InvalidBigNumber,
    /// A `=` value lacks its `xxx:` format prefix.
    #[error("verbatim string without a three-byte format prefix")]
    InvalidVerbatim,
    /// A string payload was not followed by `\r\n`.
    #[error("missing CRLF after a string payload")]
    MissingCrlf,
    /// A `;` chunk or `.` end marker arrived outside a streamed value.
    #[error("stream marker `{}` outside a streamed value", char::from(*.0))]
    UnexpectedStreamMarker(u8),
    /// Something other than a `;` chunk arrived inside a streamed string.
    #[error("expected a `;` chunk inside a streamed string")]
    ExpectedChunk,
    /// A streamed map ended after a key with no value.
    #[error("streamed map ended with an odd number of elements")]
    OddMap,
    /// An attribute was the last thing in an aggregate, with no value to attach to.
    #[error("attribute with no value after it")]
    DanglingAttribute,
}
