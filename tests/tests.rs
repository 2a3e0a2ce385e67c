//! Black-box tests of the gangway binary against real mock backend processes, compiled into
//! one test binary (as ripgrep and mio do). Run with `cargo test --test tests`.

mod cli;
mod gateway;
mod util;
