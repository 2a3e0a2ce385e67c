//! The shipped client entries (examples/) and the gangway image: the entries hold exactly
//! what a user needs, and the image, run exactly as the Claude Desktop entry runs it, serves
//! its backends as sibling containers and leaves none behind.

use super::*;
use crate::util::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The placeholders the example entries ask the user to replace.
const BIN_PLACEHOLDER: &str = "/ABSOLUTE/PATH/TO/gangway";
const CONFIG_PLACEHOLDER: &str = "/ABSOLUTE/PATH/TO/config.json";

/// The docker entry's mount of the named volume that keeps the tool catalog (the image sets
/// `XDG_CACHE_HOME=/cache`). Tests mount a volume of their own there instead, so they never
/// read or write the user's catalog.
const CACHE_MOUNT: &str = "gangway-cache:/cache";

/// A docker volume named for one test, removed when dropped (once no container uses it).
/// Create it before starting the containers that mount it, so it is dropped after them.
struct CacheVolume(String);

impl CacheVolume {
    fn new() -> CacheVolume {
        CacheVolume(format!("gangway-test-cache-{}", docker_test_id()))
    }

    /// The `-v` value that mounts it where the image keeps its catalog.
    fn mount(&self) -> String {
        format!("{}:/cache", self.0)
    }
}

