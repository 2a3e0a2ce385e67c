//! Fault isolation in the gateway core (issue 11): one backend or client that misbehaves
//! costs gangway bounded memory and delays nobody else.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A `use_tool` echo line of about `size` bytes for `backend`.
fn big_echo(id: i64, backend: &str, size: usize) -> String {
    let text = "x".repeat(size);
    Gangway::tool_call_line(
        &json!(id),
        "use_tool",
        json!({ "backend_server": backend, "server_tool": "echo",
                "tool_arguments": { "text": text } }),
    )
}

/// gangway's resident memory in KiB (`VmHWM`: the peak, so a burst cannot hide).
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_backend_that_stops_reading_its_input_freezes_neither_the_client_nor_other_backends() {
    let dir = TempDir::new();
    let mut stuck = mock("stuck", &[]);
    stuck["timeout"] = json!(60);
    let config = json!({ "backends": { "stuck": stuck, "other": mock("other", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let resp = gw.use_tool("stuck", "stop_reading", json!({}));
    assert_eq!(ok_text(&resp), "no longer reading stdin");

    // 16 MiB of calls for it: the pipe takes 64 KiB, and gangway holds them (past 8 MiB
    // only while it has not seen the backend stop reading).
    let lines: Vec<String> = (0..16)
        .map(|i| big_echo(1000 + i, "stuck", 1 << 20))
        .collect();
    gw.send_all(&lines);
    // Meanwhile everything else flows: pings, another backend, a list.
    let started = Instant::now();
    let resp = gw.use_tool("other", "echo", json!({ "text": "still served" }));
    assert_eq!(ok_text(&resp), "still served");
    let resp = gw.call("tools/list", json!({}));
    assert!(resp["result"]["tools"].is_array(), "{resp}");
    // Once it has taken none of its input for a second, the next call to it is refused at
    // once, naming the backend and why; pings are answered all along.
    while started.elapsed() < Duration::from_millis(1200) {
        let ping = gw.call("ping", json!({}));
        assert!(ping.get("result").is_some(), "{ping}");
    }
    let id = gw.request_use_tool("stuck", "echo", json!({ "text": "x".repeat(1 << 20) }));
    let refused = gw.response(&id, Duration::from_secs(5));
    let text = tool_error_text(&refused);
    assert!(
        text.contains("stuck") && text.contains("not reading its input"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "other work waited {:?} behind the stuck backend",
        started.elapsed()
    );
    assert!(
        peak_rss_kib(gw.pid()) < 96 * 1024,
        "gangway's peak memory grew to {} KiB",
        peak_rss_kib(gw.pid())
    );
}

#[test]
fn requests_waiting_for_a_starting_backend_are_bounded() {
    let dir = TempDir::new();
    let slow = mock("slow", &["--init-delay-ms", "8000"]);
    let config = json!({ "backends": { "slow": slow } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    // 40 MiB of calls while it starts: gangway keeps up to its bound and refuses the
    // rest at once (before the backend is ready), saying why.
    let lines: Vec<String> = (0..40)
        .map(|i| big_echo(1000 + i, "slow", 1 << 20))
        .collect();
    let started = Instant::now();
    gw.send_all(&lines);
    let refused = gw.recv_until(
        |v| v["id"].as_i64().is_some_and(|id| id >= 1000),
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the first answer came after {:?}: the calls were all held until the start",
        started.elapsed()
    );
    let text = tool_error_text(&refused);
    assert!(
        text.contains("slow") && text.contains("still starting") && text.contains("MiB"),
        "{text}"
    );
    assert!(
        peak_rss_kib(gw.pid()) < 96 * 1024,
        "gangway's peak memory grew to {} KiB",
        peak_rss_kib(gw.pid())
    );
    // Those it kept are served once it is ready.
    let mut served = 0;
    let mut refused_n = 1;
    while served + refused_n < 40 {
        let v = gw.recv_until(
            |v| v["id"].as_i64().is_some_and(|id| id >= 1000),
            Duration::from_secs(30),
        );
        if v["result"]["isError"] == json!(true) {
            refused_n += 1;
        } else {
            served += 1;
        }
    }
    assert!(served >= 4, "only {served} of 40 calls were kept");
    assert!(refused_n >= 24, "only {refused_n} of 40 calls were refused");
}

#[test]
fn a_client_that_stops_reading_does_not_grow_gangways_memory() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "m": mock("m", &[]) } });
    let mut child = gangway_command(&dir, &config)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gangway");
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    // 120,000 tools/list requests (6 MB): each answer (the meta-tools, ~1 KB) is ~20
    // times the request, so an unbounded gangway would queue over 100 MB for a client
    // that reads nothing.
    let n = 120_000;
    let done = Arc::new(AtomicBool::new(false));
    let writer_done = Arc::clone(&done);
    let writer = thread::spawn(move || {
        let mut buf = String::new();
        for i in 0..n {
            buf.push_str(&format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"tools/list\"}}\n"
            ));
        }
        let ok = stdin.write_all(buf.as_bytes()).is_ok();
        writer_done.store(true, Ordering::SeqCst);
        ok
    });
    let limit_kib = 48 * 1024;
    // Not reading: an unbounded gangway reads everything and its memory climbs past the
    // limit; a bounded one stops reading, so neither happens within the deadline.
    wait_for(Duration::from_secs(5), || {
        done.load(Ordering::SeqCst) || peak_rss_kib(pid) > limit_kib
    });
    let peak = peak_rss_kib(pid);
    assert!(
        peak < limit_kib,
        "gangway's memory grew to {peak} KiB while its client read nothing"
    );
    // Reading now: every request is answered, in order, and memory stayed bounded.
    let mut answered = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["id"], json!(answered), "answers in order");
        answered += 1;
        if answered == n {
            break;
        }
    }
    assert_eq!(answered, n);
    assert!(writer.join().expect("writer"), "all requests written");
    assert!(peak_rss_kib(pid) < limit_kib, "{} KiB", peak_rss_kib(pid));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_client_that_never_answers_a_backend_request_does_not_pin_the_backend() {
    let dir = TempDir::new();
    let mut m = mock("m", &[]);
    m["client_request_timeout"] = json!(1);
    m["timeout"] = json!(20);
    let config = json!({ "backends": { "m": m } });
    let mut gw = Gangway::start(&dir, &config);
    let resp = gw.call(
        "initialize",
        json!({ "protocolVersion": "2025-06-18",
                "capabilities": { "sampling": {}, "elicitation": {} },
                "clientInfo": { "name": "silent", "version": "0" } }),
    );
    assert!(resp.get("result").is_some(), "{resp}");
    gw.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));

    // A sampling request nobody answers: after client_request_timeout the client hears
    // it is cancelled and the backend gets an error that says why.
    let started = Instant::now();
    let id = gw.request_use_tool(
        "m",
        "ask",
        json!({ "method": "sampling/createMessage", "params": { "messages": [], "maxTokens": 1 } }),
    );
    let asked = gw.recv_until(|v| v["method"] == "sampling/createMessage", T);
    let cancel = gw.recv_until(|v| v["method"] == "notifications/cancelled", T);
    assert_eq!(cancel["params"]["requestId"], asked["id"], "{cancel}");
    let answer = ok_text(&gw.response(&id, T));
    assert!(
        answer.contains("client_request_timeout") && answer.contains("did not answer"),
        "the backend was told why: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A ping to the client is bounded by the backend's timeout.
    let id = gw.request_use_tool("m", "ask", json!({ "method": "ping" }));
    gw.recv_until(|v| v["method"] == "ping", T);
    let answer = ok_text(&gw.response(&id, T));
    assert!(answer.contains("did not answer"), "{answer}");

    // At most 16 such requests wait per backend; the next is refused at once.
    let ids: Vec<Value> = (0..17)
        .map(|_| {
            gw.request_use_tool(
                "m",
                "ask",
                json!({ "method": "elicitation/create", "params": { "message": "?" } }),
            )
        })
        .collect();
    let refused = gw.recv_until(|v| ids.contains(&v["id"]) && v.get("result").is_some(), T);
    let text = ok_text(&refused);
    assert!(text.contains("already wait for the client"), "{text}");
}

