//! Who may connect: username/password users with salted PBKDF2 hashes, and the
//! enhanced authentication hook (5.0, 4.12) an embedder implements for an
//! Authentication Method (SCRAM, Kerberos, a token check...).

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::mqtt::ReasonCode;

/// The algorithm tag of a [`PasswordHash`] in its text form.
const TAG: &str = "pbkdf2-sha256";

/// A stored password: PBKDF2-HMAC-SHA256 of the password with a per-user salt. Its
/// text form (for the config file) is `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

/// Why a password hash's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    /// Not `pbkdf2-sha256$N$SALT$HASH`.
    #[error("a password hash is written pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX")]
    Format,
    /// Iterations 0, a salt under 8 bytes or a hash other than 32 bytes.
    #[error("a password hash needs iterations > 0, a salt of at least 8 bytes and a 32-byte hash")]
    Parameters,
}

impl PasswordHash {
    /// Iterations `monocoque mqtt passwd` uses: each CONNECT with a password costs as
    /// many HMAC-SHA256 rounds on the broker thread, so the count trades brute-force
    /// cost against connection rate (the count is stored in each hash).
    pub const DEFAULT_ITERATIONS: u32 = 10_000;

    /// The hash of `password` with `salt` (random, at least 8 bytes: the caller draws it,
    /// this crate has no randomness).
    pub fn new(password: &[u8], salt: &[u8], iterations: u32) -> PasswordHash {
        let mut hash = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations.max(1), &mut hash);
        PasswordHash {
            iterations: iterations.max(1),
            salt: salt.to_vec(),
            hash,
        }
    }

    /// Whether `password` is the one hashed; the hashes are compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        let other = PasswordHash::new(password, &self.salt, self.iterations);
        bool::from(self.hash.ct_eq(&other.hash))
    }

    /// Reads the text form.
    pub fn parse(text: &str) -> Result<PasswordHash, PasswordHashError> {
        let mut parts = text.trim().split('$');
        let (Some(TAG), Some(n), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PasswordHashError::Format);
        };
        let iterations: u32 = n.parse().map_err(|_| PasswordHashError::Format)?;
        let salt = hex(salt).ok_or(PasswordHashError::Format)?;
        let hash: [u8; 32] = hex(hash)
            .ok_or(PasswordHashError::Format)?
            .try_into()
            .map_err(|_| PasswordHashError::Parameters)?;
        if iterations == 0 || salt.len() < 8 {
            return Err(PasswordHashError::Parameters);
        }
        Ok(PasswordHash { iterations, salt, hash })
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TAG}${}$", self.iterations)?;
        self.salt.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("$")?;
        self.hash.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// The users allowed to connect with a username and password.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<Bytes, PasswordHash>,
    /// Whether a client without a username may connect.
    pub allow_anonymous: bool,
}

impl Users {
    /// No users; anonymous clients refused unless `allow_anonymous`.
    pub fn new(allow_anonymous: bool) -> Users {
        Users {
            by_name: HashMap::new(),
            allow_anonymous,
        }
    }

    /// Adds or replaces `name`.
    pub fn insert(&mut self, name: &str, hash: PasswordHash) {
        self.by_name.insert(Bytes::copy_from_slice(name.as_bytes()), hash);
    }

    /// Checks a `CONNECT`'s credentials: `Err(BadUserNameOrPassword)` for an unknown
    /// user, a wrong or missing password, or an anonymous client when not allowed.
    pub fn check(&self, username: Option<&[u8]>, password: Option<&[u8]>) -> Result<(), ReasonCode> {
        let ok = match username {
            None => self.allow_anonymous && password.is_none(),
            Some(name) => match (self.by_name.get(name), password) {
                (Some(hash), Some(password)) => hash.verify(password),
                _ => false,
            },
        };
        if ok {
            Ok(())
        } else {
            Err(ReasonCode::BadUserNameOrPassword)
        }
    }
}

/// One step of an enhanced authentication exchange, as the embedder's mechanism
/// judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send `AUTH` 0x18 Continue authentication with this Authentication Data, and wait
    /// for the client's `AUTH`.
    Continue(Bytes),
    /// Authenticated: `CONNACK` (with this Authentication Data, if any).
    Success(Option<Bytes>),
    /// Refused: `CONNACK` with this reason code (0x80 or above, e.g. 0x87 or 0x86).
    Fail(ReasonCode),
}

/// One client's exchange in progress ([`EnhancedAuth::start`]).
pub trait AuthExchange: Send {
    /// The client's Authentication Data (from `CONNECT` first, then each `AUTH`).
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;
}

/// The enhanced authentication hook: the embedder's mechanisms, by Authentication
/// Method. The broker runs `CONNECT` (with the method) -> `AUTH` 0x18 <-> `AUTH` 0x18 ->
/// `CONNACK`, calling [`AuthExchange::step`] with each client message.
pub trait EnhancedAuth: Send {
    /// A new exchange for `method` with client `client_id`; `None` if the method is
    /// not supported (`CONNACK` 0x8C Bad authentication method [MQTT-4.12.0-1]).
    fn start(&self, method: &[u8], client_id: &[u8]) -> Option<Box<dyn AuthExchange>>;
}

/// Where `CONNECT`s are redirected (5.0, 4.11): every client is refused with
/// 0x9C Use another server or 0x9D Server moved and a Server Reference (a 3.1.1
/// client with 0x03 Server unavailable, its version having no redirection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The Server Reference sent (e.g. `other.example:1883`).
    pub server_reference: Bytes,
    /// 0x9D Server moved (permanent) rather than 0x9C Use another server.
    pub permanent: bool,
}

impl Redirect {
    /// The `CONNACK` reason code it answers a 5.0 client with.
    pub fn code(&self) -> ReasonCode {
        if self.permanent {
            ReasonCode::ServerMoved
        } else {
            ReasonCode::UseAnotherServer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_round_trip_through_text() {
        let h = PasswordHash::new(b"s3cret", b"saltsalt", 1000);
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cres"));
        assert!(!h.verify(b""));
        let text = h.to_string();
        assert!(text.starts_with("pbkdf2-sha256$1000$7361"), "{text}");
        assert!(!text.contains("s3cret"));
        assert_eq!(PasswordHash::parse(&text), Ok(h));
        // RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector: P="passwd", S="salt", c=1.
        let v = PasswordHash::new(b"passwd", b"salt", 1);
        assert!(v
            .to_string()
            .ends_with("$55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"));
        for bad in [
            "",
            "md5$1$00$00",
            "pbkdf2-sha256$x$0011223344556677$00",
            "pbkdf2-sha256$1$zz$00",
        ] {
            assert_eq!(PasswordHash::parse(bad), Err(PasswordHashError::Format), "{bad}");
        }
        assert_eq!(
            PasswordHash::parse("pbkdf2-sha256$1$0011$0000"),
            Err(PasswordHashError::Parameters)
        );
    }

    #[test]
    fn users_refuse_unknown_wrong_and_anonymous() {
        let mut u = Users::new(false);
        u.insert("alice", PasswordHash::new(b"pw", b"12345678", 10));
        assert_eq!(u.check(Some(b"alice"), Some(b"pw")), Ok(()));
        let bad = Err(ReasonCode::BadUserNameOrPassword);
        assert_eq!(u.check(Some(b"alice"), Some(b"px")), bad);
        assert_eq!(u.check(Some(b"alice"), None), bad);
        assert_eq!(u.check(Some(b"bob"), Some(b"pw")), bad);
        assert_eq!(u.check(None, None), bad);
        u.allow_anonymous = true;
        assert_eq!(u.check(None, None), Ok(()));
    }
}
