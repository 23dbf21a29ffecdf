//! Why a NATS stream or op was rejected.

use std::fmt;

use serde_json::error::Category;

/// The name of a protocol operation, as it is spelled on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    /// `CONNECT {json}`: client options.
    Connect,
    /// `PUB subject [reply] size`: a message from a client.
    Pub,
    /// `HPUB subject [reply] header_size total_size`: a message with headers from a client.
    Hpub,
    /// `SUB subject [queue] sid`: a subscription.
    Sub,
    /// `UNSUB sid [max_msgs]`: an unsubscription, possibly deferred.
    Unsub,
    /// `PING`: keepalive, either direction.
    Ping,
    /// `PONG`: keepalive answer, either direction.
    Pong,
    /// `INFO {json}`: server information.
    Info,
    /// `MSG subject sid [reply] size`: a message delivered to a client.
    Msg,
    /// `HMSG subject sid [reply] header_size total_size`: a message with headers delivered to a client.
    Hmsg,
    /// `+OK`: acknowledgement in verbose mode.
    Ok,
    /// `-ERR text`: a server error.
    Err,
}

impl OpName {
    /// The op as it is written on the wire (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Connect => "CONNECT",
            OpName::Pub => "PUB",
            OpName::Hpub => "HPUB",
            OpName::Sub => "SUB",
            OpName::Unsub => "UNSUB",
            OpName::Ping => "PING",
            OpName::Pong => "PONG",
            OpName::Info => "INFO",
            OpName::Msg => "MSG",
            OpName::Hmsg => "HMSG",
            OpName::Ok => "+OK",
            OpName::Err => "-ERR",
        }
    }
}

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fatal NATS decoding error: the stream cannot be trusted past this point.
///
/// Each limit and each malformation has its own variant, and the variant does not depend
/// on where the stream was cut into segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The line does not start with an operation this role accepts (nats-server answers
    /// `-ERR 'Unknown Protocol Operation'`). Reported as soon as the first bytes rule out
    /// every operation, without waiting for the end of the line.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// A control line (everything before its `\r\n`) is longer than the limit.
    #[error("control line longer than {max} bytes")]
    ControlLineTooLong {
        /// The configured limit ([`Limits::max_control_line`](super::Limits::max_control_line)).
        max: usize,
    },
    /// An `INFO` or `CONNECT` line is longer than the limit for JSON lines.
    #[error("{op} line longer than {max} bytes")]
    JsonLineTooLong {
        /// `INFO` or `CONNECT`.
        op: OpName,
        /// The configured limit ([`Limits::max_json_line`](super::Limits::max_json_line)).
        max: usize,
    },
    /// An operation has a number of fields it cannot have (`PUB` takes 2 or 3, ...).
    #[error("{op} with {count} fields")]
    WrongFieldCount {
        /// The operation.
        op: OpName,
        /// How many fields the line held.
        count: usize,
    },
    /// A field of a control line contains a carriage return that does not end the line.
    #[error("carriage return inside a field")]
    CarriageReturnInField,
    /// A size (or `UNSUB` maximum) is not a run of decimal digits.
    #[error("size is not a decimal number")]
    InvalidSize,
    /// A size (or `UNSUB` maximum) has more than 9 digits, as nats-server refuses.
    #[error("size has more than 9 digits")]
    SizeTooLong,
    /// `HPUB`/`HMSG` announced more header bytes than total bytes.
    #[error("header size {headers} exceeds total size {total}")]
    HeadersExceedTotal {
        /// The announced header size.
        headers: usize,
        /// The announced total size.
        total: usize,
    },
    /// A message announced more payload (headers included) than the limit. Checked before
    /// anything is reserved for it.
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// The announced size.
        size: usize,
        /// The configured limit ([`Limits::max_payload`](super::Limits::max_payload)).
        max: usize,
    },
    /// A payload was not followed by `\r\n`.
    #[error("missing CRLF after a payload")]
    MissingPayloadCrlf,
    /// The JSON of an `INFO` or `CONNECT` does not parse into its type.
    #[error("invalid {op} JSON ({category:?} error at line {line}, column {column})")]
    InvalidJson {
        /// `INFO` or `CONNECT`.
        op: OpName,
        /// What kind of JSON error it was.
        category: Category,
        /// 1-based line of the error in the JSON text.
        line: usize,
        /// 1-based column of the error in the JSON text.
        column: usize,
    },
}

impl DecodeError {
    pub(crate) fn json(op: OpName, e: &serde_json::Error) -> Self {
        DecodeError::InvalidJson {
            op,
            category: e.classify(),
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Why an op cannot be put on the wire. On error nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A subject is empty or contains a space, tab, CR or LF.
    #[error("invalid subject")]
    InvalidSubject,
    /// A reply subject is empty or contains a space, tab, CR or LF.
    #[error("invalid reply subject")]
    InvalidReply,
    /// A queue group is empty or contains a space, tab, CR or LF.
    #[error("invalid queue group")]
    InvalidQueue,
    /// A subscription id is empty or contains a space, tab, CR or LF.
    #[error("invalid subscription id")]
    InvalidSid,
    /// The payload (headers included) is over the limit, or over 999,999,999 bytes (the
    /// most a 9-digit size can say).
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Headers plus payload.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The control line would be longer than the limit.
    #[error("control line of {len} bytes exceeds the limit of {max} bytes")]
    ControlLineTooLong {
        /// The line's length without `\r\n`.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The `INFO` or `CONNECT` line would be longer than the limit for JSON lines.
    #[error("JSON line of {len} bytes exceeds the limit of {max} bytes")]
    JsonLineTooLong {
        /// The line's length without `\r\n`.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// An `UNSUB` maximum over 999,999,999 (nats-server reads at most 9 digits).
    #[error("UNSUB maximum {0} has more than 9 digits")]
    MaxMsgsTooLarge(u64),
    /// A `-ERR` text contains LF, or starts with a space or tab (which a decoder skips).
    #[error("-ERR text contains LF or starts with whitespace")]
    InvalidErrorText,
    /// `INFO` or `CONNECT` options could not be serialised.
    #[error("cannot serialise JSON ({0:?} error)")]
    Json(Category),
}
