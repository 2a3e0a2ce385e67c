//! Tools for the person setting gangway up: `gangway check`, `gangway tools` and
//! `gangway call`.
//!
//! They do not run the gateway. Each backend they need is started on its own by a
//! [`Probe`], a small synchronous MCP client for one backend process: it spawns the
//! backend exactly as the gateway does (same arguments, container name and labels, process
//! group, parent-death signal), runs `initialize`, sends the requests the command needs,
//! and stops the backend with the gateway's stop ladder. Nothing it starts outlives it:
//! the ladder also runs when a probe is dropped on an error path, and a Ctrl-C (see
//! [`handle_interrupts`]) makes every probe give up and stop its backend.
//!
//! Output that is the command's product (the table, the tool list, the tool's result)
//! goes to `out`; problems go to `err`.

use crate::catalog::{self, Catalog, Entry};
use crate::config::{BackendConfig, Config};
use crate::docker::{self, Container, Instance};
use crate::gateway::lists;
use crate::gateway::naming::{self, Why, GANGWAY};
use crate::gateway::STOP_GRACE;
use crate::runtime::process;
use crate::wire::frame::{Frame, LineFramer};
use crate::wire::lists::{ListKind, LIST_KINDS};
use mio::unix::pipe::{Receiver, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How many of a backend's last stderr lines a probe keeps for error messages.
const STDERR_TAIL: usize = 20;
/// The most characters of a backend's stderr line shown in an error message.
const LINE_SHOWN: usize = 300;
/// The longest stderr line kept whole; longer ones are noted by their length only.
const STDERR_LINE_MAX: usize = 8 * 1024;
/// How long to wait for the kernel to reap a process after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// After a backend closed its stdout: how long to wait for its last stderr lines and its
/// exit status before reporting it.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long `docker rm -f` may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `docker version` may take to reach the daemon.
const DOCKER_VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest single wait in a probe's loops, so a Ctrl-C is noticed quickly.
const SLICE: Duration = Duration::from_millis(100);
/// How often the waits for a child process look again.
const CHILD_POLL: Duration = Duration::from_millis(10);
/// A backend that keeps sending `nextCursor` is cut off after this many pages.
const MAX_PAGES: usize = 1000;
/// What `docker` talks to when nothing says otherwise.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

// ---------------------------------------------------------------------------------------
// Exit codes and interrupts
// ---------------------------------------------------------------------------------------

/// How a setup command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked: exit code 0.
    Success,
    /// A backend, the call or Docker failed: exit code 1.
    Failed,
    /// Bad usage (unknown backend, invalid JSON arguments): exit code 2.
    Usage,
    /// Interrupted by SIGINT, SIGTERM or SIGHUP; every backend was stopped: exit code 130.
    Interrupted,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failed => 1,
            Outcome::Usage => 2,
            Outcome::Interrupted => 130,
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT, SIGTERM and SIGHUP ask every probe to stop its backend and give up,
/// instead of killing gangway at once (which would leave `docker run` containers behind
/// until the next gangway start). A second signal exits at once with code 130.
///
/// # Errors
///
/// When a signal handler cannot be installed.
pub fn handle_interrupts() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // The shutdown must be registered first: it fires only once the flag is set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, &INTERRUPTED)?;
        signal_hook::flag::register(sig, &INTERRUPTED)?;
    }
    Ok(())
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Probe errors
// ---------------------------------------------------------------------------------------

/// Why a probe of one backend failed. The message (`Display`, one line) says what happened
/// and what to do; it does not name the backend, which the caller shows beside it.
#[derive(Debug)]
pub enum ProbeError {
    /// The backend's `cwd` is not a directory.
    Cwd {
        /// The configured directory.
        cwd: PathBuf,
    },
    /// The backend's command could not be started.
    Spawn {
        /// The command.
        command: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The backend closed its stdout (it exited, as a rule) before answering.
    Exited {
        /// What gangway was waiting for (`initialize`, `tools/list`, ...).
        during: String,
        /// How it ended ("exit status 3"), if it was reaped.
        status: Option<String>,
        /// The first line it printed to stdout that is not JSON-RPC, if any.
        noise: Option<String>,
        /// Its last meaningful stderr line.
        stderr: Option<String>,
    },
    /// The backend did not answer in time.
    Timeout {
        /// What gangway was waiting for.
        during: String,
        /// How long it waited.
        after: Duration,
        /// The config key that sets that time.
        setting: &'static str,
        /// Its last meaningful stderr line.
        stderr: Option<String>,
        /// Extra advice (a docker image pull, a dropped oversize line).
        hint: Option<String>,
    },
    /// The backend answered with a JSON-RPC error.
    Rpc {
        /// The request that failed.
        during: String,
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
        /// Its last meaningful stderr line, for a failed `initialize`.
        stderr: Option<String>,
    },
    /// The backend answered with something MCP does not allow.
    Malformed {
        /// The request.
        during: String,
        /// What was wrong.
        detail: String,
    },
    /// Reading or writing the backend's pipes failed.
    Io {
        /// What gangway was doing.
        during: String,
        /// The error.
        source: io::Error,
    },
    /// gangway was interrupted (Ctrl-C) while waiting.
    Interrupted,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Cwd { cwd } => write!(
                f,
                "its working directory {} does not exist; set \"cwd\" to an existing directory",
                cwd.display()
            ),
            ProbeError::Spawn { command, source } => match source.kind() {
                io::ErrorKind::NotFound if !command.contains('/') => write!(
                    f,
                    "cannot run {command:?}: it is not in PATH; install it, or set \"command\" to its absolute path"
                ),
                io::ErrorKind::NotFound => write!(
                    f,
                    "cannot run {command:?}: no such file; fix \"command\""
                ),
                io::ErrorKind::PermissionDenied => write!(
                    f,
                    "cannot run {command:?}: permission denied; make it executable or fix \"command\""
                ),
                _ => write!(f, "cannot run {command:?}: {source}"),
            },
            ProbeError::Exited {
                during,
                status,
                noise,
                stderr,
            } => {
                match status {
                    Some(s) => write!(f, "exited during {during} ({s})")?,
                    None => write!(f, "closed its stdout during {during}")?,
                }
                if let Some(line) = noise {
                    write!(f, "; {}", noise_sentence(line))?;
                }
                write_stderr_line(f, stderr.as_deref())
            }
            ProbeError::Timeout {
                during,
                after,
                setting,
                stderr,
                hint,
            } => {
                write!(
                    f,
                    "no answer to {during} within {} (its \"{setting}\")",
                    secs(*after)
                )?;
                if let Some(h) = hint {
                    write!(f, "; {h}")?;
                }
                write_stderr_line(f, stderr.as_deref())
            }
            ProbeError::Rpc {
                during,
                code,
                message,
                stderr,
            } => {
                write!(f, "{during} failed: {message} (JSON-RPC error {code})")?;
                match stderr {
                    Some(line) => write!(f, "; last stderr line: {line}"),
                    None => Ok(()),
                }
            }
            ProbeError::Malformed { during, detail } => {
                write!(f, "answered {during} with {detail}")
            }
            ProbeError::Io { during, source } => {
                write!(f, "{during}: I/O error on its pipes: {source}")
            }
            ProbeError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeError::Spawn { source, .. } | ProbeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a stdout line that is not JSON-RPC says about the server.
fn noise_sentence(line: &str) -> String {
    format!(
        "it printed a line that is not JSON-RPC to stdout, which MCP reserves for messages \
         (a server must log to stderr): {line}"
    )
}

fn write_stderr_line(f: &mut fmt::Formatter<'_>, line: Option<&str>) -> fmt::Result {
    match line {
        Some(line) => write!(f, "; last stderr line: {line}"),
        None => write!(f, "; it wrote nothing to stderr"),
    }
}

/// `30 s`, `0.5 s`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

// ---------------------------------------------------------------------------------------
// The probe
// ---------------------------------------------------------------------------------------

/// One tool as a backend lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// The backend's own name for it.
    pub name: String,
    /// Its description, if it has one.
    pub description: Option<String>,
}

/// One message from a backend, parsed only as far as routing needs.
#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<String>,
    /// Kept raw, so what the backend said can be stored byte for byte (see
    /// [`crate::catalog`]).
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Value>,
}

/// A response to one of the probe's requests.
struct Response {
    id: String,
    result: Option<Box<RawValue>>,
    error: Option<Value>,
}

/// A synchronous MCP client for one backend process, for the setup commands.
///
/// [`Probe::spawn`] starts the backend; [`Probe::initialize`] runs the handshake; then
/// [`Probe::list_raw`], [`Probe::list_tools`] and [`Probe::call_tool`] send requests, each
/// bounded by the backend's `timeout`. While it waits, the probe answers the backend's own requests
/// (`ping` with `{}`, anything else with -32601) and ignores its notifications. The
/// backend is stopped by [`Probe::stop`] or, at the latest, when the probe is dropped.
pub struct Probe {
    name: String,
    command: String,
    is_docker: bool,
    timeout: Duration,
    startup_timeout: Duration,
    pid: i32,
    stdin: Option<Sender>,
    stdout: Option<Receiver>,
    stderr: Option<Receiver>,
    out_framer: LineFramer,
    err_framer: LineFramer,
    /// Bytes waiting to be written to the backend's stdin.
    outbox: Vec<u8>,
    /// Responses received and not yet claimed.
    responses: Vec<Response>,
    stderr_tail: VecDeque<String>,
    /// The length of the last stdout line dropped for exceeding `max_message_bytes`.
    oversize: Option<usize>,
    /// The first stdout line that is not JSON-RPC (env values redacted).
    noise: Option<String>,
    /// Its config, whose env values are redacted from quoted lines.
    config: BackendConfig,
    /// How the process ended, once reaped.
    exit: Option<String>,
    container: Option<Container>,
    /// The `initialize` result as the backend sent it, once it came.
    init: Option<Box<RawValue>>,
    next_id: u64,
    spawned_at: Instant,
    ready_after: Option<Duration>,
    stopped: bool,
}

