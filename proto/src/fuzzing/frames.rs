//! The borrowed NATS frame decoders against the codecs: a differential target.

use std::fmt::Debug;
use std::ops::Range;

use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::nats::{
    ClientCodec, ClientFrame, ClientFrameDecoder, ClientOp, DecodeError, Limits, ServerCodec, ServerFrame,
    ServerFrameDecoder, ServerOp,
};

/// Fuzzes [`ServerFrameDecoder`] and [`ClientFrameDecoder`] against the codecs that
/// decode the same side ([`ServerCodec`], [`ClientCodec`]).
///
/// Input layout: byte 0 holds options, byte 1 seeds the segment boundaries, the rest is
/// the stream. Options: bit 0 small limits (so every limit error is reachable), bit 1
/// the server side (decoding what clients send) rather than the client side.
///
/// The stream arrives in pieces (cut by the seed). The codec decodes them from a
/// [`SegmentedBuffer`]; the borrowed decoder from one contiguous buffer that each piece
/// is appended to, decoding from its front after each piece and dropping the bytes of
/// each frame decoded, as a reader with one buffer does. Checks, panicking on the first
/// that fails:
/// 1. neither panics;
/// 2. both decode the same ops (each frame as [`ClientFrame::to_op`] /
///    [`ServerFrame::to_op`]) and end the same way: the same error, or both waiting for
///    more with the same bytes left over (when the codec is mid-frame, having taken a
///    control line whose payload has not all arrived, the borrowed decoder has kept
///    more bytes than the codec);
/// 3. every slice of a frame lies inside the buffer it was decoded from, in order;
/// 4. asked again with the same bytes, the borrowed decoder answers the same;
/// 5. the whole stream in one buffer decodes as it did in pieces.
pub fn nats_frames(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let limits = if options & 1 != 0 {
        Limits {
            max_control_line: 32,
            max_json_line: 96,
            max_payload: 64,
        }
    } else {
        Limits::default()
    };
    if options & 2 != 0 {
        differential::<ServerSide>(limits, body, seed);
    } else {
        differential::<ClientSide>(limits, body, seed);
    }
}

/// One side's codec and borrowed decoder, seen from the fuzzer.
trait Side {
    type Op: PartialEq + Debug;
    type Codec;
    type Decoder;
    fn codec(limits: Limits) -> Self::Codec;
    fn decode_op(codec: &mut Self::Codec, src: &mut SegmentedBuffer) -> Result<Option<Self::Op>, DecodeError>;
    fn mid_frame(codec: &Self::Codec) -> bool;
    fn decoder(limits: Limits) -> Self::Decoder;
    /// The next frame of `buf` as an op, its length, and the ranges of `buf` its
    /// slices cover, in wire order.
    #[allow(clippy::type_complexity)]
    fn decode_frame(
        decoder: &mut Self::Decoder,
        buf: &[u8],
    ) -> Result<Option<(Self::Op, usize, Vec<Range<usize>>)>, DecodeError>;
}

/// Where `part` lies in `buf`; panics when it is not inside it.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    assert!(
        start <= buf.len() && part.len() <= buf.len() - start,
        "a slice of a frame lies outside its buffer"
    );
    start..start + part.len()
}

struct ClientSide;

impl Side for ClientSide {
    type Op = ServerOp;
    type Codec = ClientCodec;
    type Decoder = ClientFrameDecoder;

    fn codec(limits: Limits) -> ClientCodec {
        ClientCodec::new(limits)
    }

    fn decode_op(codec: &mut ClientCodec, src: &mut SegmentedBuffer) -> Result<Option<ServerOp>, DecodeError> {
        codec.decode_op(src)
    }

    fn mid_frame(codec: &ClientCodec) -> bool {
        codec.is_mid_frame()
    }

    fn decoder(limits: Limits) -> ClientFrameDecoder {
        ClientFrameDecoder::new(limits)
    }

    fn decode_frame(
        decoder: &mut ClientFrameDecoder,
        buf: &[u8],
    ) -> Result<Option<(ServerOp, usize, Vec<Range<usize>>)>, DecodeError> {
        let Some((frame, len)) = decoder.decode(buf)? else {
            return Ok(None);
        };
        let parts: Vec<&[u8]> = match &frame {
            ServerFrame::Message(m) => [Some(m.subject), Some(m.sid), m.reply, m.headers, Some(m.payload)]
                .into_iter()
                .flatten()
                .collect(),
            ServerFrame::Err(text) => vec![*text],
            ServerFrame::Info(_) | ServerFrame::Ok | ServerFrame::Ping | ServerFrame::Pong => Vec::new(),
        };
        let ranges = parts.into_iter().map(|p| range_in(buf, p)).collect();
        Ok(Some((frame.to_op(), len, ranges)))
    }
}

struct ServerSide;

impl Side for ServerSide {
    type Op = ClientOp;
    type Codec = ServerCodec;
    type Decoder = ServerFrameDecoder;

    fn codec(limits: Limits) -> ServerCodec {
        ServerCodec::new(limits)
    }

