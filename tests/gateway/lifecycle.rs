//! Backend and gateway lifetimes: idle reaping, shutdown on EOF and signals, stdin from a
//! file.

use crate::util::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn idle_backend_is_stopped_and_reaped_and_restarted_on_next_call() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["idle_timeout"] = json!(0.3);
    let config = json!({ "expose": "tools", "backends": { "alpha": alpha } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();

    let first = backend_pid(&mut gw, "alpha__pid");
    gw.wait_stderr("stopping backend 'alpha': idle", T);
    assert_pid_gone(first, T);

    let second = backend_pid(&mut gw, "alpha__pid");
    assert_ne!(first, second, "the call did not start a new process");
    assert_pid_gone(second, T);
}

#[test]
fn call_longer_than_idle_timeout_is_not_cut_off() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["idle_timeout"] = json!(0.3);
    let config = json!({ "expose": "both", "backends": { "alpha": alpha } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let resp = gw.call_tool("alpha__slow", json!({ "ms": 1000 }));
    assert_eq!(ok_text(&resp), "slept 1000");
    let resp = gw.use_tool("alpha", "slow", json!({ "ms": 1000 }));
    assert_eq!(ok_text(&resp), "slept 1000");
}

/// Starts gangway with `backends`, starts each (tools mode) and returns their pids.
fn start_backends(dir: &TempDir, backends: Value) -> (Gangway, Vec<i32>) {
    let names: Vec<String> = backends.as_object().unwrap().keys().cloned().collect();
    let config = json!({ "expose": "tools", "backends": backends });
    let mut gw = Gangway::start(dir, &config);
    gw.initialize();
    let pids = names
        .iter()
        .map(|n| backend_pid(&mut gw, &format!("{n}__pid")))
        .collect();
    (gw, pids)
}

fn assert_clean_exit(gw: &mut Gangway, pids: &[i32], within: Duration, started: Instant) {
    let status = gw
        .wait_exit(within)
        .unwrap_or_else(|| gw.fail(&format!("gangway still running after {within:?}")));
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(started.elapsed() <= within);
    for pid in pids {
        assert_pid_gone(*pid, Duration::from_secs(2));
    }
}

#[test]
fn stdin_eof_stops_every_backend_and_exits_zero() {
    let dir = TempDir::new();
    let (mut gw, pids) = start_backends(
        &dir,
        json!({ "alpha": mock("alpha", &[]), "beta": mock("beta", &[]) }),
    );
    let started = Instant::now();
    gw.close_stdin();
    assert_clean_exit(&mut gw, &pids, Duration::from_secs(5), started);
}

#[test]
fn stdin_eof_kills_a_backend_that_ignores_eof_and_sigterm() {
    let dir = TempDir::new();
    let (mut gw, pids) = start_backends(
        &dir,
        json!({ "stubborn": mock("stubborn", &["--ignore-eof", "--ignore-sigterm"]),
                "alpha": mock("alpha", &[]) }),
    );
    let started = Instant::now();
    gw.close_stdin();
    assert_clean_exit(&mut gw, &pids, Duration::from_secs(5), started);
}

#[test]
fn stdin_eof_lets_a_request_in_flight_finish() {
    let dir = TempDir::new();
    let (mut gw, pids) = start_backends(&dir, json!({ "alpha": mock("alpha", &[]) }));
    let id = gw.request_tool("alpha__slow", json!({ "ms": 300, "text": "finished" }));
    let started = Instant::now();
    gw.close_stdin();
    assert_eq!(ok_text(&gw.response(&id, T)), "finished");
    assert_clean_exit(&mut gw, &pids, Duration::from_secs(5), started);
}

fn signal_stops_everything(signal: Signal) {
    let dir = TempDir::new();
    let (mut gw, pids) = start_backends(
        &dir,
        json!({ "alpha": mock("alpha", &[]), "beta": mock("beta", &[]) }),
    );
    let started = Instant::now();
    kill(Pid::from_raw(gw.pid()), signal).expect("signal gangway");
    assert_clean_exit(&mut gw, &pids, Duration::from_secs(5), started);
    gw.wait_stderr("termination signal received", T);
}

#[test]
fn sigterm_stops_every_backend_and_exits_zero() {
    signal_stops_everything(Signal::SIGTERM);
}

#[test]
fn sigint_stops_every_backend_and_exits_zero() {
    signal_stops_everything(Signal::SIGINT);
}

#[test]
fn stdin_from_a_regular_file_is_served_and_exits_zero() {
    let dir = TempDir::new();
    let config = json!({ "expose": "both", "backends": { "alpha": mock("alpha", &[]) } });
    let input = [
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": { "name": "file", "version": "0" } } }),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": { "name": "alpha__echo", "arguments": { "text": "from a file" } } }),
        // Longer than the drain grace: input from a file waits for every answer.
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": { "name": "use_tool", "arguments": { "backend_server": "alpha",
                            "server_tool": "slow", "tool_arguments": { "ms": 1500 } } } }),
        json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/list" }),
    ];
    let text: String = input.iter().map(|v| format!("{v}\n")).collect();
    let input_path = dir.join("input.jsonl");
    std::fs::write(&input_path, text).unwrap();

    let mut cmd = gangway_command(&dir, &config);
    cmd.stdin(Stdio::from(std::fs::File::open(&input_path).unwrap()));
    let mut gw = Gangway::spawn(cmd);
    let status = gw
        .wait_exit(T)
        .unwrap_or_else(|| gw.fail("gangway < file did not exit"));
    let out = gw.drain_stdout(T);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; stderr {:#?}",
        gw.stderr()
    );
    let by_id = |id: i64| {
        out.iter()
            .find(|(_, v)| v["id"] == id)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| gw.fail(&format!("no answer for id {id}")))
    };
    assert_eq!(by_id(1)["result"]["serverInfo"]["name"], "gangway");
    assert_eq!(ok_text(&by_id(2)), "from a file");
    assert_eq!(ok_text(&by_id(3)), "slept 1500");
    assert_eq!(tool_names(&by_id(4)).len(), 2 + MOCK_TOOLS.len());
}

