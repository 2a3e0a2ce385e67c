//! A server reached by URL that ends gangway's session (it restarted, or expired the
//! session): gangway starts a new one with the client's handshake and sends the refused
//! request again, so the client notices nothing.

use crate::util::*;
use serde_json::json;

#[test]
fn a_server_that_lost_the_session_gets_a_new_handshake_and_the_request_again() {
    let dir = TempDir::new();
    let inner = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let addr = served.addr.clone();
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "tools",
        "backends": {"shared": {"url": format!("http://{addr}/mcp")}}});
    let mut cmd = gangway_command(&outer_dir, &outer);
    cmd.env("RUST_LOG", "gangway=debug");
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    let first = gw.call_tool("shared__m__echo", json!({"text": "first"}));
    assert_eq!(ok_text(&first), "first");
    served.gw.wait_stderr("HTTP: session", T);
    // Nothing in flight (the lists gangway fetches after a first call are in).
    gw.wait_stderr("catalog: updated the entry of backend 'shared'", T);
    // The server restarts on the same address: gangway's session id means nothing there.
    drop(served);
    let mut cmd = gangway_command(&dir, &inner);
    cmd.args(["serve", "--listen", &addr]);
    let again = Gangway::spawn(cmd);
    again.wait_stderr("/mcp", T);
    let second = gw.call_tool("shared__m__echo", json!({"text": "second"}));
    assert_eq!(ok_text(&second), "second");
    gw.wait_stderr("ended gangway's session (404)", T);
    again.wait_stderr("HTTP: session", T);
    // The new session is used from then on, with no other handshake.
    let mark = gw.stderr_len();
    let third = gw.call_tool("shared__m__echo", json!({"text": "third"}));
    assert_eq!(ok_text(&third), "third");
    gw.stderr_barrier();
    assert!(
        !gw.stderr()[mark..].iter().any(|l| l.contains("404")),
        "{:?}",
        &gw.stderr()[mark..]
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}

/// What the fake server of [`cutting_server`] saw: the `Last-Event-ID` of each GET that
/// resumed a stream, and how many `hang` calls it holds.
#[derive(Default)]
struct Seen {
    resumed: std::sync::Mutex<Vec<String>>,
    hung: std::sync::atomic::AtomicUsize,
}
type Resumed = std::sync::Arc<Seen>;

/// A fake Streamable HTTP server whose tool `cut` answers on an event stream that it cuts
/// (a chunked body never ended) after one progress event with id `ev1` (and `retry: 10`);
/// a GET with `Last-Event-ID: ev1` gets the rest: the answer, id `ev2`. Its tool `lost`
/// cuts the same way with no event id. A GET without `Last-Event-ID` (the server's own
/// stream) gets 405. Its tool `hang` never answers. Returns its address and the resumptions it saw.
fn cutting_server() -> (String, Resumed) {
    use std::io::{BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let resumed: Resumed = Arc::default();
    let seen = Arc::clone(&resumed);
    // The id of the call whose stream was cut, for the GET that resumes it.
    let cut_id: Arc<Mutex<serde_json::Value>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (seen, cut_id) = (Arc::clone(&seen), Arc::clone(&cut_id));
            std::thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                while let Some((head, msg)) = read_json_request(&mut r) {
                    if head.starts_with("GET") {
                        let Some(last) = header_in(&head, "Last-Event-ID") else {
                            let _ = w.write_all(
                                b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n",
                            );
                            continue;
                        };
                        seen.resumed.lock().expect("lock").push(last.to_string());
                        let id = cut_id.lock().expect("lock").clone();
                        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                            "content": [{"type": "text", "text": "resumed answer"}]}});
                        let body = format!("id: ev2\ndata: {answer}\n\n");
                        let _ = w.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                        continue;
                    }
                    let result = match msg["method"].as_str().unwrap_or("") {
                        "initialize" => {
                            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                   "serverInfo": {"name": "cutting", "version": "1"}})
                        }
                        "tools/list" => json!({"tools": [
                            {"name": "cut", "inputSchema": {"type": "object"}},
                            {"name": "lost", "inputSchema": {"type": "object"}},
                            {"name": "echo", "inputSchema": {"type": "object"}},
                            {"name": "hang", "inputSchema": {"type": "object"}}]}),
                        "tools/call" if msg["params"]["name"] == "echo" => {
                            json!({"content": [{"type": "text", "text": "still here"}]})
                        }
                        "tools/call" if msg["params"]["name"] == "hang" => {
                            // Never answers; holds the connection until gangway closes it.
                            seen.hung.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = r.read(&mut [0u8; 1]);
                            seen.hung.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                        "tools/call" => {
                            let token = &msg["params"]["_meta"]["progressToken"];
                            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": 1}});
                            let id_line = if msg["params"]["name"] == "cut" {
                                *cut_id.lock().expect("lock") = msg["id"].clone();
                                "id: ev1\nretry: 10\n"
                            } else {
                                ""
                            };
                            let event = format!("{id_line}data: {progress}\n\n");
                            let _ = w.write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                                    event.len()
                                )
                                .as_bytes(),
                            );
                            return; // the stream is cut: no last chunk, connection closed
                        }
                        _ => {
                            let _ = w.write_all(ACCEPTED);
                            continue;
                        }
                    };
                    if !write_json_result(&mut w, &msg["id"], result) {
                        return;
                    }
                }
            });
        }
    });
    (addr, resumed)
}

