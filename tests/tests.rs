//! Black-box tests of the gangway binary against real child processes (our mock server and the
//! real MCP peers that `.ci/run` installs), compiled into
//! one test binary (as ripgrep and mio do). Run with `cargo test --test tests`.

mod cli;
mod docker;
mod gateway;
mod peers;
mod props;
mod scale;
mod util;