impl Probe {
    /// Starts backend `cfg` as the gateway would (see [`docker::launch`] and
    /// [`process::spawn`]); `seq` numbers the start for a docker container's name.
    /// Lines from its stdout longer than `max_message_bytes` are dropped.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Cwd`] or [`ProbeError::Spawn`].
    pub fn spawn(
        cfg: &BackendConfig,
        instance: &Instance,
        seq: u64,
        max_message_bytes: usize,
    ) -> Result<Probe, ProbeError> {
        if let Some(cwd) = &cfg.cwd {
            if !cwd.is_dir() {
                return Err(ProbeError::Cwd { cwd: cwd.clone() });
            }
        }
        let launch = docker::launch(cfg, instance, seq);
        let spawned_at = Instant::now();
        let spawned = process::spawn(cfg, &launch.args).map_err(|source| ProbeError::Spawn {
            command: cfg.command.clone(),
            source,
        })?;
        Ok(Probe {
            name: cfg.name.clone(),
            command: cfg.command.clone(),
            is_docker: launch.container.is_some(),
            timeout: cfg.timeout,
            startup_timeout: cfg.startup_timeout,
            pid: spawned.pid,
            stdin: Some(spawned.stdin),
            stdout: Some(spawned.stdout),
            stderr: Some(spawned.stderr),
            out_framer: LineFramer::new(max_message_bytes),
            err_framer: LineFramer::new(STDERR_LINE_MAX),
            outbox: Vec::new(),
            responses: Vec::new(),
            stderr_tail: VecDeque::new(),
            oversize: None,
            noise: None,
            config: cfg.clone(),
            exit: None,
            container: launch.container,
            init: None,
            next_id: 1,
            spawned_at,
            ready_after: None,
            stopped: false,
        })
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time from spawning the backend to its answer to `initialize`, once it came.
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    /// The `initialize` result byte for byte as the backend sent it, once
    /// [`Probe::initialize`] succeeded.
    pub fn init_result(&self) -> Option<&RawValue> {
        self.init.as_deref()
    }

    /// Runs the handshake: `initialize` (bounded by the backend's startup timeout), then
    /// `notifications/initialized`. Returns the `initialize` result (also kept raw, see
    /// [`Probe::init_result`]).
    ///
    /// # Errors
    ///
    /// Any [`ProbeError`] but `Cwd` and `Spawn`.
    pub fn initialize(&mut self) -> Result<Value, ProbeError> {
        let params = json!({
            "protocolVersion": crate::gateway::SUPPORTED_PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "gangway", "version": env!("CARGO_PKG_VERSION")},
        });
        let limit = self.startup_timeout;
        let result = self.request_raw("initialize", params, limit, "startup_timeout");
        let result = match result {
            Ok(r) => r,
            Err(ProbeError::Rpc {
                during,
                code,
                message,
                stderr: _,
            }) => {
                return Err(ProbeError::Rpc {
                    during,
                    code,
                    message,
                    stderr: self.last_stderr_line(),
                })
            }
            Err(e) => return Err(e),
        };
        let value = parse_result("initialize", &result)?;
        self.ready_after = Some(self.spawned_at.elapsed());
        self.init = Some(result);
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        Ok(value)
    }

    /// Every item of a paged list (`method`, its items under `items_key` of each result),
    /// following `nextCursor` page by page; each item raw, as the backend sent it.
    ///
    /// # Errors
    ///
    /// Any [`ProbeError`] but `Cwd` and `Spawn`; [`ProbeError::Malformed`] when a page
    /// has no `items_key` array or the cursors never end (the same cursor twice in a
    /// row, or more than [`MAX_PAGES`] pages).
    pub fn list_raw(
        &mut self,
        method: &str,
        items_key: &str,
    ) -> Result<Vec<Box<RawValue>>, ProbeError> {
        let malformed = |detail: String| ProbeError::Malformed {
            during: method.to_string(),
            detail,
        };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self.request_raw(method, params, self.timeout, "timeout")?;
            // Only the top level is parsed; the items stay raw.
            let fields: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(page.get())
                    .map_err(|_| malformed("a result that is not a JSON object".to_string()))?;
            let list = fields
                .get(items_key)
                .and_then(|raw| serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()).ok())
                .ok_or_else(|| malformed(format!("a result without a \"{items_key}\" array")))?;
            items.extend(list);
            let next = fields
                .get("nextCursor")
                .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
            match next.as_ref().and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    if cursor.as_deref() == Some(next) {
                        return Err(malformed(format!("the same nextCursor {next:?} twice")));
                    }
                    cursor = Some(next.to_string());
                }
                _ => return Ok(items),
            }
        }
        Err(malformed(format!("more than {MAX_PAGES} pages")))
    }

    /// Every tool the backend lists (see [`Probe::list_raw`]); tools without a name are
    /// skipped with a warning.
    ///
    /// # Errors
    ///
    /// As [`Probe::list_raw`].
    pub fn list_tools(&mut self) -> Result<Vec<ToolInfo>, ProbeError> {
        let raw = self.list_raw("tools/list", "tools")?;
        let mut tools = Vec::with_capacity(raw.len());
        for item in raw {
            // Valid JSON by construction; a parse failure reads as a tool without a name.
            let t: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                log::warn!("{}: skipping a tool without a name: {t}", self.name);
                continue;
            };
            tools.push(ToolInfo {
                name: name.to_string(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        Ok(tools)
    }

    /// Calls tool `name` with `arguments` and returns the result (a `CallToolResult`,
    /// which may carry `isError: true`).
    ///
    /// # Errors
    ///
    /// Any [`ProbeError`] but `Cwd` and `Spawn`.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, ProbeError> {
        let params = json!({ "name": name, "arguments": arguments });
        self.request("tools/call", params, self.timeout, "timeout")
    }

    /// Stops the backend with the gateway's ladder: close its stdin, wait 2 s, SIGTERM its
    /// process group, wait 2 s, SIGKILL; reap it; kill whatever it left in its group; and
    /// for a `docker run` backend remove the container (`docker rm -f`). Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.outbox.clear();
        self.stdin = None;
        if !self.wait_exit(STOP_GRACE) {
            log::debug!(
                "{}: still running {STOP_GRACE:?} after its stdin closed; SIGTERM",
                self.name
            );
            process::signal_group(self.pid, Signal::SIGTERM);
            if !self.wait_exit(STOP_GRACE) {
                log::debug!("{}: still running after SIGTERM; SIGKILL", self.name);
                process::signal_group(self.pid, Signal::SIGKILL);
                if !self.wait_exit(KILL_WAIT) {
                    log::warn!(
                        "backend {} (pid {}) did not exit {KILL_WAIT:?} after SIGKILL",
                        self.name,
                        self.pid
                    );
                }
            }
        }
        // Whatever the leader left behind in its group is orphaned now.
        process::signal_group(self.pid, Signal::SIGKILL);
        if let Some(container) = self.container.take() {
            remove_container(&self.name, &container);
        }
    }

    /// Queues `msg` for the backend's stdin.
    fn send(&mut self, msg: &Value) {
        if self.stdin.is_none() {
            return;
        }
        self.outbox.extend_from_slice(msg.to_string().as_bytes());
        self.outbox.push(b'\n');
    }

    /// [`Probe::request_raw`], with the result parsed.
    fn request(
        &mut self,
        method: &str,
        params: Value,
        limit: Duration,
        setting: &'static str,
    ) -> Result<Value, ProbeError> {
        let raw = self.request_raw(method, params, limit, setting)?;
        parse_result(method, &raw)
    }

    /// Sends request `method` and waits up to `limit` (named `setting` in messages) for
    /// its result, which is returned as the backend sent it.
    fn request_raw(
        &mut self,
        method: &str,
        params: Value,
        limit: Duration,
        setting: &'static str,
    ) -> Result<Box<RawValue>, ProbeError> {
        let id = self.next_id;
        self.next_id += 1;
        let during = match (method, params.get("name").and_then(Value::as_str)) {
            ("tools/call", Some(tool)) => format!("tools/call {tool}"),
            _ => method.to_string(),
        };
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let key = id.to_string();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.responses.iter().position(|r| r.id == key) {
                let r = self.responses.swap_remove(i);
                return match (r.error, r.result) {
                    (Some(e), _) => Err(ProbeError::Rpc {
                        during,
                        code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                        message: e
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("(no message)")
                            .to_string(),
                        stderr: None,
                    }),
                    (None, Some(result)) => Ok(result),
                    (None, None) => Err(ProbeError::Malformed {
                        during,
                        detail: "a response with neither result nor error".to_string(),
                    }),
                };
            }
            if self.stdout.is_none() {
                self.collect_exit();
                return Err(ProbeError::Exited {
                    during,
                    status: self.exit.clone(),
                    noise: self.noise.clone(),
                    stderr: self.last_stderr_line(),
                });
            }
            if interrupted() {
                return Err(ProbeError::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProbeError::Timeout {
                    hint: self.timeout_hint(method),
                    during,
                    after: limit,
                    setting,
                    stderr: self.last_stderr_line(),
                });
            }
            self.pump(deadline - now).map_err(|source| ProbeError::Io {
                during: during.clone(),
                source,
            })?;
        }
    }

    fn timeout_hint(&self, method: &str) -> Option<String> {
        if let Some(line) = &self.noise {
            return Some(noise_sentence(line));
        }
        if let Some(len) = self.oversize {
            return Some(format!(
                "it sent a {len}-byte line, over \"max_message_bytes\", which was dropped"
            ));
        }
        if method == "initialize" && self.is_docker {
            return Some(
                "a first `docker run` pulls the image, which can take long: run `docker pull` for it first, or raise \"startup_timeout\""
                    .to_string(),
            );
        }
        None
    }

    /// After stdout closed: waits a little for the last stderr lines and the exit status.
    fn collect_exit(&mut self) {
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            let reaped = self.try_reap();
            if (reaped && self.stderr.is_none()) || Instant::now() >= deadline {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Draining stderr is best effort; the exit is what is being reported.
            let _ = self.pump(left.min(CHILD_POLL));
        }
    }

    /// Waits up to `limit` for the process to exit, draining its pipes meanwhile so it
    /// cannot block on a full one. True once it is reaped.
    fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.try_reap() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = self.pump((deadline - now).min(CHILD_POLL));
        }
    }

    /// Reaps this backend's process (only it: never `waitpid(-1)`) if it has exited.
    fn try_reap(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => self.exit = Some(format!("exit status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                self.exit = Some(format!("killed by signal {sig}"));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => return false,
            Err(e) => {
                // ECHILD: someone else reaped it; it is gone either way.
                log::debug!("{}: waitpid({}) failed: {e}", self.name, self.pid);
                self.exit = Some("exit status unknown".to_string());
            }
        }
        true
    }

    /// Waits up to `wait` (at most [`SLICE`]) for the pipes, then reads what arrived and
    /// writes what is queued.
    fn pump(&mut self, wait: Duration) -> io::Result<()> {
        let wait = wait.min(SLICE);
        let want_write = !self.outbox.is_empty();
        let (out_ready, err_ready, in_ready) = {
            let mut fds = Vec::with_capacity(3);
            let mut slots = [None; 3];
            if let Some(r) = &self.stdout {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            if let Some(r) = &self.stderr {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            if let (Some(w), true) = (&self.stdin, want_write) {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
            }
            if fds.is_empty() {
                thread::sleep(wait);
                return Ok(());
            }
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |slot: Option<usize>| {
                slot.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(slots[0]), ready(slots[1]), ready(slots[2]))
        };
        if out_ready {
            self.read_stdout();
        }
        if err_ready {
            self.read_stderr();
        }
        if in_ready {
            self.write_stdin();
        }
        Ok(())
    }

    fn read_stdout(&mut self) {
        // Bounded so a backend that never stops writing cannot starve the deadline checks.
        for _ in 0..64 {
            let Some(src) = self.stdout.as_mut() else {
                return;
            };
            let eof = match self.out_framer.read_from(src) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("{}: reading its stdout failed: {e}", self.name);
                    true
                }
            };
            let mut lines = Vec::new();
            loop {
                let frame = if eof {
                    self.out_framer.finish()
                } else {
                    self.out_framer.next_frame()
                };
                match frame {
                    Some(Frame::Line(range)) => {
                        lines.push(self.out_framer.buffer()[range].to_vec());
                    }
                    Some(Frame::Oversize { len }) => {
                        log::warn!(
                            "{}: dropped a {len}-byte line from its stdout (over max_message_bytes)",
                            self.name
                        );
                        self.oversize = Some(len);
                    }
                    None => break,
                }
            }
            for line in lines {
                self.on_line(&line);
            }
            if eof {
                self.stdout = None;
                return;
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let msg: Incoming = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) => {
                let text = String::from_utf8_lossy(line);
                log::debug!(
                    "{}: ignoring a stdout line that is not JSON-RPC ({e}): {text}",
                    self.name
                );
                if self.noise.is_none() {
                    self.noise = last_meaningful_line(std::iter::once(text.as_ref()))
                        .map(|l| self.config.redact(&l));
                }
                return;
            }
        };
        match (msg.method, msg.id) {
            (Some(method), Some(id)) => {
                let answer = if method == "ping" {
                    json!({"jsonrpc": "2.0", "id": id, "result": {}})
                } else {
                    log::debug!("{}: refusing its request {method}", self.name);
                    json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": -32601,
                        "message": format!("Method not found: {method} (gangway's setup commands do not support it)"),
                    }})
                };
                self.send(&answer);
            }
            (Some(method), None) => log::debug!("{}: notification {method}", self.name),
            (None, Some(id)) => self.responses.push(Response {
                id: id.get().to_string(),
                result: msg.result,
                error: msg.error,
            }),
            (None, None) => log::debug!(
                "{}: ignoring a message with neither id nor method",
                self.name
            ),
        }
    }

    fn read_stderr(&mut self) {
        for _ in 0..64 {
            let Some(src) = self.stderr.as_mut() else {
                return;
            };
            let eof = match self.err_framer.read_from(src) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => true,
            };
            loop {
                let frame = if eof {
                    self.err_framer.finish()
                } else {
                    self.err_framer.next_frame()
                };
                let line = match frame {
                    Some(Frame::Line(range)) => {
                        String::from_utf8_lossy(&self.err_framer.buffer()[range]).into_owned()
                    }
                    Some(Frame::Oversize { len }) => format!("(a {len}-byte line)"),
                    None => break,
                };
                log::debug!("[{}] {line}", self.name);
                if self.stderr_tail.len() == STDERR_TAIL {
                    self.stderr_tail.pop_front();
                }
                self.stderr_tail.push_back(line);
            }
            if eof {
                self.stderr = None;
                return;
            }
        }
    }

    fn write_stdin(&mut self) {
        while !self.outbox.is_empty() {
            let Some(w) = self.stdin.as_mut() else {
                self.outbox.clear();
                return;
            };
            match w.write(&self.outbox) {
                Ok(0) => return,
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Gone (EPIPE): stdout's EOF reports the exit.
                    log::debug!("{}: writing to its stdin failed: {e}", self.name);
                    self.stdin = None;
                    self.outbox.clear();
                }
            }
        }
    }

    /// The last stderr line that says something: docker's closing "See 'docker run
    /// --help'." is skipped, so its error line before it is shown.
    fn last_stderr_line(&self) -> Option<String> {
        last_meaningful_line(self.stderr_tail.iter().map(String::as_str))
            .map(|l| self.config.redact(&l))
    }
}

