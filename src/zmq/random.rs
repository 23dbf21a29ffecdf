//! The randomness CURVE needs, drawn here from the operating system's generator
//! (`getrandom`) because `monocoque-proto` reads none: key pairs for `keygen`, and
//! fresh bytes for every connection's handshake (its transient key and long nonces).

use std::time::Instant;

use monocoque_proto::zmtp::curve::{CurveRandom, KeyPair, SecretKey, KEY_LEN};
use monocoque_proto::zmtp::{Connection, ConnectionConfig, Mechanism, ZmtpError};

use super::ZmqError;

/// A fresh CURVE key pair from the operating system's generator, as libzmq's
/// `zmq_curve_keypair` (and `monocoque zmq keygen`) make one.
pub fn generate_keypair() -> Result<KeyPair, ZmqError> {
    let mut secret = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    getrandom::getrandom(&mut secret[..]).map_err(ZmqError::Random)?;
    Ok(KeyPair::from_secret(SecretKey::from_bytes(*secret)))
}

/// A random starting number for a socket's counters (a ROUTER's generated
/// identities, a REQ's request ids), as libzmq draws them, so that a restarted socket
/// does not reuse the last one's.
pub(crate) fn seed() -> Result<u32, ZmqError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).map_err(ZmqError::Random)?;
    Ok(u32::from_ne_bytes(bytes))
}

/// Fresh random bytes for one CURVE handshake.
fn curve_random() -> Result<CurveRandom, getrandom::Error> {
    let mut bytes = zeroize::Zeroizing::new([0u8; CurveRandom::LEN]);
    getrandom::getrandom(&mut bytes[..])?;
    Ok(CurveRandom::from_bytes(*bytes))
}

/// A new connection with `config`; a CURVE one gets its own fresh random bytes, so no
/// two connections share a transient key or a nonce. Fails as [`Connection::new`]
/// does, or with [`ZmtpError::CurveRandomMissing`] if the generator failed.
pub(crate) fn connection(config: &ConnectionConfig, now: Instant) -> Result<Connection, ZmtpError> {
    match config.handshake.mechanism {
        Mechanism::CurveClient { .. } | Mechanism::CurveServer { .. } => {
            let random = curve_random().map_err(|_| ZmtpError::CurveRandomMissing)?;
            Connection::with_random(config.clone(), random, now)
        }
        _ => Connection::new(config.clone(), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monocoque_proto::zmtp::{HandshakeConfig, SocketType};
    use monocoque_proto::Session;

    #[test]
    fn generated_pairs_differ() {
        let (a, b) = (generate_keypair().unwrap(), generate_keypair().unwrap());
        assert_ne!(a.public, b.public);
        assert_eq!(a.secret.public_key(), a.public);
    }

    #[test]
    fn each_curve_connection_gets_its_own_transient_key() {
        let server = generate_keypair().unwrap();
        let mut handshake = HandshakeConfig::null(SocketType::Dealer);
        handshake.mechanism = Mechanism::CurveClient {
            keys: generate_keypair().unwrap(),
            server_key: server.public,
        };
        let config = ConnectionConfig::new(handshake);
        let now = Instant::now();
        // The greeting (64 bytes) then HELLO, whose body holds C' at 80..112.
        let hello_key = |conn: &mut Connection| {
            let out = conn.poll_transmit().expect("greeting and HELLO").to_vec();
            out[64 + 2 + 80..64 + 2 + 112].to_vec()
        };
        let (mut a, mut b) = (connection(&config, now).unwrap(), connection(&config, now).unwrap());
        assert_ne!(hello_key(&mut a), hello_key(&mut b));
        // Without the body's bytes the proto crate refuses to make up its own.
        assert_eq!(Connection::new(config, now).err(), Some(ZmtpError::CurveRandomMissing));
    }
}
