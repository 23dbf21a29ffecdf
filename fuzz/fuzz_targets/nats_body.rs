#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque::fuzzing::nats_body(data));
