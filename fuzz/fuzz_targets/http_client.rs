//! The HTTP client's response reader and SSE parser on arbitrary server bytes, split
//! anywhere (see `tests/props/check/http_client.rs` for the input layout and the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_fuzz::check::http_client::run(data);
});
