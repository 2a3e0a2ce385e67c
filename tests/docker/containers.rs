//! Docker backends with real containers: gangway starts them on first use and removes them
//! on every way a backend or gangway itself can stop, and never touches containers of
//! another gangway that still runs.

use super::*;
use crate::util::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// How long a container may outlive the event that should end it.
const GONE: Duration = Duration::from_secs(10);

/// A config with one docker backend `m` running the mock image with `flags`, labelled
/// `gangway-test=ID` so the test finds exactly its own containers.
fn docker_config(id: &str, idle: f64, flags: &[&str]) -> Value {
    let label = format!("gangway-test={id}");
    let mut args = vec![
        "run", "-i", "--rm", "--label", &label, MOCK_IMAGE, "--name", "m",
    ];
    args.extend_from_slice(flags);
    json!({"idle_timeout": idle, "backends": {"m": {"command": "docker", "args": args}}})
}

fn label(id: &str) -> String {
    format!("gangway-test={id}")
}

/// `docker inspect -f FORMAT ID`, trimmed.
fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .expect("run docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts gangway, initializes, and makes one call that starts the container.
fn started(dir: &TempDir, config: &Value) -> Gangway {
    let mut g = Gangway::start(dir, config);
    g.initialize();
    let resp = g.use_tool("m", "echo", json!({"text": "from a container"}));
    assert_eq!(ok_text(&resp), "from a container");
    g
}

fn assert_gone(id: &str, g: &Gangway, when: &str) {
    if !wait_no_containers(&label(id), GONE) {
        g.fail(&format!(
            "containers {:?} still exist {GONE:?} after {when}",
            containers(&label(id))
        ));
    }
}

#[test]
fn a_call_starts_a_named_labelled_container_and_idle_reaping_removes_it() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let g = started(&dir, &docker_config(&id, 1.0, &[]));
    let found = containers(&label(&id));
    assert_eq!(found.len(), 1, "one container for one backend: {found:?}");
    let name = inspect(&found[0], "{{.Name}}");
    assert!(name.starts_with("/gangway-m-"), "generated name: {name}");
    assert_eq!(
        inspect(&found[0], "{{index .Config.Labels \"gangway.backend\"}}"),
        "m"
    );
    assert!(!inspect(&found[0], "{{index .Config.Labels \"gangway.owner\"}}").is_empty());
    g.wait_stderr("idle for 1 s", GONE);
    assert_gone(&id, &g, "idle reaping");
}

/// The hardest backend: it ignores stdin EOF and SIGTERM, so only `docker rm -f` (or
/// SIGKILL of the docker CLI followed by it) ends the container.
const STUBBORN: &[&str] = &["--ignore-eof", "--ignore-sigterm"];

#[test]
fn gangway_eof_leaves_no_container_even_when_the_server_ignores_eof_and_sigterm() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let mut g = started(&dir, &docker_config(&id, 0.0, STUBBORN));
    assert_eq!(containers(&label(&id)).len(), 1);
    g.close_stdin();
    assert!(g.wait_exit(GONE).is_some_and(|s| s.success()), "exit 0");
    assert_gone(&id, &g, "gangway exited on EOF");
}

#[test]
fn gangway_sigterm_leaves_no_container() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let mut g = started(&dir, &docker_config(&id, 0.0, STUBBORN));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    assert!(g.wait_exit(GONE).is_some(), "gangway exits on SIGTERM");
    assert_gone(&id, &g, "SIGTERM");
}

#[test]
fn after_gangway_is_sigkilled_its_next_start_removes_the_container() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let config = docker_config(&id, 0.0, STUBBORN);
    let mut g = started(&dir, &config);
    g.child.kill().expect("SIGKILL gangway");
    g.wait_exit(GONE).expect("killed gangway is reaped");
    // The docker CLI died with gangway (parent-death signal); the container ignores the
    // EOF that followed, so it is still there.
    assert_eq!(
        containers(&label(&id)).len(),
        1,
        "the stubborn container survives"
    );
    let next = Gangway::start(&dir, &config);
    next.wait_stderr("left by gangway instances that no longer run", GONE);
    assert_gone(&id, &next, "the next gangway started");
}

#[test]
fn a_crashed_container_is_a_clear_error_and_the_next_call_works() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let mut g = started(&dir, &docker_config(&id, 0.0, &[]));
    let first = containers(&label(&id));
    let resp = g.use_tool("m", "crash", json!({"code": 7}));
    let text = tool_error_text(&resp);
    assert!(
        text.contains("'m'") && text.contains("exit status 7"),
        "names the backend and how it ended: {text}"
    );
    let resp = g.use_tool("m", "echo", json!({"text": "again"}));
    assert_eq!(ok_text(&resp), "again");
    let now = containers(&label(&id));
    assert_eq!(now.len(), 1, "only the new container: {now:?}");
    assert_ne!(now, first, "a new container serves the next call");
}

