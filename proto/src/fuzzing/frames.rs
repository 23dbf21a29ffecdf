//! The borrowed NATS frame decoders against the codecs: a differential target.

use std::fmt::Debug;
use std::ops::Range;

use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::nats::{
    ClientFrame, ClientSide, Codec, DecodeError, FrameDecoder, FrameRole, Limits, Role, ServerFrame, ServerSide,
};

/// Fuzzes [`ServerFrameDecoder`](crate::nats::ServerFrameDecoder) and
/// [`ClientFrameDecoder`](crate::nats::ClientFrameDecoder) against the codecs that
/// decode the same side ([`ServerCodec`](crate::nats::ServerCodec),
/// [`ClientCodec`](crate::nats::ClientCodec)).
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
        differential::<ServerSide, _>(limits, body, seed, |buf: &[u8], frame: &ClientFrame<'_>| {
            let parts = match frame {
                ClientFrame::Publish(p) => [Some(p.subject), p.reply, p.headers, Some(p.payload)].to_vec(),
                ClientFrame::Subscribe(s) => [Some(s.subject), s.queue, Some(s.sid)].to_vec(),
                ClientFrame::Unsubscribe(u) => vec![Some(u.sid)],
                ClientFrame::Connect(_) | ClientFrame::Ping | ClientFrame::Pong => Vec::new(),
            };
            (
                frame.to_op(),
                parts.into_iter().flatten().map(|p| range_in(buf, p)).collect(),
            )
        });
    } else {
        differential::<ClientSide, _>(limits, body, seed, |buf: &[u8], frame: &ServerFrame<'_>| {
            let parts = match frame {
                ServerFrame::Message(m) => [Some(m.subject), Some(m.sid), m.reply, m.headers, Some(m.payload)].to_vec(),
                ServerFrame::Err(text) => vec![Some(*text)],
                ServerFrame::Info(_) | ServerFrame::Ok | ServerFrame::Ping | ServerFrame::Pong => Vec::new(),
            };
            (
                frame.to_op(),
                parts.into_iter().flatten().map(|p| range_in(buf, p)).collect(),
            )
        });
    }
}

/// A frame decoded from a buffer as the op the codec would return, and where its
/// slices lie in that buffer, in wire order.
trait Parts<R: FrameRole, T>: Fn(&[u8], &R::Frame<'_>) -> (T, Vec<Range<usize>>) {}

impl<R: FrameRole, T, F> Parts<R, T> for F where F: Fn(&[u8], &R::Frame<'_>) -> (T, Vec<Range<usize>>) {}

/// Where `part` lies in `buf`; panics when it is not inside it.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    assert!(
        start <= buf.len() && part.len() <= buf.len() - start,
        "a slice of a frame lies outside its buffer"
    );
    start..start + part.len()
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

fn differential<R, T>(limits: Limits, body: &[u8], seed: u8, parts_of: impl Parts<R, T>)
where
    R: Role + FrameRole,
    T: PartialEq + Debug,
    R::Decoded: PartialEq<T> + Debug,
{
    let parts = pieces(body, seed);
    let (ops, end) = by_codec::<R>(limits, &parts);
    let (frames, frames_end) = by_frames::<R, T>(limits, &parts, &parts_of);
    assert_eq!(ops, frames, "the borrowed decoder and the codec disagree on the ops");
    match (&end, &frames_end) {
        (End::Waiting { left, mid_frame: true }, End::Waiting { left: kept, .. }) => assert!(
            kept > left,
            "mid-frame the codec left {left} bytes, the borrowed decoder kept {kept}"
        ),
        _ => assert_eq!(frames_end, end, "the borrowed decoder and the codec ended differently"),
    }
    let (whole, whole_end) = by_frames::<R, T>(limits, &[body], &parts_of);
    assert_eq!(whole, frames, "one buffer and pieces decode differently");
    assert_eq!(whole_end, frames_end, "one buffer and pieces end differently");
}

fn by_codec<R: Role>(limits: Limits, parts: &[&[u8]]) -> (Vec<R::Decoded>, End) {
    let mut codec = Codec::<R>::new(limits);
    let mut src = SegmentedBuffer::new();
    let mut ops = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            match codec.decode_op(&mut src) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, End::Error(e)),
            }
        }
    }
    let end = End::Waiting {
        left: src.len(),
        mid_frame: codec.is_mid_frame(),
    };
    (ops, end)
}

fn by_frames<R: FrameRole, T: PartialEq + Debug>(
    limits: Limits,
    parts: &[&[u8]],
    parts_of: &impl Parts<R, T>,
) -> (Vec<T>, End) {
    let mut decoder = FrameDecoder::<R>::new(limits);
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            // Compared as ops and ranges: the frames borrow `buf`.
            let mut view = || match decoder.decode(&buf) {
                Ok(Some((frame, len))) => {
                    let (op, ranges) = parts_of(&buf, &frame);
                    Ok(Some((op, len, ranges)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let (decoded, again) = (view(), view());
            assert_eq!(
                again, decoded,
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
