//! Why a socket refused a message.

use thiserror::Error;

use crate::zmtp::{Message, SocketType};

/// A message the socket logic did not take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SocketError {
    /// This socket type only receives (SUB, PULL).
    #[error("a {0} socket cannot send")]
    CannotSend(SocketType),
    /// REQ sent a request and has not had its reply yet, or REP has no request to
    /// answer (libzmq's `EFSM`).
    #[error("a {0} socket cannot send now: request and reply must alternate")]
    WrongState(SocketType),
    /// A PAIR already has its one peer.
    #[error("a {0} socket has its one peer already")]
    PeerLimit(SocketType),
    /// A message must have at least one frame (a ROUTER's: the identity).
    #[error("a message needs at least one frame")]
    EmptyMessage,
    /// Every peer's queue is at the high-water mark, or there is no peer (DEALER,
    /// PUSH): the caller waits and offers the message again, as libzmq blocks.
    #[error("every peer's queue is full (or there is no peer): try again later")]
    WouldBlock(Message),
}
