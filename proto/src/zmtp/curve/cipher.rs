//! The `MESSAGE` box: every frame (and every command) after a CURVE handshake, sealed
//! with the session key and a strictly increasing 8-byte nonce.
//!
//! ```text
//! message = "\x07MESSAGE" nonce box    ; nonce: 8 bytes, big-endian counter
//! box     = Box[flags frame](C'->S')   ; flags: bit 0 MORE, bit 1 COMMAND
//! ```
//!
//! libzmq sends the sealed `MESSAGE` in a plain (non-command) frame and reads it from
//! either kind; so do we.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;

use super::boxes::{counter, malformed, short_nonce, TAG_LEN};
use super::keys::{PublicKey, SecretKey};
use crate::zmtp::frame::frame_header;
use crate::zmtp::ZmtpError;
use crate::IoArena;

/// The command name that starts every sealed frame.
const NAME: &[u8; 8] = b"\x07MESSAGE";

/// What sealing adds to a frame: name, nonce, tag and flags byte.
pub const MESSAGE_OVERHEAD: usize = 8 + 8 + TAG_LEN + 1;

/// Where a `MESSAGE` body's box starts: name, nonce and tag come first.
const BOX_AT: usize = 8 + 8 + TAG_LEN;

/// The first allocation of the buffer opened frames are decrypted into. Opened frames
/// are cut from it, so a run of small frames shares one allocation (as unsealed frames
/// share the input's segments) instead of taking one each.
const PLAIN_CHUNK: usize = 4096;

/// Inside the box: another frame of the message follows.
pub const INNER_MORE: u8 = 0x01;
/// Inside the box: the frame is a command (`PING`, `SUBSCRIBE`...).
pub const INNER_COMMAND: u8 = 0x02;

/// Which side of the connection a cipher seals for: the nonce prefixes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The CURVE client (it sealed `HELLO`).
    Client,
    /// The CURVE server.
    Server,
}

/// One connection's session key and nonce counters, both directions. Not `Clone`: two
/// copies would seal with the same nonces.
pub struct MessageCipher {
    key: SalsaBox,
    ours: &'static [u8; 16],
    theirs: &'static [u8; 16],
    /// The nonce of our next `MESSAGE`.
    next: u64,
    /// The last nonce accepted from the peer (a `MESSAGE` must be above it).
    peer: u64,
    /// Where boxes are opened: each opened frame is split off the front, the rest of
    /// the allocation waits for the next ones (empty between calls).
    plain: BytesMut,
}

