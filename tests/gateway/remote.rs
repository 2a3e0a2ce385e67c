//! Backends reached by URL (Streamable HTTP): a stdio gangway whose backend is another
//! gangway's `serve`, and what the client hears when that server is gone or wants
//! credentials.

use crate::util::*;
use serde_json::json;

#[test]
fn a_stdio_gangway_fronts_a_gangway_serve_by_url() {
    let dir = TempDir::new();
    let inner = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "tools",
        "backends": {"shared": {"url": format!("http://{}/mcp", served.addr)}}});
    let mut gw = Gangway::start(&outer_dir, &outer);
    gw.initialize();
    let names = gw.list_tool_names();
    assert!(names.contains(&"shared__m__echo".to_string()), "{names:?}");
    let resp = gw.call_tool("shared__m__echo", json!({"text": "through two gangways"}));
    assert_eq!(ok_text(&resp), "through two gangways");
    // Several calls in flight at once use several connections.
    let slow: Vec<String> = (0..3)
        .map(|i| {
            Gangway::tool_call_line(
                &json!(format!("slow{i}")),
                "shared__m__slow",
                json!({"ms": 300, "text": format!("s{i}")}),
            )
        })
        .collect();
    gw.send_all(&slow);
    for i in 0..3 {
        let answer = gw.response(&json!(format!("slow{i}")), T);
        assert_eq!(ok_text(&answer), format!("s{i}"));
    }
    served.gw.wait_stderr("HTTP: session", T);
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
    served.gw.wait_stderr("ended", T);
}

#[test]
fn a_server_that_is_gone_or_wants_a_token_gets_a_clear_error() {
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let inner =
        json!({"http": {"tokens": ["t0k"]}, "expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "meta", "backends": {
        "gone": {"url": format!("http://127.0.0.1:{port}/mcp")},
        "locked": {"url": format!("http://{}/mcp", served.addr)}}});
    let mut gw = Gangway::start(&outer_dir, &outer);
    gw.initialize();
    let text_of = |v: &serde_json::Value| {
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let gone = gw.use_tool("gone", "echo", json!({"text": "x"}));
    let text = text_of(&gone);
    assert!(
        text.contains("cannot connect") && text.contains(&port.to_string()),
        "{text}"
    );
    let locked = gw.use_tool("locked", "m__echo", json!({"text": "x"}));
    let text = text_of(&locked);
    assert!(
        text.contains("401") && text.contains("\"headers\""),
        "{text}"
    );
}

/// A fake Streamable HTTP server that answers every request on its own, except that it
/// closes a kept-alive connection, without answering, when the first `tools/call` arrives
/// on it: as a server does when it lets an idle connection go just as a request comes.
fn flaky_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let counter = Arc::clone(&calls);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (calls, dropped) = (Arc::clone(&counter), Arc::clone(&dropped));
            std::thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                let mut served = 0;
                while let Some((_, msg)) = read_json_request(&mut r) {
                    let method = msg["method"].as_str().unwrap_or("");
                    if method == "tools/call" && served > 0 && !dropped.swap(true, Ordering::SeqCst)
                    {
                        return; // closes the connection, no answer
                    }
                    served += 1;
                    let result = match method {
                        "initialize" => {
                            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                               "serverInfo": {"name": "flaky", "version": "1"}})
                        }
                        "tools/list" => {
                            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
                        }
                        "tools/call" => {
                            calls.fetch_add(1, Ordering::SeqCst);
                            json!({"content": [{"type": "text", "text": "answered"}]})
                        }
                        _ => {
                            let _ = w.write_all(ACCEPTED);
                            continue;
                        }
                    };
                    if !write_json_result(&mut w, &msg["id"], result) {
                        return;
                    }
                    let _ = r.fill_buf();
                }
            });
        }
    });
    (addr, calls)
}

#[test]
fn a_request_on_a_connection_the_server_let_go_is_sent_again_on_a_new_one() {
    let (addr, calls) = flaky_server();
    let dir = TempDir::new();
    let config =
        json!({"expose": "tools", "backends": {"flaky": {"url": format!("http://{addr}/mcp")}}});
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    assert!(gw.list_tool_names().contains(&"flaky__echo".to_string()));
    let resp = gw.call_tool("flaky__echo", json!({}));
    assert_eq!(ok_text(&resp), "answered", "{resp}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "answered once, on the new connection"
    );
}

/// The short session id (its first 8 characters) of the newest session `served` logged as
/// opened after stderr line `mark`.
fn opened_session(served: &Served, mark: usize) -> String {
    let line = served.gw.wait_stderr_after(mark, "HTTP: session ", T);
    let after = line.split("HTTP: session ").nth(1).unwrap_or_default();
    let (id, rest) = after.split_once(' ').unwrap_or((after, ""));
    assert!(rest.starts_with("opened"), "{line}");
    id.to_string()
}

