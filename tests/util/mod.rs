//! Shared harness for the black-box tests: temp dirs, configs, a line-oriented JSON-RPC
//! client driving the real `gangway` binary, and waits with deadlines (never bare sleeps).

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The default deadline for anything that should happen "at once".
pub const T: Duration = Duration::from_secs(10);
/// How often the polling waits look again.
const POLL: Duration = Duration::from_millis(10);

/// The gangway binary under test.
pub fn gangway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gangway"))
}

/// The mock backend, built by cargo next to this test binary
/// (target/debug/deps/tests-xxxx -> target/debug/examples/mock_server).
pub fn mock_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent dir");
    let path = deps
        .parent()
        .expect("deps dir has a parent")
        .join("examples")
        .join("mock_server");
    assert!(
        path.exists(),
        "mock backend not found at {}: run the tests with `cargo test` (which builds examples/mock_server.rs)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Temp dirs and configs
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gangway-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `config` as `name` and returns its path.
    pub fn write_config(&self, name: &str, config: &Value) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A backend entry running the mock with `--name NAME` and `extra` flags.
pub fn mock(name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--name".to_string(), name.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    json!({ "command": mock_path().to_str().unwrap(), "args": args })
}

/// A mock backend that records every line it receives into `file`.
pub fn recording_mock(name: &str, file: &Path, extra: &[&str]) -> Value {
    let mut flags = vec!["--record", file.to_str().unwrap()];
    flags.extend_from_slice(extra);
    mock(name, &flags)
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// gangway's stderr, collected line by line.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running gangway driven over its stdio.
pub struct Gangway {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Arc<Lines>,
    /// Every stdout line received so far, for failure messages.
    seen: Vec<String>,
    /// Received but not yet claimed by a wait.
    unclaimed: VecDeque<(String, Value)>,
    next_id: i64,
}

/// A `gangway --config DIR/config.json` command with piped stdio and a clean log setup.
pub fn gangway_command(dir: &TempDir, config: &Value) -> Command {
    let path = dir.write_config("config.json", config);
    gangway_command_for_file(dir, &path)
}

impl Gangway {
    /// Starts gangway with `config` written into `dir`.
    pub fn start(dir: &TempDir, config: &Value) -> Gangway {
        Gangway::spawn(gangway_command(dir, config))
    }

    /// Starts gangway from a prepared command (stdout and stderr must be piped; stdin may
    /// be anything).
    pub fn spawn(mut cmd: Command) -> Gangway {
        let mut child = cmd.spawn().expect("spawn gangway");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let lines = Arc::new(Lines::default());
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().unwrap().push(line);
                sink.changed.notify_all();
            }
        });
        Gangway {
            child,
            stdin,
            stdout: rx,
            stderr: lines,
            seen: Vec::new(),
            unclaimed: VecDeque::new(),
            next_id: 1,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    // ----- sending ----------------------------------------------------------------------

    /// Writes one line (a newline is added).
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("gangway's stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to gangway's stdin");
    }

    /// Writes many lines in one write.
    pub fn send_all(&mut self, lines: &[String]) {
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        let stdin = self.stdin.as_mut().expect("gangway's stdin is open");
        stdin.write_all(buf.as_bytes()).expect("write to stdin");
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, msg: &Value) {
        self.send_raw(&msg.to_string());
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// A fresh numeric request id.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request and returns its id.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id());
        let mut msg = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(&msg);
        id
    }

    /// Builds a `tools/call` request line with the given id.
    pub fn tool_call_line(id: &Value, tool: &str, args: Value) -> String {
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": { "name": tool, "arguments": args } })
        .to_string()
    }

    /// Sends a `tools/call` and returns its id.
    pub fn request_tool(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({ "name": tool, "arguments": args }))
    }

    /// Sends a `use_tool` call for `backend`'s `tool` and returns its id.
    pub fn request_use_tool(&mut self, backend: &str, tool: &str, args: Value) -> Value {
        self.request_tool(
            "use_tool",
            json!({ "backend_server": backend, "server_tool": tool, "tool_arguments": args }),
        )
    }

    /// A request and its response (the whole response message).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        self.response(&id, T)
    }

    /// A `tools/call` and its whole response message.
    pub fn call_tool(&mut self, tool: &str, args: Value) -> Value {
        let id = self.request_tool(tool, args);
        self.response(&id, T)
    }

    /// A `use_tool` call and its whole response message.
    pub fn use_tool(&mut self, backend: &str, tool: &str, args: Value) -> Value {
        let id = self.request_use_tool(backend, tool, args);
        self.response(&id, T)
    }

    /// The MCP handshake; returns the initialize result.
    pub fn initialize(&mut self) -> Value {
        let resp = self.call(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "gangway-tests", "version": "0" } }),
        );
        assert!(resp.get("result").is_some(), "initialize failed: {resp}");
        self.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        resp["result"].clone()
    }

    // ----- receiving --------------------------------------------------------------------

    /// Receives the next stdout message not yet claimed (raw line and parsed value).
    pub fn recv_raw(&mut self, timeout: Duration) -> Option<(String, Value)> {
        if let Some(m) = self.unclaimed.pop_front() {
            return Some(m);
        }
        self.pull(Instant::now() + timeout)
    }

    /// Receives the next message, failing the test if none comes within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Value {
        match self.recv_raw(timeout) {
            Some((_, v)) => v,
            None => self.fail(&format!("no message within {timeout:?}")),
        }
    }

    /// Reads one line from the channel; every stdout line must be JSON.
    fn pull(&mut self, deadline: Instant) -> Option<(String, Value)> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.stdout.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    self.fail(&format!(
                        "gangway wrote a non-JSON line to stdout ({e}): {line:?}"
                    ))
                });
                Some((line, value))
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the first message matching `pred` (raw line and value); messages that do
    /// not match are kept for later waits. Fails with everything seen on timeout.
    pub fn recv_until_raw(
        &mut self,
        mut pred: impl FnMut(&str, &Value) -> bool,
        timeout: Duration,
    ) -> (String, Value) {
        if let Some(i) = self.unclaimed.iter().position(|(r, v)| pred(r, v)) {
            return self.unclaimed.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.pull(deadline) {
                Some((r, v)) if pred(&r, &v) => return (r, v),
                Some(m) => self.unclaimed.push_back(m),
                None => self.fail(&format!(
                    "no matching message within {timeout:?} (stdout closed: {})",
                    self.stdout_closed()
                )),
            }
        }
    }

    pub fn recv_until(&mut self, mut pred: impl FnMut(&Value) -> bool, timeout: Duration) -> Value {
        self.recv_until_raw(|_, v| pred(v), timeout).1
    }

    /// The response (result or error) to the request with `id`.
    pub fn response(&mut self, id: &Value, timeout: Duration) -> Value {
        self.response_raw(id, timeout).1
    }

    pub fn response_raw(&mut self, id: &Value, timeout: Duration) -> (String, Value) {
        let id = id.clone();
        self.recv_until_raw(
            move |_, v| v.get("method").is_none() && v.get("id") == Some(&id),
            timeout,
        )
    }

    /// Every stdout line received so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    fn stdout_closed(&self) -> bool {
        matches!(
            self.stdout.try_recv(),
            Err(mpsc::TryRecvError::Disconnected)
        )
    }

    /// Reads whatever remains on stdout until gangway closes it (or `timeout`).
    pub fn drain_stdout(&mut self, timeout: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + timeout;
        let mut out: Vec<_> = self.unclaimed.drain(..).collect();
        while let Some(m) = self.pull(deadline) {
            out.push(m);
        }
        out
    }

    // ----- stderr -----------------------------------------------------------------------

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lines.lock().unwrap().clone()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        self.wait_stderr_after(0, needle, timeout)
    }

    /// How many stderr lines gangway has written so far (a mark for [`wait_stderr_after`]).
    ///
    /// [`wait_stderr_after`]: Gangway::wait_stderr_after
    pub fn stderr_len(&self) -> usize {
        self.stderr.lines.lock().unwrap().len()
    }

    /// Waits for a stderr line containing `needle` among the lines after the first `mark`
    /// (from [`stderr_len`](Gangway::stderr_len)), so an earlier line with the same text
    /// does not count.
    pub fn wait_stderr_after(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.stderr.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().skip(mark).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let all = lines.join("\n");
                drop(lines);
                self.fail(&format!(
                    "no stderr line containing {needle:?} after line {mark} within {timeout:?}; stderr:\n{all}"
                ));
            }
            lines = self.stderr.changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Makes sure every stderr line gangway wrote before this call has been read: sends a
    /// non-JSON line carrying a unique marker and waits both for its -32700 answer and for
    /// the warning that quotes it (gangway is single-threaded and logs in order).
    pub fn stderr_barrier(&mut self) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let marker = format!("stderr-barrier-{}", N.fetch_add(1, Ordering::Relaxed));
        self.send_raw(&marker);
        self.recv_until(|v| v["error"]["code"] == -32700 && v["id"].is_null(), T);
        self.wait_stderr(&marker, T);
    }

    /// Drops every message received so far but not yet claimed that matches `pred` (e.g.
    /// notifications that must not satisfy a later wait); returns how many were dropped.
    pub fn forget_received(&mut self, mut pred: impl FnMut(&Value) -> bool) -> usize {
        let before = self.unclaimed.len();
        self.unclaimed.retain(|(_, v)| !pred(v));
        before - self.unclaimed.len()
    }

    /// Waits for a notification with `method` (e.g. `notifications/tools/list_changed`).
    pub fn wait_notification(&mut self, method: &str, timeout: Duration) -> Value {
        self.recv_until(|v| v.get("id").is_none() && v["method"] == method, timeout)
    }

    /// The tool names of a fresh `tools/list`.
    pub fn list_tool_names(&mut self) -> Vec<String> {
        let list = self.call("tools/list", Value::Null);
        tool_names(&list)
    }

    /// Sends gangway SIGHUP (re-read the config file).
    pub fn sighup(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("send SIGHUP to gangway");
    }

    /// Closes stdin and asserts gangway exits with status 0 within `T`.
    pub fn finish(&mut self) {
        self.close_stdin();
        match self.wait_exit(T) {
            Some(status) if status.success() => {}
            other => self.fail(&format!(
                "gangway did not exit cleanly after stdin closed: {other:?}"
            )),
        }
    }

    // ----- exit -------------------------------------------------------------------------

    /// Waits for gangway to exit; None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// Fails the test with `why`, everything gangway wrote to stdout and its stderr.
    pub fn fail(&self, why: &str) -> ! {
        let stderr = self
            .stderr
            .lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        panic!(
            "{why}\n--- stdout seen ({} lines):\n{}\n--- stderr:\n{stderr}",
            self.seen.len(),
            self.seen.join("\n")
        );
    }
}