impl Drop for CacheVolume {
    fn drop(&mut self) {
        // A container with --rm may still be on its way out: try until it is gone.
        let name = self.0.clone();
        wait_for(T, || {
            let out = docker(&["volume", "rm", "-f", &name]);
            out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("in use")
        });
    }
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// An example file parsed as JSON.
fn example_json(name: &str) -> Value {
    let path = example(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// The `gangway` entry of a Claude Desktop example as (command, args), with each placeholder
/// replaced as `replace` says.
fn desktop_entry(name: &str, replace: &[(&str, &str)]) -> (String, Vec<String>) {
    let entry = &example_json(name)["mcpServers"]["gangway"];
    let swap = |s: &Value| {
        let s = s.as_str().expect("command and args are strings");
        replace
            .iter()
            .find(|(from, _)| *from == s)
            .map_or(s, |(_, to)| to)
            .to_string()
    };
    let args = entry["args"].as_array().expect("args is an array");
    (swap(&entry["command"]), args.iter().map(swap).collect())
}

/// The config for the image tests: one backend, the mock image, labelled with `label`.
fn mock_container_config(label: &str) -> Value {
    json!({"backends": {"mock": {
        "command": "docker",
        "args": ["run", "-i", "--rm", "--label", label, MOCK_IMAGE],
    }}})
}

#[test]
fn claude_desktop_examples_hold_exactly_the_entries_a_user_needs() {
    assert_eq!(
        example_json("claude_desktop_config.json"),
        json!({"mcpServers": {"gangway": {
            "command": BIN_PLACEHOLDER,
            "args": ["--config", CONFIG_PLACEHOLDER],
        }}})
    );
    assert_eq!(
        example_json("claude_desktop_config.docker.json"),
        json!({"mcpServers": {"gangway": {
            "command": "docker",
            "args": [
                "run", "-i", "--rm",
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", CACHE_MOUNT,
                "-v", format!("{CONFIG_PLACEHOLDER}:/app/config.json:ro"),
                "gangway",
            ],
        }}})
    );
}

#[test]
fn native_claude_desktop_entry_serves_a_backend() {
    let dir = TempDir::new();
    let config = dir.write_config(
        "config.json",
        &json!({"backends": {"mock": mock("mock", &[])}}),
    );
    let bin = gangway_bin();
    let (command, args) = desktop_entry(
        "claude_desktop_config.json",
        &[
            (BIN_PLACEHOLDER, bin.to_str().expect("utf-8 path")),
            (CONFIG_PLACEHOLDER, config.to_str().expect("utf-8 path")),
        ],
    );
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_remove("GANGWAY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut gw = Gangway::spawn(cmd);
    assert_eq!(gw.initialize()["serverInfo"]["name"], "gangway");
    let resp = gw.use_tool("mock", "echo", json!({"text": "native"}));
    assert_eq!(ok_text(&resp), "native");
}

#[test]
fn claude_code_script_adds_the_same_entries() {
    let dir = TempDir::new();
    let bin = dir.join("bin");
    // A stand-in `claude` that records its arguments, one per line.
    let record = dir.join("claude-args");
    fake_program(&bin, "claude", "printf '%s\\n' \"$@\" > \"$CLAUDE_ARGS\"\n");
    let path = path_with(&bin);
    let home = dir.path().to_str().expect("utf-8 path").to_string();
    let config = format!("{home}/.config/gangway/config.json");

    let run = |mode: &str| {
        let _ = std::fs::remove_file(&record);
        let out = Command::new("sh")
            .arg(example("claude-code.sh"))
            .arg(mode)
            .env("PATH", &path)
            .env("HOME", &home)
            .env("CLAUDE_ARGS", &record)
            .env_remove("GANGWAY_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run examples/claude-code.sh");
        let args = std::fs::read_to_string(&record).unwrap_or_default();
        let args = args.lines().map(str::to_string).collect::<Vec<_>>();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            args,
        )
    };
    let claude_prefix = ["mcp", "add", "--scope", "user", "gangway", "--"];

    let (status, stderr, args) = run("native");
    assert!(
        status.success(),
        "claude-code.sh native failed ({status}): {stderr}"
    );
    let mut want: Vec<String> = claude_prefix.iter().map(|s| s.to_string()).collect();
    want.extend([
        "gangway".to_string(),
        "--config".to_string(),
        config.clone(),
    ]);
    assert_eq!(args, want);

    // The container form runs exactly what the Claude Desktop docker entry runs.
    let (status, stderr, args) = run("docker");
    assert!(
        status.success(),
        "claude-code.sh docker failed ({status}): {stderr}"
    );
    let (command, desktop_args) = desktop_entry(
        "claude_desktop_config.docker.json",
        &[(
            &format!("{CONFIG_PLACEHOLDER}:/app/config.json:ro"),
            &format!("{config}:/app/config.json:ro"),
        )],
    );
    let mut want: Vec<String> = claude_prefix.iter().map(|s| s.to_string()).collect();
    want.push(command);
    want.extend(desktop_args);
    assert_eq!(args, want);

    let (status, stderr, args) = run("nonsense");
    assert_eq!(status.code(), Some(2), "an unknown mode is a usage error");
    assert!(stderr.contains("usage:"), "no usage line: {stderr}");
    assert!(
        args.is_empty(),
        "an unknown mode must not call claude: {args:?}"
    );
}

/// Starts the gangway image exactly as the Claude Desktop docker entry does, with `config`
/// mounted and `cache` in place of the user's catalog volume; returns the client and the
/// config's host path (which finds gangway's container through `docker ps --filter
/// volume=PATH`).
fn start_image_as_desktop_does(
    dir: &TempDir,
    config: &Value,
    cache: &CacheVolume,
) -> (Gangway, String) {
    let path = dir.write_config("config.json", config);
    let path = path.to_str().expect("utf-8 path").to_string();
    let mount = format!("{CONFIG_PLACEHOLDER}:/app/config.json:ro");
    let (command, args) = desktop_entry(
        "claude_desktop_config.docker.json",
        &[
            (&mount, &format!("{path}:/app/config.json:ro")),
            (CACHE_MOUNT, &cache.mount()),
        ],
    );
    let image = args.last().expect("the entry names an image").clone();
    assert!(
        GANGWAY_IMAGE == image || GANGWAY_IMAGE == format!("{image}:latest"),
        "the entry runs {image}, the tests built {GANGWAY_IMAGE}"
    );
    let mut cmd = Command::new(command);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (Gangway::spawn(cmd), path)
}

#[test]
fn image_run_as_the_desktop_entry_serves_backends_as_sibling_containers() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let label = format!("{TEST_LABEL}={}", docker_test_id());
    let dir = TempDir::new();
    let cache = CacheVolume::new();
    let (mut gw, config) =
        start_image_as_desktop_does(&dir, &mock_container_config(&label), &cache);
    let own = format!("volume={config}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}"), own.clone()]);