/// A result received raw, as a `Value`.
fn parse_result(method: &str, raw: &RawValue) -> Result<Value, ProbeError> {
    serde_json::from_str(raw.get()).map_err(|e| ProbeError::Malformed {
        during: method.to_string(),
        detail: format!("a result gangway cannot read ({e})"),
    })
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("pid", &self.pid)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

/// npm's cause of a failure (see [`npm_cause`]), else the last line of `lines` that says
/// something (see [`is_help_hint`]), shortened to
/// [`LINE_SHOWN`] characters so that it fits in a table cell.
fn last_meaningful_line<'a>(
    lines: impl DoubleEndedIterator<Item = &'a str> + Clone,
) -> Option<String> {
    let line = npm_cause(lines.clone()).or_else(|| {
        lines
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !is_help_hint(l))
    })?;
    if line.chars().count() <= LINE_SHOWN {
        return Some(line.to_string());
    }
    let mut short: String = line.chars().take(LINE_SHOWN).collect();
    short.push('…');
    Some(short)
}

/// npm's own explanation of a failure: its first `npm error` line (`npm ERR!` before npm
/// 10) other than the `code` line, e.g. "npm error 404 Not Found - GET https://…", rather
/// than its trailing "A complete log of this run can be found in …" line.
fn npm_cause<'a>(lines: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    lines.map(str::trim).find(|l| {
        let Some(rest) = l
            .strip_prefix("npm error")
            .or_else(|| l.strip_prefix("npm ERR!"))
        else {
            return false;
        };
        let rest = rest.trim();
        !rest.is_empty()
            && !rest.starts_with("code ")
            && rest != "404"
            && !rest.starts_with('/')
            && !rest.contains("A complete log of this run")
    })
}

/// docker's "See 'docker run --help'." and "Run 'docker run --help' for more information".
fn is_help_hint(line: &str) -> bool {
    (line.starts_with("See '") || line.starts_with("Run '")) && line.contains("--help")
}

/// Runs `docker rm -f` for `container`, bounded by [`REMOVE_TIMEOUT`].
fn remove_container(backend: &str, container: &Container) {
    let mut cmd = container.remove_command();
    match run_bounded(&mut cmd, REMOVE_TIMEOUT, false) {
        Ok(r) if r.status.is_some_and(|s| s.success()) => {}
        // `rm -f` of a container that `--rm` already removed fails; that is fine.
        Ok(r) if r.status.is_some() => {}
        Ok(_) => log::warn!(
            "backend {backend}: `docker rm -f {}` did not finish within {REMOVE_TIMEOUT:?}; remove the container by hand",
            container.name
        ),
        Err(e) => log::warn!(
            "backend {backend}: could not run `docker rm -f {}`: {e}; remove the container by hand",
            container.name
        ),
    }
}

