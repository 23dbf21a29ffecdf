//! What the broker's in-memory test harnesses (`tests`, `feature_tests`,
//! `delivery_tests`, `conformance_tests`) share: clients are codecs, connections are
//! [`Connection`]s in a map, and bytes move between them by hand on a given instant.

use std::collections::HashMap;
use std::time::Instant;

use super::{BrokerState, Connection};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{Codec, Packet};

/// Hands every connection's events to the broker, connections in key order, until
/// none is left (an event may make others).
pub(super) fn pump(state: &mut BrokerState<u32>, conns: &mut HashMap<u32, Connection>, now: Instant) {
    loop {
        let mut any = false;
        let mut ids: Vec<u32> = conns.keys().copied().collect();
        ids.sort();
        for id in ids {
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

/// `packet` as the client's codec writes it.
pub(super) fn encode(codec: &mut Codec, packet: &Packet) -> Vec<u8> {
    let mut wire = crate::IoArena::new();
    codec.encode(packet, &mut wire).expect("the client's packet encodes");
    wire.to_vec()
}

/// The bytes `conn` wrote since the last call, taken out of its output.
pub(super) fn take_output(conn: &mut Connection) -> Vec<u8> {
    conn.poll_transmit()
        .map(|a| {
            let v = a.to_vec();
            a.advance(v.len());
            v
        })
        .unwrap_or_default()
}

/// Appends `bytes` to what the client has received and decodes every whole packet.
pub(super) fn decode_all(codec: &mut Codec, received: &mut SegmentedBuffer, bytes: &[u8]) -> Vec<Packet> {
    received.push_slice(bytes);
    let mut out = Vec::new();
    while let Some(p) = codec.decode(received).expect("the broker's bytes decode") {
        out.push(p);
    }
    out
}
