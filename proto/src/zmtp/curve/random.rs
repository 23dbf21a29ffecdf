//! The random bytes one CURVE handshake consumes, handed in by the caller: this crate
//! reads no generator (it does no I/O), so randomness enters as data, fresh for each
//! connection.

use zeroize::Zeroizing;

use super::keys::SecretKey;

/// Fresh random bytes for one CURVE handshake: the transient secret key and the long
/// nonces (and, for a server, the cookie key). Not `Clone`: each value moves into one
/// connection, so two handshakes never share a transient key or a nonce unless the
/// caller builds the same bytes twice. Draw them from the operating system's generator
/// (the `monocoque` crate does, per connection); fixed bytes are for tests and fuzzing.
///
/// Layout (RFC 26 names): bytes 0..32 are the transient secret key (c' or s'); a client
/// takes the vouch's 16-byte nonce from 32..48; a server takes the cookie key from
/// 32..64, the cookie's nonce from 64..80 and `WELCOME`'s nonce from 80..96. Every
/// other box nonce is a counter under a fixed prefix.
pub struct CurveRandom(Zeroizing<[u8; CurveRandom::LEN]>);

impl CurveRandom {
    /// How many bytes one handshake needs (a server's share; a client uses the first 48).
    pub const LEN: usize = 96;

    /// These bytes, which must be fresh from a cryptographic generator.
    pub fn from_bytes(bytes: [u8; CurveRandom::LEN]) -> CurveRandom {
        CurveRandom(Zeroizing::new(bytes))
    }

    /// The transient secret key.
    pub(crate) fn transient(&self) -> SecretKey {
        SecretKey::from_bytes(self.array(0))
    }

    /// A client's vouch nonce.
    pub(crate) fn vouch_nonce(&self) -> [u8; 16] {
        self.array(32)
    }

    /// A server's cookie key.
    pub(crate) fn cookie_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.array(32))
    }

    /// A server's cookie nonce.
    pub(crate) fn cookie_nonce(&self) -> [u8; 16] {
        self.array(64)
    }

    /// A server's `WELCOME` nonce.
    pub(crate) fn welcome_nonce(&self) -> [u8; 16] {
        self.array(80)
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }
}

impl std::fmt::Debug for CurveRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurveRandom(..)")
    }
}
