//! Backends reached by URL (Streamable HTTP): a stdio gangway whose backend is another
//! gangway's `serve`, and what the client hears when that server is gone or wants
//! credentials.

use crate::util::*;
use serde_json::json;

#[test]
fn a_stdio_gangway_fronts_a_gangway_serve_by_url() {
    let dir = TempDir::new();
    let inner = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "tools",
        "backends": {"shared": {"url": format!("http://{}/mcp", served.addr)}}});
    let mut gw = Gangway::start(&outer_dir, &outer);
    gw.initialize();
    let names = gw.list_tool_names();
    assert!(names.contains(&"shared__m__echo".to_string()), "{names:?}");
    let resp = gw.call_tool("shared__m__echo", json!({"text": "through two gangways"}));
    assert_eq!(ok_text(&resp), "through two gangways");
    // Several calls in flight at once use several connections.
    let slow: Vec<String> = (0..3)
        .map(|i| {
            Gangway::tool_call_line(
                &json!(format!("slow{i}")),
                "shared__m__slow",
                json!({"ms": 300, "text": format!("s{i}")}),
            )
        })
        .collect();
    gw.send_all(&slow);
    for i in 0..3 {
        let answer = gw.response(&json!(format!("slow{i}")), T);
        assert_eq!(ok_text(&answer), format!("s{i}"));
    }
    served.gw.wait_stderr("HTTP: session", T);
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
    served.gw.wait_stderr("ended", T);
}

#[test]
fn a_server_that_is_gone_or_wants_a_token_gets_a_clear_error() {
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let inner =
        json!({"http": {"tokens": ["t0k"]}, "expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "meta", "backends": {
        "gone": {"url": format!("http://127.0.0.1:{port}/mcp")},
        "locked": {"url": format!("http://{}/mcp", served.addr)}}});
    let mut gw = Gangway::start(&outer_dir, &outer);
    gw.initialize();
    let text_of = |v: &serde_json::Value| {
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let gone = gw.use_tool("gone", "echo", json!({"text": "x"}));
    let text = text_of(&gone);
    assert!(
        text.contains("cannot connect") && text.contains(&port.to_string()),
        "{text}"
    );
    let locked = gw.use_tool("locked", "m__echo", json!({"text": "x"}));
    let text = text_of(&locked);
    assert!(
        text.contains("401") && text.contains("\"headers\""),
        "{text}"
    );
}
