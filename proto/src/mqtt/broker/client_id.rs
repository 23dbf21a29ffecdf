//! [`ClientId`]: a client identifier as the session slab stores it, inline when short.
//!
//! Every session holds its client identifier. As a `Bytes` it cost 32 bytes in the
//! slot and a heap allocation of its own (~32 bytes with the allocator's header), for
//! identifiers that are mostly short: MQTT 3.1.1 servers must accept 1 to 23 bytes
//! [MQTT-3.1.3-5], and most clients stay within that. A `ClientId` is 24 bytes and
//! holds up to [`INLINE`] bytes in place; a longer one is shared (`Arc<[u8]>`), so a
//! copy never allocates either way.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The longest identifier held inline (the 3.1.1 minimum every server accepts).
pub(crate) const INLINE: usize = 23;

/// The length of an inline identifier, 0 to [`INLINE`]. An enum rather than a `u8` so
/// that its unused values tag [`ClientId::Shared`] and the whole stays 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub(crate) enum Len {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18,
    L19, L20, L21, L22, L23,
}

impl Len {
    #[rustfmt::skip]
    const ALL: [Len; INLINE + 1] = [
        Len::L0, Len::L1, Len::L2, Len::L3, Len::L4, Len::L5, Len::L6, Len::L7, Len::L8,
        Len::L9, Len::L10, Len::L11, Len::L12, Len::L13, Len::L14, Len::L15, Len::L16,
        Len::L17, Len::L18, Len::L19, Len::L20, Len::L21, Len::L22, Len::L23,
    ];
}

/// A client identifier: inline up to [`INLINE`] bytes, shared beyond. Reads as its
/// bytes (`Deref<Target = [u8]>`); a clone copies 24 bytes or bumps a count.
#[derive(Clone)]
pub(crate) enum ClientId {
    /// The identifier's bytes, the first `len` of the array.
    Inline(Len, [u8; INLINE]),
    /// A longer identifier.
    Shared(Arc<[u8]>),
}

impl ClientId {
    /// A copy of `id`, inline if it fits.
    pub(crate) fn new(id: &[u8]) -> Self {
        match Len::ALL.get(id.len()) {
            Some(&len) => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id);
                ClientId::Inline(len, bytes)
            }
            None => ClientId::Shared(Arc::from(id)),
        }
    }
}

impl Deref for ClientId {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ClientId::Inline(len, bytes) => &bytes[..*len as usize],
            ClientId::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for ClientId {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for ClientId {}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&bytes::Bytes::copy_from_slice(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn is_24_bytes_with_a_spare_niche() {
        assert_eq!(std::mem::size_of::<ClientId>(), 24);
        assert_eq!(std::mem::size_of::<Option<ClientId>>(), 24);
    }

    #[test]
    fn holds_every_length_inline_up_to_23_and_shares_longer_ones() {
        for n in 0..=40 {
            let raw: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
            let id = ClientId::new(&raw);
            assert_eq!(&id[..], &raw[..], "length {n}");
            assert_eq!(matches!(id, ClientId::Inline(..)), n <= INLINE, "length {n}");
            assert_eq!(id.clone(), id);
        }
        assert_ne!(ClientId::new(b"a"), ClientId::new(b"ab"));
        assert_ne!(ClientId::new(&[7; 30]), ClientId::new(&[7; 31]));
    }

    #[test]
    fn debug_shows_the_bytes() {
        assert_eq!(format!("{:?}", ClientId::new(b"c1")), "b\"c1\"");
    }
}
