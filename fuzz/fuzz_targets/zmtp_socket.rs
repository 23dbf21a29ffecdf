#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque_proto::fuzzing::zmtp_socket(data));