#[test]
fn a_parse_error_without_an_id_answers_the_one_request_it_is_about() {
    let dir = TempDir::new();
    let mut m = mock("m", &[]);
    m["timeout"] = json!(20);
    let config = json!({ "backends": { "m": m } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    gw.use_tool("m", "echo", json!({ "text": "warm" }));
    // JSON gangway passes on but the backend's parser refuses (a number out of range):
    // it answers -32700 with "id": null.
    let started = Instant::now();
    let id = gw.next_id();
    gw.send_raw(&format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"use_tool","arguments":{{"backend_server":"m","server_tool":"echo","tool_arguments":{{"text":"x","n":1e999}}}}}}}}"#
    ));
    let resp = gw.response(&json!(id), T);
    let text = tool_error_text(&resp);
    assert!(
        text.contains("without a request id") && text.contains("Parse error"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered only after {:?}",
        started.elapsed()
    );
}

#[test]
fn an_initialize_timeout_is_logged_as_startup_timeout() {
    let dir = TempDir::new();
    let mut m = mock("m", &["--init-delay-ms", "5000"]);
    m["startup_timeout"] = json!(0.5);
    let config = json!({ "backends": { "m": m } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let resp = gw.use_tool("m", "echo", json!({ "text": "x" }));
    let text = tool_error_text(&resp);
    assert!(text.contains("startup_timeout"), "{text}");
    gw.wait_stderr("did not finish starting", T);
    let log = gw.stderr().join("\n");
    assert!(
        !log.contains("(its \"timeout\" in the config)"),
        "the log blames \"timeout\": {log}"
    );
}

fn tool_names(resp: &Value) -> Vec<String> {
    resp["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {resp}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_backend_that_hangs_in_initialize_does_not_hold_list_answers() {
    let dir = TempDir::new();
    let mut hung = mock("hung", &["--init-delay-ms", "9000"]);
    hung["startup_timeout"] = json!(60);
    let config = json!({ "expose": "tools",
                         "backends": { "fine": mock("fine", &[]), "hung": hung } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let started = Instant::now();
    let resp = gw.call("tools/list", json!({}));
    let waited = started.elapsed();
    let names = tool_names(&resp);
    assert!(names.contains(&"fine__echo".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("hung__")),
        "the list waited for the hung backend ({waited:?}): {names:?}"
    );
    assert!(waited < Duration::from_secs(8), "answered after {waited:?}");
    gw.wait_stderr("left out for now", T);
    // Once it is ready the client hears list_changed, and the list has its tools.
    gw.wait_notification("notifications/tools/list_changed", Duration::from_secs(30));
    let names = tool_names(&gw.call("tools/list", json!({})));
    assert!(names.contains(&"hung__echo".to_string()), "{names:?}");
    assert!(names.contains(&"fine__echo".to_string()), "{names:?}");
}

#[test]
fn a_failed_start_is_remembered_so_lists_do_not_wait_for_it_again() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools",
                         "backends": { "fine": mock("fine", &[]),
                                       "bad": mock("bad", &["--exit-on-init", "3"]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = tool_names(&gw.call("tools/list", json!({})));
    assert!(names.contains(&"fine__echo".to_string()), "{names:?}");
    gw.wait_stderr("backend 'bad' failed to start (1 in a row)", T);
    // The next list does not start it again, and a call says why at once.
    let names = tool_names(&gw.call("tools/list", json!({})));
    assert!(names.contains(&"fine__echo".to_string()), "{names:?}");
    let resp = gw.call_tool("bad__echo", json!({ "text": "x" }));
    let text = error_message(&resp, -32000);
    assert!(
        text.contains("failed to start") && text.contains("exit status 3"),
        "{text}"
    );
    let starts = |gw: &Gangway| {
        gw.stderr()
            .iter()
            .filter(|l| l.contains("starting backend 'bad'"))
            .count()
    };
    assert_eq!(starts(&gw), 1, "{:#?}", gw.stderr());
    let catalog = read_catalog(&dir);
    let failed = catalog["entries"]
        .as_object()
        .expect("entries")
        .values()
        .find(|e| e["backend"] == "bad")
        .map(|e| e["failed"].clone())
        .unwrap_or_default();
    assert_eq!(failed["count"], 1, "{catalog:#}");
    gw.finish();

    // The next session lists without starting it (the failure is in the catalog), and a
    // call still tries it.
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let started = Instant::now();
    let names = tool_names(&gw.call("tools/list", json!({})));
    assert!(names.contains(&"fine__echo".to_string()), "{names:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(starts(&gw), 0, "{:#?}", gw.stderr());
    let resp = gw.call_tool("bad__echo", json!({ "text": "x" }));
    error_message(&resp, -32000);
    assert_eq!(starts(&gw), 1, "a call starts it");
}
