//! The frame decoder against RFC 6455's own examples and each rule of section 5; every
//! test names the section it checks.

use bytes::Bytes;

use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode_all(role: Role, max: u64, wire: &[u8]) -> (Vec<Frame>, Option<FrameError>) {
    let mut d = FrameDecoder::new(role, max);
    let mut src = SegmentedBuffer::new();
    src.push_slice(wire);
    let mut out = Vec::new();
    loop {
        match d.decode(&mut src) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn server_error(wire: &[u8]) -> Option<FrameError> {
    decode_all(Role::Server, 1 << 20, wire).1
}

fn data(payload: &[u8], last: bool) -> Frame {
    Frame::Data {
        text: false,
        payload: Bytes::copy_from_slice(payload),
        last,
    }
}

/// Section 5.7's examples: a masked "Hello" and an unmasked one.
#[test]
fn section_5_7_examples() {
    let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let (frames, err) = decode_all(Role::Server, 1 << 20, &masked);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        vec![Frame::Data {
            text: true,
            payload: Bytes::from_static(b"Hello"),
            last: true
        }]
    );
    let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let (frames, err) = decode_all(Role::Client, 1 << 20, &unmasked);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 1);
    // A fragmented unmasked text message, and the masked ping / unmasked pong.
    let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    let (frames, err) = decode_all(Role::Client, 1 << 20, &fragmented);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        vec![
            Frame::Data {
                text: true,
                payload: Bytes::from_static(b"Hel"),
                last: false
            },
            Frame::Data {
                text: true,
                payload: Bytes::from_static(b"lo"),
                last: true
            },
        ]
    );
    let ping = [0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(
        decode_all(Role::Server, 125, &ping).0,
        vec![Frame::Ping(Bytes::from_static(b"Hello"))]
    );
    // 256 bytes in one binary message: the 16-bit length form.
    let mut big = vec![0x82, 0x7E, 0x01, 0x00];
    big.extend_from_slice(&[7u8; 256]);
    let (frames, err) = decode_all(Role::Client, 1 << 20, &big);
    assert_eq!((frames, err), (vec![data(&[7u8; 256], true)], None));
}

/// Section 5.1: a server closes on an unmasked client frame (1002); a client on a masked
/// server frame.
#[test]
fn section_5_1_masking_is_required_of_clients_only() {
    let unmasked = [0x82, 0x01, 0x00];
    assert_eq!(server_error(&unmasked), Some(FrameError::Unmasked));
    assert_eq!(FrameError::Unmasked.close_code(), CloseCode::PROTOCOL_ERROR);
    let mut masked = Vec::new();
    encode_frame(true, Opcode::Binary, b"x", Some(KEY), &mut masked);
    assert_eq!(decode_all(Role::Client, 10, &masked).1, Some(FrameError::Masked));
    // Refused from the first two bytes, before the rest arrives.
    assert_eq!(server_error(&unmasked[..2]), Some(FrameError::Unmasked));
}

/// Section 5.2: RSV1-3 must be 0 without an extension; reserved opcodes fail.
#[test]
fn section_5_2_reserved_bits_and_opcodes() {
    for rsv in [0x40, 0x20, 0x10] {
        assert_eq!(
            server_error(&[0x82 | rsv, 0x80, 0, 0, 0, 0]),
            Some(FrameError::ReservedBits(rsv >> 4))
        );
    }
    for op in [0x3u8, 0x7, 0xB, 0xF] {
        assert_eq!(
            server_error(&[0x80 | op, 0x80, 0, 0, 0, 0]),
            Some(FrameError::ReservedOpcode(op))
        );
    }
}

/// Section 5.2: lengths in their shortest form, the 64-bit form's high bit clear, and
/// (section 10.4) a maximum checked from the header alone.
#[test]
fn section_5_2_lengths() {
    assert_eq!(
        server_error(&[0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4]),
        Some(FrameError::NonMinimalLength(125))
    );
    assert_eq!(
        server_error(&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4]),
        Some(FrameError::NonMinimalLength(65535))
    );
    assert_eq!(
        server_error(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
        Some(FrameError::LengthHighBit)
    );
    // An announced 2^62 bytes is refused from its ten header bytes, mask not even sent.
    let huge = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0];
    let err = server_error(&huge).expect("refused");
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: 1 << 62,
            max: 1 << 20
        }
    );
    assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
    // At the limit is fine.
    let mut at = Vec::new();
    encode_frame(true, Opcode::Binary, &[1u8; 300], Some(KEY), &mut at);
    assert_eq!(decode_all(Role::Server, 300, &at).1, None);
    assert_eq!(
        decode_all(Role::Server, 299, &at).1,
        Some(FrameError::TooLarge { len: 300, max: 299 })
    );
}

