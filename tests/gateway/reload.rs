//! SIGHUP: the config file is read again and applied while the client stays connected.

use crate::util::*;
use serde_json::{json, Value};

const LIST_CHANGED: &str = "notifications/tools/list_changed";

/// Writes `config` over the running gangway's config file and sends SIGHUP; returns the
/// stderr mark taken before the signal.
fn reload(gw: &mut Gangway, dir: &TempDir, config: &Value) -> usize {
    // A list_changed sent before the reload must not pass for the reload's.
    gw.forget_received(|v| v["method"] == LIST_CHANGED);
    dir.write_config("config.json", config);
    let mark = gw.stderr_len();
    gw.sighup();
    mark
}

#[test]
fn an_added_backend_is_listed_after_sighup() {
    let dir = TempDir::new();
    let mut config = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let before = gw.list_tool_names();
    assert!(!before.iter().any(|n| n.starts_with("b__")), "{before:?}");

    config["backends"]["b"] = mock("b", &[]);
    let mark = reload(&mut gw, &dir, &config);
    gw.wait_notification(LIST_CHANGED, T);
    let line = gw.wait_stderr_after(mark, "config reloaded", T);
    assert!(
        line.contains("b"),
        "the log does not name the added backend: {line}"
    );

    let after = gw.list_tool_names();
    let mut expected = before.clone();
    expected.extend(mock_tools_sorted().iter().map(|t| format!("b__{t}")));
    assert_eq!(after, expected);
    assert_eq!(
        ok_text(&gw.call_tool("b__echo", json!({ "text": "new" }))),
        "new"
    );
    // The old backend keeps serving.
    assert_eq!(
        ok_text(&gw.call_tool("a__echo", json!({ "text": "old" }))),
        "old"
    );
}

#[test]
fn a_removed_backend_finishes_its_call_then_stops() {
    let dir = TempDir::new();
    let record = dir.join("b.jsonl");
    let mut config = json!({ "expose": "tools", "backends": {
        "a": mock("a", &[]), "b": recording_mock("b", &record, &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let pid = backend_pid(&mut gw, "b__pid");
    let slow = gw.request_tool("b__slow", json!({ "ms": 1500, "text": "finished" }));
    wait_record(&record, T, |v| v["params"]["name"] == "slow");

    config["backends"].as_object_mut().unwrap().remove("b");
    let mark = reload(&mut gw, &dir, &config);
    gw.wait_stderr_after(mark, "config reloaded", T);
    gw.wait_notification(LIST_CHANGED, T);
    assert!(
        !gw.list_tool_names().iter().any(|n| n.starts_with("b__")),
        "the removed backend is still listed"
    );
    let resp = gw.call_tool("b__echo", json!({ "text": "x" }));
    let msg = error_message(&resp, -32602);
    assert!(msg.contains("b__echo"), "{msg}");

    // The call in flight is answered by the process that was asked, which then stops.
    let resp = gw.response(&slow, T);
    assert_eq!(ok_text(&resp), "finished");
    assert_pid_gone(pid, T);
    assert_eq!(
        ok_text(&gw.call_tool("a__echo", json!({ "text": "a" }))),
        "a"
    );
}

#[test]
fn a_changed_backend_is_restarted_with_its_new_command() {
    let dir = TempDir::new();
    let mut config = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let pid1 = backend_pid(&mut gw, "a__pid");

    config["backends"]["a"] = mock("a", &["--tools", "1"]);
    let mark = reload(&mut gw, &dir, &config);
    gw.wait_notification(LIST_CHANGED, T);
    let line = gw.wait_stderr_after(mark, "config reloaded", T);
    assert!(
        line.contains("changed: a") || line.contains("a changed"),
        "{line}"
    );

    let pid2 = backend_pid(&mut gw, "a__pid");
    assert_ne!(pid1, pid2, "the next call ran in the old process");
    assert_pid_gone(pid1, T);
    assert!(gw.list_tool_names().contains(&"a__t0".to_string()));
    assert_eq!(ok_text(&gw.call_tool("a__t0", json!({ "text": "t" }))), "t");
}

#[test]
fn a_broken_config_file_keeps_the_running_config() {
    let dir = TempDir::new();
    let mut config = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let before = gw.list_tool_names();
    let pid = backend_pid(&mut gw, "a__pid");

    std::fs::write(dir.join("config.json"), "{\"backends\": {").unwrap();
    let mark = gw.stderr_len();
    gw.sighup();
    let line = gw.wait_stderr_after(mark, "config reload failed", T);
    assert!(line.contains("error"), "not logged as an error: {line}");
    assert!(
        line.contains("config.json"),
        "the file is not named: {line}"
    );
    assert_eq!(gw.list_tool_names(), before);
    assert_eq!(
        backend_pid(&mut gw, "a__pid"),
        pid,
        "the backend was restarted"
    );
    assert_eq!(
        ok_text(&gw.call_tool("a__echo", json!({ "text": "still" }))),
        "still"
    );

    config["backends"]["b"] = mock("b", &[]);
    let mark = reload(&mut gw, &dir, &config);
    gw.wait_stderr_after(mark, "config reloaded", T);
    gw.wait_notification(LIST_CHANGED, T);
    assert_eq!(
        ok_text(&gw.call_tool("b__echo", json!({ "text": "b" }))),
        "b"
    );
    assert_eq!(
        backend_pid(&mut gw, "a__pid"),
        pid,
        "an unchanged backend was restarted"
    );
}

#[test]
fn removing_and_adding_a_backend_again_does_not_grow_the_backend_table() {
    let dir = TempDir::new();
    let both = json!({ "expose": "tools",
                       "backends": { "a": mock("a", &[]), "b": mock("b", &[]) } });
    let a_only = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });
    let mut gw = Gangway::start(&dir, &both);
    gw.initialize();
    let mut slots = Vec::new();
    for config in [&a_only, &both].repeat(5) {
        let mark = reload(&mut gw, &dir, config);
        let line = gw.wait_stderr_after(mark, "config reloaded", T);
        slots.push(line.split('(').next_back().unwrap_or_default().to_string());
    }
    assert!(
        slots.iter().all(|s| s == "2 backend slots)"),
        "the table grew: {slots:?}"
    );
    // The re-added backend serves.
    assert_eq!(
        ok_text(&gw.call_tool("b__echo", json!({ "text": "back" }))),
        "back"
    );
}
