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
