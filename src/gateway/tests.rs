//! Scenario tests of the sans-IO gateway: events in, bytes and actions out, with a clock the
//! test moves by hand. No processes, no sleeps.
//!
//! Every scenario runs in a [`Harness`]; when it is dropped at the end of a passing test it
//! checks that nothing is still tracked (`in_flight() == 0`), so each scenario also guards
//! the bookkeeping.

use super::backend::ListState;
use super::lifecycle::{Phase, FAILED_PAUSE, STOP_GRACE};
use super::*;
use crate::wire::message::{BACKEND_ERROR, INVALID_PARAMS};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::path::Path;

mod shell;

/// Backend indices: the object form sorts backends by name.
const ALPHA: usize = 0;
const BETA: usize = 1;

/// What the mock backends answer to `initialize`.
const INIT_RESULT: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"mock","version":"1.0"}}"#;

/// A config with two backends, `alpha` (with a description) and `beta`, sharing a request
/// timeout and an idle timeout (seconds; idle 0 means never).
fn config(expose: &str, timeout: f64, idle: f64) -> String {
    json!({
        "expose": expose,
        "backends": {
            "alpha": {"command": "alpha-cmd", "args": ["--stdio"], "description": "Alpha does things",
                      "timeout": timeout, "idle_timeout": idle},
            "beta": {"command": "beta-cmd", "timeout": timeout, "idle_timeout": idle},
        }
    })
    .to_string()
}

/// A `use_tool` call.
fn use_tool(id: Value, backend: &str, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "use_tool",
        "arguments": {"backend_server": backend, "server_tool": tool, "tool_arguments": args}}})
}

/// A `discover_backend_tools` call; `None` asks for every backend.
fn discover(id: Value, backend: Option<&str>) -> Value {
    let args = match backend {
        Some(b) => json!({"backend_server": b}),
        None => json!({}),
    };
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "discover_backend_tools", "arguments": args}})
}

/// A plain `tools/call` (tools mode names).
fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

/// Any request.
fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A `tools/list` result with one simple tool per name.
fn tools_page(names: &[&str], next: Option<&str>) -> String {
    let tools: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "description": format!("The {n} tool"), "inputSchema": {"type": "object"}}))
        .collect();
    let mut page = json!({ "tools": tools });
    if let Some(c) = next {
        page["nextCursor"] = json!(c);
    }
    page.to_string()
}

/// The raw JSON text of a message's id (a gateway id is a plain integer).
fn raw_id(msg: &Value) -> String {
    msg["id"].to_string()
}

/// A duration in whole milliseconds, for `Harness::advance`.
fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("output line is not JSON ({e}): {line}"))
}

fn split_lines(bytes: &[u8]) -> Vec<String> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "output must consist of whole lines: {}",
        String::from_utf8_lossy(bytes)
    );
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8(l.to_vec()).expect("output is UTF-8"))
        .collect()
}

/// The text of an `isError` tool result (asserting that it is one).
fn error_text(msg: &Value) -> String {
    assert_eq!(
        msg["result"]["isError"], true,
        "expected an isError tool result: {msg}"
    );
    msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("isError result without text: {msg}"))
        .to_string()
}

/// The message of a JSON-RPC error (asserting its code).
fn error_message(msg: &Value, code: i64) -> String {
    assert_eq!(msg["error"]["code"], code, "expected error {code}: {msg}");
    msg["error"]["message"]
        .as_str()
        .expect("error message")
        .to_string()
}

/// A gateway, a clock, and helpers to feed events and read what came out.
struct Harness {
    gw: Gateway,
    t0: Instant,
    now: Instant,
    /// Whether dropping the harness checks that nothing is tracked any more.
    check_settled: bool,
    /// The session `client` and `client_lines` speak for (the first one opened).
    s: SessionId,
}

impl Harness {
    fn new(expose: &str) -> Harness {
        Harness::from_json(&config(expose, 5.0, 60.0))
    }

    fn with(expose: &str, timeout: f64, idle: f64) -> Harness {
        Harness::from_json(&config(expose, timeout, idle))
    }

    fn from_json(text: &str) -> Harness {
        let config =
            Config::parse(text, Path::new("test.json"), &|_| None).expect("test config is valid");
        let t0 = Instant::now();
        let mut gw = Gateway::new(&config, t0, 1_700_000_000);
        let s = gw.open_session();
        if gw.backend_count() == 2 {
            assert_eq!(
                gw.backend_config(ALPHA).map(|c| c.name.as_str()),
                Some("alpha")
            );
            assert_eq!(
                gw.backend_config(BETA).map(|c| c.name.as_str()),
                Some("beta")
            );
        }
        Harness {
            gw,
            t0,
            now: t0,
            check_settled: true,
            s,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// A raw line from the client.
    fn client(&mut self, line: &str) {
        self.client_as(self.s, line);
    }

    /// A raw line from the client of session `s`.
    fn client_as(&mut self, s: SessionId, line: &str) {
        self.gw.on_client_line(self.now, s, line.as_bytes());
    }

    /// A JSON message from the client of session `s`.
    fn send_as(&mut self, s: SessionId, msg: Value) {
        self.client_as(s, &msg.to_string());
    }

    /// Drains session `s`'s output, parsed.
    fn out_of(&mut self, s: SessionId) -> Vec<Value> {
        let Some(q) = self.gw.session_out(s) else {
            return Vec::new();
        };
        let bytes = q.pending().to_vec();
        q.consume(bytes.len());
        split_lines(&bytes).iter().map(|l| parse(l)).collect()
    }

    /// A JSON message from the client.
    fn send(&mut self, msg: Value) {
        self.client(&msg.to_string());
    }

    /// A raw line from backend `b`.
    fn backend(&mut self, b: usize, line: &str) {
        self.gw.on_backend_line(self.now, b, line.as_bytes());
    }

    /// Backend `b` answers `req` with `result` (raw JSON).
    fn reply(&mut self, b: usize, req: &Value, result: &str) {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
            raw_id(req)
        );
        self.backend(b, &line);
    }

    /// Drains the client's output as raw lines.
    fn client_lines(&mut self) -> Vec<String> {
        let Some(q) = self.gw.session_out(self.s) else {
            return Vec::new();
        };
        let bytes = q.pending().to_vec();
        q.consume(bytes.len());
        split_lines(&bytes)
    }

    /// Drains the client's output, parsed.
    fn client_out(&mut self) -> Vec<Value> {
        self.client_lines().iter().map(|l| parse(l)).collect()
    }

    /// Drains the client's output, asserting it is exactly one message.
    fn client_one(&mut self) -> Value {
        let mut out = self.client_out();
        assert_eq!(
            out.len(),
            1,
            "expected one message to the client, got {out:#?}"
        );
        out.remove(0)
    }

    /// Drains backend `b`'s input as raw lines.
    fn backend_lines(&mut self, b: usize) -> Vec<String> {
        let bytes = self.gw.out.backends[b].pending().to_vec();
        self.gw.out.backends[b].consume(bytes.len());
        split_lines(&bytes)
    }

    /// Drains backend `b`'s input, parsed.
    fn backend_out(&mut self, b: usize) -> Vec<Value> {
        self.backend_lines(b).iter().map(|l| parse(l)).collect()
    }

    /// Drains backend `b`'s input, asserting it is exactly one message with `method`.
    fn backend_one(&mut self, b: usize, method: &str) -> Value {
        let msg = self.backend_one_any(b);
        assert_eq!(msg["method"], method, "{msg}");
        msg
    }

    /// Drains backend `b`'s input, asserting it is exactly one message.
    fn backend_one_any(&mut self, b: usize) -> Value {
        let mut out = self.backend_out(b);
        assert_eq!(
            out.len(),
            1,
            "expected one message to backend {b}, got {out:#?}"
        );
        out.remove(0)
    }

    fn actions(&mut self) -> Vec<Action> {
        self.gw.take_actions()
    }

    /// Moves the clock on and fires what is due.
    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.gw.on_timer(self.now);
    }

    /// The client's `initialize` with the given version and capabilities; returns the result.
    fn initialize(&mut self, version: &str, caps: Value) -> Value {
        self.send(request(
            json!(0),
            "initialize",
            json!({"protocolVersion": version, "capabilities": caps,
                   "clientInfo": {"name": "test-client", "version": "9.9"}}),
        ));
        let msg = self.client_one();
        assert_eq!(msg["id"], 0);
        msg["result"].clone()
    }

    /// Answers the `initialize` backend `b` was sent (asserting it was sent nothing else),
    /// and returns the raw lines it was sent next, after `notifications/initialized`.
    fn finish_init_lines(&mut self, b: usize) -> Vec<String> {
        let out = self.backend_out(b);
        assert_eq!(
            out.len(),
            1,
            "before answering initialize, backend {b} must be sent only initialize: {out:#?}"
        );
        assert_eq!(out[0]["method"], "initialize", "{out:#?}");
        self.reply(b, &out[0], INIT_RESULT);
        let mut after = self.backend_lines(b);
        assert!(
            !after.is_empty()
                && parse(&after[0])
                    == json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            "backend {b} must be sent notifications/initialized first: {after:#?}"
        );
        after.remove(0);
        after
    }

    /// As `finish_init_lines`, parsed.
    fn finish_init(&mut self, b: usize) -> Vec<Value> {
        self.finish_init_lines(b).iter().map(|l| parse(l)).collect()
    }

    /// Starts backend `b` with one call and answers it, leaving it Ready and idle.
    fn warm(&mut self, b: usize) {
        let name = self.gw.backends[b].name().to_string();
        let msg = if self.gw.expose == Expose::Tools {
            call(json!("warm"), &format!("{name}__echo"), json!({}))
        } else {
            use_tool(json!("warm"), &name, "echo", json!({}))
        };
        self.send(msg);
        assert_eq!(self.actions(), vec![Action::Spawn(b)]);
        let sent = self.finish_init(b);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        self.reply(b, &sent[0], r#"{"content":[]}"#);
        assert_eq!(self.client_one()["id"], "warm");
    }

    /// The client's first request, a 2026-07-28 `tools/call` of `alpha__echo` (id 1),
    /// starts alpha; returns the call as alpha got it.
    fn first_modern_call(&mut self) -> Value {
        self.send(modern_call(json!(1), "alpha__echo", json!({})));
        assert_eq!(self.actions(), vec![Action::Spawn(ALPHA)]);
        self.finish_init(ALPHA).remove(0)
    }

    /// Backend `b` sends `line`, a request to the client during a 2026-07-28 client's
    /// call, which is answered with an `InputRequiredResult`; returns its `requestState`.
    fn asked(&mut self, b: usize, line: &str) -> String {
        self.backend(b, line);
        let answer = self.client_one();
        assert_eq!(answer["result"]["resultType"], "input_required", "{answer}");
        answer["result"]["requestState"]
            .as_str()
            .expect("a requestState")
            .to_string()
    }

    /// A ping must still be answered.
    fn assert_serving(&mut self) {
        self.client(r#"{"jsonrpc":"2.0","id":"still-there","method":"ping"}"#);
        assert_eq!(
            self.client_lines(),
            vec![r#"{"jsonrpc":"2.0","id":"still-there","result":{}}"#.to_string()]
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.check_settled && !std::thread::panicking() {
            assert_eq!(
                self.gw.in_flight(),
                0,
                "requests still tracked at the end: {:#?}",
                self.gw.ids
            );
            for be in &self.gw.backends {
                assert_eq!(
                    be.in_flight(),
                    0,
                    "backend '{}' still counts requests",
                    be.name()
                );
            }
        }
    }
}

// ----- initialize and gangway's own methods ------------------------------------------------

#[test]
fn initialize_is_answered_at_once_without_starting_a_backend() {
    let mut h = Harness::new("meta");
    let result = h.initialize("2025-06-18", json!({}));
    assert_eq!(result["protocolVersion"], "2025-06-18");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(
        result["serverInfo"],
        json!({"name": "gangway", "version": env!("CARGO_PKG_VERSION")})
    );
    assert!(
        h.actions().is_empty(),
        "no backend is spawned for initialize"
    );
    assert!(h.backend_out(ALPHA).is_empty() && h.backend_out(BETA).is_empty());
    assert_eq!(h.gw.next_deadline(), None);
}

#[test]
fn initialize_echoes_every_supported_protocol_version() {
    for v in SUPPORTED_PROTOCOL_VERSIONS {
        let mut h = Harness::new("meta");
        assert_eq!(h.initialize(v, json!({}))["protocolVersion"], v);
    }
}

#[test]
fn initialize_with_unknown_version_offers_the_newest() {
    let mut h = Harness::new("meta");
    assert_eq!(
        h.initialize("1999-01-01", json!({}))["protocolVersion"],
        "2025-11-25"
    );
    let mut h = Harness::new("meta");
    h.client(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
    assert_eq!(h.client_one()["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn initialize_instructions_list_backends_and_descriptions() {
    let mut h = Harness::new("meta");
    let result = h.initialize("2025-11-25", json!({}));
    let text = result["instructions"].as_str().expect("instructions");
    assert!(text.contains("2 MCP server"), "{text}");
    assert!(
        text.contains("- alpha (through use_tool): Alpha does things"),
        "{text}"
    );
    assert!(
        text.contains("- beta (through use_tool): (no description)"),
        "{text}"
    );
    assert!(
        text.contains("use_tool") && text.contains("discover_backend_tools"),
        "{text}"
    );
}

#[test]
fn server_discover_is_method_not_found() {
    let mut h = Harness::new("meta");
    h.send(request(json!(4), "server/discover", json!({})));
    let msg = h.client_one();
    assert_eq!(msg["id"], 4);
    assert!(error_message(&msg, -32601).contains("server/discover"));
    assert!(h.actions().is_empty());
}

#[test]
fn ping_is_answered_without_a_backend() {
    let mut h = Harness::new("meta");
    h.client(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#);
    assert_eq!(
        h.client_lines(),
        vec![r#"{"jsonrpc":"2.0","id":7,"result":{}}"#]
    );
    assert!(h.actions().is_empty());
}

#[test]
fn unknown_method_is_method_not_found() {
    let mut h = Harness::new("meta");
    h.send(request(json!("r"), "sampling/createMessage", json!({})));
    let msg = h.client_one();
    assert_eq!(msg["id"], "r");
    assert!(error_message(&msg, -32601).contains("sampling/createMessage"));
    h.assert_serving();
}

// ----- bad input ---------------------------------------------------------------------------

#[test]
fn not_json_is_parse_error_with_null_id() {
    let mut h = Harness::new("meta");
    h.client("this is not json");
    let msg = h.client_one();
    assert_eq!(msg["id"], Value::Null);
    assert!(
        msg.as_object().unwrap().contains_key("id"),
        "id must be present as null"
    );
    error_message(&msg, -32700);
    h.assert_serving();
}

#[test]
fn batch_is_invalid_request() {
    let mut h = Harness::new("meta");
    h.client(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
    );
    let msg = h.client_one();
    assert_eq!(msg["id"], Value::Null);
    assert!(error_message(&msg, -32600).contains("batch"));
    h.assert_serving();
}

#[test]
fn missing_jsonrpc_is_invalid_request_with_the_id_echoed() {
    let mut h = Harness::new("meta");
    h.client(r#"{"id":"x1","method":"ping"}"#);
    let lines = h.client_lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains(r#""id":"x1""#), "{}", lines[0]);
    assert!(error_message(&parse(&lines[0]), -32600).contains("jsonrpc"));
    h.client(r#"{"jsonrpc":"2.0","id":12345678901234567890123,"result":1,"error":{}}"#);
    let lines = h.client_lines();
    assert!(
        lines[0].contains(r#""id":12345678901234567890123,"#),
        "{}",
        lines[0]
    );
    h.assert_serving();
}

#[test]
fn null_float_and_bool_ids_are_invalid_requests() {
    let mut h = Harness::new("meta");
    for id in ["null", "1.5", "1e3", "true", "false", "[1]", "{}"] {
        h.client(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        let msg = h.client_one();
        assert_eq!(msg["id"], Value::Null, "id {id}");
        assert!(error_message(&msg, -32600).contains("id"), "id {id}");
    }
    assert!(h.actions().is_empty());
    h.assert_serving();
}

#[test]
fn oversize_client_line_gets_an_error_and_serving_goes_on() {
    let mut h = Harness::new("meta");
    h.gw.on_client_oversize(h.s, 20_000_000, 16_777_216);
    let msg = h.client_one();
    assert_eq!(msg["id"], Value::Null);
    let text = error_message(&msg, -32600);
    assert!(
        text.contains("20000000") && text.contains("max_message_bytes"),
        "{text}"
    );
    h.assert_serving();
}

#[test]
fn blank_lines_are_ignored() {
    let mut h = Harness::new("meta");
    h.client("");
    h.client("  \t\r");
    assert!(h.client_lines().is_empty());
    h.assert_serving();
}

// ----- meta mode -----------------------------------------------------------------------------

#[test]
fn meta_tools_list_offers_use_tool_and_discover_with_backend_enum() {
    let mut h = Harness::new("meta");
    h.send(request(json!(1), "tools/list", json!({})));
    let msg = h.client_one();
    let tools = msg["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["use_tool", "discover_backend_tools"]);
    for t in tools {
        assert_eq!(
            t["inputSchema"]["properties"]["backend_server"]["enum"],
            json!(["alpha", "beta"])
        );
    }
    assert!(h.actions().is_empty(), "meta tools/list starts nothing");
}

#[test]
fn meta_tools_list_refuses_a_cursor() {
    let mut h = Harness::new("meta");
    h.send(request(json!(1), "tools/list", json!({"cursor": "x"})));
    error_message(&h.client_one(), -32602);
}

#[test]
fn use_tool_unknown_backend_is_an_error_result_listing_backends() {
    let mut h = Harness::new("meta");
    h.send(use_tool(json!(1), "gamma", "echo", json!({})));
    let msg = h.client_one();
    assert_eq!(msg["id"], 1);
    let text = error_text(&msg);
    assert!(
        text.contains("gamma") && text.contains("Available servers: alpha, beta"),
        "{text}"
    );
    assert!(h.actions().is_empty());
}

#[test]
fn a_backend_gangway_disabled_is_named_with_its_reason() {
    let mut h = Harness::from_json(
        r#"{"backends": {"alpha": {"command": "a"},
                         "needs": {"command": "n", "env": {"T": "${UNSET_IN_TEST}"}}}}"#,
    );
    let result = h.initialize("2025-11-25", json!({}));
    let text = result["instructions"].as_str().expect("instructions");
    assert!(
        text.contains("- needs (disabled): ${UNSET_IN_TEST} (in backends.needs.env.T) is not set"),
        "{text}"
    );
    h.send(use_tool(json!(1), "needs", "echo", json!({})));
    let text = error_text(&h.client_one());
    assert!(
        text.starts_with("Error: backend server needs is disabled: ${UNSET_IN_TEST}")
            && text.ends_with("Available servers: alpha"),
        "{text}"
    );
    h.send(discover(json!(2), Some("needs")));
    assert!(error_text(&h.client_one()).contains("needs is disabled"));
    assert!(h.actions().is_empty(), "nothing is started for it");
}

#[test]
fn use_tool_missing_backend_server_is_an_error_result_listing_backends() {
    let mut h = Harness::new("meta");
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "use_tool", "arguments": {"server_tool": "echo"}}}));
    let text = error_text(&h.client_one());
    assert!(
        text.contains("backend_server") && text.contains("alpha, beta"),
        "{text}"
    );
    h.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "use_tool"}}),
    );
    let text = error_text(&h.client_one());
    assert!(
        text.contains("backend_server") && text.contains("alpha, beta"),
        "{text}"
    );
    assert!(h.actions().is_empty());
}

#[test]
fn use_tool_missing_server_tool_is_an_error_result_pointing_to_discovery() {
    let mut h = Harness::new("meta");
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "use_tool", "arguments": {"backend_server": "alpha"}}}));
    let text = error_text(&h.client_one());
    assert!(text.contains("server_tool"), "{text}");
    assert!(
        text.contains("discover_backend_tools") && text.contains("alpha"),
        "{text}"
    );
    assert!(h.actions().is_empty());
}

#[test]
fn meta_mode_unknown_tool_is_invalid_params() {
    let mut h = Harness::new("meta");
    h.send(call(json!(1), "alpha__echo", json!({})));
    let text = error_message(&h.client_one(), -32602);
    assert!(
        text.contains("use_tool") && text.contains("alpha, beta"),
        "{text}"
    );
    assert!(h.actions().is_empty());
}

#[test]
fn use_tool_spawns_and_sends_only_initialize_with_the_clients_parameters() {
    let mut h = Harness::new("meta");
    h.initialize(
        "2025-06-18",
        json!({"roots": {"listChanged": true}, "sampling": {}}),
    );
    h.send(use_tool(json!(1), "alpha", "echo", json!({"text": "hi"})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    assert!(
        h.client_lines().is_empty(),
        "the client waits for the backend"
    );
    let out = h.backend_out(ALPHA);
    assert_eq!(
        out.len(),
        1,
        "only initialize before the backend answers: {out:#?}"
    );
    assert_eq!(out[0]["method"], "initialize");
    assert!(out[0]["id"].is_u64());
    assert_eq!(
        out[0]["params"],
        json!({"protocolVersion": "2025-06-18",
               "capabilities": {"roots": {"listChanged": true}, "sampling": {}},
               "clientInfo": {"name": "test-client", "version": "9.9"}})
    );
    assert!(h.backend_out(BETA).is_empty());
    // A second call while it starts is queued too: still nothing but initialize.
    h.send(use_tool(json!(2), "alpha", "echo", json!({})));
    assert!(h.actions().is_empty(), "one spawn only");
    assert!(h.backend_out(ALPHA).is_empty());
    h.backend(
        ALPHA,
        &format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
            out[0]["id"]
        ),
    );
    let after = h.backend_out(ALPHA);
    assert_eq!(after.len(), 3, "{after:#?}");
    assert_eq!(after[0]["method"], "notifications/initialized");
    for req in &after[1..] {
        h.reply(ALPHA, req, r#"{"content":[]}"#);
    }
    let ids: Vec<Value> = h.client_out().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, [json!(1), json!(2)]);
}

#[test]
fn use_tool_after_initialized_sends_tools_call_with_gateway_id_name_arguments_and_meta() {
    let mut h = Harness::new("meta");
    let mut msg = use_tool(
        json!(1),
        "alpha",
        "echo",
        json!({"text": "hi", "n": [1, 2]}),
    );
    msg["params"]["_meta"] = json!({"progressToken": "pt-1"});
    h.send(msg);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let req = &sent[0];
    assert_eq!(req["method"], "tools/call");
    assert!(req["id"].is_u64(), "a gateway id: {req}");
    assert_eq!(
        req["params"],
        json!({"name": "echo", "arguments": {"text": "hi", "n": [1, 2]}, "_meta": {"progressToken": "pt-1"}})
    );
    h.reply(ALPHA, req, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
}

/// A backend answer with odd spacing and escapes, and `$ID` for its id.
const ODD_ANSWER: &str = r#"{"result": {"content":[{"type":"text","text":"caf\u00e9 \u2615 \"q\""}],"structuredContent":{"n":1.50,"big":123456789012345678901234567890}}, "jsonrpc":"2.0",  "id":$ID }"#;

#[test]
fn use_tool_answer_keeps_a_string_id_and_the_result_byte_for_byte() {
    let mut h = Harness::new("meta");
    h.client(r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"use_tool","arguments":{"backend_server":"alpha","server_tool":"echo"}}}"#);
    let sent = h.finish_init(ALPHA);
    assert_eq!(
        sent[0]["params"]["arguments"],
        json!({}),
        "missing tool_arguments become {{}}"
    );
    let gw = raw_id(&sent[0]);
    assert_ne!(gw, "\"abc\"");
    h.backend(ALPHA, &ODD_ANSWER.replace("$ID", &gw));
    assert_eq!(h.client_lines(), vec![ODD_ANSWER.replace("$ID", "\"abc\"")]);
}

#[test]
fn use_tool_answer_keeps_a_big_number_id_byte_for_byte() {
    let mut h = Harness::new("meta");
    h.client(r#"{"jsonrpc":"2.0","id":12345678901234567890,"method":"tools/call","params":{"name":"use_tool","arguments":{"backend_server":"beta","server_tool":"echo","tool_arguments":{}}}}"#);
    assert_eq!(h.actions(), vec![Action::Spawn(BETA)]);
    let sent = h.finish_init(BETA);
    let gw = raw_id(&sent[0]);
    assert_ne!(gw, "12345678901234567890");
    h.backend(BETA, &ODD_ANSWER.replace("$ID", &gw));
    assert_eq!(
        h.client_lines(),
        vec![ODD_ANSWER.replace("$ID", "12345678901234567890")]
    );
}

#[test]
fn use_tool_backend_error_becomes_an_is_error_result() {
    let mut h = Harness::new("meta");
    h.send(use_tool(json!(5), "alpha", "explode", json!({})));
    let sent = h.finish_init(ALPHA);
    h.backend(
        ALPHA,
        &format!(r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32602,"message":"no such tool: explode"}}}}"#, raw_id(&sent[0])),
    );
    let msg = h.client_one();
    assert_eq!(msg["id"], 5);
    assert!(
        msg.get("error").is_none(),
        "a tool result, not a JSON-RPC error: {msg}"
    );
    let text = error_text(&msg);
    assert!(
        text.contains("alpha") && text.contains("no such tool: explode"),
        "{text}"
    );
}

