//! The 64-byte greeting that opens every ZMTP 3.x connection (RFC 23, RFC 37).
//!
//! ```text
//! greeting  = signature version mechanism as-server filler
//! signature = %xFF padding %x7F      ; 10 bytes, padding not significant
//! version   = %x03 minor             ; major 3, minor 0 (ZMTP 3.0) or 1 (3.1)
//! mechanism = 20mechanism-char       ; "NULL", "PLAIN", "CURVE", NUL padded
//! as-server = %x00 | %x01
//! filler    = 31%x00
//! ```
//!
//! We send ours whole, at once, before reading anything (libzmq sends its own in
//! pieces, the signature first and the rest once it has seen ours, so waiting for the
//! peer's would deadlock). The peer's is parsed as it arrives: a bad signature or an old
//! major version fails as soon as the byte that shows it is in, not after 64 bytes.

use super::ZmtpError;
use crate::SegmentedBuffer;

/// The length of a ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;

/// Offsets of the fields in a greeting.
const MAJOR_AT: usize = 10;
const MINOR_AT: usize = 11;
const MECHANISM_AT: usize = 12;
const MECHANISM_LEN: usize = 20;
const AS_SERVER_AT: usize = 32;

/// A ZMTP protocol version, as the greeting carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version: 3 for every peer this engine talks to.
    pub major: u8,
    /// Minor version: 0 or 1.
    pub minor: u8,
}

impl Version {
    /// ZMTP 3.0 (RFC 23): subscriptions are messages, no heartbeats.
    pub const V3_0: Version = Version { major: 3, minor: 0 };
    /// ZMTP 3.1 (RFC 37): `SUBSCRIBE`/`CANCEL` commands and `PING`/`PONG`.
    pub const V3_1: Version = Version { major: 3, minor: 1 };

    /// The version two peers speak: the lower of the two, and 3.1 for a peer that
    /// announces something later than 3.1 (RFC 23: a peer accepts higher versions and
    /// speaks its own).
    pub fn negotiate(ours: Version, theirs: Version) -> Version {
        ours.min(theirs)
    }

    /// Whether this version has the 3.1 commands (`SUBSCRIBE`, `CANCEL`, `PING`, `PONG`).
    pub fn has_commands_of_3_1(self) -> bool {
        self >= Version::V3_1
    }
}

/// A security mechanism, as the greeting names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MechanismName {
    /// `NULL`: no security (RFC 23).
    Null,
    /// `PLAIN`: clear-text user name and password (RFC 24).
    Plain,
    /// `CURVE`: CurveZMQ (RFC 26), see [`curve`](super::curve).
    Curve,
}

impl MechanismName {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            MechanismName::Null => "NULL",
            MechanismName::Plain => "PLAIN",
            MechanismName::Curve => "CURVE",
        }
    }

    /// The mechanism a greeting's (NUL-trimmed) name field names, if it is one of ours.
    pub fn from_wire(name: &[u8]) -> Option<MechanismName> {
        [MechanismName::Null, MechanismName::Plain, MechanismName::Curve]
            .into_iter()
            .find(|m| m.as_str().as_bytes() == name)
    }
}

/// A parsed greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// The version the sender speaks.
    pub version: Version,
    /// The mechanism field, NUL padded, exactly as received.
    pub mechanism: [u8; MECHANISM_LEN],
    /// The as-server flag: whether the sender takes the server role of the mechanism
    /// (PLAIN and CURVE; NULL peers send 0).
    pub as_server: bool,
}

impl Greeting {
    /// The greeting this side sends: version 3.1, `mechanism`, `as_server`.
    pub fn new(mechanism: MechanismName, as_server: bool) -> Greeting {
        let mut field = [0u8; MECHANISM_LEN];
        let name = mechanism.as_str().as_bytes();
        field[..name.len()].copy_from_slice(name);
        Greeting {
            version: Version::V3_1,
            mechanism: field,
            as_server,
        }
    }

    /// The mechanism's name without the NUL padding.
    pub fn mechanism_name(&self) -> &[u8] {
        let end = self.mechanism.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &self.mechanism[..end]
    }

    /// The 64 bytes on the wire. The signature's padding is zero: it only matters to a
    /// ZMTP 1.0 peer, which this engine does not talk to.
    pub fn encode(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[0] = 0xFF;
        out[9] = 0x7F;
        out[MAJOR_AT] = self.version.major;
        out[MINOR_AT] = self.version.minor;
        out[MECHANISM_AT..MECHANISM_AT + MECHANISM_LEN].copy_from_slice(&self.mechanism);
        out[AS_SERVER_AT] = u8::from(self.as_server);
        out
    }

    /// Parses the peer's greeting from the front of `src`.
    ///
    /// `Ok(None)` while fewer than 64 bytes are in (nothing consumed); each byte that
    /// decides something is checked as soon as it is there, so a ZMTP 1.0 peer or an
    /// HTTP client is refused after its first byte. On success the 64 bytes are
    /// consumed and whatever follows (the first handshake command) stays in `src`.
    pub fn decode(src: &mut SegmentedBuffer) -> Result<Option<Greeting>, ZmtpError> {
        let mut raw = [0u8; GREETING_LEN];
        let have = src.copy_at(0, &mut raw);
        check_prefix(&raw[..have])?;
        if have < GREETING_LEN {
            return Ok(None);
        }
        src.advance(GREETING_LEN);
        let mut mechanism = [0u8; MECHANISM_LEN];
        mechanism.copy_from_slice(&raw[MECHANISM_AT..MECHANISM_AT + MECHANISM_LEN]);
        // The filler (bytes 33..64) is not significant: libzmq ignores it too.
        Ok(Some(Greeting {
            version: Version {
                major: raw[MAJOR_AT],
                minor: raw[MINOR_AT],
            },
            mechanism,
            as_server: raw[AS_SERVER_AT] != 0,
        }))
    }
}