impl std::fmt::Debug for MessageCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCipher")
            .field("next", &self.next)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl MessageCipher {
    /// A cipher between our transient `secret` and the peer's transient `public`, its
    /// counters at their start: the first `MESSAGE` each way carries nonce 1. The
    /// handshake starts them later (its own commands used the first nonces).
    pub fn new(role: Role, secret: &SecretKey, public: &PublicKey) -> MessageCipher {
        MessageCipher::with_counters(role, super::boxes::salsa_box(public, secret), 1, 0)
    }

    pub(crate) fn with_counters(role: Role, key: SalsaBox, next: u64, peer: u64) -> MessageCipher {
        let (ours, theirs) = match role {
            Role::Client => (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES"),
            Role::Server => (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC"),
        };
        MessageCipher {
            key,
            ours,
            theirs,
            next,
            peer,
            plain: BytesMut::new(),
        }
    }

    /// The nonce the next sealed frame will carry.
    pub fn next_nonce(&self) -> u64 {
        self.next
    }

    /// Seals one frame (`inner_flags`: `INNER_MORE`, `INNER_COMMAND`) into a
    /// `MESSAGE` command body. Fails only when the nonce counter is spent (after 2^64
    /// frames), as reusing one would give the key away.
    pub fn seal(&mut self, inner_flags: u8, frame: &[u8]) -> Result<Bytes, ZmtpError> {
        let counter = self.take_nonce()?;
        let mut out = BytesMut::with_capacity(MESSAGE_OVERHEAD + frame.len());
        out.put_slice(&body_head(counter, inner_flags));
        out.put_slice(frame);
        self.encrypt(counter, &mut out)?;
        Ok(out.freeze())
    }

    /// [`seal`](Self::seal) as a whole ZMTP frame written straight into `out`: the
    /// frame header (a plain frame: libzmq sends `MESSAGE` in one), then the body,
    /// encrypted where it lies, with no buffer of its own. On failure nothing is
    /// written.
    pub fn seal_frame_into(&mut self, inner_flags: u8, frame: &[u8], out: &mut IoArena) -> Result<(), ZmtpError> {
        let counter = self.take_nonce()?;
        let (header, at) = frame_header(0, (MESSAGE_OVERHEAD + frame.len()) as u64);
        let mut head = [0u8; 9 + MESSAGE_OVERHEAD];
        head[..at].copy_from_slice(&header[..at]);
        head[at..at + MESSAGE_OVERHEAD].copy_from_slice(&body_head(counter, inner_flags));
        out.put_edited(&head[..at + MESSAGE_OVERHEAD], frame, |sealed| {
            self.encrypt(counter, &mut sealed[at..])
        })
    }

    /// The nonce for the next frame, the counter moved past it.
    fn take_nonce(&mut self) -> Result<u64, ZmtpError> {
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(ZmtpError::Encode {
            what: "a CURVE nonce past 2^64 - 1",
        })?;
        Ok(counter)
    }

    /// Encrypts a `MESSAGE` body laid out by [`body_head`] and the frame: the box from
    /// [`BOX_AT`] on in place, its tag written in front of it.
    fn encrypt(&self, counter: u64, body: &mut [u8]) -> Result<(), ZmtpError> {
        let (front, boxed) = body.split_at_mut(BOX_AT);
        // Encryption of a slice in memory has no failure mode.
        let tag = self
            .key
            .encrypt_in_place_detached((&short_nonce(self.ours, counter)).into(), b"", boxed)
            .map_err(|_| ZmtpError::Encode { what: "a CURVE box" })?;
        front[16..].copy_from_slice(&tag);
        Ok(())
    }

    /// Opens a `MESSAGE` command body: the inner flags and the frame. Fails on another
    /// command, a body too short to hold a box, a nonce not above the last one (a
    /// replay or reordering) and a box that does not open (tampered, or another key).
    pub fn open(&mut self, body: &[u8]) -> Result<(u8, Bytes), ZmtpError> {
        if body.len() < NAME.len() || &body[..NAME.len()] != NAME {
            return Err(ZmtpError::UnexpectedCommand {
                command: String::from_utf8_lossy(body.get(1..body.len().min(9)).unwrap_or_default()).into_owned(),
                mechanism: "CURVE",
            });
        }
        if body.len() < MESSAGE_OVERHEAD {
            return Err(malformed("MESSAGE", "shorter than a box"));
        }
        let nonce = counter(&body[8..16]);
        if nonce <= self.peer {
            return Err(ZmtpError::CurveNonce { nonce, last: self.peer });
        }
        let tag = crypto_box::aead::Tag::<SalsaBox>::clone_from_slice(&body[16..BOX_AT]);
        let boxed = &body[BOX_AT..];
        // The body is already in memory (the decoder bounded it): this copies it, into
        // what is left of the current allocation while the frame fits there.
        if self.plain.capacity() < boxed.len() {
            self.plain.reserve(boxed.len().max(PLAIN_CHUNK));
        }
        self.plain.extend_from_slice(boxed);
        if self
            .key
            .decrypt_in_place_detached((&short_nonce(self.theirs, nonce)).into(), b"", &mut self.plain, &tag)
            .is_err()
        {
            self.plain.clear();
            return Err(ZmtpError::CurveBox { command: "MESSAGE" });
        }
        self.peer = nonce;
        let flags = self.plain[0];
        self.plain.advance(1);
        Ok((flags, self.plain.split().freeze()))
    }
}

/// A `MESSAGE` body's first bytes: name, nonce, room for the tag, the inner flags.
fn body_head(counter: u64, inner_flags: u8) -> [u8; MESSAGE_OVERHEAD] {
    let mut head = [0u8; MESSAGE_OVERHEAD];
    head[..8].copy_from_slice(NAME);
    head[8..16].copy_from_slice(&counter.to_be_bytes());
    head[BOX_AT] = inner_flags;
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (MessageCipher, MessageCipher) {
        let (c, s) = (SecretKey::from_bytes([1; 32]), SecretKey::from_bytes([2; 32]));
        (
            MessageCipher::new(Role::Client, &c, &s.public_key()),
            MessageCipher::new(Role::Server, &s, &c.public_key()),
        )
    }

    #[test]
    fn seal_open_and_nonces_only_go_up() {
        let (mut client, mut server) = pair();
        let first = client.seal(INNER_MORE, b"hello").unwrap();
        let second = client.seal(0, b"").unwrap();
        assert_eq!(first.len(), MESSAGE_OVERHEAD + 5);
        assert_eq!(&first[8..16], &1u64.to_be_bytes());
        assert_eq!(server.open(&first).unwrap(), (INNER_MORE, Bytes::from_static(b"hello")));
        assert_eq!(
            server.open(&first),
            Err(ZmtpError::CurveNonce { nonce: 1, last: 1 }),
            "replay"
        );
        assert_eq!(server.open(&second).unwrap(), (0, Bytes::new()));

        // Out of order: the second first, then the first is a step back.
        let (mut client, mut server) = pair();
        let first = client.seal(0, b"a").unwrap();
        let second = client.seal(0, b"b").unwrap();
        server.open(&second).unwrap();
        assert_eq!(server.open(&first), Err(ZmtpError::CurveNonce { nonce: 1, last: 2 }));

        // Each direction has its own prefix: a side's own box does not open for it.
        let own = client.seal(0, b"x").unwrap();
        assert_eq!(client.open(&own), Err(ZmtpError::CurveBox { command: "MESSAGE" }));
    }

    #[test]
    fn a_frame_sealed_into_the_arena_is_the_header_and_the_same_body() {
        let (mut client, _) = pair();
        let (mut twin, _) = pair();
        let mut out = IoArena::new();
        out.put_slice(b"before");
        for len in [0, 5, 255 - MESSAGE_OVERHEAD, 256 - MESSAGE_OVERHEAD, 5000] {
            let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut want = out.to_vec();
            let body = twin.seal(INNER_MORE, &frame).unwrap();
            let (header, at) = frame_header(0, body.len() as u64);
            want.extend_from_slice(&header[..at]);
            want.extend_from_slice(&body);
            client.seal_frame_into(INNER_MORE, &frame, &mut out).unwrap();
            assert_eq!(out.to_vec(), want, "{len}");
        }
        // A spent counter writes nothing.
        client.next = u64::MAX;
        let before = out.to_vec();
        assert!(matches!(
            client.seal_frame_into(0, b"x", &mut out),
            Err(ZmtpError::Encode { .. })
        ));
        assert_eq!(out.to_vec(), before);
    }

    #[test]
    fn opened_frames_stay_intact_across_the_shared_buffer() {
        let (mut client, mut server) = pair();
        // Small frames past one allocation, a large one, failures in between.
        let sizes = (0..300).map(|i| i % 70).chain([PLAIN_CHUNK * 3, 1, 0, 64]);
        let mut opened = Vec::new();
        for (i, len) in sizes.enumerate() {
            let frame: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
            let sealed = client.seal(0, &frame).unwrap();
            if i % 50 == 7 {
                let mut bad = sealed.to_vec();
                *bad.last_mut().unwrap() ^= 0x80;
                assert_eq!(server.open(&bad), Err(ZmtpError::CurveBox { command: "MESSAGE" }));
            }
            let (flags, body) = server.open(&sealed).unwrap();
            assert_eq!(flags, 0);
            opened.push((frame, body));
        }
        for (i, (frame, body)) in opened.iter().enumerate() {
            assert_eq!(&body[..], &frame[..], "frame {i}");
        }
    }

    #[test]
    fn tampered_or_short_bodies_fail() {
        let (mut client, mut server) = pair();
        let sealed = client.seal(0, b"payload").unwrap();
        for at in [16, 20, 32, 33, sealed.len() - 1] {
            let mut bad = sealed.to_vec();
            bad[at] ^= 1;
            // A failed open leaves the counters as they were.
            assert_eq!(
                server.open(&bad),
                Err(ZmtpError::CurveBox { command: "MESSAGE" }),
                "byte {at}"
            );
        }
        assert!(matches!(
            server.open(&sealed[..20]),
            Err(ZmtpError::MalformedCommand { .. })
        ));
        assert!(matches!(
            server.open(b"\x05READY"),
            Err(ZmtpError::UnexpectedCommand { .. })
        ));
        assert_eq!(server.open(&sealed).unwrap(), (0, Bytes::from_static(b"payload")));
    }
}
