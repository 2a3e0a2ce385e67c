//! A script of connection events (see `tests/props/check/http.rs` for the format) through
//! the HTTP front of `gangway serve` and a gateway: no panic, every connection's output a
//! sequence of well-framed HTTP/1.1 responses, output and sessions within their bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_fuzz::check::http::run(data);
});
