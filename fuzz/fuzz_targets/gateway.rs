//! A script of client and backend events (see `tests/props/check/gateway.rs` for the
//! format) through the sans-IO gateway: no panic, no request answered twice, every request
//! answered and nothing tracked once every backend has exited and every deadline passed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_fuzz::check::gateway::run(data);
});
