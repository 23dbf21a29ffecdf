//! The ZAP reply decoder (RFC 27) on arbitrary bytes, as a handler's answer arrives: a
//! ZMTP frame stream cut anywhere, read into one multipart message, then decoded.

use bytes::Bytes;

use super::split::pieces;
use crate::zmtp::zap::ZapReply;
use crate::zmtp::{Frame, FrameDecoder};
use crate::SegmentedBuffer;

/// The frames of the first whole message in `parts` (commands skipped), or `None` if
/// the stream is malformed or ends first.
fn first_message(parts: &[&[u8]]) -> Option<Vec<Bytes>> {
    let decoder = FrameDecoder::new(4096);
    let mut src = SegmentedBuffer::new();
    let mut frames = Vec::new();
    for part in parts {
        src.push_slice(part);
        while let Some(frame) = decoder.decode(&mut src).ok()? {
            if let Frame::Message { body, more } = frame {
                frames.push(body);
                if !more {
                    return Some(frames);
                }
            }
        }
    }
    None
}

/// `data[0]` picks the cuts, the rest is the stream a ZAP handler sends: the message
/// read is the same whatever the cuts, decoding it never panics, and a reply that
/// decodes encodes back to exactly the frames it came from (nothing dropped or made
/// up), which decode to the same reply.
pub fn zap_reply(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = first_message(&[stream]);
    let cut = first_message(&pieces(stream, seed));
    assert_eq!(whole, cut, "the cuts changed the message read");
    let Some(frames) = whole else { return };
    if let Ok(reply) = ZapReply::decode(&frames) {
        let again = reply.to_frames();
        assert_eq!(again, frames, "a decoded reply re-encodes to other frames");
        assert_eq!(ZapReply::decode(&again), Ok(reply));
    }
}
