//! The CURVE server's half of the handshake: `WELCOME` for a `HELLO` that opened,
//! the client's long-term key out of a verified `INITIATE` (for the caller to judge),
//! then `READY` and the session key.

use bytes::Bytes;
use crypto_box::SalsaBox;
use zeroize::Zeroizing;

use super::boxes::{self, malformed, nonce, salsa_box, seal, short_nonce};
use super::cipher::{MessageCipher, Role};
use super::keys::{KeyPair, PublicKey};
use super::random::CurveRandom;
use crate::zmtp::ZmtpError;

/// A CURVE server connection's keys and progress.
pub(crate) struct CurveServer {
    /// Our long-term pair (S, s).
    keys: KeyPair,
    /// Our transient pair (S', s') for this connection.
    transient: KeyPair,
    /// The client's transient key (C'), from `HELLO`.
    client_transient: Option<PublicKey>,
    /// The cookie key and the two long nonces, taken (once) when `WELCOME` is written.
    random: Option<CurveRandom>,
    /// This connection's cookie key, set when `WELCOME` is written.
    cookie_key: Zeroizing<[u8; 32]>,
    /// Box[..](S'->C'), once `INITIATE` opened.
    session: Option<SalsaBox>,
    /// The client's `INITIATE` nonce: its messages must go above it.
    peer_nonce: u64,
    /// Our next short nonce: `READY` 1, messages from 2.
    nonce: u64,
}

impl std::fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServer")
            .field("public", &self.keys.public)
            .field("client_transient", &self.client_transient)
            .finish_non_exhaustive()
    }
}

impl CurveServer {
    /// A server with long-term `keys`; its transient pair, cookie key and long nonces
    /// come from `random`.
    pub(crate) fn new(keys: KeyPair, random: CurveRandom) -> CurveServer {
        CurveServer {
            keys,
            transient: KeyPair::from_secret(random.transient()),
            random: Some(random),
            client_transient: None,
            cookie_key: Zeroizing::new([0; 32]),
            session: None,
            peer_nonce: 0,
            nonce: 1,
        }
    }

    /// Checks `HELLO` (size, version 1.0, the signature box opens with our secret key)
    /// and writes the `WELCOME` body: S' and a cookie, boxed for C'.
    pub(crate) fn hello(&mut self, body: &[u8]) -> Result<Vec<u8>, ZmtpError> {
        let random = self.random.take().ok_or(ZmtpError::UnexpectedCommand {
            command: "HELLO".into(),
            mechanism: "CURVE",
        })?;
        if body.len() != boxes::HELLO_LEN {
            return Err(malformed("HELLO", "not 200 bytes"));
        }
        if body[6..8] != [1, 0] {
            return Err(malformed("HELLO", "a CurveZMQ version other than 1.0"));
        }
        let client_transient = PublicKey(boxes::key32(&body[80..112]));
        let signature = boxes::open(
            &salsa_box(&client_transient, &self.keys.secret),
            &nonce(b"CurveZMQHELLO---", &body[112..120]),
            &body[120..200],
            "HELLO",
        )?;
        if signature.iter().any(|&b| b != 0) {
            return Err(malformed("HELLO", "a signature box that is not 64 zeros"));
        }
        self.client_transient = Some(client_transient);

        // cookie = [nonce, SecretBox[C' + s'](cookie key)]
        self.cookie_key = random.cookie_key();
        let cookie_nonce = random.cookie_nonce();
        let mut cookie_plain = Zeroizing::new([0u8; 64]);
        cookie_plain[..32].copy_from_slice(&client_transient.0);
        cookie_plain[32..].copy_from_slice(self.transient.secret.as_bytes());
        let cookie_box = boxes::cookie_seal(&self.cookie_key, &nonce(b"COOKIE--", &cookie_nonce), &cookie_plain[..]);

        let mut plain = Vec::with_capacity(128);
        plain.extend_from_slice(&self.transient.public.0);
        plain.extend_from_slice(&cookie_nonce);
        plain.extend_from_slice(&cookie_box);
        let welcome_nonce = random.welcome_nonce();
        let sealed = seal(
            &salsa_box(&client_transient, &self.keys.secret),
            &nonce(b"WELCOME-", &welcome_nonce),
            &plain,
        );
        let mut welcome = Vec::with_capacity(boxes::WELCOME_LEN);
        welcome.extend_from_slice(b"\x07WELCOME");
        welcome.extend_from_slice(&welcome_nonce);
        welcome.extend_from_slice(&sealed);
        Ok(welcome)
    }

    /// Checks `INITIATE`: the cookie is ours and names this connection's keys, the box
    /// opens with C' and s', the vouch opens with the client's long-term key and names
    /// C' and S. Returns that long-term key (for the authenticator) and the metadata.
    pub(crate) fn initiate(&mut self, body: &[u8]) -> Result<(PublicKey, Bytes), ZmtpError> {
        let client_transient = self.client_transient.ok_or(ZmtpError::UnexpectedCommand {
            command: "INITIATE".into(),
            mechanism: "CURVE",
        })?;
        if body.len() < boxes::INITIATE_MIN {
            return Err(malformed("INITIATE", "shorter than its boxes"));
        }
        let cookie = boxes::cookie_open(&self.cookie_key, &nonce(b"COOKIE--", &body[9..25]), &body[25..105])?;
        let cookie = Zeroizing::new(cookie);
        if cookie[..32] != client_transient.0 || cookie[32..64] != self.transient.secret.as_bytes()[..] {
            return Err(ZmtpError::CurveBox { command: "cookie" });
        }
        let peer_nonce = boxes::counter(&body[105..113]);
        let session = salsa_box(&client_transient, &self.transient.secret);
        let plain = boxes::open(
            &session,
            &short_nonce(b"CurveZMQINITIATE", peer_nonce),
            &body[113..],
            "INITIATE",
        )?;
        let client_key = PublicKey(boxes::key32(&plain[..32]));
        let vouch = boxes::open(
            &salsa_box(&client_key, &self.transient.secret),
            &nonce(b"VOUCH---", &plain[32..48]),
            &plain[48..128],
            "vouch",
        )?;
        if vouch[..32] != client_transient.0 || vouch[32..64] != self.keys.public.0 {
            return Err(malformed("INITIATE", "a vouch for other keys"));
        }
        self.session = Some(session);
        self.peer_nonce = peer_nonce;
        Ok((client_key, Bytes::copy_from_slice(&plain[128..])))
    }

    /// The `READY` body with our `metadata`, and the cipher for the messages after it.
    /// Only after a verified `INITIATE`.
    pub(crate) fn ready(&mut self, metadata: &[u8]) -> Result<(Vec<u8>, MessageCipher), ZmtpError> {
        let session = self.session.take().ok_or(ZmtpError::UnexpectedCommand {
            command: "READY".into(),
            mechanism: "CURVE",
        })?;
        let n = self.nonce;
        self.nonce += 1;
        let sealed = seal(&session, &short_nonce(b"CurveZMQREADY---", n), metadata);
        let mut ready = Vec::with_capacity(14 + sealed.len());
        ready.extend_from_slice(b"\x05READY");
        ready.extend_from_slice(&n.to_be_bytes());
        ready.extend_from_slice(&sealed);
        Ok((
            ready,
            MessageCipher::with_counters(Role::Server, session, self.nonce, self.peer_nonce),
        ))
    }
}
