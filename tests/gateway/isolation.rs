//! Fault isolation (issue 11): a backend that floods, escapes its process group or nests
//! gangway hurts only itself, nothing gangway started outlives it, and a second
//! termination signal still answers every request in flight.

use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;

/// Whether `pid` no longer runs (gone, or a zombie waiting for init, which may not reap in
/// a container): what a user checking `ps` for leftovers would care about.
fn dead(pid: i32) -> bool {
    matches!(pid_state(pid), None | Some('Z'))
}

fn assert_dead(g: &Gangway, pid: i32, what: &str) {
    if !wait_for(T, || dead(pid)) {
        g.fail(&format!(
            "{what} (pid {pid}) still runs {T:?} later (state {:?})",
            pid_state(pid)
        ));
    }
}

/// Waits for `path` to hold a pid and returns it.
fn pid_in(g: &Gangway, path: &Path) -> i32 {
    let mut pid = None;
    wait_for(T, || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap_or_else(|| g.fail(&format!("no pid was written to {}", path.display())))
}

fn sh(script: &str) -> Value {
    json!({ "command": "sh", "args": ["-c", script] })
}

// ----- a flood from a process that escaped the kill -------------------------------------

#[test]
fn a_leader_exit_while_an_escaped_process_floods_stdout_hangs_nothing() {
    let dir = TempDir::new();
    let flooder = dir.join("flooder.pid");
    // The leader exits while a process in a session of its own keeps writing non-JSON to
    // the stdout it inherited, faster than gangway can read. (No `$$` in scripts: the
    // config reads it as an escaped `$`.)
    let script = format!(
        "setsid sh -c 'yes not-json & echo $! > {}; wait' & sleep 0.3; exit 0",
        flooder.display()
    );
    let config = json!({ "backends": { "flood": sh(&script), "alpha": mock("alpha", &[]) } });
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    let call = g.request_use_tool("flood", "echo", json!({ "text": "x" }));
    let flooder_pid = pid_in(&g, &flooder);
    let resp = g.response(&call, T);
    let text = tool_error_text(&resp);
    assert!(
        text.contains("flood"),
        "the error names the backend: {text}"
    );
    // Every other backend keeps being served.
    let resp = g.use_tool("alpha", "echo", json!({ "text": "still served" }));
    assert_eq!(ok_text(&resp), "still served");
    assert_dead(
        &g,
        flooder_pid,
        "the flooding process the backend left behind",
    );
    kill(Pid::from_raw(g.pid()), Signal::SIGTERM).expect("send SIGTERM");
    if g.wait_exit(T).is_none() {
        g.fail("gangway did not exit after SIGTERM");
    }
}

// ----- repeated log lines ---------------------------------------------------------------

/// The counts in "(repeated N times)" log lines that mention `needle`, and how many log
/// lines mention it at all.
fn repeats(g: &Gangway, needle: &str) -> (u64, usize) {
    let lines: Vec<String> = g
        .stderr()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect();
    let counted = lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.rfind("(repeated ")? + "(repeated ".len()..];
            rest.split(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    (counted, lines.len())
}

#[test]
fn repeated_log_lines_of_a_backend_are_logged_once_and_counted() {
    const N: u64 = 20_000;
    let dir = TempDir::new();
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do echo same-stderr-line >&2; echo same-garbage-line; \
         i=$((i+1)); done; echo other >&2; exec {} --name chatty",
        mock_path().display()
    );
    let config = json!({ "backends": { "chatty": sh(&script) } });
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    let resp = g.use_tool("chatty", "echo", json!({ "text": "after the flood" }));
    assert_eq!(ok_text(&resp), "after the flood");
    g.finish();
    for needle in ["same-stderr-line", "same-garbage-line"] {
        let (counted, logged) = repeats(&g, needle);
        if counted != N - 1 || logged > 8 {
            g.fail(&format!(
                "{N} copies of {needle}: {logged} log lines counting {counted} repeats; \
                 expected one line shown, a few counts, and {} repeats counted",
                N - 1
            ));
        }
    }
}

// ----- nesting --------------------------------------------------------------------------

#[test]
fn a_gangway_nested_two_levels_deep_refuses_to_start() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("GANGWAY_DEPTH", "2").stdin(Stdio::null());
    let mut g = Gangway::spawn(cmd);
    let status = g
        .wait_exit(T)
        .unwrap_or_else(|| g.fail("a gangway at depth 2 did not exit"));
    assert_eq!(status.code(), Some(2), "exit status {status}");
    let line = g.wait_stderr("refusing to start", T);
    for part in ["GANGWAY_DEPTH=2", "Remove that entry"] {
        assert!(line.contains(part), "the message lacks {part:?}: {line}");
    }
}

