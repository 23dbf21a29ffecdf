#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque_proto::fuzzing::zap_reply(data));