#[test]
fn second_sigterm_kills_stubborn_backends_at_once() {
    let dir = TempDir::new();
    let (mut gw, pids) = start_backends(
        &dir,
        json!({ "stubborn": mock("stubborn", &["--ignore-eof", "--ignore-sigterm"]) }),
    );
    let started = Instant::now();
    kill(Pid::from_raw(gw.pid()), Signal::SIGTERM).unwrap();
    gw.wait_stderr("termination signal received", T);
    kill(Pid::from_raw(gw.pid()), Signal::SIGTERM).unwrap();
    let status = gw
        .wait_exit(T)
        .unwrap_or_else(|| gw.fail("gangway did not exit after a second SIGTERM"));
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "a second SIGTERM should not wait for the stop ladder; took {:?}",
        started.elapsed()
    );
    // It was killed, not left running (once gangway is gone, reaping is init's job).
    let dead = wait_for(T, || matches!(pid_state(pids[0]), None | Some('Z')));
    assert!(
        dead,
        "backend {} still running: {:?}",
        pids[0],
        pid_state(pids[0])
    );
}

#[test]
fn stdin_from_dev_null_exits_zero() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.stdin(Stdio::null());
    let mut gw = Gangway::spawn(cmd);
    let status = gw
        .wait_exit(T)
        .unwrap_or_else(|| gw.fail("gangway < /dev/null did not exit"));
    assert_eq!(status.code(), Some(0), "{:#?}", gw.stderr());
    assert!(gw.drain_stdout(T).is_empty());
}

#[test]

fn idle_stop_log_states_the_configured_idle_time() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["idle_timeout"] = json!(0.3);
    let config = json!({ "expose": "tools", "backends": { "alpha": alpha } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    backend_pid(&mut gw, "alpha__pid");
    let line = gw.wait_stderr("stopping backend 'alpha': idle", T);
    assert!(line.contains("0.3 s"), "{line}");
}
