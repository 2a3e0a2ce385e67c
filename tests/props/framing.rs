//! `LineFramer`: any stream, in pieces of any size, gives the frames of a naive split.

use super::check::framing::{
    case_from_bytes, check, Case, INITIAL_CAPACITY, MAX_STREAM, READ_CHUNK,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Bytes where framing is decided: mostly newlines, carriage returns and one letter.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(b'\n'),
        2 => Just(b'\r'),
        6 => Just(b'a'),
        3 => any::<u8>(),
    ]
}

/// A stream of short random runs and, now and then, one byte repeated many times (a line
/// longer than any limit, or one just under a large one).
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let run = prop_oneof![
        12 => vec(byte(), 0..24),
        1 => (byte(), 1..150_000usize).prop_map(|(b, n)| vec![b; n]),
    ];
    vec(run, 0..24).prop_map(|runs| {
        let mut s = runs.concat();
        s.truncate(MAX_STREAM);
        s
    })
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..48usize,
        1 => Just(INITIAL_CAPACITY + 1),
        1 => Just(20_000),
        1 => Just(READ_CHUNK + 5),
    ]
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![
        4 => 1..8usize,
        2 => 1..2_000usize,
        1 => Just(READ_CHUNK),
        1 => READ_CHUNK..3 * READ_CHUNK,
    ];
    vec(size, 1..8)
}

fn case() -> impl Strategy<Value = Case> {
    (limit(), stream(), pieces(), any::<bool>()).prop_map(|(max_line, stream, pieces, lazy)| Case {
        max_line,
        stream,
        pieces,
        lazy,
    })
}

proptest! {
    #![proptest_config(super::runner(160))]

    #[test]
    fn frames_equal_a_naive_split_of_the_stream(case in case()) {
        check(&case, None);
    }

    /// The fuzz target's own decoding, on random bytes.
    #[test]
    fn fuzz_inputs_decode_to_cases_that_hold(data in vec(any::<u8>(), 0..400)) {
        check(&case_from_bytes(&data), None);
    }
}
