//! The receive path's cost with the ring healthy (zero-copy views) and below its
//! low-water mark (every receive copied into its own heap buffer): streams 512 MiB
//! from a loopback peer into a session that drops what it gets, after first holding
//! `held` views from as many small writes. Run:
//! `cargo run --release -p monocoque-uring --example recv_low_water`.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::{Driver, IoArena, Session};
use monocoque_uring::UringDriver;

const TOTAL: usize = 512 << 20;

#[derive(Default)]
struct Sink {
    received: usize,
    hold: usize,
    held: Vec<Bytes>,
}

impl Session for Sink {
    type Event = ();
    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.received += data.len();
        if self.held.len() < self.hold {
            self.held.push(data);
        }
    }
    fn handle_eof(&mut self, _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn wants_read(&self) -> bool {
        true
    }
    fn is_closed(&self) -> bool {
        false
    }
}

fn run(held: usize) -> (Duration, u64) {
    let mut d = UringDriver::<Sink>::new().expect("io_uring");
    let l = d
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            Box::new(move |_, _, _| Sink {
                hold: held,
                ..Sink::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    let mut out = Vec::new();
    let conn = loop {
        d.turn(Some(Instant::now() + Duration::from_secs(1)), &mut out).unwrap();
        if let Some(monocoque_proto::Activity::Accepted { conn, .. }) = out.first() {
            break *conn;
        }
    };
    for i in 0..held {
        peer.write_all(&[b'x'; 8]).unwrap();
        while d.session(conn).unwrap().received < 8 * (i + 1) {
            d.turn(Some(Instant::now() + Duration::from_millis(100)), &mut out)
                .unwrap();
        }
    }
    let before = d.stats().recv_copied;
    let writer = thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..TOTAL >> 20 {
            peer.write_all(&chunk).unwrap();
        }
        peer
    });
    let start = Instant::now();
    while d.session(conn).unwrap().received < 8 * held + TOTAL {
        d.turn(Some(Instant::now() + Duration::from_millis(100)), &mut out)
            .unwrap();
        out.clear();
    }
    let took = start.elapsed();
    drop(writer.join().unwrap());
    (took, d.stats().recv_copied - before)
}

fn main() {
    for _ in 0..3 {
        for held in [0, 200] {
            let (took, copied) = run(held);
            println!(
                "held {held:3}: 512 MiB in {took:?} = {:.0} MiB/s, {copied} receives copied",
                512.0 / took.as_secs_f64()
            );
        }
    }
}
