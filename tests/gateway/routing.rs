//! Id rewriting: concurrent calls, exact ids, cancellation.

use crate::util::*;
use serde_json::{json, Value};
use std::collections::HashMap;

const CALLS: usize = 100;

/// Sends `CALLS` slow calls in one write, built by `line(id, ms, text)`, and checks that
/// every answer carries its own call's text and that they did not come back in order.
fn concurrent_slow_calls(gw: &mut Gangway, line: impl Fn(&Value, u64, &str) -> String) {
    let mut rng = Rng::new(0x5eed_1234);
    let mut expected: HashMap<i64, String> = HashMap::new();
    let mut sent = Vec::new();
    let mut lines = Vec::new();
    for i in 0..CALLS {
        let id = gw.next_id();
        let ms = rng.below(200);
        let text = format!("call {i} id {id} slept {ms}");
        lines.push(line(&json!(id), ms, &text));
        expected.insert(id, text);
        sent.push(id);
    }
    gw.send_all(&lines);
    let mut order = Vec::new();
    while !expected.is_empty() {
        let resp = gw.recv_until(
            |v| {
                v["id"]
                    .as_i64()
                    .is_some_and(|id| expected.contains_key(&id))
            },
            T,
        );
        let id = resp["id"].as_i64().unwrap();
        let want = expected.remove(&id).unwrap();
        assert_eq!(ok_text(&resp), want, "answer for id {id}: {resp}");
        order.push(id);
    }
    assert_eq!(order.len(), CALLS);
    assert_ne!(
        order, sent,
        "answers came back in the order sent: the calls were not concurrent"
    );
}

#[test]
fn hundred_concurrent_slow_calls_each_get_their_own_answer_tools_mode() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    concurrent_slow_calls(&mut gw, |id, ms, text| {
        Gangway::tool_call_line(id, "alpha__slow", json!({ "ms": ms, "text": text }))
    });
}

#[test]
fn hundred_concurrent_slow_calls_each_get_their_own_answer_use_tool() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    concurrent_slow_calls(&mut gw, |id, ms, text| {
        Gangway::tool_call_line(
            id,
            "use_tool",
            json!({ "backend_server": "alpha", "server_tool": "slow",
                    "tool_arguments": { "ms": ms, "text": text } }),
        )
    });
}

/// Waits for the next message and checks its raw text carries `"id":RAW` exactly.
fn assert_raw_id(gw: &mut Gangway, raw_id: &str, what: &str) -> Value {
    let (line, value) = gw
        .recv_raw(T)
        .unwrap_or_else(|| gw.fail(&format!("no answer for {what} with id {raw_id}")));
    let needle = format!("\"id\":{raw_id}");
    let pos = line
        .find(&needle)
        .unwrap_or_else(|| panic!("{what}: id {raw_id} not returned byte for byte: {line}"));
    let next = line.as_bytes().get(pos + needle.len()).copied();
    assert!(
        matches!(next, Some(b',') | Some(b'}')),
        "{what}: id {raw_id} not returned byte for byte: {line}"
    );
    value
}

#[test]
fn string_and_numeric_ids_come_back_byte_for_byte() {
    let dir = TempDir::new();
    let config = json!({ "expose": "both", "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let ids = [
        r#""abc""#,
        r#""""#,
        "0",
        "-5",
        "12345678901234567890123",
        r#""x\"y\u00e9""#,
    ];
    for raw_id in ids {
        gw.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"ping"}}"#
        ));
        let v = assert_raw_id(&mut gw, raw_id, "ping");
        assert_eq!(v["result"], json!({}));

        gw.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"tools/call","params":{{"name":"alpha__echo","arguments":{{"text":"via tools"}}}}}}"#
        ));
        let v = assert_raw_id(&mut gw, raw_id, "tools/call alpha__echo");
        assert_eq!(ok_text(&v), "via tools");

        gw.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"tools/call","params":{{"name":"use_tool","arguments":{{"backend_server":"alpha","server_tool":"echo","tool_arguments":{{"text":"via use_tool"}}}}}}}}"#
        ));
        let v = assert_raw_id(&mut gw, raw_id, "use_tool echo");
        assert_eq!(ok_text(&v), "via use_tool");

        gw.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{raw_id},"method":"no/such/method"}}"#
        ));
        let v = assert_raw_id(&mut gw, raw_id, "unknown method");
        error_message(&v, -32601);
    }
}

#[test]
fn client_cancel_is_forwarded_with_the_gateway_id_and_suppresses_the_answer() {
    let dir = TempDir::new();
    let record = dir.join("alpha.jsonl");
    let config = json!({ "expose": "tools",
                         "backends": { "alpha": recording_mock("alpha", &record, &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();

    let cancelled_id = json!("to-cancel");
    gw.send_raw(&Gangway::tool_call_line(
        &cancelled_id,
        "alpha__slow",
        json!({ "ms": 400, "text": "must not arrive" }),
    ));
    let forwarded = wait_record(&record, T, |v| {
        v["method"] == "tools/call" && v["params"]["arguments"]["text"] == "must not arrive"
    });
    let gw_id = forwarded["id"].clone();
    assert!(
        gw_id.is_u64(),
        "gangway sends its own numeric ids: {forwarded}"
    );
    assert_eq!(
        forwarded["params"]["name"], "slow",
        "prefix stripped: {forwarded}"
    );

    gw.send(
        &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": { "requestId": cancelled_id, "reason": "user gave up" } }),
    );
    let cancel = wait_record(&record, T, |v| v["method"] == "notifications/cancelled");
    assert_eq!(
        cancel["params"]["requestId"], gw_id,
        "requestId rewritten: {cancel}"
    );
    assert_eq!(cancel["params"]["reason"], "user gave up");

    // A later call that ends after the cancelled one would have: by its answer, any answer
    // for the cancelled id would have arrived.
    let later = gw.call_tool("alpha__slow", json!({ "ms": 800, "text": "later" }));
    assert_eq!(ok_text(&later), "later");
    let leaked: Vec<&String> = gw
        .seen()
        .iter()
        .filter(|l| l.contains(r#""to-cancel""#) || l.contains("must not arrive"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the cancelled request was answered: {leaked:?}"
    );
    // The id can be used again afterwards.
    gw.send_raw(&Gangway::tool_call_line(
        &cancelled_id,
        "alpha__echo",
        json!({ "text": "again" }),
    ));
    assert_eq!(ok_text(&gw.response(&cancelled_id, T)), "again");
}

#[test]
fn cancel_of_a_request_queued_behind_a_start_never_reaches_the_backend() {
    let dir = TempDir::new();
    let record = dir.join("alpha.jsonl");
    let config = json!({ "expose": "tools",
        "backends": { "alpha": recording_mock("alpha", &record, &["--init-delay-ms", "300"]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let id = gw.request_tool("alpha__echo", json!({ "text": "cancelled while queued" }));
    gw.send(
        &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": { "requestId": id } }),
    );
    let later = gw.call_tool("alpha__echo", json!({ "text": "after" }));
    assert_eq!(ok_text(&later), "after");
    let lines = read_json_lines(&record);
    assert!(
        !lines.iter().any(
            |v| v["params"]["arguments"]["text"] == "cancelled while queued"
                || v["method"] == "notifications/cancelled"
        ),
        "the cancelled request reached the backend: {lines:#?}"
    );
    assert!(
        !gw.seen()
            .iter()
            .any(|l| l.contains("cancelled while queued")),
        "the cancelled request was answered"
    );
}
