//! The codec trait every protocol engine implements.

use super::{IoArena, SegmentedBuffer};

/// A protocol's framing: bytes in from a [`SegmentedBuffer`], frames out into an
/// [`IoArena`].
///
/// `decode` returns `Ok(Some(item))` for each complete frame, `Ok(None)` when the buffer
/// does not yet hold a whole frame, and `Err` when the stream is malformed (fatal: the
/// connection is poisoned). On `Ok(None)` no byte is lost: a codec either leaves the
/// bytes in `src`, or, for a long frame arriving in pieces, moves the complete prefix
/// into its own state so that it is never parsed twice (decoding stays linear in the
/// frame size, whatever the piece size). Call `decode` again after pushing more bytes.
///
/// The decoded and encoded item types may differ: a role-typed codec (a client decodes
/// server frames and encodes client frames) sets them apart.
pub trait MonocoqueCodec {
    /// What `decode` produces.
    type Decoded;
    /// What `encode` consumes.
    type Encoded: ?Sized;
    /// Why a stream or an item was rejected.
    type Error;

    /// Decodes the next frame from the front of `src`.
    fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Self::Decoded>, Self::Error>;

    /// Encodes `item` at the end of `dst`.
    fn encode(&mut self, item: &Self::Encoded, dst: &mut IoArena) -> Result<(), Self::Error>;
}
