//! NKeys: the Ed25519 keys NATS authenticates with, in their text encoding, and the
//! `.creds` files that pair a user JWT with its seed.
//!
//! An encoded key is base32 (RFC 4648 alphabet, no padding) of a prefix, the raw key and
//! a CRC-16/XMODEM checksum (little endian) of everything before it. A seed (`S...`)
//! carries two prefix bytes: the seed prefix and the type of the public key it makes
//! (`SU...` for a user); a public key (`U...`) one.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};

/// The prefix byte of an encoded seed (`S`).
const PREFIX_SEED: u8 = 18 << 3;
/// The prefix byte of a user's public key (`U`).
const PREFIX_USER: u8 = 20 << 3;
/// RFC 4648 base32 alphabet.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a seed was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NKeyError {
    /// A character outside the base32 alphabet, or a length no seed has.
    #[error("seed is not base32 of the right length")]
    InvalidEncoding,
    /// The checksum does not match (a typo, a truncated copy).
    #[error("seed checksum mismatch")]
    InvalidChecksum,
    /// The text decodes but is not a seed (it is a public key, or garbage).
    #[error("not an NKey seed")]
    NotASeed,
    /// A seed, but for an account, operator or server key, not a user.
    #[error("not a user seed (SU...)")]
    NotAUserSeed,
}

/// Why a `.creds` file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredsError {
    /// No `-----BEGIN NATS USER JWT-----` block (or it is empty or unterminated).
    #[error("no user JWT block in the credentials")]
    MissingJwt,
    /// No `-----BEGIN USER NKEY SEED-----` block (or it is empty or unterminated).
    #[error("no user seed block in the credentials")]
    MissingSeed,
    /// The seed block holds an invalid seed.
    #[error(transparent)]
    Seed(#[from] NKeyError),
}

/// A user's Ed25519 key pair, from its seed.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

/// Shows the public key only.
impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyPair").field(&self.public_key()).finish()
    }
}

impl KeyPair {
    /// Decodes a user seed (`SU...`); surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`NKeyError`] says what is wrong with it.
    pub fn from_seed(seed: &str) -> Result<Self, NKeyError> {
        let raw = base32_decode(seed.trim().as_bytes()).ok_or(NKeyError::InvalidEncoding)?;
        // 2 prefix bytes + 32 key bytes + 2 checksum bytes.
        if raw.len() != 36 {
            return Err(NKeyError::InvalidEncoding);
        }
        let (body, sum) = raw.split_at(34);
        if crc16(body).to_le_bytes() != sum {
            return Err(NKeyError::InvalidChecksum);
        }
        if body[0] & 0xf8 != PREFIX_SEED {
            return Err(NKeyError::NotASeed);
        }
        let public_prefix = ((body[0] & 0x07) << 5) | ((body[1] & 0xf8) >> 3);
        if public_prefix != PREFIX_USER {
            return Err(NKeyError::NotAUserSeed);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&body[2..]);
        Ok(Self {
            signing: SigningKey::from_bytes(&key),
        })
    }

    /// The public key, encoded (`U...`): what `CONNECT` sends as `nkey`.
    pub fn public_key(&self) -> String {
        let mut raw = Vec::with_capacity(35);
        raw.push(PREFIX_USER);
        raw.extend_from_slice(self.signing.verifying_key().as_bytes());
        let sum = crc16(&raw);
        raw.extend_from_slice(&sum.to_le_bytes());
        base32_encode(&raw)
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The signature of a server nonce as `CONNECT` sends it (`sig`): base64url without
    /// padding.
    pub fn sign_nonce(&self, nonce: &str) -> String {
        base64url_encode(&self.sign(nonce.as_bytes()))
    }
}

/// The two parts of a `.creds` file.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Creds {
    pub jwt: String,
    pub seed: String,
}

/// Shows neither secret.
impl fmt::Debug for Creds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Creds(<redacted>)")
    }
}

impl Creds {
    /// Finds the JWT and seed blocks, as nats.go does: the first non-empty line after
    /// each `-----BEGIN ...-----` marker, up to its `------END ...------` marker.
    pub fn parse(contents: &str) -> Result<Self, CredsError> {
        let jwt = block(contents, "NATS USER JWT").ok_or(CredsError::MissingJwt)?;
        let seed = block(contents, "USER NKEY SEED").ok_or(CredsError::MissingSeed)?;
        Ok(Self {
            jwt: jwt.to_owned(),
            seed: seed.to_owned(),
        })
    }
}

/// The content of the block whose BEGIN marker names `what`: its first non-blank line,
/// provided an END marker follows.
fn block<'a>(contents: &'a str, what: &str) -> Option<&'a str> {
    let mut lines = contents.lines().map(str::trim);
    lines.find(|l| is_marker(l, "BEGIN", what))?;
    let mut value = None;
    for line in lines {
        if line.starts_with("---") {
            return value.filter(|_| line.contains("END"));
        }
        if value.is_none() && !line.is_empty() {
            value = Some(line);
        }
    }
    None
}

