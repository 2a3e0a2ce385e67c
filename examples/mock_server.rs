//! A scriptable stdio MCP server: gangway's own test backend.
//!
//! Black-box tests run it behind gangway to provoke every situation a real backend can
//! produce: slow and interleaved answers, crashes, garbage on stdout, server-to-client
//! requests, progress notifications, cancellation, slow or failing initialization and
//! refusal to die. It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout and logs on
//! stderr. It is also built as a static musl binary for a FROM-scratch image, so it uses
//! nothing beyond std, `serde_json` and nix.
//!
//! Responses are written with the key order of the TypeScript SDK
//! (`{"result":..,"jsonrpc":"2.0","id":..}`) so the gateway cannot get away with assuming
//! `id` comes first, and request ids are echoed back as the exact raw JSON text received.
//!
//! # Flags
//!
//! - `--name NAME`: `serverInfo.name` and the stderr log prefix (default `mock`).
//! - `--ignore-eof`: keep running after stdin closes, so the gateway has to signal it.
//! - `--ignore-sigterm`: ignore SIGTERM, so only SIGKILL stops it.
//! - `--init-delay-ms N`: wait N ms before reacting to `initialize`.
//! - `--fail-init`: answer `initialize` with error -32603 "mock init failure".
//! - `--exit-on-init CODE`: exit with CODE on `initialize` without answering.
//! - `--record FILE`: append every received line, raw, to FILE (tests read it back to see
//!   exactly what the gateway forwarded).
//! - `--tools N`: add N extra tools `t0..t{N-1}` that behave like `echo`.
//! - `--tool NAME` (repeatable): add a tool named NAME, listed after all others in flag
//!   order, that answers "{--name}/{NAME}: {text}"; for tests of odd, long and colliding
//!   tool names.
//! - `--list-changed`: after `notifications/initialized`, send
//!   `notifications/tools/list_changed` five times in a row.
//!
//! An unknown flag, a missing value or a bad number prints a message and exits 2.
//!
//! # Methods
//!
//! `initialize`, `ping`, `logging/setLevel`, `tools/list`, `tools/call`; the notifications
//! `notifications/initialized` and `notifications/cancelled`. Anything else with an id gets
//! -32601. A line that is not JSON gets -32700 with id null; JSON that is not an object
//! gets -32600 with id null.
//!
//! # Tools
//!
//! - `echo {text, structured?}`: returns `text`; with `structured: true` also as
//!   `structuredContent`.
//! - `slow {ms, text?}`: answers after `ms` ms on its own thread, with `text` or
//!   "slept <ms>".
//! - `crash {code?}`: exits at once with `code` (default 3), never answering.
//! - `garbage`: writes a non-JSON line and a non-JSON-RPC line, then answers.
//! - `env {name}`: the value of an environment variable, or "<unset>".
//! - `pid`: the process id.
//! - `stderr {text}`: writes `text` to stderr, answers "ok".
//! - `fail`: a tool result with `isError: true`.
//! - `progress {steps, ms?}`: with `params._meta.progressToken`, sends `steps`
//!   progress notifications `ms` (default 10) apart, then answers "done <steps>".
//! - `ask {method, params?}`: sends a server-to-client request (ids 0, 1, ...), waits for
//!   the client's response and answers with the JSON of its `result` or `error`.
//! - `stop_reading`: answers, then never reads stdin again (a server that stopped taking
//!   input but stays alive until it is signalled).
//! - `t0..t{N-1}` with `--tools N`: like `echo`.
//! - each `--tool NAME {text?}`: answers "{--name}/{NAME}: {text}" (text defaults to "").
//!   A `--tool` that reuses a built-in name takes precedence over the built-in.
//!
//! `slow`, `progress` and `ask` run on threads so they never block other requests, and a
//! `notifications/cancelled` for one of them suppresses its answer.

use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// The version we answer when the client does not say which one it wants.
const DEFAULT_PROTOCOL_VERSION: &str = "2025-06-18";

/// How many `notifications/tools/list_changed` `--list-changed` sends (as the reference
/// "everything" server does on start-up).
const LIST_CHANGED_BURST: usize = 5;