/// `gangway serve` B in `inner_dir` with `m` as its one backend, and `gangway serve` A
/// whose one backend `b` is B by URL, with `scope` when given: (A, B, A's directory).
fn two_serves(
    inner_dir: &TempDir,
    m: serde_json::Value,
    scope: Option<&str>,
) -> (Served, Served, TempDir) {
    let inner = json!({"expose": "tools", "backends": {"m": m}});
    let b = Served::start(inner_dir, &inner, &[]);
    let outer_dir = TempDir::new();
    let mut entry = json!({"url": format!("http://{}/mcp", b.addr)});
    if let Some(scope) = scope {
        entry["scope"] = json!(scope);
    }
    let outer = json!({"expose": "tools", "backends": {"b": entry}});
    let a = Served::start(&outer_dir, &outer, &[]);
    (a, b, outer_dir)
}

/// HTTP client -> `gangway serve` A -> (by URL) `gangway serve` B -> the mock: a call and a
/// call with progress arrive, and the client's DELETE at A ends A's session at B.
#[test]
fn an_http_client_reaches_a_mock_through_two_gangway_serves_and_its_delete_ends_both_sessions() {
    let inner_dir = TempDir::new();
    // A session-scoped backend is A's own connection to B for this client, ended with it; a
    // shared one outlives the client (see the next test).
    let (a, b, _outer_dir) = two_serves(&inner_dir, mock("m", &[]), Some("session"));
    let sid = a.session();
    let mark = b.gw.stderr_len();
    assert_eq!(
        a.call_with(&sid, "b__m__echo", json!({"text": "through two serves"})),
        "through two serves"
    );
    let b_session = opened_session(&b, mark);

    let call = json!({"jsonrpc": "2.0", "id": "p", "method": "tools/call", "params": {
        "name": "b__m__progress", "arguments": {"steps": 3, "ms": 50},
        "_meta": {"progressToken": "chain-tok"}}});
    let mut stream = a.post_stream(&sid, &call);
    assert!(stream.is_event_stream(), "{}", stream.head());
    let progress = stream.message_until(|m| m["method"] == "notifications/progress");
    assert_eq!(
        progress["params"]["progressToken"], "chain-tok",
        "{progress}"
    );
    assert_eq!(progress["params"]["progress"], 1, "{progress}");
    let done = stream.answer(&json!("p"));
    assert_eq!(ok_text(&done), "done 3");
    let steps: Vec<_> = stream
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].clone())
        .collect();
    assert_eq!(
        steps,
        [json!(1), json!(2), json!(3)],
        "every step, in order"
    );

    let (status, _, _) = a.request("DELETE", &[("Mcp-Session-Id", &sid)], "");
    assert_eq!(status, 200);
    a.gw.wait_stderr(&format!("HTTP: session {} ended", &sid[..8]), T);
    b.gw.wait_stderr(&format!("HTTP: session {b_session} ended"), T);
}

/// A shared backend reached by URL is not the client's: a client's DELETE leaves A's session
/// at B open and warm for the next client, and B hears its end only when A stops.
#[test]
fn a_shared_url_backend_outlives_a_client_session_and_ends_when_gangway_stops() {
    let inner_dir = TempDir::new();
    let (mut a, b, _outer_dir) = two_serves(&inner_dir, mock("m", &[]), None);
    let first = a.session();
    let mark = b.gw.stderr_len();
    let pid = a.call_with(&first, "b__m__pid", json!({}));
    assert!(pid.parse::<i32>().is_ok(), "a pid: {pid}");
    let b_session = opened_session(&b, mark);
    assert_eq!(
        a.request("DELETE", &[("Mcp-Session-Id", &first)], "").0,
        200
    );
    a.gw.wait_stderr(&format!("HTTP: session {} ended", &first[..8]), T);

    let second = a.session();
    let mark = b.gw.stderr_len();
    assert_eq!(
        a.call_with(&second, "b__m__echo", json!({"text": "still warm"})),
        "still warm"
    );
    // B logs in order: once a session opened here directly is logged, any session A had
    // opened for the second client would have been logged before it.
    let direct = b.session();
    b.gw.wait_stderr_after(mark, &format!("HTTP: session {} opened", &direct[..8]), T);
    let opened: Vec<String> =
        b.gw.stderr()
            .into_iter()
            .skip(mark)
            .filter(|l| l.contains("HTTP: session") && l.contains("opened"))
            .collect();
    assert_eq!(
        opened.len(),
        1,
        "the second client reuses A's session at B: {opened:#?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM gangway serve A");
    assert!(a.gw.wait_exit(T).is_some(), "A exits on SIGTERM");
    b.gw.wait_stderr(&format!("HTTP: session {b_session} ended"), T);
}

