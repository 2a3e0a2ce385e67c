//! The command line: version, config discovery and config errors (exit code 2), and running
//! as a systemd service (`service.rs`).

mod config_isolation;
mod names;
mod service;
mod setup;

use crate::util::*;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Stdio};

/// What a short gangway run left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts the exit code, showing both outputs when it differs.
    #[track_caller]
    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` (stdin closed) to completion within the default deadline.
fn run(mut cmd: Command) -> Run {
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn gangway");
    let status = wait_child(&mut child, T);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("gangway did not exit within {T:?}");
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.unwrap().code(),
        stdout,
        stderr,
    }
}

/// Runs `gangway SUBCOMMAND --config DIR/config.json ARGS...` with `config`, after
/// `prepare` adjusts the command (environment, extra flags).
fn setup_with(
    dir: &TempDir,
    config: &Value,
    subcommand: &str,
    args: &[&str],
    prepare: impl FnOnce(&mut Command),
) -> Run {
    let path = dir.write_config("config.json", config);
    let mut cmd = gangway(dir);
    cmd.arg(subcommand).arg("--config").arg(&path).args(args);
    prepare(&mut cmd);
    run(cmd)
}

/// The table row of `backend` in `check`'s output.
fn row<'a>(r: &'a Run, backend: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(backend))
        .unwrap_or_else(|| {
            panic!(
                "no row for {backend} in:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            )
        })
}
fn gangway(dir: &TempDir) -> Command {
    let mut cmd = Command::new(gangway_bin());
    cmd.current_dir(dir.path()).env_remove("GANGWAY_CONFIG");
    // Each test has a catalog of its own, never the user's.
    cmd.env("XDG_CACHE_HOME", dir.join("cache"));
    cmd
}

#[test]
fn version_flag_prints_the_version() {
    let dir = TempDir::new();
    for flag in ["--version", "-V"] {
        let mut cmd = gangway(&dir);
        cmd.arg(flag);
        let r = run(cmd);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(
            r.stdout.trim(),
            format!("gangway {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn missing_config_exits_2_naming_the_paths_tried() {
    let dir = TempDir::new();
    let missing = dir.join("nowhere.json");
    let mut cmd = gangway(&dir);
    cmd.arg("--config").arg(&missing);
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "one line: {}",
        r.stderr
    );
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "stdout carries protocol only: {}",
        r.stdout
    );

    // No flag and no $GANGWAY_CONFIG: ./config.json in the working directory.
    let r = run(gangway(&dir));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "one line: {}",
        r.stderr
    );
    assert!(r.stderr.contains("config.json"), "{}", r.stderr);
    assert!(r.stderr.contains("GANGWAY_CONFIG"), "{}", r.stderr);

    // $GANGWAY_CONFIG pointing nowhere is named as such.
    let mut cmd = gangway(&dir);
    cmd.env("GANGWAY_CONFIG", &missing);
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("$GANGWAY_CONFIG"), "{}", r.stderr);
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
}

#[test]
fn unknown_config_key_exits_2_naming_the_key() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["tiemout"] = json!(5);
    let path = dir.write_config("bad.json", &json!({ "backends": { "alpha": alpha } }));
    let mut cmd = gangway(&dir);
    cmd.arg("--config").arg(&path);
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("tiemout"), "{}", r.stderr);
    assert!(
        r.stderr.contains("timeout"),
        "suggests the closest key: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bad.json"),
        "names the file: {}",
        r.stderr
    );

    let path = dir.join("broken.json");
    std::fs::write(&path, "{ \"backends\": ").unwrap();
    let mut cmd = gangway(&dir);
    cmd.arg("--config").arg(&path);
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("broken.json"), "{}", r.stderr);
}

#[test]
fn gangway_config_env_var_is_used_without_config_flag() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "backends": { "alpha": mock("alpha", &[]) } });
    let path = dir.write_config("via-env.json", &config);
    let mut cmd = Command::new(gangway_bin());
    cmd.env_remove("RUST_LOG")
        .env("GANGWAY_CONFIG", &path)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    assert_eq!(
        ok_text(&gw.call_tool("alpha__echo", json!({ "text": "env" }))),
        "env"
    );
    gw.wait_stderr("via-env.json", T);
}

#[test]
fn unset_variable_in_args_disables_that_backend_naming_it_the_variable_and_where() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["args"]
        .as_array_mut()
        .unwrap()
        .push(json!("--token=${GW_TEST_NEVER_SET_TOKEN}"));
    let path = dir.write_config("config.json", &json!({ "backends": { "alpha": alpha } }));
    let mut cmd = gangway(&dir);
    cmd.arg("--config")
        .arg(&path)
        .env_remove("GW_TEST_NEVER_SET_TOKEN");
    let r = run(cmd);
    // Not a startup error (issue 11): a client would lose every other backend with it.
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("backend alpha is disabled"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("GW_TEST_NEVER_SET_TOKEN"), "{}", r.stderr);
    assert!(r.stderr.contains("args[2]"), "names where: {}", r.stderr);
}
