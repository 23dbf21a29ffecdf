//! The CURVE client's half of the handshake: `HELLO`, then `INITIATE` once `WELCOME`
//! opened, then the session key once `READY` opened.

use bytes::Bytes;
use crypto_box::SalsaBox;

use super::boxes::{self, malformed, nonce, salsa_box, seal, short_nonce};
use super::cipher::{MessageCipher, Role};
use super::keys::{KeyPair, PublicKey};
use super::random::CurveRandom;
use crate::zmtp::ZmtpError;

/// A CURVE client connection's keys and progress.
pub(crate) struct CurveClient {
    /// Our long-term pair (C, c).
    keys: KeyPair,
    /// The server's long-term public key (S), known in advance.
    server_key: PublicKey,
    /// Our transient pair (C', c'), made for this connection.
    transient: KeyPair,
    /// The vouch's nonce, taken (once) when `INITIATE` is written.
    vouch_nonce: Option<[u8; 16]>,
    /// Box[..](C'->S'), once `WELCOME` told us S'.
    session: Option<SalsaBox>,
    /// The cookie `WELCOME` carried, returned in `INITIATE`.
    cookie: [u8; boxes::COOKIE_LEN],
    /// Our next short nonce: `HELLO` 1, `INITIATE` 2, messages from 3.
    nonce: u64,
}

impl std::fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveClient")
            .field("server_key", &self.server_key)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl CurveClient {
    /// A client with long-term `keys` that expects the server `server_key`; its
    /// transient pair and vouch nonce come from `random`.
    pub(crate) fn new(keys: KeyPair, server_key: PublicKey, random: CurveRandom) -> CurveClient {
        CurveClient {
            keys,
            server_key,
            transient: KeyPair::from_secret(random.transient()),
            vouch_nonce: Some(random.vouch_nonce()),
            session: None,
            cookie: [0; boxes::COOKIE_LEN],
            nonce: 1,
        }
    }

    fn take_nonce(&mut self) -> u64 {
        let n = self.nonce;
        self.nonce += 1;
        n
    }

    /// The `HELLO` command body: C' and a box of 64 zeros from C' to S, which proves to
    /// the server that we know S (and lets it answer us, and no one else).
    pub(crate) fn hello(&mut self) -> Vec<u8> {
        let n = self.take_nonce();
        let signature = seal(
            &salsa_box(&self.server_key, &self.transient.secret),
            &short_nonce(b"CurveZMQHELLO---", n),
            &[0u8; 64],
        );
        let mut body = Vec::with_capacity(boxes::HELLO_LEN);
        body.extend_from_slice(b"\x05HELLO\x01\x00");
        body.resize(80, 0);
        body.extend_from_slice(&self.transient.public.0);
        body.extend_from_slice(&n.to_be_bytes());
        body.extend_from_slice(&signature);
        body
    }

    /// Opens `WELCOME` (a box from S to C': S' and the cookie) and answers with the
    /// `INITIATE` body carrying our long-term key, its vouch and `metadata`.
    pub(crate) fn welcome(&mut self, body: &[u8], metadata: &[u8]) -> Result<Vec<u8>, ZmtpError> {
        let vouch_nonce = self.vouch_nonce.take().ok_or(ZmtpError::UnexpectedCommand {
            command: "WELCOME".into(),
            mechanism: "CURVE",
        })?;
        if body.len() != boxes::WELCOME_LEN {
            return Err(malformed("WELCOME", "not 168 bytes"));
        }
        let plain = boxes::open(
            &salsa_box(&self.server_key, &self.transient.secret),
            &nonce(b"WELCOME-", &body[8..24]),
            &body[24..],
            "WELCOME",
        )?;
        let server_transient = PublicKey(boxes::key32(&plain[..32]));
        self.cookie.copy_from_slice(&plain[32..32 + boxes::COOKIE_LEN]);
        let session = salsa_box(&server_transient, &self.transient.secret);

        // vouch = Box[C' + S](C->S'): our long-term key stands for this transient one.
        let mut vouched = [0u8; 64];
        vouched[..32].copy_from_slice(&self.transient.public.0);
        vouched[32..].copy_from_slice(&self.server_key.0);
        let vouch = seal(
            &salsa_box(&server_transient, &self.keys.secret),
            &nonce(b"VOUCH---", &vouch_nonce),
            &vouched,
        );

        let mut plain = Vec::with_capacity(128 + metadata.len());
        plain.extend_from_slice(&self.keys.public.0);
        plain.extend_from_slice(&vouch_nonce);
        plain.extend_from_slice(&vouch);
        plain.extend_from_slice(metadata);
        let n = self.take_nonce();
        let sealed = seal(&session, &short_nonce(b"CurveZMQINITIATE", n), &plain);

        let mut initiate = Vec::with_capacity(9 + boxes::COOKIE_LEN + 8 + sealed.len());
        initiate.extend_from_slice(b"\x08INITIATE");
        initiate.extend_from_slice(&self.cookie);
        initiate.extend_from_slice(&n.to_be_bytes());
        initiate.extend_from_slice(&sealed);
        self.session = Some(session);
        Ok(initiate)
    }

    /// Opens `READY` (a box from S' to C' of the server's metadata); returns the
    /// metadata and the cipher for the messages that follow.
    pub(crate) fn ready(&mut self, body: &[u8]) -> Result<(Bytes, MessageCipher), ZmtpError> {
        let session = self.session.take().ok_or(ZmtpError::UnexpectedCommand {
            command: "READY".into(),
            mechanism: "CURVE",
        })?;
        if body.len() < boxes::READY_MIN {
            return Err(malformed("READY", "shorter than a box"));
        }
        let peer_nonce = boxes::counter(&body[6..14]);
        let plain = boxes::open(
            &session,
            &short_nonce(b"CurveZMQREADY---", peer_nonce),
            &body[14..],
            "READY",
        )?;
        Ok((
            Bytes::from(plain),
            MessageCipher::with_counters(Role::Client, session, self.nonce, peer_nonce),
        ))
    }
}
