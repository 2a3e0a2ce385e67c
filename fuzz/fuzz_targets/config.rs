//! Arbitrary config text: `Config::parse` gives a value or an error, never a panic, keeps
//! its documented promises, and never shows a variable's value in an error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gangway_fuzz::check::config::check_text(&String::from_utf8_lossy(data));
});