    fn decode_op(codec: &mut ServerCodec, src: &mut SegmentedBuffer) -> Result<Option<ClientOp>, DecodeError> {
        codec.decode_op(src)
    }

    fn mid_frame(codec: &ServerCodec) -> bool {
        codec.is_mid_frame()
    }

    fn decoder(limits: Limits) -> ServerFrameDecoder {
        ServerFrameDecoder::new(limits)
    }

    fn decode_frame(
        decoder: &mut ServerFrameDecoder,
        buf: &[u8],
    ) -> Result<Option<(ClientOp, usize, Vec<Range<usize>>)>, DecodeError> {
        let Some((frame, len)) = decoder.decode(buf)? else {
            return Ok(None);
        };
        let parts: Vec<&[u8]> = match &frame {
            ClientFrame::Publish(p) => [Some(p.subject), p.reply, p.headers, Some(p.payload)]
                .into_iter()
                .flatten()
                .collect(),
            ClientFrame::Subscribe(s) => [Some(s.subject), s.queue, Some(s.sid)].into_iter().flatten().collect(),
            ClientFrame::Unsubscribe(u) => vec![u.sid],
            ClientFrame::Connect(_) | ClientFrame::Ping | ClientFrame::Pong => Vec::new(),
        };
        let ranges = parts.into_iter().map(|p| range_in(buf, p)).collect();
        Ok(Some((frame.to_op(), len, ranges)))
    }
}

/// How decoding a stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Waiting for more: the bytes left over, and whether the codec took a control line
    /// whose payload is incomplete.
    Waiting { left: usize, mid_frame: bool },
    /// The stream was rejected.
    Error(DecodeError),
}

fn differential<S: Side>(limits: Limits, body: &[u8], seed: u8) {
    let parts = pieces(body, seed);
    let (ops, end) = by_codec::<S>(limits, &parts);
    let (frames, frames_end) = by_frames::<S>(limits, &parts);
    assert_eq!(frames, ops, "the borrowed decoder and the codec disagree on the ops");
    match (&end, &frames_end) {
        (End::Waiting { left, mid_frame: true }, End::Waiting { left: kept, .. }) => assert!(
            kept > left,
            "mid-frame the codec left {left} bytes, the borrowed decoder kept {kept}"
        ),
        _ => assert_eq!(frames_end, end, "the borrowed decoder and the codec ended differently"),
    }
    let (whole, whole_end) = by_frames::<S>(limits, &[body]);
    assert_eq!(whole, frames, "one buffer and pieces decode differently");
    assert_eq!(whole_end, frames_end, "one buffer and pieces end differently");
}

fn by_codec<S: Side>(limits: Limits, parts: &[&[u8]]) -> (Vec<S::Op>, End) {
    let mut codec = S::codec(limits);
    let mut src = SegmentedBuffer::new();
    let mut ops = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            match S::decode_op(&mut codec, &mut src) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, End::Error(e)),
            }
        }
    }
    let end = End::Waiting {
        left: src.len(),
        mid_frame: S::mid_frame(&codec),
    };
    (ops, end)
}

fn by_frames<S: Side>(limits: Limits, parts: &[&[u8]]) -> (Vec<S::Op>, End) {
    let mut decoder = S::decoder(limits);
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            let decoded = S::decode_frame(&mut decoder, &buf);
            assert_eq!(
                S::decode_frame(&mut decoder, &buf),
                decoded,
                "asked again with the same bytes, the borrowed decoder answered differently"
            );
            match decoded {
                Ok(Some((op, len, ranges))) => {
                    assert!(len > 0 && len <= buf.len(), "a frame of {len} bytes in {}", buf.len());
                    let mut at = 0;
                    for r in ranges {
                        assert!(r.start >= at && r.end <= len, "slices out of order or past the frame");
                        at = r.end;
                    }
                    ops.push(op);
                    buf.drain(..len);
                }
                Ok(None) => break,
                Err(e) => return (ops, End::Error(e)),
            }
        }
    }
    let end = End::Waiting {
        left: buf.len(),
        mid_frame: false,
    };
    (ops, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{nats_client_seeds, nats_server_seeds};

    #[test]
    fn the_target_accepts_every_seed_in_every_mode() {
        for (seeds, side) in [(nats_client_seeds(), 0u8), (nats_server_seeds(), 2)] {
            for s in &seeds {
                for (options, seed) in [(0u8, 0u8), (1, 1), (0, 7), (1, 200), (0, 1)] {
                    nats_frames(&[&[options | side, seed][..], s].concat());
                }
            }
        }
    }

    #[test]
    fn a_mid_frame_codec_is_matched_by_more_bytes_kept() {
        // The codec takes `MSG a 1 5\r\n` and two payload bytes; the borrowed decoder
        // keeps all of it.
        nats_frames(b"\x00\x00MSG a 1 5\r\nhe");
        nats_frames(b"\x02\x01HPUB a 3 5\r\nabc");
    }
}
