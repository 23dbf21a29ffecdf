//! Z85 (ZeroMQ RFC 32): the printable form of CURVE keys, 5 characters for every 4
//! bytes. An encoding, not cryptography; written here because it is 40 lines.

use thiserror::Error;

/// The 85 characters, in the order of their values.
const ALPHABET: &[u8; 85] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why a Z85 string or input could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Z85Error {
    /// Z85 encodes whole 4-byte groups only.
    #[error("Z85 encodes a multiple of 4 bytes; got {0}")]
    BinaryLength(usize),
    /// A Z85 string is a multiple of 5 characters.
    #[error("a Z85 string is a multiple of 5 characters; got {0}")]
    TextLength(usize),
    /// A character outside the Z85 alphabet.
    #[error("{0:?} is not a Z85 character")]
    Character(char),
    /// A group of 5 characters whose value is 2^32 or more.
    #[error("a Z85 group at character {0} overflows 32 bits")]
    Overflow(usize),
}

/// The Z85 text of `data`, whose length must be a multiple of 4.
pub fn encode(data: &[u8]) -> Result<String, Z85Error> {
    if !data.len().is_multiple_of(4) {
        return Err(Z85Error::BinaryLength(data.len()));
    }
    let mut text = String::with_capacity(data.len() / 4 * 5);
    for group in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([group[0], group[1], group[2], group[3]]);
        let mut chars = [0u8; 5];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        text.extend(chars.iter().map(|&c| char::from(c)));
    }
    Ok(text)
}

/// The bytes a Z85 string stands for.
pub fn decode(text: &str) -> Result<Vec<u8>, Z85Error> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(Z85Error::TextLength(bytes.len()));
    }
    let mut data = Vec::with_capacity(bytes.len() / 5 * 4);
    for (g, group) in bytes.chunks_exact(5).enumerate() {
        let mut value: u64 = 0;
        for &c in group {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(Z85Error::Character(char::from(c)))?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow(g * 5))?;
        data.extend_from_slice(&value.to_be_bytes());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_32_test_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&data).unwrap(), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), data);
    }

    #[test]
    fn libzmq_test_key_round_trips() {
        // The server public key of libzmq's test_security_curve.
        let text = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let key = decode(text).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(encode(&key).unwrap(), text);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(encode(&[1, 2, 3]), Err(Z85Error::BinaryLength(3)));
        assert_eq!(decode("Hell"), Err(Z85Error::TextLength(4)));
        assert_eq!(decode("Hell\""), Err(Z85Error::Character('"')));
        assert_eq!(decode("#####"), Err(Z85Error::Overflow(0)));
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