const USAGE: &str = "usage: mock_server [--name NAME] [--ignore-eof] [--ignore-sigterm] \
[--init-delay-ms N] [--fail-init] [--exit-on-init CODE] [--record FILE] [--tools N] \
[--tool NAME]... [--list-changed]";

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

/// Everything the command line can change.
struct Config {
    name: String,
    ignore_eof: bool,
    ignore_sigterm: bool,
    init_delay_ms: u64,
    fail_init: bool,
    exit_on_init: Option<i32>,
    record: Option<String>,
    extra_tools: usize,
    /// `--tool NAME` flags, in order.
    named_tools: Vec<String>,
    list_changed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "mock".to_owned(),
            ignore_eof: false,
            ignore_sigterm: false,
            init_delay_ms: 0,
            fail_init: false,
            exit_on_init: None,
            record: None,
            extra_tools: 0,
            named_tools: Vec::new(),
            list_changed: false,
        }
    }
}

/// Parses the flags by hand; the error is the message to print before exiting 2.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut cfg = Config::default();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--name" => cfg.name = flag_value(&mut args, &flag)?,
            "--ignore-eof" => cfg.ignore_eof = true,
            "--ignore-sigterm" => cfg.ignore_sigterm = true,
            "--init-delay-ms" => cfg.init_delay_ms = flag_number(&mut args, &flag)?,
            "--fail-init" => cfg.fail_init = true,
            "--exit-on-init" => cfg.exit_on_init = Some(flag_number(&mut args, &flag)?),
            "--record" => cfg.record = Some(flag_value(&mut args, &flag)?),
            "--tools" => cfg.extra_tools = flag_number(&mut args, &flag)?,
            "--tool" => cfg.named_tools.push(flag_value(&mut args, &flag)?),
            "--list-changed" => cfg.list_changed = true,
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

fn flag_value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
}

fn flag_number<T: FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let text = flag_value(args, flag)?;
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not a valid number\n{USAGE}"))
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// A request id, kept twice: `raw` is the exact JSON text received, echoed back verbatim;
/// `key` is its normalized form, used to match `notifications/cancelled` and responses,
/// whose ids went through a JSON parser on the way.
#[derive(Clone)]
struct Id {
    raw: String,
    key: String,
}

/// One parsed incoming message.
struct Incoming {
    id: Option<Id>,
    method: Option<String>,
    /// The whole message, for `params`, `result` and `error`.
    body: Value,
}

/// What a line turned out to be when it is not a usable message.
enum BadLine {
    /// Not JSON (or not UTF-8) at all: -32700.
    Parse,
    /// JSON, but not a JSON-RPC object: -32600.
    NotAnObject,
}

/// Parses one line. The message is parsed twice: once into a `Value` for its content, and
/// once into raw fields so the id keeps its exact text (`serde_json`'s `Value` would
/// re-format numbers such as `1.0` or very large integers).
fn parse_line(line: &[u8]) -> Result<Incoming, BadLine> {
    let text = std::str::from_utf8(line).map_err(|_| BadLine::Parse)?;
    let body: Value = serde_json::from_str(text).map_err(|_| BadLine::Parse)?;
    if !body.is_object() {
        return Err(BadLine::NotAnObject);
    }
    let fields: HashMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|_| BadLine::Parse)?;
    // A null id is not a valid MCP request id; treat the message as having none.
    let id = fields
        .get("id")
        .filter(|_| !body["id"].is_null())
        .map(|raw| Id {
            raw: raw.get().to_owned(),
            key: body["id"].to_string(),
        });
    let method = body["method"].as_str().map(str::to_owned);
    Ok(Incoming { id, method, body })
}

/// `{"content":[{"type":"text","text":..}]}`, the shape of every successful tool result.
fn text_result(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }] })
}

/// A tool definition with an object input schema.
fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": { "type": "object", "properties": properties, "required": required },
    })
}