impl Drop for Gangway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Waits with deadlines
// ---------------------------------------------------------------------------------------

/// Polls `child` until it exits; None on timeout.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds; false on timeout.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Whether a process with `pid` exists; a zombie counts as existing (it was not reaped).
pub fn pid_exists(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The state letter of `pid` (R, S, Z, ...), if it exists.
pub fn pid_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows ") ".
    let after = &stat[stat.rfind(')')? + 2..];
    after.chars().next()
}

/// Asserts that `pid` disappears (is reaped, not left a zombie) within `timeout`.
pub fn assert_pid_gone(pid: i32, timeout: Duration) {
    if !wait_for(timeout, || !pid_exists(pid)) {
        panic!(
            "process {pid} still exists after {timeout:?} (state {:?}; Z means a zombie nobody reaped)",
            pid_state(pid)
        );
    }
}

/// The pids of `pid`'s child processes, zombies included (found by scanning /proc for
/// processes whose parent is `pid`, which needs no kernel option).
pub fn child_pids(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may vanish between the listing and the read: then it is no child.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}

/// How many lines the file at `path` holds (0 if it does not exist).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Where gangway keeps its catalog for a test started with `dir` (gangway_command sets
/// `XDG_CACHE_HOME` to `DIR/cache`).
pub fn catalog_file(dir: &TempDir) -> PathBuf {
    dir.join("cache").join("gangway").join("catalog.json")
}

