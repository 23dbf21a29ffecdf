//! An in-memory [`Driver`]: every connection is wired to a scripted fake server instead
//! of a socket, on the real clock (the bodies read `Instant::now()`).
//!
//! Each frame the server answers with is delivered as the script says: whole or cut into
//! pieces, on time or late, replaced by an error reply, preceded by bytes no decoder
//! accepts, cut short by a disconnect, or never (the server freezes). A connection
//! attempt can be refused. [`turn`](Driver::turn) sleeps until the caller's deadline or
//! the next scripted delivery or session timer, whichever comes first; a turn with no
//! deadline and nothing that could ever wake it panics, since a real driver would block
//! there forever.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::SocketOptions;
use monocoque_proto::{Activity, ConnId, CoreId, Driver, ListenerId, Session, SessionFactory, Waker};

use super::script::Script;

/// One frame a fake server sends, as it would send it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's bytes.
    pub bytes: Vec<u8>,
    /// What the server may send in its place: a well-formed error, or nothing (empty:
    /// a message whose loss shifts no reply). `None` when nothing may replace it (a
    /// reply whose loss would shift every later reply).
    pub instead: Option<Vec<u8>>,
}

impl Frame {
    /// A frame nothing may replace.
    pub fn fixed(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            instead: None,
        }
    }

    /// A frame the script may replace with `instead`.
    pub fn or(bytes: impl Into<Vec<u8>>, instead: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            instead: Some(instead.into()),
        }
    }
}

/// The server end of one in-memory connection.
pub trait FakeServer {
    /// Frames sent as soon as the connection is up (NATS's `INFO`).
    fn greeting(&mut self) -> Vec<Frame>;

    /// The client sent `bytes` (any cut of its stream); returns the frames the server
    /// answers with, in order. Panics when the client's stream does not decode: a
    /// client must only send its protocol.
    fn receive(&mut self, bytes: &[u8]) -> Vec<Frame>;

    /// Bytes that start no frame of the protocol, so a client receiving them at a frame
    /// boundary fails at once.
    fn garbage(&self) -> &'static [u8];
}

/// The id of connection `slot` (ids are never reused: slots only grow).
fn conn_id(slot: u32) -> ConnId {
    ConnId::new(CoreId::default(), slot, 0)
}

/// What travels from the server to the client.
#[derive(Debug)]
enum Piece {
    Data(Bytes),
    Eof,
}

/// One connection: the client's session, its fake server and the wire between them.
struct Conn<S, F> {
    session: S,
    server: F,
    /// Scheduled deliveries, in order, each at or after the one before.
    wire: VecDeque<(Instant, Piece)>,
    /// The server sends nothing more (it closed, or froze).
    server_done: bool,
    eof_fed: bool,
    closed_reported: bool,
}

/// The in-memory driver. `F` builds a fresh fake server per connection.
pub struct MemDriver<S, F> {
    script: Script,
    make: Box<dyn FnMut() -> F>,
    conns: BTreeMap<u32, Conn<S, F>>,
    next_id: u32,
    pending: Vec<Activity>,
    /// Delay added to a frame the script makes late (past the client's timeouts).
    late: Duration,
    /// The loopback listener the bodies' blocking connects reach; drained on `adopt` so
    /// its backlog never fills.
    listener: Option<TcpListener>,
    /// Connections made (accepted or refused), for the harness's report.
    pub attempts: u64,
}

impl<S: Session, F: FakeServer> MemDriver<S, F> {
    /// A driver whose connections get servers from `make`, misbehaving as `script` says;
    /// a frame made late arrives `late` after its time. `listener` (non-blocking) is
    /// the socket a blocking connect in the body reached, if any.
    pub fn new(script: Script, make: Box<dyn FnMut() -> F>, late: Duration, listener: Option<TcpListener>) -> Self {
        Self {
            script,
            make,
            conns: BTreeMap::new(),
            next_id: 1,
            pending: Vec::new(),
            late,
            listener,
            attempts: 0,
        }
    }

