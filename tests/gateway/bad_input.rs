//! Bad input from the client: a specific error each time, and gangway keeps serving.

use crate::util::*;
use serde_json::{json, Value};

/// Sends `line`, expects an error with `code` and a null id, then checks a ping still works.
fn expect_error_then_ping(gw: &mut Gangway, line: &str, code: i64) -> String {
    expect_error_with_id_then_ping(gw, line, code, Value::Null)
}

/// The same, for an invalid message whose id could be read: the error carries that id.
fn expect_error_with_id_then_ping(gw: &mut Gangway, line: &str, code: i64, id: Value) -> String {
    gw.send_raw(line);
    let resp = gw.recv(T);
    assert_eq!(
        resp["id"], id,
        "error for {line:.80} has the wrong id: {resp}"
    );
    assert!(resp.get("result").is_none(), "{resp}");
    let msg = error_message(&resp, code);
    let pong = gw.call("ping", Value::Null);
    assert_eq!(
        pong["result"],
        json!({}),
        "gangway stopped serving after {line:.80}"
    );
    msg
}

#[test]
fn invalid_messages_get_specific_errors_and_gangway_keeps_serving() {
    let dir = TempDir::new();
    let config = json!({ "max_message_bytes": 1024, "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();

    expect_error_then_ping(&mut gw, "this is not json", -32700);
    expect_error_then_ping(&mut gw, r#"{"jsonrpc":"2.0","id":1,"method":"#, -32700);
    let msg = expect_error_then_ping(
        &mut gw,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
        -32600,
    );
    assert!(msg.contains("batch"), "{msg}");
    expect_error_then_ping(
        &mut gw,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        -32600,
    );
    expect_error_then_ping(
        &mut gw,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
        -32600,
    );
    let msg =
        expect_error_with_id_then_ping(&mut gw, r#"{"id":9,"method":"ping"}"#, -32600, json!(9));
    assert!(msg.contains("jsonrpc"), "{msg}");
    expect_error_then_ping(&mut gw, "42", -32600);

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{{"name":"use_tool","arguments":{{"backend_server":"alpha","server_tool":"echo","tool_arguments":{{"text":"{}"}}}}}}}}"#,
        "x".repeat(100 * 1024)
    );
    let msg = expect_error_then_ping(&mut gw, &big, -32600);
    assert!(msg.contains("max_message_bytes"), "{msg}");
    // The oversize line was dropped whole: no part of it was taken as a request.
    let answered_77 = gw.seen().iter().any(|l| l.contains(r#""id":77"#));
    assert!(!answered_77, "a part of the oversize line was served");

    // A valid request for an unknown method gets -32601 with its id.
    let resp = gw.call("no/such/method", Value::Null);
    error_message(&resp, -32601);
    // And the backend still works after all of it.
    let resp = gw.use_tool("alpha", "echo", json!({ "text": "fine" }));
    assert_eq!(ok_text(&resp), "fine");
}

#[test]
fn a_message_just_under_the_limit_is_served() {
    let dir = TempDir::new();
    let config = json!({ "max_message_bytes": 1024, "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let head = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"use_tool","arguments":{"backend_server":"alpha","server_tool":"echo","tool_arguments":{"text":""#;
    let tail = r#""}}}}"#;
    let text = "y".repeat(1000 - head.len() - tail.len());
    gw.send_raw(&format!("{head}{text}{tail}"));
    assert_eq!(ok_text(&gw.response(&json!(5), T)), text);
}