/// Section 5.4: continuation frames only inside a fragmented message, no new data frame
/// inside one, control frames may come between fragments.
#[test]
fn section_5_4_fragmentation() {
    let mut wire = Vec::new();
    encode_frame(false, Opcode::Binary, b"ab", Some(KEY), &mut wire);
    encode_frame(true, Opcode::Ping, b"p", Some(KEY), &mut wire);
    encode_frame(false, Opcode::Continuation, b"cd", Some(KEY), &mut wire);
    encode_frame(true, Opcode::Continuation, b"", Some(KEY), &mut wire);
    let (frames, err) = decode_all(Role::Server, 100, &wire);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        vec![
            data(b"ab", false),
            Frame::Ping(Bytes::from_static(b"p")),
            data(b"cd", false),
            data(b"", true)
        ]
    );

    let mut orphan = Vec::new();
    encode_frame(true, Opcode::Continuation, b"x", Some(KEY), &mut orphan);
    assert_eq!(server_error(&orphan), Some(FrameError::UnexpectedContinuation));

    let mut interleaved = Vec::new();
    encode_frame(false, Opcode::Binary, b"a", Some(KEY), &mut interleaved);
    encode_frame(true, Opcode::Binary, b"b", Some(KEY), &mut interleaved);
    assert_eq!(server_error(&interleaved), Some(FrameError::InterleavedMessage));
}

/// Section 5.5: control frames are at most 125 bytes and never fragmented.
#[test]
fn section_5_5_control_frames() {
    assert_eq!(
        server_error(&[0x09, 0x80, 0, 0, 0, 0]),
        Some(FrameError::FragmentedControl)
    );
    assert_eq!(
        server_error(&[0x89, 0xFE, 0x00, 0x80]),
        Some(FrameError::ControlTooLong(126))
    );
    let mut ok = Vec::new();
    encode_frame(true, Opcode::Pong, &[5u8; 125], Some(KEY), &mut ok);
    assert_eq!(
        decode_all(Role::Server, 10, &ok).0,
        vec![Frame::Pong(Bytes::from(vec![5u8; 125]))]
    );
}

/// Section 5.5.1 and 7.4: a close body is empty or a sendable code and a UTF-8 reason.
#[test]
fn section_5_5_1_close_bodies() {
    let close = |body: &[u8]| {
        let mut wire = Vec::new();
        encode_frame(true, Opcode::Close, body, Some(KEY), &mut wire);
        decode_all(Role::Server, 10, &wire)
    };
    assert_eq!(close(b"").0, vec![Frame::Close(None)]);
    assert_eq!(
        close(b"\x03\xe8bye").0,
        vec![Frame::Close(Some(Close {
            code: CloseCode::NORMAL,
            reason: Bytes::from_static(b"bye")
        }))]
    );
    assert_eq!(close(b"\x03").1, Some(FrameError::CloseTooShort));
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert_eq!(
            close(&code.to_be_bytes()).1,
            Some(FrameError::InvalidCloseCode(code)),
            "{code}"
        );
    }
    for code in [1000u16, 1003, 1007, 1014, 3000, 4999] {
        assert_eq!(close(&code.to_be_bytes()).1, None, "{code}");
    }
    let err = close(b"\x03\xe8\xff").1.expect("refused");
    assert_eq!(err, FrameError::CloseReasonNotUtf8);
    assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
}

/// Section 5.3: the key applies from the first payload byte, whatever the pieces.
#[test]
fn section_5_3_unmasking_across_pieces() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut wire = Vec::new();
    encode_frame(true, Opcode::Binary, &payload, Some(KEY), &mut wire);
    for step in [1usize, 3, 5, 4096] {
        let mut d = FrameDecoder::new(Role::Server, 1 << 20);
        let mut src = SegmentedBuffer::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(step) {
            src.push_slice(chunk);
            while let Some(f) = d.decode(&mut src).expect("valid") {
                match f {
                    Frame::Data { payload, .. } => got.extend_from_slice(&payload),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(got, payload, "step {step}");
        assert!(d.is_idle());
    }
}

#[test]
fn close_reasons_are_cut_at_a_character_boundary() {
    let mut wire = Vec::new();
    encode_close(CloseCode::GOING_AWAY, &"é".repeat(100), None, &mut wire);
    assert!(wire.len() <= 2 + 125);
    let (frames, err) = decode_all(Role::Client, 10, &wire);
    assert_eq!(err, None);
    match &frames[..] {
        [Frame::Close(Some(c))] => {
            assert_eq!(c.code, CloseCode::GOING_AWAY);
            assert_eq!(c.reason.len(), 122);
        }
        other => panic!("{other:?}"),
    }
}
