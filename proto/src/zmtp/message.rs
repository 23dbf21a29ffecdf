//! [`Message`]: a multipart message whose single frame, the common case, is kept
//! inline, so sending or receiving it allocates nothing beyond the frame's `Bytes`.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// A ZeroMQ multipart message: its frames in order. One frame is held inline; a second
/// moves them into a `Vec`. Reads as a slice of frames (`Deref<Target = [Bytes]>`) and
/// compares equal to a `Vec<Bytes>` or slice with the same frames.
#[derive(Clone, Default)]
pub struct Message(Frames);

#[derive(Clone)]
enum Frames {
    One(Bytes),
    /// No frame (empty `Vec`, no allocation) or several.
    Many(Vec<Bytes>),
}

impl Default for Frames {
    fn default() -> Self {
        Frames::Many(Vec::new())
    }
}

impl Message {
    /// A message of no frames (ZeroMQ sends none: add at least one).
    pub fn new() -> Self {
        Message::default()
    }

    /// The frames as a slice.
    pub fn as_slice(&self) -> &[Bytes] {
        match &self.0 {
            Frames::One(frame) => std::slice::from_ref(frame),
            Frames::Many(frames) => frames,
        }
    }

    /// The frames as a `Vec` (allocates for a single frame).
    pub fn into_vec(self) -> Vec<Bytes> {
        match self.0 {
            Frames::One(frame) => vec![frame],
            Frames::Many(frames) => frames,
        }
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: Bytes) {
        match &mut self.0 {
            Frames::Many(frames) if frames.is_empty() && frames.capacity() == 0 => self.0 = Frames::One(frame),
            Frames::Many(frames) => frames.push(frame),
            Frames::One(_) => {
                let Frames::One(first) = std::mem::take(&mut self.0) else {
                    return;
                };
                self.0 = Frames::Many(vec![first, frame]);
            }
        }
    }

    /// Puts a frame in front (a ROUTER's identity, a REQ's delimiter).
    pub fn push_front(&mut self, frame: Bytes) {
        let mut frames = std::mem::take(self).into_vec();
        frames.insert(0, frame);
        self.0 = Frames::Many(frames);
    }

    /// Takes the first frame off, if there is one.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Frames::One(_) => match std::mem::take(&mut self.0) {
                Frames::One(frame) => Some(frame),
                Frames::Many(_) => None,
            },
            Frames::Many(frames) if frames.is_empty() => None,
            Frames::Many(frames) => Some(frames.remove(0)),
        }
    }

    /// Splits the message at `at`: `self` keeps frames `..at`, the rest is returned.
    ///
    /// # Panics
    /// If `at > len`, as `Vec::split_off`.
    pub fn split_off(&mut self, at: usize) -> Message {
        match &mut self.0 {
            Frames::One(_) if at == 0 => std::mem::take(self),
            Frames::One(_) => {
                assert!(at == 1, "split_off index {at} out of a 1-frame message");
                Message::new()
            }
            Frames::Many(frames) => Message::from(frames.split_off(at)),
        }
    }

    /// The frames' bytes together (what the byte high-water marks count).
    #[inline]
    pub fn size(&self) -> usize {
        match &self.0 {
            // The common case without a slice walk: it is on every message's path.
            Frames::One(frame) => frame.len(),
            Frames::Many(frames) => frames.iter().map(Bytes::len).sum(),
        }
    }
}

impl Deref for Message {
    type Target = [Bytes];

    fn deref(&self) -> &[Bytes] {
        self.as_slice()
    }
}

impl AsRef<[Bytes]> for Message {
    fn as_ref(&self) -> &[Bytes] {
        self.as_slice()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl From<Bytes> for Message {
    fn from(frame: Bytes) -> Self {
        Message(Frames::One(frame))
    }
}

impl From<Vec<Bytes>> for Message {
    /// Keeps the `Vec` (a single frame is moved inline and the `Vec` freed).
    fn from(mut frames: Vec<Bytes>) -> Self {
        if frames.len() == 1 {
            if let Some(frame) = frames.pop() {
                return Message(Frames::One(frame));
            }
        }
        Message(Frames::Many(frames))
    }
}

impl From<&[Bytes]> for Message {
    fn from(frames: &[Bytes]) -> Self {
        match frames {
            [frame] => Message(Frames::One(frame.clone())),
            _ => Message(Frames::Many(frames.to_vec())),
        }
    }
}

impl From<Message> for Vec<Bytes> {
    fn from(message: Message) -> Self {
        message.into_vec()
    }
}

impl FromIterator<Bytes> for Message {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut message = Message::new();
        for frame in iter {
            message.push(frame);
        }
        message
    }
}

impl Extend<Bytes> for Message {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for frame in iter {
            self.push(frame);
        }
    }
}

impl IntoIterator for Message {
    type Item = Bytes;
    type IntoIter = std::vec::IntoIter<Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Message {
    type Item = &'a Bytes;
    type IntoIter = std::slice::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Message {
    /// Equal frames, however they are held.
    fn eq(&self, other: &Message) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Message {}

impl std::hash::Hash for Message {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq<Vec<Bytes>> for Message {
    fn eq(&self, other: &Vec<Bytes>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Message> for Vec<Bytes> {
    fn eq(&self, other: &Message) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[Bytes]> for Message {
    fn eq(&self, other: &[Bytes]) -> bool {
        self.as_slice() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn one_frame_is_inline_and_grows_into_a_vec() {
        let mut m = Message::new();
        assert!(m.is_empty());
        m.push(b("a"));
        assert!(matches!(m.0, Frames::One(_)));
        assert_eq!(m, vec![b("a")]);
        m.push(b("bc"));
        assert_eq!(m, vec![b("a"), b("bc")]);
        assert_eq!(m.size(), 3);
        m.push_front(b("id"));
        assert_eq!(m.pop_front(), Some(b("id")));
        let rest = m.split_off(1);
        assert_eq!((m.to_vec(), rest.to_vec()), (vec![b("a")], vec![b("bc")]));
    }

    #[test]
    fn single_frame_operations_match_a_vec() {
        let mut m = Message::from(b("x"));
        assert_eq!(m.split_off(1), Message::new());
        assert_eq!(m.clone().split_off(0), vec![b("x")]);
        assert_eq!(m.pop_front(), Some(b("x")));
        assert_eq!(m.pop_front(), None);
        assert_eq!(Message::from(vec![b("y")]), Message::from(b("y")));
        assert_eq!(Message::from(vec![b("y")]).into_vec(), vec![b("y")]);
        let collected: Message = [b("p"), b("q")].into_iter().collect();
        assert_eq!(collected, Message::from(&[b("p"), b("q")][..]));
        assert_eq!(format!("{:?}", Message::from(b("z"))), format!("{:?}", vec![b("z")]));
    }
}
