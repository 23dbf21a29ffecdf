//! The MQTT broker as the network drives it: up to four clients' byte streams, their
//! ends of stream and the passing of time, into broker [`Connection`]s and one
//! [`BrokerState`], with small limits so windows, queues, caps, aliases, keep alive and
//! expiry all come into play.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::broker::{BrokerState, Connection, ConnectionConfig};
use crate::mqtt::{Decoder, Packet, QoS, DEFAULT_MAX_PACKET_SIZE};

/// Fuzzes the broker: [`Connection`]s and a [`BrokerState`] fed bytes, ends of stream
/// and time.
///
/// Input layout: byte 0 holds options, byte 1 the clock step (in 100 ms units, 0 for
/// one second), then operations. An operation byte names a connection (bits 0-1) and
/// what happens (bits 2-3): 0 the client sends the next `n` bytes (`n` the byte after;
/// a connection opens at its first bytes), 1 its stream ends, 2 time passes (bits 4-7
/// steps), 3 what the broker wrote to it is read. Options: bit 0 a 256-byte Maximum
/// Packet Size, bits 1-2 an inflight cap of 1-4, bit 3 a 512-byte output cap, bit 4 two
/// topic aliases, bit 5 a 5-second keep-alive cap, bit 6 a Receive Maximum of 2, bit 7
/// a queue of 2 messages per session.
///
/// Checks, panicking on the first that fails:
/// 1. nothing panics;
/// 2. everything the broker writes to a client whose protocol version is known
///    decodes, in that version, as whole packets a client accepts;
/// 3. every QoS 1 or 2 `PUBLISH` it writes has a packet identifier.
pub fn mqtt_broker(data: &[u8]) {
    let [options, step, ops @ ..] = data else { return };
    let config = config(*options);
    let step = Duration::from_millis(if *step == 0 { 1000 } else { u64::from(*step) * 100 });
    let mut now = Instant::now();
    let mut state = BrokerState::<u8>::new();
    let mut conns: HashMap<u8, Connection> = HashMap::new();
    let mut readers: HashMap<u8, Reader> = HashMap::new();
    let mut rest = ops;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let id = op & 3;
        match (op >> 2) & 3 {
            0 => {
                let [len, tail @ ..] = rest else { return };
                let n = usize::from(*len).min(tail.len());
                let (chunk, tail) = tail.split_at(n);
                rest = tail;
                let conn = conns.entry(id).or_insert_with(|| {
                    readers.insert(id, Reader::default());
                    Connection::new(config, now)
                });
                conn.handle_input(Bytes::copy_from_slice(chunk), now);
            }
            1 => {
                if let Some(c) = conns.get_mut(&id) {
                    c.handle_eof(now);
                }
            }
            2 => {
                now += step * u32::from((op >> 4).max(1));
                for c in conns.values_mut() {
                    if c.poll_timeout().is_some_and(|t| t <= now) {
                        c.handle_timeout(now);
                    }
                }
                if state.poll_timeout().is_some_and(|t| t <= now) {
                    state.handle_timeout(now, &mut conns);
                }
            }
            _ => {
                if let (Some(c), Some(r)) = (conns.get_mut(&id), readers.get_mut(&id)) {
                    r.read(c);
                }
            }
        }
        pump(&mut state, &mut conns, now);
        // A closed connection is gone once its last bytes are read, as a driver drops it.
        let closed: Vec<u8> = conns.iter().filter(|(_, c)| c.is_closed()).map(|(k, _)| *k).collect();
        for id in closed {
            if let (Some(mut c), Some(mut r)) = (conns.remove(&id), readers.remove(&id)) {
                r.read(&mut c);
            }
        }
    }
}

fn config(options: u8) -> ConnectionConfig {
    let bit = |n: u8| options & (1 << n) != 0;
    ConnectionConfig {
        max_packet_size: if bit(0) { 256 } else { DEFAULT_MAX_PACKET_SIZE },
        max_inflight: 1 + u16::from((options >> 1) & 3),
        max_output_bytes: if bit(3) { 512 } else { 1 << 20 },
        topic_alias_maximum: if bit(4) { 2 } else { 0 },
        max_keep_alive: bit(5).then_some(5),
        receive_maximum: if bit(6) { 2 } else { 1024 },
        max_queued_messages: if bit(7) { 2 } else { 1000 },
        ..ConnectionConfig::default()
    }
}

/// Hands every connection's events to the broker state until none is left.
fn pump(state: &mut BrokerState<u8>, conns: &mut HashMap<u8, Connection>, now: Instant) {
    loop {
        let mut any = false;
        for id in 0..4u8 {
            while let Some(event) = conns.get_mut(&id).and_then(|c| c.poll_event()) {
                any = true;
                state.handle_event(id, event, now, conns);
            }
        }
        if !any {
            return;
        }
    }
}

/// The client side of one connection: the broker's bytes, decoded once the version is
/// known.
#[derive(Default)]
struct Reader {
    received: SegmentedBuffer,
    decoder: Option<Decoder>,
}

impl Reader {
    fn read(&mut self, conn: &mut Connection) {
        if let Some(arena) = conn.poll_transmit() {
            let bytes = arena.to_vec();
            arena.advance(bytes.len());
            self.received.push_slice(&bytes);
        }
        if self.decoder.is_none() {
            // Before the version is known only a refusal goes out; its format depends
            // on the CONNECT that could not be read, so it is not checked.
            let Some(version) = conn.version() else { return };
            self.decoder = Some(Decoder::client(version, u32::MAX));
        }
        let Some(decoder) = self.decoder.as_mut() else { return };
        loop {
            match decoder.decode(&mut self.received) {
                Ok(Some(Packet::Publish(p))) if p.qos != QoS::AtMostOnce => {
                    assert_ne!(p.packet_id, 0, "a QoS {:?} PUBLISH without an identifier", p.qos);
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => panic!("the broker wrote a packet its client cannot read: {e}"),
            }
        }
    }
}

/// The seed streams of [`mqtt_broker`], without the two header bytes: one client's
/// whole session per version (each of `mqtt_server_seeds`' sessions sent to connection
/// 0 in pieces, read back, then time passing), and a subscriber and a publisher on two
/// connections.
pub fn mqtt_broker_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for stream in super::mqtt_server_seeds() {
        let mut ops = Vec::new();
        send(&mut ops, 0, &stream);
        ops.extend_from_slice(&[0x0c, 0x28, 0x0c, 0xf8, 0x0c]);
        seeds.push(ops);
    }
    seeds
}

/// Appends operations that send `bytes` on connection `id`, in pieces of at most 255.
fn send(ops: &mut Vec<u8>, id: u8, bytes: &[u8]) {
    for piece in bytes.chunks(255) {
        ops.push(id & 3);
        ops.push(piece.len() as u8);
        ops.extend_from_slice(piece);
    }
}
