//! The shell session of `gangway check`, `tools` and `call`: it looks past what a client is
//! offered (every backend, unfiltered tools, fresh lists) and hears failures as JSON-RPC
//! errors; other sessions are served as before.

use super::*;

/// A gateway where `alpha` is in tools mode with `secret` denied, so no meta-tool exists
/// for a client; the harness's own session is a client's, `shell` a shell command's.
fn shell_harness() -> (Harness, SessionId) {
    let mut h = Harness::from_json(
        &json!({"expose": "tools", "backends": {
            "alpha": {"command": "alpha-cmd", "tools": {"deny": ["secret"]}},
            "beta": {"command": "beta-cmd"},
        }})
        .to_string(),
    );
    let shell = h.gw.open_shell_session();
    (h, shell)
}

#[test]
fn a_shell_session_calls_a_filtered_tool_of_a_backend_no_meta_tool_reaches() {
    let (mut h, shell) = shell_harness();
    // A client has no use_tool here, and could not call a filtered tool anyway.
    h.send(use_tool(json!(1), "alpha", "secret", json!({})));
    let refused = h.client_one();
    assert!(
        error_message(&refused, INVALID_PARAMS).contains("Unknown tool: use_tool"),
        "{refused}"
    );
    h.send_as(
        shell,
        use_tool(json!(7), "alpha", "secret", json!({"a": 1})),
    );
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["params"]["name"], "secret");
    assert_eq!(sent[0]["params"]["arguments"], json!({"a": 1}));
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    let out = h.out_of(shell);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["id"], 7);
    assert_eq!(out[0]["result"], json!({"content": []}));
    assert!(h.client_out().is_empty(), "the client hears nothing");
}

#[test]
fn a_shell_session_hears_use_tool_failures_as_errors() {
    let (mut h, shell) = shell_harness();
    h.send_as(shell, use_tool(json!(1), "alpha", "nope", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    let line = format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32602,"message":"Unknown tool: nope"}}}}"#,
        raw_id(&sent[0])
    );
    h.backend(ALPHA, &line);
    let out = h.out_of(shell);
    assert_eq!(error_message(&out[0], -32602), "Unknown tool: nope");

    // A crash is an error too (a client's use_tool gets an isError result).
    h.send_as(shell, use_tool(json!(2), "alpha", "echo", json!({})));
    assert_eq!(h.backend_out(ALPHA).len(), 1);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 5");
    let out = h.out_of(shell);
    let text = error_message(&out[0], BACKEND_ERROR);
    assert!(text.contains("exit status 5"), "{text}");
    // The backend is gone; its stop ladder has nothing left to do.
    h.actions();
}

#[test]
fn a_shell_discover_waits_for_a_fresh_list_with_the_filtered_tools() {
    let (mut h, shell) = shell_harness();
    h.send_as(shell, discover(json!("d"), Some("alpha")));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    // Longer than a client's list waits for a starting backend: a shell command waits on.
    h.advance(ms(aggregate::LIST_WAIT) + 1000);
    assert!(h.out_of(shell).is_empty());
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent[0]["method"], "tools/list", "{sent:#?}");
    h.reply(ALPHA, &sent[0], &tools_page(&["echo", "secret"], None));
    let out = h.out_of(shell);
    let names: Vec<&str> = out[0]["result"]["structuredContent"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo", "secret"]);

    // Asked again, the known list is fetched again rather than served as it was.
    h.send_as(shell, discover(json!("again"), Some("alpha")));
    let sent = h.backend_one(ALPHA, "tools/list");
    assert!(h.out_of(shell).is_empty(), "waits for the fresh list");
    h.reply(ALPHA, &sent, &tools_page(&["echo"], None));
    let out = h.out_of(shell);
    assert_eq!(out[0]["id"], "again");
    assert_eq!(
        out[0]["result"]["structuredContent"]["tools"][0]["name"],
        "echo"
    );
}
