//! The fuzzer's bytes as a shared script: the harness reads the calls to make from it,
//! the in-memory driver reads how the fake server misbehaves, from one cursor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// A cursor over the fuzz input, shared by the harness and the driver it runs. Once the
/// input is used up every read is `0`: the server then behaves and the harness stops
/// issuing calls.
#[derive(Clone, Debug)]
pub struct Script(Rc<RefCell<Cursor>>);

#[derive(Debug)]
struct Cursor {
    data: Vec<u8>,
    pos: usize,
}

impl Script {
    /// A script over `data`.
    pub fn new(data: &[u8]) -> Self {
        Self(Rc::new(RefCell::new(Cursor {
            data: data.to_vec(),
            pos: 0,
        })))
    }

    /// The next byte, or `None` once the input is used up.
    pub fn next(&self) -> Option<u8> {
        let mut c = self.0.borrow_mut();
        let byte = c.data.get(c.pos).copied();
        if byte.is_some() {
            c.pos += 1;
        }
        byte
    }

    /// The next byte, `0` once the input is used up.
    pub fn byte(&self) -> u8 {
        self.next().unwrap_or(0)
    }

    /// A wait of `0..below` ms, from the next byte (the wait a call such as
    /// `next_message` is given).
    pub fn millis(&self, below: u8) -> Duration {
        Duration::from_millis(u64::from(self.byte() % below.max(1)))
    }

    /// Up to `n` next bytes (fewer at the end of the input).
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        let mut c = self.0.borrow_mut();
        let start = c.pos.min(c.data.len());
        let end = start.saturating_add(n).min(c.data.len());
        c.pos = end;
        c.data[start..end].to_vec()
    }

    /// Whether the input is used up.
    pub fn is_done(&self) -> bool {
        let c = self.0.borrow();
        c.pos >= c.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_then_zeros() {
        let s = Script::new(&[1, 2, 3]);
        let t = s.clone();
        assert_eq!(s.byte(), 1);
        assert_eq!(t.bytes(5), vec![2, 3]);
        assert!(s.is_done());
        assert_eq!(s.next(), None);
        assert_eq!(t.byte(), 0);
    }
}