/// A stdio gangway, initialized, whose backend `cutting` is [`cutting_server`]; with the
/// server's address, what it saw, and gangway's directory.
fn through_cutting_server() -> (Gangway, String, Resumed, TempDir) {
    let (addr, seen) = cutting_server();
    let dir = TempDir::new();
    let config =
        json!({"expose": "tools", "backends": {"cutting": {"url": format!("http://{addr}/mcp")}}});
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    (gw, addr, seen, dir)
}

#[test]
fn an_answer_cut_mid_stream_is_resumed_after_its_last_event_id() {
    let (mut gw, _, resumed, _dir) = through_cutting_server();
    let line = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": {
        "name": "cutting__cut", "arguments": {}, "_meta": {"progressToken": "p1"}}});
    gw.send(&line);
    let progress = gw.wait_notification("notifications/progress", T);
    assert_eq!(progress["params"]["progressToken"], "p1");
    let answer = gw.response(&json!("c1"), T);
    assert_eq!(ok_text(&answer), "resumed answer");
    assert_eq!(*resumed.resumed.lock().expect("lock"), ["ev1"]);
}

#[test]
fn an_answer_cut_with_no_event_id_fails_that_request_alone() {
    let (mut gw, addr, resumed, _dir) = through_cutting_server();
    let lost = gw.call_tool("cutting__lost", json!({}));
    let text = lost.to_string();
    assert!(
        text.contains("no event id to resume from") && text.contains(&addr),
        "{text}"
    );
    // The backend goes on.
    assert_eq!(
        ok_text(&gw.call_tool("cutting__echo", json!({}))),
        "still here"
    );
    assert!(resumed.resumed.lock().expect("lock").is_empty());
}

#[test]
fn a_cancelled_call_frees_its_connection_for_the_next_request() {
    use std::sync::atomic::Ordering;
    let (mut gw, _, seen, _dir) = through_cutting_server();
    assert_eq!(
        ok_text(&gw.call_tool("cutting__echo", json!({}))),
        "still here"
    );
    // Four calls the server never answers hold every connection gangway opens to it.
    let hung: Vec<String> = (0..4)
        .map(|i| Gangway::tool_call_line(&json!(format!("h{i}")), "cutting__hang", json!({})))
        .collect();
    gw.send_all(&hung);
    assert!(
        wait_for(T, || seen.hung.load(Ordering::SeqCst) == 4),
        "{:?}",
        gw.stderr()
    );
    gw.send_raw(&Gangway::tool_call_line(
        &json!("e"),
        "cutting__echo",
        json!({}),
    ));
    for i in 0..4 {
        gw.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": format!("h{i}"), "reason": "the user gave up"}}),
        );
    }
    assert_eq!(ok_text(&gw.response(&json!("e"), T)), "still here");
    // The server saw each held connection closed.
    assert!(wait_for(T, || seen.hung.load(Ordering::SeqCst) == 0));
}

/// A port where connections are never made: a listener with a backlog of 0 whose queue is
/// full (held by a python3 process until dropped), so the kernel drops further SYNs.
struct Unreachable(std::process::Child, u16);

impl Drop for Unreachable {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unreachable_port() -> Option<Unreachable> {
    use std::io::BufRead;
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok();
    let missing = if has_python {
        Vec::new()
    } else {
        vec!["`python3` in PATH".to_string()]
    };
    if !nothing_missing("the connect-timeout test", &missing) {
        return None;
    }
    let script = r#"
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
held = []
for _ in range(4):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(s)
print(port, flush=True)
sys.stdin.read()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the port");
    let port = line.trim().parse().expect("a port");
    Some(Unreachable(child, port))
}

#[test]
fn a_connection_never_made_fails_the_backend_after_the_connect_deadline() {
    let Some(blocked) = unreachable_port() else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "meta", "backends": {
        "far": {"url": format!("http://127.0.0.1:{}/mcp", blocked.1)},
        "m": mock("m", &[])}});
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let started = std::time::Instant::now();
    let line = Gangway::tool_call_line(
        &json!("far"),
        "use_tool",
        json!({"backend_server": "far", "server_tool": "echo", "tool_arguments": {}}),
    );
    gw.send_raw(&line);
    // The other backend answers meanwhile.
    assert_eq!(
        ok_text(&gw.use_tool("m", "echo", json!({"text": "here"}))),
        "here"
    );
    let far = gw.response(&json!("far"), std::time::Duration::from_secs(20));
    let text = text_of(&far);
    assert!(
        text.contains("no connection to") && text.contains("within 10 s"),
        "{text}"
    );
    let waited = started.elapsed().as_secs_f64();
    assert!((9.5..15.0).contains(&waited), "answered after {waited} s");
}
