//! Property tests (proptest) of what must hold for any input: framing against a naive split,
//! the message view and its id splice, config parsing, and the sans-IO gateway driven by
//! scripts of client and backend events. The invariants themselves are in `check/`, shared
//! with the cargo-fuzz targets in `fuzz/` (see `scripts/fuzz`), so these tests are a fast,
//! always-on slice of the fuzzing; `regressions.rs` keeps what fuzzing found.
//!
//! Runs are reproducible: the seed is fixed unless `PROPTEST_RNG_SEED` is set, the number of
//! cases per test is fixed unless `PROPTEST_CASES` is, and no failure files are written (a
//! failure prints its minimal input; copy it into `regressions.rs`).

pub mod check;
mod config;
mod framing;
mod gateway;
mod message;
mod regressions;

use proptest::test_runner::{Config, RngSeed};

/// The runner configuration: `cases` cases (or `PROPTEST_CASES`), a fixed seed (or
/// `PROPTEST_RNG_SEED`), no persistence.
fn runner(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6761_6e67_7761_7921);
    }
    config.failure_persistence = None;
    config
}