#[test]
fn use_tool_with_non_object_arguments_is_an_error_result() {
    let mut h = Harness::new("meta");
    h.send(use_tool(json!(5), "alpha", "echo", json!([1, 2])));
    assert!(error_text(&h.client_one()).contains("tool_arguments"));
    assert!(h.actions().is_empty());
}

// ----- discover_backend_tools ------------------------------------------------------------------

/// The parsed `{"tools": [...]}` of a discover answer, checking the text and structured forms agree.
fn discovered(msg: &Value) -> Value {
    let result = &msg["result"];
    assert!(result.get("isError").is_none(), "{msg}");
    let text: Value =
        serde_json::from_str(result["content"][0]["text"].as_str().expect("text content"))
            .expect("text content is JSON");
    assert_eq!(result["content"][0]["type"], "text");
    assert_eq!(text, result["structuredContent"]);
    text
}

#[test]
fn discover_one_backend_lists_its_tools() {
    let mut h = Harness::new("meta");
    h.send(discover(json!(3), Some("alpha")));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["method"], "tools/list");
    assert!(
        sent[0].get("params").is_none(),
        "first page has no cursor: {}",
        sent[0]
    );
    h.reply(
        ALPHA,
        &sent[0],
        r#"{"tools":[{"name":"echo","description":"Echo it","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}},{"name":"bare"}]}"#,
    );
    let msg = h.client_one();
    assert_eq!(msg["id"], 3);
    let body = discovered(&msg);
    assert_eq!(body["tools"][0]["name"], "bare", "sorted by name");
    assert_eq!(
        body["tools"][1],
        json!({"name": "echo", "description": "[alpha] Echo it", "backend": "alpha",
               "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
    );
    assert_eq!(body["tools"][0]["description"], "[alpha] No description");
    assert!(h.backend_out(BETA).is_empty());
    // The list is remembered: a second discover asks nobody.
    h.send(discover(json!(4), Some("alpha")));
    assert_eq!(
        discovered(&h.client_one())["tools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(h.backend_out(ALPHA).is_empty());
}

#[test]
fn discover_all_backends_lists_every_backend() {
    let mut h = Harness::new("meta");
    h.send(discover(json!("all"), None));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA), Action::Spawn(BETA)]);
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(BETA, &b[0], &tools_page(&["fetch"], None));
    assert!(h.client_lines().is_empty(), "waits for every backend");
    h.reply(ALPHA, &a[0], &tools_page(&["echo", "add"], None));
    let body = discovered(&h.client_one());
    let got: Vec<(String, String, String)> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["backend"].as_str().unwrap().to_string(),
                t["name"].as_str().unwrap().to_string(),
                t["description"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Backends in config order, each one's tools sorted by name.
    let want = [
        ("alpha", "add", "[alpha] The add tool"),
        ("alpha", "echo", "[alpha] The echo tool"),
        ("beta", "fetch", "[beta] The fetch tool"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn discover_follows_next_cursor_to_the_last_page() {
    let mut h = Harness::new("meta");
    h.send(discover(json!(1), Some("alpha")));
    let sent = h.finish_init(ALPHA);
    h.reply(ALPHA, &sent[0], &tools_page(&["one"], Some("page-2")));
    let req = h.backend_one(ALPHA, "tools/list");
    assert_eq!(req["params"], json!({"cursor": "page-2"}));
    h.reply(ALPHA, &req, &tools_page(&["two"], Some("page \"3\"")));
    let req = h.backend_one(ALPHA, "tools/list");
    assert_eq!(req["params"], json!({"cursor": "page \"3\""}));
    assert!(
        h.client_lines().is_empty(),
        "no answer before the last page"
    );
    h.reply(ALPHA, &req, &tools_page(&["three"], None));
    let body = discovered(&h.client_one());
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "three", "two"], "every page, sorted by name");
}

#[test]
fn discover_unknown_backend_is_an_error_result() {
    let mut h = Harness::new("meta");
    h.send(discover(json!(1), Some("gamma")));
    let text = error_text(&h.client_one());
    assert!(
        text.contains("gamma") && text.contains("alpha, beta"),
        "{text}"
    );
    assert!(h.actions().is_empty());
}

// ----- tools mode ------------------------------------------------------------------------------

#[test]
fn tools_mode_list_starts_all_backends_and_prefixes_names() {
    let mut h = Harness::new("tools");
    h.send(request(json!(1), "tools/list", json!({})));
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA), Action::Spawn(BETA)],
        "every backend is started at once"
    );
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    assert_eq!(a[0]["method"], "tools/list");
    assert_eq!(b[0]["method"], "tools/list");
    // Odd spacing and extra fields must come through untouched; only the name changes.
    h.reply(
        ALPHA,
        &a[0],
        r#"{"tools":[{ "name" : "echo", "inputSchema":{"type":"object", "properties":{}},"x-extra":[1,2.50]}]}"#,
    );
    assert!(h.client_lines().is_empty());
    h.reply(BETA, &b[0], r#"{"tools":[{"inputSchema":{"type":"object"},"name":"fetch","annotations":{"readOnlyHint":true}}]}"#);
    let lines = h.client_lines();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(r#"{ "name" : "alpha__echo", "inputSchema":{"type":"object", "properties":{}},"x-extra":[1,2.50]}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(r#"{"inputSchema":{"type":"object"},"name":"beta__fetch","annotations":{"readOnlyHint":true}}"#),
        "{}",
        lines[0]
    );
    let msg = parse(&lines[0]);
    assert_eq!(msg["id"], 1);
    let names: Vec<&str> = msg["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha__echo", "beta__fetch"]);
}

#[test]
fn tools_mode_list_leaves_out_a_backend_that_exits_during_start() {
    let mut h = Harness::new("tools");
    h.send(request(json!(1), "tools/list", json!({})));
    assert_eq!(h.actions().len(), 2);
    let a = h.finish_init(ALPHA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    assert!(h.client_lines().is_empty());
    h.gw.on_backend_exit(h.now, BETA, "exit status 1");
    let msg = h.client_one();
    let names: Vec<&str> = msg["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha__echo"]);
}

#[test]
fn tools_mode_call_reaches_the_backend_as_its_own_tool_with_the_id_rewritten() {
    let mut h = Harness::new("tools");
    let line = r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"_meta":{"progressToken":7},"name":"alpha__echo","arguments":{"text":"h\u00e9"}}}"#;
    h.client(line);
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init_lines(ALPHA);
    assert_eq!(sent.len(), 1);
    let gw = raw_id(&parse(&sent[0]));
    assert_ne!(gw, "\"c-1\"");
    let want = line.replace(r#""c-1""#, &gw).replace("alpha__echo", "echo");
    assert_eq!(sent[0], want, "only the id and the name bytes change");
    h.backend(ALPHA, &ODD_ANSWER.replace("$ID", &gw));
    assert_eq!(h.client_lines(), vec![ODD_ANSWER.replace("$ID", "\"c-1\"")]);
}

#[test]
fn tools_mode_unknown_tool_is_invalid_params() {
    let mut h = Harness::new("tools");
    for name in ["gamma__echo", "echo", "alpha__", "use_tool"] {
        h.send(call(json!(1), name, json!({})));
        let text = error_message(&h.client_one(), -32602);
        assert!(text.contains("alpha, beta"), "{name}: {text}");
    }
    assert!(h.actions().is_empty());
    // Once alpha's list is known, a tool it does not have is refused without a round trip.
    h.send(request(json!(2), "tools/list", json!({})));
    h.actions();
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&[], None));
    h.client_out();
    h.send(call(json!(3), "alpha__nope", json!({})));
    let text = error_message(&h.client_one(), -32602);
    assert!(text.contains("nope") && text.contains("echo"), "{text}");
    assert!(h.backend_out(ALPHA).is_empty());
}

#[test]
fn both_mode_lists_meta_tools_and_prefixed_tools() {
    let mut h = Harness::new("both");
    h.send(request(json!(1), "tools/list", json!({})));
    assert_eq!(h.actions().len(), 2);
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&["fetch", "get"], None));
    let msg = h.client_one();
    let names: Vec<&str> = msg["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "use_tool",
            "discover_backend_tools",
            "alpha__echo",
            "beta__fetch",
            "beta__get"
        ]
    );
    // Both routes reach the backend.
    h.send(call(json!(2), "alpha__echo", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    assert_eq!(req["params"]["name"], "echo");
    h.reply(ALPHA, &req, "{}");
    h.send(use_tool(json!(3), "alpha", "echo", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.reply(ALPHA, &req, "{}");
    let ids: Vec<Value> = h.client_out().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, [json!(2), json!(3)]);
}

// ----- id rewriting ------------------------------------------------------------------------------

#[test]
fn hundred_concurrent_calls_answered_out_of_order_reach_their_callers() {
    let mut h = Harness::new("tools");
    let client_id = |n: u64| {
        if n % 2 == 0 {
            json!(format!("s{n}"))
        } else {
            json!(n)
        }
    };
    for n in 0..100u64 {
        h.send(call(client_id(n), "alpha__echo", json!({"n": n})));
    }
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 100);
    let mut gw_ids: Vec<u64> = sent
        .iter()
        .map(|r| r["id"].as_u64().expect("gateway id"))
        .collect();
    gw_ids.sort_unstable();
    gw_ids.dedup();
    assert_eq!(gw_ids.len(), 100, "gateway ids are unique");
    // Reverse order, interleaving the two halves.
    let mut order: Vec<&Value> = Vec::new();
    for i in (0..50).rev() {
        order.push(&sent[i + 50]);
        order.push(&sent[i]);
    }
    for req in order {
        let n = req["params"]["arguments"]["n"].as_u64().unwrap();
        h.reply(
            ALPHA,
            req,
            &format!(r#"{{"content":[{{"type":"text","text":"n={n}"}}]}}"#),
        );
    }
    let out = h.client_out();
    assert_eq!(out.len(), 100);
    for msg in &out {
        let text = msg["result"]["content"][0]["text"].as_str().unwrap();
        let n: u64 = text.strip_prefix("n=").unwrap().parse().unwrap();
        assert_eq!(
            msg["id"],
            client_id(n),
            "answer for n={n} went to the wrong id"
        );
    }
}

#[test]
fn duplicate_in_flight_client_id_is_invalid_request() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!(5), "alpha__echo", json!({"first": true})));
    let first = h.backend_one(ALPHA, "tools/call");
    h.send(call(json!(5), "alpha__echo", json!({"second": true})));
    let msg = h.client_one();
    assert_eq!(msg["id"], 5);
    error_message(&msg, -32600);
    assert!(
        h.backend_out(ALPHA).is_empty(),
        "the duplicate is not forwarded"
    );
    h.reply(ALPHA, &first, r#"{"which":"first"}"#);
    assert_eq!(h.client_one()["result"]["which"], "first");
    // Once answered, the id may be used again.
    h.send(call(json!(5), "alpha__echo", json!({})));
    let again = h.backend_one(ALPHA, "tools/call");
    h.reply(ALPHA, &again, "{}");
    assert_eq!(h.client_one()["id"], 5);
}

