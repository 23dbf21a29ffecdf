#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque_proto::fuzzing::ws_handshake(data));
