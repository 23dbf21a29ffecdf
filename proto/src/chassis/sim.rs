//! An in-memory network for testing sessions: two endpoints, a virtual clock, and byte
//! streams cut at seeded random points.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Session;

/// A small deterministic random generator (SplitMix64), so every simulation is
/// reproducible from its seed without a dependency.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// `true` with probability `percent / 100`.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How the simulated link treats bytes.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Each delivered piece holds between 1 and this many bytes.
    pub max_piece: usize,
    /// One-way latency added to every piece.
    pub latency: Duration,
    /// Extra random delay, up to this much, per piece (order is still preserved).
    pub jitter: Duration,
    /// Percent chance that a transmit takes only part of the arena (a partial write).
    pub partial_write_percent: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            max_piece: 64,
            latency: Duration::from_micros(100),
            jitter: Duration::from_micros(50),
            partial_write_percent: 30,
        }
    }
}

/// One direction of the link: pieces in flight, in order.
#[derive(Debug, Default)]
struct Wire {
    pieces: VecDeque<(Instant, Bytes)>,
    closed_at: Option<Instant>,
    eof_delivered: bool,
}

/// Two sessions wired back to back with a virtual clock.
///
/// Each [`step`](Self::step) moves bytes each side transmits onto the wire (cut into
/// random pieces, sometimes as partial writes), delivers the pieces that are due, fires
/// due timers and drains events into [`events_a`](Self::events_a) /
/// [`events_b`](Self::events_b). When nothing is due, the clock jumps to the next
/// delivery or timer. Everything is decided by the seed.
pub struct Pair<A: Session, B: Session> {
    /// The first endpoint (usually the client).
    pub a: A,
    /// The second endpoint (usually the server).
    pub b: B,
    /// Events `a` produced, oldest first.
    pub events_a: Vec<A::Event>,
    /// Events `b` produced, oldest first.
    pub events_b: Vec<B::Event>,
    now: Instant,
    rng: SimRng,
    config: LinkConfig,
    a_to_b: Wire,
    b_to_a: Wire,
}

impl<A: Session, B: Session> Pair<A, B> {
    /// Wires `a` and `b` together; `start` is the virtual clock's origin.
    pub fn new(a: A, b: B, start: Instant, seed: u64, config: LinkConfig) -> Self {
        Self {
            a,
            b,
            events_a: Vec::new(),
            events_b: Vec::new(),
            now: start,
            rng: SimRng::new(seed),
            config,
            a_to_b: Wire::default(),
            b_to_a: Wire::default(),
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock forward by `d` (firing nothing until the next step).
    pub fn advance_clock(&mut self, d: Duration) {
        self.now += d;
    }

    /// Closes `a`'s sending side: `b` sees end of stream after the bytes in flight.
    pub fn close_a(&mut self) {
        self.a_to_b.closed_at.get_or_insert(self.now);
    }

    /// Closes `b`'s sending side: `a` sees end of stream after the bytes in flight.
    pub fn close_b(&mut self) {
        self.b_to_a.closed_at.get_or_insert(self.now);
    }

    /// Bytes in flight from `a` to `b` and from `b` to `a`.
    pub fn in_flight(&self) -> (usize, usize) {
        let sum = |w: &Wire| w.pieces.iter().map(|(_, b)| b.len()).sum();
        (sum(&self.a_to_b), sum(&self.b_to_a))
    }

    /// One round; returns whether anything happened (bytes moved, a timer fired or the
    /// clock had somewhere to jump to).
    pub fn step(&mut self) -> bool {
        let mut progressed = false;
        progressed |= transmit(&mut self.a, &mut self.a_to_b, &mut self.rng, &self.config, self.now);
        progressed |= transmit(&mut self.b, &mut self.b_to_a, &mut self.rng, &self.config, self.now);
        progressed |= deliver(&mut self.b, &mut self.a_to_b, self.now);
        progressed |= deliver(&mut self.a, &mut self.b_to_a, self.now);
        progressed |= fire(&mut self.a, self.now);
        progressed |= fire(&mut self.b, self.now);
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
            progressed = true;
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
            progressed = true;
        }
        if progressed {
            return true;
        }
        // Nothing due now: jump to the next delivery or timer.
        let next = [
            self.a_to_b.pieces.front().map(|p| p.0),
            self.b_to_a.pieces.front().map(|p| p.0),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) if t > self.now => {
                self.now = t;
                true
            }
            _ => false,
        }
    }

    /// Steps until nothing happens; returns the number of steps taken, or `None` if
    /// `max_steps` was reached first (a livelock, or timers that keep firing).
    pub fn drive(&mut self, max_steps: usize) -> Option<usize> {
        (0..max_steps).find(|_| !self.step())
    }

    /// Steps until `done` holds, at most `max_steps` times; returns whether it held.
    pub fn drive_until(&mut self, max_steps: usize, mut done: impl FnMut(&Self) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }
}

fn transmit<S: Session>(s: &mut S, wire: &mut Wire, rng: &mut SimRng, cfg: &LinkConfig, now: Instant) -> bool {
    if wire.closed_at.is_some() {
        return false;
    }
    let Some(arena) = s.poll_transmit() else {
        return false;
    };
    if arena.is_empty() {
        return false;
    }
    let bytes = arena.to_vec();
    let take = if rng.chance(cfg.partial_write_percent) {
        1 + rng.below(bytes.len() as u64) as usize
    } else {
        bytes.len()
    };
    arena.advance(take);
    let mut at = wire.pieces.back().map_or(now, |p| p.0.max(now));
    let mut sent = 0;
    while sent < take {
        let piece = (1 + rng.below(cfg.max_piece.max(1) as u64) as usize).min(take - sent);
        let jitter = Duration::from_nanos(rng.below(cfg.jitter.as_nanos() as u64 + 1));
        at = at.max(now + cfg.latency + jitter);
        wire.pieces
            .push_back((at, Bytes::copy_from_slice(&bytes[sent..sent + piece])));
        sent += piece;
    }
    true
}

fn deliver<S: Session>(s: &mut S, wire: &mut Wire, now: Instant) -> bool {
    let mut moved = false;
    while wire.pieces.front().is_some_and(|p| p.0 <= now) {
        if !s.wants_read() {
            break;
        }
        let (_, piece) = wire.pieces.pop_front().expect("front checked");
        s.handle_input(piece, now);
        moved = true;
    }
    if wire.pieces.is_empty() && !wire.eof_delivered && wire.closed_at.is_some() {
        wire.eof_delivered = true;
        s.handle_eof(now);
        moved = true;
    }
    moved
}

fn fire<S: Session>(s: &mut S, now: Instant) -> bool {
    match s.poll_timeout() {
        Some(t) if t <= now => {
            s.handle_timeout(now);
            true
        }
        _ => false,
    }
}