#[test]
fn answer_from_the_wrong_backend_or_unknown_id_is_dropped() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    h.send(call(json!(1), "alpha__echo", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.reply(BETA, &req, r#"{"from":"beta"}"#);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":999999,"result":{}}"#);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":"1","result":{}}"#);
    h.backend(ALPHA, "garbage from a backend");
    assert!(h.client_lines().is_empty());
    h.reply(ALPHA, &req, r#"{"from":"alpha"}"#);
    assert_eq!(h.client_one()["result"]["from"], "alpha");
}

// ----- timeouts ----------------------------------------------------------------------------------

#[test]
fn unanswered_call_times_out_cancels_at_the_backend_and_drops_the_late_answer() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!("t"), "alpha__slow", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.advance(4_999);
    assert!(h.client_lines().is_empty(), "not before the 5 s timeout");
    h.advance(1);
    let msg = h.client_one();
    assert_eq!(msg["id"], "t");
    let text = error_message(&msg, -32001);
    assert!(text.contains("alpha") && text.contains("timeout"), "{text}");
    let cancel = h.backend_one(ALPHA, "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], req["id"]);
    assert!(cancel.get("id").is_none());
    h.reply(ALPHA, &req, "{}");
    assert!(h.client_lines().is_empty(), "the late answer is dropped");
    h.assert_serving();
}

#[test]
fn use_tool_timeout_is_an_is_error_result() {
    let mut h = Harness::new("meta");
    h.warm(BETA);
    h.send(use_tool(json!(9), "beta", "slow", json!({})));
    let req = h.backend_one(BETA, "tools/call");
    h.advance(5_000);
    let msg = h.client_one();
    assert_eq!(msg["id"], 9);
    let text = error_text(&msg);
    assert!(
        text.contains("timed out") && text.contains("beta"),
        "{text}"
    );
    assert_eq!(
        h.backend_one(BETA, "notifications/cancelled")["params"]["requestId"],
        req["id"]
    );
    h.reply(BETA, &req, "{}");
    assert!(h.client_lines().is_empty());
}

#[test]
fn backend_that_never_answers_initialize_fails_the_queued_request() {
    let mut h = Harness::new("tools");
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.gw.on_backend_stderr(ALPHA, b"waiting for a license key\n");
    // The request timeout (5 s) does not run while the backend starts; startup_timeout
    // (120 s by default) bounds the start.
    h.advance(119_000);
    assert!(
        h.client_lines().is_empty(),
        "no progress token, no notification"
    );
    h.advance(1_000);
    let text = error_message(&h.client_one(), -32000);
    assert!(
        text.contains("initialize")
            && text.contains("startup_timeout")
            && text.contains("120 s")
            && text.contains("license key"),
        "{text}"
    );
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert!(h.client_lines().is_empty());
}

// ----- client cancellation -------------------------------------------------------------------------

#[test]
fn client_cancel_is_forwarded_with_the_gateway_id_and_the_answer_dropped() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!("c1"), "alpha__slow", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1","reason":"user pressed stop"}}"#;
    h.client(cancel);
    assert_eq!(
        h.backend_lines(ALPHA),
        vec![cancel.replace(r#""c1""#, &raw_id(&req))],
        "forwarded byte for byte with the requestId rewritten"
    );
    assert_eq!(h.gw.in_flight(), 0);
    h.reply(ALPHA, &req, "{}");
    assert!(
        h.client_lines().is_empty(),
        "the answer to a cancelled request is dropped"
    );
    h.advance(10_000);
    assert!(
        h.client_lines().is_empty(),
        "no timeout for a cancelled request"
    );
}

#[test]
fn client_cancel_of_a_queued_request_is_not_sent() {
    let mut h = Harness::new("tools");
    h.send(call(json!(1), "alpha__echo", json!({})));
    h.send(call(json!(2), "alpha__echo", json!({})));
    h.actions();
    h.client(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#);
    let sent = h.finish_init(ALPHA);
    assert_eq!(
        sent.len(),
        1,
        "only the request still wanted is sent: {sent:#?}"
    );
    assert_eq!(sent[0]["method"], "tools/call");
    h.reply(ALPHA, &sent[0], "{}");
    assert_eq!(h.client_one()["id"], 2);
}

// ----- crashes ---------------------------------------------------------------------------------------

#[test]
fn crash_answers_in_flight_and_queued_requests_naming_backend_status_and_stderr() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__echo", json!({})));
    h.backend_one(ALPHA, "tools/call");
    // Its stdout closed: it is being stopped, so the next request is queued.
    h.gw.on_backend_closed(h.now, ALPHA);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.send(call(json!(2), "alpha__echo", json!({})));
    assert!(h.backend_out(ALPHA).is_empty());
    assert!(h.actions().is_empty());
    h.gw.on_backend_stderr(ALPHA, b"panic: out of cheese\n");
    h.gw.on_backend_stderr(ALPHA, b"at main.go:42");
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 3");
    let out = h.client_out();
    assert_eq!(out.len(), 2, "{out:#?}");
    let ids: Vec<Value> = out.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, [json!(1), json!(2)]);
    for msg in &out {
        let text = error_message(msg, -32000);
        for part in [
            "alpha",
            "exit status 3",
            "panic: out of cheese",
            "at main.go:42",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
    assert!(h.actions().is_empty(), "a crash alone restarts nothing");
}

#[test]
fn crash_during_start_answers_queued_requests() {
    let mut h = Harness::new("meta");
    h.send(use_tool(json!(1), "alpha", "echo", json!({})));
    h.send(use_tool(json!(2), "alpha", "echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.gw.on_backend_stderr(ALPHA, b"error: missing API_KEY");
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 2");
    let out = h.client_out();
    assert_eq!(out.len(), 2);
    for msg in &out {
        let text = error_text(msg);
        assert!(
            text.contains("alpha")
                && text.contains("exit status 2")
                && text.contains("missing API_KEY"),
            "{text}"
        );
    }
}

#[test]
fn a_crashed_backend_is_started_again_by_the_next_request() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.gw.on_backend_exit(h.now, ALPHA, "signal 9");
    assert!(h.client_lines().is_empty(), "nothing was waiting");
    h.advance(1_000);
    h.send(call(json!(2), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    h.reply(ALPHA, &sent[0], "{}");
    assert_eq!(h.client_one()["id"], 2);
}

#[test]
fn three_crashes_in_a_minute_pause_restarts_for_thirty_seconds() {
    let mut h = Harness::new("tools");
    for i in 0..3u64 {
        h.send(call(json!(i), "alpha__echo", json!({})));
        assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)], "crash {i}");
        // It crashes once running (a crash in its start backs off on its own terms).
        h.finish_init(ALPHA);
        h.gw.on_backend_exit(h.now, ALPHA, "exit status 1");
        let text = error_message(&h.client_one(), -32000);
        assert!(text.contains("exit status 1"), "{text}");
        h.advance(1_000);
    }
    assert_eq!(lifecycle::CRASH_LIMIT, 3);
    assert!(lifecycle::CRASH_WINDOW > Duration::from_secs(3));
    // Third crash at 2 s: refused until 2 s + FAILED_PAUSE (30 s).
    let until = Duration::from_secs(2) + FAILED_PAUSE;
    h.send(call(json!(3), "alpha__echo", json!({})));
    assert!(h.actions().is_empty(), "no spawn while paused");
    let text = error_message(&h.client_one(), -32000);
    let pause = format!("not restarting it for {} s", FAILED_PAUSE.as_secs());
    assert!(text.contains("alpha") && text.contains(&pause), "{text}");
    assert!(
        text.contains("exit status 1"),
        "quotes the last error: {text}"
    );
    h.advance(ms(until) - ms(h.elapsed()) - 1);
    h.send(call(json!(4), "alpha__echo", json!({})));
    assert!(h.actions().is_empty());
    error_message(&h.client_one(), -32000);
    // Another backend is not affected meanwhile.
    h.send(call(json!(5), "beta__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(BETA)]);
    let b = h.finish_init(BETA);
    h.reply(BETA, &b[0], "{}");
    assert_eq!(h.client_one()["id"], 5);
    h.advance(1);
    assert_eq!(h.elapsed(), until);
    h.send(call(json!(6), "alpha__echo", json!({})));
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA)],
        "started again after the pause"
    );
    let sent = h.finish_init(ALPHA);
    h.reply(ALPHA, &sent[0], "{}");
    assert_eq!(h.client_one()["id"], 6);
}

#[test]
fn spawn_failure_answers_the_waiting_request_naming_the_command() {
    let mut h = Harness::new("tools");
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.gw.on_spawn_failed(h.now, ALPHA, "No such file or directory (os error 2)");
    let text = error_message(&h.client_one(), -32000);
    for part in ["alpha", "alpha-cmd", "os error 2", "test.json"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    // A failed start is not tried again by every request: the next one is refused at once,
    // quoting the failure, until the back-off is over.
    h.send(call(json!(2), "alpha__echo", json!({})));
    assert!(h.actions().is_empty(), "no spawn during the back-off");
    let text = error_message(&h.client_one(), -32000);
    for part in ["failed to start", "os error 2", "in 10 s"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    h.advance(ms(lifecycle::START_BACKOFF_FIRST));
    h.send(call(json!(3), "alpha__echo", json!({})));
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA)],
        "tried again after the back-off"
    );
    h.gw.on_spawn_failed(h.now, ALPHA, "No such file or directory (os error 2)");
    h.client_out();
    // The second failure in a row doubles the pause.
    h.advance(ms(lifecycle::START_BACKOFF_FIRST));
    h.send(call(json!(4), "alpha__echo", json!({})));
    assert!(h.actions().is_empty(), "still paused after 10 s of 20");
    let text = error_message(&h.client_one(), -32000);
    assert!(text.contains("2 time(s) in a row"), "{text}");
}

// ----- idle reaping -----------------------------------------------------------------------------------

#[test]
fn idle_backend_is_stopped_by_the_ladder() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.advance(59_999);
    assert!(h.actions().is_empty(), "not before idle_timeout");
    h.advance(1);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.advance(ms(STOP_GRACE) - 1);
    assert!(h.actions().is_empty());
    h.advance(1);
    assert_eq!(h.actions(), vec![Action::Signal(ALPHA, StopSignal::Term)]);
    h.advance(ms(STOP_GRACE));
    assert_eq!(h.actions(), vec![Action::Signal(ALPHA, StopSignal::Kill)]);
    h.advance(60_000);
    assert!(h.actions().is_empty(), "the ladder ends at SIGKILL");
    h.gw.on_backend_exit(h.now, ALPHA, "signal 9");
    assert!(h.client_lines().is_empty());
    assert!(
        h.actions().is_empty(),
        "a stopped backend is not restarted by itself"
    );
}

#[test]
fn backend_exiting_on_stdin_close_ends_the_ladder() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.advance(60_000);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    h.advance(10_000);
    assert!(h.actions().is_empty(), "no signal to a process that exited");
    // A clean idle stop is not a crash: three in a row do not pause it.
    for _ in 0..3 {
        h.warm(ALPHA);
        h.advance(60_000);
        assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
        h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    }
    h.warm(ALPHA);
}

#[test]
fn a_request_in_flight_is_never_reaped() {
    let mut h = Harness::with("tools", 10.0, 1.0);
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__slow", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    for _ in 0..9 {
        h.advance(1_000);
        assert!(
            h.actions().is_empty(),
            "reaped with a request in flight at {:?}",
            h.elapsed()
        );
    }
    h.reply(ALPHA, &req, "{}");
    assert_eq!(h.client_one()["id"], 1);
    h.advance(999);
    assert!(h.actions().is_empty());
    h.advance(1);
    assert_eq!(
        h.actions(),
        vec![Action::CloseStdin(ALPHA)],
        "idle_timeout counts from the answer"
    );
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
}

#[test]
fn a_backend_request_to_the_client_in_flight_is_never_reaped() {
    let mut h = Harness::with("tools", 10.0, 1.0);
    h.initialize("2025-11-25", json!({"roots": {}}));
    h.warm(ALPHA);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    let asked = h.client_one();
    h.advance(5_000);
    assert!(h.actions().is_empty());
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"roots":[]}}}}"#,
        raw_id(&asked)
    ));
    h.backend_out(ALPHA);
    h.advance(1_000);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
}

#[test]
fn activity_pushes_the_idle_deadline_back() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.advance(50_000);
    h.send(call(json!(1), "alpha__echo", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.reply(ALPHA, &req, "{}");
    h.client_out();
    h.advance(10_000);
    assert!(
        h.actions().is_empty(),
        "the first deadline (60 s) was pushed back"
    );
    h.advance(49_999);
    assert!(h.actions().is_empty());
    h.advance(1);
    assert_eq!(
        h.actions(),
        vec![Action::CloseStdin(ALPHA)],
        "stopped 60 s after the last answer"
    );
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
}

#[test]
fn idle_timeout_zero_never_stops_the_backend() {
    let mut h = Harness::with("tools", 5.0, 0.0);
    h.warm(ALPHA);
    assert_eq!(h.gw.next_deadline(), None, "no idle timer at all");
    h.advance(7 * 24 * 3_600 * 1_000);
    assert!(h.actions().is_empty());
    h.send(call(json!(1), "alpha__echo", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.reply(ALPHA, &req, "{}");
    assert_eq!(h.client_one()["id"], 1);
}

#[test]
fn next_deadline_is_none_for_an_idle_gateway_without_running_backends() {
    let mut h = Harness::new("meta");
    assert_eq!(h.gw.next_deadline(), None);
    h.initialize("2025-11-25", json!({}));
    h.send(request(json!(1), "tools/list", json!({})));
    h.client_out();
    h.assert_serving();
    h.send(use_tool(json!(2), "gamma", "x", json!({})));
    h.client_out();
    assert_eq!(h.gw.next_deadline(), None);
}

#[test]
fn next_deadline_is_the_idle_deadline_of_a_ready_backend() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    assert_eq!(h.gw.next_deadline(), Some(h.t0 + Duration::from_secs(60)));
}

#[test]
fn next_deadline_is_none_once_a_reaped_backend_has_exited() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.advance(60_000);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.advance(100);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(
        h.gw.next_deadline(),
        None,
        "nothing is running, so nothing is due"
    );
}

#[test]
fn next_deadline_is_none_once_a_ready_backend_has_crashed() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.gw.on_backend_exit(h.now, ALPHA, "signal 11");
    assert_eq!(
        h.gw.next_deadline(),
        None,
        "nothing is running, so nothing is due"
    );
}

#[test]
fn request_while_stopping_is_queued_and_served_after_a_restart() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.advance(60_000);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.send(call(json!("late"), "alpha__echo", json!({"x": 1})));
    assert!(
        h.actions().is_empty(),
        "no second process while the first is stopping"
    );
    assert!(
        h.backend_out(ALPHA).is_empty(),
        "nothing is written to a closing stdin"
    );
    assert!(h.client_lines().is_empty());
    h.advance(500);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert!(
        h.client_lines().is_empty(),
        "the queued request is not failed"
    );
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["params"]["arguments"], json!({"x": 1}));
    h.reply(ALPHA, &sent[0], r#"{"ok":true}"#);
    let msg = h.client_one();
    assert_eq!(msg["id"], "late");
    assert_eq!(msg["result"]["ok"], true);
    // The old process's ladder does not touch the new one.
    h.advance(ms(2 * STOP_GRACE));
    assert!(
        h.actions().is_empty(),
        "stale stop timers must not signal the new process"
    );
}

// ----- requests from backends to the client -----------------------------------------------------------

#[test]
fn backend_roots_request_reaches_the_client_with_a_gateway_id_and_the_answer_returns() {
    let mut h = Harness::new("tools");
    h.initialize("2025-11-25", json!({"roots": {"listChanged": true}}));
    h.warm(ALPHA);
    let ask = r#"{"jsonrpc":"2.0","id":0,"method":"roots/list","params":{"_meta":{"x":1}}}"#;
    h.backend(ALPHA, ask);
    let lines = h.client_lines();
    assert_eq!(lines.len(), 1);
    let asked = parse(&lines[0]);
    let gw = raw_id(&asked);
    assert_ne!(gw, "0");
    assert_eq!(lines[0], ask.replace(r#""id":0"#, &format!(r#""id":{gw}"#)));
    let answer =
        r#"{"jsonrpc":"2.0","id":$ID,"result":{"roots":[{"uri":"file:///work","name":"work"}]}}"#;
    h.client(&answer.replace("$ID", &gw));
    assert_eq!(h.backend_lines(ALPHA), vec![answer.replace("$ID", "0")]);
    // A second answer to the same id goes nowhere.
    h.client(&answer.replace("$ID", &gw));
    assert!(h.backend_lines(ALPHA).is_empty());
}

#[test]
fn two_backends_sending_id_0_do_not_collide() {
    let mut h = Harness::new("tools");
    h.initialize("2025-11-25", json!({"roots": {}}));
    h.warm(ALPHA);
    h.warm(BETA);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    h.backend(BETA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    let out = h.client_out();
    assert_eq!(out.len(), 2);
    assert_ne!(out[0]["id"], out[1]["id"]);
    // Answered in reverse order, each reaches its own backend.
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"for":"beta"}}}}"#,
        raw_id(&out[1])
    ));
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"for":"alpha"}}}}"#,
        raw_id(&out[0])
    ));
    assert_eq!(
        h.backend_lines(ALPHA),
        vec![r#"{"jsonrpc":"2.0","id":0,"result":{"for":"alpha"}}"#]
    );
    assert_eq!(
        h.backend_lines(BETA),
        vec![r#"{"jsonrpc":"2.0","id":0,"result":{"for":"beta"}}"#]
    );
}

#[test]
fn backend_request_without_the_client_capability_is_refused() {
    let mut h = Harness::new("tools");
    h.initialize("2025-11-25", json!({}));
    h.warm(ALPHA);
    for method in ["roots/list", "sampling/createMessage", "elicitation/create"] {
        h.backend(
            ALPHA,
            &format!(r#"{{"jsonrpc":"2.0","id":0,"method":"{method}"}}"#),
        );
        let out = h.backend_out(ALPHA);
        assert_eq!(out.len(), 1, "{method}");
        assert_eq!(out[0]["id"], 0);
        assert!(error_message(&out[0], -32601).contains(method));
        assert!(
            h.client_lines().is_empty(),
            "the client sees nothing of {method}"
        );
    }
}

#[test]
fn backend_ping_to_the_client_needs_no_capability() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    let asked = h.client_one();
    assert_eq!(asked["method"], "ping");
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        raw_id(&asked)
    ));
    assert_eq!(
        h.backend_lines(ALPHA),
        vec![r#"{"jsonrpc":"2.0","id":"p","result":{}}"#]
    );
}

#[test]
fn backend_crash_cancels_its_request_to_the_client() {
    let mut h = Harness::new("tools");
    h.initialize("2025-11-25", json!({"sampling": {}}));
    h.warm(ALPHA);
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#,
    );
    let asked = h.client_one();
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 1");
    let cancel = h.client_one();
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], asked["id"]);
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        raw_id(&asked)
    ));
    assert!(h.backend_lines(ALPHA).is_empty());
}

// ----- notifications ---------------------------------------------------------------------------------