/// The catalog file of `dir`, parsed; fails the test if it is missing or not JSON.
pub fn read_catalog(dir: &TempDir) -> Value {
    let path = catalog_file(dir);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the catalog {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the catalog {} is not JSON ({e}):\n{text}", path.display()))
}

/// The lines of `path` parsed as JSON (unparsable lines are skipped); empty if missing.
pub fn read_json_lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until the JSON-lines file `path` holds a line matching `pred`, and returns it.
pub fn wait_record(path: &Path, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    let ok = wait_for(timeout, || {
        found = read_json_lines(path).into_iter().find(|v| pred(v));
        found.is_some()
    });
    if !ok {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        panic!(
            "no matching line in {} within {timeout:?}; it holds:\n{text}",
            path.display()
        );
    }
    found.unwrap()
}

// ---------------------------------------------------------------------------------------
// Result helpers
// ---------------------------------------------------------------------------------------

/// The first text content of a tool result message (`{"result": {"content": [...]}}`).
pub fn text_of(resp: &Value) -> String {
    resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {resp}"))
        .to_string()
}

/// Asserts `resp` is a successful, non-error tool result and returns its text.
pub fn ok_text(resp: &Value) -> String {
    assert!(
        resp.get("error").is_none() && resp["result"]["isError"] != json!(true),
        "expected a successful tool result, got {resp}"
    );
    text_of(resp)
}

/// Asserts `resp` is an `isError` tool result and returns its text.
pub fn tool_error_text(resp: &Value) -> String {
    assert_eq!(
        resp["result"]["isError"],
        json!(true),
        "expected an isError tool result, got {resp}"
    );
    text_of(resp)
}

/// Asserts `resp` is a JSON-RPC error with `code` and returns its message.
pub fn error_message(resp: &Value, code: i64) -> String {
    assert_eq!(
        resp["error"]["code"],
        json!(code),
        "expected a JSON-RPC error {code}, got {resp}"
    );
    resp["error"]["message"].as_str().unwrap_or("").to_string()
}

/// The pid the mock reports through its `pid` tool, called as `tool` (e.g. `alpha__pid`).
pub fn backend_pid(gw: &mut Gangway, tool: &str) -> i32 {
    ok_text(&gw.call_tool(tool, json!({})))
        .parse()
        .expect("pid tool returns a number")
}

/// The same through `use_tool`.
pub fn backend_pid_via_use_tool(gw: &mut Gangway, backend: &str) -> i32 {
    ok_text(&gw.use_tool(backend, "pid", json!({})))
        .parse()
        .expect("pid tool returns a number")
}

/// The names of the tools in a `tools/list` response.
pub fn tool_names(resp: &Value) -> Vec<String> {
    resp["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array in {resp}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The mock's own tools, in its order.
pub const MOCK_TOOLS: [&str; 10] = [
    "echo", "slow", "crash", "garbage", "env", "pid", "stderr", "fail", "progress", "ask",
];

/// A small deterministic pseudo-random generator (xorshift), for reproducible tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The mock's own tools in the order gangway lists a backend's tools: sorted by name.
pub fn mock_tools_sorted() -> Vec<&'static str> {
    let mut tools = MOCK_TOOLS.to_vec();
    tools.sort_unstable();
    tools
}

/// Whether `name` is a tool name clients accept: `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 request to `/mcp` at `addr` on a fresh connection (`Connection: close`; a body
/// is sent as JSON that accepts JSON and event streams); returns the status, the head and the
/// body (a chunked body decoded).
pub fn http_request(
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    http_request_to(addr, method, "/mcp", headers, body)
}

/// The same as [`http_request`] to any `path` (e.g. `/metrics`).
pub fn http_request_to(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to gangway serve");
    s.set_read_timeout(Some(T)).expect("read timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        addr
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
        );
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send the request");
    let mut r = BufReader::new(s);
    let head = read_head(&mut r);
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = Vec::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("a chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).expect("a chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).expect("the body");
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Reads an HTTP response head (up to its empty line) from `r`.
pub fn read_head(r: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).expect("read the head") == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

/// The value of header `name` (any case) in an HTTP head, trimmed.
pub fn header_in<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// For a fake server: one request with a `Content-Length` body (or none) from `r`, as its
/// head and its body read as JSON (`Null` when it is not); `None` at the connection's end.
pub fn read_json_request(r: &mut impl BufRead) -> Option<(String, Value)> {
    let head = read_head(r);
    if head.is_empty() {
        return None;
    }
    let len = header_in(&head, "Content-Length").map_or(Some(0), |v| v.parse().ok())?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, serde_json::from_slice(&body).unwrap_or_default()))
}

/// For a fake server: a 202 with no body (the answer to a notification).
pub const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

/// For a fake server: writes a 200 JSON answer to request `id` with `result`, in session
/// `s1`; false when the connection is gone.
pub fn write_json_result(w: &mut impl Write, id: &Value, result: Value) -> bool {
    let out = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nContent-Length: {}\r\n\r\n{out}",
        out.len()
    );
    w.write_all(resp.as_bytes()).is_ok()
}