/// The names of the tools `discover_backend_tools` reports for `backend`.
fn discovered(gw: &mut Gangway, backend: &str) -> Vec<String> {
    let found = gw.call_tool(
        "discover_backend_tools",
        json!({ "backend_server": backend }),
    );
    assert!(found["result"]["isError"].is_null(), "{found}");
    found["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {found}"))
        .iter()
        .map(|t| {
            assert_eq!(t["backend"], backend, "{found}");
            t["name"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// A `gangway serve` fronting the mock as `m` with tools exposed, guarded by `tokens`.
fn served_mock(dir: &TempDir, tokens: &[&str]) -> Served {
    let mut config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    if !tokens.is_empty() {
        config["http"] = json!({ "tokens": tokens });
    }
    Served::start(dir, &config, &[])
}

#[test]
fn a_cursor_mcp_json_with_a_url_server_and_a_command_server_works_unchanged() {
    let served_dir = TempDir::new();
    let served = served_mock(&served_dir, &[]);
    let dir = TempDir::new();
    // Cursor's ~/.cursor/mcp.json: a remote server is a bare "url", a local one a command.
    let text = format!(
        r#"{{
  "mcpServers": {{
    "a": {{ "url": "http://{addr}/mcp" }},
    "b": {{ "command": "{mock}", "args": ["--name", "b"], "env": {{}} }}
  }}
}}
"#,
        addr = served.addr,
        mock = mock_path().display()
    );
    let file = dir.join("mcp.json");
    std::fs::write(&file, &text).expect("write mcp.json");
    let mut gw = Gangway::spawn(gangway_command_for_file(&dir, &file));
    let init = gw.initialize();
    let listed = gw.list_tool_names();
    assert!(
        listed.contains(&"use_tool".to_string()),
        "meta mode by default: {listed:?}"
    );
    let instructions = init["instructions"].as_str().unwrap_or_default();
    for name in ["- a", "- b"] {
        assert!(
            instructions.lines().any(|l| l.starts_with(name)),
            "{name} in {instructions}"
        );
    }
    let remote = discovered(&mut gw, "a");
    assert!(remote.contains(&"m__echo".to_string()), "{remote:?}");
    let local = discovered(&mut gw, "b");
    assert_eq!(local.len(), MOCK_TOOLS.len(), "{local:?}");
    assert!(local.contains(&"echo".to_string()), "{local:?}");
    assert_eq!(
        ok_text(&gw.use_tool("a", "m__echo", json!({"text": "via url"}))),
        "via url"
    );
    assert_eq!(
        ok_text(&gw.use_tool("b", "echo", json!({"text": "via command"}))),
        "via command"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read mcp.json"),
        text,
        "the client's file is left as it was"
    );
    gw.finish();
}

/// Claude Code's `.mcp.json`: an http server whose bearer token comes from `${VAR}` in its
/// headers, next to a stdio server; `token` is what the variable is set to (None: unset).
/// Returns gangway and the served instance behind the http server, which wants `tok-cc`.
fn claude_code_file(token: Option<&str>) -> (Gangway, Served, TempDir, TempDir) {
    let served_dir = TempDir::new();
    let served = served_mock(&served_dir, &["tok-cc"]);
    let dir = TempDir::new();
    let text = format!(
        r#"{{
  "mcpServers": {{
    "remote": {{
      "type": "http",
      "url": "http://{addr}/mcp",
      "headers": {{ "Authorization": "Bearer ${{GANGWAY_TEST_CC_TOKEN}}" }}
    }},
    "local": {{
      "type": "stdio",
      "command": "{mock}",
      "args": ["--name", "local"],
      "env": {{}}
    }}
  }}
}}
"#,
        addr = served.addr,
        mock = mock_path().display()
    );
    let file = dir.join(".mcp.json");
    std::fs::write(&file, text).expect("write .mcp.json");
    let mut cmd = gangway_command_for_file(&dir, &file);
    match token {
        Some(t) => cmd.env("GANGWAY_TEST_CC_TOKEN", t),
        None => cmd.env_remove("GANGWAY_TEST_CC_TOKEN"),
    };
    (Gangway::spawn(cmd), served, dir, served_dir)
}

#[test]
fn a_claude_code_mcp_json_sends_the_header_token_from_its_variable() {
    let (mut gw, served, _dir, _served_dir) = claude_code_file(Some("tok-cc"));
    gw.initialize();
    let remote = discovered(&mut gw, "remote");
    assert!(remote.contains(&"m__echo".to_string()), "{remote:?}");
    let local = discovered(&mut gw, "local");
    assert!(local.contains(&"echo".to_string()), "{local:?}");
    assert_eq!(
        ok_text(&gw.use_tool("remote", "m__echo", json!({"text": "authorized"}))),
        "authorized"
    );
    assert_eq!(
        ok_text(&gw.use_tool("local", "echo", json!({"text": "local"}))),
        "local"
    );
    gw.finish();
    for log in [gw.stderr(), served.gw.stderr()] {
        assert!(
            !log.join("\n").contains("tok-cc"),
            "the token is never logged: {log:#?}"
        );
    }
}