fn tool_definitions(cfg: &Config) -> Vec<Value> {
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer" });
    let mut tools = vec![
        tool(
            "echo",
            "Returns text; with structured=true also as structuredContent",
            json!({ "text": string, "structured": { "type": "boolean" } }),
            &["text"],
        ),
        tool(
            "slow",
            "Answers after ms milliseconds",
            json!({ "ms": integer, "text": string }),
            &["ms"],
        ),
        tool(
            "crash",
            "Exits the server at once with code (default 3)",
            json!({ "code": integer }),
            &[],
        ),
        tool(
            "garbage",
            "Writes non-JSON and non-JSON-RPC lines to stdout, then answers",
            json!({}),
            &[],
        ),
        tool(
            "env",
            "Returns an environment variable",
            json!({ "name": string }),
            &["name"],
        ),
        tool("pid", "Returns the server's process id", json!({}), &[]),
        tool(
            "stderr",
            "Writes text to stderr",
            json!({ "text": string }),
            &["text"],
        ),
        tool("fail", "Returns a tool error", json!({}), &[]),
        tool(
            "progress",
            "Sends steps progress notifications ms apart",
            json!({ "steps": integer, "ms": integer }),
            &["steps"],
        ),
        tool(
            "ask",
            "Sends a request to the client and returns its response",
            json!({ "method": string, "params": { "type": "object" } }),
            &["method"],
        ),
    ];
    for i in 0..cfg.extra_tools {
        tools.push(tool(
            &format!("t{i}"),
            "Extra echo tool",
            json!({ "text": string }),
            &[],
        ));
    }
    for name in &cfg.named_tools {
        tools.push(tool(
            name,
            "Named tool: answers with the server name, its own name and text",
            json!({ "text": string }),
            &[],
        ));
    }
    tools
}

// ---------------------------------------------------------------------------------------
// Server state and output
// ---------------------------------------------------------------------------------------

struct Server {
    cfg: Config,
    /// Every line goes out under this lock, so lines from different threads never
    /// interleave.
    out: Mutex<io::Stdout>,
    record: Mutex<Option<File>>,
    /// Requests answered on a thread, by id key; the flag is set when the client cancels.
    in_flight: Mutex<HashMap<String, bool>>,
    /// Our own server-to-client requests waiting for a response, by id key.
    asks: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    next_ask_id: AtomicU64,
}

