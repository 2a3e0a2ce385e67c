//! gangway whose backend is server-everything reached by URL, in its Streamable HTTP mode
//! (`node dist/index.js streamableHttp`, port from `PORT`): tools, progress, sampling
//! answered by gangway's client, and a resource read; with the client on stdio, and with the
//! client on HTTP through `gangway serve`. Then the HTTP+SSE transport of 2024-11-05
//! (`node dist/index.js sse`: GET `/sse`, POST to the endpoint it names) and the server's
//! own event stream of Streamable HTTP (the GET stream that carries resource updates).

use crate::util::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// server-everything serving HTTP; killed (with its process group) on drop.
struct Everything(Child);

impl Drop for Everything {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

impl Everything {
    /// The `backends` entry that reaches it by URL.
    fn url_backend(port: u16) -> serde_json::Value {
        json!({"url": format!("http://127.0.0.1:{port}/mcp")})
    }
}

/// Starts server-everything in `mode` ("sse" or "streamableHttp") on a free port, once
/// it says it listens; `None` (the test skips) outside CI when node or the server is
/// missing.
fn everything(mode: &str) -> Option<(Everything, u16)> {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let mut missing = Vec::new();
    if !js.exists() {
        missing.push(format!("server-everything ({})", js.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("`node` in PATH".to_string());
    }
    if !nothing_missing("the remote-backend peer tests", &missing) {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new("node");
    cmd.arg(&js)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("start server-everything");
    let (tx, rx) = mpsc::channel();
    let outputs: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for out in outputs {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let l = line.to_ascii_lowercase();
                if l.contains("listening on port") || l.contains("running on port") {
                    let _ = tx.send(());
                }
            }
        });
    }
    let server = Everything(child);
    rx.recv_timeout(T)
        .expect("server-everything says it listens");
    Some((server, port))
}

/// server-everything in its Streamable HTTP mode (see [`everything`]).
fn everything_http() -> Option<(Everything, u16)> {
    everything("streamableHttp")
}

/// A stdio gangway (debug log) whose one backend `ev` is `backend`, initialized with
/// sampling declared.
fn gangway_for(dir: &TempDir, backend: serde_json::Value) -> Gangway {
    let config = json!({"expose": "tools", "backends": {"ev": backend}});
    let mut cmd = gangway_command(dir, &config);
    cmd.env("RUST_LOG", "gangway=debug");
    let mut gw = Gangway::spawn(cmd);
    let init = gw.call(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}},
               "clientInfo": {"name": "remote-test", "version": "1"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    gw
}

/// What a stdio client of gangway does with server-everything as backend `ev` (reached by
/// URL; `over` names the transport in the texts): tools, echo, progress with its token,
/// sampling answered by the client, a resource read, and a clean exit.
fn stdio_client_uses_everything(gw: &mut Gangway, over: &str) {
    let names = gw.list_tool_names();
    assert!(
        names.contains(&"ev__trigger-sampling-request".to_string()),
        "{names:?}"
    );
    assert_eq!(
        ok_text(&gw.call_tool("ev__echo", json!({"message": over}))),
        format!("Echo: {over}")
    );
    // Progress arrives on the POST's event stream and reaches the client with its token.
    let line = json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
        "name": "ev__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2},
        "_meta": {"progressToken": "tok"}}});
    gw.send(&line);
    let progress = gw.wait_notification("notifications/progress", T);
    assert_eq!(progress["params"]["progressToken"], "tok");
    assert!(gw.response(&json!("long"), T)["result"].is_object());
    // The server's sampling request comes to this client; its answer goes back by POST.
    let line = json!({"jsonrpc": "2.0", "id": "sample", "method": "tools/call", "params": {
        "name": "ev__trigger-sampling-request", "arguments": {"prompt": format!("a question {over}")}}});
    gw.send(&line);
    let ask = gw.recv_until(|m| m["method"] == "sampling/createMessage", T);
    let answer = format!("an answer {over}");
    gw.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "model": "test", "content": {"type": "text", "text": answer}}}));
    let sampled = gw.response(&json!("sample"), T);
    assert!(sampled.to_string().contains(&answer), "{sampled}");
    let read = gw.call(
        "resources/read",
        json!({"uri": "demo://resource/static/document/architecture.md"}),
    );
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Architecture")),
        "{read}"
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

#[test]
fn server_everything_over_streamable_http_serves_tools_progress_sampling_and_resources() {
    let Some((_server, port)) = everything_http() else {
        return;
    };
    let dir = TempDir::new();
    let mut gw = gangway_for(&dir, Everything::url_backend(port));
    stdio_client_uses_everything(&mut gw, "over http");
}

/// What an HTTP client does with server-everything through `gangway serve`, whichever
/// transport reaches it.
fn everything_scenario() -> PeerScenario<'static> {
    PeerScenario {
        tools: &[
            "ev__echo",
            "ev__trigger-long-running-operation",
            "ev__trigger-sampling-request",
        ],
        echo: (
            "ev__echo",
            json!({"message": "over two hops of http"}),
            "Echo: over two hops of http",
        ),
        progress: (
            "ev__trigger-long-running-operation",
            json!({"duration": 1, "steps": 2}),
            2,
        ),
        sampling: (
            "ev__trigger-sampling-request",
            json!({"prompt": "a question over http"}),
            "a question over http",
        ),
        resource: (
            "demo://resource/static/document/architecture.md",
            "Architecture",
        ),
    }
}

#[test]
fn gangway_serve_fronting_server_everything_by_url_serves_an_http_client() {
    let Some((_server, port)) = everything_http() else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"ev": Everything::url_backend(port)}});
    let served = Served::start(&dir, &config, &[]);
    http_client_uses_a_peer(&served, &everything_scenario());
}