/// What [`run_bounded`] saw.
struct Ran {
    /// None when the command was killed at the deadline.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with a deadline, killing it when the deadline passes. With `capture`, its
/// stdout and stderr are collected (by threads, so a full pipe cannot block it).
fn run_bounded(cmd: &mut Command, limit: Duration, capture: bool) -> io::Result<Ran> {
    if capture {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut p| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(CHILD_POLL);
    };
    // After a kill a grandchild may still hold the pipes; do not wait for it then.
    let collect = |h: Option<thread::JoinHandle<String>>| match (h, status.is_some()) {
        (Some(h), true) => h.join().unwrap_or_default(),
        _ => String::new(),
    };
    Ok(Ran {
        status,
        stdout: collect(out),
        stderr: collect(err),
    })
}

// ---------------------------------------------------------------------------------------
// Docker preflight
// ---------------------------------------------------------------------------------------

/// The result of asking one Docker daemon for its version, for the backends that use it.
#[derive(Debug)]
pub struct DockerReport {
    /// The backends that run `docker run` against this daemon.
    pub backends: Vec<String>,
    /// The docker executable.
    pub program: String,
    /// Where the daemon is expected, and why: "unix:///var/run/docker.sock (the default)".
    pub host: String,
    /// The server version, or what went wrong.
    pub result: Result<String, DockerProblem>,
}

/// Why Docker is not usable.
#[derive(Debug)]
pub enum DockerProblem {
    /// The docker CLI is not found.
    CliMissing {
        /// The PATH searched.
        path: String,
    },
    /// The docker CLI could not be run for another reason.
    CannotRun(io::Error),
    /// `docker version` did not finish in time.
    TimedOut,
    /// `docker version` failed: as a rule the daemon is not reachable.
    Unreachable {
        /// How it ended: "exited with status 1".
        status: String,
        /// Its last meaningful stderr line.
        said: Option<String>,
    },
}

impl DockerReport {
    /// Whether Docker answered.
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// What to show: one line when Docker answered, else the problem, what docker said
    /// and the fix, on indented lines. `file` is the config file, for fixes that edit it.
    pub fn render(&self, file: &Path) -> String {
        let who = format!("needed by: {}", self.backends.join(", "));
        let program = &self.program;
        match &self.result {
            Ok(version) => format!("docker: ok: server {version} at {}; {who}\n", self.host),
            Err(DockerProblem::CliMissing { path }) => format!(
                "docker: FAILED: the docker CLI {program:?} is not installed or not in PATH \
                 (PATH={path}); {who}\n  \
                 fix: install the Docker CLI (https://docs.docker.com/engine/install/), or set \
                 \"command\" of those backends in {} to the docker executable's absolute path\n",
                file.display()
            ),
            Err(DockerProblem::CannotRun(e)) => format!(
                "docker: FAILED: cannot run {program:?}: {e}; {who}\n  \
                 fix: check that {program:?} is the docker CLI and is executable\n"
            ),
            Err(DockerProblem::TimedOut) => format!(
                "docker: FAILED: no answer from the Docker daemon at {} within {} \
                 (`{program} version`); {who}\n  fix: {}\n",
                self.host,
                secs(DOCKER_VERSION_TIMEOUT),
                self.daemon_fix(false)
            ),
            Err(DockerProblem::Unreachable { status, said }) => {
                let denied = said
                    .as_deref()
                    .is_some_and(|s| s.to_lowercase().contains("permission denied"));
                let mut s = format!(
                    "docker: FAILED: cannot reach the Docker daemon at {} (`{program} version` \
                     {status}); {who}\n",
                    self.host
                );
                if let Some(said) = said {
                    s.push_str(&format!("  docker said: {said}\n"));
                }
                s.push_str(&format!("  fix: {}\n", self.daemon_fix(denied)));
                s
            }
        }
    }

    fn daemon_fix(&self, permission_denied: bool) -> String {
        if permission_denied {
            return "this user may not use the Docker socket: add it to the docker group \
                    (`sudo usermod -aG docker $USER`, then log in again), or run gangway as a \
                    user that may"
                .to_string();
        }
        let mut fix = "start the Docker daemon (`sudo systemctl start docker`, or start Docker \
                       Desktop); if gangway itself runs in a container, mount the host's socket \
                       into it with `-v /var/run/docker.sock:/var/run/docker.sock`"
            .to_string();
        if self.host.contains("DOCKER_HOST") {
            fix.push_str("; or fix or unset DOCKER_HOST");
        }
        fix
    }
}

/// Asks the Docker daemon of every `docker run` backend among `backends` for its version,
/// once per distinct docker command, global options and `DOCKER_*` environment.
pub fn docker_preflight(backends: &[&BackendConfig]) -> Vec<DockerReport> {
    type Key = (String, Vec<String>, Vec<(String, String)>);
    let probe_instance = Instance {
        id: String::new(),
        owner: String::new(),
        container: None,
        child_depth: 1,
    };
    let mut groups: Vec<(Key, &BackendConfig, Vec<String>)> = Vec::new();
    for cfg in backends {
        let Some(container) = docker::launch(cfg, &probe_instance, 0).container else {
            continue;
        };
        let env: Vec<(String, String)> = cfg
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("DOCKER_") || k == "PATH")
            .cloned()
            .collect();
        let key = (container.program, container.global, env);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, names)) => names.push(cfg.name.clone()),
            None => groups.push((key, cfg, vec![cfg.name.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|((program, global, env), cfg, names)| {
            let host = docker_host(&global, &env);
            let result = docker_version(&program, &global, cfg, &env);
            DockerReport {
                backends: names,
                program,
                host,
                result,
            }
        })
        .collect()
}

fn docker_version(
    program: &str,
    global: &[String],
    cfg: &BackendConfig,
    env: &[(String, String)],
) -> Result<String, DockerProblem> {
    let mut cmd = Command::new(program);
    cmd.args(global)
        .args(["version", "--format", "{{.Server.Version}}"])
        .envs(cfg.env.iter().map(|(k, v)| (k, v)));
    match run_bounded(&mut cmd, DOCKER_VERSION_TIMEOUT, true) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DockerProblem::CliMissing {
            path: lookup(env, "PATH").unwrap_or_else(|| "(not set)".to_string()),
        }),
        Err(e) => Err(DockerProblem::CannotRun(e)),
        Ok(Ran { status: None, .. }) => Err(DockerProblem::TimedOut),
        Ok(Ran {
            status: Some(status),
            stdout,
            stderr,
        }) => {
            let version = stdout.trim();
            if status.success() && !version.is_empty() {
                Ok(version.to_string())
            } else {
                Err(DockerProblem::Unreachable {
                    status: match status.code() {
                        Some(c) => format!("exited with status {c}"),
                        None => format!("ended: {status}"),
                    },
                    said: last_meaningful_line(stderr.lines()),
                })
            }
        }
    }
}

/// A variable from the backend's `env`, else from gangway's environment.
fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(name).ok())
        .filter(|v| !v.is_empty())
}

/// Where `docker` with `global` options and `env` looks for its daemon, and why.
fn docker_host(global: &[String], env: &[(String, String)]) -> String {
    let mut context = None;
    let mut it = global.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-H" | "--host" => {
                if let Some(h) = it.next() {
                    return format!("{h} (from {a})");
                }
            }
            "-c" | "--context" => context = it.next().cloned(),
            _ => {
                if let Some(h) = a.strip_prefix("--host=") {
                    return format!("{h} (from --host)");
                }
                if let Some(c) = a.strip_prefix("--context=") {
                    context = Some(c.to_string());
                }
            }
        }
    }
    if let Some(c) = context {
        return format!("the endpoint of docker context {c:?} (from --context)");
    }
    if let Some(h) = lookup(env, "DOCKER_HOST") {
        return format!("{h} (from DOCKER_HOST)");
    }
    if let Some(c) = lookup(env, "DOCKER_CONTEXT") {
        return format!("the endpoint of docker context {c:?} (from DOCKER_CONTEXT)");
    }
    format!("{DEFAULT_DOCKER_HOST} (the default)")
}

// ---------------------------------------------------------------------------------------
// Running probes
// ---------------------------------------------------------------------------------------

/// What probing one backend gave.
struct Probed<T> {
    ready_after: Option<Duration>,
    result: Result<T, ProbeError>,
}

/// Starts every backend in `backends` at the same time (one thread each), initializes it,
/// runs `work` on it and stops it. Results come in the order of `backends`.
fn probe_all<T: Send>(
    backends: &[&BackendConfig],
    config: &Config,
    work: &(dyn Fn(&mut Probe) -> Result<T, ProbeError> + Sync),
) -> Vec<Probed<T>> {
    let instance = Instance::current();
    let one = |seq: u64, cfg: &BackendConfig| -> Probed<T> {
        let mut probe = match Probe::spawn(cfg, &instance, seq, config.max_message_bytes) {
            Ok(p) => p,
            Err(e) => {
                return Probed {
                    ready_after: None,
                    result: Err(e),
                }
            }
        };
        let result = probe.initialize().and_then(|_| work(&mut probe));
        probe.stop();
        Probed {
            ready_after: probe.ready_after(),
            result,
        }
    };
    thread::scope(|s| {
        let handles: Vec<_> = backends
            .iter()
            .zip(1u64..)
            .map(|(cfg, seq)| {
                let one = &one;
                thread::Builder::new()
                    .name(format!("probe-{}", cfg.name))
                    .spawn_scoped(s, move || one(seq, cfg))
                    .map_err(|_| (seq, *cfg))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Probed {
                    ready_after: None,
                    result: Err(ProbeError::Io {
                        during: "probing".to_string(),
                        source: io::Error::other("the probe thread panicked"),
                    }),
                }),
                // No thread to be had: probe it here instead.
                Err((seq, cfg)) => one(seq, cfg),
            })
            .collect()
    })
}

/// Prints the docker reports and returns the names of the backends whose Docker failed.
fn report_docker(
    reports: &[DockerReport],
    file: &Path,
    to: &mut dyn Write,
) -> io::Result<Vec<String>> {
    let mut failed = Vec::new();
    for r in reports {
        to.write_all(r.render(file).as_bytes())?;
        if !r.ok() {
            failed.extend(r.backends.iter().cloned());
        }
    }
    Ok(failed)
}

// ---------------------------------------------------------------------------------------
// gangway check
// ---------------------------------------------------------------------------------------

/// What `gangway check` learned from one backend: what the catalog keeps of it.
#[derive(Debug)]
struct Learned {
    /// The `initialize` result, raw.
    init: Box<RawValue>,
    /// Its lists by [`ListKind::index`], each sorted by key as the gateway keeps them
    /// (items without a key dropped), so that the gateway finds the entry unchanged.
    lists: [Vec<Box<RawValue>>; 4],
}

/// Fetches every list of an initialized backend whose capability its `initialize` result
/// declares (`resources` covers resource templates too); the others are empty.
///
/// Only a failing `tools/list` fails: the other lists are optional, so a backend that
/// does not know the method (-32601) or fails to list them has empty ones (with a warning
/// for anything but -32601).
fn learn(p: &mut Probe) -> Result<Learned, ProbeError> {
    #[derive(Deserialize)]
    struct Init {
        #[serde(default)]
        capabilities: std::collections::HashMap<String, serde::de::IgnoredAny>,
    }
    let Some(init) = p.init_result().map(ToOwned::to_owned) else {
        return Err(ProbeError::Malformed {
            during: "initialize".to_string(),
            detail: "no result".to_string(),
        });
    };
    let declared = serde_json::from_str::<Init>(init.get())
        .map(|i| i.capabilities)
        .unwrap_or_default();
    let mut lists: [Vec<Box<RawValue>>; 4] = Default::default();
    for kind in LIST_KINDS {
        if !declared.contains_key(kind.capability()) {
            continue;
        }
        let raw = match p.list_raw(kind.method(), kind.items_key()) {
            Ok(raw) => raw,
            Err(e) if kind == ListKind::Tools => return Err(e),
            Err(ProbeError::Interrupted) => return Err(ProbeError::Interrupted),
            Err(ProbeError::Rpc { code: -32601, .. }) => {
                log::debug!(
                    "backend {}: it does not know {}; taken as an empty list",
                    p.name(),
                    kind.method()
                );
                Vec::new()
            }
            Err(e) => {
                log::warn!(
                    "backend {}: {e}; its {} are taken as an empty list",
                    p.name(),
                    kind.items_key()
                );
                Vec::new()
            }
        };
        let mut items = lists::items_from_raw(kind, &raw);
        lists::canonical(kind, &mut items);
        lists[kind.index()] = items.into_iter().map(|i| i.raw).collect();
    }
    Ok(Learned { init, lists })
}

