//! The Redis protocol engine: RESP2 and RESP3.
//!
//! - [`Value`]: every RESP2 and RESP3 type, strings as zero-copy [`bytes::Bytes`] views.
//! - [`Decoder`]: resumable, limit-checked decoding from a
//!   [`SegmentedBuffer`](crate::SegmentedBuffer).
//! - [`TapeDecoder`]: every complete value available, appended to a reusable [`Tape`]
//!   of compact tokens (no reference count per string), for pipelined clients.
//! - [`Encoder`] and [`Cmd`]: values and commands into an [`IoArena`](crate::IoArena).
//! - [`CommandDecoder`]: the server side, client commands (arrays of bulk strings) into
//!   [`Command`]s of zero-copy arguments, with a server's limits.
//!
//! ```
//! use monocoque_proto::{SegmentedBuffer, resp::{Decoder, Value}};
//! let mut src = SegmentedBuffer::new();
//! src.push_slice(b"*2\r\n+OK\r\n$5\r\nhel");
//! let mut decoder = Decoder::default();
//! assert_eq!(decoder.decode(&mut src).unwrap(), None); // need more
//! src.push_slice(b"lo\r\n");
//! let value = decoder.decode(&mut src).unwrap().unwrap();
//! assert_eq!(value, Value::Array(vec![Value::SimpleString("OK".into()), Value::from("hello")]));
//! ```

mod command;
mod connection;
mod decode;
mod encode;
mod error;
mod fast;
mod lex;
mod request;
mod tape;
mod value;

pub use command::{ArgSink, Cmd, ToArg};
pub use connection::{
    Connection, ConnectionConfig, ConnectionError, Event, HandshakeCommand, HandshakeError, MessageKind,
    QueueRejection, ReconnectState, RequestError, RequestId, SendError, Subscriptions, TransactionAborted,
    SUBSCRIBER_MODE_COMMANDS,
};
pub use decode::{Decoder, DecoderConfig};
pub use encode::{EncodeError, Encoder};
pub use error::DecodeError;
pub use request::{Command, CommandDecodeError, CommandDecoder, CommandLimits, CommandRef, PREALLOC_ARGS};
pub use tape::{Children, Tape, TapeDecoder, TapeKind, TapeRef};
pub use value::{Protocol, Value};
