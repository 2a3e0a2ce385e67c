//! A backend that dies: everything waiting on it is answered, it restarts, and one that
//! keeps crashing is left alone for a while.

use crate::util::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn config(record: &std::path::Path) -> serde_json::Value {
    json!({ "expose": "both", "backends": { "alpha": recording_mock("alpha", record, &[]) } })
}

#[test]
fn crash_answers_every_request_in_flight_and_the_next_call_restarts_it() {
    let dir = TempDir::new();
    let record = dir.join("alpha.jsonl");
    let mut gw = Gangway::start(&dir, &config(&record));
    gw.initialize();
    let old_pid = backend_pid(&mut gw, "alpha__pid");

    let slow: Vec<_> = (0..3)
        .map(|i| {
            gw.request_tool(
                "alpha__slow",
                json!({ "ms": 8000, "text": format!("slow {i}") }),
            )
        })
        .collect();
    let via_use_tool = gw.request_use_tool(
        "alpha",
        "slow",
        json!({ "ms": 8000, "text": "slow use_tool" }),
    );
    // Make sure all of them reached the backend before it dies.
    let arrived = wait_for(T, || {
        read_json_lines(&record)
            .iter()
            .filter(|v| v["params"]["name"] == "slow")
            .count()
            == 4
    });
    assert!(arrived, "the slow calls did not all reach the backend");
    let started = Instant::now();
    let crash = gw.request_tool("alpha__crash", json!({}));

    for id in slow.iter().chain([&crash]) {
        let resp = gw.response(id, Duration::from_secs(5));
        let msg = error_message(&resp, -32000);
        for part in ["alpha", "exit status 3", "mock: crashing on request"] {
            assert!(msg.contains(part), "error for {id} lacks {part:?}: {msg}");
        }
    }
    let resp = gw.response(&via_use_tool, Duration::from_secs(5));
    let text = tool_error_text(&resp);
    for part in ["alpha", "exit status 3", "mock: crashing on request"] {
        assert!(text.contains(part), "use_tool error lacks {part:?}: {text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answers took {:?}: they waited for the slow calls instead of the crash",
        started.elapsed()
    );
    gw.wait_stderr("exited (exit status 3)", T);

    let new_pid = backend_pid(&mut gw, "alpha__pid");
    assert_ne!(old_pid, new_pid, "the backend was not restarted");
    assert_pid_gone(old_pid, T);
    assert_eq!(
        ok_text(&gw.use_tool("alpha", "echo", json!({ "text": "back" }))),
        "back"
    );
}

#[test]
fn three_quick_crashes_stop_restarts_for_thirty_seconds() {
    let dir = TempDir::new();
    let record = dir.join("alpha.jsonl");
    let mut gw = Gangway::start(&dir, &config(&record));
    gw.initialize();
    for i in 0..3 {
        let resp = gw.call_tool("alpha__crash", json!({ "code": 7 }));
        let msg = error_message(&resp, -32000);
        assert!(msg.contains("exit status 7"), "crash {i}: {msg}");
    }
    let started = Instant::now();
    let resp = gw.call_tool("alpha__echo", json!({ "text": "refused" }));
    let msg = error_message(&resp, -32000);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal took {:?}",
        started.elapsed()
    );
    assert!(
        msg.contains("alpha") && msg.contains("not restarting it for 30 s"),
        "{msg}"
    );
    assert!(
        msg.contains("exit status 7"),
        "the last error is quoted: {msg}"
    );

    let resp = gw.use_tool("alpha", "echo", json!({ "text": "refused" }));
    let text = tool_error_text(&resp);
    assert!(text.contains("not restarting it for 30 s"), "{text}");
    // It really was not started again.
    gw.stderr_barrier();
    let starts = gw
        .stderr()
        .iter()
        .filter(|l| l.contains("starting backend"))
        .count();
    assert_eq!(starts, 3, "{:#?}", gw.stderr());
}