/// The names of `list` of `kind` (tools or prompts): sorted, since `learn` sorted them.
fn names_of(kind: ListKind, list: &[Box<RawValue>]) -> Vec<String> {
    lists::items_from_raw(kind, list)
        .into_iter()
        .map(|i| i.key)
        .collect()
}

/// The names the gateway exposes under something else than `prefix` + separator + name,
/// as `names:` lines: tools and prompts of the backends that answered (`backends`, in config
/// order), placed by the gateway's own [`naming::exposed_names`].
fn renamings(config: &Config, backends: &[(&BackendConfig, &Learned)]) -> Vec<String> {
    let meta = naming::meta_listed(config.expose, config.enabled());
    let mut lines = Vec::new();
    for kind in [ListKind::Tools, ListKind::Prompts] {
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        let names: Vec<Vec<String>> = backends
            .iter()
            .map(|(_, l)| names_of(kind, &l.lists[kind.index()]))
            .collect();
        let lists = backends
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(b, ((cfg, _), names))| (b, *cfg, names.iter().map(String::as_str)));
        let (_, renamed) = naming::exposed_names(kind, &config.separator, meta, lists);
        for r in renamed {
            let backend = &backends[r.backend].0.name;
            let cand = r.candidate.escape_debug();
            let why = match &r.why {
                Why::Collision {
                    backend: GANGWAY,
                    name,
                } => format!(
                    "name collision: '{cand}' is already gangway's meta-tool '{name}'; give the \
                     backend a \"prefix\" to choose the name yourself"
                ),
                Why::Collision {
                    backend: other,
                    name,
                } => format!(
                    "name collision: '{cand}' is already {what} '{}' of backend '{}'; give one \
                     of the backends another \"prefix\" to choose the names yourself",
                    name.escape_debug(),
                    backends[*other].0.name
                ),
                Why::Invalid => {
                    format!("'{cand}' is not 1 to 64 characters of A-Z a-z 0-9 _ -")
                }
            };
            lines.push(format!(
                "names: {what} '{}' of backend '{backend}' is exposed as '{}' ({why})",
                r.name.escape_debug(),
                r.exposed
            ));
        }
    }
    lines
}

/// The TOOLS cell: the tools offered after the backend's `tools` filter, and how many it
/// filtered out.
fn tools_cell(cfg: &BackendConfig, learned: &Learned) -> String {
    let names = names_of(ListKind::Tools, &learned.lists[ListKind::Tools.index()]);
    let offered = names.iter().filter(|n| cfg.tools.permits(n)).count();
    match names.len() - offered {
        0 => offered.to_string(),
        filtered => format!("{offered} ({filtered} filtered)"),
    }
}

/// Puts an entry for every backend in `learned` in the catalog at `path` and saves it;
/// says on `out` what happened. A catalog is a cache: failing to save it is reported, not
/// a failure of the check.
fn refresh_catalog(
    path: &Path,
    learned: &[(&BackendConfig, &Learned)],
    out: &mut dyn Write,
) -> io::Result<()> {
    let n = learned.len();
    let shown = path.display();
    // With nothing learned there is nothing to write, and no reason to create the file.
    if n > 0 {
        let mut catalog = Catalog::load(path);
        let updated = catalog::now_secs();
        for (cfg, l) in learned {
            let entry = Entry {
                backend: cfg.name.clone(),
                updated,
                init: Some(l.init.clone()),
                lists: l.lists.clone(),
                failed: None,
            };
            catalog.put(cfg, entry);
        }
        if let Err(e) = catalog.save(path) {
            return writeln!(out, "catalog: could not save {shown}: {e}");
        }
    }
    let noun = if n == 1 { "entry" } else { "entries" };
    writeln!(out, "catalog: refreshed {n} {noun} in {shown}")
}

/// `gangway check`: checks Docker when a backend needs it, probes every enabled backend
/// (initialize and every list it declares, all at once), and prints a table to `out`:
/// backend, status (ok, failed, disabled, skipped), start time, tools offered (after its
/// `tools` filter), error. Then it prints the tool and prompt names the gateway would
/// expose renamed (a collision or an invalid name) and refreshes the catalog entry of
/// every backend that answered.
///
/// Returns [`Outcome::Failed`] when an enabled backend failed or was skipped because
/// Docker is not usable; renamed names and an unsaved catalog are not failures.
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn check(config: &Config, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Outcome> {
    let file = &config.path;
    let n = config.backends.len();
    writeln!(
        out,
        "config: {} is valid ({n} backend{}, {} enabled)",
        file.display(),
        if n == 1 { "" } else { "s" },
        config.enabled().count()
    )?;
    for note in &config.notes {
        writeln!(out, "note: {note}")?;
    }
    let enabled: Vec<&BackendConfig> = config.enabled().collect();
    let docker_failed = report_docker(&docker_preflight(&enabled), file, out)?;
    if interrupted() {
        writeln!(err, "gangway: interrupted")?;
        return Ok(Outcome::Interrupted);
    }
    let to_probe: Vec<&BackendConfig> = enabled
        .iter()
        .copied()
        .filter(|b| !docker_failed.contains(&b.name))
        .collect();
    if !to_probe.is_empty() && io::stderr().is_terminal() {
        let longest = to_probe.iter().map(|b| b.startup_timeout).max();
        writeln!(
            err,
            "starting {} backend(s) (each may take up to {})...",
            to_probe.len(),
            secs(longest.unwrap_or_default())
        )?;
    }
    let probed = probe_all(&to_probe, config, &learn);
    if interrupted() {
        writeln!(err, "gangway: interrupted; every backend was stopped")?;
        return Ok(Outcome::Interrupted);
    }

    let mut rows = vec![[
        "BACKEND".to_string(),
        "STATUS".to_string(),
        "START".to_string(),
        "TOOLS".to_string(),
        "ERROR".to_string(),
    ]];
    let (mut failed, mut skipped, mut disabled) = (0, 0, 0);
    // Backends that answered, in config order.
    let mut learned: Vec<(&BackendConfig, &Learned)> = Vec::new();
    for b in &config.backends {
        let row = if b.disabled {
            disabled += 1;
            [
                b.name.clone(),
                "disabled".into(),
                "-".into(),
                "-".into(),
                b.disabled_reason
                    .as_deref()
                    .map(one_line)
                    .unwrap_or_default(),
            ]
        } else if docker_failed.contains(&b.name) {
            skipped += 1;
            [
                b.name.clone(),
                "skipped".into(),
                "-".into(),
                "-".into(),
                "Docker is not usable (see above)".into(),
            ]
        } else {
            let Some(p) = to_probe
                .iter()
                .position(|c| c.name == b.name)
                .and_then(|i| probed.get(i))
            else {
                continue;
            };
            let start = p
                .ready_after
                .map_or_else(|| "-".to_string(), |d| format!("{} ms", d.as_millis()));
            match &p.result {
                Ok(l) => {
                    learned.push((b, l));
                    [
                        b.name.clone(),
                        "ok".into(),
                        start,
                        tools_cell(b, l),
                        String::new(),
                    ]
                }
                Err(e) => {
                    failed += 1;
                    [
                        b.name.clone(),
                        "failed".into(),
                        start,
                        "-".into(),
                        one_line(&e.to_string()),
                    ]
                }
            }
        };
        rows.push(row);
    }
    out.write_all(table(&rows, &[false, false, true, true, false]).as_bytes())?;

    for line in renamings(config, &learned) {
        writeln!(out, "{line}")?;
    }
    let mut summary = format!("{} ok, {failed} failed", learned.len());
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} skipped"));
    }
    if disabled > 0 {
        summary.push_str(&format!(", {disabled} disabled"));
    }
    writeln!(out, "{summary}")?;
    for line in shell_only_vars(config, &crate::config::process_env) {
        writeln!(out, "{line}")?;
    }
    match &config.catalog {
        Some(path) => refresh_catalog(path, &learned, out)?,
        None => writeln!(out, "catalog: off")?,
    }
    if skipped > 0 {
        writeln!(
            out,
            "fix Docker (see above), then run `gangway check` again"
        )?;
    }
    if failed > 0 {
        writeln!(
            out,
            "fix the failed backends in {} (`gangway --log-level debug check` shows their stderr)",
            file.display()
        )?;
    }
    if failed + skipped > 0 {
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// A warning for each enabled backend whose `${VAR}`s are set here (`lookup`), in the
/// shell `gangway check` runs in: an MCP client starts gangway with a minimal environment,
/// so there they are unset unless the client's entry for gangway passes them.
fn shell_only_vars(config: &Config, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut lines = Vec::new();
    for b in config.enabled() {
        let vars: Vec<&str> = b
            .vars
            .iter()
            .map(String::as_str)
            .filter(|v| !crate::config::ALWAYS_INHERITED.contains(v) && lookup(v).is_some())
            .collect();
        if vars.is_empty() {
            continue;
        }
        let env: Vec<String> = vars.iter().map(|v| format!("\"{v}\": \"...\"")).collect();
        let flags: Vec<String> = vars.iter().map(|v| format!("\"-e\", \"{v}\"")).collect();
        lines.push(format!(
            "warning: backend {} takes {} from this shell's environment, but an MCP client \
             starts gangway with a minimal one: add \"env\": {{{}}} to gangway's entry in the \
             client's config (for gangway's container, also add {} to its \"args\" before \
             the image)",
            b.name,
            vars.join(", "),
            env.join(", "),
            flags.join(", ")
        ));
    }
    lines
}

/// Renders `rows` (the first is the header) as columns two spaces apart; `right` marks
/// right-aligned columns. The last column is not padded.
fn table<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else if i + 1 < N {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(cell);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// The first line of `s`, trimmed, control characters removed.
fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

// ---------------------------------------------------------------------------------------
// gangway tools
// ---------------------------------------------------------------------------------------

/// Finds backend `name` in `config`, or says (to `err`) which backends there are. A
/// disabled backend is refused too: its values are not even expanded.
fn find_backend<'a>(
    config: &'a Config,
    name: &str,
    err: &mut dyn Write,
) -> io::Result<Option<&'a BackendConfig>> {
    let file = config.path.display();
    if let Some(b) = config.backends.iter().find(|b| b.name == name) {
        if let Some(reason) = &b.disabled_reason {
            writeln!(
                err,
                "gangway: backend {name} in {file} is disabled: {reason}"
            )?;
            return Ok(None);
        }
        if b.disabled {
            writeln!(
                err,
                "gangway: backend {name} is disabled in {file}; remove its \"disabled\": true \
                 to use it"
            )?;
            return Ok(None);
        }
        return Ok(Some(b));
    }
    let known: Vec<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
    let known = if known.is_empty() {
        "it configures none".to_string()
    } else {
        format!("known backends: {}", known.join(", "))
    };
    let hint = if let Some((b, t)) = name
        .split_once("__")
        .filter(|(b, _)| known_backend(config, b))
    {
        format!(" (that is the gangway name of tool {t} of backend {b}: give the backend as {b})")
    } else if let Some(b) = config
        .backends
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
    {
        format!(" (names are case-sensitive: did you mean {}?)", b.name)
    } else {
        String::new()
    };
    writeln!(
        err,
        "gangway: no backend named {name:?} in {file}{hint}; {known}"
    )?;
    Ok(None)
}