#[test]
fn gangway_serve_fronting_server_everything_over_http_and_sse_serves_an_http_client() {
    let Some((_server, port)) = everything("sse") else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {
        "ev": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")}}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("RUST_LOG", "gangway=debug");
    let served = Served::spawn(cmd);
    http_client_uses_a_peer(&served, &everything_scenario());
    served
        .gw
        .wait_stderr("messages go to the endpoint it named", T);
}

#[test]
fn server_everything_over_http_and_sse_serves_tools_progress_sampling_and_resources() {
    let Some((_server, port)) = everything("sse") else {
        return;
    };
    let dir = TempDir::new();
    let mut gw = gangway_for(
        &dir,
        json!({"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")}),
    );
    stdio_client_uses_everything(&mut gw, "over sse");
    gw.wait_stderr("messages go to the endpoint it named", T);
}

#[test]
fn resource_updates_come_on_the_servers_own_stream() {
    let Some((_server, port)) = everything("streamableHttp") else {
        return;
    };
    let dir = TempDir::new();
    let mut gw = gangway_for(&dir, json!({"url": format!("http://127.0.0.1:{port}/mcp")}));
    let uri = "demo://resource/static/document/architecture.md";
    let subscribed = gw.call("resources/subscribe", json!({"uri": uri}));
    assert!(subscribed.get("result").is_some(), "{subscribed}");
    gw.wait_stderr("its event stream is open", T);
    // The server sends updates every 5 s from no request: only its GET stream carries them.
    let started = gw.call_tool("ev__toggle-subscriber-updates", json!({}));
    assert!(ok_text(&started).contains("Started"), "{started}");
    let update = gw.wait_notification("notifications/resources/updated", Duration::from_secs(15));
    assert_eq!(update["params"]["uri"], uri);
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

#[test]
fn an_sse_url_that_is_not_an_event_stream_says_which_type_to_set() {
    let Some((_server, port)) = everything("streamableHttp") else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "meta", "backends": {
        "ev": {"type": "sse", "url": format!("http://127.0.0.1:{port}/mcp")}}});
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let text = text_of(&gw.use_tool("ev", "echo", json!({"message": "x"})));
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("\"type\""),
        "{text}"
    );
}

#[test]
fn a_bare_url_to_an_sse_endpoint_falls_back_to_the_http_and_sse_transport() {
    let Some((_server, port)) = everything("sse") else {
        return;
    };
    let dir = TempDir::new();
    // Cursor's shape: a bare "url", no type.
    let file = dir.join("mcp.json");
    let config = json!({"mcpServers": {"ev": {"url": format!("http://127.0.0.1:{port}/sse")}}});
    std::fs::write(&file, config.to_string()).expect("write the config");
    let mut gw = Gangway::spawn(gangway_command_for_file(&dir, &file));
    gw.initialize();
    let echoed = gw.use_tool("ev", "echo", json!({"message": "fell back"}));
    assert_eq!(ok_text(&echoed), "Echo: fell back");
    gw.wait_stderr("trying the HTTP+SSE transport", T);
}

#[test]
fn logging_and_tasks_pass_through_a_remote_backend() {
    let Some((_server, port)) = everything_http() else {
        return;
    };
    let dir = TempDir::new();
    let mut gw = gangway_for(&dir, Everything::url_backend(port));
    // The backend starts on the first request that needs it.
    assert!(gw
        .list_tool_names()
        .contains(&"ev__toggle-simulated-logging".to_string()));
    let set = gw.call("logging/setLevel", json!({"level": "debug"}));
    assert!(set.get("result").is_some(), "{set}");
    // The simulated log comes from no request: only the server's own stream carries it.
    gw.wait_stderr("its event stream is open", T);
    let started = gw.call_tool("ev__toggle-simulated-logging", json!({}));
    assert!(ok_text(&started).contains("Started simulated"), "{started}");
    // One at once, then one every 5 s, of a random level (all pass at debug).
    let log = gw.recv_until(
        |m| {
            m["method"] == "notifications/message"
                && m["params"]["data"]
                    .as_str()
                    .is_some_and(|d| d.contains("-level message") || d.contains("level-message"))
        },
        Duration::from_secs(15),
    );
    assert_eq!(log["params"]["logger"], "ev", "{log}");
    let stopped = gw.call_tool("ev__toggle-simulated-logging", json!({}));
    assert!(ok_text(&stopped).contains("Stopped simulated"), "{stopped}");

    // A task: created at once, followed with tasks/get, its result by tasks/result (which
    // waits for the end of its four one-second stages).
    let created = gw.call(
        "tools/call",
        json!({"name": "ev__simulate-research-query", "arguments": {"topic": "byte routers"},
               "task": {"ttl": 60000}}),
    );
    let task = &created["result"]["task"];
    let task_id = task["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    assert!(
        task["status"] == "working" || task["status"] == "completed",
        "{created}"
    );
    let got = gw.call("tasks/get", json!({"taskId": task_id}));
    assert_eq!(got["result"]["taskId"], task_id, "{got}");
    assert!(
        got["result"]["status"] == "working" || got["result"]["status"] == "completed",
        "{got}"
    );
    let id = gw.request("tasks/result", json!({"taskId": task_id}));
    let result = gw.response(&id, Duration::from_secs(15));
    assert!(
        ok_text(&result).contains("# Research Report: byte routers"),
        "{result}"
    );
    let got = gw.call("tasks/get", json!({"taskId": task_id}));
    assert_eq!(got["result"]["status"], "completed", "{got}");
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}