#[test]
fn a_claude_code_mcp_json_with_its_token_variable_unset_disables_only_that_server() {
    let (mut gw, served, _dir, _served_dir) = claude_code_file(None);
    let init = gw.initialize();
    let log = gw.wait_stderr("backend remote is disabled", T);
    assert!(log.contains("GANGWAY_TEST_CC_TOKEN"), "{log}");
    let instructions = init["instructions"].as_str().unwrap_or_default();
    let line = instructions
        .lines()
        .find(|l| l.starts_with("- remote"))
        .unwrap_or_else(|| panic!("no line for remote in {instructions}"));
    assert!(
        line.contains("disabled") && line.contains("GANGWAY_TEST_CC_TOKEN"),
        "{line}"
    );
    let err = tool_error_text(&gw.use_tool("remote", "m__echo", json!({"text": "x"})));
    assert!(
        err.contains("remote is disabled")
            && err.contains("GANGWAY_TEST_CC_TOKEN")
            && err.contains("mcpServers.remote.headers.Authorization"),
        "the error names the variable and where it is used: {err}"
    );
    assert_eq!(
        ok_text(&gw.use_tool("local", "echo", json!({"text": "still here"}))),
        "still here"
    );
    gw.finish();
    // The served instance logs in order: a session opened here directly is the only one.
    let direct = served.session_declaring(&[("Authorization", "Bearer tok-cc")], json!({}));
    served
        .gw
        .wait_stderr(&format!("HTTP: session {} opened", &direct[..8]), T);
    let opened: Vec<String> = served
        .gw
        .stderr()
        .into_iter()
        .filter(|l| l.contains("HTTP: session") && l.contains("opened"))
        .collect();
    assert_eq!(
        opened.len(),
        1,
        "a disabled server is never contacted: {opened:#?}"
    );
}

/// HTTP client -> serve A -> serve B -> the mock: the mock's sampling request reaches the
/// HTTP client on its call's event stream, and its answer goes back down both hops.
#[test]
fn a_backends_question_crosses_two_gangway_serves_to_the_http_client_and_back() {
    let inner_dir = TempDir::new();
    let (a, _b, _outer_dir) = two_serves(&inner_dir, mock("m", &[]), None);
    let sid = a.session_declaring(&[], json!({"sampling": {}}));
    let call = json!({"jsonrpc": "2.0", "id": "q", "method": "tools/call", "params": {
        "name": "b__m__ask", "arguments": {"method": "sampling/createMessage",
            "params": {"messages": [], "maxTokens": 5}}}});
    let mut stream = a.post_stream(&sid, &call);
    assert!(stream.is_event_stream(), "{}", stream.head());
    let ask = stream.message_until(|m| m["method"] == "sampling/createMessage");
    assert_eq!(ask["params"]["maxTokens"], 5, "{ask}");
    let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "model": "m", "content": {"type": "text", "text": "two hops up"}}});
    let (status, head, _) = a.request("POST", &[("Mcp-Session-Id", &sid)], &reply.to_string());
    assert_eq!(status, 202, "{head}");
    let answer = stream.answer(&json!("q"));
    assert!(ok_text(&answer).contains("two hops up"), "{answer}");
}

/// HTTP client -> serve A -> serve B -> the mock: the client's cancellation of a slow call
/// reaches the mock, which then leaves the call unanswered.
#[test]
fn a_cancellation_crosses_two_gangway_serves_to_the_backend() {
    let inner_dir = TempDir::new();
    let record = inner_dir.join("record.jsonl");
    let (a, _b, _outer_dir) = two_serves(&inner_dir, recording_mock("m", &record, &[]), None);
    let sid = a.session();
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "b__m__slow", "arguments": {"ms": 5000, "text": "late"}}});
    let _stream = a.post_stream(&sid, &call);
    let at_mock = wait_record(&record, T, |v| v["method"] == "tools/call");
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 9, "reason": "changed my mind"}});
    let (status, head, _) = a.request("POST", &[("Mcp-Session-Id", &sid)], &cancel.to_string());
    assert_eq!(status, 202, "{head}");
    let cancelled = wait_record(&record, T, |v| v["method"] == "notifications/cancelled");
    assert_eq!(
        cancelled["params"]["requestId"], at_mock["id"],
        "{cancelled}"
    );
}
