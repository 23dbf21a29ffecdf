//! CURVE keys: 32-byte X25519 keys, written in Z85 (40 characters) as libzmq's
//! `zmq_curve_keypair` and `curve_keygen` write them.

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

use super::z85::{self, Z85Error};

/// The length of a CURVE key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Neither 32 bytes nor 40 Z85 characters.
    #[error("a CURVE key is 32 bytes or 40 Z85 characters; got {0} bytes")]
    Length(usize),
    /// 40 characters that are not Z85.
    #[error("a CURVE key in Z85: {0}")]
    Z85(#[from] Z85Error),
}

/// Reads 32 raw bytes or 40 Z85 characters (libzmq's `ZMQ_CURVE_*KEY` take both).
fn read_key(key: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
    match key.len() {
        KEY_LEN => {
            let mut out = [0; KEY_LEN];
            out.copy_from_slice(key);
            Ok(out)
        }
        40 => {
            let text = std::str::from_utf8(key).map_err(|_| KeyError::Length(key.len()))?;
            let bytes = Zeroizing::new(z85::decode(text)?);
            let mut out = [0; KEY_LEN];
            out.copy_from_slice(&bytes);
            Ok(out)
        }
        n => Err(KeyError::Length(n)),
    }
}

/// A CURVE public key (a server's `S`, a client's `C`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// Reads 32 raw bytes or 40 Z85 characters.
    pub fn from_bytes_or_z85(key: &[u8]) -> Result<PublicKey, KeyError> {
        read_key(key).map(PublicKey)
    }

    /// The 40-character Z85 form.
    pub fn to_z85(&self) -> String {
        // 32 is a multiple of 4: cannot fail.
        z85::encode(&self.0).unwrap_or_default()
    }

    pub(crate) fn to_box_key(self) -> crypto_box::PublicKey {
        crypto_box::PublicKey::from(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_z85())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_z85())
    }
}

/// A CURVE secret key; wiped from memory when dropped, never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// Reads 32 raw bytes or 40 Z85 characters.
    pub fn from_bytes_or_z85(key: &[u8]) -> Result<SecretKey, KeyError> {
        read_key(key).map(|k| SecretKey(Zeroizing::new(k)))
    }

    /// A key of these 32 bytes.
    pub fn from_bytes(key: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(Zeroizing::new(key))
    }

    /// The public key that goes with this one (X25519 of the base point).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.to_box_key().public_key().as_bytes())
    }

    /// The 40-character Z85 form (secret: handle with care).
    pub fn to_z85(&self) -> Zeroizing<String> {
        Zeroizing::new(z85::encode(&self.0[..]).unwrap_or_default())
    }

    /// The raw bytes (secret).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn to_box_key(&self) -> crypto_box::SecretKey {
        crypto_box::SecretKey::from(*self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A long-term (or transient) key pair. `Display` prints both keys in Z85, one a line,
/// as `monocoque zmq keygen` shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The public half, given to peers.
    pub public: PublicKey,
    /// The secret half.
    pub secret: SecretKey,
}

impl KeyPair {
    /// The pair whose secret half is `secret`.
    pub fn from_secret(secret: SecretKey) -> KeyPair {
        KeyPair {
            public: secret.public_key(),
            secret,
        }
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair {{ public: {}, secret: .. }}", self.public)
    }
}

impl fmt::Display for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "public-key: {}", self.public)?;
        write!(f, "secret-key: {}", self.secret.to_z85().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libzmq_test_pair_matches() {
        // libzmq's tests/testutil_security: the server pair, in Z85.
        let secret = SecretKey::from_bytes_or_z85(b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        assert_eq!(secret.public_key().to_z85(), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
        let public = PublicKey::from_bytes_or_z85(b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7").unwrap();
        assert_eq!(PublicKey::from_bytes_or_z85(&public.0).unwrap(), public);
        assert_eq!(PublicKey::from_bytes_or_z85(b"short"), Err(KeyError::Length(5)));
    }

    #[test]
    fn pairs_differ_and_print_in_z85() {
        let a = KeyPair::from_secret(SecretKey::from_bytes([1; 32]));
        let b = KeyPair::from_secret(SecretKey::from_bytes([2; 32]));
        assert_ne!(a.public, b.public);
        let text = a.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("public-key: {}", a.public));
        assert_eq!(lines[1].len(), "secret-key: ".len() + 40);
        assert!(!format!("{a:?}").contains(a.secret.to_z85().as_str()));
    }
}
