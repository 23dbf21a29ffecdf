#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque_proto::fuzzing::mqtt_client_session(data));
