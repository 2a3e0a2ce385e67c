//! `gangway serve` from the outside: real sockets, raw HTTP, the README's curl lines, and
//! sessions sharing (or not) backend processes.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

#[test]
fn sessions_share_a_backend_and_each_gets_its_own_session_scoped_process() {
    let dir = TempDir::new();
    let mut own = mock("own", &[]);
    own["scope"] = json!("session");
    let config =
        json!({"expose": "tools", "backends": {"shared": mock("shared", &[]), "own": own}});
    let mut served = Served::start(&dir, &config, &[]);
    let (a, b) = (served.session(), served.session());
    assert_ne!(a, b);
    assert_eq!(
        served.call(&a, "shared__pid"),
        served.call(&b, "shared__pid"),
        "one shared process"
    );
    let own_a: i32 = served.call(&a, "own__pid").parse().expect("a pid");
    let own_b: i32 = served.call(&b, "own__pid").parse().expect("a pid");
    assert_ne!(own_a, own_b, "a process per session");
    assert_eq!(
        served.call(&a, "own__pid"),
        own_a.to_string(),
        "the session keeps its process"
    );
    let (status, _, _) = served.request("DELETE", &[("Mcp-Session-Id", &a)], "");
    assert_eq!(status, 200);
    assert_pid_gone(own_a, T);
    assert_eq!(
        served.call(&b, "own__pid"),
        own_b.to_string(),
        "the other session notices nothing"
    );
    let (status, _, _) = served.request(
        "POST",
        &[("Mcp-Session-Id", &a)],
        r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
    );
    assert_eq!(status, 404, "a deleted session is gone");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(served.gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal gangway");
    assert!(
        served.gw.wait_exit(T).is_some_and(|s| s.success()),
        "SIGTERM ends serve cleanly"
    );
    assert_pid_gone(own_b, T);
}

#[test]
fn the_readmes_curl_lines_work() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let block = readme
        .split("<!-- serve-curl: run by tests/gateway/serve.rs -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README's serve-curl block");
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "curl is needed under CI");
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let script = block.replace("127.0.0.1:8000", &served.addr);
    let out = Command::new("sh")
        .arg("-ec")
        .arg(&script)
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(r#""name":"m__echo""#),
        "tools/list answered: {stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("200"),
        "DELETE answered 200: {stdout}"
    );
    // The DELETE ended the session (the log line may trail the answer).
    served.gw.wait_stderr("ended", T);
}