#[test]
fn progress_reaches_the_client_unchanged_only_while_its_request_is_in_flight() {
    let mut h = Harness::new("meta");
    h.warm(ALPHA);
    let mut call = use_tool(json!(7), "alpha", "slow", json!({}));
    call["params"]["_meta"] = json!({"progressToken": "pt-1"});
    h.send(call);
    let sent = h.backend_one(ALPHA, "tools/call");
    assert_eq!(sent["params"]["_meta"]["progressToken"], "pt-1");
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"pt-1","progress":1, "total":2.0}}"#;
    h.backend(ALPHA, progress);
    assert_eq!(h.client_lines(), vec![progress.to_string()]);
    let other = progress.replace("pt-1", "pt-2");
    h.backend(ALPHA, &other);
    assert!(
        h.client_lines().is_empty(),
        "a token no request uses is dropped"
    );
    h.reply(ALPHA, &sent, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 7);
    h.backend(ALPHA, progress);
    assert!(
        h.client_lines().is_empty(),
        "progress after the answer is dropped"
    );
}

#[test]
fn log_messages_reach_the_client_with_the_backend_as_logger() {
    let mut h = Harness::new("meta");
    h.warm(ALPHA);
    let log = r#"{"method":"notifications/message","jsonrpc":"2.0","params":{"level":"info","data":"caf\u00e9"}}"#;
    h.backend(ALPHA, &format!("{log}\r"));
    assert_eq!(
        h.client_lines(),
        vec![r#"{"method":"notifications/message","jsonrpc":"2.0","params":{"logger":"alpha","level":"info","data":"caf\u00e9"}}"#.to_string()]
    );
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"debug","logger":"db","data":1}}"#);
    assert_eq!(h.client_out()[0]["params"]["logger"], "alpha/db");
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{ }}"#,
    );
    assert_eq!(h.client_out()[0]["params"], json!({"logger": "alpha"}));
}

#[test]
fn list_changed_burst_becomes_one_notification_in_tools_mode() {
    let mut h = Harness::new("tools");
    h.send(request(json!(1), "tools/list", json!({})));
    h.actions();
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&["fetch"], None));
    h.client_out();
    for _ in 0..5 {
        h.backend(
            ALPHA,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        );
    }
    assert!(
        h.client_lines().is_empty(),
        "coalesced, not forwarded at once"
    );
    h.advance(49);
    assert!(h.client_lines().is_empty());
    h.advance(1);
    assert_eq!(
        h.client_lines(),
        vec![r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#]
    );
    h.advance(1_000);
    assert!(h.client_lines().is_empty(), "exactly one");
    // The next tools/list asks alpha again; beta's list is still known.
    h.send(request(json!(2), "tools/list", json!({})));
    let req = h.backend_one(ALPHA, "tools/list");
    assert!(h.backend_out(BETA).is_empty());
    h.reply(ALPHA, &req, &tools_page(&["echo", "echo2"], None));
    let msg = h.client_one();
    let names: Vec<&str> = msg["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha__echo", "alpha__echo2", "beta__fetch"]);
}

#[test]
fn list_changed_is_not_forwarded_in_meta_mode() {
    let mut h = Harness::new("meta");
    h.send(discover(json!(1), Some("alpha")));
    h.actions();
    let a = h.finish_init(ALPHA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.client_out();
    for _ in 0..5 {
        h.backend(
            ALPHA,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        );
    }
    h.advance(1_000);
    assert!(h.client_lines().is_empty());
    // But the list is fetched again for the next discovery.
    h.send(discover(json!(2), Some("alpha")));
    let req = h.backend_one(ALPHA, "tools/list");
    h.reply(ALPHA, &req, &tools_page(&["echo", "new"], None));
    assert_eq!(
        discovered(&h.client_one())["tools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn client_roots_list_changed_reaches_ready_backends() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#;
    h.client(note);
    assert_eq!(h.backend_lines(ALPHA), vec![note]);
    assert!(
        h.backend_lines(BETA).is_empty(),
        "a stopped backend is not started for it"
    );
    assert!(h.actions().is_empty());
}

// ----- shutdown -----------------------------------------------------------------------------------------

#[test]
fn client_eof_with_nothing_running_exits_at_once() {
    let mut h = Harness::new("meta");
    h.gw.on_client_eof(h.now, false);
    assert_eq!(h.actions(), vec![Action::Exit]);
    assert!(!h.gw.wants_client_input());
}

#[test]
fn client_eof_closes_every_running_backend_then_exits() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    h.gw.on_client_eof(h.now, false);
    assert_eq!(
        h.actions(),
        vec![Action::CloseStdin(ALPHA), Action::CloseStdin(BETA)]
    );
    h.advance(300);
    h.gw.on_backend_exit(h.now, BETA, "exit status 0");
    assert!(h.actions().is_empty(), "alpha is still running");
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(h.actions(), vec![Action::Exit]);
    assert!(h.client_lines().is_empty());
}

#[test]
fn client_eof_lets_a_request_in_flight_finish_within_the_drain_grace() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__slow", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.gw.on_client_eof(h.now, false);
    assert!(
        h.actions().is_empty(),
        "the backend keeps running while the request drains"
    );
    assert!(!h.gw.wants_client_input());
    h.advance(ms(DRAIN_GRACE) - 1);
    h.reply(ALPHA, &req, r#"{"done":true}"#);
    assert_eq!(h.client_one()["result"]["done"], true);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(h.actions(), vec![Action::Exit]);
}

#[test]
fn client_eof_stops_waiting_after_the_drain_grace() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__slow", json!({})));
    h.backend_one(ALPHA, "tools/call");
    h.gw.on_client_eof(h.now, false);
    h.advance(ms(DRAIN_GRACE) - 1);
    assert!(h.actions().is_empty());
    h.advance(1);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    let text = error_message(&h.client_one(), -32000);
    assert!(text.contains("shutting down"), "{text}");
    assert_eq!(h.actions(), vec![Action::Exit]);
}

#[test]
fn client_eof_from_a_file_waits_for_answers() {
    let mut h = Harness::with("tools", 30.0, 60.0);
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__slow", json!({})));
    let req = h.backend_one(ALPHA, "tools/call");
    h.gw.on_client_eof(h.now, true);
    h.advance(20_000);
    assert!(
        h.actions().is_empty(),
        "no drain deadline when input was a file"
    );
    h.reply(ALPHA, &req, "{}");
    assert_eq!(h.client_one()["id"], 1);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(h.actions(), vec![Action::Exit]);
}

#[test]
fn client_eof_from_a_file_shuts_down_after_an_aggregate_tools_list() {
    let mut h = Harness::new("tools");
    h.send(request(json!(1), "tools/list", json!({})));
    assert_eq!(h.actions().len(), 2);
    h.gw.on_client_eof(h.now, true);
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&["fetch"], None));
    assert_eq!(h.client_one()["id"], 1);
    // Play the runtime for ten minutes: backends exit as soon as their stdin closes.
    let mut seen = Vec::new();
    for _ in 0..600 {
        for a in h.actions() {
            if let Action::CloseStdin(b) = a {
                h.gw.on_backend_exit(h.now, b, "exit status 0");
            }
            seen.push((h.elapsed(), a));
        }
        if seen.iter().any(|(_, a)| *a == Action::Exit) {
            break;
        }
        h.advance(1_000);
    }
    assert!(
        seen.iter().any(|(_, a)| *a == Action::Exit),
        "gangway never exits: {seen:?}"
    );
    assert_eq!(
        seen.first(),
        Some(&(Duration::ZERO, Action::CloseStdin(ALPHA))),
        "the last answer was sent, so the backends are stopped at once: {seen:?}"
    );
}

#[test]
fn backend_crash_while_draining_exits_at_once() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__slow", json!({})));
    h.backend_one(ALPHA, "tools/call");
    h.gw.on_client_eof(h.now, false);
    h.gw.on_backend_exit(h.now, ALPHA, "signal 9");
    error_message(&h.client_one(), -32000);
    assert_eq!(
        h.actions(),
        vec![Action::Exit],
        "nothing is running and nothing is pending, so exit now"
    );
}

#[test]
fn second_terminate_kills_backends_and_exits_at_once() {
    let mut h = Harness::new("tools");
    h.warm(BETA);
    h.gw.on_terminate(h.now);
    assert_eq!(h.actions(), vec![Action::CloseStdin(BETA)]);
    h.gw.on_terminate(h.now);
    assert_eq!(
        h.actions(),
        vec![Action::Signal(BETA, StopSignal::Kill), Action::Exit]
    );
    h.gw.on_terminate(h.now);
    h.gw.on_client_eof(h.now, false);
    h.advance(10_000);
    assert!(
        !h.actions()
            .iter()
            .any(|a| matches!(a, Action::Exit | Action::Spawn(_))),
        "exit is reported once"
    );
}

#[test]
fn exit_deadline_fires_exit_when_a_backend_never_exits() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.send(call(json!("late"), "alpha__echo", json!({})));
    h.backend_one(ALPHA, "tools/call");
    h.gw.on_terminate(h.now);
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.advance(ms(STOP_GRACE));
    assert_eq!(h.actions(), vec![Action::Signal(ALPHA, StopSignal::Term)]);
    h.advance(ms(STOP_GRACE));
    assert_eq!(h.actions(), vec![Action::Signal(ALPHA, StopSignal::Kill)]);
    assert!(
        EXIT_DEADLINE > 2 * STOP_GRACE,
        "SIGKILL comes before the deadline"
    );
    h.advance(ms(EXIT_DEADLINE - 2 * STOP_GRACE) - 1);
    assert!(h.actions().is_empty());
    h.advance(1);
    assert_eq!(
        h.actions(),
        vec![Action::Signal(ALPHA, StopSignal::Kill), Action::Exit]
    );
    assert_eq!(h.elapsed(), EXIT_DEADLINE);
    // The call it never answered is answered before the exit.
    let text = error_message(&h.client_one(), -32000);
    assert!(text.contains("shutting down"), "{text}");
}

#[test]
fn client_input_after_shutdown_is_ignored() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.gw.on_terminate(h.now);
    h.actions();
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert!(h.client_lines().is_empty());
    assert!(
        h.actions().is_empty(),
        "no backend is started during shutdown"
    );
    // A backend's request to the client during shutdown is refused.
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#);
    error_message(&h.backend_one_any(ALPHA), -32601);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(h.actions(), vec![Action::Exit]);
}

// ----- bookkeeping -------------------------------------------------------------------------------------

#[test]
fn nothing_stays_tracked_after_a_mixed_session() {
    let mut h = Harness::new("both");
    h.initialize("2025-11-25", json!({"roots": {}}));
    h.send(request(json!("l"), "tools/list", json!({})));
    h.actions();
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&["fetch"], None));
    h.send(call(json!(1), "alpha__echo", json!({})));
    h.send(use_tool(json!(2), "beta", "fetch", json!({})));
    h.send(discover(json!(3), None));
    h.send(call(json!(4), "beta__fetch", json!({"slow": true})));
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    assert!(h.gw.in_flight() > 0);
    for req in h.backend_out(ALPHA) {
        h.reply(ALPHA, &req, "{}");
    }
    let to_beta = h.backend_out(BETA);
    h.reply(BETA, &to_beta[0], "{}");
    let out = h.client_out();
    let asked = out
        .iter()
        .find(|m| m["method"] == "roots/list")
        .expect("roots/list forwarded");
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"roots":[]}}}}"#,
        raw_id(asked)
    ));
    h.advance(5_000);
    let out = h.client_out();
    assert_eq!(
        out.len(),
        1,
        "the unanswered beta__fetch timed out: {out:#?}"
    );
    assert_eq!(out[0]["id"], 4);
    assert_eq!(h.gw.in_flight(), 0);
    assert!(h.gw.aggregates.is_empty());
}

// ----- tasks ---------------------------------------------------------------------------------

