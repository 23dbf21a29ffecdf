//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the corpus
//! replay test (`proto/tests/fuzz_corpus.rs`).
//!
//! Each entry point takes the fuzzer's raw bytes, returns nothing, and panics only when
//! it found a bug: a panic inside the code under test, or a broken invariant that the
//! entry point asserts (a differential round trip that disagrees, a buffer that no longer
//! matches its model). The same functions run under libFuzzer (nightly, `cargo fuzz`) and
//! under a stable `cargo test` that replays the committed corpus, so a crash once found
//! stays found.
//!
//! | target | input |
//! |---|---|
//! | [`resp_decode_resp2`], [`resp_decode_resp3`] | two header bytes (options, split seed), then the RESP stream |
//! | [`resp_tape`] | two header bytes (options, split seed), then the RESP stream |
//! | [`segmented_buffer`] | a sequence of operations on a [`SegmentedBuffer`](crate::SegmentedBuffer) |
//! | [`resp_request`] | one option byte, one split seed byte, then the commands a client sends |
//! | [`resp_connection`] | a sequence of operations on a Redis [`Connection`](crate::resp::Connection): sends, server frames, time, end of stream |
//! | [`nats_client_decode`], [`nats_server_decode`] | two header bytes (options, split seed), then the NATS stream a server (resp. a client) sends |
//! | [`nats_headers`] | a NATS header block as an `HMSG` carries it (any bytes) |
//! | [`zmtp_greeting`] | one split seed byte, then what a ZMTP peer sends first |
//! | [`zmtp_frames`] | two header bytes (options, split seed), then a ZMTP frame stream |
//! | [`zmtp_commands`] | a mode byte, then a command body, or a split seed and a peer's side of a handshake |
//! | [`zmtp_curve`] | two header bytes (unused, split seed), a mode byte (CURVE server, client, `MESSAGE` boxes), then the stream |
//! | [`mqtt_server_decode`], [`mqtt_client_decode`] | two header bytes (version and size limit, split seed), then the MQTT stream a client (resp. a server) sends |
//! | [`mqtt_broker`] | two header bytes (limits, clock step), then operations on up to four broker connections: client bytes, ends of stream, time, reads |
//! | [`mqtt_client_session`] | two header bytes (options, split and action seed), then what an MQTT server sends a client after its `CONNECT` |
//! | [`ws_handshake`] | two header bytes (options: no subprotocol required, a 64-byte head limit; split seed), then a WebSocket opening request |
//! | [`ws_frames`] | two header bytes (options: client side, a 64-byte frame limit; split seed), then a WebSocket frame stream |
//! | [`zap_reply`] | one split seed byte, then the frame stream a ZAP handler sends (a reply) |
//! | [`nats_client`](fn@nats_client) | a sequence of operations on a NATS client [`Connection`](crate::nats::client::Connection): publishes, subscriptions, requests, server frames, time, reconnects |

mod connection;
mod curve;
mod headers;
mod mqtt;
mod mqtt_broker;
mod mqtt_client;
mod nats;
mod nats_client;
mod request;
mod resp;
mod segmented;
mod socket;
mod split;
mod tape;
mod ws;
mod zap;
mod zmtp;

pub use connection::resp_connection;
pub use curve::{zmtp_curve, zmtp_curve_seeds};
pub use headers::nats_headers;
pub use mqtt::{mqtt_client_decode, mqtt_client_seeds, mqtt_server_decode, mqtt_server_seeds};
pub use mqtt_broker::{mqtt_broker, mqtt_broker_seeds};
pub use mqtt_client::{mqtt_client_session, mqtt_client_session_seeds};
pub use nats::{nats_client_decode, nats_client_seeds, nats_server_decode, nats_server_seeds, plain};
pub use nats_client::nats_client;
pub use request::resp_request;
pub use resp::{decode_each, identical, resp_decode_resp2, resp_decode_resp3, small_limits};
pub use segmented::segmented_buffer;
pub use socket::{zmtp_socket, zmtp_socket_seeds};
pub use tape::{check_ref, resp_tape, tape_pieces, value_pieces, TapeEnd};
pub use ws::{ws_frames, ws_frames_seeds, ws_handshake, ws_handshake_seeds};
pub use zap::zap_reply;
pub use zmtp::{zmtp_commands, zmtp_frames, zmtp_greeting};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target, by the name of its file in `fuzz/fuzz_targets/` and of its corpus
/// directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("resp_decode_resp2", resp_decode_resp2),
    ("resp_decode_resp3", resp_decode_resp3),
    ("resp_tape", resp_tape),
    ("segmented_buffer", segmented_buffer),
    ("resp_connection", resp_connection),
    ("resp_request", resp_request),
    ("nats_client_decode", nats_client_decode),
    ("nats_server_decode", nats_server_decode),
    ("nats_client", nats_client),
    ("nats_headers", nats_headers),
    ("zmtp_greeting", zmtp_greeting),
    ("zmtp_frames", zmtp_frames),
    ("zmtp_commands", zmtp_commands),
    ("zmtp_curve", zmtp_curve),
    ("zmtp_socket", zmtp_socket),
    ("mqtt_server_decode", mqtt_server_decode),
    ("mqtt_client_decode", mqtt_client_decode),
    ("mqtt_broker", mqtt_broker),
    ("ws_handshake", ws_handshake),
    ("ws_frames", ws_frames),
    ("mqtt_client_session", mqtt_client_session),
    ("zap_reply", zap_reply),
];