#[test]
fn serve_refuses_a_public_address_without_tokens_and_a_busy_port() {
    let dir = TempDir::new();
    let config = json!({"backends": {}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let mut gw = Gangway::spawn(cmd);
    assert_eq!(gw.wait_exit(T).and_then(|s| s.code()), Some(2));
    gw.wait_stderr("without authentication", T);

    let served = Served::start(&dir, &config, &[]);
    let mut cmd = gangway_command(&dir, &config);
    cmd.args(["serve", "--listen", &served.addr]);
    let mut second = Gangway::spawn(cmd);
    assert_eq!(second.wait_exit(T).and_then(|s| s.code()), Some(1));
    let err = second.wait_stderr("cannot listen on", T);
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn tokens_from_the_config_guard_every_request() {
    let dir = TempDir::new();
    let config = json!({"http": {"tokens": ["${SERVE_TEST_TOKEN}"]}, "backends": {}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("SERVE_TEST_TOKEN", "tok-123");
    let served = Served::spawn(cmd);
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let (status, head, _) = served.request("POST", &[], ping);
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    assert_eq!(
        served
            .request("POST", &[("Authorization", "Bearer tok-123")], ping)
            .0,
        200
    );
    let log = served.gw.stderr().join("\n");
    assert!(!log.contains("tok-123"), "the token is logged: {log}");
}

/// An open response read incrementally: the head, then decoded chunks as they come.
struct Stream {
    r: BufReader<TcpStream>,
    head: String,
}

impl Stream {
    /// Sends `req` (a whole raw request) on a fresh connection and reads the head.
    fn open(addr: &str, req: &str) -> Stream {
        let mut s = TcpStream::connect(addr).expect("connect to gangway serve");
        s.set_read_timeout(Some(T)).expect("read timeout");
        s.write_all(req.as_bytes()).expect("send the request");
        let mut r = BufReader::new(s);
        let head = read_head(&mut r);
        Stream { r, head }
    }

    /// The next chunk's data; `None` at the end of the response.
    fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.r.read_line(&mut size).expect("a chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        let mut data = vec![0; n + 2];
        self.r.read_exact(&mut data).expect("a chunk");
        data.truncate(n);
        (n > 0).then(|| String::from_utf8_lossy(&data).into_owned())
    }

    /// Reads chunks until one contains `needle`; returns everything read.
    fn until(&mut self, needle: &str) -> String {
        let mut all = String::new();
        while let Some(c) = self.chunk() {
            all.push_str(&c);
            if c.contains(needle) {
                return all;
            }
        }
        panic!("the stream ended before {needle:?}: {all}");
    }
}

fn post_req(addr: &str, sid: &str, body: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nMcp-Session-Id: {sid}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_stream_cut_mid_answer_resumes_with_last_event_id() {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let sid = served.session();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "m__progress", "arguments": {"steps": 3, "ms": 200}, "_meta": {"progressToken": "t"}}});
    let mut first = Stream::open(
        &served.addr,
        &post_req(&served.addr, &sid, &call.to_string()),
    );
    assert!(first.head.contains("text/event-stream"), "{}", first.head);
    let seen = first.until("\"progress\":1");
    let last = seen
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("events carry ids")
        .to_string();
    drop(first);
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: x\r\nMcp-Session-Id: {sid}\r\nAccept: text/event-stream\r\nLast-Event-ID: {last}\r\n\r\n"
    );
    let mut resumed = Stream::open(&served.addr, &get);
    assert!(resumed.head.starts_with("HTTP/1.1 200"), "{}", resumed.head);
    let rest = resumed.until("\"id\":7");
    assert!(
        !rest.contains("\"progress\":1"),
        "what was seen is not sent again: {rest}"
    );
    assert!(
        rest.contains("\"progress\":2") && rest.contains("\"progress\":3"),
        "{rest}"
    );
    assert!(rest.contains("done 3"), "the answer: {rest}");
    assert_eq!(
        resumed.chunk(),
        None,
        "the resumed stream ends with its answer"
    );
}

#[test]
fn a_client_that_does_not_read_its_stream_is_cut_off_and_others_are_served_meanwhile() {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[]), "n": mock("n", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let (slow, other) = (served.session(), served.session());
    // About 27 MB of progress events for a reader that never reads.
    let flood = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "m__progress", "arguments": {"steps": 300_000, "ms": 0}, "_meta": {"progressToken": 1}}});
    let stuck = Stream::open(
        &served.addr,
        &post_req(&served.addr, &slow, &flood.to_string()),
    );
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"n__echo","arguments":{"text":"still here"}}}"#;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, _, body) = served.request("POST", &[("Mcp-Session-Id", &other)], ping);
        assert_eq!(status, 200);
        assert!(body.contains("still here"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "another session waited {:?}",
            started.elapsed()
        );
    }
    served
        .gw
        .wait_stderr("is not reading its event stream", Duration::from_secs(30));
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", served.gw.pid()))
        .expect("gangway's status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    assert!(rss_kib < 64 * 1024, "gangway grew to {rss_kib} KiB");
    drop(stuck);
    let (status, _, _) = served.request(
        "POST",
        &[("Mcp-Session-Id", &slow)],
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    );
    assert_eq!(status, 200, "the slow client's session survives");
}

#[test]
fn a_shared_backend_asking_a_client_while_serving_two_sessions_is_warned_about() {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let (a, b) = (served.session(), served.session());
    let slow = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"m__slow","arguments":{"ms":3000}}}"#;
    // Requests sent, answers not read: both stay in flight.
    let send = |req: String| {
        let mut s = TcpStream::connect(&served.addr).expect("connect");
        s.write_all(req.as_bytes()).expect("send");
        s
    };
    let _waiting = send(post_req(&served.addr, &a, slow));
    served.gw.wait_stderr("backend 'm' ready", T);
    let ask = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"m__ask","arguments":{"method":"ping"}}}"#;
    let _asking = send(post_req(&served.addr, &b, ask));
    let line = served.gw.wait_stderr("while serving 2 client sessions", T);
    assert!(line.contains("\"scope\": \"session\""), "{line}");
}

