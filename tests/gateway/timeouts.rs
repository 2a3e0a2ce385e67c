//! Request timeouts: the client gets an error, the backend gets a cancel, and stays usable.

use crate::util::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn timed_out_call_is_answered_cancelled_at_the_backend_and_backend_stays_usable() {
    let dir = TempDir::new();
    let record = dir.join("alpha.jsonl");
    let mut alpha = recording_mock("alpha", &record, &[]);
    alpha["timeout"] = json!(0.5);
    let config = json!({ "expose": "both", "backends": { "alpha": alpha } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    // Start the backend first so the timing below measures only the call.
    assert_eq!(
        ok_text(&gw.call_tool("alpha__echo", json!({ "text": "warm" }))),
        "warm"
    );

    let started = Instant::now();
    let id = gw.request_tool("alpha__slow", json!({ "ms": 5000, "text": "too slow" }));
    let resp = gw.response(&id, Duration::from_secs(4));
    let elapsed = started.elapsed();
    let msg = error_message(&resp, -32001);
    assert!(msg.contains("alpha") && msg.contains("0.5"), "{msg}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed <= Duration::from_secs(3),
        "timeout answered after {elapsed:?}, expected about 0.5 s"
    );

    let forwarded = wait_record(&record, T, |v| {
        v["method"] == "tools/call" && v["params"]["arguments"]["text"] == "too slow"
    });
    let cancel = wait_record(&record, T, |v| {
        v["method"] == "notifications/cancelled" && v["params"]["requestId"] == forwarded["id"]
    });
    assert!(
        cancel.get("id").is_none(),
        "a cancel is a notification: {cancel}"
    );

    // use_tool: the timeout is a tool result the model can read.
    let started = Instant::now();
    let id = gw.request_use_tool("alpha", "slow", json!({ "ms": 5000, "text": "too slow 2" }));
    let resp = gw.response(&id, Duration::from_secs(4));
    let text = tool_error_text(&resp);
    assert!(
        text.contains("timed out") && text.contains("alpha"),
        "{text}"
    );
    assert!(started.elapsed() <= Duration::from_secs(3));

    // The backend was not restarted or broken by the timeouts.
    assert_eq!(
        ok_text(&gw.call_tool("alpha__echo", json!({ "text": "still here" }))),
        "still here"
    );
    assert_eq!(
        ok_text(&gw.use_tool("alpha", "echo", json!({ "text": "and here" }))),
        "and here"
    );
    gw.stderr_barrier();
    let starts = gw
        .stderr()
        .iter()
        .filter(|l| l.contains("starting backend"))
        .count();
    assert_eq!(starts, 1, "the backend was restarted: {:#?}", gw.stderr());
}

#[test]
fn a_slow_start_is_not_a_request_timeout_and_the_waiting_call_hears_progress() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &["--init-delay-ms", "2500"]);
    alpha["timeout"] = json!(1);
    alpha["startup_timeout"] = json!(20);
    let config = json!({ "expose": "tools", "backends": { "alpha": alpha } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let started = Instant::now();
    let id = gw.request(
        "tools/call",
        json!({ "name": "alpha__echo", "arguments": { "text": "late but fine" },
                "_meta": { "progressToken": "start-1" } }),
    );
    let progress = gw.recv(Duration::from_secs(5));
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    assert_eq!(progress["params"]["progressToken"], "start-1");
    let message = progress["params"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Starting backend 'alpha'"), "{message}");
    let resp = gw.response(&id, T);
    assert_eq!(ok_text(&resp), "late but fine");
    assert!(
        started.elapsed() >= Duration::from_millis(2400),
        "the answer came after the 2.5 s start, past the 1 s request timeout"
    );
}