/// The `Mcp-Session-Id` a response head carries.
pub fn session_id_in(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Mcp-Session-Id: "))
        .unwrap_or_else(|| panic!("no session id in {head}"))
        .trim()
        .to_string()
}

/// A running `gangway serve` on a free loopback port.
pub struct Served {
    pub gw: Gangway,
    /// `HOST:PORT`.
    pub addr: String,
}

impl Served {
    pub fn start(dir: &TempDir, config: &Value, extra: &[&str]) -> Served {
        let mut cmd = gangway_command(dir, config);
        cmd.args(extra);
        Served::spawn(cmd)
    }

    /// Runs `cmd` (a `gangway_command`) as `serve` on a free loopback port, once it listens.
    pub fn spawn(mut cmd: Command) -> Served {
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let gw = Gangway::spawn(cmd);
        let line = gw.wait_stderr("/mcp", T);
        let at = line.find("http://").expect("the log names the URL") + "http://".len();
        let addr = line[at..].split("/mcp").next().unwrap_or("").to_string();
        Served { gw, addr }
    }

    /// One request to `/mcp` on a fresh connection (see [`http_request`]).
    pub fn request(
        &self,
        method: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        http_request(&self.addr, method, headers, body)
    }

    /// One request to `path` on a fresh connection (see [`http_request_to`]).
    pub fn request_to(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        http_request_to(&self.addr, method, path, headers, body)
    }