fn known_backend(config: &Config, name: &str) -> bool {
    config.backends.iter().any(|c| c.name == name)
}

/// The tools the catalog remembers, sorted, of every enabled backend not in `listed` (not
/// asked for, or failing now), by config index: their tools still take names, as they do in
/// serving, which lists a backend from the catalog until it starts it.
fn remembered_tools(
    config: &Config,
    listed: &[(&BackendConfig, Vec<ToolInfo>)],
) -> Vec<(usize, Vec<String>)> {
    let missing = |b: &BackendConfig| !b.disabled && !listed.iter().any(|(l, _)| l.name == b.name);
    let Some(path) = config.catalog.as_deref() else {
        return Vec::new();
    };
    if !config.backends.iter().any(missing) {
        return Vec::new();
    }
    let catalog = Catalog::load(path);
    let tools = ListKind::Tools;
    config
        .backends
        .iter()
        .enumerate()
        .filter(|(_, b)| missing(b))
        .filter_map(|(i, b)| {
            let entry = catalog.get(b).filter(|e| e.has_lists())?;
            let mut names = names_of(tools, &entry.lists[tools.index()]);
            names.sort_unstable();
            Some((i, names))
        })
        .collect()
}

/// `gangway tools [BACKEND]`: lists the tools of `backend` or of every enabled backend,
/// grouped by backend and sorted by name: the name a client's `tools/list` has it under
/// (placed by the gateway's own [`naming::exposed_names`]; "(filtered out)" for a tool its
/// `tools` filter refuses, "(via use_tool)" for one that is not listed directly), the
/// backend's own name and the first line of the description.
///
/// Returns [`Outcome::Usage`] for an unknown backend and [`Outcome::Failed`] when a
/// backend failed (the others are still listed).
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn tools(
    config: &Config,
    backend: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let selected: Vec<&BackendConfig> = match backend {
        Some(name) => match find_backend(config, name, err)? {
            Some(b) => vec![b],
            None => return Ok(Outcome::Usage),
        },
        None => config.enabled().collect(),
    };
    if selected.is_empty() {
        writeln!(
            err,
            "gangway: no enabled backends in {}",
            config.path.display()
        )?;
        return Ok(Outcome::Success);
    }
    let mut docker_err = Vec::new();
    let reports = docker_preflight(&selected);
    let docker_failed = report_docker(
        &reports.into_iter().filter(|r| !r.ok()).collect::<Vec<_>>(),
        &config.path,
        &mut docker_err,
    )?;
    err.write_all(&docker_err)?;
    if interrupted() {
        writeln!(err, "gangway: interrupted")?;
        return Ok(Outcome::Interrupted);
    }
    let to_probe: Vec<&BackendConfig> = selected
        .iter()
        .copied()
        .filter(|b| !docker_failed.contains(&b.name))
        .collect();
    let probed = probe_all(&to_probe, config, &|p| p.list_tools());
    if interrupted() {
        writeln!(err, "gangway: interrupted; every backend was stopped")?;
        return Ok(Outcome::Interrupted);
    }

    let mut outcome = if docker_failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    let mut listed: Vec<(&BackendConfig, Vec<ToolInfo>)> = Vec::new();
    for (b, p) in to_probe.iter().zip(probed) {
        match p.result {
            Ok(mut t) => {
                t.sort_by(|x, y| x.name.cmp(&y.name));
                listed.push((b, t));
            }
            Err(e) => {
                writeln!(
                    err,
                    "gangway: backend {} ({}): {e}",
                    b.name,
                    config.path.display()
                )?;
                outcome = Outcome::Failed;
            }
        }
    }
    // The names a client is served: the gateway's own placement (backends keyed by their
    // index in the config), with the meta-tools' names reserved while they are listed.
    let meta = naming::meta_listed(config.expose, config.enabled());
    let remembered = remembered_tools(config, &listed);
    let lists = config.backends.iter().enumerate().filter_map(|(i, b)| {
        let names: Vec<&str> = match listed.iter().find(|(l, _)| l.name == b.name) {
            Some((_, ts)) => ts.iter().map(|t| t.name.as_str()).collect(),
            None => remembered
                .iter()
                .find(|(r, _)| *r == i)?
                .1
                .iter()
                .map(String::as_str)
                .collect(),
        };
        Some((i, b, names))
    });
    let (names, _) = naming::exposed_names(ListKind::Tools, &config.separator, meta, lists);
    let mut text = String::new();
    for (n, (b, ts)) in listed.iter().enumerate() {
        if n > 0 {
            text.push('\n');
        }
        let i = config.backends.iter().position(|c| c.name == b.name);
        let n = ts.len();
        text.push_str(&format!(
            "{}: {n} tool{}\n",
            b.name,
            if n == 1 { "" } else { "s" }
        ));
        let shown: Vec<String> = ts
            .iter()
            .map(|t| {
                match i.and_then(|i| names.exposed(i, &t.name)) {
                    Some(exposed) => exposed.to_string(),
                    None if !b.tools.permits(&t.name) => "(filtered out)".to_string(),
                    // Not listed directly: the meta-tools reach it under its own name.
                    None => "(via use_tool)".to_string(),
                }
            })
            .collect();
        // Columns line up within a backend's group.
        let name_w = ts.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
        let full_w = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        for (t, full) in ts.iter().zip(&shown) {
            let desc = t.description.as_deref().map(one_line).unwrap_or_default();
            let line = format!("  {full:<full_w$}  {:<name_w$}  {desc}", t.name);
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    out.write_all(text.as_bytes())?;
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------
// gangway call
// ---------------------------------------------------------------------------------------

/// Parses the JSON arguments of `gangway call`: a JSON object, `{}` when absent.
///
/// # Errors
///
/// A message naming the problem and showing the expected form.
pub fn parse_arguments(text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(json!({}));
    };
    let example =
        r#"for example '{"text": "hi"}' (in single quotes, so the shell keeps the double quotes)"#;
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(v) => Err(format!(
            "JSON_ARGS must be a JSON object, not {}: {}; {example}",
            crate::config::type_name(&v),
            text.trim()
        )),
        Err(e) => Err(format!(
            "JSON_ARGS is not valid JSON ({e}): {}; {example}",
            text.trim()
        )),
    }
}

/// `gangway call BACKEND TOOL [JSON_ARGS]`: starts `backend`, calls `tool` with the
/// arguments, prints the result's content to `out` (text items as text, other items as
/// one line of JSON each; `structuredContent` when there is no content) and stops the
/// backend.
///
/// Returns [`Outcome::Usage`] for invalid arguments or an unknown backend, and
/// [`Outcome::Failed`] when the result has `isError: true` or the call failed (the reason
/// goes to `err`).
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn call(
    config: &Config,
    backend: &str,
    tool: &str,
    arguments: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let args = match parse_arguments(arguments) {
        Ok(a) => a,
        Err(msg) => {
            writeln!(err, "gangway: {msg}")?;
            return Ok(Outcome::Usage);
        }
    };
    let Some(cfg) = find_backend(config, backend, err)? else {
        return Ok(Outcome::Usage);
    };
    let file = config.path.display();
    for r in docker_preflight(&[cfg]) {
        if !r.ok() {
            err.write_all(r.render(&config.path).as_bytes())?;
            return Ok(Outcome::Failed);
        }
    }
    let fail = |err: &mut dyn Write, e: &ProbeError| -> io::Result<Outcome> {
        if matches!(e, ProbeError::Interrupted) {
            writeln!(err, "gangway: interrupted; backend {backend} was stopped")?;
            return Ok(Outcome::Interrupted);
        }
        writeln!(err, "gangway: backend {backend} ({file}): {e}")?;
        Ok(Outcome::Failed)
    };
    let instance = Instance::current();
    let mut probe = match Probe::spawn(cfg, &instance, 1, config.max_message_bytes) {
        Ok(p) => p,
        Err(e) => return fail(err, &e),
    };
    if let Err(e) = probe.initialize() {
        return fail(err, &e);
    }
    let result = match probe.call_tool(tool, args) {
        Ok(r) => r,
        Err(e @ ProbeError::Rpc { .. }) => {
            // Most often a tool name that does not exist: say which ones do.
            let hint = match probe.list_tools() {
                Ok(list) if !list.iter().any(|t| t.name == tool) => {
                    let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
                    let prefix = format!("{backend}__");
                    let plain = tool.strip_prefix(&prefix).filter(|p| names.contains(p));
                    let mean = plain
                        .map(|p| format!(" (use the backend's own name: `{p}`)"))
                        .unwrap_or_default();
                    Some(format!(
                        "backend {backend} has no tool {tool:?}{mean}; its tools: {}",
                        names.join(", ")
                    ))
                }
                _ => None,
            };
            probe.stop();
            let outcome = fail(err, &e)?;
            if let Some(h) = hint {
                writeln!(err, "gangway: {h}")?;
            }
            return Ok(outcome);
        }
        Err(e) => return fail(err, &e),
    };
    probe.stop();
    out.write_all(render_result(&result).as_bytes())?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        writeln!(
            err,
            "gangway: tool {tool} of backend {backend} returned an error (isError: true)"
        )?;
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// A tool result as the user reads it: each text item as its text, each other item as
/// one line of JSON; `structuredContent` as JSON when there is no content.
fn render_result(result: &Value) -> String {
    let mut s = String::new();
    let items = result
        .get("content")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    match items {
        Some(items) => {
            for item in items {
                match (item.get("type").and_then(Value::as_str), item.get("text")) {
                    (Some("text"), Some(Value::String(t))) => s.push_str(t),
                    _ => s.push_str(&item.to_string()),
                }
                if !s.ends_with('\n') {
                    s.push('\n');
                }
            }
        }
        None => {
            if let Some(v) = result.get("structuredContent") {
                s.push_str(&v.to_string());
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> BackendConfig {
        BackendConfig {
            name: "sh".to_string(),
            command: "sh".to_string(),
            args: vec!["-c".to_string(), script.to_string()],
            env: Vec::new(),
            cwd: None,
            description: None,
            timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(10),
            client_request_timeout: Duration::from_secs(600),
            idle_timeout: None,
            disabled: false,
            prefix: "sh".to_string(),
            tools: Default::default(),
            expose: crate::config::Expose::Meta,
            direct: vec![],
            scope: crate::config::Scope::Shared,
            disabled_reason: None,
            env_remove: vec![],
            vars: vec![],
        }
    }

    fn instance() -> Instance {
        Instance {
            id: "000000000000".to_string(),
            owner: String::new(),
            container: None,
            child_depth: 1,
        }
    }

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}"#;
    const INIT_TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"1"}}}"#;

    #[test]
    fn pages_are_followed_and_server_pings_answered() {
        // A server that pings the client (and asks it for sampling, which it must refuse)
        // after the handshake, and serves tools/list in two pages only once both answers
        // came back right.
        let script = format!(
            r#"say() {{ printf '%s\n' "$1"; }}
while read -r l; do
  case "$l" in
    *'"method":"initialize"'*) say '{INIT}' ;;
    *'"method":"notifications/initialized"'*)
      say '{{"jsonrpc":"2.0","id":"s1","method":"ping"}}'
      say '{{"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{{}}}}'
      say '{{"jsonrpc":"2.0","method":"notifications/message","params":{{}}}}'
      say 'not json' ;;
    *'"id":"s1"'*) case "$l" in *'"result":{{}}'*) pong=1 ;; esac ;;
    *'"id":"s2"'*) case "$l" in *-32601*) refused=1 ;; esac ;;
    *'"cursor":"p2"'*)
      [ "$pong$refused" = 11 ] || {{ echo "pong=$pong refused=$refused" >&2; exit 7; }}
      say '{{"jsonrpc":"2.0","id":3,"result":{{"tools":[{{"name":"b"}}]}}}}' ;;
    *'"method":"tools/list"'*)
      say '{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{{"name":"a","description":"first\nmore"}}],"nextCursor":"p2"}}}}' ;;
  esac