#[test]
fn a_keep_warm_backend_is_running_before_the_first_call() {
    let dir = TempDir::new();
    let mut warm = mock("warm", &[]);
    warm["keep_warm"] = json!(true);
    let config = json!({"expose": "tools", "backends": {"warm": warm, "cold": mock("cold", &[])}});
    let served = Served::start(&dir, &config, &[]);
    served.gw.wait_stderr("backend 'warm' ready", T);
    let (code, _, body) = http_request_to(&served.addr, "GET", "/status.json", &[], "");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    let backend = |name: &str| {
        status["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    assert_eq!(
        backend("warm")["state"],
        "ready",
        "before any client: {status}"
    );
    assert_eq!(backend("cold")["state"], "stopped", "{status}");
    let sid = served.session();
    let pid = served.call(&sid, "warm__pid");
    assert_eq!(
        backend("warm")["pid"].to_string(),
        pid,
        "the first call was served by the process started warm"
    );
}

#[test]
fn sigterm_stops_accepting_lets_calls_in_flight_finish_and_ends_streams() {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let mut served = Served::start(&dir, &config, &[]);
    let sid = served.session();
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: x\r\nMcp-Session-Id: {sid}\r\nAccept: text/event-stream\r\n\r\n"
    );
    let mut events = Stream::open(&served.addr, &get);
    assert!(
        events.chunk().is_some_and(|c| c.contains("retry:")),
        "the stream opened"
    );
    let slow = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"m__slow","arguments":{"ms":800,"text":"finished anyway"}}}"#;
    let mut call = TcpStream::connect(&served.addr).expect("connect");
    call.set_read_timeout(Some(T)).expect("timeout");
    call.write_all(post_req(&served.addr, &sid, slow).as_bytes())
        .expect("send");
    served.gw.wait_stderr("backend 'm' ready", T);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(served.gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal gangway");
    served.gw.wait_stderr("no longer accepting", T);
    assert!(
        TcpStream::connect(&served.addr).is_err(),
        "new connections are refused"
    );
    let mut answer = String::new();
    BufReader::new(call)
        .read_to_string(&mut answer)
        .expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("finished anyway"),
        "the call in flight finished: {answer}"
    );
    while events.chunk().is_some() {}
    assert!(
        served.gw.wait_exit(T).is_some_and(|s| s.success()),
        "a clean exit"
    );
}

#[test]
fn sighup_applies_new_tokens_to_the_next_request() {
    let dir = TempDir::new();
    let config = json!({"http": {"tokens": ["first"]}, "backends": {}});
    let served = Served::start(&dir, &config, &[]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    assert_eq!(
        served
            .request("POST", &[("Authorization", "Bearer first")], init)
            .0,
        200
    );
    dir.write_config(
        "config.json",
        &json!({"http": {"tokens": ["second"]}, "backends": {}}),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(served.gw.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("signal gangway");
    served.gw.wait_stderr("reloading", T);
    assert_eq!(
        served
            .request("POST", &[("Authorization", "Bearer first")], init)
            .0,
        401
    );
    assert_eq!(
        served
            .request("POST", &[("Authorization", "Bearer second")], init)
            .0,
        200
    );
}

/// Reads one HTTP response with a `Content-Length` body from `r`: (head, body).
fn read_sized_response(r: &mut impl std::io::BufRead) -> (String, String) {
    let head = read_head(r);
    let len: usize = header_in(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("read the body");
    (head, String::from_utf8(body).expect("a UTF-8 body"))
}

#[test]
fn calls_of_several_mib_follow_each_other_on_one_connection() {
    use std::io::{BufReader, Write};
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let sid = served.session_declaring(&[], json!({}));
    let stream = std::net::TcpStream::connect(&served.addr).expect("connect");
    stream.set_read_timeout(Some(T)).expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    // More than one loop turn of reads (16 x 64 KiB) arrives at once for each body.
    let text = "x".repeat(3 << 20);
    for i in 0..3 {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "m__echo", "arguments": {"text": text}}})
        .to_string();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n",
            served.addr,
            body.len()
        );
        w.write_all(request.as_bytes()).expect("write the head");
        w.write_all(body.as_bytes()).expect("write the body");
        let (head, answer) = read_sized_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 200"), "call {i}: {head}");
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(ok_text(&answer).len(), text.len(), "call {i}");
    }
}

