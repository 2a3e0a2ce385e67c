//! Meta mode (the default): the two meta-tools, lazy backends, discovery.

use crate::util::*;
use serde_json::{json, Value};

fn two_backends() -> Value {
    json!({ "backends": { "alpha": mock("alpha", &[]), "beta": mock("beta", &[]) } })
}

#[test]
fn initialize_and_tools_list_start_no_backend() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &two_backends());
    let init = gw.initialize();
    assert_eq!(init["protocolVersion"], "2025-06-18");
    assert_eq!(init["serverInfo"]["name"], "gangway");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    let list = gw.call("tools/list", Value::Null);
    assert_eq!(tool_names(&list).len(), 2);
    let ping = gw.call("ping", Value::Null);
    assert_eq!(ping["result"], json!({}));

    gw.stderr_barrier();
    let stderr = gw.stderr();
    assert!(
        !stderr.iter().any(|l| l.contains("starting backend")),
        "a backend was started before any tool call: {stderr:#?}"
    );
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("mock alpha started") || l.contains("mock beta started")),
        "a mock process ran before any tool call: {stderr:#?}"
    );
}

#[test]
fn meta_tools_list_has_exactly_the_two_meta_tools_with_backend_enum() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &two_backends());
    gw.initialize();
    let list = gw.call("tools/list", Value::Null);
    assert_eq!(
        tool_names(&list),
        ["use_tool", "discover_backend_tools"],
        "{list}"
    );
    for tool in list["result"]["tools"].as_array().unwrap() {
        assert_eq!(
            tool["inputSchema"]["properties"]["backend_server"]["enum"],
            json!(["alpha", "beta"]),
            "{tool}"
        );
    }
    assert_eq!(
        list["result"]["tools"][0]["inputSchema"]["required"],
        json!(["backend_server", "server_tool"])
    );
}

#[test]
fn use_tool_returns_the_backend_result_unchanged() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &two_backends());
    gw.initialize();
    let id = gw.request_use_tool("beta", "echo", json!({ "text": "hi", "structured": true }));
    let (raw, resp) = gw.response_raw(&id, T);
    assert_eq!(
        resp["result"],
        json!({ "content": [{ "type": "text", "text": "hi" }],
                "structuredContent": { "text": "hi" } })
    );
    // Only the id is spliced: the rest is the mock's own bytes, key order included.
    assert_eq!(
        raw,
        format!(
            r#"{{"result":{{"content":[{{"text":"hi","type":"text"}}],"structuredContent":{{"text":"hi"}}}},"jsonrpc":"2.0","id":{id}}}"#
        )
    );
    gw.wait_stderr("starting backend 'beta'", T);
    // A tool-level failure of the backend passes through as its own isError result.
    let fail = gw.use_tool("alpha", "fail", json!({}));
    assert_eq!(tool_error_text(&fail), "mock failure");
}

#[test]
fn discover_backend_tools_for_one_backend_and_for_all() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &two_backends());
    gw.initialize();

    let one = gw.call_tool(
        "discover_backend_tools",
        json!({ "backend_server": "alpha" }),
    );
    assert!(one["result"]["isError"].is_null(), "{one}");
    let body = &one["result"]["structuredContent"];
    let text: Value = serde_json::from_str(&text_of(&one)).unwrap();
    assert_eq!(&text, body, "text content and structuredContent agree");
    let tools = body["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, mock_tools_sorted());
    for t in tools {
        assert_eq!(t["backend"], "alpha");
        assert!(
            t["description"].as_str().unwrap().starts_with("[alpha] "),
            "{t}"
        );
        assert_eq!(t["inputSchema"]["type"], "object");
    }
    let echo = &tools[2];
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]));

    let all = gw.call_tool("discover_backend_tools", json!({}));
    let tools = all["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tools.len(), 2 * MOCK_TOOLS.len(), "{all}");
    for backend in ["alpha", "beta"] {
        let names: Vec<&str> = tools
            .iter()
            .filter(|t| t["backend"] == backend)
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, mock_tools_sorted(), "tools of {backend}");
    }
}

#[test]
fn unknown_backend_is_an_is_error_result_listing_valid_backends() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &two_backends());
    gw.initialize();
    let resp = gw.use_tool("gamma", "echo", json!({ "text": "x" }));
    let text = tool_error_text(&resp);
    assert!(text.contains("gamma"), "{text}");
    assert!(text.contains("alpha, beta"), "{text}");

    let resp = gw.call_tool(
        "discover_backend_tools",
        json!({ "backend_server": "gamma" }),
    );
    let text = tool_error_text(&resp);
    assert!(
        text.contains("gamma") && text.contains("alpha, beta"),
        "{text}"
    );

    // A backend tool name in meta mode is not a tool: a protocol error naming the meta-tools.
    let resp = gw.call_tool("alpha__echo", json!({ "text": "x" }));
    let msg = error_message(&resp, -32602);
    assert!(
        msg.contains("use_tool") && msg.contains("alpha, beta"),
        "{msg}"
    );
}

#[test]
fn discover_all_with_a_broken_backend_lists_the_others_and_the_error() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "broken": { "command": dir.join("no-such-program").to_str().unwrap() } } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let all = gw.call_tool("discover_backend_tools", json!({}));
    assert!(all["result"]["isError"].is_null(), "{all}");
    let body = &all["result"]["structuredContent"];
    assert_eq!(
        body["tools"].as_array().unwrap().len(),
        MOCK_TOOLS.len(),
        "{all}"
    );
    assert_eq!(body["errors"][0]["backend"], "broken", "{all}");
    let error = body["errors"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("could not be started") && error.contains("no-such-program"),
        "{error}"
    );

    let one = gw.call_tool(
        "discover_backend_tools",
        json!({ "backend_server": "broken" }),
    );
    let text = tool_error_text(&one);
    assert!(
        text.contains("broken") && text.contains("no-such-program"),
        "{text}"
    );
    let call = gw.use_tool("broken", "echo", json!({}));
    let text = tool_error_text(&call);
    assert!(text.contains("could not be started"), "{text}");
}