    /// A new connection, unless the script refuses it.
    fn open(&mut self, session: S) -> Result<ConnId, (io::Error, S)> {
        self.attempts += 1;
        let refuse = self.script.byte() % 8 == 7;
        if super::tracing() {
            eprintln!(
                "[fuzz] connection attempt {}: {}",
                self.attempts,
                if refuse { "refused" } else { "accepted" }
            );
        }
        if refuse {
            return Err((io::Error::from(io::ErrorKind::ConnectionRefused), session));
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Conn {
            session,
            server: (self.make)(),
            wire: VecDeque::new(),
            server_done: false,
            eof_fed: false,
            closed_reported: false,
        };
        let frames = conn.server.greeting();
        schedule(&mut conn, frames, &self.script, self.late, Instant::now());
        self.conns.insert(id, conn);
        Ok(conn_id(id))
    }

    fn drain_listener(&self) {
        if let Some(listener) = &self.listener {
            while listener.accept().is_ok() {}
        }
    }

    /// One pass over every connection at `now`: transmit, deliver, fire timers, report.
    fn pass(&mut self, now: Instant, out: &mut Vec<Activity>) {
        for (&id, conn) in &mut self.conns {
            if conn.closed_reported {
                continue;
            }
            let mut ready = false;
            // The client's output reaches the server whole (the kernel takes it all).
            if let Some(arena) = conn.session.poll_transmit() {
                if !arena.is_empty() {
                    let bytes = arena.to_vec();
                    arena.advance(bytes.len());
                    if conn.session.handle_sent() {
                        out.push(Activity::Sent(conn_id(id)));
                    }
                    if !conn.server_done {
                        let frames = conn.server.receive(&bytes);
                        schedule(conn, frames, &self.script, self.late, now);
                    }
                }
            }
            while conn.wire.front().is_some_and(|(at, _)| *at <= now)
                && conn.session.wants_read()
                && !conn.eof_fed
                && !conn.session.is_closed()
            {
                match conn.wire.pop_front().map(|(_, p)| p) {
                    Some(Piece::Data(bytes)) => conn.session.handle_input(bytes, now),
                    Some(Piece::Eof) => {
                        conn.session.handle_eof(now);
                        conn.eof_fed = true;
                    }
                    None => break,
                }
                ready = true;
            }
            if !conn.session.is_closed() && conn.session.poll_timeout().is_some_and(|t| t <= now) {
                conn.session.handle_timeout(now);
                ready = true;
            }
            if ready {
                out.push(Activity::Ready(conn_id(id)));
            }
            let finished = conn.session.is_closed() && conn.session.poll_transmit().is_none_or(|a| a.is_empty());
            if conn.eof_fed || finished {
                conn.closed_reported = true;
                out.push(Activity::Closed {
                    conn: conn_id(id),
                    error: None,
                });
            }
        }
    }

    /// The next instant something can happen without the body: a delivery the session
    /// will read, or its timer.
    fn next_wake(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !c.closed_reported)
            .flat_map(|c| {
                let delivery = (c.session.wants_read() && !c.session.is_closed())
                    .then(|| c.wire.front().map(|(at, _)| *at))
                    .flatten();
                let timer = (!c.session.is_closed()).then(|| c.session.poll_timeout()).flatten();
                [delivery, timer]
            })
            .flatten()
            .min()
    }
}