#[test]
fn a_config_that_starts_gangway_itself_nests_one_level_only() {
    let dir = TempDir::new();
    let path = dir.join("config.json");
    let config = json!({
        "expose": "tools",
        "backends": {
            "alpha": mock("alpha", &[]),
            "self": { "command": gangway_bin(), "args": ["--config", path] }
        }
    });
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    // The nested gangway (depth 1) serves; the one it starts (depth 2) refuses, so the
    // list comes back instead of waiting on an endless chain.
    let resp = g.call("tools/list", json!({}));
    let names = tool_names(&resp);
    assert!(names.contains(&"alpha__echo".to_string()), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("self__alpha")),
        "the nested gangway's own tools are listed: {names:?}"
    );
    g.wait_stderr("refusing to start", T);
    g.finish();
}

// ----- nothing gangway started outlives it ------------------------------------------------

/// A backend behind a wrapper (`sh` that does not exec) that ignores stdin EOF, and that
/// starts a daemon in a session of its own. Returns gangway, the server's pid and the
/// daemon's pid.
fn wrapped(dir: &TempDir, idle: Option<f64>) -> (Gangway, i32, i32) {
    let daemon = dir.join("daemon.pid");
    let script = format!(
        "setsid sh -c 'sleep 1000 & echo $! > {}; wait' & {} --name w --ignore-eof; :",
        daemon.display(),
        mock_path().display()
    );
    let mut backend = sh(&script);
    if let Some(idle) = idle {
        backend["idle_timeout"] = json!(idle);
    }
    let mut g = Gangway::start(dir, &json!({ "backends": { "w": backend } }));
    g.initialize();
    let server = backend_pid_via_use_tool(&mut g, "w");
    let daemon = pid_in(&g, &daemon);
    (g, server, daemon)
}

fn assert_all_dead(g: &Gangway, server: i32, daemon: i32, after: &str) {
    assert_dead(
        g,
        server,
        &format!("the server behind the wrapper, after {after}"),
    );
    assert_dead(g, daemon, &format!("the setsid daemon, after {after}"));
}

#[test]
fn descendants_of_a_backend_die_with_it_when_it_is_stopped_idle() {
    let dir = TempDir::new();
    let (g, server, daemon) = wrapped(&dir, Some(0.3));
    g.wait_stderr("stopping backend 'w': idle", T);
    assert_all_dead(&g, server, daemon, "an idle stop");
}

#[test]
fn descendants_of_a_backend_die_with_it_when_it_crashes() {
    let dir = TempDir::new();
    let (mut g, server, daemon) = wrapped(&dir, None);
    let resp = g.use_tool("w", "crash", json!({}));
    tool_error_text(&resp);
    assert_all_dead(&g, server, daemon, "a crash");
}

#[test]
fn descendants_of_backends_die_when_stdin_closes() {
    let dir = TempDir::new();
    let (mut g, server, daemon) = wrapped(&dir, None);
    g.finish();
    assert_all_dead(&g, server, daemon, "stdin EOF");
}

#[test]
fn descendants_of_backends_die_on_sigterm() {
    let dir = TempDir::new();
    let (mut g, server, daemon) = wrapped(&dir, None);
    kill(Pid::from_raw(g.pid()), Signal::SIGTERM).expect("send SIGTERM");
    if g.wait_exit(T).is_none() {
        g.fail("gangway did not exit after SIGTERM");
    }
    assert_all_dead(&g, server, daemon, "SIGTERM");
}

#[test]
fn descendants_of_backends_die_when_gangway_is_killed() {
    let dir = TempDir::new();
    let (mut g, server, daemon) = wrapped(&dir, None);
    kill(Pid::from_raw(g.pid()), Signal::SIGKILL).expect("send SIGKILL");
    if g.wait_exit(T).is_none() {
        g.fail("gangway did not die of SIGKILL");
    }
    assert_all_dead(&g, server, daemon, "SIGKILL of gangway");
}

// ----- shutdown -------------------------------------------------------------------------

#[test]
fn a_second_sigterm_still_answers_every_request_in_flight() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let dir = TempDir::new();
        let record = dir.join("stubborn.jsonl");
        let stubborn = recording_mock("stubborn", &record, &["--ignore-eof", "--ignore-sigterm"]);
        let config = json!({ "expose": "tools", "backends": { "stubborn": stubborn } });
        let mut g = Gangway::start(&dir, &config);
        g.initialize();
        let call = g.request_tool("stubborn__slow", json!({ "ms": 60_000 }));
        wait_record(&record, T, |m| m["params"]["name"] == "slow");
        let pid = Pid::from_raw(g.pid());
        kill(pid, signal).expect("send the first signal");
        g.wait_stderr("termination signal received", T);
        kill(pid, signal).expect("send the second signal");
        let resp = g.response(&call, T);
        let message = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("shutting down"),
            "after a second {signal}: {resp}"
        );
        if g.wait_exit(T).is_none() {
            g.fail(&format!("gangway did not exit after a second {signal}"));
        }
    }
}