    /// Opens a session; returns its id.
    pub fn session(&self) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}});
        let (status, head, _) = self.request("POST", &[], &init.to_string());
        assert_eq!(status, 200, "{head}");
        let sid = session_id_in(&head);
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(
            self.request("POST", &[("Mcp-Session-Id", &sid)], note).0,
            202
        );
        sid
    }

    /// Calls `tool` in session `sid`; returns the text of its result.
    pub fn call(&self, sid: &str, tool: &str) -> String {
        self.call_with(sid, tool, json!({}))
    }

    /// Calls `tool` with `args` in session `sid`; returns the text of its result.
    pub fn call_with(&self, sid: &str, tool: &str, args: Value) -> String {
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}});
        let (status, _, body) = self.request("POST", &[("Mcp-Session-Id", sid)], &call.to_string());
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
        ok_text(&answer)
    }

    /// Opens a session whose client declares `capabilities`, sending `headers` (e.g. a
    /// bearer token) with both handshake requests; returns its id.
    pub fn session_declaring(&self, headers: &[(&str, &str)], capabilities: Value) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": capabilities,
            "clientInfo": {"name": "raw", "version": "1"}}});
        let (status, head, body) = self.request("POST", headers, &init.to_string());
        assert_eq!(status, 200, "{head}{body}");
        let sid = session_id_in(&head);
        let mut with_sid = headers.to_vec();
        with_sid.push(("Mcp-Session-Id", &sid));
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(self.request("POST", &with_sid, note).0, 202);
        sid
    }

    /// Sends `body` as a POST in session `sid` and returns its response, open, to be read
    /// message by message as it arrives (see [`HttpStream`]).
    pub fn post_stream(&self, sid: &str, body: &Value) -> HttpStream {
        HttpStream::post(&self.addr, &[("Mcp-Session-Id", sid)], &body.to_string())
    }
}

