//! A test session and helpers to run a driver until a condition holds.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::{Activity, ConnId, Driver, IoArena, Session};
use monocoque_uring::{UringConfig, UringDriver};

/// What a [`Peer`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// Received this many bytes.
    Input(usize),
    /// The peer closed.
    Eof,
    /// The timer fired.
    Timeout,
}

/// A configurable session: echoes or collects input, holds views on request, has a
/// timer, and can stop reading.
#[derive(Default)]
pub struct Peer {
    pub out: IoArena,
    pub received: Vec<u8>,
    /// Received views kept alive (`hold`), to test buffer lifetimes.
    pub held: Vec<Bytes>,
    pub hold: bool,
    /// Echo input back (shared, not copied: the receive buffer stays referenced by the
    /// arena until it is sent).
    pub echo: bool,
    pub eof: bool,
    /// The session finished: the driver closes the socket once the arena is flushed.
    pub done: bool,
    /// Stop reading once this many bytes arrived (`None`: always read).
    pub read_limit: Option<usize>,
    pub paused: bool,
    pub timer: Option<Instant>,
    pub timeouts: usize,
    pub events: VecDeque<Ev>,
}

impl Peer {
    pub fn echo() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }

    pub fn sending(data: &[u8]) -> Self {
        let mut p = Self::default();
        p.out.put_slice(data);
        p
    }
}

impl Session for Peer {
    type Event = Ev;

    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.events.push_back(Ev::Input(data.len()));
        self.received.extend_from_slice(&data);
        if self.echo {
            self.out.put_shared(data.clone());
        }
        if self.hold {
            self.held.push(data);
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
        self.events.push_back(Ev::Eof);
    }

    fn handle_timeout(&mut self, now: Instant) {
        assert!(self.timer.is_some_and(|t| now >= t), "timeout fired early");
        self.timer = None;
        self.timeouts += 1;
        self.events.push_back(Ev::Timeout);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    fn wants_read(&self) -> bool {
        !self.paused && self.read_limit.is_none_or(|limit| self.received.len() < limit)
    }

    fn is_closed(&self) -> bool {
        self.done
    }
}

/// A driver, or a loud failure: these tests exist to exercise io_uring.
pub fn driver() -> UringDriver<Peer> {
    driver_with(UringConfig::default())
}

pub fn driver_with(config: UringConfig) -> UringDriver<Peer> {
    match UringDriver::with_config(config) {
        Ok(d) => d,
        Err(e) => panic!("io_uring driver unavailable on this machine: {e}"),
    }
}

/// Runs turns (collecting activity) until `done` holds or `limit` passes; panics on
/// timeout with `what`.
pub fn run_until(
    d: &mut UringDriver<Peer>,
    limit: Duration,
    what: &str,
    log: &mut Vec<Activity>,
    mut done: impl FnMut(&mut UringDriver<Peer>, &[Activity]) -> bool,
) {
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        if done(d, log) {
            return;
        }
        let now = Instant::now();
        assert!(now < end, "timed out waiting for: {what}");
        out.clear();
        d.turn(Some((now + Duration::from_millis(100)).min(end)), &mut out)
            .expect("turn failed");
        check_ready_once(&out);
        drain_events(d, &out);
        log.append(&mut out);
    }
}

/// `Ready` is reported at most once per connection per turn.
pub fn check_ready_once(out: &[Activity]) {
    let mut seen = std::collections::HashSet::new();
    for a in out {
        if let Activity::Ready(c) = a {
            assert!(seen.insert(*c), "Ready({c:?}) twice in one turn");
        }
    }
}

/// Drains the events of every session reported ready (the body's side of the rule).
pub fn drain_events(d: &mut UringDriver<Peer>, out: &[Activity]) {
    for a in out {
        if let Activity::Ready(c) = a {
            if let Some(s) = d.session_for_output(*c) {
                while s.poll_event().is_some() {}
            }
        }
    }
}

pub fn closed_error(log: &[Activity], conn: ConnId) -> Option<Option<io::ErrorKind>> {
    log.iter().find_map(|a| match a {
        Activity::Closed { conn: c, error } if *c == conn => Some(error.as_ref().map(io::Error::kind)),
        _ => None,
    })
}

pub fn accepted(log: &[Activity]) -> Vec<ConnId> {
    log.iter()
        .filter_map(|a| match a {
            Activity::Accepted { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

/// A deterministic byte pattern that differs per `seed` and position.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