    // gangway reads /app/config.json without being told: the backend it names is listed.
    let init = gw.initialize();
    assert_eq!(init["serverInfo"]["name"], "gangway");
    assert!(
        init["instructions"].as_str().unwrap_or("").contains("mock"),
        "the mounted config's backend is not in the instructions: {init}"
    );
    assert_eq!(containers_where(&own).len(), 1, "gangway's own container");
    assert!(
        containers(&label).is_empty(),
        "a backend container started before any call"
    );

    let resp = gw.use_tool("mock", "echo", json!({"text": "through the socket"}));
    assert_eq!(ok_text(&resp), "through the socket");
    // The mock is PID 1: it runs in a container of its own, a sibling on the host's engine.
    let pid = gw.use_tool("mock", "pid", json!({}));
    assert_eq!(ok_text(&pid), "1");
    assert_eq!(
        running_containers(&label).len(),
        1,
        "one running sibling container while the backend is in use"
    );

    gw.close_stdin();
    match gw.wait_exit(T) {
        Some(status) if status.success() => {}
        other => gw.fail(&format!(
            "the container did not exit cleanly on stdin EOF within {T:?}: {other:?}"
        )),
    }
    assert!(
        wait_no_containers(&label, T),
        "the sibling container is still there {T:?} after gangway exited: {:?}",
        containers(&label)
    );
    assert!(
        wait_for(T, || containers_where(&own).is_empty()),
        "gangway's own container is still there {T:?} after it exited"
    );
}

/// Fails unless gangway logged no backend start (every line it wrote so far is read first).
fn assert_no_backend_started(gw: &mut Gangway, when: &str) {
    gw.stderr_barrier();
    if let Some(l) = gw.stderr().iter().find(|l| l.contains("starting backend")) {
        gw.fail(&format!("a backend was started {when}: {l}"));
    }
}

#[test]
fn image_keeps_its_catalog_in_the_cache_volume_from_one_run_to_the_next() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let label = format!("{TEST_LABEL}={}", docker_test_id());
    let dir = TempDir::new();
    let cache = CacheVolume::new();
    let own = format!("volume={}", dir.join("config.json").display());
    let _cleanup = RemoveOnDrop(vec![format!("label={label}"), own.clone()]);
    let mut config = mock_container_config(&label);
    config["expose"] = json!("tools");
    let want: Vec<String> = mock_tools_sorted()
        .iter()
        .map(|t| format!("mock__{t}"))
        .collect();

    // Run 1 learns the tools by starting the backend, and saves them in the volume.
    let (mut gw, _) = start_image_as_desktop_does(&dir, &config, &cache);
    gw.initialize();
    assert_eq!(gw.list_tool_names(), want, "run 1 lists the mock's tools");
    assert_eq!(containers(&label).len(), 1, "run 1 started the backend");
    gw.finish();
    assert!(
        wait_no_containers(&label, T) && wait_for(T, || containers_where(&own).is_empty()),
        "run 1 left containers behind {T:?} after it exited"
    );

    // Run 2, a new container with the same volume, lists them without starting anything.
    let (mut gw, _) = start_image_as_desktop_does(&dir, &config, &cache);
    gw.initialize();
    assert_eq!(
        gw.list_tool_names(),
        want,
        "run 2 lists the same tools from the catalog in the volume"
    );
    assert_no_backend_started(&mut gw, "to answer tools/list in run 2");
    let found = containers(&label);
    if !found.is_empty() {
        gw.fail(&format!(
            "backend containers {found:?} exist after run 2 answered tools/list"
        ));
    }
    gw.finish();
}

#[test]
fn image_stops_its_backends_on_sigterm_as_pid_1() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let label = format!("{TEST_LABEL}={}", docker_test_id());
    let dir = TempDir::new();
    let cache = CacheVolume::new();
    let (mut gw, config) =
        start_image_as_desktop_does(&dir, &mock_container_config(&label), &cache);
    let own = format!("volume={config}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}"), own.clone()]);
    gw.initialize();
    assert_eq!(
        ok_text(&gw.use_tool("mock", "echo", json!({"text": "up"}))),
        "up"
    );
    assert_eq!(running_containers(&label).len(), 1);

    let ids = containers_where(&own);
    assert_eq!(ids.len(), 1, "gangway's own container: {ids:?}");
    // A PID 1 without a SIGTERM handler would ignore it, and docker would SIGKILL it after
    // the grace period (exit 137).
    docker_stdout(&["stop", "--time", "30", &ids[0]]);
    match gw.wait_exit(T) {
        Some(status) if status.code() == Some(0) => {}
        other => gw.fail(&format!(
            "gangway as PID 1 did not stop cleanly on SIGTERM (137 = it had to be killed): {other:?}"
        )),
    }
    assert!(
        wait_no_containers(&label, T),
        "the sibling container outlived gangway's SIGTERM stop by {T:?}: {:?}",
        containers(&label)
    );
}

