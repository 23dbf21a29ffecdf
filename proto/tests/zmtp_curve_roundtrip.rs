//! CURVE `MESSAGE` boxes round trip: a multipart message sealed frame by frame, the
//! stream cut at every byte boundary and fed through the frame decoder, each body
//! opened: the same frames, MORE flags and order come out.

use bytes::Bytes;
use monocoque_proto::zmtp::curve::{KeyPair, MessageCipher, Role, SecretKey};
use monocoque_proto::zmtp::{encode_header, Frame, FrameDecoder, ZmtpError};
use monocoque_proto::{IoArena, SegmentedBuffer};
use proptest::prelude::*;

/// The inner MORE flag (RFC 26 / libzmq: bit 0 of the flags byte in the box).
const MORE: u8 = 0x01;

fn seal_all(client: &mut MessageCipher, message: &[Vec<u8>]) -> Vec<u8> {
    let mut out = IoArena::new();
    let last = message.len().saturating_sub(1);
    for (i, frame) in message.iter().enumerate() {
        let sealed = client.seal(if i < last { MORE } else { 0 }, frame).expect("seal");
        encode_header(&mut out, 0, sealed.len() as u64);
        out.put_slice(&sealed);
    }
    out.to_vec()
}

/// Feeds `wire` cut at `cut`, decodes every frame, opens every body.
fn open_all(server: &mut MessageCipher, wire: &[u8], cut: usize) -> Result<Vec<(u8, Bytes)>, ZmtpError> {
    let decoder = FrameDecoder::new(1 << 20);
    let mut src = SegmentedBuffer::new();
    let mut out = Vec::new();
    for part in [&wire[..cut], &wire[cut..]] {
        src.push_slice(part);
        while let Some(frame) = decoder.decode(&mut src)? {
            let (Frame::Message { body, .. } | Frame::Command(body)) = frame;
            out.push(server.open(&body)?);
        }
    }
    assert!(src.is_empty(), "bytes left over");
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sealed_messages_survive_every_cut(
        message in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
        client in any::<[u8; 32]>(),
        server in any::<[u8; 32]>(),
    ) {
        let (client_pair, server_pair) = (KeyPair::from_secret(SecretKey::from_bytes(client)), KeyPair::from_secret(SecretKey::from_bytes(server)));
        let mut client = MessageCipher::new(Role::Client, &client_pair.secret, &server_pair.public);
        let wire = seal_all(&mut client, &message);
        for cut in 0..=wire.len() {
            // A fresh server for each cut: the counters start where the client's did.
            let mut server = MessageCipher::new(Role::Server, &server_pair.secret, &client_pair.public);
            let opened = open_all(&mut server, &wire, cut).expect("opens");
            prop_assert_eq!(opened.len(), message.len());
            let last = message.len() - 1;
            for (i, ((flags, body), frame)) in opened.iter().zip(&message).enumerate() {
                prop_assert_eq!(&body[..], &frame[..]);
                prop_assert_eq!(*flags, if i < last { MORE } else { 0 });
            }
        }
    }
}