/// Locks a mutex even if a thread panicked while holding it: the data here (sets, maps,
/// file handles) stays usable, and a test helper must keep answering.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Server {
    fn new(cfg: Config) -> Result<Server, String> {
        let record = match &cfg.record {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open record file {path}: {e}"))?,
            ),
            None => None,
        };
        Ok(Server {
            cfg,
            out: Mutex::new(io::stdout()),
            record: Mutex::new(record),
            in_flight: Mutex::new(HashMap::new()),
            asks: Mutex::new(HashMap::new()),
            next_ask_id: AtomicU64::new(0),
        })
    }

    /// Logs one line to stderr. Write errors are ignored (`eprintln!` would panic if
    /// stderr were closed). The prefix carries `--name` so tests can tell backends apart.
    fn log(&self, message: &str) {
        let _ = writeln!(io::stderr(), "[{}] mock: {message}", self.cfg.name);
    }

    /// Writes one line to stdout and flushes it. A write error means the gateway is gone;
    /// there is no one left to tell, so it is ignored.
    fn send_line(&self, line: &str) {
        let mut out = lock(&self.out);
        let _ = out
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| out.flush());
    }

    fn respond(&self, id: &Id, result: &Value) {
        self.send_line(&format!(
            r#"{{"result":{result},"jsonrpc":"2.0","id":{}}}"#,
            id.raw
        ));
    }

    /// Sends a JSON-RPC error; `id` is raw JSON text (`"null"` for unparsable input).
    fn respond_error(&self, id: &str, code: i64, message: &str) {
        let error = json!({ "code": code, "message": message });
        self.send_line(&format!(r#"{{"error":{error},"jsonrpc":"2.0","id":{id}}}"#));
    }

    fn notify(&self, method: &str, params: Option<&Value>) {
        let method = Value::from(method);
        match params {
            Some(params) => self.send_line(&format!(
                r#"{{"method":{method},"params":{params},"jsonrpc":"2.0"}}"#
            )),
            None => self.send_line(&format!(r#"{{"method":{method},"jsonrpc":"2.0"}}"#)),
        }
    }

    /// Appends the raw line to the `--record` file before it is handled, so a test that
    /// has seen the answer is sure to find the line in the file.
    fn record(&self, line: &[u8]) {
        if let Some(file) = lock(&self.record).as_mut() {
            let _ = file
                .write_all(line)
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.flush());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------

fn handle_line(server: &Arc<Server>, line: &[u8]) {
    server.record(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match parse_line(line) {
        Ok(msg) => handle_message(server, msg),
        Err(BadLine::Parse) => {
            server.log("bad line");
            server.respond_error("null", -32700, "Parse error");
        }
        Err(BadLine::NotAnObject) => {
            server.log("bad line (not a JSON-RPC object)");
            server.respond_error("null", -32600, "Invalid Request");
        }
    }
}

fn handle_message(server: &Arc<Server>, msg: Incoming) {
    let params = msg.body.get("params").cloned().unwrap_or(Value::Null);
    match (msg.method.as_deref(), msg.id) {
        (Some(method), Some(id)) => handle_request(server, &id, method, &params),
        (Some(method), None) => handle_notification(server, method, &params),
        (None, Some(id)) if msg.body.get("result").is_some() || msg.body.get("error").is_some() => {
            deliver_response(server, &id, msg.body);
        }
        (None, Some(id)) => server.respond_error(&id.raw, -32600, "Invalid Request"),
        (None, None) => server.log("ignoring a message with neither method nor id"),
    }
}

fn handle_request(server: &Arc<Server>, id: &Id, method: &str, params: &Value) {
    match method {
        "initialize" => initialize(server, id, params),
        // logging/setLevel is answered because we advertise the logging capability.
        "ping" | "logging/setLevel" => server.respond(id, &json!({})),
        "tools/list" => {
            let tools = tool_definitions(&server.cfg);
            server.respond(id, &json!({ "tools": tools }));
        }
        "tools/call" => call_tool(server, id, params),
        other => server.respond_error(&id.raw, -32601, &format!("Method not found: {other}")),
    }
}

fn handle_notification(server: &Arc<Server>, method: &str, params: &Value) {
    match method {
        "notifications/initialized" if server.cfg.list_changed => {
            for _ in 0..LIST_CHANGED_BURST {
                server.notify("notifications/tools/list_changed", None);
            }
        }
        "notifications/initialized" => {}
        "notifications/cancelled" => cancel(server, &params["requestId"]),
        other => server.log(&format!("ignoring notification {other}")),
    }
}

fn initialize(server: &Server, id: &Id, params: &Value) {
    let cfg = &server.cfg;
    if cfg.init_delay_ms > 0 {
        thread::sleep(Duration::from_millis(cfg.init_delay_ms));
    }
    if let Some(code) = cfg.exit_on_init {
        server.log("exiting during init");
        std::process::exit(code);
    }
    if cfg.fail_init {
        server.respond_error(&id.raw, -32603, "mock init failure");
        return;
    }
    let version = params
        .get("protocolVersion")
        .cloned()
        .unwrap_or_else(|| DEFAULT_PROTOCOL_VERSION.into());
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": true }, "logging": {} },
        "serverInfo": { "name": cfg.name, "version": "1.0.0" },
        "instructions": "mock server",
    });
    server.respond(id, &result);
}

/// Marks an in-flight request as cancelled; its thread checks the mark before answering.
/// Only in-flight ids are marked, so a stale cancel cannot silence a later request that
/// happens to reuse the id.
fn cancel(server: &Server, request_id: &Value) {
    let key = request_id.to_string();
    let known = match lock(&server.in_flight).get_mut(&key) {
        Some(cancelled) => {
            *cancelled = true;
            true
        }
        None => false,
    };
    if known {
        server.log(&format!("cancelled request {key}"));
    } else {
        server.log(&format!("cancel for unknown request {key}"));
    }
}

fn is_cancelled(server: &Server, id: &Id) -> bool {
    lock(&server.in_flight)
        .get(&id.key)
        .copied()
        .unwrap_or(false)
}

/// A response to one of our `ask` requests: hand it to the waiting thread.
fn deliver_response(server: &Server, id: &Id, body: Value) {
    let waiter = lock(&server.asks).remove(&id.key);
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(body);
        }
        None => server.log(&format!("response for unknown request {}", id.raw)),
    }
}

// ---------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------

fn call_tool(server: &Arc<Server>, id: &Id, params: &Value) {
    let Some(name) = params["name"].as_str() else {
        server.respond_error(&id.raw, -32602, "Missing tool name");
        return;
    };
    let args = &params["arguments"];
    let text_arg = |key: &str| args[key].as_str().unwrap_or("").to_owned();
    if server.cfg.named_tools.iter().any(|t| t == name) {
        let text = format!("{}/{name}: {}", server.cfg.name, text_arg("text"));
        server.respond(id, &text_result(&text));
        return;
    }
    match name {
        "echo" => server.respond(id, &echo(args)),
        "slow" => {
            let ms = args["ms"].as_u64().unwrap_or(0);
            let text = args["text"]
                .as_str()
                .map_or_else(|| format!("slept {ms}"), str::to_owned);
            spawn_tracked(server, id, move |_, _| {
                thread::sleep(Duration::from_millis(ms));
                Some(text_result(&text))
            });
        }
        "crash" => {
            let code = args["code"].as_i64().unwrap_or(3);
            server.log("crashing on request");
            std::process::exit(i32::try_from(code).unwrap_or(3));
        }
        "garbage" => {
            server.send_line("this is not json");
            server.send_line(r#"{"hello":1}"#);
            server.respond(id, &text_result("garbage sent"));
        }
        "env" => {
            let value = std::env::var_os(text_arg("name")).map_or_else(
                || "<unset>".to_owned(),
                |v| v.to_string_lossy().into_owned(),
            );
            server.respond(id, &text_result(&value));
        }
        "pid" => server.respond(id, &text_result(&std::process::id().to_string())),
        "stderr" => {
            let _ = writeln!(io::stderr(), "{}", text_arg("text"));
            server.respond(id, &text_result("ok"));
        }
        "fail" => {
            let mut result = text_result("mock failure");
            result["isError"] = json!(true);
            server.respond(id, &result);
        }
        "progress" => progress(server, id, params, args),
        "ask" => ask(server, id, args),
        "stop_reading" => {
            server.respond(id, &text_result("no longer reading stdin"));
            server.log("no longer reading stdin");
            // Answers on other threads go on; stdin is never read again.
            loop {
                thread::park();
            }
        }
        extra if is_extra_tool(extra, server.cfg.extra_tools) => server.respond(id, &echo(args)),
        other => server.respond_error(&id.raw, -32602, &format!("Unknown tool: {other}")),
    }
}

fn echo(args: &Value) -> Value {
    let text = args["text"].as_str().unwrap_or("");
    let mut result = text_result(text);
    if args["structured"] == json!(true) {
        result["structuredContent"] = json!({ "text": text });
    }
    result
}

/// Whether `name` is one of `t0..t{count-1}`; "t01" is not, as it would not be listed.
fn is_extra_tool(name: &str, count: usize) -> bool {
    name.strip_prefix('t')
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n < count && name == format!("t{n}"))
}

/// Runs `work` on its own thread and answers with what it returns, unless the request was
/// cancelled meanwhile (or `work` returns `None`). Threads let many slow calls run at
/// once, so their answers come back out of order, as from a real concurrent server.
fn spawn_tracked<F>(server: &Arc<Server>, id: &Id, work: F)
where
    F: FnOnce(&Server, &Id) -> Option<Value> + Send + 'static,
{
    lock(&server.in_flight).insert(id.key.clone(), false);
    let thread_server = Arc::clone(server);
    let thread_id = id.clone();
    let spawned = thread::Builder::new().spawn(move || {
        let result = work(&thread_server, &thread_id);
        finish(&thread_server, &thread_id, result);
    });
    if let Err(e) = spawned {
        lock(&server.in_flight).remove(&id.key);
        server.respond_error(&id.raw, -32603, &format!("cannot start thread: {e}"));
    }
}

fn finish(server: &Server, id: &Id, result: Option<Value>) {
    let cancelled = lock(&server.in_flight).remove(&id.key).unwrap_or(false);
    match result {
        _ if cancelled => server.log(&format!("not answering cancelled request {}", id.raw)),
        Some(result) => server.respond(id, &result),
        None => {}
    }
}

fn progress(server: &Arc<Server>, id: &Id, params: &Value, args: &Value) {
    let steps = args["steps"].as_u64().unwrap_or(0);
    let ms = args["ms"].as_u64().unwrap_or(10);
    // Kept as the exact JSON value received: the token may be a string or a number.
    let token = params["_meta"].get("progressToken").cloned();
    spawn_tracked(server, id, move |server, id| {
        if let Some(token) = token {
            for i in 1..=steps {
                if is_cancelled(server, id) {
                    return None;
                }
                let note = json!({ "progressToken": token, "progress": i, "total": steps });
                server.notify("notifications/progress", Some(&note));
                thread::sleep(Duration::from_millis(ms));
            }
        }
        Some(text_result(&format!("done {steps}")))
    });
}

fn ask(server: &Arc<Server>, id: &Id, args: &Value) {
    let Some(method) = args["method"].as_str().map(str::to_owned) else {
        server.respond_error(&id.raw, -32602, "ask needs a method");
        return;
    };
    let params = args.get("params").cloned();
    spawn_tracked(server, id, move |server, _| {
        // Numeric ids from 0, like the TypeScript SDK, so they collide with the client's
        // own ids and the gateway has to keep the two directions apart.
        let ask_id = server.next_ask_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel();
        // Registered before sending, so a fast response cannot arrive unmatched.
        lock(&server.asks).insert(ask_id.to_string(), sender);
        send_request(server, ask_id, &method, params.as_ref());
        let response = receiver.recv().ok()?;
        let answer = response
            .get("result")
            .or_else(|| response.get("error"))
            .unwrap_or(&Value::Null);
        Some(text_result(&answer.to_string()))
    });
}

fn send_request(server: &Server, id: u64, method: &str, params: Option<&Value>) {
    let method = Value::from(method);
    match params {
        Some(params) => server.send_line(&format!(
            r#"{{"method":{method},"params":{params},"jsonrpc":"2.0","id":{id}}}"#
        )),
        None => server.send_line(&format!(
            r#"{{"method":{method},"jsonrpc":"2.0","id":{id}}}"#
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

fn ignore_sigterm(server: &Server) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing SIG_IGN runs no handler code, so nothing async-signal-unsafe can
    // happen; no other code in this process manages SIGTERM.
    if let Err(e) = unsafe { signal(Signal::SIGTERM, SigHandler::SigIgn) } {
        server.log(&format!("cannot ignore SIGTERM: {e}"));
    }
}

/// Reads stdin line by line until EOF (or a read error, which means the same: the client
/// is gone). Lines are bytes, so invalid UTF-8 becomes a parse error, not a panic.
fn read_loop(server: &Arc<Server>) {
    let stdin = io::stdin();
    let mut reader = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                handle_line(server, &line);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                server.log(&format!("stdin read error: {e}"));
                return;
            }
        }
    }
}

fn main() {
    let args = std::env::args_os().skip(1);
    let cfg = match parse_args(args.map(|a| a.to_string_lossy().into_owned())) {
        Ok(cfg) => cfg,
        Err(message) => {
            let _ = writeln!(io::stderr(), "mock: {message}");
            std::process::exit(2);
        }
    };
    let server = match Server::new(cfg) {
        Ok(server) => Arc::new(server),
        Err(message) => {
            let _ = writeln!(io::stderr(), "mock: {message}");
            std::process::exit(2);
        }
    };
    if server.cfg.ignore_sigterm {
        ignore_sigterm(&server);
    }
    let _ = writeln!(
        io::stderr(),
        "mock {} started pid {}",
        server.cfg.name,
        std::process::id()
    );

    read_loop(&server);

    if server.cfg.ignore_eof {
        // Stay alive (threads keep answering) until a signal ends us; park can wake up
        // spuriously, hence the loop.
        server.log("stdin closed; ignoring EOF");
        loop {
            thread::park();
        }
    }
    // Exit at once: pending slow/progress/ask calls are dropped, which is what a backend
    // that loses its client does.
    std::process::exit(0);
}
