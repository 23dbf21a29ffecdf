//! What the body harnesses ([`super::redis`], [`super::nats`]) share around their own
//! calls: the link settings their header bytes choose, the first connect under the
//! [`Clock`], and the loop that reads one call after another from the script.

use std::time::{Duration, Instant};

use super::script::Script;
use super::{tracing, Clock};
use crate::{LinkOptions, ReconnectPolicy};

/// The longest backoff between two reconnect attempts in a fuzz run.
pub(super) const DELAY_CAP: Duration = Duration::from_millis(2);

/// The link options of an input, from its header bytes `h0` and `h1`: a connect timeout
/// of `4 + bits 4-6 of h0` ms, and `1 + bits 6-7 of h1` reconnect attempts per call,
/// 1 ms then at most [`DELAY_CAP`] apart, stretched by up to `jitter`.
pub(super) fn link_options(h0: u8, h1: u8, jitter: f64) -> LinkOptions {
    LinkOptions::default()
        .connect_timeout(Duration::from_millis(4 + u64::from((h0 >> 4) & 7)))
        .reconnect(ReconnectPolicy {
            initial: Duration::from_millis(1),
            max: DELAY_CAP,
            jitter,
            max_attempts: Some(1 + u32::from(h1 >> 6)),
        })
}

/// The client `connect` makes, checked to come within `limit` (plus the clock's own
/// limit and slack); a failure is handed to `check_error` and ends the input (`None`).
pub(super) fn connect<C, E>(
    clock: &Clock,
    limit: Duration,
    connect: impl FnOnce() -> Result<C, E>,
    check_error: impl FnOnce(&E),
) -> Option<C> {
    let started = Instant::now();
    let connected = connect();
    clock.check_with(started, limit, "connect");
    connected.map_err(|e| check_error(&e)).ok()
}

/// Makes one call per op byte left in `script`, until it runs out:
/// `call(op % names.len(), op)`, each traced by its name in `names` under
/// `MONOCOQUE_FUZZ_TRACE`. The call reads its operands from the script itself.
pub(super) fn run_calls(script: &Script, names: &[&str], mut call: impl FnMut(u8, u8)) {
    let count = u8::try_from(names.len()).expect("fewer than 256 kinds of call");
    while let Some(op) = script.next() {
        let kind = op % count;
        if tracing() {
            eprintln!("[fuzz] call: {}", names[usize::from(kind)]);
        }
        call(kind, op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bits_choose_the_link() {
        let link = link_options(0x70, 0xC0, 0.5);
        assert_eq!(link.connect_timeout, Duration::from_millis(11));
        assert_eq!(link.reconnect.max_attempts, Some(4));
        assert_eq!((link.reconnect.max, link.reconnect.jitter), (DELAY_CAP, 0.5));
        let link = link_options(0x0F, 0x3F, 0.0);
        assert_eq!(link.connect_timeout, Duration::from_millis(4));
        assert_eq!(link.reconnect.max_attempts, Some(1));
    }

    #[test]
    fn one_call_per_op_byte() {
        let script = Script::new(&[7, 3, 12]);
        let mut seen = Vec::new();
        run_calls(&script, &["a", "b", "c", "d", "e"], |kind, op| seen.push((kind, op)));
        assert_eq!(seen, [(2, 7), (3, 3), (2, 12)]);
    }
}
