//! Fault isolation with real containers (issue 11): gangway never removes a container it
//! did not start, even one whose name its config asks for, and the nesting depth reaches
//! into the containers it starts.

use super::*;
use crate::util::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a container may outlive the event that should end it.
const GONE: Duration = Duration::from_secs(10);

/// A config whose backend `m` runs the mock image as container `name`, labelled
/// `gangway-test=ID`.
fn named_config(id: &str, name: &str, flags: &[&str]) -> Value {
    let label = format!("gangway-test={id}");
    let mut args = vec![
        "run", "-i", "--rm", "--name", name, "--label", &label, MOCK_IMAGE,
    ];
    args.extend_from_slice(flags);
    json!({"idle_timeout": 0, "backends": {"m": {"command": "docker", "args": args}}})
}

#[test]
fn a_taken_container_name_is_reported_and_that_container_is_left_alone() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let label = format!("gangway-test={id}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}")]);
    let name = format!("gangway-test-taken-{id}");
    // Someone else's container (a user's database, another gangway's backend) holds the
    // name; it runs until removed.
    let theirs = docker_stdout(&[
        "run",
        "-d",
        "-i",
        "--label",
        &label,
        "--name",
        &name,
        MOCK_IMAGE,
        "--ignore-eof",
    ]);
    let theirs = theirs.trim().to_string();
    let dir = TempDir::new();
    let mut g = Gangway::start(&dir, &named_config(&id, &name, &[]));
    g.initialize();
    let resp = g.use_tool("m", "echo", json!({"text": "x"}));
    let text = tool_error_text(&resp);
    // gangway waits for its removals at exit: whatever it would remove is gone by then.
    g.finish();
    let running = running_containers(&label);
    assert_eq!(
        running,
        [theirs[..12].to_string()],
        "the other container still runs after gangway tried its name and exited"
    );
    for part in [
        "already taken by container",
        &theirs[..12],
        "will not remove",
    ] {
        if !text.contains(part) {
            g.fail(&format!("the error lacks {part:?}: {text}"));
        }
    }
}

#[test]
fn a_user_named_container_that_gangway_started_is_removed() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let label = format!("gangway-test={id}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}")]);
    // A dot in the name must not match any character in docker's name filter.
    let name = format!("gangway-test.named-{id}");
    let dir = TempDir::new();
    let mut g = Gangway::start(
        &dir,
        &named_config(&id, &name, &["--ignore-eof", "--ignore-sigterm"]),
    );
    g.initialize();
    let resp = g.use_tool("m", "echo", json!({"text": "named"}));
    assert_eq!(ok_text(&resp), "named");
    assert_eq!(containers(&label).len(), 1, "its container runs");
    g.finish();
    if !wait_no_containers(&label, GONE) {
        g.fail(&format!(
            "container {name} still exists {GONE:?} after gangway exited: {:?}",
            containers(&label)
        ));
    }
}

#[test]
fn containers_gangway_starts_are_told_the_nesting_depth() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let label = format!("gangway-test={id}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}")]);
    let config = json!({"idle_timeout": 0, "backends": {"m": {
        "command": "docker",
        "args": ["run", "-i", "--rm", "--label", label, MOCK_IMAGE]}}});
    let dir = TempDir::new();
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    // A gangway image run as this backend would read it and refuse to nest deeper.
    let resp = g.use_tool("m", "env", json!({"name": "GANGWAY_DEPTH"}));
    assert_eq!(ok_text(&resp), "1");
    g.finish();
}

#[test]
fn a_user_named_backend_restarts_once_its_old_container_is_removed() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let label = format!("gangway-test={id}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}")]);
    let name = format!("gangway-test-restart-{id}");
    // The server ignores EOF and SIGTERM, so the stop ladder ends by killing the docker
    // client, and the container runs on until gangway removes it.
    let mut config = named_config(&id, &name, &["--ignore-eof", "--ignore-sigterm"]);
    config["idle_timeout"] = json!(1);
    let dir = TempDir::new();
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    let resp = g.use_tool("m", "echo", json!({"text": "first"}));
    assert_eq!(ok_text(&resp), "first");
    let first = containers(&label);
    g.wait_stderr("stopping backend 'm'", GONE);
    // A call while it stops restarts it as soon as the old process exits, when the old
    // container still holds the name: the start must wait for its removal, or docker
    // refuses the name.
    let call = g.request_use_tool("m", "echo", json!({"text": "again"}));
    let resp = g.response(&call, 3 * GONE);
    assert_eq!(ok_text(&resp), "again");
    let now = containers(&label);
    assert_eq!(now.len(), 1, "only the new container: {now:?}");
    assert_ne!(now, first, "a new container serves the call");
    g.finish();
}