/// A request sent and its response read as it arrives: the head when first asked for (so
/// the request can be in flight meanwhile: an answer sent as JSON has no head until it is
/// complete), then its JSON-RPC messages one by one, whether the body is one
/// `application/json` message or an event stream (chunked or not). Every read waits at
/// most [`T`].
pub struct HttpStream {
    r: BufReader<std::net::TcpStream>,
    /// None until read.
    head: Option<String>,
    chunked: bool,
    /// Body bytes read but not yet handed out as events.
    pending: String,
    /// Whether the body has been read to its end.
    ended: bool,
    /// Every message handed out so far, for failure messages.
    pub seen: Vec<Value>,
}

impl HttpStream {
    /// POSTs `body` (JSON, accepting JSON and event streams) to `/mcp` at `addr` on a fresh
    /// connection with `headers`.
    pub fn post(addr: &str, headers: &[(&str, &str)], body: &str) -> HttpStream {
        let mut req = format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        HttpStream::open(addr, &req)
    }

    /// Sends `req` (a whole raw request) on a fresh connection.
    pub fn open(addr: &str, req: &str) -> HttpStream {
        let mut s = std::net::TcpStream::connect(addr).expect("connect to gangway serve");
        s.set_read_timeout(Some(T)).expect("read timeout");
        s.write_all(req.as_bytes()).expect("send the request");
        HttpStream {
            r: BufReader::new(s),
            head: None,
            chunked: false,
            pending: String::new(),
            ended: false,
            seen: Vec::new(),
        }
    }

    /// The response's head, read (waiting for it) on the first call.
    pub fn head(&mut self) -> String {
        if self.head.is_none() {
            let head = read_head(&mut self.r);
            self.chunked = head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            self.head = Some(head);
        }
        self.head.clone().unwrap_or_default()
    }