#[test]
fn task_ids_are_prefixed_and_routed_back_to_their_backend() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    let mut c = call(json!(1), "beta__slow", json!({}));
    c["params"]["task"] = json!({"ttl": 60000});
    h.send(c);
    let sent = h.backend_one(BETA, "tools/call");
    assert_eq!(sent["params"]["task"], json!({"ttl": 60000}));
    h.reply(
        BETA,
        &sent,
        r#"{"task":{"taskId":"t-1","status":"working"}}"#,
    );
    let created = h.client_one();
    assert_eq!(created["result"]["task"]["taskId"], "beta__t-1");

    h.backend(BETA, r#"{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t-1","status":"completed"}}"#);
    assert_eq!(h.client_one()["params"]["taskId"], "beta__t-1");

    h.send(request(
        json!(2),
        "tasks/get",
        json!({"taskId": "beta__t-1"}),
    ));
    let get = h.backend_one(BETA, "tasks/get");
    assert_eq!(get["params"]["taskId"], "t-1");
    h.reply(BETA, &get, r#"{"taskId":"t-1","status":"completed"}"#);
    let got = h.client_one();
    assert_eq!(
        (got["id"].clone(), got["result"]["taskId"].clone()),
        (json!(2), json!("beta__t-1"))
    );

    h.send(request(
        json!(3),
        "tasks/result",
        json!({"taskId": "beta__t-1"}),
    ));
    let res = h.backend_one(BETA, "tasks/result");
    h.reply(BETA, &res, r#"{"content":[],"structuredContent":{"taskId":"user-data"},"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t-1"}}}"#);
    let payload = h.client_one();
    assert_eq!(
        payload["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        "beta__t-1"
    );
    assert_eq!(
        payload["result"]["structuredContent"]["taskId"], "user-data",
        "tool data is not rewritten"
    );

    h.send(request(
        json!(4),
        "tasks/get",
        json!({"taskId": "nobody__t-1"}),
    ));
    assert!(error_message(&h.client_one(), -32602).contains("Unknown task"));
}

#[test]
fn tasks_list_merges_running_backends_with_prefixed_ids() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    h.send(request(json!("l"), "tasks/list", json!({})));
    let a = h.backend_one(ALPHA, "tasks/list");
    let b = h.backend_one(BETA, "tasks/list");
    h.reply(
        ALPHA,
        &a,
        r#"{"tasks":[{"taskId":"x","status":"working"}],"nextCursor":"p2"}"#,
    );
    let a2 = h.backend_one(ALPHA, "tasks/list");
    assert_eq!(a2["params"]["cursor"], "p2");
    h.reply(
        ALPHA,
        &a2,
        r#"{"tasks":[{"taskId":"y","status":"completed"}]}"#,
    );
    assert!(h.client_lines().is_empty(), "beta has not answered yet");
    h.reply(BETA, &b, r#"{"tasks":[{"status":"working","taskId":"x"}]}"#);
    let merged = h.client_one();
    let ids: Vec<&str> = merged["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["alpha__x", "alpha__y", "beta__x"]);
}

#[test]
fn resources_merge_across_backends_and_reads_route_to_the_owner() {
    let mut h = Harness::new("meta");
    h.send(request(json!(1), "resources/list", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA), Action::Spawn(BETA)]);
    for b in [ALPHA, BETA] {
        let sent = h.finish_init(b);
        assert_eq!(sent[0]["method"], "resources/list");
        let uri = if b == ALPHA { "a://1" } else { "b://1" };
        h.reply(b, &sent[0], &format!(r#"{{"resources":[{{"uri":"{uri}","name":"n"}},{{"uri":"shared://x","name":"s"}}]}}"#));
    }
    let list = h.client_one();
    let uris: Vec<&str> = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        vec!["a://1", "shared://x", "b://1"],
        "each URI once, first backend wins"
    );
    h.send(request(json!(2), "resources/read", json!({"uri": "b://1"})));
    let read = h.backend_one(BETA, "resources/read");
    h.reply(BETA, &read, r#"{"contents":[]}"#);
    assert_eq!(h.client_one()["id"], 2);
    h.send(request(
        json!(3),
        "resources/read",
        json!({"uri": "shared://x"}),
    ));
    let read = h.backend_one(ALPHA, "resources/read");
    h.reply(ALPHA, &read, r#"{"contents":[]}"#);
    assert_eq!(h.client_one()["id"], 3);
}

#[test]
fn a_resource_read_before_any_list_fetches_templates_to_find_its_owner() {
    let mut h = Harness::new("meta");
    h.send(request(
        json!(9),
        "resources/read",
        json!({"uri": "tpl://item/42"}),
    ));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA), Action::Spawn(BETA)]);
    for b in [ALPHA, BETA] {
        let sent = h.finish_init(b);
        for req in sent {
            let result = match (b, req["method"].as_str().unwrap()) {
                (BETA, "resources/templates/list") => {
                    r#"{"resourceTemplates":[{"uriTemplate":"tpl://item/{id}","name":"item"}]}"#
                }
                (_, "resources/templates/list") => r#"{"resourceTemplates":[]}"#,
                _ => r#"{"resources":[]}"#,
            };
            h.reply(b, &req, result);
        }
    }
    let read = h.backend_one(BETA, "resources/read");
    assert_eq!(read["params"]["uri"], "tpl://item/42");
    h.reply(
        BETA,
        &read,
        r#"{"contents":[{"uri":"tpl://item/42","text":"x"}]}"#,
    );
    assert_eq!(h.client_one()["result"]["contents"][0]["text"], "x");
    h.send(request(
        json!(10),
        "resources/read",
        json!({"uri": "nowhere://1"}),
    ));
    assert!(error_message(&h.client_one(), -32002).contains("Resource not found"));
}

#[test]
fn prompts_are_prefixed_and_get_routes_by_name() {
    let mut h = Harness::new("meta");
    h.warm(ALPHA);
    h.warm(BETA);
    h.send(request(json!(1), "prompts/list", json!({})));
    for b in [ALPHA, BETA] {
        let sent = h.backend_one(b, "prompts/list");
        h.reply(b, &sent, r#"{"prompts":[{"name":"greet","arguments":[]}]}"#);
    }
    let names: Vec<String> = h.client_one()["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["alpha__greet", "beta__greet"]);
    h.send(request(
        json!(2),
        "prompts/get",
        json!({"name": "beta__greet", "arguments": {}}),
    ));
    let get = h.backend_one(BETA, "prompts/get");
    assert_eq!(get["params"]["name"], "greet");
    h.send(request(json!(3), "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "alpha__greet"}, "argument": {"name": "x", "value": "y"}})));
    let complete = h.backend_one(ALPHA, "completion/complete");
    assert_eq!(complete["params"]["ref"]["name"], "greet");
    h.reply(BETA, &get, r#"{"messages":[]}"#);
    h.reply(ALPHA, &complete, r#"{"completion":{"values":[]}}"#);
    assert_eq!(h.client_out().len(), 2);
}

#[test]
fn set_level_reaches_running_backends_and_those_started_later() {
    let mut h = Harness::new("meta");
    h.warm(ALPHA);
    h.gw.backends[ALPHA].init_result =
        Some(RawValue::from_string(r#"{"capabilities":{"logging":{}}}"#.into()).unwrap());
    h.send(request(
        json!(1),
        "logging/setLevel",
        json!({"level": "debug"}),
    ));
    assert_eq!(h.client_one()["result"], json!({}));
    let set = h.backend_one(ALPHA, "logging/setLevel");
    assert_eq!(set["params"]["level"], "debug");
    h.reply(ALPHA, &set, "{}");
    assert!(
        h.client_lines().is_empty(),
        "gangway's own request is answered to nobody"
    );
    h.send(use_tool(json!(2), "beta", "echo", json!({})));
    h.actions();
    let init = h.backend_one(BETA, "initialize");
    h.reply(BETA, &init, r#"{"protocolVersion":"2025-11-25","capabilities":{"logging":{}},"serverInfo":{"name":"b","version":"1"}}"#);
    let after = h.backend_out(BETA);
    let methods: Vec<&str> = after
        .iter()
        .map(|m| m["method"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        methods,
        vec![
            "notifications/initialized",
            "logging/setLevel",
            "tools/call"
        ]
    );
    h.reply(BETA, &after[1], "{}");
    h.reply(BETA, &after[2], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 2);
}

// ----- regressions found in review -------------------------------------------------------------

#[test]
fn a_crashed_backends_unsent_input_is_dropped_so_client_reading_resumes() {
    let mut h = Harness::new("meta");
    h.warm(ALPHA);
    h.send(use_tool(
        json!(1),
        "alpha",
        "echo",
        json!({"text": "x".repeat(1000)}),
    ));
    assert!(
        !h.gw.out.backends[ALPHA].is_empty(),
        "the call waits to be written"
    );
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 1");
    assert!(
        h.gw.out.backends[ALPHA].is_empty(),
        "nothing is kept for a process that is gone"
    );
    assert_eq!(h.client_one()["result"]["isError"], true);
}

#[test]
fn a_huge_timeout_in_the_config_does_not_overflow() {
    let config = Config::parse(
        r#"{"expose":"tools","timeout":1e19,"idle_timeout":1e19,"backends":{"alpha":{"command":"x"}}}"#,
        Path::new("test.json"),
        &|_| None,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut gw = Gateway::new(&config, t0, 1_700_000_000);
    let s = gw.open_session();
    gw.on_client_line(
        t0,
        s,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"alpha__echo"}}"#,
    );
    assert_eq!(gw.take_actions(), vec![Action::Spawn(ALPHA)]);
    let init = String::from_utf8_lossy(gw.out.backends[ALPHA].pending()).to_string();
    let init_id = parse(init.trim_end())["id"].to_string();
    let ready = format!(r#"{{"jsonrpc":"2.0","id":{init_id},"result":{{}}}}"#);
    gw.on_backend_line(t0, ALPHA, ready.as_bytes());
    gw.on_timer(t0 + Duration::from_secs(3600));
    assert_eq!(gw.session_backlog(s), 0, "no timeout fired");
    assert!(gw
        .next_deadline()
        .is_some_and(|d| d > t0 + Duration::from_secs(86_400)));
}

#[test]
fn a_huge_startup_timeout_does_not_overflow() {
    let config = Config::parse(
        r#"{"expose":"tools","startup_timeout":1e19,"backends":{"alpha":{"command":"x"}}}"#,
        Path::new("test.json"),
        &|_| None,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut gw = Gateway::new(&config, t0, 1_700_000_000);
    let s = gw.open_session();
    gw.on_client_line(
        t0,
        s,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"alpha__echo"}}"#,
    );
    gw.on_timer(t0 + Duration::from_secs(86_400));
    assert_eq!(gw.session_backlog(s), 0, "still starting, nothing failed");
}

#[test]
fn a_client_answer_reaches_a_backend_that_is_still_starting() {
    let mut h = Harness::new("meta");
    h.initialize("2025-11-25", json!({"roots": {}}));
    h.send(use_tool(json!(1), "alpha", "echo", json!({})));
    h.actions();
    let init = h.backend_one(ALPHA, "initialize");
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    let asked = h.client_one();
    h.client(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"roots":[]}}}}"#,
        raw_id(&asked)
    ));
    let answer = h.backend_out(ALPHA);
    assert_eq!((answer.len(), answer[0]["id"].clone()), (1, json!(0)));
    h.reply(ALPHA, &init, r#"{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"a","version":"1"}}"#);
    let sent = h.backend_out(ALPHA);
    h.reply(ALPHA, &sent[1], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
}

#[test]
fn a_list_that_changes_while_it_is_fetched_is_fetched_again_next_time() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    h.send(request(json!(1), "tools/list", json!({})));
    let a = h.backend_one(ALPHA, "tools/list");
    let b = h.backend_one(BETA, "tools/list");
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
    );
    h.reply(ALPHA, &a, r#"{"tools":[{"name":"old"}]}"#);
    h.reply(BETA, &b, r#"{"tools":[]}"#);
    assert_eq!(h.client_one()["result"]["tools"][0]["name"], "alpha__old");
    h.send(request(json!(2), "tools/list", json!({})));
    let again = h.backend_one(ALPHA, "tools/list");
    h.reply(ALPHA, &again, r#"{"tools":[{"name":"new"}]}"#);
    assert_eq!(h.client_one()["result"]["tools"][0]["name"], "alpha__new");
}

// ----- start is separate from requests --------------------------------------------------------

/// Two backends with a 5 s request timeout and a 30 s startup timeout.
fn startup_config() -> String {
    json!({"expose": "tools", "timeout": 5, "startup_timeout": 30, "backends": {
        "alpha": {"command": "a"}, "beta": {"command": "b"}}})
    .to_string()
}

#[test]
fn a_call_waiting_for_a_start_hears_progress_and_its_timeout_counts_from_ready() {
    let mut h = Harness::from_json(&startup_config());
    let mut with_token = call(json!(1), "alpha__echo", json!({}));
    with_token["params"]["_meta"] = json!({"progressToken": "tok"});
    h.send(with_token);
    h.send(call(json!(2), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    assert!(h.client_lines().is_empty());
    h.advance(999);
    assert!(
        h.client_lines().is_empty(),
        "the first notice comes after 1 s"
    );
    let mut progress = Vec::new();
    for _ in 0..12 {
        h.advance(1_000);
        for msg in h.client_out() {
            assert_eq!(msg["method"], "notifications/progress", "{msg}");
            assert_eq!(
                msg["params"]["progressToken"], "tok",
                "only the call with a token"
            );
            let text = msg["params"]["message"].as_str().unwrap_or_default();
            assert!(text.contains("Starting backend 'alpha'"), "{text}");
            progress.push(msg["params"]["progress"].as_f64().unwrap_or(-1.0));
        }
    }
    assert_eq!(progress.len(), 12, "one notice a second: {progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {progress:?}"
    );
    // 13 s in: far past the 5 s request timeout, yet nothing failed.
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 2, "both calls go out once ready: {sent:#?}");
    h.advance(4_000);
    assert!(h.client_lines().is_empty(), "no more notices once ready");
    h.advance(1_000);
    let out = h.client_out();
    let ids: Vec<&Value> = out.iter().map(|m| &m["id"]).collect();
    assert_eq!(
        ids,
        [&json!(1), &json!(2)],
        "both time out 5 s after ready: {out:#?}"
    );
    for m in &out {
        assert!(error_message(m, -32001).contains("did not answer within 5 s"));
    }
    let cancels = h.backend_out(ALPHA);
    assert_eq!(cancels.len(), 2, "{cancels:#?}");
}

#[test]
fn startup_timeout_fails_the_waiting_calls_with_its_own_message() {
    let mut h = Harness::from_json(&startup_config());
    h.send(call(json!(1), "beta__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(BETA)]);
    h.advance(29_999);
    assert!(h.client_lines().is_empty());
    h.advance(1);
    let text = error_message(&h.client_one(), -32000);
    assert!(
        text.contains("did not finish starting") && text.contains("30 s"),
        "{text}"
    );
    assert_eq!(h.actions(), vec![Action::CloseStdin(BETA)]);
    h.gw.on_backend_exit(h.now, BETA, "killed by signal SIGTERM");
    assert!(h.client_lines().is_empty());
}

// ----- docker restarts ------------------------------------------------------------------

/// Two `docker run` backends with a 30 s startup timeout: `alpha` names its container
/// (`--name mine`), `beta` leaves the name to gangway.
fn docker_config() -> String {
    json!({"expose": "tools", "timeout": 5, "startup_timeout": 30, "idle_timeout": 60,
        "backends": {
            "alpha": {"command": "docker", "args": ["run", "-i", "--rm", "--name", "mine", "img"]},
            "beta": {"command": "docker", "args": ["run", "-i", "--rm", "img", "--name", "arg"]}}})
    .to_string()
}

/// Warms backend `b`, lets it idle out, and plays the runtime: its process exits and the
/// removal of its container begins (and is still running when this returns).
fn docker_stopped(h: &mut Harness, b: usize) {
    h.warm(b);
    h.advance(60_000);
    assert_eq!(h.actions(), vec![Action::CloseStdin(b)]);
    h.gw.on_container_removal_started(b);
    h.gw.on_backend_exit(h.now, b, "exit status 0");
    assert!(h.actions().is_empty());
}

/// Backend `b` has just been spawned for call 1: it starts and answers it.
fn docker_serves_call(h: &mut Harness, b: usize) {
    let sent = h.finish_init(b);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    h.reply(b, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
}

#[test]
fn a_restart_of_a_user_named_container_waits_for_the_old_ones_removal() {
    let mut h = Harness::from_json(&docker_config());
    docker_stopped(&mut h, ALPHA);
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert!(
        h.actions().is_empty(),
        "docker would refuse the name while the old container exists"
    );
    h.advance(5_000);
    assert!(h.actions().is_empty() && h.client_lines().is_empty());
    h.gw.on_container_removed(ALPHA);
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.gw.on_container_removed(ALPHA);
    assert!(h.actions().is_empty(), "the spawn is asked for once");
    docker_serves_call(&mut h, ALPHA);
}

#[test]
fn a_restart_after_the_removal_ended_spawns_at_once() {
    let mut h = Harness::from_json(&docker_config());
    docker_stopped(&mut h, ALPHA);
    h.gw.on_container_removed(ALPHA);
    assert!(h.actions().is_empty(), "nothing was waiting");
    h.warm(ALPHA);
}

#[test]
fn a_generated_container_name_restarts_at_once() {
    let mut h = Harness::from_json(&docker_config());
    docker_stopped(&mut h, BETA);
    h.send(call(json!(1), "beta__echo", json!({})));
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(BETA)],
        "a new name is free while the old container is removed"
    );
    h.gw.on_container_removed(BETA);
    assert!(h.actions().is_empty(), "no second spawn");
    docker_serves_call(&mut h, BETA);
}

#[test]
fn shutdown_while_a_start_waits_for_a_removal_stops_nothing_and_answers_the_request() {
    let mut h = Harness::from_json(&docker_config());
    docker_stopped(&mut h, ALPHA);
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert!(h.actions().is_empty());
    h.gw.on_client_eof(h.now, false);
    h.advance(ms(DRAIN_GRACE));
    assert_eq!(
        h.actions(),
        vec![Action::Exit],
        "no process was asked for, so none is stopped"
    );
    let text = error_message(&h.client_one(), -32000);
    assert!(
        text.contains("shutting down") && text.contains("alpha"),
        "{text}"
    );
    h.gw.on_container_removed(ALPHA);
    assert!(
        h.actions().is_empty(),
        "a start given up is not spawned later"
    );
}

#[test]
fn a_start_that_waits_for_a_removal_past_startup_timeout_fails_and_backs_off() {
    let mut h = Harness::from_json(&docker_config());
    docker_stopped(&mut h, ALPHA);
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert!(h.actions().is_empty());
    h.advance(30_000);
    let text = error_message(&h.client_one(), -32000);
    assert!(
        text.contains("did not finish starting") && text.contains("30 s"),
        "{text}"
    );
    assert!(h.actions().is_empty(), "there is no process to stop");
    h.gw.on_container_removed(ALPHA);
    assert!(
        h.actions().is_empty(),
        "a failed start is not spawned later"
    );
    h.send(call(json!(2), "alpha__echo", json!({})));
    let text = error_message(&h.client_one(), -32000);
    assert!(
        text.contains("waits before trying again") && text.contains("did not finish starting"),
        "a failed start backs off and quotes why: {text}"
    );
    assert!(h.actions().is_empty());
}

// ----- catalog, filters, names, reload ---------------------------------------------------

/// A catalog holding, for every backend of `text`, `INIT_RESULT` and these tools.
fn catalog_for(text: &str, tools: &[&str]) -> Catalog {
    let config = Config::parse(text, Path::new("test.json"), &|_| None).expect("valid config");
    let page: Value = serde_json::from_str(&tools_page(tools, None)).expect("tools page");
    let raws: Vec<Box<RawValue>> = page["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| RawValue::from_string(t.to_string()).expect("raw tool"))
        .collect();
    let mut catalog = Catalog::default();
    for b in config.enabled() {
        let entry = crate::catalog::Entry {
            backend: b.name.clone(),
            updated: 1,
            init: Some(RawValue::from_string(INIT_RESULT.to_string()).expect("raw init")),
            lists: [raws.clone(), Vec::new(), Vec::new(), Vec::new()],
            failed: None,
        };
        catalog.put(b, entry);
    }
    catalog
}

/// The tool names of a `tools/list` answer.
fn tool_names(msg: &Value) -> Vec<String> {
    msg["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a tools/list result: {msg}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_filled_catalog_answers_lists_without_starting_anything() {
    let text = config("tools", 5.0, 60.0);
    let mut h = Harness::from_json(&text);
    h.gw.set_catalog(Some(catalog_for(&text, &["echo", "add"])));
    h.send(request(json!(1), "tools/list", json!({})));
    let names = tool_names(&h.client_one());
    assert_eq!(
        names,
        ["alpha__add", "alpha__echo", "beta__add", "beta__echo"]
    );
    h.send(request(json!(2), "prompts/list", json!({})));
    assert_eq!(h.client_one()["result"]["prompts"], json!([]));
    assert!(h.actions().is_empty(), "nothing may start for a list");
    // A tool the catalog does not list is refused without a start.
    h.send(call(json!(3), "alpha__nope", json!({})));
    assert!(error_message(&h.client_one(), -32602).contains("no tool 'nope'"));
    assert!(h.actions().is_empty());
}

#[test]
fn a_start_refreshes_the_catalog_and_tells_the_client_what_changed() {
    let text = config("tools", 5.0, 60.0);
    let mut h = Harness::from_json(&text);
    h.gw.set_catalog(Some(catalog_for(&text, &["echo"])));
    assert!(h.gw.catalog_to_save().is_none(), "nothing new yet");
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    let methods: Vec<&str> = sent.iter().filter_map(|m| m["method"].as_str()).collect();
    // The call first, then the refresh of the one list it declares (tools); the others
    // are empty without a round trip.
    assert_eq!(methods, ["tools/call", "tools/list"]);
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
    h.reply(ALPHA, &sent[1], &tools_page(&["echo", "add"], None));
    h.advance(ms(LIST_CHANGED_DELAY));
    assert_eq!(h.client_one()["method"], "notifications/tools/list_changed");
    let alpha_config = h.gw.backend_config(ALPHA).expect("alpha").clone();
    let saved = h.gw.catalog_to_save().expect("the catalog changed");
    let alpha = saved.get(&alpha_config).expect("alpha's entry");
    assert_eq!(alpha.lists[ListKind::Tools.index()].len(), 2);
    assert!(h.gw.catalog_to_save().is_none(), "saved once");
    h.send(request(json!(2), "tools/list", json!({})));
    assert_eq!(
        tool_names(&h.client_one()),
        ["alpha__add", "alpha__echo", "beta__echo"]
    );
}

#[test]
fn an_unchanged_refresh_is_silent() {
    let text = config("tools", 5.0, 60.0);
    let mut h = Harness::from_json(&text);
    h.gw.set_catalog(Some(catalog_for(&text, &["echo"])));
    h.send(call(json!(1), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent[1]["method"], "tools/list", "{sent:#?}");
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
    h.reply(ALPHA, &sent[1], &tools_page(&["echo"], None));
    h.advance(ms(LIST_CHANGED_DELAY) * 2);
    assert!(h.client_lines().is_empty(), "no list_changed");
    // The entry is rewritten only if its content changed.
    assert!(h.gw.catalog_to_save().is_none());
}

#[test]
fn filtered_tools_are_neither_listed_nor_callable() {
    let text = json!({
        "expose": "both",
        "backends": {
            "alpha": {"command": "a", "tools": {"allow": ["e*", "s*"], "deny": ["secret*"]}},
            "beta": {"command": "b"},
        }
    })
    .to_string();
    let mut h = Harness::from_json(&text);
    h.gw.set_catalog(Some(catalog_for(
        &text,
        &["echo", "secret_key", "add", "sum"],
    )));
    h.send(request(json!(1), "tools/list", json!({})));
    let names = tool_names(&h.client_one());
    assert_eq!(
        names,
        [
            "use_tool",
            "discover_backend_tools",
            "alpha__echo",
            "alpha__sum",
            "beta__add",
            "beta__echo",
            "beta__secret_key",
            "beta__sum"
        ]
    );
    for name in ["alpha__secret_key", "alpha__add"] {
        h.send(call(json!(2), name, json!({})));
        let text = error_message(&h.client_one(), -32602);
        assert!(text.contains("filter"), "{name}: {text}");
    }
    h.send(use_tool(json!(3), "alpha", "secret_key", json!({})));
    assert!(error_text(&h.client_one()).contains("filter"));
    h.send(discover(json!(4), Some("alpha")));
    let found: Vec<String> = discovered(&h.client_one())["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(found, ["echo", "sum"]);
    assert!(h.actions().is_empty());
}

#[test]
fn long_and_colliding_names_are_made_valid_and_call_the_right_tool() {
    let long = "t".repeat(70);
    let text = json!({
        "expose": "tools",
        "backends": {
            "alpha": {"command": "a", "prefix": "a"},
            "beta": {"command": "b", "prefix": "a__b"},
        }
    })
    .to_string();
    let config = Config::parse(&text, Path::new("test.json"), &|_| None).expect("valid");
    let mut h = Harness::from_json(&text);
    let mut catalog = catalog_for(&text, &[]);
    for (b, tools) in [(0, vec!["b__c", long.as_str()]), (1, vec!["c"])] {
        let page: Value = serde_json::from_str(&tools_page(&tools, None)).expect("page");
        let raws = page["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| RawValue::from_string(t.to_string()).expect("raw"))
            .collect();
        let entry = crate::catalog::Entry {
            backend: config.backends[b].name.clone(),
            updated: 1,
            init: None,
            lists: [raws, Vec::new(), Vec::new(), Vec::new()],
            failed: None,
        };
        catalog.put(&config.backends[b], entry);
    }
    h.gw.set_catalog(Some(catalog));
    h.send(request(json!(1), "tools/list", json!({})));
    let names = tool_names(&h.client_one());
    assert_eq!(names.len(), 3);
    assert_eq!(names[0], "a__b__c", "the first backend keeps the name");
    for n in &names {
        assert!(naming::is_valid(n), "{n}");
    }
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 3, "{names:?}");
    // Each exposed name reaches its own backend, under the tool's own name.
    let expect = [(0, "b__c"), (0, long.as_str()), (1, "c")];
    for (name, (b, own)) in names.iter().zip(expect) {
        h.gw.backends[b].lifecycle.force_phase(Phase::Ready);
        h.send(call(json!(name), name, json!({})));
        let sent = h.backend_one(b, "tools/call");
        assert_eq!(sent["params"]["name"], own, "{name}");
        h.reply(b, &sent, r#"{"content":[]}"#);
        assert_eq!(h.client_one()["id"], json!(name));
    }
}

#[test]
fn per_backend_expose_mixes_direct_tools_and_meta_tools() {
    let text = json!({
        "backends": {
            "alpha": {"command": "a", "expose": "tools"},
            "beta": {"command": "b", "direct": ["echo"]},
        }
    })
    .to_string();
    let mut h = Harness::from_json(&text);
    h.gw.set_catalog(Some(catalog_for(&text, &["echo", "add"])));
    h.send(request(json!(1), "tools/list", json!({})));
    let msg = h.client_one();
    assert_eq!(
        tool_names(&msg),
        [
            "use_tool",
            "discover_backend_tools",
            "alpha__add",
            "alpha__echo",
            "beta__echo"
        ]
    );
    let schema = &msg["result"]["tools"][0]["inputSchema"]["properties"]["backend_server"];
    assert_eq!(
        schema["enum"],
        json!(["beta"]),
        "only beta is behind use_tool"
    );
    h.send(call(json!(2), "beta__add", json!({})));
    assert!(error_message(&h.client_one(), -32602).contains("use_tool"));
    h.send(use_tool(json!(3), "alpha", "add", json!({})));
    assert!(error_text(&h.client_one()).contains("Unknown backend server: alpha"));
}

#[test]
fn reload_adds_removes_and_restarts_backends() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    h.warm(BETA);
    // A call to beta is still in flight when the reload removes it.
    h.send(call(json!("slow"), "beta__echo", json!({})));
    let slow = h.backend_one(BETA, "tools/call");
    let next = json!({
        "expose": "tools",
        "backends": {
            "alpha": {"command": "alpha-cmd", "args": ["--new"]},
            "gamma": {"command": "gamma-cmd"},
        }
    })
    .to_string();
    let next = Config::parse(&next, Path::new("test.json"), &|_| None).expect("valid");
    let done = h.gw.reload(h.now, &next);
    assert_eq!(done.added, ["gamma"]);
    assert_eq!(done.removed, ["beta"]);
    assert_eq!(done.changed, ["alpha"]);
    assert_eq!(h.gw.backend_count(), 3);
    // Idle alpha stops at once to take its new command; beta waits for its call.
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.reply(BETA, &slow, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], "slow");
    assert_eq!(h.actions(), vec![Action::CloseStdin(BETA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    h.gw.on_backend_exit(h.now, BETA, "exit status 0");
    h.advance(ms(LIST_CHANGED_DELAY));
    let notes: Vec<Value> = h.client_out();
    let methods: Vec<&str> = notes.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(
        methods,
        [
            "notifications/tools/list_changed",
            "notifications/prompts/list_changed",
            "notifications/resources/list_changed"
        ]
    );
    h.send(call(json!(4), "beta__echo", json!({})));
    assert!(error_message(&h.client_one(), -32602).contains("Unknown tool"));
    h.send(call(json!(5), "gamma__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(2)]);
    assert_eq!(
        h.gw.backend_config(ALPHA).map(|c| c.args.clone()),
        Some(vec!["--new".to_string()])
    );
    let sent = h.finish_init(2);
    h.reply(2, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 5);
}

#[test]
fn reload_that_removes_and_adds_a_backend_again_reuses_its_slot() {
    let mut h = Harness::new("tools");
    let parse = |text: Value| {
        Config::parse(&text.to_string(), Path::new("test.json"), &|_| None).expect("valid")
    };
    let both = parse(json!({"expose": "tools", "backends": {
        "alpha": {"command": "alpha-cmd"}, "beta": {"command": "beta-cmd"}}}));
    let alpha_only = parse(json!({"expose": "tools", "backends": {
        "alpha": {"command": "alpha-cmd"}}}));
    let before = h.gw.backend_count();
    for _ in 0..50 {
        let done = h.gw.reload(h.now, &alpha_only);
        assert_eq!(done.removed, ["beta"]);
        let done = h.gw.reload(h.now, &both);
        assert_eq!(done.added, ["beta"]);
        assert!(done.changed.is_empty(), "{done:?}");
    }
    assert_eq!(h.gw.backend_count(), before, "no slot per reload");
    h.client_out();
    h.send(call(json!(1), "beta__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(BETA)]);
    let sent = h.finish_init(BETA);
    h.reply(BETA, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
}

// ----- sessions ------------------------------------------------------------------------------

/// A second session that initialized with `caps`.
fn second_session(h: &mut Harness, caps: Value) -> SessionId {
    let s = h.gw.open_session();
    h.send_as(
        s,
        request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": caps,
                   "clientInfo": {"name": "second", "version": "1"}}),
        ),
    );
    let out = h.out_of(s);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["id"], 0);
    s
}

#[test]
fn sessions_get_their_own_answers_even_with_the_same_request_id() {
    let mut h = Harness::new("tools");
    h.initialize("2025-06-18", json!({}));
    let b = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    h.send(call(json!(1), "alpha__echo", json!({"text": "a"})));
    h.send_as(b, call(json!(1), "alpha__echo", json!({"text": "b"})));
    let sent = h.backend_out(ALPHA);
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0]["id"], sent[1]["id"], "gateway ids differ");
    // Answered in the other order: each answer still reaches the session that asked.
    h.reply(
        ALPHA,
        &sent[1],
        r#"{"content":[{"type":"text","text":"for b"}]}"#,
    );
    h.reply(
        ALPHA,
        &sent[0],
        r#"{"content":[{"type":"text","text":"for a"}]}"#,
    );
    let a_out = h.client_out();
    let b_out = h.out_of(b);
    assert_eq!(a_out.len(), 1, "{a_out:#?}");
    assert_eq!(b_out.len(), 1, "{b_out:#?}");
    assert_eq!(a_out[0]["id"], 1);
    assert_eq!(a_out[0]["result"]["content"][0]["text"], "for a");
    assert_eq!(b_out[0]["result"]["content"][0]["text"], "for b");
}

#[test]
fn progress_and_cancellation_reach_only_the_session_that_owns_the_request() {
    let mut h = Harness::new("tools");
    let b = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    let with_token = |id: i64, token: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "alpha__slow", "arguments": {}, "_meta": {"progressToken": token}}})
    };
    h.send(with_token(7, "t"));
    h.send_as(b, with_token(7, "t"));
    let sent = h.backend_out(ALPHA);
    let progress = |h: &mut Harness, token: &str| {
        h.backend(
            ALPHA,
            &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1}})
            .to_string(),
        );
    };
    // Both sessions used token "t" (SDKs number tokens from the same start): the backend
    // must see unique tokens, so the second is rewritten, and progress for each goes back
    // to its own session with the token that session used.
    assert_eq!(sent[0]["params"]["_meta"]["progressToken"], "t");
    let wire = sent[1]["params"]["_meta"]["progressToken"]
        .as_str()
        .expect("a string token")
        .to_string();
    assert_ne!(wire, "t", "the backend sees two different tokens");
    progress(&mut h, "t");
    progress(&mut h, &wire);
    for out in [h.client_out(), h.out_of(b)] {
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0]["method"], "notifications/progress");
        assert_eq!(out[0]["params"]["progressToken"], "t");
    }
    // Session b cancels its id 7: only b's forwarded request is cancelled at the backend.
    h.send_as(
        b,
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}),
    );
    let cancel = h.backend_one(ALPHA, "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], sent[1]["id"]);
    // The first session's request is still answered.
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 7);
    assert!(
        h.out_of(b).is_empty(),
        "b's cancelled request is not answered"
    );
}

#[test]
fn list_changed_reaches_every_session() {
    let mut h = Harness::new("tools");
    let b = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
    );
    h.advance(ms(LIST_CHANGED_DELAY));
    for out in [h.client_out(), h.out_of(b)] {
        assert!(
            out.iter()
                .any(|m| m["method"] == "notifications/tools/list_changed"),
            "{out:#?}"
        );
    }
}

#[test]
fn a_backend_request_goes_to_the_session_it_serves_that_can_answer() {
    let mut h = Harness::new("tools");
    h.initialize("2025-06-18", json!({}));
    let b = second_session(&mut h, json!({"sampling": {}}));
    h.warm(ALPHA);
    // The first session's call is in flight, but it declared no sampling: b gets it.
    h.send(call(json!(1), "alpha__ask", json!({})));
    let sent = h.backend_one(ALPHA, "tools/call");
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[]}}"#,
    );
    assert!(
        h.client_out().is_empty(),
        "not to a session without sampling"
    );
    let asked = h.out_of(b);
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0]["method"], "sampling/createMessage");
    // Only b may answer it: the first session's answer with that id is dropped.
    let answer = json!({"jsonrpc": "2.0", "id": asked[0]["id"], "result": {"role": "assistant"}});
    h.send(answer.clone());
    assert!(
        h.backend_out(ALPHA).is_empty(),
        "the wrong session's answer is dropped"
    );
    h.send_as(b, answer);
    let back = h.backend_one_any(ALPHA);
    assert_eq!(back["id"], 0, "the backend's own id");
    h.reply(ALPHA, &sent, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
    // No session declares roots: the backend hears at once that no one can answer.
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":1,"method":"roots/list"}"#);
    let refused = h.backend_one_any(ALPHA);
    assert_eq!(refused["id"], 1);
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("roots/list")));
}

