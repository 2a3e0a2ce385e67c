//! Arbitrary bytes, pushed into a `LineFramer` in pieces whose sizes the input picks: the
//! frames equal a naive split of the whole stream, long lines come out as `Oversize` with
//! their length, and the framer never allocates past its documented cap.
#![no_main]

use gangway_fuzz::{check::framing, Counting, HEAP};

#[global_allocator]
static ALLOC: Counting = Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    framing::check(&framing::case_from_bytes(data), Some(&HEAP));
});
