//! The shell commands' MCP client: a local session of the gateway (see
//! [`runtime::run_local`]), so `check`, `tools` and `call` are served by the same engine
//! as any client. A command is a small state machine over the answers it gets: it sends
//! requests, and each answer (matched to its request by the id this client gave it) may
//! send more or end the session.

use crate::config::Config;
use crate::runtime::{self, LocalClient, LocalRun, RunError};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// An answer to one of the command's requests.
#[derive(Debug)]
pub enum Answer {
    /// Its result.
    Result(Value),
    /// Its JSON-RPC error: the code and the message.
    Error(i64, String),
}

/// What a command can do when it hears an answer: send more requests or finish.
#[derive(Debug, Default)]
pub struct Requests {
    lines: Vec<Vec<u8>>,
    next_id: u64,
    open: usize,
    done: bool,
}

impl Requests {
    /// Sends request `method` with `params`; returns the id its answer comes with.
    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        self.open += 1;
        let msg = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.lines.push(msg.to_string().into_bytes());
        self.next_id
    }

    /// Calls tool `name` (one of the gateway's meta-tools, which reach every backend in a
    /// shell session) with `arguments`.
    pub fn call(&mut self, name: &str, arguments: Value) -> u64 {
        self.send("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// The session may end once nothing is awaited.
    pub fn finish(&mut self) {
        self.done = true;
    }
}

/// A command: told when the session is ready (`initialize` answered) and of every
/// answer after.
pub trait Command {
    /// The session is initialized: send the first requests.
    fn start(&mut self, requests: &mut Requests);
    /// The answer to request `id`.
    fn answer(&mut self, requests: &mut Requests, id: u64, answer: Answer);
}

/// The [`LocalClient`] that runs a [`Command`]: it initializes the session, answers the
/// gateway's requests (a backend's `ping` with an empty result, anything else with
/// -32601: a shell command declares no client capabilities) and hands the command its
/// answers.
struct Client<'a> {
    command: &'a mut dyn Command,
    requests: Requests,
    init_id: u64,
}

/// The parts of a message from the gateway the client looks at.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

impl LocalClient for Client<'_> {
    fn take_lines(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.requests.lines)
    }

    fn on_line(&mut self, line: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<Incoming<'_>>(line) else {
            log::debug!(
                "ignoring a line the gateway sent: {}",
                String::from_utf8_lossy(line)
            );
            return;
        };
        match (msg.method, msg.id) {
            (Some(method), Some(id)) => {
                let answer = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
                        "message": format!("Method not found: {method} (gangway's shell commands do not support it)")}})
                };
                self.requests.lines.push(answer.to_string().into_bytes());
            }
            (None, Some(id)) => {
                let Ok(id) = id.get().parse::<u64>() else {
                    return;
                };
                self.requests.open = self.requests.open.saturating_sub(1);
                let answer = match (msg.error, msg.result) {
                    (Some(e), _) => Answer::Error(
                        e.get("code").and_then(Value::as_i64).unwrap_or(0),
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("(no message)")
                            .to_string(),
                    ),
                    (None, r) => Answer::Result(r.unwrap_or(Value::Null)),
                };
                if id == self.init_id {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                    self.requests.lines.push(note.to_string().into_bytes());
                    self.command.start(&mut self.requests);
                } else {
                    self.command.answer(&mut self.requests, id, answer);
                }
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.requests.done && self.requests.open == 0
    }
}

/// Runs `command` in a local session of a gateway for `config`, until it finishes or a
/// signal stops it; every backend started for it is stopped before this returns.
///
/// # Errors
///
/// When the event loop cannot run.
pub fn run(config: &Config, command: &mut dyn Command) -> Result<LocalRun, RunError> {
    let mut requests = Requests::default();
    let init_id = requests.send(
        "initialize",
        json!({
            "protocolVersion": crate::gateway::SUPPORTED_PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "gangway", "version": env!("CARGO_PKG_VERSION")},
        }),
    );
    let mut client = Client {
        command,
        requests,
        init_id,
    };
    runtime::run_local(config, &mut client)
}