#[test]
fn each_session_hears_the_log_levels_it_asked_for() {
    let text = json!({"expose": "tools", "backends": {"alpha": {"command": "a"}}}).to_string();
    let mut h = Harness::from_json(&text);
    let b = second_session(&mut h, json!({}));
    h.send(request(
        json!(1),
        "logging/setLevel",
        json!({"level": "warning"}),
    ));
    assert_eq!(h.client_one()["id"], 1);
    h.send_as(
        b,
        request(json!(1), "logging/setLevel", json!({"level": "debug"})),
    );
    assert_eq!(h.out_of(b)[0]["id"], 1);
    // The backend starts at the most verbose level asked for.
    h.send(call(json!(2), "alpha__echo", json!({})));
    h.actions();
    let out = h.backend_out(ALPHA);
    let init = out
        .iter()
        .find(|m| m["method"] == "initialize")
        .expect("init");
    let caps = r#"{"protocolVersion":"2025-11-25","capabilities":{"logging":{},"tools":{}},"serverInfo":{"name":"m","version":"1"}}"#;
    h.reply(ALPHA, init, caps);
    let after = h.backend_out(ALPHA);
    let set = after
        .iter()
        .find(|m| m["method"] == "logging/setLevel")
        .expect("setLevel sent");
    assert_eq!(set["params"]["level"], "debug");
    let call_sent = after
        .iter()
        .find(|m| m["method"] == "tools/call")
        .expect("call")
        .clone();
    h.reply(ALPHA, set, "{}");
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#,
    );
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","data":"y"}}"#,
    );
    let logs = |out: Vec<Value>| -> Vec<String> {
        out.iter()
            .filter(|m| m["method"] == "notifications/message")
            .map(|m| m["params"]["level"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(logs(h.client_out()), ["error"]);
    assert_eq!(logs(h.out_of(b)), ["info", "error"]);
    h.reply(ALPHA, &call_sent, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 2);
}

#[test]
fn use_tool_calls_of_two_sessions_with_one_progress_token_reach_the_backend_distinct() {
    let mut h = Harness::new("meta");
    let b = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    let with_token = |id: i64| {
        let mut m = use_tool(json!(id), "alpha", "slow", json!({}));
        m["params"]["_meta"] = json!({"progressToken": 1});
        m
    };
    h.send(with_token(1));
    h.send_as(b, with_token(1));
    let sent = h.backend_out(ALPHA);
    let tokens: Vec<&Value> = sent
        .iter()
        .map(|m| &m["params"]["_meta"]["progressToken"])
        .collect();
    assert_eq!(tokens[0], &json!(1));
    assert_ne!(tokens[1], &json!(1), "{sent:#?}");
    h.backend(
        ALPHA,
        &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": tokens[1], "progress": 5}})
        .to_string(),
    );
    let got = h.out_of(b);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["params"]["progressToken"], 1, "b's own token");
    assert!(h.client_out().is_empty());
    for (i, m) in sent.iter().enumerate() {
        h.reply(ALPHA, m, r#"{"content":[]}"#);
        let out = if i == 0 { h.client_out() } else { h.out_of(b) };
        assert_eq!(out.len(), 1);
    }
}

/// Makes backend `b`'s resource lists known: it lists `uris`, and has no templates.
fn know_resources(h: &mut Harness, b: usize, uris: &[&str]) {
    use super::lists::Item;
    let items = uris
        .iter()
        .map(|u| Item {
            key: u.to_string(),
            raw: RawValue::from_string(json!({"uri": u, "name": u}).to_string()).expect("raw"),
        })
        .collect();
    let be = &mut h.gw.backends[b];
    be.lists[ListKind::Resources.index()] = ListState::Known(std::rc::Rc::new(items));
    be.lists[ListKind::Templates.index()] = ListState::Known(std::rc::Rc::new(Vec::new()));
}

#[test]
fn a_resource_subscription_is_shared_by_sessions_and_updates_reach_only_subscribers() {
    let mut h = Harness::new("tools");
    let b = second_session(&mut h, json!({}));
    let c = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    know_resources(&mut h, ALPHA, &["mem://a"]);
    know_resources(&mut h, BETA, &[]);
    let sub = |id: i64, method: &str| request(json!(id), method, json!({"uri": "mem://a"}));
    // The first subscribe reaches the backend; the second is answered by gangway.
    h.send(sub(1, "resources/subscribe"));
    let first = h.backend_one(ALPHA, "resources/subscribe");
    h.reply(ALPHA, &first, "{}");
    assert_eq!(h.client_one()["id"], 1);
    h.send_as(b, sub(1, "resources/subscribe"));
    assert!(h.backend_out(ALPHA).is_empty(), "one backend subscription");
    assert_eq!(h.out_of(b)[0]["id"], 1);
    // An update reaches the two subscribers, not the third session.
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"mem://a"}}"#,
    );
    assert_eq!(h.client_out().len(), 1);
    assert_eq!(h.out_of(b).len(), 1);
    assert!(h.out_of(c).is_empty(), "c did not subscribe");
    // The first unsubscribe is answered here; the last reaches the backend.
    h.send(sub(2, "resources/unsubscribe"));
    assert!(h.backend_out(ALPHA).is_empty());
    assert_eq!(h.client_one()["id"], 2);
    h.send_as(b, sub(2, "resources/unsubscribe"));
    let last = h.backend_one(ALPHA, "resources/unsubscribe");
    h.reply(ALPHA, &last, "{}");
    assert_eq!(h.out_of(b)[0]["id"], 2);
}

#[test]
fn a_session_that_ends_cancels_its_requests_and_others_notice_nothing() {
    let mut h = Harness::new("tools");
    h.initialize("2025-06-18", json!({}));
    let b = second_session(&mut h, json!({"sampling": {}}));
    h.warm(ALPHA);
    know_resources(&mut h, ALPHA, &["mem://a"]);
    know_resources(&mut h, BETA, &[]);
    h.send(call(json!(1), "alpha__slow", json!({})));
    h.send_as(b, call(json!(1), "alpha__slow", json!({})));
    h.send_as(
        b,
        request(json!(2), "resources/subscribe", json!({"uri": "mem://a"})),
    );
    let sent = h.backend_out(ALPHA);
    assert_eq!(sent.len(), 3, "{sent:#?}");
    h.reply(ALPHA, &sent[2], "{}");
    assert_eq!(h.out_of(b)[0]["id"], 2);
    // The backend asks b (the only session with sampling) something.
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":"q","method":"sampling/createMessage","params":{"messages":[]}}"#,
    );
    assert_eq!(h.out_of(b).len(), 1);
    h.gw.close_session(h.now, b);
    let to_backend = h.backend_out(ALPHA);
    let methods: Vec<&str> = to_backend
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("(answer)"))
        .collect();
    assert!(
        to_backend
            .iter()
            .any(|m| m["method"] == "notifications/cancelled"
                && m["params"]["requestId"] == sent[1]["id"]),
        "b's call is cancelled: {methods:?}"
    );
    assert!(
        to_backend
            .iter()
            .any(|m| m["id"] == "q" && m["error"].is_object()),
        "the backend's question to b is answered with an error: {to_backend:#?}"
    );
    let unsub = to_backend
        .iter()
        .find(|m| m["method"] == "resources/unsubscribe")
        .unwrap_or_else(|| panic!("b's subscription is withdrawn: {to_backend:#?}"))
        .clone();
    h.reply(ALPHA, &unsub, "{}");
    // The first session's call goes on and is answered; a late answer for b is dropped.
    h.reply(ALPHA, &sent[1], r#"{"content":[]}"#);
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    let out = h.client_out();
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["id"], 1);
    assert!(h.gw.session_out(b).is_none(), "b is gone");
}

#[test]
fn a_backend_with_a_subscribed_resource_is_not_stopped_for_idling() {
    let mut h = Harness::with("tools", 5.0, 1.0);
    h.warm(ALPHA);
    know_resources(&mut h, ALPHA, &["mem://a"]);
    know_resources(&mut h, BETA, &[]);
    h.send(request(
        json!(1),
        "resources/subscribe",
        json!({"uri": "mem://a"}),
    ));
    let sub = h.backend_one(ALPHA, "resources/subscribe");
    h.reply(ALPHA, &sub, "{}");
    assert_eq!(h.client_one()["id"], 1);
    h.advance(5_000);
    assert!(
        h.actions().is_empty(),
        "kept while a client watches its resource"
    );
    h.send(request(
        json!(2),
        "resources/unsubscribe",
        json!({"uri": "mem://a"}),
    ));
    let unsub = h.backend_one(ALPHA, "resources/unsubscribe");
    h.reply(ALPHA, &unsub, "{}");
    assert_eq!(h.client_one()["id"], 2);
    h.advance(1_000);
    assert_eq!(
        h.actions(),
        vec![Action::CloseStdin(ALPHA)],
        "idle once unwatched"
    );
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
}