/// `-----BEGIN NATS USER JWT-----` (any run of dashes, as `nsc` writes them).
fn is_marker(line: &str, verb: &str, what: &str) -> bool {
    let inner = line.trim_matches('-').trim();
    inner.strip_prefix(verb).is_some_and(|rest| rest.trim() == what) && line.starts_with("---")
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), as nkeys checksums.
pub(crate) fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Base32 without padding.
pub(crate) fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 without padding; `None` on a character outside the alphabet.
pub(crate) fn base32_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &c in text {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Base64url (RFC 4648 §5) without padding.
pub(crate) fn base64url_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user seed and what it makes, from the nkeys test vectors (Elixir `nkeys`
    /// package, checked against nats.go).
    const SEED: &str = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
    const PUBLIC: &str = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L";

    #[test]
    fn seed_makes_the_known_public_key_and_signatures() {
        let key = KeyPair::from_seed(SEED).unwrap();
        assert_eq!(key.public_key(), PUBLIC);
        // Standard base64 of the signature of "PXoWU7zWAMt75FY" in the vectors:
        // ZaAiVDgB5CeYoXoQ7cBCmq+ZllzUnGUoDVb8C7PilWvCs8XKfUchAUhz2P4BYAF++Dg3w05CqyQFRDiGL6LrDw==
        assert_eq!(
            key.sign_nonce("PXoWU7zWAMt75FY"),
            "ZaAiVDgB5CeYoXoQ7cBCmq-ZllzUnGUoDVb8C7PilWvCs8XKfUchAUhz2P4BYAF--Dg3w05CqyQFRDiGL6LrDw"
        );
        assert_eq!(
            key.sign_nonce("iBFByN3zQjAT7dQ"),
            "kagPGrixaWS5yuHqw9nTQrda1Q376fK3fRCGtYdF4_w2aSk-4O7Ca0JM0qvzm69HH6MoMps2yF6Q0Qs830JZCA"
        );
    }

    #[test]
    fn crc16_xmodem_check_values() {
        assert_eq!(crc16(b""), 0);
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b"abc"), 0x9DD6);
    }

    #[test]
    fn base32_round_trips() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base32_decode(base32_encode(&data).as_bytes()).unwrap(), data);
        }
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert!(base32_decode(b"MZXW6YTBO1").is_none());
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
        ] {
            assert_eq!(base64url_encode(input.as_bytes()), want);
        }
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn bad_seeds_say_why() {
        assert_eq!(KeyPair::from_seed("SU!").unwrap_err(), NKeyError::InvalidEncoding);
        assert_eq!(KeyPair::from_seed("SUAM").unwrap_err(), NKeyError::InvalidEncoding);
        let mut typo = SEED.to_owned();
        typo.replace_range(10..11, if &SEED[10..11] == "A" { "B" } else { "A" });
        assert_eq!(KeyPair::from_seed(&typo).unwrap_err(), NKeyError::InvalidChecksum);
        // A public key decodes with a valid checksum but is one byte short of a seed.
        assert_eq!(KeyPair::from_seed(PUBLIC).unwrap_err(), NKeyError::InvalidEncoding);
        // An account seed (SA...): same layout, another public prefix.
        let mut raw = base32_decode(SEED.as_bytes()).unwrap();
        raw.truncate(34);
        let account: u8 = 0; // 'A'
        raw[0] = PREFIX_SEED | (account >> 5);
        raw[1] = (account & 31) << 3;
        let sum = crc16(&raw);
        raw.extend_from_slice(&sum.to_le_bytes());
        let account_seed = base32_encode(&raw);
        assert!(account_seed.starts_with("SA"), "{account_seed}");
        assert_eq!(KeyPair::from_seed(&account_seed).unwrap_err(), NKeyError::NotAUserSeed);
        // A public key's bytes padded to seed length: right size and checksum, wrong prefix.
        let mut raw = vec![PREFIX_USER; 34];
        let sum = crc16(&raw);
        raw.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(
            KeyPair::from_seed(&base32_encode(&raw)).unwrap_err(),
            NKeyError::NotASeed
        );
    }

    #[test]
    fn creds_file_blocks() {
        let file = format!(
            "-----BEGIN NATS USER JWT-----\neyJhbGciOi.payload.sig\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{SEED}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        );
        let creds = Creds::parse(&file).unwrap();
        assert_eq!(creds.jwt, "eyJhbGciOi.payload.sig");
        assert_eq!(creds.seed, SEED);
        let crlf = file.replace('\n', "\r\n");
        assert!(Creds::parse(&crlf).is_ok());
        assert_eq!(
            Creds::parse(&file.replace("BEGIN NATS USER JWT", "BEGIN X")).unwrap_err(),
            CredsError::MissingJwt
        );
        let unterminated = file.split("------END USER").next().unwrap_or_default();
        assert_eq!(Creds::parse(unterminated).unwrap_err(), CredsError::MissingSeed);
        assert_eq!(
            Creds::parse("-----BEGIN NATS USER JWT-----\n\n------END NATS USER JWT------\n").unwrap_err(),
            CredsError::MissingJwt
        );
    }
}
