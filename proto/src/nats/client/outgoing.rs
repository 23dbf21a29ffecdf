//! Outgoing bytes: the transmit arena the driver drains, the arena of ops held until the
//! handshake completes, and where each publish lies in them, so that the publishes the
//! kernel has not taken can be replayed on the next connection.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use crate::chassis::IoArena;

/// Outgoing bytes of one connection.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    /// What the driver hands to the kernel.
    pub transmit: IoArena,
    /// Ops written before the handshake completed, appended to `transmit` after it.
    pub held: IoArena,
    /// Bytes ever written to `transmit` (so `written - transmit.len()` were taken).
    written: u64,
    /// Publishes in `transmit` not known to be fully taken, as offsets in the stream
    /// of bytes ever written to it, oldest first.
    publishes: VecDeque<Range<u64>>,
    /// Publishes in `held`, as offsets in it.
    held_publishes: Vec<Range<usize>>,
}

/// Whole publish frames still unsent, oldest first, and how many did not fit.
#[derive(Debug, Default)]
pub(super) struct Replay {
    pub frames: Vec<Bytes>,
    pub bytes: usize,
    pub dropped: usize,
}

impl Outgoing {
    /// Bytes not yet taken by the kernel, held ones included.
    pub fn len(&self) -> usize {
        self.transmit.len() + self.held.len()
    }

    /// Bytes the kernel took in all.
    fn taken(&self) -> u64 {
        self.written - self.transmit.len() as u64
    }

    /// Writes an op that is never replayed (`CONNECT`, `PING`, `PONG`, `SUB`, `UNSUB`)
    /// with `write`, into `transmit` or, when `hold`, into `held`.
    pub fn control<E>(&mut self, hold: bool, write: impl FnOnce(&mut IoArena) -> Result<(), E>) -> Result<(), E> {
        if hold {
            write(&mut self.held)
        } else {
            let before = self.transmit.len();
            let result = write(&mut self.transmit);
            self.written += (self.transmit.len() - before) as u64;
            result
        }
    }

    /// Writes a publish with `write` and records where it lies.
    pub fn publish<E>(&mut self, hold: bool, write: impl FnOnce(&mut IoArena) -> Result<(), E>) -> Result<(), E> {
        if hold {
            let start = self.held.len();
            write(&mut self.held)?;
            let end = self.held.len();
            if end > start {
                self.held_publishes.push(start..end);
            }
        } else {
            self.forget_taken();
            let start = self.written;
            let before = self.transmit.len();
            let result = write(&mut self.transmit);
            self.written += (self.transmit.len() - before) as u64;
            if self.written > start {
                self.publishes.push_back(start..self.written);
            }
            result?;
        }
        Ok(())
    }

    /// Drops the records of publishes the kernel has taken whole.
    fn forget_taken(&mut self) {
        let taken = self.taken();
        while self.publishes.front().is_some_and(|p| p.end <= taken) {
            self.publishes.pop_front();
        }
    }

    /// Appends the held ops to `transmit` (the handshake completed).
    pub fn release_held(&mut self) {
        self.forget_taken();
        let base = self.written;
        for p in self.held_publishes.drain(..) {
            self.publishes.push_back(base + p.start as u64..base + p.end as u64);
        }
        self.written += self.held.len() as u64;
        self.transmit.append(&mut self.held);
    }

    /// The publishes the kernel has not started to take, whole, oldest first, within
    /// `budget` bytes; the rest are counted as dropped. A publish partly taken is not
    /// replayed: the server that got its first bytes discards it with the connection.
    pub fn replay(&mut self, budget: usize) -> Replay {
        self.forget_taken();
        let taken = self.taken();
        let mut replay = Replay::default();
        let push = |frame: &[u8], replay: &mut Replay| {
            if replay.dropped == 0 && replay.bytes + frame.len() <= budget {
                replay.bytes += frame.len();
                replay.frames.push(Bytes::copy_from_slice(frame));
            } else {
                replay.dropped += 1;
            }
        };
        if !self.publishes.is_empty() {
            let unsent = self.transmit.to_vec();
            for p in &self.publishes {
                if p.start >= taken {
                    let range = (p.start - taken) as usize..(p.end - taken) as usize;
                    push(&unsent[range], &mut replay);
                }
            }
        }
        if !self.held_publishes.is_empty() {
            let held = self.held.to_vec();
            for p in &self.held_publishes {
                push(&held[p.clone()], &mut replay);
            }
        }
        replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(text: &'static [u8]) -> impl FnOnce(&mut IoArena) -> Result<(), ()> {
        move |a: &mut IoArena| {
            a.put_slice(text);
            Ok(())
        }
    }

    #[test]
    fn replays_whole_unsent_publishes_only() {
        let mut out = Outgoing::default();
        out.control(false, put(b"CONNECT {}\r\nPING\r\n")).unwrap();
        out.publish(false, put(b"PUB a 1\r\n1\r\n")).unwrap();
        out.control(false, put(b"SUB x 1\r\n")).unwrap();
        out.publish(false, put(b"PUB b 1\r\n2\r\n")).unwrap();
        out.publish(false, put(b"PUB c 1\r\n3\r\n")).unwrap();
        // The kernel took CONNECT, PING and half of the first publish.
        out.transmit.advance(18 + 5);
        let replay = out.replay(usize::MAX);
        let frames: Vec<&[u8]> = replay.frames.iter().map(|f| &f[..]).collect();
        assert_eq!(frames, [&b"PUB b 1\r\n2\r\n"[..], b"PUB c 1\r\n3\r\n"]);
        assert_eq!(replay.dropped, 0);
    }

    #[test]
    fn held_publishes_follow_and_the_budget_keeps_the_oldest() {
        let mut out = Outgoing::default();
        out.publish(true, put(b"PUB a 1\r\n1\r\n")).unwrap();
        out.control(true, put(b"UNSUB 1\r\n")).unwrap();
        out.publish(true, put(b"PUB b 1\r\n2\r\n")).unwrap();
        out.publish(true, put(b"PUB c 1\r\n3\r\n")).unwrap();
        let replay = out.replay(25);
        assert_eq!(replay.frames.len(), 2);
        assert_eq!((replay.bytes, replay.dropped), (24, 1));
    }

    #[test]
    fn released_publishes_keep_their_place() {
        let mut out = Outgoing::default();
        out.publish(true, put(b"PUB a 1\r\n1\r\n")).unwrap();
        out.control(false, put(b"CONNECT {}\r\n")).unwrap();
        out.release_held();
        assert_eq!(out.transmit.to_vec(), b"CONNECT {}\r\nPUB a 1\r\n1\r\n");
        out.publish(false, put(b"PUB b 1\r\n2\r\n")).unwrap();
        out.transmit.advance(12 + 12);
        let replay = out.replay(usize::MAX);
        assert_eq!(replay.frames, [Bytes::from_static(b"PUB b 1\r\n2\r\n")]);
        out.transmit.advance(12);
        assert!(out.replay(usize::MAX).frames.is_empty());
        assert!(out.publishes.is_empty(), "records of sent publishes are dropped");
    }
}
