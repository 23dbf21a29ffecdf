//! Subscriptions in both of their forms: ZMTP 3.0's messages and 3.1's commands.
//!
//! ZMTP 3.0 (RFC 23) sends a subscription as a one-frame message whose first byte is 1
//! (subscribe) or 0 (cancel), followed by the topic; ZMTP 3.1 (RFC 37) adds the
//! `SUBSCRIBE` and `CANCEL` commands. libzmq 4.3 still sends the message form to 3.1
//! peers, so a publisher accepts both.

use bytes::Bytes;

use super::command::Command;
use super::frame::encode_message_frame;
use super::ZmtpError;
use crate::IoArena;

/// A subscription change a SUB or XSUB peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Deliver messages whose first frame starts with this prefix.
    Subscribe(Bytes),
    /// Stop delivering them.
    Cancel(Bytes),
}

impl Subscription {
    /// The topic prefix.
    pub fn topic(&self) -> &Bytes {
        match self {
            Subscription::Subscribe(t) | Subscription::Cancel(t) => t,
        }
    }

    /// Reads ZMTP 3.0's form: a one-frame message starting with 1 or 0. Anything else
    /// is not a subscription (an XSUB may send other messages upstream).
    pub fn from_message(frames: &[Bytes]) -> Option<Subscription> {
        let [frame] = frames else { return None };
        match frame.first()? {
            1 => Some(Subscription::Subscribe(frame.slice(1..))),
            0 => Some(Subscription::Cancel(frame.slice(1..))),
            _ => None,
        }
    }

    /// Reads ZMTP 3.1's form, a `SUBSCRIBE` or `CANCEL` command.
    pub fn from_command(command: &Command) -> Option<Subscription> {
        match command {
            Command::Subscribe(t) => Some(Subscription::Subscribe(t.clone())),
            Command::Cancel(t) => Some(Subscription::Cancel(t.clone())),
            _ => None,
        }
    }

    /// The one frame of ZMTP 3.0's message form: the flag byte, then the topic (copied
    /// once).
    pub fn message_body(&self) -> Bytes {
        let (flag, topic) = match self {
            Subscription::Subscribe(t) => (1u8, t),
            Subscription::Cancel(t) => (0u8, t),
        };
        let mut body = Vec::with_capacity(1 + topic.len());
        body.push(flag);
        body.extend_from_slice(topic);
        Bytes::from(body)
    }

    /// Writes ZMTP 3.0's message form, which every 3.x peer understands (and libzmq
    /// 4.3 sends).
    pub fn encode_as_message(&self, dst: &mut IoArena) {
        encode_message_frame(dst, &self.message_body(), false);
    }

    /// Writes ZMTP 3.1's command form (only to a peer that negotiated 3.1).
    pub fn encode_as_command(&self, dst: &mut IoArena) -> Result<(), ZmtpError> {
        match self {
            Subscription::Subscribe(t) => Command::Subscribe(t.clone()).encode(dst),
            Subscription::Cancel(t) => Command::Cancel(t.clone()).encode(dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::{Frame, FrameDecoder};
    use crate::SegmentedBuffer;

    fn decode_all(arena: &IoArena) -> Vec<Frame> {
        let mut src = SegmentedBuffer::new();
        src.push_slice(&arena.chunks().flatten().copied().collect::<Vec<u8>>());
        std::iter::from_fn(|| FrameDecoder::default().decode(&mut src).unwrap()).collect()
    }

    #[test]
    fn both_forms_read_back() {
        for sub in [Subscription::Subscribe("news.".into()), Subscription::Cancel("".into())] {
            let mut arena = IoArena::new();
            sub.encode_as_message(&mut arena);
            sub.encode_as_command(&mut arena).unwrap();
            let frames = decode_all(&arena);
            let Frame::Message { body, more: false } = &frames[0] else {
                panic!()
            };
            assert_eq!(
                Subscription::from_message(std::slice::from_ref(body)),
                Some(sub.clone())
            );
            let Frame::Command(cmd) = &frames[1] else { panic!() };
            assert_eq!(
                Subscription::from_command(&Command::parse(cmd.clone()).unwrap()),
                Some(sub)
            );
        }
        assert_eq!(Subscription::from_message(&[Bytes::from_static(b"\x02x")]), None);
        assert_eq!(
            Subscription::from_message(&[Bytes::from_static(b"\x01a"), Bytes::new()]),
            None
        );
    }
}
