#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monocoque_proto::fuzzing::resp_decode_resp2(data));
