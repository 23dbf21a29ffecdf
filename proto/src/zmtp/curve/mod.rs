//! CURVE (CurveZMQ, RFC 26; ZMTP-CURVE, RFC 25): the client's and the server's halves
//! of the handshake, the `MESSAGE` boxes that carry every frame afterwards, and the
//! keys in their Z85 form (RFC 32).
//!
//! ```text
//! C: HELLO    [C', nonce, Box[64 zeros](C'->S)]                       200 bytes
//! S: WELCOME  [nonce, Box[S' + cookie](S->C')]                        168 bytes
//!             cookie = [nonce, SecretBox[C' + s'](cookie key)]
//! C: INITIATE [cookie, nonce, Box[C + vouch + metadata](C'->S')]
//!             vouch = [nonce, Box[C' + S](C->S')]
//! S: READY    [nonce, Box[metadata](S'->C')]
//! both: MESSAGE [nonce, Box[flags + frame](C'->S' or S'->C')]
//! ```
//!
//! The boxes are NaCl's `crypto_box` (X25519, XSalsa20, Poly1305) and `crypto_secretbox`
//! from the RustCrypto crates; nothing here is home-made cryptography. Each side keeps
//! its own 8-byte message nonce counter and refuses a peer nonce that is not greater
//! than the last one it accepted, so a replayed or reordered `MESSAGE` ends the
//! connection. The cookie key is made afresh for each connection (the server keeps the
//! client's transient key itself, so the cookie only proves the client saw `WELCOME`).
//!
//! Randomness (transient keys, the long nonces, the cookie key) is handed in as data, a
//! [`CurveRandom`] per connection that the caller draws from the operating system's
//! generator: this crate reads no generator. The short nonces (`HELLO`, `INITIATE`,
//! `READY`, `MESSAGE`) are counters under fixed prefixes, as RFC 26 says. Key pairs are
//! made from 32 random bytes the same way ([`SecretKey::from_bytes`]).

mod boxes;
pub(crate) mod cipher;
mod client;
mod keys;
mod random;
mod server;
pub mod z85;

pub use cipher::{MessageCipher, Role, MESSAGE_OVERHEAD};
pub use keys::{KeyError, KeyPair, PublicKey, SecretKey, KEY_LEN};
pub use random::CurveRandom;
pub use z85::Z85Error;

pub(crate) use client::CurveClient;
pub(crate) use server::CurveServer;