done"#
        );
        let mut p = Probe::spawn(&sh(&script), &instance(), 1, 1 << 20).expect("spawn sh");
        p.initialize().expect("initialize");
        assert!(p.ready_after().is_some());
        let tools = p.list_tools().unwrap_or_else(|e| panic!("tools/list: {e}"));
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(tools[0].description.as_deref(), Some("first\nmore"));
        p.stop();
        assert_eq!(p.exit.as_deref(), Some("exit status 0"));
    }

    #[test]
    fn learn_fetches_declared_lists_and_is_lenient_with_optional_ones() {
        // Declares tools, prompts and resources (not completions). prompts/list is
        // unknown (-32601), resources/list fails otherwise; both are empty lists. Tools
        // come back sorted; the init result is kept byte for byte.
        let init = r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"s",  "version":"1"}}"#;
        let script = format!(
            r#"say() {{ printf '%s\n' "$1"; }}
while read -r l; do
  case "$l" in
    *'"method":"initialize"'*) say '{{"jsonrpc":"2.0","id":1,"result":{init}}}' ;;
    *'"method":"tools/list"'*)
      say '{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{{"name":"b","z":1,"a":2}},{{"name":"a"}},{{"nameless":1}}]}}}}' ;;
    *'"method":"prompts/list"'*)
      say '{{"jsonrpc":"2.0","id":3,"error":{{"code":-32601,"message":"no"}}}}' ;;
    *'"method":"resources/list"'*)
      say '{{"jsonrpc":"2.0","id":4,"error":{{"code":-32000,"message":"broken"}}}}' ;;
    *'"method":"resources/templates/list"'*)
      say '{{"jsonrpc":"2.0","id":5,"result":{{"resourceTemplates":[{{"uriTemplate":"x://{{id}}","name":"x"}}]}}}}' ;;
  esac
done"#
        );
        let mut p = Probe::spawn(&sh(&script), &instance(), 1, 1 << 20).expect("spawn sh");
        p.initialize().expect("initialize");
        let l = learn(&mut p).unwrap_or_else(|e| panic!("learn: {e}"));
        p.stop();
        assert_eq!(l.init.get(), init);
        let raw =
            |k: ListKind| -> Vec<&str> { l.lists[k.index()].iter().map(|r| r.get()).collect() };
        assert_eq!(
            raw(ListKind::Tools),
            [r#"{"name":"a"}"#, r#"{"name":"b","z":1,"a":2}"#]
        );
        assert!(raw(ListKind::Prompts).is_empty());
        assert!(raw(ListKind::Resources).is_empty());
        assert_eq!(
            raw(ListKind::Templates),
            [r#"{"uriTemplate":"x://{id}","name":"x"}"#]
        );
    }

    #[test]
    fn learn_fails_on_tools_and_skips_undeclared_lists() {
        // Declares only tools, whose listing fails; nothing else is asked for.
        let script = format!(
            r#"while read -r l; do
  case "$l" in
    *'"method":"initialize"'*) printf '%s\n' '{INIT_TOOLS}' ;;
    *'"method":"tools/list"'*) printf '%s\n' '{{"jsonrpc":"2.0","id":2,"error":{{"code":-32601,"message":"no tools"}}}}' ;;
    *'"id":'*) echo "unexpected: $l" >&2; exit 9 ;;
  esac
done"#
        );
        let mut p = Probe::spawn(&sh(&script), &instance(), 1, 1 << 20).expect("spawn sh");
        p.initialize().expect("initialize");
        let e = learn(&mut p).expect_err("tools/list fails");
        assert!(matches!(e, ProbeError::Rpc { code: -32601, .. }), "{e}");
        // No capability at all: every list is empty, and nothing is requested.
        let mut p = Probe::spawn(
            &sh(&format!(
                r#"while read -r l; do
  case "$l" in
    *'"method":"initialize"'*) printf '%s\n' '{INIT}' ;;
    *'"id":'*) echo "unexpected: $l" >&2; exit 9 ;;
  esac
done"#
            )),
            &instance(),
            1,
            1 << 20,
        )
        .expect("spawn sh");
        p.initialize().expect("initialize");
        let l = learn(&mut p).unwrap_or_else(|e| panic!("learn: {e}"));
        assert!(l.lists.iter().all(Vec::is_empty));
        p.stop();
        assert_eq!(p.exit.as_deref(), Some("exit status 0"));
    }

    #[test]
    fn list_raw_refuses_a_repeated_cursor() {
        let script = format!(
            r#"while read -r l; do
  case "$l" in
    *'"method":"initialize"'*) printf '%s\n' '{INIT}' ;;
    *'"id":2,'*) printf '%s\n' '{{"jsonrpc":"2.0","id":2,"result":{{"prompts":[],"nextCursor":"c"}}}}' ;;
    *'"id":3,'*) printf '%s\n' '{{"jsonrpc":"2.0","id":3,"result":{{"prompts":[{{"name":"p"}}],"nextCursor":"c"}}}}' ;;
  esac