    pub fn status(&mut self) -> u16 {
        self.head()
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn is_event_stream(&mut self) -> bool {
        self.head()
            .to_ascii_lowercase()
            .contains("text/event-stream")
    }

    fn content_length(&mut self) -> Option<usize> {
        header_in(&self.head(), "Content-Length").and_then(|v| v.parse().ok())
    }

    /// Reads more of the body into `pending`; false at its end.
    fn fill(&mut self) -> bool {
        self.head();
        if self.ended {
            return false;
        }
        if self.chunked {
            let mut size = String::new();
            self.r.read_line(&mut size).expect("a chunk size");
            let n = usize::from_str_radix(size.trim(), 16)
                .unwrap_or_else(|e| panic!("bad chunk size {size:?}: {e}"));
            let mut data = vec![0; n + 2];
            self.r.read_exact(&mut data).expect("a chunk");
            data.truncate(n);
            self.pending.push_str(&String::from_utf8_lossy(&data));
            self.ended = n == 0;
            n > 0
        } else if let Some(len) = self.content_length() {
            // A kept-alive connection stays open after the body: read just its length.
            let mut body = vec![0; len];
            self.r.read_exact(&mut body).expect("the body");
            self.pending.push_str(&String::from_utf8_lossy(&body));
            self.ended = true;
            len > 0
        } else {
            let mut buf = [0; 4096];
            let n = self.r.read(&mut buf).expect("the body");
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            self.ended = n == 0;
            n > 0
        }
    }

    /// The next JSON-RPC message of the response; None at its end. Events without data
    /// (keep-alive comments, `retry:`) are skipped.
    pub fn next_message(&mut self) -> Option<Value> {
        if !self.is_event_stream() {
            while self.fill() {}
            let body = std::mem::take(&mut self.pending);
            if body.trim().is_empty() {
                return None;
            }
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("a JSON body ({e}): {}{body}", self.head()));
            self.seen.push(v.clone());
            return Some(v);
        }
        loop {
            let normalized = self.pending.replace("\r\n", "\n");
            if let Some(end) = normalized.find("\n\n") {
                let event = normalized[..end].to_string();
                self.pending = normalized[end + 2..].to_string();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                let v: Value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("an event's data is not JSON ({e}): {data}"));
                self.seen.push(v.clone());
                return Some(v);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads messages until one matches `pred` and returns it; fails the test with every
    /// message seen when the response ends first.
    pub fn message_until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        while let Some(v) = self.next_message() {
            if pred(&v) {
                return v;
            }
        }
        panic!(
            "the response ended without the message looked for; head:\n{}\nmessages: {:?}",
            self.head(),
            self.seen
        );
    }

    /// Reads messages until the answer to request `id` (a result or an error).
    pub fn answer(&mut self, id: &Value) -> Value {
        let id = id.clone();
        self.message_until(|v| v.get("method").is_none() && v.get("id") == Some(&id))
    }
}

/// A `gangway --config PATH` command for a config file the test wrote itself (any name and
/// shape, e.g. a client's `.mcp.json`), with the same clean environment as [`gangway_command`].
pub fn gangway_command_for_file(dir: &TempDir, path: &Path) -> Command {
    let mut cmd = Command::new(gangway_bin());
    cmd.arg("--config")
        .arg(path)
        .env_remove("RUST_LOG")
        .env_remove("GANGWAY_CONFIG")
        // Each test has a catalog of its own, never the user's.
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

// ---------------------------------------------------------------------------------------
// Programs the tests need from the machine (installed by `.ci/run`)
// ---------------------------------------------------------------------------------------

/// Whether `program --version` runs and succeeds (found in PATH and working).
pub fn program_runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a test that needs what `missing` lists may run: true when nothing is missing.
/// Otherwise the test is skipped with a note on stderr (false), except under CI (`CI` set),
/// where `.ci/run` installs everything and a missing piece is a breakage: then it panics.
pub fn nothing_missing(tests: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("{tests} need {what}; `.ci/run` installs them (run it, or see its output for why it did not)");
    }
    eprintln!("skipped: {tests} need {what}; run `.ci/run` to install them");
    false
}

/// Writes an executable shell script `name` into `dir` (a stand-in for a program the test
/// puts first in PATH with [`path_with`]) and returns its path.
pub fn fake_program(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("create the fake programs' dir");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}"))
        .unwrap_or_else(|e| panic!("write the fake {name}: {e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod the fake {name}: {e}"));
    path
}