#[test]
fn a_task_is_visible_only_to_the_session_that_created_it_and_keeps_its_backend() {
    let mut h = Harness::with("tools", 5.0, 1.0);
    let b = second_session(&mut h, json!({}));
    h.warm(BETA);
    let mut c = call(json!(1), "beta__slow", json!({}));
    c["params"]["task"] = json!({"ttl": 60000});
    h.send(c);
    let sent = h.backend_one(BETA, "tools/call");
    h.reply(
        BETA,
        &sent,
        r#"{"task":{"taskId":"t-1","status":"working"}}"#,
    );
    assert_eq!(h.client_one()["result"]["task"]["taskId"], "beta__t-1");
    // The other session cannot reach it, nor see it listed.
    h.send_as(
        b,
        request(json!(2), "tasks/get", json!({"taskId": "beta__t-1"})),
    );
    let refused = h.out_of(b);
    assert!(error_message(&refused[0], -32602).contains("Unknown task"));
    assert!(h.backend_out(BETA).is_empty());
    h.send_as(b, request(json!(3), "tasks/list", json!({})));
    let page = h.backend_one(BETA, "tasks/list");
    h.reply(
        BETA,
        &page,
        r#"{"tasks":[{"taskId":"t-1","status":"working"},{"taskId":"t-9","status":"working"}]}"#,
    );
    let listed = h.out_of(b);
    let ids: Vec<&Value> = listed[0]["result"]["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| &t["taskId"])
        .collect();
    assert_eq!(
        ids,
        [&json!("beta__t-9")],
        "only tasks not another session's"
    );
    // A running task keeps its backend from being reaped; its news reach its session only.
    h.advance(3_000);
    assert!(h.actions().is_empty(), "kept while its task runs");
    h.backend(BETA, r#"{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t-1","status":"completed"}}"#);
    assert_eq!(h.client_one()["params"]["taskId"], "beta__t-1");
    assert!(h.out_of(b).is_empty());
    h.send(request(json!(4), "ping", json!({})));
    h.client_one();
    h.advance(1_000);
    assert_eq!(
        h.actions(),
        vec![Action::CloseStdin(BETA)],
        "idle once it finished"
    );
    h.gw.on_backend_exit(h.now, BETA, "exit status 0");
}

#[test]
fn a_session_scoped_backend_runs_one_process_per_session_and_stops_with_it() {
    let text = json!({"expose": "tools", "backends": {
        "alpha": {"command": "browser-mcp", "scope": "session"},
        "beta": {"command": "b"}}})
    .to_string();
    let mut h = Harness::from_json(&text);
    let b = second_session(&mut h, json!({}));
    let listed = h.gw.backend_count();
    // Each session's first call starts a process of its own.
    h.send(call(json!(1), "alpha__echo", json!({})));
    let first = h.actions();
    h.send_as(b, call(json!(1), "alpha__echo", json!({})));
    let second = h.actions();
    let (Some(Action::Spawn(pa)), Some(Action::Spawn(pb))) = (first.first(), second.first()) else {
        panic!("each session spawns: {first:?} {second:?}");
    };
    let (pa, pb) = (*pa, *pb);
    assert_ne!(pa, pb, "two processes");
    assert!(pa >= listed && pb >= listed, "not the listed slot");
    for (p, out_of_a) in [(pa, true), (pb, false)] {
        let sent = h.finish_init(p);
        h.reply(p, &sent[0], r#"{"content":[]}"#);
        let out = if out_of_a {
            h.client_out()
        } else {
            h.out_of(b)
        };
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0]["id"], 1);
    }
    // A session's next call goes to its own process again.
    h.send_as(b, call(json!(2), "alpha__echo", json!({})));
    assert!(h.actions().is_empty());
    let sent = h.backend_one(pb, "tools/call");
    h.reply(pb, &sent, r#"{"content":[]}"#);
    assert_eq!(h.out_of(b)[0]["id"], 2);
    // Its session ends: its process stops; the other session's does not.
    h.gw.close_session(h.now, b);
    assert_eq!(h.actions(), vec![Action::CloseStdin(pb)]);
    h.gw.on_backend_exit(h.now, pb, "exit status 0");
    // A new session takes the freed slot: the table does not grow with sessions.
    let c = second_session(&mut h, json!({}));
    h.send_as(c, call(json!(1), "alpha__echo", json!({})));
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(pb)],
        "the slot is used again"
    );
    let sent = h.finish_init(pb);
    h.reply(pb, &sent[0], r#"{"content":[]}"#);
    assert_eq!(h.out_of(c)[0]["id"], 1);
    // A shared backend still has one process for everyone.
    h.send(call(json!(3), "beta__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(BETA)]);
    h.send_as(c, call(json!(3), "beta__echo", json!({})));
    assert!(h.actions().is_empty(), "no second process");
    let sent = h.finish_init(BETA);
    assert_eq!(sent.len(), 2);
    for m in &sent {
        h.reply(BETA, m, r#"{"content":[]}"#);
    }
    assert_eq!(h.client_one()["id"], 3);
    assert_eq!(h.out_of(c)[0]["id"], 3);
}

#[test]
fn client_input_pauses_as_soon_as_a_reading_backend_is_past_its_pause_bound() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    let half = |id: i64| {
        call(
            json!(id),
            "alpha__echo",
            json!({"text": "x".repeat(BACKEND_IN_PAUSE * 3 / 5)}),
        )
    };
    h.send(half(1));
    assert!(h.gw.accepts_client_input(h.now, h.s), "three fifths behind");
    // The write that puts it past the pause bound pauses the client at once, within the
    // same turn of reads, not at the next timer.
    h.send(half(2));
    assert!(h.gw.out.backends[ALPHA].len() > BACKEND_IN_PAUSE);
    assert!(!h.gw.accepts_client_input(h.now, h.s));
    assert!(h.client_out().is_empty(), "paused, not refused");
    // It reads: the client goes on once it is under the bound again.
    h.gw.out.backends[ALPHA].consume(BACKEND_IN_PAUSE * 3 / 5);
    h.advance(0);
    assert!(h.gw.accepts_client_input(h.now, h.s));
    h.check_settled = false;
}

#[test]
fn past_its_first_bound_a_backend_may_fall_behind_while_it_reads_but_not_while_stalled() {
    let mut h = Harness::new("tools");
    h.warm(ALPHA);
    let big = |id: i64| {
        call(
            json!(id),
            "alpha__echo",
            json!({"text": "x".repeat(1 << 20)}),
        )
    };
    for id in 1..=10 {
        h.send(big(id));
    }
    assert!(
        h.client_out().is_empty(),
        "a burst past 8 MiB is held, not refused"
    );
    assert!(h.gw.out.backends[ALPHA].len() > BACKEND_IN_BOUND);
    // While it may still be reading, the client is paused (backpressure)...
    h.advance(0);
    assert!(!h.gw.accepts_client_input(h.now, h.s));
    // ...until a second passes with none of it read (a wakeup is due then): it is not
    // reading, and pauses nobody.
    assert_eq!(h.gw.next_deadline(), Some(h.now + BACKEND_STALL));
    h.advance(ms(BACKEND_STALL));
    assert!(h.gw.accepts_client_input(h.now, h.s));
    h.send(big(11));
    let text = error_message(&h.client_one(), -32000);
    assert!(text.contains("not reading its input"), "{text}");
    // It reads again: requests are taken again.
    h.gw.out.backends[ALPHA].consume(1 << 20);
    h.send(big(12));
    assert!(h.client_out().is_empty(), "taken while it reads");
    h.check_settled = false;
}

#[test]
fn status_counts_calls_by_outcome_starts_crashes_restarts_and_idle_stops() {
    let mut h = Harness::with("tools", 5.0, 1.0);
    h.initialize("2025-06-18", json!({}));
    h.warm(ALPHA);
    h.advance(3);
    h.send(call(json!(1), "alpha__echo", json!({})));
    let sent = h.backend_one(ALPHA, "tools/call");
    h.advance(20);
    h.reply(ALPHA, &sent, r#"{"content":[],"isError":true}"#);
    h.client_one();
    h.send(call(json!(2), "alpha__echo", json!({})));
    let sent = h.backend_one(ALPHA, "tools/call");
    h.backend(
        ALPHA,
        &format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-1,"message":"no"}}}}"#,
            raw_id(&sent)
        ),
    );
    h.client_one();
    let st = h.gw.status(h.now);
    let alpha = &st.backends[ALPHA];
    assert_eq!((alpha.name.as_str(), alpha.state), ("alpha", "ready"));
    assert_eq!(
        alpha.stats.requests[&("tools/call", stats::Outcome::Ok)],
        1,
        "the warm-up call"
    );
    assert_eq!(
        alpha.stats.requests[&("tools/call", stats::Outcome::ToolError)],
        1
    );
    assert_eq!(
        alpha.stats.requests[&("tools/call", stats::Outcome::Error)],
        1
    );
    assert_eq!(alpha.stats.latency.count, 3);
    assert!(
        alpha.stats.latency.sum >= 0.020,
        "{}",
        alpha.stats.latency.sum
    );
    assert_eq!(
        (alpha.stats.starts, alpha.stats.start_seconds.count),
        (1, 1)
    );
    assert!(alpha
        .idle_stop_in
        .is_some_and(|d| d <= Duration::from_secs(1)));
    assert_eq!(st.backends[BETA].state, "stopped");
    assert_eq!(st.sessions, 1);
    // A crash, then a restart by the next call.
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 3");
    h.send(call(json!(3), "alpha__echo", json!({})));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    h.client_one();
    h.advance(1_100);
    let st = h.gw.status(h.now);
    let s = &st.backends[ALPHA].stats;
    assert_eq!((s.crashes, s.restarts, s.starts), (1, 1, 2));
    assert_eq!(s.idle_stops, 1, "stopped for idling");
    assert_eq!(st.backends[ALPHA].state, "stopping");
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
}

#[test]
fn the_controls_start_stop_and_restart_a_backend_by_name() {
    let mut h = Harness::new("tools");
    h.initialize("2025-06-18", json!({}));
    assert!(h.gw.start_backend(h.now, "nope").is_err());
    h.gw.start_backend(h.now, "alpha").expect("alpha starts");
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.finish_init(ALPHA);
    assert_eq!(h.gw.status(h.now).backends[ALPHA].state, "ready");
    h.gw.restart_backend(h.now, "alpha")
        .expect("alpha restarts");
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA)],
        "a new process after the exit"
    );
    h.finish_init(ALPHA);
    h.gw.stop_backend(h.now, "alpha").expect("alpha stops");
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert!(h.actions().is_empty(), "stopped stays stopped");
    let st = h.gw.status(h.now);
    assert_eq!(st.backends[ALPHA].state, "stopped");
    assert_eq!(st.backends[ALPHA].stats.starts, 2);
}

#[test]
fn a_stdio_client_past_its_rate_gets_a_json_rpc_error_and_is_served_again_later() {
    let mut h = Harness::from_json(
        r#"{"rate_limit": {"requests_per_second": 2, "burst": 2}, "backends": {"alpha": {"command": "a"}}}"#,
    );
    for id in 1..=2 {
        h.client(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        assert!(h.client_one().get("result").is_some());
    }
    h.client(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#);
    let refused = h.client_one();
    let text = error_message(&refused, -32029);
    assert!(text.contains("retry in 500 ms"), "{refused}");
    h.client(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert!(h.client_lines().is_empty(), "a notification is not refused");
    h.advance(500);
    h.client(r#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#);
    assert!(h.client_one().get("result").is_some());
    // gangway's own shell commands are not limited.
    let shell = h.gw.open_shell_session();
    for id in 10..15 {
        h.client_as(
            shell,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#),
        );
    }
    assert_eq!(h.out_of(shell).len(), 5);
}

#[test]
fn a_warm_backend_starts_with_serving_stays_up_when_idle_and_comes_back_after_a_crash() {
    let mut h = Harness::from_json(
        r#"{"expose": "tools", "idle_timeout": 1, "backends": {"alpha": {"command": "a", "keep_warm": true}, "beta": {"command": "b"}}}"#,
    );
    h.gw.keep_warm(h.now);
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA)],
        "only the warm one starts"
    );
    let init = h.backend_one(ALPHA, "initialize");
    assert!(
        init["params"]["capabilities"]["sampling"].is_object(),
        "before any client, a warm start declares what gangway can route: {init}"
    );
    h.reply(ALPHA, &init, INIT_RESULT);
    h.backend_lines(ALPHA);
    h.advance(5_000);
    assert!(h.actions().is_empty(), "not stopped for idling");
    assert_eq!(h.gw.status(h.now).backends[ALPHA].state, "ready");
    h.gw.on_backend_exit(h.now, ALPHA, "signal 9");
    assert_eq!(
        h.actions(),
        vec![Action::Spawn(ALPHA)],
        "started again after the crash"
    );
    h.finish_init(ALPHA);
    // Stopped from the status page, it stays stopped until started again.
    h.gw.stop_backend(h.now, "alpha").expect("stops");
    assert_eq!(h.actions(), vec![Action::CloseStdin(ALPHA)]);
    h.gw.on_backend_exit(h.now, ALPHA, "exit status 0");
    assert!(h.actions().is_empty(), "held stopped");
    h.gw.start_backend(h.now, "alpha").expect("starts");
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    h.finish_init(ALPHA);
}

#[test]
fn a_warm_session_scoped_backend_keeps_spares_and_hands_one_to_a_new_session() {
    let mut h = Harness::from_json(
        r#"{"expose": "tools", "backends": {"alpha": {"command": "a", "scope": "session", "keep_warm": 2}}}"#,
    );
    h.initialize("2025-06-18", json!({}));
    h.gw.keep_warm(h.now);
    let spawned = h.actions();
    assert_eq!(spawned.len(), 2, "two spares: {spawned:?}");
    let spares: Vec<usize> = spawned
        .iter()
        .map(|a| match a {
            Action::Spawn(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect();
    for &i in &spares {
        h.finish_init(i);
    }
    h.send(call(json!(1), "alpha__echo", json!({})));
    let took = spares
        .iter()
        .copied()
        .find(|&i| !h.gw.out.backends[i].is_empty())
        .expect("the call went to a spare");
    let sent = h.backend_one(took, "tools/call");
    h.reply(took, &sent, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
    let replaced = h.actions();
    assert_eq!(
        replaced.len(),
        1,
        "a new spare replaces the one taken: {replaced:?}"
    );
    if let Action::Spawn(i) = replaced[0] {
        h.finish_init(i);
    }
}

#[test]
fn a_modern_client_is_answered_in_the_2026_07_28_shape() {
    let mut h = Harness::new("tools");
    let meta = |v: &str| json!({"io.modelcontextprotocol/protocolVersion": v, "io.modelcontextprotocol/clientCapabilities": {}});
    // A version gangway does not speak: the revision's error with what it does speak.
    h.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta("2099-01-01")}}));
    let e = h.client_one();
    assert_eq!(e["error"]["code"], -32022);
    assert_eq!(
        e["error"]["data"],
        json!({"supported": ["2026-07-28"], "requested": "2099-01-01"})
    );
    // The session is modern now: discover is answered, the handshake and ping are not.
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": meta("2026-07-28")}}));
    let d = h.client_one();
    assert_eq!(d["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(d["result"]["resultType"], "complete");
    assert_eq!(d["result"]["cacheScope"], "private");
    h.send(json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}));
    assert_eq!(h.client_one()["error"]["code"], -32022);
    h.send(json!({"jsonrpc": "2.0", "id": 4, "method": "ping", "params": {"_meta": meta("2026-07-28")}}));
    assert_eq!(h.client_one()["error"]["code"], -32601);
    h.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}));
    assert_eq!(h.client_one()["error"]["code"], -32602);
    // A backend's result gets its resultType on the way.
    h.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "_meta": meta("2026-07-28")}}));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    h.reply(ALPHA, &sent[0], r#"{"content":[]}"#);
    let r = h.client_one();
    assert_eq!(r["id"], 6);
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["content"], json!([]));
    // A session whose first request was of the handshake era stays there.
    let mut h = Harness::new("tools");
    h.send(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_eq!(h.client_one()["result"], json!({}));
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": meta("2026-07-28")}}));
    assert_eq!(h.client_one()["error"]["code"], -32600);
}

#[test]
fn a_modern_listen_carries_the_list_changes_it_asked_for_until_cancelled() {
    let mut h = Harness::new("tools");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    h.send(json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["x:/y"]}, "_meta": meta}}));
    let ack = h.client_one();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    // Honored: the tool list changes; no backend is known to own x:/y, so it is left out.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    h.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}));
    h.actions();
    let a = h.finish_init(ALPHA);
    let b = h.finish_init(BETA);
    h.reply(ALPHA, &a[0], &tools_page(&["echo"], None));
    h.reply(BETA, &b[0], &tools_page(&["fetch"], None));
    let listed = h.client_one();
    assert_eq!(listed["result"]["resultType"], "complete");
    // Every backend's list is known: the client may keep it a minute.
    assert_eq!(listed["result"]["ttlMs"], 60_000);
    assert_eq!(listed["result"]["cacheScope"], "private");
    let change = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    h.backend(ALPHA, change);
    h.advance(50);
    assert_eq!(
        h.client_lines(),
        vec![
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"listen-1"}}}"#
        ]
    );
    // Alpha's list is unknown since its change: a list without it is not to be kept.
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}));
    let again = h.backend_one(ALPHA, "tools/list");
    h.advance(5_100);
    let partial = h.client_one();
    assert_eq!(partial["id"], 2);
    assert_eq!(partial["result"]["ttlMs"], 0, "{partial}");
    h.reply(ALPHA, &again, &tools_page(&["echo"], None));
    h.advance(50);
    h.client_lines();
    // Cancelled: the listen ends, and list changes are not sent outside one.
    h.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "listen-1"}}));
    h.backend(ALPHA, change);
    h.advance(50);
    assert!(h.client_lines().is_empty());
}