#[test]
fn image_holds_only_gangway_and_the_docker_cli() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let label = format!("{TEST_LABEL}={}", docker_test_id());
    let _cleanup = RemoveOnDrop(vec![format!("label={label}")]);

    let version = docker(&["run", "--rm", GANGWAY_IMAGE, "--version"]);
    assert!(version.status.success(), "--version failed: {version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("gangway {}\n", env!("CARGO_PKG_VERSION"))
    );

    let id = docker_stdout(&["create", "--label", &label, GANGWAY_IMAGE]);
    let dir = TempDir::new();
    let tar = dir.join("rootfs.tar");
    docker_stdout(&["export", "-o", tar.to_str().expect("utf-8 path"), id.trim()]);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("run tar to list the exported file system");
    assert!(list.status.success(), "tar -tf failed: {list:?}");
    // Files the engine puts into every container, whatever its image.
    let engine = [
        ".dockerenv",
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
    ];
    let mut files: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .filter(|l| !l.is_empty() && !l.ends_with('/') && !engine.contains(&l.as_str()))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["usr/local/bin/docker", "usr/local/bin/gangway"],
        "the image holds more than the two static binaries (a shell, libraries, ...)"
    );
}

#[test]
fn image_serves_http_with_a_token_as_the_readme_runs_it() {
    let Some(_serial) = docker_ready() else {
        return;
    };
    let id = docker_test_id();
    let label = format!("{TEST_LABEL}={id}");
    let dir = TempDir::new();
    let mut config = mock_container_config(&label);
    config["http"] = json!({"tokens": ["${GANGWAY_TOKEN}"]});
    let path = dir.write_config("config.json", &config);
    let name = format!("gangway-test-serve-{id}");
    let _cleanup = RemoveOnDrop(vec![format!("label={label}"), format!("name={name}")]);
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--name", &name, "-p", "127.0.0.1::8000"])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .args(["-v", &format!("{}:/app/config.json:ro", path.display())])
        .args(["-e", "GANGWAY_TOKEN=image-token-1"])
        .args([GANGWAY_IMAGE, "serve", "--listen", "0.0.0.0:8000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut gw = Gangway::spawn(cmd);
    gw.wait_stderr("/mcp", T);
    let port = docker_stdout(&["port", &name, "8000/tcp"]);
    let addr = port
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("docker port printed {port:?}"))
        .trim()
        .to_string();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, _, _) = http_request(&addr, "POST", &[], &init.to_string());
    assert_eq!(status, 401, "the token is required");
    let auth = ("Authorization", "Bearer image-token-1");
    let (status, head, _) = http_request(&addr, "POST", &[auth], &init.to_string());
    assert_eq!(status, 200, "{head}");
    let sid = session_id_in(&head);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "use_tool",
        "arguments": {"backend_server": "mock", "server_tool": "echo", "tool_arguments": {"text": "over http"}}}});
    let (status, _, body) = http_request(
        &addr,
        "POST",
        &[auth, ("Mcp-Session-Id", &sid)],
        &call.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert_eq!(ok_text(&answer), "over http");
    assert_eq!(
        running_containers(&label).len(),
        1,
        "the backend runs as a sibling container"
    );
    docker_stdout(&["stop", "--time", "30", &name]);
    match gw.wait_exit(T) {
        Some(status) if status.code() == Some(0) => {}
        other => gw.fail(&format!(
            "gangway serve did not stop cleanly on SIGTERM: {other:?}"
        )),
    }
    assert!(
        wait_no_containers(&label, T),
        "the sibling container outlived gangway: {:?}",
        containers(&label)
    );
    assert!(
        !gw.stderr().join("\n").contains("image-token-1"),
        "the token is logged"
    );
}