done"#
        );
        let mut p = Probe::spawn(&sh(&script), &instance(), 1, 1 << 20).expect("spawn sh");
        p.initialize().expect("initialize");
        let e = p
            .list_raw("prompts/list", "prompts")
            .expect_err("cursor loop");
        let msg = e.to_string();
        assert!(
            msg.contains("prompts/list") && msg.contains("the same nextCursor \"c\" twice"),
            "{msg}"
        );
    }

    fn learned(tools: &[&str], prompts: &[&str]) -> Learned {
        let raw = |names: &[&str]| -> Vec<Box<RawValue>> {
            names
                .iter()
                .map(|n| serde_json::value::to_raw_value(&json!({ "name": n })).unwrap())
                .collect()
        };
        Learned {
            init: serde_json::value::to_raw_value(&json!({})).unwrap(),
            lists: [raw(tools), raw(prompts), Vec::new(), Vec::new()],
        }
    }

    fn backend(name: &str, prefix: &str, expose: crate::config::Expose) -> BackendConfig {
        BackendConfig {
            name: name.to_string(),
            prefix: prefix.to_string(),
            expose,
            ..sh("")
        }
    }

    fn config_of(backends: &[&BackendConfig]) -> Config {
        Config {
            path: PathBuf::from("config.json"),
            expose: crate::config::Expose::Meta,
            max_message_bytes: 1 << 20,
            catalog: None,
            separator: "__".to_string(),
            backends: backends.iter().map(|b| (*b).clone()).collect(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn renamings_name_backends_and_reasons_as_the_gateway_places_them() {
        use crate::config::Expose;
        use crate::gateway::naming::{NameTable, Wanted};
        let mut a = backend("alpha", "x", Expose::Tools);
        a.tools.deny = vec![glob::Pattern::new("hidden").unwrap()];
        let b = backend("beta", "x", Expose::Both);
        // Meta only: its tools are not listed directly, so they claim no names but those
        // it pins with `direct`; its prompts do.
        let mut c = backend("gamma", "x", Expose::Meta);
        c.direct = vec![glob::Pattern::new("pinned").unwrap()];
        let la = learned(&["echo", "hidden", "bad name"], &["p"]);
        let lb = learned(&["echo", "hidden", "other"], &[]);
        let lc = learned(&["echo", "pinned", "other"], &["p"]);
        let config = config_of(&[&a, &b, &c]);
        let lines = renamings(&config, &[(&a, &la), (&b, &lb), (&c, &lc)]);
        let w = |backend, name| Wanted {
            backend,
            prefix: "x",
            name,
        };
        let (_, want) = NameTable::build(
            "__",
            &[
                w(0, "bad name"),
                w(0, "echo"),
                w(1, "echo"),
                w(1, "hidden"),
                w(1, "other"),
                w(2, "pinned"),
            ],
        );
        let exposed = |i: usize| want[i].exposed.as_str();
        assert_eq!(want.len(), 2, "{want:?}");
        let prompt = NameTable::build("__", &[w(0, "p"), w(2, "p")]).1;
        assert_eq!(
            lines,
            [
                format!(
                    "names: tool 'bad name' of backend 'alpha' is exposed as '{}' ('x__bad name' is not 1 to 64 characters of A-Z a-z 0-9 _ -)",
                    exposed(0)
                ),
                format!(
                    "names: tool 'echo' of backend 'beta' is exposed as '{}' (name collision: 'x__echo' is already tool 'echo' of backend 'alpha'; give one of the backends another \"prefix\" to choose the names yourself)",
                    exposed(1)
                ),
                format!(
                    "names: prompt 'p' of backend 'gamma' is exposed as '{}' (name collision: 'x__p' is already prompt 'p' of backend 'alpha'; give one of the backends another \"prefix\" to choose the names yourself)",
                    prompt[0].exposed
                ),
            ]
        );
        assert_eq!(tools_cell(&a, &la), "2 (1 filtered)");
        assert_eq!(tools_cell(&b, &lb), "3");
    }

    #[test]
    fn renamings_name_a_tool_that_takes_a_meta_tools_name() {
        use crate::config::Expose;
        let a = backend("alpha", "", Expose::Both);
        let la = learned(&["discover_backend_tools", "echo", "use_tool"], &[]);
        let lines = renamings(&config_of(&[&a]), &[(&a, &la)]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (line, name) in lines.iter().zip(["discover_backend_tools", "use_tool"]) {
            assert!(
                line.starts_with(&format!(
                    "names: tool '{name}' of backend 'alpha' is exposed as '{name}_"
                )),
                "{line}"
            );
            assert!(
                line.contains(&format!(
                    "(name collision: '{name}' is already gangway's meta-tool '{name}'; give the backend a \"prefix\""
                )),
                "{line}"
            );
        }

        // In tools mode no meta-tool is listed, so the names are free.
        let t = backend("alpha", "", Expose::Tools);
        assert!(renamings(&config_of(&[&t]), &[(&t, &la)]).is_empty());
    }

    #[test]
    fn an_exit_during_initialize_names_status_and_stderr() {
        let cfg = sh("read l; echo 'Unable to find image x' >&2; echo \"See 'docker run --help'.\" >&2; exit 125");
        let mut p = Probe::spawn(&cfg, &instance(), 1, 1 << 20).expect("spawn sh");
        let e = p.initialize().expect_err("it exits");
        let msg = e.to_string();
        assert!(msg.contains("exit status 125"), "{msg}");
        assert!(msg.contains("Unable to find image x"), "{msg}");
    }

    #[test]
    fn a_silent_backend_times_out_and_is_killed() {
        let mut cfg = sh("trap '' TERM; echo started >&2; while :; do sleep 1; done");
        cfg.startup_timeout = Duration::from_millis(300);
        let mut p = Probe::spawn(&cfg, &instance(), 1, 1 << 20).expect("spawn sh");
        let pid = p.pid;
        let e = p.initialize().expect_err("no answer");
        let msg = e.to_string();
        assert!(msg.contains("within 0.3 s"), "{msg}");
        assert!(msg.contains("last stderr line: started"), "{msg}");
        drop(p);
        // Reaped by the probe: the pid no longer exists (not even as a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn npms_404_line_is_shown_rather_than_its_log_file_line() {
        let npm10 = [
            "npm error code E404",
            "npm error 404 Not Found - GET https://registry.npmjs.org/@x%2fnope - Not found",
            "npm error 404",
            "npm error 404  '@x/nope@*' is not in this registry.",
            "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log",
        ];
        assert_eq!(
            last_meaningful_line(npm10.iter().copied()).as_deref(),
            Some("npm error 404 Not Found - GET https://registry.npmjs.org/@x%2fnope - Not found")
        );
        let npm8 = [
            "npm ERR! code ETARGET",
            "npm ERR! notarget No matching version found for x@9.",
            "npm ERR! A complete log of this run can be found in:",
            "npm ERR!     /root/.npm/_logs/x.log",
        ];
        assert_eq!(
            last_meaningful_line(npm8.iter().copied()).as_deref(),
            Some("npm ERR! notarget No matching version found for x@9.")
        );
        let other = ["starting", "Error: boom", "See 'docker run --help'."];
        assert_eq!(
            last_meaningful_line(other.iter().copied()).as_deref(),
            Some("Error: boom")
        );
    }

    #[test]
    fn shell_only_variables_are_named_with_how_to_pass_them() {
        let config = Config::parse(
            r#"{"backends": {"gh": {"command": "x", "env": {"T": "${GH_TOKEN}", "H": "${HOME}", "U": "${UNSET_HERE:-d}"}}}}"#,
            Path::new("/tmp/c.json"),
            &|v: &str| (v != "UNSET_HERE").then(|| "v".to_string()),
        )
        .expect("valid");
        let lines = shell_only_vars(&config, &|v: &str| {
            (v != "UNSET_HERE").then(|| "v".to_string())
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert!(
            l.contains("backend gh takes GH_TOKEN from this shell"),
            "{l}"
        );
        assert!(l.contains("\"env\": {\"GH_TOKEN\": \"...\"}"), "{l}");
        assert!(l.contains("\"-e\", \"GH_TOKEN\""), "{l}");
        assert!(!l.contains("HOME"), "{l}");
    }

    #[test]
    fn spawn_errors_say_what_to_fix() {
        let mut cfg = sh("");
        cfg.command = "gangway-no-such-command".to_string();
        let e = Probe::spawn(&cfg, &instance(), 1, 1024).expect_err("not found");
        assert!(e.to_string().contains("not in PATH"), "{e}");
        let mut cfg = sh("");
        cfg.cwd = Some(PathBuf::from("/nonexistent/dir"));
        let e = Probe::spawn(&cfg, &instance(), 1, 1024).expect_err("no cwd");
        assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
    }

    #[test]
    fn arguments_must_be_a_json_object() {
        assert_eq!(parse_arguments(None), Ok(json!({})));
        assert_eq!(parse_arguments(Some(r#"{"a":1}"#)), Ok(json!({"a": 1})));
        let e = parse_arguments(Some("[1]")).expect_err("array");
        assert!(e.contains("must be a JSON object, not an array"), "{e}");
        let e = parse_arguments(Some("{text: hi}")).expect_err("not JSON");
        assert!(
            e.contains("not valid JSON") && e.contains("line 1 column 2"),
            "{e}"
        );
    }

    #[test]
    fn results_print_text_as_text_and_the_rest_as_json() {
        let r = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "text", "text": "two\nlines\n"},
        ]});
        assert_eq!(
            render_result(&r),
            "hello\n{\"data\":\"AAAA\",\"mimeType\":\"image/png\",\"type\":\"image\"}\ntwo\nlines\n"
        );
        let r = json!({"content": [], "structuredContent": {"n": 1}});
        assert_eq!(render_result(&r), "{\"n\":1}\n");
    }

    #[test]
    fn docker_host_comes_from_options_then_env_then_default() {
        let g = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let env = vec![("DOCKER_HOST".to_string(), "tcp://h:2375".to_string())];
        assert_eq!(
            docker_host(&g(&["-H", "unix:///x.sock"]), &env),
            "unix:///x.sock (from -H)"
        );
        assert_eq!(docker_host(&[], &env), "tcp://h:2375 (from DOCKER_HOST)");
        assert!(docker_host(&g(&["--context=remote"]), &env).contains("\"remote\""));
    }

    #[test]
    fn docker_help_hints_are_not_the_last_word() {
        let lines = [
            "Unable to find image 'x:latest' locally",
            "docker: Error response from daemon: pull access denied for x.",
            "See 'docker run --help'.",
            "",
        ];
        assert_eq!(
            last_meaningful_line(lines.iter().copied()).as_deref(),
            Some("docker: Error response from daemon: pull access denied for x.")
        );
    }

    #[test]
    fn tables_align_columns() {
        let rows = [
            ["A".to_string(), "N".to_string(), "E".to_string()],
            ["long".to_string(), "10".to_string(), String::new()],
            ["b".to_string(), "2".to_string(), "boom".to_string()],
        ];
        assert_eq!(
            table(&rows, &[false, true, false]),
            "A      N  E\nlong  10\nb      2  boom\n"
        );
    }
}