#[test]
fn two_gangways_side_by_side_never_remove_each_others_containers() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let (a_id, b_id) = (docker_test_id(), docker_test_id());
    let (a_dir, b_dir) = (TempDir::new(), TempDir::new());
    let mut a = started(&a_dir, &docker_config(&a_id, 0.0, STUBBORN));
    let mut b = started(&b_dir, &docker_config(&b_id, 0.0, STUBBORN));
    // Killing b leaves its container; a third gangway's start removes exactly that one.
    b.child.kill().expect("SIGKILL b");
    b.wait_exit(GONE).expect("b is reaped");
    let c_dir = TempDir::new();
    let c = Gangway::start(&c_dir, &docker_config(&docker_test_id(), 0.0, &[]));
    assert_gone(&b_id, &c, "the third gangway started");
    assert_eq!(
        containers(&label(&a_id)).len(),
        1,
        "the container of the gangway that still runs is left alone"
    );
    let resp = a.use_tool("m", "echo", json!({"text": "still here"}));
    assert_eq!(ok_text(&resp), "still here");
    a.close_stdin();
    a.wait_exit(GONE).expect("a exits");
    assert_gone(&a_id, &a, "a exited");
}

#[test]
fn secrets_pass_by_name_with_dash_e_and_never_appear_on_a_command_line() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let dir = TempDir::new();
    let secret = format!("s3cr3t-{id}");
    let label = label(&id);
    let config = json!({"idle_timeout": 0, "backends": {"m": {
        "command": "docker",
        "args": ["run", "-i", "--rm", "--label", label, "-e", "GANGWAY_TEST_SECRET", MOCK_IMAGE],
        "env": {"GANGWAY_TEST_SECRET": secret}}}});
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    let resp = g.use_tool("m", "env", json!({"name": "GANGWAY_TEST_SECRET"}));
    assert_eq!(ok_text(&resp), secret, "the container got the value");
    let leaked: Vec<String> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&secret))
        .collect();
    assert!(
        leaked.is_empty(),
        "the secret is on a command line: {leaked:?}"
    );
}

#[test]
fn a_filled_catalog_lists_a_docker_backends_tools_without_starting_a_container() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let _cleanup = RemoveOnDrop(vec![format!("label={}", label(&id))]);
    // One directory for both runs: the same XDG_CACHE_HOME, so the same catalog file.
    let dir = TempDir::new();
    let mut config = docker_config(&id, 0.0, &[]);
    config["expose"] = json!("tools");

    // Run 1: nothing is known yet, so tools/list starts the container and the lists it
    // reports fill the catalog.
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    let first = g.list_tool_names();
    let want: Vec<String> = mock_tools_sorted()
        .iter()
        .map(|t| format!("m__{t}"))
        .collect();
    assert_eq!(first, want, "run 1 lists the mock's tools");
    assert_eq!(
        containers(&label(&id)).len(),
        1,
        "run 1 started the container to learn its tools"
    );
    g.finish();
    assert_gone(&id, &g, "run 1 exited");
    let catalog = read_catalog(&dir);
    let mut listed: Vec<&str> = catalog["entries"]
        .as_object()
        .and_then(|e| e.values().next())
        .and_then(|e| e["tools"].as_array())
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    listed.sort_unstable();
    assert_eq!(
        listed,
        mock_tools_sorted(),
        "the catalog holds the backend's tools: {catalog}"
    );

    // Run 2: the same names come from the catalog; no container, and no `docker run`.
    let mut g = Gangway::start(&dir, &config);
    g.initialize();
    assert_eq!(g.list_tool_names(), first, "run 2 lists the same names");
    let found = containers(&label(&id));
    if !found.is_empty() {
        g.fail(&format!(
            "containers {found:?} exist after tools/list was answered from the catalog"
        ));
    }
    g.stderr_barrier();
    if let Some(l) = g.stderr().iter().find(|l| l.contains("starting backend")) {
        g.fail(&format!("run 2 started the backend: {l}"));
    }
    // gangway's own `docker ps` (its scan for containers of gangways that no longer run)
    // may still be running; a `docker run` would be the backend.
    let runs: Vec<String> = child_pids(g.pid())
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.split(' ').nth(1) == Some("run"))
        .collect();
    if !runs.is_empty() {
        g.fail(&format!(
            "gangway runs {runs:?} after answering tools/list from the catalog: it started the backend"
        ));
    }

    // A call starts the backend: exactly one container.
    let resp = g.call_tool("m__echo", json!({"text": "from the catalog's backend"}));
    assert_eq!(ok_text(&resp), "from the catalog's backend");
    let found = containers(&label(&id));
    assert_eq!(found.len(), 1, "one container for the call: {found:?}");
    g.finish();
    assert_gone(&id, &g, "run 2 exited");
}
