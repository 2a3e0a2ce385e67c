//! A stdio gangway whose backend is a server written with the official Python SDK
//! (`tests/peers/py_server.py`: MCPServer under uvicorn, Streamable HTTP at /mcp), reached
//! by URL over http and over https with a certificate from a CA the test makes: tools,
//! progress, sampling answered by gangway's client, a resource read; and what the client
//! hears when the certificate's CA is not trusted or the https URL points at plain http.

use crate::util::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

/// The Python server; killed (with its process group) on drop.
struct PyServer {
    child: Child,
    port: u16,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the SDK and python3 are there (see `nothing_missing`).
fn prerequisites() -> bool {
    let py = root().join(".peers/py");
    let mut missing = Vec::new();
    for (dir, what) in [("mcp", "the MCP Python SDK"), ("uvicorn", "uvicorn")] {
        if !py.join(dir).exists() {
            missing.push(format!("{what} ({})", py.join(dir).display()));
        }
    }
    if !program_runs("python3") {
        missing.push("`python3` in PATH".to_string());
    }
    nothing_missing("the Python SDK server tests", &missing)
}

/// Starts the server on a port it picks, with TLS when `tls` names a certificate and
/// key; returns once it says it listens.
fn start(tls: Option<(&PathBuf, &PathBuf)>) -> PyServer {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/peers/py_server.py"))
        .arg("0")
        .env("PYTHONPATH", root().join(".peers/py"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((cert, key)) = tls {
        cmd.arg("--certfile").arg(cert).arg("--keyfile").arg(key);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("start the Python server");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("listening on ") {
                let _ = tx.send(port.trim().parse::<u16>().ok());
            }
        }
    });
    // Its log goes to the test's stderr, where a failing test shows it.
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("py_server: {line}");
        }
    });
    let port = rx
        .recv_timeout(T)
        .ok()
        .flatten()
        .expect("the Python server says which port it listens on");
    PyServer { child, port }
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, written to `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
fn make_certificates(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gangway test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "py-remote test server");
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca, ca_cert.pem()).expect("write ca.pem");
    std::fs::write(&cert, server_cert.pem()).expect("write server.pem");
    std::fs::write(&key, server_key.serialize_pem()).expect("write server.key");
    (ca, cert, key)
}

/// Waits for `steps` progress notifications with `token`, numbered 1, 2, ... in order.
fn expect_progress(gw: &mut Gangway, token: &str, steps: u32) {
    for step in 1..=steps {
        let progress = gw.wait_notification("notifications/progress", T);
        assert_eq!(progress["params"]["progressToken"], token, "{progress}");
        assert_eq!(
            progress["params"]["progress"].as_f64(),
            Some(f64::from(step)),
            "step {step} comes {step}th: {progress}"
        );
    }
}

/// The scenario both transports run: tools, progress, sampling and a resource through
/// gangway, then a clean exit.
fn serves_tools_progress_sampling_and_resources(backend: serde_json::Value) {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"py": backend}});
    let mut gw = Gangway::start(&dir, &config);
    let init = gw.call(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}},
               "clientInfo": {"name": "python-server-test", "version": "1"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let mut names = gw.list_tool_names();
    names.sort();
    assert_eq!(
        names,
        [
            "py__announce",
            "py__ask",
            "py__count",
            "py__cut_own_stream",
            "py__echo",
            "py__interrupted"
        ]
    );
    assert_eq!(
        ok_text(&gw.call_tool("py__echo", json!({"text": "over the wire"}))),
        "py echo: over the wire"
    );
    // A request and an answer of many TLS records (and socket writes) each.
    let big = "0123456789abcdef".repeat(20_000);
    assert_eq!(
        ok_text(&gw.call_tool("py__echo", json!({"text": big}))),
        format!("py echo: {big}")
    );
    // Progress comes on the POST's event stream and reaches the client with its token.
    gw.send(
        &json!({"jsonrpc": "2.0", "id": "count", "method": "tools/call", "params": {
        "name": "py__count", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok-7"}}}),
    );
    expect_progress(&mut gw, "tok-7", 3);
    assert_eq!(ok_text(&gw.response(&json!("count"), T)), "counted 3");
    // The server's sampling request comes to this client; its answer goes back by POST.
    gw.send(
        &json!({"jsonrpc": "2.0", "id": "ask", "method": "tools/call", "params": {
        "name": "py__ask", "arguments": {"question": "what is 6 x 7?"}}}),
    );
    let ask = gw.recv_until(|m| m["method"] == "sampling/createMessage", T);
    assert_eq!(
        ask["params"]["messages"][0]["content"]["text"], "what is 6 x 7?",
        "{ask}"
    );
    gw.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "model": "test", "content": {"type": "text", "text": "42"}}}));
    assert_eq!(
        ok_text(&gw.response(&json!("ask"), T)),
        "the model said: 42"
    );
    let read = gw.call("resources/read", json!({"uri": "py://greeting"}));
    assert_eq!(
        read["result"]["contents"][0]["text"], "hello from the python server",
        "{read}"
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

/// The Python server over https with a certificate from a test CA: the server, the CA's
/// PEM file and the directory holding them; `None` when the test should skip.
fn https_server() -> Option<(PyServer, PathBuf, TempDir)> {
    if !prerequisites() {
        return None;
    }
    let certs = TempDir::new();
    let (ca, cert, key) = make_certificates(&certs);
    let server = start(Some((&cert, &key)));
    Some((server, ca, certs))
}

#[test]
fn python_sdk_server_over_http_serves_tools_progress_sampling_and_resources() {
    if !prerequisites() {
        return;
    }
    let server = start(None);
    serves_tools_progress_sampling_and_resources(
        json!({"url": format!("http://127.0.0.1:{}/mcp", server.port)}),
    );
}

#[test]
fn python_sdk_server_over_https_with_a_ca_file_serves_tools_progress_sampling_and_resources() {
    let Some((server, ca, _certs)) = https_server() else {
        return;
    };
    serves_tools_progress_sampling_and_resources(json!({
        "url": format!("https://127.0.0.1:{}/mcp", server.port),
        "ca_file": ca,
    }));
}

#[test]
fn https_trusts_the_ca_of_ssl_cert_file_as_a_platform_root() {
    let Some((server, ca, _certs)) = https_server() else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {
        "py": {"url": format!("https://localhost:{}/mcp", server.port)}}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("SSL_CERT_FILE", &ca).env_remove("SSL_CERT_DIR");
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    assert_eq!(
        ok_text(&gw.call_tool("py__echo", json!({"text": "by name"}))),
        "py echo: by name"
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

#[test]
fn gangway_serve_fronting_the_python_server_over_https_serves_an_http_client() {
    let Some((server, ca, _certs)) = https_server() else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"py": {
        "url": format!("https://127.0.0.1:{}/mcp", server.port), "ca_file": ca}}});
    let served = Served::start(&dir, &config, &[]);
    http_client_uses_a_peer(
        &served,
        &PeerScenario {
            tools: &["py__ask", "py__count", "py__echo"],
            echo: (
                "py__echo",
                json!({"text": "over http and https"}),
                "py echo: over http and https",
            ),
            progress: ("py__count", json!({"steps": 3}), 3),
            sampling: (
                "py__ask",
                json!({"question": "what is 6 x 7?"}),
                "what is 6 x 7?",
            ),
            resource: ("py://greeting", "hello from the python server"),
        },
    );
}

/// The Python server over http, and a gangway command (debug log) fronting it as `py`.
fn debug_gangway_for_the_python_server() -> (PyServer, TempDir, std::process::Command) {
    let server = start(None);
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {
        "py": {"url": format!("http://127.0.0.1:{}/mcp", server.port)}}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("RUST_LOG", "gangway=debug");
    (server, dir, cmd)
}

/// A stdio gangway fronting the Python server, initialized at 2025-11-25: the SDK cuts a
/// stream only when the client can resume it, 2025-11-25 or later.
fn resumable_through_stdio() -> (PyServer, TempDir, Gangway) {
    let (server, dir, cmd) = debug_gangway_for_the_python_server();
    let mut gw = Gangway::spawn(cmd);
    let init = gw.call(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "python-server-test", "version": "1"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    (server, dir, gw)
}

#[test]
fn an_answers_stream_the_python_server_cuts_is_resumed_with_last_event_id() {
    if !prerequisites() {
        return;
    }
    let (_server, _dir, mut gw) = resumable_through_stdio();
    // Three steps' progress, the cut, three more and the answer: those after the cut come
    // only when gangway asks for the stream again from the last event it got.
    gw.send(
        &json!({"jsonrpc": "2.0", "id": "cut", "method": "tools/call", "params": {
        "name": "py__interrupted", "arguments": {"steps": 6}, "_meta": {"progressToken": "tok-cut"}}}),
    );
    expect_progress(&mut gw, "tok-cut", 6);
    assert_eq!(
        ok_text(&gw.response(&json!("cut"), T)),
        "interrupted after 3 of 6 steps, finished all"
    );
    // The cut happened, and gangway asked from the last event it got (the event store's
    // ids are `SEQ/STREAM`).
    let resumed = gw.wait_stderr("resuming the answer's stream after event", T);
    assert!(resumed.contains("after event \""), "{resumed}");
    // More calls than gangway keeps connections to a server: none is held by the
    // resumed stream, and no step comes twice.
    for n in 0..6 {
        let text = format!("after the cut {n}");
        assert_eq!(
            ok_text(&gw.call_tool("py__echo", json!({"text": text}))),
            format!("py echo: {text}")
        );
    }
    let steps = gw
        .seen()
        .iter()
        .filter(|l| l.contains("notifications/progress"))
        .count();
    assert_eq!(steps, 6, "each step once: {:?}", gw.seen());
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

#[test]
fn an_http_client_of_gangway_serve_does_not_see_the_backends_cut_stream() {
    if !prerequisites() {
        return;
    }
    let (_server, _dir, cmd) = debug_gangway_for_the_python_server();
    let served = Served::spawn(cmd);
    // 2025-11-25, so that the backend may cut the stream (see above).
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, head, body) = served.request("POST", &[], &init.to_string());
    assert_eq!(status, 200, "{head}{body}");
    let sid = session_id_in(&head);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        served.request("POST", &[("Mcp-Session-Id", &sid)], note).0,
        202
    );
    let call = json!({"jsonrpc": "2.0", "id": "cut", "method": "tools/call", "params": {
        "name": "py__interrupted", "arguments": {"steps": 6}, "_meta": {"progressToken": "tok-cut"}}});
    let mut stream = served.post_stream(&sid, &call);
    assert_eq!(stream.status(), 200, "{}", stream.head());
    let answer = stream.answer(&json!("cut"));
    assert_eq!(
        ok_text(&answer),
        "interrupted after 3 of 6 steps, finished all"
    );
    let steps: Vec<f64> = stream
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            assert_eq!(m["params"]["progressToken"], "tok-cut", "{m}");
            m["params"]["progress"].as_f64().unwrap_or_default()
        })
        .collect();
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "{:?}", stream.seen);
    served
        .gw
        .wait_stderr("resuming the answer's stream after event", T);
}

#[test]
fn the_python_servers_own_stream_cut_is_opened_again_with_last_event_id() {
    if !prerequisites() {
        return;
    }
    let (_server, _dir, mut gw) = resumable_through_stdio();
    assert!(gw.list_tool_names().contains(&"py__announce".to_string()));
    gw.wait_stderr("its event stream is open", T);
    // A message on the server's own stream gives gangway an event id to resume from.
    let announced = gw.call_tool("py__announce", json!({"text": "before the cut"}));
    assert_eq!(ok_text(&announced), "announced");
    let before = gw.recv_until(|m| m["method"] == "notifications/message", T);
    assert_eq!(before["params"]["data"], "before the cut", "{before}");
    let mark = gw.stderr_len();
    let cut = gw.call_tool("py__cut_own_stream", json!({"text": "after the cut"}));
    assert_eq!(ok_text(&cut), "cut");
    let after = gw.recv_until(|m| m["method"] == "notifications/message", T);
    assert_eq!(after["params"]["data"], "after the cut", "{after}");
    gw.wait_stderr_after(mark, "its event stream ended", T);
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

/// The text of a tool call on `backend` through the meta-tools.
fn use_tool_text(gw: &mut Gangway, backend: &str) -> String {
    let resp = gw.use_tool(backend, "echo", json!({"text": "x"}));
    resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn https_to_an_untrusted_ca_or_a_plain_http_port_fails_with_what_to_do() {
    let Some((tls_server, _ca, _certs)) = https_server() else {
        return;
    };
    let plain_server = start(None);
    let dir = TempDir::new();
    let config = json!({"expose": "meta", "backends": {
        "untrusted": {"url": format!("https://127.0.0.1:{}/mcp", tls_server.port)},
        "plain": {"url": format!("https://127.0.0.1:{}/mcp", plain_server.port)}}});
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let text = use_tool_text(&mut gw, "untrusted");
    assert!(
        text.contains("not signed by a CA gangway trusts") && text.contains("\"ca_file\""),
        "{text}"
    );
    let text = use_tool_text(&mut gw, "plain");
    assert!(
        text.contains("does not answer in TLS") && text.contains("http://"),
        "{text}"
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}
