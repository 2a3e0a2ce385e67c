//! Arbitrary bytes as one line: classifying never panics, and for every message with an id,
//! splicing in a gateway id and putting the original back is exact.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_fuzz::check::message::check_line(data);
});
