//! The NaCl boxes of CurveZMQ and the byte layouts of its commands: thin wrappers over
//! `crypto_box` (public-key boxes) and `crypto_secretbox` (the cookie).

use crypto_box::aead::{Aead, KeyInit};
use crypto_box::SalsaBox;
use crypto_secretbox::XSalsa20Poly1305;

use super::keys::{PublicKey, SecretKey};
use crate::zmtp::ZmtpError;

/// Poly1305's tag, which leads every box.
pub(crate) const TAG_LEN: usize = 16;

/// `\x05HELLO`, version 1.0, 72 bytes of padding, C', short nonce, 80-byte box.
pub(crate) const HELLO_LEN: usize = 200;
/// `\x07WELCOME`, 16-byte nonce, 144-byte box.
pub(crate) const WELCOME_LEN: usize = 168;
/// A cookie: 16-byte nonce, 80-byte secret box.
pub(crate) const COOKIE_LEN: usize = 96;
/// `\x08INITIATE`, cookie, short nonce, then a box of at least 128 + 16 bytes.
pub(crate) const INITIATE_MIN: usize = 9 + COOKIE_LEN + 8 + 128 + TAG_LEN;
/// `\x05READY`, short nonce, box of at least 16 bytes.
pub(crate) const READY_MIN: usize = 6 + 8 + TAG_LEN;

/// A 24-byte nonce: a fixed prefix and the nonce that travels.
pub(crate) fn nonce(prefix: &[u8], tail: &[u8]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    n
}

/// A short (8-byte counter) nonce after a 16-byte prefix.
pub(crate) fn short_nonce(prefix: &[u8; 16], counter: u64) -> [u8; 24] {
    nonce(prefix, &counter.to_be_bytes())
}

/// The precomputed key of a box from `secret` to `public` (or back).
pub(crate) fn salsa_box(public: &PublicKey, secret: &SecretKey) -> SalsaBox {
    SalsaBox::new(&public.to_box_key(), &secret.to_box_key())
}

/// `Box[plaintext](key)` with `nonce`: tag then ciphertext, as NaCl lays it out.
pub(crate) fn seal(key: &SalsaBox, nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    // Encryption of a slice in memory has no failure mode.
    key.encrypt(nonce.into(), plaintext).unwrap_or_default()
}

/// Opens a box; `command` names it in the error.
pub(crate) fn open(
    key: &SalsaBox,
    nonce: &[u8; 24],
    boxed: &[u8],
    command: &'static str,
) -> Result<Vec<u8>, ZmtpError> {
    key.decrypt(nonce.into(), boxed)
        .map_err(|_| ZmtpError::CurveBox { command })
}

/// The cookie's secret box.
pub(crate) fn cookie_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    XSalsa20Poly1305::new(key.into())
        .encrypt(nonce.into(), plaintext)
        .unwrap_or_default()
}

/// Opens a cookie.
pub(crate) fn cookie_open(key: &[u8; 32], nonce: &[u8; 24], boxed: &[u8]) -> Result<Vec<u8>, ZmtpError> {
    XSalsa20Poly1305::new(key.into())
        .decrypt(nonce.into(), boxed)
        .map_err(|_| ZmtpError::CurveBox { command: "cookie" })
}

/// A 32-byte array out of a slice known to be 32 bytes long.
pub(crate) fn key32(bytes: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes[..32]);
    k
}

/// The big-endian counter of a short nonce.
pub(crate) fn counter(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

/// A malformed CURVE command.
pub(crate) fn malformed(command: &'static str, what: &'static str) -> ZmtpError {
    ZmtpError::MalformedCommand { command, what }
}