/// A 2026-07-28 request over HTTP is cancelled by closing its connection: the backend
/// hears `notifications/cancelled` (the mock logs it), and no session is left behind.
#[test]
fn closing_a_2026_07_28_request_s_connection_cancels_it_at_the_backend() {
    let dir = TempDir::new();
    let record = dir.join("m.jsonl");
    let config = json!({"expose": "tools", "backends": {"m": recording_mock("m", &record, &[])}});
    let served = Served::start(&dir, &config, &[]);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "m__slow", "arguments": {"ms": 30_000},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: m__slow\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = TcpStream::connect(&served.addr).expect("connect");
    conn.write_all(request.as_bytes()).expect("send");
    // Once the call has reached the backend, the connection goes.
    let reached = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&record).is_ok_and(|r| r.contains("\"tools/call\""))
    });
    assert!(reached, "the call never reached the backend");
    drop(conn);
    let said = served
        .gw
        .wait_stderr("cancelled request", Duration::from_secs(10));
    assert!(said.contains("cancelled request"), "{said}");
}

/// The headers of a 2026-07-28 `tools/call` of `tool` (`Mcp-Name`).
fn modern_headers(tool: &str) -> [(&str, &str); 3] {
    [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", tool),
    ]
}

/// A 2026-07-28 `tools/call` body of `tool` with `params` added.
fn modern_call(id: i64, tool: &str, params: Value) -> String {
    let mut body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": {"method": "sampling/createMessage", "params": {"maxTokens": 5}},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}}});
    if let (Some(p), Some(extra)) = (body["params"].as_object_mut(), params.as_object()) {
        p.extend(extra.clone());
    }
    body.to_string()
}

/// Over HTTP, a backend's request during a 2026-07-28 call answers the call's POST with an
/// `InputRequiredResult`; the call stays in flight at the backend for the retry, which
/// comes as another POST. A client that never retries: after `client_request_timeout` the
/// backend's request gets a timeout error, the call is cancelled at the backend, and a
/// late retry is refused. GET and DELETE do not exist for such a client (405).
#[test]
fn a_2026_07_28_call_s_ask_outlives_its_post_until_the_retry_is_due() {
    let dir = TempDir::new();
    let record = dir.join("m.jsonl");
    let mut mock = recording_mock("m", &record, &[]);
    mock["client_request_timeout"] = json!(1);
    let config = json!({"expose": "tools", "backends": {"m": mock}});
    let served = Served::start(&dir, &config, &[]);
    let headers = modern_headers("m__ask");
    let (status, head, body) =
        served.request("POST", &headers, &modern_call(1, "m__ask", json!({})));
    assert_eq!(status, 200, "{head}{body}");
    assert!(!head.contains("Mcp-Session-Id"), "{head}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["result"]["resultType"], "input_required", "{body}");
    let state = answer["result"]["requestState"]
        .as_str()
        .expect("a requestState")
        .to_string();
    // The POST is over, the call is not: only the ask's expiry ends it.
    let expired = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&record).is_ok_and(|r| r.contains("did not retry"))
    });
    assert!(expired, "the backend's request never got its timeout error");
    let cancelled = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&record).is_ok_and(|r| r.contains("notifications/cancelled"))
    });
    assert!(cancelled, "the call was not cancelled at the backend");
    let retry = modern_call(
        2,
        "m__ask",
        json!({"requestState": state, "inputResponses": {"gangway": {"role": "assistant",
            "content": {"type": "text", "text": "late"}, "model": "m"}}}),
    );
    let (status, _, body) = served.request("POST", &headers, &retry);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("-32602") && body.contains("requestState"),
        "{body}"
    );
    for method in ["GET", "DELETE"] {
        let (status, head, _) =
            served.request(method, &[("MCP-Protocol-Version", "2026-07-28")], "");
        assert_eq!(status, 405, "{method}: {head}");
        assert!(head.contains("Allow: POST"), "{head}");
    }
}