#[test]
fn a_backend_ask_during_a_modern_call_travels_in_an_input_required_result() {
    let mut h = Harness::new("tools");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}});
    h.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "_meta": meta}}));
    assert_eq!(h.actions(), vec![Action::Spawn(ALPHA)]);
    let sent = h.finish_init(ALPHA);
    let call = &sent[0];
    // The backend asks the client during the call: the call is answered with the ask.
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}"#);
    let asked = h.client_one();
    assert_eq!(asked["id"], 1);
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required");
    assert_eq!(
        result["inputRequests"]["gangway"]["method"],
        "sampling/createMessage"
    );
    assert_eq!(result["inputRequests"]["gangway"]["params"]["maxTokens"], 5);
    let state = result["requestState"]
        .as_str()
        .expect("a requestState")
        .to_string();
    assert!(h.backend_out(ALPHA).is_empty(), "the backend waits");
    // A retry with a state gangway never gave is refused.
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "requestState": "forged", "_meta": meta}}));
    assert_eq!(h.client_one()["error"]["code"], -32602);
    // The retry brings the answer to the backend, under the backend's own id...
    h.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {},
        "inputResponses": {"gangway": {"role": "assistant", "content": {"type": "text", "text": "yo"}, "model": "m"}},
        "requestState": state, "_meta": meta}}));
    let answer = h.backend_out(ALPHA);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["id"], 0);
    assert_eq!(answer[0]["result"]["content"]["text"], "yo");
    // ...and the call's result answers the retry.
    h.reply(ALPHA, call, r#"{"content":[]}"#);
    let done = h.client_one();
    assert_eq!(done["id"], 3);
    assert_eq!(done["result"]["resultType"], "complete");
    // A state is used once.
    h.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "requestState": state, "_meta": meta}}));
    assert_eq!(h.client_one()["error"]["code"], -32602);
    // A backend that answers the call before the retry: its answer waits for the retry.
    h.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "_meta": meta}}));
    let call = h.backend_one(ALPHA, "tools/call");
    let state = h.asked(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
    );
    h.reply(
        ALPHA,
        &call,
        r#"{"content":[{"type":"text","text":"gave up"}]}"#,
    );
    assert!(
        h.client_lines().is_empty(),
        "no answer under an id the client never used"
    );
    // The backend's request will not be answered by the client now: it hears so.
    let released = h.backend_one_any(ALPHA);
    assert_eq!(released["id"], 1);
    assert!(released["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("ended before the client answered")));
    h.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {}, "inputResponses": {}, "requestState": state, "_meta": meta}}));
    let done = h.client_one();
    assert_eq!(done["id"], 6);
    assert_eq!(done["result"]["content"][0]["text"], "gave up");
    assert!(
        h.backend_out(ALPHA).is_empty(),
        "nothing waits at the backend"
    );
}

/// A modern session's first request (`_meta` carries the 2026-07-28 envelope): over HTTP
/// each request is a session of its own.
fn modern_call(id: Value, tool: &str, extra: Value) -> Value {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"sampling": {}, "elicitation": {}, "roots": {}}});
    let mut params = json!({"name": tool, "arguments": {}, "_meta": meta});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

#[test]
fn a_modern_retry_in_another_session_takes_the_suspended_call_over() {
    let mut h = Harness::new("tools");
    let a = h.s;
    h.send(modern_call(
        json!(1),
        "alpha__echo",
        json!({"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}, "progressToken": "p"}}),
    ));
    h.actions();
    let call = h.finish_init(ALPHA).remove(0);
    assert!(!h.gw.waits_for_retry(a));
    let state = h.asked(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#,
    );
    assert!(h.gw.waits_for_retry(a), "the call waits for its retry");
    // The call's own timeout (5 s) is paused while the client answers.
    h.advance(6_000);
    assert!(h.client_lines().is_empty());
    assert!(h.backend_out(ALPHA).is_empty());
    // The retry comes in another session (another HTTP request): a state names the
    // call of its method only.
    let b = h.gw.open_session();
    h.send_as(b, json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "x", "requestState": state,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}));
    assert_eq!(h.out_of(b)[0]["error"]["code"], -32602);
    h.send_as(b, modern_call(json!(7), "alpha__echo", json!({"requestState": state,
        "inputResponses": {"gangway": {"role": "assistant", "content": {"type": "text", "text": "yo"}, "model": "m"}},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}, "progressToken": 7}})));
    let answer = h.backend_one_any(ALPHA);
    assert_eq!(answer["id"], "s1");
    assert_eq!(answer["result"]["model"], "m");
    assert!(!h.gw.waits_for_retry(a), "the call is b's now");
    // Progress and the answer go to b, under its id and its own progress token.
    let progress = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{},"progress":1}}}}"#,
        call["params"]["_meta"]["progressToken"]
    );
    h.backend(ALPHA, &progress);
    h.reply(ALPHA, &call, r#"{"content":[]}"#);
    let out = h.out_of(b);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0]["params"]["progressToken"], 7);
    assert_eq!(out[1]["id"], 7);
    assert_eq!(out[1]["result"]["resultType"], "complete");
    assert!(h.client_lines().is_empty(), "a hears nothing more");
}

#[test]
fn a_retried_call_times_out_again_and_an_unretried_ask_expires() {
    let mut h = Harness::new("tools");
    let call = h.first_modern_call();
    let state = h.asked(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"elicitation/create","params":{}}"#,
    );
    // A second request of the backend during the suspended call is refused, saying why.
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
    );
    let refused = h.backend_one_any(ALPHA);
    assert_eq!(refused["id"], 1);
    let text = refused["error"]["message"].as_str().unwrap_or("");
    assert!(text.contains("one round at a time"), "{text}");
    // After the retry, the call's timeout runs again.
    h.send(modern_call(
        json!(2),
        "alpha__echo",
        json!({"requestState": state, "inputResponses": {"gangway": {"action": "decline"}}}),
    ));
    assert_eq!(h.backend_one_any(ALPHA)["result"]["action"], "decline");
    h.advance(5_100);
    let timed_out = h.client_one();
    assert_eq!(timed_out["id"], 2);
    assert_eq!(timed_out["error"]["code"], -32001);
    let cancel = h.backend_one(ALPHA, "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], call["id"]);
    // A call whose client never retries: after client_request_timeout (600 s) the
    // backend's request gets a timeout error and the call is cancelled.
    h.send(modern_call(json!(3), "alpha__echo", json!({})));
    let call = h.backend_one(ALPHA, "tools/call");
    let state = h.asked(ALPHA, r#"{"jsonrpc":"2.0","id":2,"method":"roots/list"}"#);
    h.advance(599_000);
    assert!(h.backend_out(ALPHA).is_empty(), "still waiting");
    h.advance(1_100);
    let out = h.backend_out(ALPHA);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0]["id"], 2);
    assert_eq!(out[0]["error"]["code"], -32001);
    assert!(out[0]["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("did not retry")));
    assert_eq!(out[1]["method"], "notifications/cancelled");
    assert_eq!(out[1]["params"]["requestId"], call["id"]);
    assert!(h.client_lines().is_empty());
    h.send(modern_call(
        json!(4),
        "alpha__echo",
        json!({"requestState": state, "inputResponses": {}}),
    ));
    assert_eq!(h.client_one()["error"]["code"], -32602);
}

#[test]
fn a_session_that_ends_answers_its_suspended_calls_backend_requests() {
    let mut h = Harness::new("tools");
    let a = h.s;
    let call = h.first_modern_call();
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}"#,
    );
    assert_eq!(h.client_one()["result"]["resultType"], "input_required");
    h.gw.close_session(h.now, a);
    let out = h.backend_out(ALPHA);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0]["id"], 9);
    assert!(out[0]["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("session ended")));
    assert_eq!(out[1]["method"], "notifications/cancelled");
    assert_eq!(out[1]["params"]["requestId"], call["id"]);
    assert!(!h.gw.waits_for_retry(a));
}

#[test]
fn a_modern_listen_subscribes_to_resources_and_carries_their_updates() {
    let mut h = Harness::new("tools");
    let handshake = second_session(&mut h, json!({}));
    h.warm(ALPHA);
    // Alpha takes subscriptions; beta did not say it does.
    let caps = r#"{"protocolVersion":"2025-11-25","capabilities":{"resources":{"subscribe":true}},"serverInfo":{"name":"a","version":"1"}}"#;
    h.gw.backends[ALPHA].init_result = RawValue::from_string(caps.to_string()).ok();
    h.warm(BETA);
    // h.s is a handshake-era session now; the modern client is another.
    let m = h.gw.open_session();
    know_resources(&mut h, ALPHA, &["mem://a", "mem://b"]);
    know_resources(&mut h, BETA, &["mem://beta"]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let listen = |id: &str, uris: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": {"resourceSubscriptions": uris}, "_meta": meta}})
    };
    h.send_as(
        m,
        listen(
            "listen-1",
            json!(["mem://a", "nobody://owns-this", "mem://beta"]),
        ),
    );
    let ack = h.out_of(m).remove(0);
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": ["mem://a"]}),
        "only what a backend that takes subscriptions owns is honored"
    );
    let sub = h.backend_one(ALPHA, "resources/subscribe");
    assert_eq!(sub["params"]["uri"], "mem://a");
    h.reply(ALPHA, &sub, "{}");
    assert!(h.out_of(m).is_empty(), "gangway's own answer");
    // A second listen of the same resource shares the subscription.
    h.send_as(m, listen("listen-2", json!(["mem://a"])));
    assert_eq!(h.out_of(m).len(), 1);
    assert!(h.backend_out(ALPHA).is_empty());
    // An update goes to each listen with its id; a handshake session that did not
    // subscribe hears nothing.
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"mem://a"}}"#);
    let out = h.out_of(m);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0]["params"]["uri"], "mem://a");
    assert_eq!(
        out[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    assert_eq!(
        out[1]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-2"
    );
    assert!(h.out_of(handshake).is_empty());
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"mem://b"}}"#);
    assert!(h.out_of(m).is_empty(), "not subscribed");
    // The backend's subscription ends with the last listen that holds it.
    h.send_as(m, json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "listen-1"}}));
    assert!(h.backend_out(ALPHA).is_empty());
    h.send_as(m, json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "listen-2"}}));
    let unsub = h.backend_one(ALPHA, "resources/unsubscribe");
    assert_eq!(unsub["params"]["uri"], "mem://a");
    h.reply(ALPHA, &unsub, "{}");
}

#[test]
fn a_modern_client_hears_log_messages_only_at_the_level_its_request_asked_for() {
    let mut h = Harness::new("tools");
    // Alpha runs, declaring logging.
    h.send(call(json!(1), "alpha__echo", json!({})));
    h.actions();
    let out = h.backend_out(ALPHA);
    let caps = r#"{"protocolVersion":"2025-11-25","capabilities":{"logging":{},"tools":{}},"serverInfo":{"name":"m","version":"1"}}"#;
    h.reply(ALPHA, &out[0], caps);
    let sent = h.backend_out(ALPHA);
    h.reply(ALPHA, &sent[1], r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
    let m = h.gw.open_session();
    let log = |level: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"{level}","data":"x"}}}}"#
        )
    };
    let discover = |meta: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}});
    let envelope = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    h.send_as(m, discover(envelope.clone()));
    h.out_of(m).remove(0);
    // No logLevel: no log messages at all.
    h.backend(ALPHA, &log("emergency"));
    assert!(h.out_of(m).is_empty());
    // logLevel warning: that level and above; the backend is asked to log that much.
    let mut with_level = envelope.clone();
    with_level["io.modelcontextprotocol/logLevel"] = json!("warning");
    h.send_as(m, discover(with_level));
    h.out_of(m).remove(0);
    let set = h.backend_one(ALPHA, "logging/setLevel");
    assert_eq!(set["params"]["level"], "warning");
    h.reply(ALPHA, &set, "{}");
    h.backend(ALPHA, &log("info"));
    h.backend(ALPHA, &log("error"));
    let out = h.out_of(m);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0]["params"]["level"], "error");
    // The next request without it turns them off again.
    h.send_as(m, discover(envelope));
    h.out_of(m).remove(0);
    h.backend(ALPHA, &log("error"));
    assert!(h.out_of(m).is_empty());
}

#[test]
fn a_backend_request_during_a_suspended_call_goes_to_the_next_call_it_serves() {
    let mut h = Harness::new("tools");
    let (m1, m2) = (h.gw.open_session(), h.gw.open_session());
    h.send_as(m1, modern_call(json!(1), "alpha__echo", json!({})));
    h.actions();
    h.finish_init(ALPHA);
    h.send_as(m2, modern_call(json!(1), "alpha__echo", json!({})));
    h.backend_one(ALPHA, "tools/call");
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#,
    );
    assert_eq!(h.out_of(m1)[0]["result"]["resultType"], "input_required");
    // m1's call waits for its client: the next request is m2's call's, not refused (one
    // slow answer does not hold the others up).
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#,
    );
    assert_eq!(h.out_of(m2)[0]["result"]["resultType"], "input_required");
    assert!(h.out_of(m1).is_empty());
    // Both wait now: a third is refused, saying why.
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":2,"method":"sampling/createMessage","params":{}}"#,
    );
    let refused = h.backend_one_any(ALPHA);
    assert_eq!(refused["id"], 2);
    assert_eq!(refused["error"]["code"], -32000);
    h.check_settled = false;
}

#[test]
fn a_bad_log_level_is_refused_and_leaves_the_session_modern() {
    let mut h = Harness::new("tools");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/logLevel": 3});
    h.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    );
    let refused = h.client_one();
    assert_eq!(refused["error"]["code"], -32602);
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("logLevel")));
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/logLevel": "info"});
    h.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": meta}}),
    );
    assert_eq!(
        h.client_one()["result"]["supportedVersions"][0],
        "2026-07-28"
    );
}

#[test]
fn stopping_ends_every_ask_at_once() {
    let mut h = Harness::new("tools");
    let call = h.first_modern_call();
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":4,"method":"elicitation/create","params":{}}"#,
    );
    assert_eq!(h.client_one()["result"]["resultType"], "input_required");
    // No retry can come once gangway stops: the ask does not hold the drain up.
    h.gw.on_drain(h.now, Duration::from_secs(10));
    let out = h.backend_out(ALPHA);
    assert_eq!(out[0]["id"], 4, "{out:#?}");
    assert!(out[0]["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("shutting down")));
    assert_eq!(out[1]["method"], "notifications/cancelled");
    assert_eq!(out[1]["params"]["requestId"], call["id"]);
    assert_eq!(
        h.gw.client_requests_pending(),
        0,
        "nothing holds the drain up"
    );
    assert!(!h.gw.waits_for_retry(h.s));
}

#[test]
fn a_client_reusing_a_placeholder_id_neither_ends_nor_cancels_the_ask() {
    let mut h = Harness::new("tools");
    let call = h.first_modern_call();
    let state = h.asked(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#,
    );
    let placeholder = json!(format!("input-required:{state}"));
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    // A request of the client's under that id is answered as any other (here: the id is
    // in use), and the ask goes on.
    h.send(
        json!({"jsonrpc": "2.0", "id": placeholder, "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {}, "_meta": meta}}),
    );
    let answer = h.client_one();
    assert_eq!(answer["id"], placeholder);
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert!(h.gw.waits_for_retry(h.s));
    assert!(h.backend_out(ALPHA).is_empty());
    // Cancelling it is ignored: the client has its answer (the InputRequiredResult).
    h.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": placeholder}}));
    assert!(h.backend_out(ALPHA).is_empty(), "the call goes on");
    assert!(h.gw.waits_for_retry(h.s));
    // The retry still takes the call over.
    h.send(modern_call(json!(2), "alpha__echo", json!({"requestState": state, "inputResponses": {"gangway": {"model": "m", "role": "assistant", "content": {"type": "text", "text": "x"}}}})));
    assert_eq!(h.backend_one_any(ALPHA)["id"], 0);
    h.reply(ALPHA, &call, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 2);
}

#[test]
fn only_what_a_modern_client_declared_is_asked_and_a_malformed_retry_is_refused() {
    let mut h = Harness::new("tools");
    // This client declares sampling only (`modern_call` declares all three, so another).
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}});
    h.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {}, "_meta": meta}}));
    h.actions();
    let call = h.finish_init(ALPHA).remove(0);
    h.backend(ALPHA, r#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#);
    let refused = h.backend_one_any(ALPHA);
    assert_eq!(refused["id"], 0);
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
    assert!(h.client_lines().is_empty(), "roots were not declared");
    // A retry that is not one (inputResponses not an object) is refused, not forwarded.
    h.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {}, "requestState": "x", "inputResponses": [], "_meta": meta}}));
    assert_eq!(h.client_one()["error"]["code"], -32602);
    assert!(h.backend_out(ALPHA).is_empty());
    h.reply(ALPHA, &call, r#"{"content":[]}"#);
    assert_eq!(h.client_one()["id"], 1);
}

#[test]
fn once_gangway_stops_a_backend_request_during_a_modern_call_is_refused() {
    let mut h = Harness::new("tools");
    h.first_modern_call();
    h.gw.on_drain(h.now, Duration::from_secs(10));
    h.backend(
        ALPHA,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#,
    );
    assert!(
        h.client_lines().is_empty(),
        "no InputRequiredResult nobody can retry"
    );
    let refused = h.backend_one_any(ALPHA);
    assert_eq!(refused["id"], 0);
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("shutting down")));
    assert!(!h.gw.waits_for_retry(h.s));
    h.check_settled = false;
}

#[test]
fn one_credential_s_clients_hold_at_most_so_many_asks() {
    let mut h = Harness::new("tools");
    h.check_settled = false;
    // A client of `principal` calls, and the backend asks (request id `n`): the client's
    // session, the call as the backend got it, and what answered the ask.
    let ask_in = |h: &mut Harness, principal: usize, n: usize| -> (SessionId, Value, Value) {
        let s = h.gw.open_session();
        h.gw.set_principal(s, Some(principal));
        h.send_as(s, modern_call(json!(1), "alpha__echo", json!({})));
        let call = if n == 0 {
            h.actions();
            h.finish_init(ALPHA).remove(0)
        } else {
            h.backend_one(ALPHA, "tools/call")
        };
        let ask = format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"sampling/createMessage","params":{{}}}}"#
        );
        h.backend(ALPHA, &ask);
        let mut asked = h.out_of(s);
        let got = if asked.is_empty() {
            h.backend_one_any(ALPHA)
        } else {
            asked.remove(0)
        };
        (s, call, got)
    };
    for n in 0..1024 {
        let (_, _, got) = ask_in(&mut h, 7, n);
        assert_eq!(
            got["result"]["resultType"], "input_required",
            "ask {n}: {got}"
        );
    }
    // The next of that credential is refused (at the backend, saying why)...
    let (s, call, refused) = ask_in(&mut h, 7, 1024);
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("credential")),
        "{refused}"
    );
    h.reply(ALPHA, &call, r#"{"content":[]}"#);
    assert_eq!(h.out_of(s)[0]["id"], 1);
    // ...while another credential's client is still asked.
    let (_, _, other) = ask_in(&mut h, 8, 1025);
    assert_eq!(other["result"]["resultType"], "input_required", "{other}");
}
