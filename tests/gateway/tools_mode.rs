//! `expose: tools` and `expose: both`: every backend tool as `BACKEND__TOOL`.

use crate::util::*;
use serde_json::{json, Value};

fn config(expose: &str) -> Value {
    json!({ "expose": expose,
            "backends": { "alpha": mock("alpha", &[]), "beta": mock("beta", &["--tools", "2"]) } })
}

fn prefixed(backend: &str, tools: &[&str]) -> Vec<String> {
    tools.iter().map(|t| format!("{backend}__{t}")).collect()
}

#[test]
fn tools_list_prefixes_every_tool_of_every_backend() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &config("tools"));
    gw.initialize();
    let list = gw.call("tools/list", Value::Null);
    let mut expected = prefixed("alpha", &mock_tools_sorted());
    expected.extend(prefixed("beta", &mock_tools_sorted()));
    expected.extend(prefixed("beta", &["t0", "t1"]));
    assert_eq!(tool_names(&list), expected, "{list}");
    // Definitions are passed on: only the name changes.
    let echo = &list["result"]["tools"][2];
    assert_eq!(echo["name"], "alpha__echo");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]), "{echo}");
    assert!(echo["description"]
        .as_str()
        .unwrap()
        .contains("Returns text"));
    assert!(list["result"].get("nextCursor").is_none());
}

#[test]
fn tools_call_routes_prefixed_names_to_their_backend() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &config("tools"));
    gw.initialize();
    let resp = gw.call_tool("beta__echo", json!({ "text": "to beta" }));
    assert_eq!(ok_text(&resp), "to beta");
    let resp = gw.call_tool("beta__t1", json!({ "text": "extra" }));
    assert_eq!(ok_text(&resp), "extra");
    // Each name reaches its own process.
    let a = backend_pid(&mut gw, "alpha__pid");
    let b = backend_pid(&mut gw, "beta__pid");
    assert_ne!(a, b);
    // The meta-tools are not offered in tools mode.
    let resp = gw.call_tool(
        "use_tool",
        json!({ "backend_server": "alpha", "server_tool": "echo" }),
    );
    error_message(&resp, -32602);
}

#[test]
fn unknown_tool_in_tools_mode_is_invalid_params() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &config("tools"));
    gw.initialize();
    let resp = gw.call_tool("nope", json!({}));
    let msg = error_message(&resp, -32602);
    assert!(msg.contains("nope") && msg.contains("alpha, beta"), "{msg}");
    let resp = gw.call_tool("gamma__echo", json!({}));
    error_message(&resp, -32602);
    // Once the list is known, a missing tool of a known backend is refused by gangway.
    gw.call("tools/list", Value::Null);
    let resp = gw.call_tool("alpha__nope", json!({}));
    let msg = error_message(&resp, -32602);
    assert!(msg.contains("nope") && msg.contains("echo"), "{msg}");
    // A tools/call without a name.
    let resp = gw.call("tools/call", json!({ "arguments": {} }));
    error_message(&resp, -32602);
}

#[test]
fn both_mode_lists_meta_tools_and_backend_tools() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &config("both"));
    gw.initialize();
    let list = gw.call("tools/list", Value::Null);
    let mut expected = vec!["use_tool".to_string(), "discover_backend_tools".to_string()];
    expected.extend(prefixed("alpha", &mock_tools_sorted()));
    expected.extend(prefixed("beta", &mock_tools_sorted()));
    expected.extend(prefixed("beta", &["t0", "t1"]));
    assert_eq!(tool_names(&list), expected, "{list}");
    assert_eq!(
        ok_text(&gw.call_tool("alpha__echo", json!({ "text": "a" }))),
        "a"
    );
    assert_eq!(
        ok_text(&gw.use_tool("beta", "echo", json!({ "text": "b" }))),
        "b"
    );
}