/// This process's PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// What a program run by [`run_bounded`] did.
pub struct Ran {
    /// None when it ran past its deadline and was ended.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Its exit and both outputs, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status
                .map_or("no exit within its deadline; ended".to_string(), |s| s
                    .to_string()),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` with `input` on its stdin, reading both outputs on threads so no pipe can fill
/// and stall it. Past `deadline` it gets SIGTERM (a script can then clean up what it
/// started), and SIGKILL if it has not exited 5 s later.
pub fn run_bounded(mut cmd: Command, input: &[u8], deadline: Duration) -> Ran {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // A program that does not read its input must not stall this one: write on a thread.
    thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("piped stderr")));
    let mut status = wait_child(&mut child, deadline);
    if status.is_none() {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if wait_child(&mut child, Duration::from_secs(5)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status = None;
    }
    Ran {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

// ---------------------------------------------------------------------------------------
// A real server's scenario, run by an HTTP client through `gangway serve`
// ---------------------------------------------------------------------------------------

/// What [`http_client_uses_a_peer`] asks of one real server behind `gangway serve`; tool
/// names are as gangway exposes them (with the backend's prefix).
pub struct PeerScenario<'a> {
    /// Tools that must be listed.
    pub tools: &'a [&'a str],
    /// A tool that answers with its input: name, arguments, the text of its result.
    pub echo: (&'a str, Value, &'a str),
    /// A tool that reports progress: name, arguments, how many notifications at least.
    pub progress: (&'a str, Value, usize),
    /// A tool that asks the client's model: name, arguments, text the question carries.
    pub sampling: (&'a str, Value, &'a str),
    /// A resource: its URI and text its contents carry.
    pub resource: (&'a str, &'a str),
}

/// An HTTP client's session with `served` (whose client declares sampling): the tools
/// listed, an echo, progress with the client's token on the POST's event stream, a
/// sampling request answered by a POST of the client's whose answer ends up in the tool's
/// result, a resource read, and the session's end.
pub fn http_client_uses_a_peer(served: &Served, s: &PeerScenario) {
    let sid = served.session_declaring(&[], json!({"sampling": {}}));
    let in_session = [("Mcp-Session-Id", sid.as_str())];
    let post = |body: Value| -> Value {
        let mut answer = HttpStream::post(&served.addr, &in_session, &body.to_string());
        assert_eq!(answer.status(), 200, "{}", answer.head());
        answer.answer(&body["id"])
    };

    let list = post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let names = tool_names(&list);
    for tool in s.tools {
        assert!(
            names.iter().any(|n| n == tool),
            "{tool} missing from {names:?}"
        );
    }

    let (tool, args, text) = &s.echo;
    let echo = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}}));
    assert_eq!(ok_text(&echo), *text);

    // Progress reaches the HTTP client on its POST's event stream, with its own token.
    let (tool, args, at_least) = &s.progress;
    let long = json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {"progressToken": "tok-http"}}});
    let mut stream = served.post_stream(&sid, &long);
    assert_eq!(stream.status(), 200, "{}", stream.head());
    assert!(
        stream.is_event_stream(),
        "progress comes first: {}",
        stream.head()
    );
    let progress = stream.message_until(|m| m["method"] == "notifications/progress");
    assert_eq!(
        progress["params"]["progressToken"], "tok-http",
        "{progress}"
    );
    let done = stream.answer(&json!("long"));
    assert!(
        done["result"].is_object() && done["result"]["isError"] != json!(true),
        "{done}"
    );
    let progress: Vec<&Value> = stream
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(
        progress.len() >= *at_least
            && progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "tok-http"),
        "{at_least} steps' progress, each with the client's token: {:?}",
        stream.seen
    );

    // The server's sampling request reaches the HTTP client on the tool call's stream; the
    // client answers with a POST of its own, and the answer ends up in the tool's result.
    let (tool, args, question) = &s.sampling;
    let sample = json!({"jsonrpc": "2.0", "id": "sample", "method": "tools/call", "params": {
        "name": tool, "arguments": args}});
    let mut stream = served.post_stream(&sid, &sample);
    assert!(
        stream.is_event_stream(),
        "the question comes first: {}",
        stream.head()
    );
    let ask = stream.message_until(|m| m["method"] == "sampling/createMessage");
    assert!(
        ask.to_string().contains(question),
        "the question carries the prompt: {ask}"
    );
    let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "model": "test",
        "content": {"type": "text", "text": "an answer over http"}}});
    let (status, head, _) = served.request("POST", &in_session, &reply.to_string());
    assert_eq!(status, 202, "the client's answer is accepted: {head}");
    let sampled = stream.answer(&json!("sample"));
    assert!(
        sampled["result"].is_object() && sampled.to_string().contains("an answer over http"),
        "{sampled}"
    );

    let (uri, text) = s.resource;
    let read = post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
        "params": {"uri": uri}}),
    );
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(text)),
        "{read}"
    );

    let (status, _, _) = served.request("DELETE", &in_session, "");
    assert_eq!(status, 200);
}