/// Checks what has arrived of a greeting, byte by byte.
fn check_prefix(raw: &[u8]) -> Result<(), ZmtpError> {
    if let Some(&byte) = raw.first() {
        if byte != 0xFF {
            return Err(ZmtpError::BadSignature { at: 0, byte });
        }
    }
    if let Some(&byte) = raw.get(9) {
        // libzmq tells a ZMTP 1.0 peer by the low bit of byte 9; RFC 23 sends 0x7F.
        if byte & 0x01 == 0 {
            return Err(ZmtpError::BadSignature { at: 9, byte });
        }
    }
    // Judged once the minor is in too, so the error says the same whatever the cuts.
    if let (Some(&major), Some(&minor)) = (raw.get(MAJOR_AT), raw.get(MINOR_AT)) {
        if major < 3 {
            return Err(ZmtpError::UnsupportedVersion { major, minor });
        }
    }
    let mechanism = raw.get(MECHANISM_AT..).unwrap_or(&[]);
    let mechanism = &mechanism[..mechanism.len().min(MECHANISM_LEN)];
    let valid = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.+\0".contains(b);
    if !mechanism.iter().all(valid) {
        return Err(ZmtpError::BadMechanismName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libzmq 4.3's greeting for a NULL socket with no identity: padding 1 (identity
    /// length + 1), version 3.1.
    fn libzmq_null() -> Vec<u8> {
        let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 1];
        g.extend_from_slice(b"NULL");
        g.resize(64, 0);
        g
    }

    #[test]
    fn ours_is_64_bytes_with_signature_version_mechanism() {
        let g = Greeting::new(MechanismName::Plain, true).encode();
        assert_eq!(g.len(), 64);
        assert_eq!((g[0], g[9], g[10], g[11]), (0xFF, 0x7F, 3, 1));
        assert_eq!(&g[12..17], b"PLAIN");
        assert!(g[17..32].iter().all(|&b| b == 0));
        assert_eq!(g[32], 1);
        assert!(g[33..].iter().all(|&b| b == 0));
    }

    #[test]
    fn libzmqs_greeting_parses_in_its_two_pieces_and_byte_by_byte() {
        let wire = libzmq_null();
        // libzmq's pieces: signature and major, then the rest.
        let mut src = SegmentedBuffer::new();
        src.push_slice(&wire[..11]);
        assert_eq!(Greeting::decode(&mut src), Ok(None));
        assert_eq!(src.len(), 11, "nothing consumed");
        src.push_slice(&wire[11..]);
        src.push_slice(b"next");
        let g = Greeting::decode(&mut src).unwrap().expect("whole");
        assert_eq!(
            (g.version, g.mechanism_name(), g.as_server),
            (Version::V3_1, &b"NULL"[..], false)
        );
        assert_eq!(src.chunk(), b"next");

        let mut src = SegmentedBuffer::new();
        for (i, b) in wire.iter().enumerate() {
            assert_eq!(Greeting::decode(&mut src), Ok(None), "after {i} bytes");
            src.push_slice(&[*b]);
        }
        assert!(Greeting::decode(&mut src).unwrap().is_some());
    }

    #[test]
    fn bad_signatures_fail_on_the_byte_that_shows_them() {
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"G");
        assert_eq!(
            Greeting::decode(&mut src),
            Err(ZmtpError::BadSignature { at: 0, byte: b'G' })
        );
        // ZMTP 1.0: a length-prefixed identity, byte 9 without the low bit.
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x00]);
        assert_eq!(
            Greeting::decode(&mut src),
            Err(ZmtpError::BadSignature { at: 9, byte: 0 })
        );
        // ZMTP 2.0 (major 1): refused once its version is in.
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 1, 0]);
        assert_eq!(
            Greeting::decode(&mut src),
            Err(ZmtpError::UnsupportedVersion { major: 1, minor: 0 })
        );
        let mut wire = libzmq_null();
        wire[13] = b'u';
        let mut src = SegmentedBuffer::from(bytes::Bytes::from(wire));
        assert_eq!(Greeting::decode(&mut src), Err(ZmtpError::BadMechanismName));
    }

    #[test]
    fn versions_negotiate_down_to_3_0() {
        let v = |major, minor| Version { major, minor };
        assert_eq!(Version::negotiate(Version::V3_1, v(3, 0)), Version::V3_0);
        assert_eq!(Version::negotiate(Version::V3_1, v(3, 1)), Version::V3_1);
        assert_eq!(Version::negotiate(Version::V3_1, v(3, 7)), Version::V3_1);
        assert_eq!(Version::negotiate(Version::V3_1, v(4, 0)), Version::V3_1);
        assert!(!Version::V3_0.has_commands_of_3_1());
        assert!(Version::V3_1.has_commands_of_3_1());
    }
}