/// Puts `frames` on the wire as the script says, two bytes per frame: the first's low
/// nibble says what happens to it (0-9 nothing, 10-11 replaced by its error or dropped
/// when it may be, 12 garbage
/// first, 13 the server closes within it, 14 the server freezes before it, 15 late),
/// its high nibble delays it by that many quarter milliseconds; the second says where it
/// is cut (and, bit 7, that its pieces trickle in).
fn schedule<S, F: FakeServer>(
    conn: &mut Conn<S, F>,
    frames: Vec<Frame>,
    script: &Script,
    late: Duration,
    now: Instant,
) {
    for frame in frames {
        if conn.server_done {
            return;
        }
        let fault = script.byte();
        let cut = script.byte();
        let mut at = now + Duration::from_micros(250 * u64::from(fault >> 4));
        if let Some((last, _)) = conn.wire.back() {
            at = at.max(*last);
        }
        if super::tracing() {
            eprintln!(
                "[fuzz] server frame {:?}: fault {} delay {} us, cut {cut}",
                String::from_utf8_lossy(&frame.bytes),
                fault % 16,
                250 * u32::from(fault >> 4)
            );
        }
        let mut bytes = frame.bytes;
        match fault % 16 {
            10 | 11 => {
                if let Some(instead) = frame.instead {
                    bytes = instead;
                }
            }
            12 => {
                let mut garbage = conn.server.garbage().to_vec();
                garbage.extend_from_slice(&bytes);
                bytes = garbage;
            }
            13 => {
                // The server sends part of the frame, then closes.
                let keep = usize::from(cut) % (bytes.len() + 1);
                bytes.truncate(keep);
                if !bytes.is_empty() {
                    conn.wire.push_back((at, Piece::Data(Bytes::from(bytes))));
                }
                conn.wire.push_back((at, Piece::Eof));
                conn.server_done = true;
                return;
            }
            14 => {
                // Frozen: nothing more is ever sent on this connection.
                conn.server_done = true;
                return;
            }
            15 => at += late,
            _ => {}
        }
        if bytes.is_empty() {
            // Replaced by nothing: a message the server dropped.
            continue;
        }
        for piece in cut_pieces(&bytes, cut) {
            conn.wire.push_back((at, Piece::Data(Bytes::copy_from_slice(piece))));
            // Pieces after the first trickle in a little later.
            if cut & 0x80 != 0 {
                at += Duration::from_micros(200);
            }
        }
    }
}

/// Cuts `body` into pieces: whole for seed `0`, else lengths in `1..=seed % 32 + 1`
/// from a generator seeded by the byte.
fn cut_pieces(body: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 || body.is_empty() {
        return vec![body];
    }
    let max = u32::from(seed % 32) + 1;
    let mut x = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = ((1 + x % max) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        out.push(piece);
        rest = tail;
    }
    out
}

impl<S: Session, F: FakeServer> Driver<S> for MemDriver<S, F> {
    fn connect_with(&mut self, _addr: SocketAddr, session: S, _options: &SocketOptions) -> io::Result<ConnId> {
        // No socket: the options have nothing to apply to.
        match self.open(session) {
            Ok(conn) => {
                self.pending.push(Activity::Connected(conn));
                Ok(conn)
            }
            Err((error, mut session)) => {
                // Refused: reported by the next turn, as a real connect failure is.
                let id = self.next_id;
                self.next_id += 1;
                session.handle_eof(Instant::now());
                self.conns.insert(
                    id,
                    Conn {
                        session,
                        server: (self.make)(),
                        wire: VecDeque::new(),
                        server_done: true,
                        eof_fed: true,
                        closed_reported: true,
                    },
                );
                self.pending.push(Activity::Closed {
                    conn: conn_id(id),
                    error: Some(error),
                });
                Ok(conn_id(id))
            }
        }
    }

    fn adopt(&mut self, stream: TcpStream, session: S) -> io::Result<ConnId> {
        // The accepted end goes first, so the loopback pair leaves no TIME_WAIT on the
        // client's ephemeral port.
        self.drain_listener();
        drop(stream);
        self.open(session).map_err(|(e, _)| e)
    }

    fn listen(&mut self, _addr: SocketAddr, _factory: SessionFactory<S>) -> io::Result<ListenerId> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    fn listener_addr(&self, _listener: ListenerId) -> io::Result<SocketAddr> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    fn close_listener(&mut self, _listener: ListenerId) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    fn session(&self, conn: ConnId) -> Option<&S> {
        self.conns.get(&conn.slot()).map(|c| &c.session)
    }

    fn core(&self) -> CoreId {
        CoreId::default()
    }

    fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn waker(&mut self) -> io::Result<Waker> {
        // One thread runs the harness: nothing wakes the driver from outside.
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut S> {
        self.conns.get_mut(&conn.slot()).map(|c| &mut c.session)
    }

    fn remove(&mut self, conn: ConnId) -> Option<S> {
        self.conns.remove(&conn.slot()).map(|c| c.session)
    }

    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> io::Result<()> {
        let start = out.len();
        out.append(&mut self.pending);
        loop {
            let now = Instant::now();
            self.pass(now, out);
            if out.len() > start || deadline.is_some_and(|d| d <= now) {
                return Ok(());
            }
            // A pass can leave output behind (a session answered what it was fed): go
            // round again before sleeping.
            if self
                .conns
                .values_mut()
                .any(|c| !c.closed_reported && c.session.poll_transmit().is_some_and(|a| !a.is_empty()))
            {
                continue;
            }
            let wake = match (self.next_wake(), deadline) {
                (Some(w), Some(d)) => w.min(d),
                (Some(w), None) => w,
                (None, Some(d)) => d,
                (None, None) => panic!(
                    "Driver::turn(None) with no delivery and no session timer pending: \
                     a real driver would block here forever"
                ),
            };
            let now = Instant::now();
            if wake > now {
                std::thread::sleep(wake - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::RedisServer;
    use monocoque_proto::resp::{Connection, ConnectionConfig, Event};

    fn driver(script: &[u8]) -> MemDriver<Connection, RedisServer> {
        MemDriver::new(
            Script::new(script),
            Box::new(|| RedisServer::new(false)),
            Duration::from_millis(5),
            None,
        )
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn connect_reports_connected_then_the_handshake() {
        let mut d = driver(&[]);
        let conn = d
            .connect(addr(), Connection::new(ConnectionConfig::default(), Instant::now()))
            .expect("connect");
        let mut out = Vec::new();
        d.turn(Some(Instant::now() + Duration::from_secs(5)), &mut out)
            .expect("turn");
        assert!(
            matches!(out.first(), Some(Activity::Connected(c)) if *c == conn),
            "{out:?}"
        );
        // HELLO goes to the fake server, its map comes back: the session connects.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut connected = false;
        loop {
            let session = d.session_for_output(conn).expect("session");
            while let Some(event) = session.poll_event() {
                connected |= matches!(event, Event::Connected { .. });
            }
            if connected || Instant::now() >= deadline {
                break;
            }
            out.clear();
            d.turn(Some(deadline), &mut out).expect("turn");
        }
        assert!(connected);
    }

    #[test]
    fn a_refused_connect_is_closed_with_its_error() {
        // The connection attempt's byte: 7 refuses.
        let mut d = driver(&[7]);
        let conn = d
            .connect(addr(), Connection::new(ConnectionConfig::default(), Instant::now()))
            .expect("connect");
        let mut out = Vec::new();
        d.turn(Some(Instant::now()), &mut out).expect("turn");
        match out.as_slice() {
            [Activity::Closed {
                conn: c,
                error: Some(e),
            }] => {
                assert_eq!(*c, conn);
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Closed with an error, got {other:?}"),
        }
        assert!(d.remove(conn).is_some());
        assert_eq!(d.connection_count(), 0);
    }

    #[test]
    fn a_frozen_server_is_waited_out_only_until_the_deadline() {
        // Connected, then the HELLO reply's fault byte 14 freezes the server.
        let mut d = driver(&[0, 14, 0]);
        let conn = d
            .connect(addr(), Connection::new(ConnectionConfig::default(), Instant::now()))
            .expect("connect");
        let mut out = Vec::new();
        d.turn(Some(Instant::now()), &mut out).expect("turn");
        out.clear();
        let start = Instant::now();
        d.turn(Some(start + Duration::from_millis(20)), &mut out).expect("turn");
        assert!(start.elapsed() >= Duration::from_millis(20), "returned early: {out:?}");
        assert!(d.session(conn).is_some_and(|s| !s.is_connected()));
    }

    #[test]
    #[should_panic(expected = "block here forever")]
    fn waiting_without_a_deadline_for_nothing_panics() {
        let mut d = driver(&[]);
        d.turn(None, &mut Vec::new()).expect("turn");
    }

    #[test]
    fn cuts_cover_the_frame_in_order() {
        let body: Vec<u8> = (0..=200).collect();
        for seed in 0..=255u8 {
            let pieces = cut_pieces(&body, seed);
            assert_eq!(pieces.concat(), body, "seed {seed}");
            assert!(pieces.iter().all(|p| !p.is_empty()), "seed {seed}");
        }
    }
}
