//! End-to-end benchmark: one load client against the project's mock MCP server
//! (`examples/mock_server.rs`), directly and through gangway in meta mode (`use_tool`) and in
//! tools mode (`mock__echo`), all in one run so that the ratios to direct compare numbers
//! taken minutes apart on the same machine. A fourth route, a bare byte relay (this binary
//! with `--relay`), measures what any extra process on the path costs: the floor under
//! gangway's overhead.
//!
//! ```sh
//! cargo bench --bench e2e                    # about 2 minutes, table in target/e2e-results.md
//! cargo bench --bench e2e -- --quick         # about 40 s, noisier numbers
//! cargo bench --bench e2e -- --out FILE      # write the table to FILE instead
//! cargo bench --bench e2e -- --no-musl       # do not build the static binary to size it
//! cargo bench --bench e2e -- --http-only     # only the HTTP section (gangway serve, peers)
//! cargo bench --bench e2e -- --payload-only  # only the payload section (16 B to 1 MiB, about
//!                                            # a minute)
//! cargo bench --bench e2e -- --gangway PATH  # measure another gangway binary (A/B a change)
//! cargo bench --bench e2e -- --profile meta  # 15 s of pinned 1-in-flight calls to attach a
//!                                            # profiler to (meta, tools, direct or relay;
//!                                            # E2E_PROFILE_PAYLOAD=BYTES for bigger calls)
//! ```
//!
//! Before measuring it builds what it drives: the mock (`cargo build --release --example
//! mock_server`; `cargo bench` builds the gangway binary itself) and the static binary whose
//! size it reports (`cargo build --release --target x86_64-unknown-linux-musl`; skipped
//! with `--no-musl` or when that target is not installed).
//!
//! The client lives in this process and speaks newline-delimited JSON-RPC over pipes. At 1
//! request in flight it is one thread (write, then block on the answer), the lowest-latency
//! client there is. With a window it is a writer thread and a reader thread that hand the
//! window back and forth with park/unpark. Every answer is checked to be the mock's own
//! success answer (`{"result":` first, as the mock writes it) for the id that was sent.
//!
//! Latency at 1 in flight is measured three ways: unpinned (wherever the scheduler puts the
//! processes, which on a small VM flips between runs), everything pinned to CPU 0 (no
//! wake-up crosses CPUs), and split (this client on CPU 0, every server process on CPU 1).
//! Children inherit the CPU mask of the thread that spawns them, so pinning this thread
//! before spawning pins the servers and the mocks they start.
//!
//! gangway runs with its tool catalog on (the default) but kept in the scratch directory
//! (`XDG_CACHE_HOME`), so a run never touches the user's catalog. The catalog only changes
//! what happens when a backend starts (its lists are fetched once more, during warm-up); the
//! measured calls are the same with it off.
//!
//! The HTTP section measures `gangway serve` (MCP's Streamable HTTP on `/mcp`, tools mode)
//! against stdio gangway in tools mode, re-measured there as the reference, and against two
//! peers that put a stdio server on HTTP, all fronting the same mock: supergateway (npm) and
//! mcp-proxy (PyPI), which `.ci/run` installs under `.peers` (a peer that is missing, or
//! node or python3, is skipped with a note; one that fails is reported in its row, and the
//! run goes on). Each server gets a free loopback port; the client opens a session
//! (`initialize`, keeping `Mcp-Session-Id`; `notifications/initialized`; `tools/list`) and
//! makes 16 B echo calls, 1 in flight on one keep-alive connection, and 32 in flight as 32
//! keep-alive connections in that session, each doing serial calls on a thread of its own.
//! The client is a small HTTP/1.1 one written here over `TcpStream` (`TCP_NODELAY`): it
//! reads answers sized by `Content-Length`, chunked, or ended by the server closing the
//! connection, as `application/json` or `text/event-stream`, and checks each is the tool's
//! success for the id that was sent. stdio gangway and `gangway serve` are measured once
//! more at 1 in flight with everything pinned to CPU 0 (unpinned, the two need not land in
//! the same scheduling regime); the p50 target must hold both ways. Then it opens 100 more
//! sessions on a fresh `gangway serve`, each on a connection it keeps open, and reads
//! gangway's VmRSS and VmHWM. `--http-only` runs just this section.
//!
//! The payload section weighs gangway against the bare relay as payloads grow: echo calls of
//! 16 B, 64 KiB and 1 MiB (the text crosses every hop both ways), 1 in flight with everything
//! pinned to CPU 0, directly, through the relay, through stdio gangway (tools mode) and
//! through `gangway serve` (tools mode, over the HTTP client above); then 32 in flight,
//! unpinned, on fresh servers (direct, relay, stdio gangway) at 16 B and 64 KiB, after which
//! it reads gangway's VmHWM. It judges added p50 (a route's p50 minus direct's) and calls/s
//! of gangway against the relay's, and of `gangway serve` against stdio gangway, in a
//! targets table of its own. `--payload-only` runs just this section.
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing: a 1.5-minute run is
//! not a test.

use memchr::memmem;
use serde_json::json;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The backend's name in gangway's config, so tools mode calls `mock__echo`.
const BACKEND: &str = "mock";
const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;
/// The small payload: 16 bytes of text to echo.
const SMALL: usize = 16;
/// The large payload: 64 KiB of text, the size of a pipe's buffer.
const LARGE: usize = 64 * KIB;
/// The largest payload, in the payload section only: 1 MiB of text, sixteen pipe buffers.
const HUGE: usize = 1024 * KIB;
/// The last request of a windowed run: its answer tells the reader that nothing else is
/// coming (a reader blocked in `read` cannot be told otherwise).
const SENTINEL: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"end\",\"method\":\"ping\"}\n";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"gangway-e2e-bench","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    quick: bool,
    out: Option<PathBuf>,
    musl: bool,
}

impl Settings {
    /// Measured rounds per configuration; the routes take turns within a round so that
    /// drift on a shared machine hits all of them alike.
    fn rounds(&self) -> usize {
        if self.quick {
            2
        } else {
            5
        }
    }

    /// Length of one measured run.
    fn run_time(&self) -> Duration {
        Duration::from_millis(if self.quick { 250 } else { 400 })
    }

    fn idle_time(&self) -> Duration {
        Duration::from_secs(if self.quick { 3 } else { 10 })
    }

    fn startup_samples(&self) -> usize {
        if self.quick {
            5
        } else {
            15
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routes, requests, servers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Direct,
    Meta,
    Tools,
    /// The least any stdio gateway can do: this binary as a byte relay in front of the
    /// mock (`--relay`), with no framing and no parsing. Its added latency is the cost of
    /// the extra process on the path, the floor under gangway's.
    Relay,
}

/// Every route, in the order they are spawned; index 0 is the direct baseline.
const ROUTES: [Route; 4] = [Route::Direct, Route::Meta, Route::Tools, Route::Relay];

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Meta => "gangway meta",
            Route::Tools => "gangway tools",
            Route::Relay => "bare relay (floor)",
        }
    }

    fn expose(self) -> &'static str {
        match self {
            Route::Tools => "tools",
            _ => "meta",
        }
    }
}

/// A `tools/call` line split around its id, so a request costs the client two copies and
/// the digits of the id.
struct Template {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Template {
    fn call(route: Route, tool: &str, args: &str) -> Template {
        let params = match route {
            Route::Direct | Route::Relay => format!(r#"{{"name":"{tool}","arguments":{args}}}"#),
            Route::Tools => format!(r#"{{"name":"{BACKEND}__{tool}","arguments":{args}}}"#),
            Route::Meta => format!(
                r#"{{"name":"use_tool","arguments":{{"backend_server":"{BACKEND}","server_tool":"{tool}","tool_arguments":{args}}}}}"#
            ),
        };
        Template {
            head: br#"{"jsonrpc":"2.0","id":"#.to_vec(),
            tail: format!(",\"method\":\"tools/call\",\"params\":{params}}}\n").into_bytes(),
        }
    }

    fn echo(route: Route, payload: usize) -> Template {
        let text = "x".repeat(payload);
        Template::call(route, "echo", &format!(r#"{{"text":"{text}"}}"#))
    }

    fn write(&self, id: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = id;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(&digits[at..]);
        out.extend_from_slice(&self.tail);
    }
}

/// What the client makes of one line from the server.
enum Reply {
    /// The mock's success answer to the call with this id.
    Call(u64),
    /// The answer to the sentinel ping.
    Sentinel,
    /// A notification, or anything else without an id; not counted.
    Other,
}

fn classify(line: &[u8]) -> Reply {
    // The mock writes `id` last, and gangway splices ids in place, so the last `"id":`
    // of a line is the message's own (payloads are `x`s and cannot contain one).
    let Some(at) = memmem::rfind(line, b"\"id\":") else {
        return Reply::Other;
    };
    let rest = &line[at + 5..];
    if rest.starts_with(b"\"end\"") {
        return Reply::Sentinel;
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse().ok());
    match id {
        Some(id)
            if line.starts_with(b"{\"result\":")
                && memmem::find(line, b"\"isError\"").is_none() =>
        {
            Reply::Call(id)
        }
        _ => panic!("unexpected answer from the server: {}", excerpt(line)),
    }
}

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(300)]);
    if line.len() > 300 {
        format!("{text}… ({} bytes)", line.len())
    } else {
        text.into_owned()
    }
}

/// Paths and scratch space shared by every measurement.
struct Env {
    gangway: PathBuf,
    mock: PathBuf,
    dir: PathBuf,
    spawned: u64,
}

impl Env {
    /// A config with `n` mock backends: `mock`, then `m01`, `m02`, ...
    fn config(&mut self, expose: &str, n: usize) -> PathBuf {
        let mut backends = serde_json::Map::new();
        for i in 0..n {
            let name = if i == 0 {
                BACKEND.to_string()
            } else {
                format!("m{i:02}")
            };
            backends.insert(
                name.clone(),
                json!({"command": self.mock, "args": ["--name", name]}),
            );
        }
        let path = self.dir.join(format!("{expose}-{n}.json"));
        let text = json!({"expose": expose, "backends": backends}).to_string();
        std::fs::write(&path, text).expect("write a config");
        path
    }

    /// gangway with `config`, its tool catalog kept in the scratch directory: it runs with
    /// the catalog on, as users do, but never reads or writes the user's own
    /// (`$XDG_CACHE_HOME/gangway/catalog.json`, else under `$HOME/.cache`).
    fn gangway_command(&self, config: &std::path::Path) -> Command {
        let mut c = Command::new(&self.gangway);
        c.arg("--config")
            .arg(config)
            .env("XDG_CACHE_HOME", self.dir.join("cache"));
        c
    }

    /// gangway's stderr (with its backends' stderr) goes to a file, for when a run fails.
    fn log_file(&mut self) -> (File, PathBuf) {
        self.spawned += 1;
        let path = self.dir.join(format!("stderr-{}.log", self.spawned));
        (File::create(&path).expect("create a log file"), path)
    }

    fn command(&mut self, route: Route, backends: usize) -> (Command, PathBuf) {
        let (log, log_path) = self.log_file();
        let mut cmd = match route {
            Route::Direct => {
                let mut c = Command::new(&self.mock);
                c.args(["--name", BACKEND]);
                c
            }
            Route::Relay => {
                let mut c = Command::new(std::env::current_exe().expect("this binary"));
                c.arg("--relay").arg(&self.mock);
                c
            }
            Route::Meta | Route::Tools => {
                let config = self.config(route.expose(), backends);
                self.gangway_command(&config)
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        (cmd, log_path)
    }
}

/// A running server (the mock, or gangway or the relay in front of it) and the client's
/// end of its pipes.
struct Server {
    route: Route,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: Vec<u8>,
    log: PathBuf,
}

impl Server {
    /// Spawns, initializes, and for gangway starts the backend, so that what follows
    /// measures the steady state.
    fn start(env: &mut Env, route: Route, backends: usize) -> Server {
        let (mut cmd, log) = env.command(route, backends);
        let mut child = cmd.spawn().expect("spawn the server");
        let stdin = child.stdin.take();
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
        let mut s = Server {
            route,
            child,
            stdin,
            stdout,
            next_id: 1,
            line: Vec::with_capacity(128 * KIB),
            log,
        };
        s.send(INITIALIZE.as_bytes());
        s.read_answer();
        s.send(INITIALIZED.as_bytes());
        if route == Route::Tools {
            // A real client lists the tools first; this also starts the backend.
            s.send(br#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
            s.read_answer();
        }
        s
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The mock: the server itself when direct, else the first child of gangway or the relay.
    fn mock_pid(&self) -> Option<i32> {
        if self.route == Route::Direct {
            return Some(self.pid());
        }
        first_child(self.pid())
    }

    fn send(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(line)
            .and_then(|()| {
                if line.ends_with(b"\n") {
                    Ok(())
                } else {
                    stdin.write_all(b"\n")
                }
            })
            .unwrap_or_else(|e| {
                panic!(
                    "write to {}: {e} (log: {})",
                    self.route.label(),
                    self.log.display()
                )
            });
    }

    /// The next line that carries an id (notifications are skipped).
    fn read_answer(&mut self) -> &[u8] {
        loop {
            self.line.clear();
            let n = self
                .stdout
                .read_until(b'\n', &mut self.line)
                .unwrap_or_else(|e| panic!("read from {}: {e}", self.route.label()));
            assert!(
                n > 0,
                "{} closed its stdout (log: {})",
                self.route.label(),
                self.log.display()
            );
            if memmem::find(&self.line, b"\"id\"").is_some() {
                return &self.line;
            }
        }
    }

    /// Some calls nobody measures: the first use of a path pays for page faults, buffer
    /// growth and (meta mode) the backend's start.
    fn warm_up(&mut self, t: &Template, depth: usize, time: Duration) {
        let budget = Budget::time(time);
        if depth == 1 {
            run_serial(self, t, budget);
        } else {
            run_window(self, t, depth, budget);
        }
    }

    /// Closes stdin (gangway then stops its backends and exits) and waits for the exit.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        eprintln!(
            "{} did not exit within 10 s of stdin EOF; killing it",
            self.route.label()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The load client
// ---------------------------------------------------------------------------------------

/// When a run stops: after `calls` calls or `time`, whichever comes first.
#[derive(Clone, Copy)]
struct Budget {
    calls: u64,
    time: Duration,
}

impl Budget {
    fn time(time: Duration) -> Budget {
        Budget {
            calls: u64::MAX,
            time,
        }
    }

    fn calls(calls: u64) -> Budget {
        Budget {
            calls,
            time: Duration::from_secs(600),
        }
    }

    fn done(&self, calls: u64, start: Instant) -> bool {
        calls >= self.calls || start.elapsed() >= self.time
    }
}

/// One measured run.
struct Run {
    calls: u64,
    /// First request written to last answer read.
    elapsed: Duration,
    /// Per call, request written to answer read, in nanoseconds.
    lat: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

/// One request at a time, on this thread: write it, block until its answer is read.
fn run_serial(s: &mut Server, t: &Template, budget: Budget) -> Run {
    let mut buf = Vec::with_capacity(t.head.len() + t.tail.len() + 24);
    let mut lat = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    let mut calls = 0;
    while !budget.done(calls, start) {
        let id = s.next_id;
        s.next_id += 1;
        t.write(id, &mut buf);
        let t0 = Instant::now();
        s.send(&buf);
        let got = classify(s.read_answer());
        let t1 = Instant::now();
        match got {
            Reply::Call(got) if got == id => {}
            _ => panic!("expected the answer to {id}: {}", excerpt(&s.line)),
        }
        lat.push((t1 - t0).as_nanos() as u64);
        calls += 1;
    }
    Run {
        calls,
        elapsed: start.elapsed(),
        lat,
    }
}

/// Keeps `depth` requests in flight: this thread writes, a second one reads.
fn run_window(s: &mut Server, t: &Template, depth: usize, budget: Budget) -> Run {
    let ring = (2 * depth).next_power_of_two().max(64);
    let mask = ring as u64 - 1;
    let sent_at: Vec<AtomicU64> = (0..ring).map(|_| AtomicU64::new(0)).collect();
    let received = AtomicU64::new(0);
    let writer_parked = AtomicBool::new(false);
    let last_call = AtomicU64::new(u64::MAX);
    let base = Instant::now();
    let ns = || base.elapsed().as_nanos() as u64;
    let first_id = s.next_id;
    let writer = thread::current();
    let stdin = s.stdin.as_mut().expect("stdin open");
    let stdout = &mut s.stdout;
    let label = s.route.label();

    let (calls, lat, end_ns) = thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut line = Vec::with_capacity(128 * KIB);
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut got, mut sentinel, mut end_ns) = (0u64, false, 0u64);
            loop {
                line.clear();
                let n = stdout
                    .read_until(b'\n', &mut line)
                    .unwrap_or_else(|e| panic!("read from {label}: {e}"));
                assert!(n > 0, "{label} closed its stdout mid-run");
                match classify(&line) {
                    Reply::Call(id) => {
                        let now = ns();
                        let sent = sent_at[(id & mask) as usize].load(Ordering::Acquire);
                        lat.push(now.saturating_sub(sent));
                        end_ns = now;
                        got += 1;
                        received.store(got, Ordering::SeqCst);
                        // Dekker-style: the writer sets its flag, then re-reads `received`.
                        if writer_parked.load(Ordering::SeqCst) {
                            writer.unpark();
                        }
                    }
                    Reply::Sentinel => sentinel = true,
                    Reply::Other => continue,
                }
                if sentinel && got == last_call.load(Ordering::SeqCst) {
                    return (lat, end_ns);
                }
            }
        });

        let mut buf = Vec::with_capacity(t.head.len() + t.tail.len() + 24);
        let start = Instant::now();
        let mut sent = 0u64;
        while !budget.done(sent, start) {
            while sent - received.load(Ordering::SeqCst) >= depth as u64 {
                writer_parked.store(true, Ordering::SeqCst);
                if sent - received.load(Ordering::SeqCst) >= depth as u64 {
                    thread::park_timeout(Duration::from_millis(100));
                }
                writer_parked.store(false, Ordering::SeqCst);
            }
            let id = first_id + sent;
            t.write(id, &mut buf);
            sent_at[(id & mask) as usize].store(ns(), Ordering::Release);
            stdin
                .write_all(&buf)
                .unwrap_or_else(|e| panic!("write to {label}: {e}"));
            sent += 1;
        }
        last_call.store(sent, Ordering::SeqCst);
        stdin
            .write_all(SENTINEL)
            .unwrap_or_else(|e| panic!("write to {label}: {e}"));
        let (lat, end_ns) = reader.join().expect("reader thread");
        (sent, lat, end_ns)
    });
    s.next_id += calls;
    Run {
        calls,
        elapsed: Duration::from_nanos(end_ns),
        lat,
    }
}

// ---------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------

/// The first child process of `pid` (the mock, for gangway, `gangway serve` and the relay).
fn first_child(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// utime + stime of a whole process, in clock ticks (1/100 s here).
fn cpu_ticks(pid: i32) -> u64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may contain spaces; the fields after it are fixed.
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat; index 0 here is field 3 (state).
    field(11) + field(12)
}

/// A `kB` or counter field of /proc/PID/status.
fn status_field(pid: i32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn hwm_kib(pid: i32) -> u64 {
    status_field(pid, "VmHWM").unwrap_or(0)
}

fn rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS").unwrap_or(0)
}

fn clk_tck() -> u64 {
    let n = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

// ---------------------------------------------------------------------------------------
// CPU affinity (for the pinned runs; children inherit the spawning thread's mask)
// ---------------------------------------------------------------------------------------

fn get_affinity() -> Option<nix::libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: nix::libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<nix::libc::cpu_set_t>();
        (nix::libc::sched_getaffinity(0, size, &mut set) == 0).then_some(set)
    }
}

fn set_affinity(set: &nix::libc::cpu_set_t) -> bool {
    // SAFETY: pid 0 is the calling thread; the set is a valid cpu_set_t.
    unsafe {
        let size = std::mem::size_of::<nix::libc::cpu_set_t>();
        nix::libc::sched_setaffinity(0, size, set) == 0
    }
}

fn only_cpu(cpu: usize) -> nix::libc::cpu_set_t {
    // SAFETY: zeroed is a valid empty cpu_set_t; CPU_SET stays within it for cpu < 1024.
    unsafe {
        let mut set: nix::libc::cpu_set_t = std::mem::zeroed();
        nix::libc::CPU_SET(cpu, &mut set);
        set
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        f64::NAN
    } else {
        values[values.len() / 2]
    }
}

fn us(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0}", ns / 1000.0)
    } else {
        format!("{:.1}", ns / 1000.0)
    }
}

fn size(bytes: usize) -> &'static str {
    match bytes {
        SMALL => "16 B",
        LARGE => "64 KiB",
        HUGE => "1 MiB",
        _ => "?",
    }
}

fn kib_to_mib(kib: u64) -> String {
    format!("{:.2}", kib as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// What a configuration measured for one route, over all rounds.
#[derive(Default)]
struct Cell {
    rates: Vec<f64>,
    lat: Vec<u64>,
    /// CPU ticks of the client (this process), gangway and the mock, and the wall time.
    ticks: [u64; 3],
    wall: f64,
}

impl Cell {
    fn rate(&self) -> f64 {
        median(&mut self.rates.clone())
    }

    fn p(&mut self, p: f64) -> f64 {
        self.lat.sort_unstable();
        percentile(&self.lat, p)
    }

    fn cpu_pct(&self, who: usize) -> f64 {
        self.ticks[who] as f64 / clk_tck() as f64 / self.wall * 100.0
    }
}

/// What the load client drives in a measured run: a stdio server (the mock, or gangway or
/// the relay in front of it), or a session on an HTTP server.
trait Leg {
    /// An echo call of `payload` bytes of text, with this route's name for the tool.
    fn template(&self, payload: usize) -> Template;
    /// One run; `None` when the route is not measured (it did not start, or failed).
    fn run(&mut self, t: &Template, depth: usize, budget: Budget) -> Option<Run>;
    /// The processes whose CPU a cell counts besides this one: the gateway (-1 when the
    /// route has none) and the mock (-1 when not found).
    fn pids(&self) -> [i32; 2];
}

impl Leg for Server {
    fn template(&self, payload: usize) -> Template {
        Template::echo(self.route, payload)
    }

    fn run(&mut self, t: &Template, depth: usize, budget: Budget) -> Option<Run> {
        Some(if depth == 1 {
            run_serial(self, t, budget)
        } else {
            run_window(self, t, depth, budget)
        })
    }

    fn pids(&self) -> [i32; 2] {
        let gateway = if self.route == Route::Direct {
            -1
        } else {
            self.pid()
        };
        [gateway, self.mock_pid().unwrap_or(-1)]
    }
}

/// Measures `payload` x `depth` on each leg, `settings.rounds()` runs of `run_time` each,
/// the legs taking turns within a round. Legs are indexed like the cells returned.
fn measure<L: Leg>(
    legs: &mut [L],
    payload: usize,
    depth: usize,
    settings: &Settings,
    run_time: Duration,
) -> Vec<Cell> {
    let templates: Vec<Template> = legs.iter().map(|l| l.template(payload)).collect();
    for (l, t) in legs.iter_mut().zip(&templates) {
        l.run(t, depth, Budget::time(Duration::from_millis(150)));
    }
    let mut cells: Vec<Cell> = legs.iter().map(|_| Cell::default()).collect();
    for round in 0..settings.rounds() {
        for k in 0..legs.len() {
            let i = (round + k) % legs.len();
            let l = &mut legs[i];
            let [gateway, mock] = l.pids();
            let pids = [0, gateway, mock];
            let before = pids.map(|p| if p < 0 { 0 } else { cpu_ticks(p) });
            let t0 = Instant::now();
            let Some(run) = l.run(&templates[i], depth, Budget::time(run_time)) else {
                continue;
            };
            let wall = t0.elapsed().as_secs_f64();
            let after = pids.map(|p| if p < 0 { 0 } else { cpu_ticks(p) });
            let cell = &mut cells[i];
            cell.rates.push(run.rate());
            cell.lat.extend_from_slice(&run.lat);
            for w in 0..3 {
                cell.ticks[w] += after[w].saturating_sub(before[w]);
            }
            cell.wall += wall;
        }
    }
    cells
}

// ---------------------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------------------

/// Everything the targets are judged on.
#[derive(Default)]
struct Findings {
    /// 16 B, 1 in flight, unpinned: p50 of gangway / direct (worst mode).
    p50_ratio: f64,
    /// 16 B, 1 in flight, pinned: p50 of gangway minus direct, in ns (worst mode).
    pinned_added_ns: f64,
    /// The same two for the bare relay: the floor of any extra process on the path.
    relay_ratio: f64,
    relay_added_ns: f64,
    /// 16 B, 1 in flight, unpinned: the direct p50 (which regime the run landed in).
    direct_p50_ns: f64,
    /// 16 B, 1 in flight, client and servers on different CPUs: gangway / direct.
    split_ratio: f64,
    /// 16 B, 32 in flight: throughput of gangway / direct (worst mode).
    tput_ratio: f64,
    /// 64 slow calls: wall of gangway / direct (worst mode), and the direct wall.
    slow_ratio: f64,
    slow_direct_ms: f64,
    /// Peak RSS at 1,000 in flight, 16 B (worst mode), KiB.
    rss_1000_kib: u64,
    /// VmHWM after N and after 10N 64 KiB calls, KiB.
    rss_n_kib: u64,
    rss_10n_kib: u64,
    /// VmRSS once the load has stopped, after N and after 10N calls, KiB: a leak of a few
    /// bytes per call shows here long before it moves the peak.
    rest_n_kib: u64,
    rest_10n_kib: u64,
    /// Median spawn to initialize, 1 and 50 backends, ns.
    startup_ns: [f64; 2],
    idle_ticks: u64,
    musl_bytes: Option<u64>,
    /// 16 B, 1 in flight: p50 of `gangway serve` minus stdio gangway's (tools mode), ns,
    /// and the two p50s.
    http_added_p50_ns: Option<f64>,
    http_p50_ns: [f64; 2],
    /// 16 B, 32 in flight: calls/s of `gangway serve`, and of the faster peer.
    serve_rate: Option<f64>,
    peer_rate: Option<(&'static str, f64)>,
    /// `gangway serve` with 100 sessions open: VmRSS and VmHWM, KiB.
    http_sessions_kib: Option<(u64, u64)>,
    /// The same as `http_added_p50_ns` and `http_p50_ns` with everything on CPU 0.
    http_pinned_added_ns: Option<f64>,
    http_pinned_p50_ns: [f64; 2],
}

/// The rows of one configuration: direct first, then the relay, then gangway's modes.
/// Servers are in `ROUTES` order.
fn row_order(n: usize) -> Vec<usize> {
    if n == ROUTES.len() {
        vec![0, 3, 1, 2]
    } else {
        (0..n).collect()
    }
}

fn is_gangway(route: Route) -> bool {
    matches!(route, Route::Meta | Route::Tools)
}

fn latency_matrix(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let mut servers: Vec<Server> = ROUTES.iter().map(|&r| Server::start(env, r, 1)).collect();
    let _ = writeln!(out, "### Echo calls, unpinned\n");
    let _ = writeln!(
        out,
        "| payload | in flight | route | calls/s | vs direct | p50 µs | p99 µs | p50 vs direct | CPU client / gateway / mock |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for (payload, depth) in [(SMALL, 1), (LARGE, 1), (SMALL, 32), (LARGE, 32)] {
        let mut cells = measure(&mut servers, payload, depth, settings, settings.run_time());
        let direct_rate = cells[0].rate();
        let direct_p50 = cells[0].p(0.5);
        for i in row_order(servers.len()) {
            let route = servers[i].route;
            let cell = &mut cells[i];
            let (rate, p50, p99) = (cell.rate(), cell.p(0.5), cell.p(0.99));
            let gw_cpu = if route == Route::Direct {
                "-".to_string()
            } else {
                format!("{:.0}%", cell.cpu_pct(1))
            };
            let _ = writeln!(
                out,
                "| {} | {depth} | {} | {:.0} | {:.2} | {} | {} | {:.2} | {:.0}% / {gw_cpu} / {:.0}% |",
                size(payload),
                route.label(),
                rate,
                rate / direct_rate,
                us(p50),
                us(p99),
                p50 / direct_p50,
                cell.cpu_pct(0),
                cell.cpu_pct(2),
            );
            if payload == SMALL && depth == 1 {
                f.direct_p50_ns = direct_p50;
                if route == Route::Relay {
                    f.relay_ratio = p50 / direct_p50;
                } else if is_gangway(route) {
                    f.p50_ratio = f.p50_ratio.max(p50 / direct_p50);
                }
            }
            if is_gangway(route) && payload == SMALL && depth == 32 {
                let r = rate / direct_rate;
                f.tput_ratio = if f.tput_ratio == 0.0 {
                    r
                } else {
                    f.tput_ratio.min(r)
                };
            }
        }
        eprintln!("  measured {} x {depth} in flight", size(payload));
    }
    let _ = writeln!(out);

    // Slow calls: each takes 20 ms in the mock (on a thread of its own there), so 64 of
    // them with 8 in flight take 8 x 20 ms = 160 ms unless something serializes them.
    let _ = writeln!(
        out,
        "### 64 calls of `slow {{ms: 20}}`, 8 in flight (ideal 160 ms)\n"
    );
    let _ = writeln!(out, "| route | wall ms (median of 3) | vs direct |");
    let _ = writeln!(out, "|---|---|---|");
    let mut walls = [0.0f64; 3];
    for (i, s) in servers.iter_mut().take(3).enumerate() {
        let t = Template::call(s.route, "slow", r#"{"ms":20}"#);
        let mut samples: Vec<f64> = (0..3)
            .map(|_| {
                run_window(s, &t, 8, Budget::calls(64))
                    .elapsed
                    .as_secs_f64()
                    * 1000.0
            })
            .collect();
        walls[i] = median(&mut samples);
    }
    for (i, wall) in walls.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {wall:.1} | {:.2} |",
            ROUTES[i].label(),
            wall / walls[0]
        );
    }
    f.slow_direct_ms = walls[0];
    f.slow_ratio = walls[1].max(walls[2]) / walls[0];
    let _ = writeln!(out);
    for s in servers {
        s.stop();
    }
    eprintln!("  measured slow calls");
}

/// Where the pinned runs put the processes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Everything on CPU 0: no wake-up crosses CPUs, so the added latency is the work of
    /// the extra process and its two extra pipe hops.
    OneCpu,
    /// This client on CPU 0, every server process on CPU 1: each client<->server hop
    /// crosses CPUs, as unpinned runs do when the scheduler spreads them.
    Split,
}

fn pinned_matrix(
    env: &mut Env,
    settings: &Settings,
    out: &mut String,
    f: &mut Findings,
    placement: Placement,
) {
    let (title, server_cpu, payloads): (&str, usize, &[usize]) = match placement {
        Placement::OneCpu => (
            "Echo calls, 1 in flight, everything pinned to CPU 0",
            0,
            &[SMALL, LARGE],
        ),
        Placement::Split => (
            "Echo calls, 1 in flight, client on CPU 0, server processes on CPU 1",
            1,
            &[SMALL],
        ),
    };
    let _ = writeln!(out, "### {title}\n");
    let Some(saved) = get_affinity() else {
        let _ = writeln!(out, "sched_getaffinity failed; not measured.\n");
        return;
    };
    if !set_affinity(&only_cpu(server_cpu)) {
        let _ = writeln!(out, "CPU {server_cpu} is not available; not measured.\n");
        return;
    }
    // Spawned while this thread runs on `server_cpu`, so the servers inherit it, and so do
    // the mocks they start.
    let mut servers: Vec<Server> = ROUTES.iter().map(|&r| Server::start(env, r, 1)).collect();
    set_affinity(&only_cpu(0));
    let _ = writeln!(
        out,
        "| payload | route | calls/s | p50 µs | p99 µs | added p50 µs | p50 vs direct |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for &payload in payloads {
        let mut cells = measure(&mut servers, payload, 1, settings, settings.run_time());
        let direct_p50 = cells[0].p(0.5);
        for i in row_order(servers.len()) {
            let route = servers[i].route;
            let cell = &mut cells[i];
            let (p50, p99) = (cell.p(0.5), cell.p(0.99));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {:.2} |",
                size(payload),
                route.label(),
                cell.rate(),
                us(p50),
                us(p99),
                if route == Route::Direct {
                    "-".to_string()
                } else {
                    us(p50 - direct_p50)
                },
                p50 / direct_p50
            );
            if payload == SMALL && placement == Placement::OneCpu {
                if route == Route::Relay {
                    f.relay_added_ns = p50 - direct_p50;
                } else if is_gangway(route) {
                    f.pinned_added_ns = f.pinned_added_ns.max(p50 - direct_p50);
                }
            }
            if payload == SMALL && placement == Placement::Split && is_gangway(route) {
                f.split_ratio = f.split_ratio.max(p50 / direct_p50);
            }
        }
    }
    let _ = writeln!(out);
    for s in servers {
        s.stop();
    }
    set_affinity(&saved);
    eprintln!("  measured {title}");
}

fn memory(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let _ = writeln!(
        out,
        "### gangway memory (VmHWM = peak RSS, from /proc/PID/status)\n"
    );
    let _ = writeln!(out, "| mode | load | calls | VmHWM MiB | VmRSS after MiB |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let load_time = if settings.quick { 1000 } else { 2000 };
    for route in [Route::Meta, Route::Tools] {
        let mut s = Server::start(env, route, 1);
        let t = Template::echo(route, SMALL);
        run_serial(&mut s, &t, Budget::calls(10));
        let pid = s.pid();
        let _ = writeln!(
            out,
            "| {} | idle, backend running | 10 | {} | {} |",
            route.expose(),
            kib_to_mib(hwm_kib(pid)),
            kib_to_mib(rss_kib(pid))
        );
        let run = run_window(
            &mut s,
            &t,
            1000,
            Budget::time(Duration::from_millis(load_time)),
        );
        let hwm = hwm_kib(pid);
        let _ = writeln!(
            out,
            "| {} | 1,000 in flight, 16 B | {} | {} | {} |",
            route.expose(),
            run.calls,
            kib_to_mib(hwm),
            kib_to_mib(rss_kib(pid))
        );
        f.rss_1000_kib = f.rss_1000_kib.max(hwm);
        s.stop();
    }

    // 64 KiB: the peak after N calls and after 10N must be the same if memory is bounded
    // by what is in flight rather than by history, and so must the resident size once the
    // calls are answered.
    let n: u64 = if settings.quick { 500 } else { 2000 };
    let mut s = Server::start(env, Route::Meta, 1);
    let t = Template::echo(Route::Meta, LARGE);
    let pid = s.pid();
    run_window(&mut s, &t, 32, Budget::calls(n));
    f.rss_n_kib = hwm_kib(pid);
    f.rest_n_kib = rss_kib(pid);
    let _ = writeln!(
        out,
        "| meta | 32 in flight, 64 KiB | {n} | {} | {} |",
        kib_to_mib(f.rss_n_kib),
        kib_to_mib(f.rest_n_kib)
    );
    run_window(&mut s, &t, 32, Budget::calls(9 * n));
    f.rss_10n_kib = hwm_kib(pid);
    f.rest_10n_kib = rss_kib(pid);
    let _ = writeln!(
        out,
        "| meta | 32 in flight, 64 KiB | {} | {} | {} |",
        10 * n,
        kib_to_mib(f.rss_10n_kib),
        kib_to_mib(f.rest_10n_kib)
    );
    s.stop();

    let mut s = Server::start(env, Route::Meta, 1);
    let pid = s.pid();
    let run = run_window(&mut s, &t, 1000, Budget::calls(3000));
    let _ = writeln!(
        out,
        "| meta | 1,000 in flight, 64 KiB | {} | {} | {} |",
        run.calls,
        kib_to_mib(hwm_kib(pid)),
        kib_to_mib(rss_kib(pid))
    );
    s.stop();
    let _ = writeln!(out);
    eprintln!("  measured memory");
}

fn startup(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let _ = writeln!(
        out,
        "### Spawn to `initialize` answer (gangway, meta mode; backends are not started)\n"
    );
    let _ = writeln!(out, "| backends configured | median ms | min ms | max ms |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (k, n) in [1usize, 50].into_iter().enumerate() {
        let config = env.config("meta", n);
        let mut samples = Vec::new();
        for _ in 0..settings.startup_samples() {
            let (log, _) = env.log_file();
            let t0 = Instant::now();
            let mut child = env
                .gangway_command(&config)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn gangway");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(format!("{INITIALIZE}\n").as_bytes())
                .expect("write initialize");
            let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).expect("read");
            let elapsed = t0.elapsed();
            assert!(
                memmem::find(&line, b"\"result\"").is_some(),
                "initialize failed: {}",
                excerpt(&line)
            );
            samples.push(elapsed.as_secs_f64() * 1e3);
            drop(stdin);
            let _ = child.wait();
        }
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(0.0, f64::max);
        let med = median(&mut samples);
        f.startup_ns[k] = med * 1e6;
        let _ = writeln!(out, "| {n} | {med:.2} | {min:.2} | {max:.2} |");
    }
    let _ = writeln!(out);
    eprintln!("  measured startup");
}

fn idle(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let mut s = Server::start(env, Route::Meta, 3);
    for backend in [BACKEND, "m01", "m02"] {
        let args = r#"{"text":"hi"}"#;
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":"start-{backend}","method":"tools/call","params":{{"name":"use_tool","arguments":{{"backend_server":"{backend}","server_tool":"echo","tool_arguments":{args}}}}}}}"#
        );
        s.send(line.as_bytes());
        let answer = s.read_answer();
        assert!(
            memmem::find(answer, b"\"isError\"").is_none(),
            "starting {backend} failed: {}",
            excerpt(answer)
        );
    }
    thread::sleep(Duration::from_millis(300));
    let pid = s.pid();
    let ticks0 = cpu_ticks(pid);
    let wakeups0 = status_field(pid, "voluntary_ctxt_switches").unwrap_or(0)
        + status_field(pid, "nonvoluntary_ctxt_switches").unwrap_or(0);
    let time = settings.idle_time();
    thread::sleep(time);
    let ticks = cpu_ticks(pid) - ticks0;
    let wakeups = status_field(pid, "voluntary_ctxt_switches").unwrap_or(0)
        + status_field(pid, "nonvoluntary_ctxt_switches").unwrap_or(0)
        - wakeups0;
    f.idle_ticks = ticks;
    let _ = writeln!(out, "### Idle (3 backends running, no traffic)\n");
    let _ = writeln!(
        out,
        "| seconds | gangway CPU ticks (utime+stime) | context switches |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(out, "| {} | {ticks} | {wakeups} |\n", time.as_secs());
    s.stop();
    eprintln!("  measured idle");
}

/// `--profile ROUTE`: 15 s of 16 B calls at 1 in flight, everything pinned to CPU 0, with
/// the pids printed, so that a profiler can attach (`perf record -g -p PID`,
/// `perf stat -p PID`, `strace -c -p PID`).
fn profile(env: &mut Env, route: Route) {
    if !set_affinity(&only_cpu(0)) {
        eprintln!("e2e: could not pin to CPU 0; profiling unpinned");
    }
    let mut s = Server::start(env, route, 1);
    // `E2E_PROFILE_PAYLOAD=BYTES` profiles calls of that payload instead of 16 B.
    let payload = std::env::var("E2E_PROFILE_PAYLOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SMALL);
    let t = Template::echo(route, payload);
    s.warm_up(&t, 1, Duration::from_millis(200));
    let gangway = if route == Route::Direct {
        None
    } else {
        Some(s.pid())
    };
    println!(
        "e2e: profiling {}: client pid {}, gangway pid {}, mock pid {}",
        route.label(),
        std::process::id(),
        gangway.map_or("-".to_string(), |p| p.to_string()),
        s.mock_pid().map_or("?".to_string(), |p| p.to_string())
    );
    let mut run = run_serial(&mut s, &t, Budget::time(Duration::from_secs(15)));
    run.lat.sort_unstable();
    println!(
        "e2e: {} calls, {:.0} calls/s, p50 {} µs, p99 {} µs",
        run.calls,
        run.rate(),
        us(percentile(&run.lat, 0.5)),
        us(percentile(&run.lat, 0.99))
    );
    s.stop();
}

/// `--relay MOCK`: the bare relay route. One thread, edge-triggered epoll (mio) on its
/// stdin, its stdout, and the mock's two pipes; 64 KiB reads until a short read, each chunk
/// written on at once: what gangway's event loop does minus framing, parsing, ids and
/// timers. Writes do not block: what a full pipe does not take waits in that direction's
/// queue until the pipe's next writable edge, so a window of large requests cannot
/// deadlock it (the mock blocked on a full pipe to the relay, the relay blocked on a full
/// pipe to the mock). With the queue empty a chunk costs one read and one write, as before;
/// the queues grow only to what the client keeps in flight, and are not bounded otherwise.
fn relay(mock: &str) -> ! {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    /// One direction: bytes read from `from` go to `to`, through `queue` when `to` is full.
    struct Pipe {
        from: File,
        to: File,
        queue: Vec<u8>,
        /// The first byte of `queue` not yet written.
        at: usize,
    }

    impl Pipe {
        fn new(from: OwnedFd, to: OwnedFd) -> Pipe {
            for fd in [from.as_fd(), to.as_fd()] {
                let flags = fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL");
                fcntl(
                    fd,
                    FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
                )
                .expect("F_SETFL");
            }
            Pipe {
                from: File::from(from),
                to: File::from(to),
                queue: Vec::new(),
                at: 0,
            }
        }

        /// Writes as much of `data` as `to` takes; `Ok(rest)` is what it did not.
        fn write<'a>(to: &mut File, mut data: &'a [u8]) -> std::io::Result<&'a [u8]> {
            while !data.is_empty() {
                match to.write(data) {
                    Ok(n) => data = &data[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(data)
        }

        /// Moves bytes from `from` on until it is empty; `false` at its end of file.
        fn pump(&mut self, buf: &mut [u8]) -> bool {
            loop {
                let n = match self.from.read(buf) {
                    Ok(0) => return false,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("relay read: {e}"),
                };
                if self.at == self.queue.len() {
                    let rest = Pipe::write(&mut self.to, &buf[..n]).expect("relay write");
                    if !rest.is_empty() {
                        self.queue.clear();
                        self.at = 0;
                        self.queue.extend_from_slice(rest);
                    }
                } else {
                    // Behind what waits: it goes after it, at the pipe's next edge.
                    self.queue.extend_from_slice(&buf[..n]);
                }
                if n < buf.len() {
                    // A short read from a pipe means it is empty now; its next write is
                    // a new edge.
                    return true;
                }
            }
        }

        /// `to` is writable again: writes what waits.
        fn flush(&mut self) {
            let rest = Pipe::write(&mut self.to, &self.queue[self.at..]).expect("relay write");
            self.at = self.queue.len() - rest.len();
            if self.at == self.queue.len() {
                self.queue.clear();
                self.at = 0;
            } else if self.at > 64 * KIB && 2 * self.at > self.queue.len() {
                // The written front is the larger part: drop it (as gangway's output queues
                // do), or a queue that never quite empties grows without end.
                self.queue.drain(..self.at);
                self.at = 0;
            }
        }
    }

    let mut child = Command::new(mock)
        .args(["--name", BACKEND])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the mock");
    let to_mock = OwnedFd::from(child.stdin.take().expect("the mock's stdin"));
    let from_mock = OwnedFd::from(child.stdout.take().expect("the mock's stdout"));
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().expect("dup");
    let mut up = Pipe::new(dup(std::io::stdin().as_fd()), to_mock);
    let mut down = Pipe::new(from_mock, dup(std::io::stdout().as_fd()));
    let mut poll = Poll::new().expect("epoll");
    let registrations = [
        (up.from.as_raw_fd(), Token(0), Interest::READABLE),
        (down.from.as_raw_fd(), Token(1), Interest::READABLE),
        (up.to.as_raw_fd(), Token(2), Interest::WRITABLE),
        (down.to.as_raw_fd(), Token(3), Interest::WRITABLE),
    ];
    for (fd, token, interest) in registrations {
        poll.registry()
            .register(&mut SourceFd(&fd), token, interest)
            .expect("register a pipe");
    }
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; 64 * KIB];
    'relay: loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        for ev in &events {
            let open = match ev.token() {
                Token(0) => up.pump(&mut buf),
                Token(1) => down.pump(&mut buf),
                Token(2) => {
                    up.flush();
                    true
                }
                _ => {
                    down.flush();
                    true
                }
            };
            if !open {
                break 'relay;
            }
        }
    }
    // The client or the mock is gone. Close both of the mock's pipes (a mock blocked
    // writing to the relay then fails instead of waiting forever).
    drop((up, down));
    let _ = child.wait();
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------
// HTTP: `gangway serve` and two peers that put a stdio server on HTTP
// ---------------------------------------------------------------------------------------

/// The protocol revision sent in `MCP-Protocol-Version` after `initialize`.
const HTTP_PROTOCOL: &str = "2025-06-18";
/// Calls in flight in the HTTP throughput runs: one keep-alive connection each, each on a
/// thread of its own doing serial calls, all in one session.
const HTTP_DEPTH: usize = 32;
/// Sessions held open on `gangway serve` for the memory target.
const HTTP_SESSIONS: usize = 100;

/// Ids of HTTP calls, unique across the threads that share a session (and below 2^53, so
/// a JavaScript peer keeps them exact).
static NEXT_HTTP_ID: AtomicU64 = AtomicU64::new(1);

/// One answer: its status, its `Mcp-Session-Id`, and its body (de-chunked; for an event
/// stream, the raw events).
struct HttpAnswer {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

/// How an exchange failed: `Stale` when a reused connection was closed before any byte of
/// the answer arrived (a keep-alive timeout; the request is sent again on a new one).
enum HttpError {
    Stale,
    Failed(String),
}

/// A keep-alive HTTP/1.1 client connection, hand-written over `TcpStream` (no new
/// dependencies): one request at a time; answers with `Content-Length`, chunked, or
/// delimited by the server closing the connection.
struct HttpConn {
    addr: SocketAddr,
    path: String,
    stream: Option<TcpStream>,
    /// Received bytes: `buf[start..end]` is what is not read yet; the rest of `buf` is room
    /// to read into (initialized once, so a read does not zero it again).
    buf: Vec<u8>,
    start: usize,
    end: usize,
    req: Vec<u8>,
    session: Option<String>,
    /// Whether `initialize` has been answered (then `MCP-Protocol-Version` is sent).
    initialized: bool,
}

fn http_failed<T>(msg: String) -> Result<T, HttpError> {
    Err(HttpError::Failed(msg))
}

/// How long the client waits for the next bytes of an answer.
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(15);

fn read_failed<T>(e: std::io::Error) -> Result<T, HttpError> {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    if matches!(e.kind(), WouldBlock | TimedOut) {
        let secs = HTTP_READ_TIMEOUT.as_secs();
        return http_failed(format!("read: nothing more of the answer within {secs} s"));
    }
    http_failed(format!("read: {e}"))
}

impl HttpConn {
    fn new(addr: SocketAddr, path: &str) -> HttpConn {
        HttpConn {
            addr,
            path: path.to_string(),
            stream: None,
            buf: vec![0; 16 * KIB],
            start: 0,
            end: 0,
            req: Vec::with_capacity(KIB),
            session: None,
            initialized: false,
        }
    }

    /// Another connection in the same session.
    fn join(&self) -> HttpConn {
        let mut c = HttpConn::new(self.addr, &self.path);
        c.session = self.session.clone();
        c.initialized = self.initialized;
        c
    }

    fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(HTTP_READ_TIMEOUT));
        self.stream = Some(stream);
        self.start = 0;
        self.end = 0;
        Ok(())
    }

    /// POSTs one JSON-RPC message and reads the whole answer.
    fn post(&mut self, body: &[u8]) -> Result<HttpAnswer, String> {
        for attempt in 0..2 {
            if self.stream.is_none() {
                self.connect()?;
            }
            let fresh = attempt > 0;
            match self.exchange(body) {
                Ok(a) => return Ok(a),
                Err(HttpError::Stale) if !fresh => self.stream = None,
                Err(HttpError::Stale) => {
                    self.stream = None;
                    return Err("the server closed the connection without answering".into());
                }
                Err(HttpError::Failed(e)) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        unreachable!()
    }

    fn exchange(&mut self, body: &[u8]) -> Result<HttpAnswer, HttpError> {
        self.req.clear();
        let _ = write!(
            self.req,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.path,
            self.addr,
            body.len()
        );
        if let Some(s) = &self.session {
            let _ = write!(self.req, "Mcp-Session-Id: {s}\r\n");
        }
        if self.initialized {
            let _ = write!(self.req, "MCP-Protocol-Version: {HTTP_PROTOCOL}\r\n");
        }
        self.req.extend_from_slice(b"\r\n");
        self.req.extend_from_slice(body);
        let stream = self.stream.as_mut().expect("connected");
        if stream.write_all(&self.req).is_err() {
            return Err(HttpError::Stale);
        }
        // The head.
        let head_end = loop {
            if let Some(at) = memmem::find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break self.start + at + 4;
            }
            let got_any = self.end > self.start;
            match self.fill() {
                Ok(0) if !got_any => return Err(HttpError::Stale),
                Ok(0) => return http_failed("the connection closed mid-head".into()),
                Ok(_) => {}
                Err(e) if !got_any && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(HttpError::Stale)
                }
                Err(e) => return read_failed(e),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[self.start..head_end]).into_owned();
        self.start = head_end;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::Failed(format!("bad status line in {head:?}")))?;
        let (mut length, mut chunked, mut close, mut session) = (None, false, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "mcp-session-id" => session = Some(value.to_string()),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let line = self.take_line()?;
                let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                    .ok_or_else(|| {
                        HttpError::Failed(format!("bad chunk size {:?}", excerpt(&line)))
                    })?;
                if size == 0 {
                    // Trailers, then an empty line.
                    while !self.take_line()?.is_empty() {}
                    break;
                }
                self.take(size, &mut body)?;
                if !self.take_line()?.is_empty() {
                    return http_failed("no CRLF after a chunk".into());
                }
            }
        } else if let Some(n) = length {
            self.take(n, &mut body)?;
        } else if status != 204 && status != 304 {
            // Delimited by the server closing the connection.
            loop {
                body.extend_from_slice(&self.buf[self.start..self.end]);
                self.start = self.end;
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return read_failed(e),
                }
            }
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(HttpAnswer {
            status,
            session,
            body,
        })
    }

    /// Reads more bytes into `buf`, making room first when it is full: by moving what is
    /// unread to the front, else by doubling it (a large body is then read in large reads).
    fn fill(&mut self) -> std::io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(2 * self.buf.len(), 0);
            }
        }
        let r = self
            .stream
            .as_mut()
            .expect("connected")
            .read(&mut self.buf[self.end..]);
        self.end += *r.as_ref().unwrap_or(&0);
        r
    }

    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), HttpError> {
        while self.end - self.start < n {
            match self.fill() {
                Ok(0) => return http_failed("the connection closed mid-body".into()),
                Ok(_) => {}
                Err(e) => return read_failed(e),
            }
        }
        out.extend_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(())
    }

    /// One CRLF-terminated line, without the CRLF.
    fn take_line(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(at) = memmem::find(&self.buf[self.start..self.end], b"\r\n") {
                let line = self.buf[self.start..self.start + at].to_vec();
                self.start += at + 2;
                return Ok(line);
            }
            match self.fill() {
                Ok(0) => return http_failed("the connection closed mid-chunk".into()),
                Ok(_) => {}
                Err(e) => return read_failed(e),
            }
        }
    }

    /// `initialize` (keeping the session id), `notifications/initialized`, `tools/list`.
    fn open_session(&mut self) -> Result<(), String> {
        let a = self.post(INITIALIZE.as_bytes())?;
        if a.status != 200 || memmem::find(&a.body, b"\"result\"").is_none() {
            return Err(format!(
                "initialize: HTTP {} {}",
                a.status,
                excerpt(&a.body)
            ));
        }
        self.session = a.session;
        self.initialized = true;
        let a = self.post(INITIALIZED.as_bytes())?;
        if !(200..300).contains(&a.status) {
            return Err(format!(
                "notifications/initialized: HTTP {} {}",
                a.status,
                excerpt(&a.body)
            ));
        }
        // A real client lists the tools first; this also starts gangway's backend.
        let a = self.post(br#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#)?;
        if a.status != 200 || memmem::find(&a.body, b"\"tools\"").is_none() {
            return Err(format!(
                "tools/list: HTTP {} {}",
                a.status,
                excerpt(&a.body)
            ));
        }
        Ok(())
    }

    /// One `tools/call`; checks that the answer is the tool's success for this id.
    fn call(&mut self, t: &Template, buf: &mut Vec<u8>) -> Result<(), String> {
        let id = NEXT_HTTP_ID.fetch_add(1, Ordering::Relaxed);
        t.write(id, buf);
        let a = self.post(&buf[..buf.len() - 1])?;
        let ok = a.status == 200
            && answers_id(&a.body, id)
            && memmem::find(&a.body, b"\"result\"").is_some()
            && memmem::find(&a.body, b"\"isError\":true").is_none();
        if ok {
            Ok(())
        } else {
            Err(format!("call {id}: HTTP {} {}", a.status, excerpt(&a.body)))
        }
    }
}

/// Whether a JSON (or event-stream) body carries `"id": id`.
fn answers_id(body: &[u8], id: u64) -> bool {
    let mut rest = body;
    while let Some(at) = memmem::find(rest, b"\"id\"") {
        rest = &rest[at + 4..];
        let value = rest.trim_ascii_start();
        let Some(value) = value.strip_prefix(b":") else {
            continue;
        };
        let value = value.trim_ascii_start();
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        if std::str::from_utf8(&value[..digits])
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            == Some(id)
        {
            return true;
        }
    }
    false
}

/// An HTTP server under test: `gangway serve`, supergateway or mcp-proxy, started in a
/// process group of its own so that stopping it stops whatever it spawned.
struct HttpServer {
    child: Child,
    addr: SocketAddr,
    path: &'static str,
    log: PathBuf,
}

impl HttpServer {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stop(mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.pid());
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        // Whatever is left of the group (the server, or a mock it did not stop).
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// The last lines of its log, for a row that could not be measured.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(2)..].join(" / ");
        tail.chars().take(200).collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HttpRoute {
    /// stdio gangway in tools mode: the reference.
    Stdio,
    Serve,
    Supergateway,
    McpProxy,
}

const HTTP_ROUTES: [HttpRoute; 4] = [
    HttpRoute::Stdio,
    HttpRoute::Serve,
    HttpRoute::Supergateway,
    HttpRoute::McpProxy,
];

impl HttpRoute {
    fn label(self) -> &'static str {
        match self {
            HttpRoute::Stdio => "stdio gangway tools (reference)",
            HttpRoute::Serve => "gangway serve",
            HttpRoute::Supergateway => "supergateway",
            HttpRoute::McpProxy => "mcp-proxy",
        }
    }

    /// Whose tool names this route takes: gangway's tools mode prefixes the backend's
    /// name; the peers pass the mock's own on.
    fn names(self) -> Route {
        match self {
            HttpRoute::Stdio | HttpRoute::Serve => Route::Tools,
            _ => Route::Direct,
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Where the peers are installed (`.ci/run` puts them in `.peers`).
fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

impl Env {
    /// Starts an HTTP route's server and waits until it listens. `Ok(Err(why))` when the
    /// route cannot run here (not installed), `Err(why)` when it failed to start.
    fn start_http(
        &mut self,
        route: HttpRoute,
    ) -> Result<Result<(HttpServer, String), String>, String> {
        use std::os::unix::process::CommandExt;
        let (log, log_path) = self.log_file();
        let mock = self.mock.display().to_string();
        let (mut cmd, how, port) = match route {
            HttpRoute::Stdio => unreachable!("the stdio route is a Server"),
            HttpRoute::Serve => {
                let config = self.config("tools", 1);
                let mut c = Command::new(&self.gangway);
                c.arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .args(["--listen", "127.0.0.1:0"])
                    .env("XDG_CACHE_HOME", self.dir.join("cache"));
                let how = "gangway serve --config CONFIG --listen 127.0.0.1:0 (tools mode)";
                (c, how.to_string(), None)
            }
            HttpRoute::Supergateway => {
                let bin = peers_dir().join("npm/node_modules/.bin/supergateway");
                if !bin.exists() {
                    return Ok(Err(format!(
                        "not installed ({} missing; .ci/run installs it)",
                        bin.display()
                    )));
                }
                if !on_path("node") {
                    return Ok(Err("node is not on PATH".into()));
                }
                let port = free_port()?;
                let mut c = Command::new(&bin);
                c.args(["--stdio", &format!("{mock} --name {BACKEND}")])
                    .args(["--outputTransport", "streamableHttp", "--stateful"])
                    .args(["--port", &port.to_string(), "--logLevel", "none"]);
                (c, format!("supergateway --stdio \"MOCK --name {BACKEND}\" --outputTransport streamableHttp --stateful --port PORT --logLevel none"), Some(port))
            }
            HttpRoute::McpProxy => {
                let dir = peers_dir().join("py-proxy");
                let bin = dir.join("bin/mcp-proxy");
                if !bin.exists() {
                    return Ok(Err(format!(
                        "not installed ({} missing; .ci/run installs it)",
                        bin.display()
                    )));
                }
                if !on_path("python3") {
                    return Ok(Err("python3 is not on PATH".into()));
                }
                let port = free_port()?;
                let mut c = Command::new("python3");
                c.arg(&bin)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--log-level", "WARNING", "--", &mock, "--name", BACKEND])
                    .env("PYTHONPATH", &dir);
                (c, format!("PYTHONPATH=.peers/py-proxy python3 .peers/py-proxy/bin/mcp-proxy --host 127.0.0.1 --port PORT --log-level WARNING -- MOCK --name {BACKEND}"), Some(port))
            }
        };
        let stdout = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(Stdio::from(stdout));
        if route == HttpRoute::Serve {
            cmd.stderr(Stdio::piped());
        } else {
            let stderr = log.try_clone().map_err(|e| e.to_string())?;
            cmd.stderr(Stdio::from(stderr));
        }
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let addr: SocketAddr = match port {
            Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            None => {
                // gangway logs its address ("... on http://127.0.0.1:PORT/mcp") on
                // stderr; the rest of its stderr goes on to the log file.
                let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
                let mut line = String::new();
                let mut found = None;
                while found.is_none() {
                    line.clear();
                    if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let _ = (&log).write_all(line.as_bytes());
                    found = line
                        .split_once("on http://")
                        .and_then(|(_, rest)| rest.split('/').next())
                        .and_then(|a| a.parse().ok());
                }
                let mut log = log;
                thread::spawn(move || {
                    let _ = std::io::copy(&mut stderr, &mut log);
                });
                found.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
            }
        };
        let mut server = HttpServer {
            child,
            addr,
            path: "/mcp",
            log: log_path,
        };
        // Wait until it listens.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let why = if addr.port() == 0 {
                "logged no address".to_string()
            } else if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Ok((server, how)));
            } else if let Ok(Some(status)) = server.child.try_wait() {
                format!("exited ({status}) before listening")
            } else if Instant::now() > deadline {
                "did not listen within 30 s".to_string()
            } else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            let why = format!("{why}: {}", server.log_tail());
            server.stop();
            return Err(why);
        }
    }
}

/// Calls at 1 in flight on one keep-alive connection.
fn http_serial(conn: &mut HttpConn, t: &Template, budget: Budget) -> Result<Run, String> {
    let mut buf = Vec::with_capacity(256);
    let mut lat = Vec::with_capacity(1 << 14);
    let start = Instant::now();
    while !budget.done(lat.len() as u64, start) {
        let t0 = Instant::now();
        conn.call(t, &mut buf)?;
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(Run {
        calls: lat.len() as u64,
        elapsed: start.elapsed(),
        lat,
    })
}

/// One thread per connection, each doing serial calls for `time`; all start together.
fn http_parallel(conns: &mut [HttpConn], t: &Template, time: Duration) -> Result<Run, String> {
    let barrier = std::sync::Barrier::new(conns.len() + 1);
    thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .map(|c| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(256);
                    let mut lat = Vec::with_capacity(1 << 12);
                    barrier.wait();
                    let start = Instant::now();
                    while start.elapsed() < time {
                        let t0 = Instant::now();
                        c.call(t, &mut buf)?;
                        lat.push(t0.elapsed().as_nanos() as u64);
                    }
                    Ok::<_, String>((lat, Instant::now()))
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let (mut all, mut end, mut failed) = (Vec::new(), start, None);
        for h in handles {
            match h.join().expect("a client thread") {
                Ok((lat, e)) => {
                    all.extend_from_slice(&lat);
                    end = end.max(e);
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Run {
                calls: all.len() as u64,
                elapsed: end - start,
                lat: all,
            }),
        }
    })
}

/// What a row of the HTTP table drives.
enum Subject {
    Stdio(Server),
    Http {
        server: HttpServer,
        conn: HttpConn,
        /// The connections of the throughput runs, opened on first use.
        conns: Vec<HttpConn>,
        /// Whose tool names it takes: gangway's tools mode's, or the mock's own.
        names: Route,
    },
    /// Not measured, and why.
    Out(String),
}

impl Leg for Subject {
    fn template(&self, payload: usize) -> Template {
        match self {
            Subject::Stdio(s) => s.template(payload),
            Subject::Http { names, .. } => Template::echo(*names, payload),
            Subject::Out(_) => Template::echo(Route::Direct, payload),
        }
    }

    /// An HTTP route that fails is stopped and marked out.
    fn run(&mut self, t: &Template, depth: usize, budget: Budget) -> Option<Run> {
        let result = match self {
            Subject::Out(_) => return None,
            Subject::Stdio(s) => return s.run(t, depth, budget),
            Subject::Http { conn, conns, .. } => {
                if depth == 1 {
                    http_serial(conn, t, budget)
                } else {
                    if conns.is_empty() {
                        *conns = (0..depth).map(|_| conn.join()).collect();
                    }
                    http_parallel(conns, t, budget.time)
                }
            }
        };
        match result {
            Ok(run) => Some(run),
            Err(e) => {
                let out = Subject::Out(format!("failed at {depth} in flight: {e}"));
                if let Subject::Http { server, .. } = std::mem::replace(self, out) {
                    server.stop();
                }
                None
            }
        }
    }

    fn pids(&self) -> [i32; 2] {
        match self {
            Subject::Stdio(s) => s.pids(),
            Subject::Http { server, .. } => [server.pid(), first_child(server.pid()).unwrap_or(-1)],
            Subject::Out(_) => [-1, -1],
        }
    }
}

struct HttpRow {
    route: HttpRoute,
    how: String,
    subject: Subject,
    /// 1 in flight, then `HTTP_DEPTH` in flight.
    cells: [Cell; 2],
    /// The server's VmRSS once measured (the front process only), KiB.
    rss_kib: u64,
}

impl HttpRow {
    fn start(env: &mut Env, route: HttpRoute) -> HttpRow {
        let (subject, how) = match route {
            HttpRoute::Stdio => (
                Subject::Stdio(Server::start(env, Route::Tools, 1)),
                "gangway --config CONFIG (tools mode), over pipes".to_string(),
            ),
            _ => match env.start_http(route) {
                Ok(Ok((server, how))) => {
                    let mut conn = HttpConn::new(server.addr, server.path);
                    match conn.open_session() {
                        Ok(()) => (
                            Subject::Http {
                                server,
                                conn,
                                conns: Vec::new(),
                                names: route.names(),
                            },
                            how,
                        ),
                        Err(e) => {
                            let why = format!("no session: {e} (log: {})", server.log_tail());
                            server.stop();
                            (Subject::Out(why), how)
                        }
                    }
                }
                Ok(Err(why)) => (Subject::Out(format!("skipped: {why}")), String::new()),
                Err(why) => (Subject::Out(format!("did not start: {why}")), String::new()),
            },
        };
        HttpRow {
            route,
            how,
            subject,
            cells: [Cell::default(), Cell::default()],
            rss_kib: 0,
        }
    }

    /// One run of 16 B calls at `depth` in flight; a route that fails is stopped and
    /// marked out.
    fn run(&mut self, depth: usize, time: Duration) -> Option<Run> {
        let t = self.subject.template(SMALL);
        self.subject.run(&t, depth, Budget::time(time))
    }

    fn pid(&self) -> Option<i32> {
        match &self.subject {
            Subject::Stdio(s) => Some(s.pid()),
            Subject::Http { server, .. } => Some(server.pid()),
            Subject::Out(_) => None,
        }
    }

    fn stop(self) {
        self.subject.stop();
    }
}

impl Subject {
    fn stop(self) {
        match self {
            Subject::Stdio(s) => s.stop(),
            Subject::Http {
                server,
                conn,
                conns,
                ..
            } => {
                drop((conn, conns));
                server.stop();
            }
            Subject::Out(_) => {}
        }
    }
}

fn http_matrix(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let mut rows: Vec<HttpRow> = HTTP_ROUTES
        .iter()
        .map(|&r| HttpRow::start(env, r))
        .collect();
    for (slot, depth) in [1, HTTP_DEPTH].into_iter().enumerate() {
        for row in rows.iter_mut() {
            row.run(depth, Duration::from_millis(150));
        }
        for round in 0..settings.rounds() {
            for k in 0..rows.len() {
                let n = rows.len();
                let row = &mut rows[(round + k) % n];
                let pids = [0, row.pid().unwrap_or(-1)];
                let before = pids.map(|p| if p < 0 { 0 } else { cpu_ticks(p) });
                let t0 = Instant::now();
                if let Some(run) = row.run(depth, settings.run_time()) {
                    let wall = t0.elapsed().as_secs_f64();
                    let after = pids.map(|p| if p < 0 { 0 } else { cpu_ticks(p) });
                    let cell = &mut row.cells[slot];
                    cell.rates.push(run.rate());
                    cell.lat.extend_from_slice(&run.lat);
                    for w in 0..2 {
                        cell.ticks[w] += after[w].saturating_sub(before[w]);
                    }
                    cell.wall += wall;
                }
            }
        }
        eprintln!("  measured HTTP, {depth} in flight");
    }
    for row in rows.iter_mut() {
        row.rss_kib = row.pid().map_or(0, rss_kib);
    }

    let _ = writeln!(
        out,
        "### Over HTTP: 16 B echo calls through `gangway serve` and two peers (same mock)\n"
    );
    let _ = writeln!(
        out,
        "1 in flight: one keep-alive connection. {HTTP_DEPTH} in flight: {HTTP_DEPTH} keep-alive connections in one session, each doing serial calls on a thread of its own (the stdio reference keeps {HTTP_DEPTH} in flight on its one pipe). CPU is of one core (100% = one core busy), for this client (all its threads) and the server process on the route (not the mock; a peer's children are not counted). Server RSS is VmRSS of that process after the runs.\n"
    );
    let _ = writeln!(
        out,
        "| route | 1 in flight calls/s | p50 µs | p99 µs | p50 vs stdio µs | {HTTP_DEPTH} in flight calls/s | p50 µs | p99 µs | CPU client / server, {HTTP_DEPTH} in flight | server RSS MiB |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let stdio_p50 = rows[0].cells[0].p(0.5);
    for row in rows.iter_mut() {
        if let Subject::Out(why) = &row.subject {
            let _ = writeln!(
                out,
                "| {} | not measured: {} | | | | | | | | |",
                row.route.label(),
                why.replace('|', "/")
            );
            continue;
        }
        let [one, many] = &mut row.cells;
        let (rate1, p50, p99) = (one.rate(), one.p(0.5), one.p(0.99));
        let (rate32, p50_32, p99_32) = (many.rate(), many.p(0.5), many.p(0.99));
        let added = if row.route == HttpRoute::Stdio {
            "-".to_string()
        } else {
            format!("{:+.1}", (p50 - stdio_p50) / 1000.0)
        };
        let _ = writeln!(
            out,
            "| {} | {rate1:.0} | {} | {} | {added} | {rate32:.0} | {} | {} | {:.0}% / {:.0}% | {} |",
            row.route.label(),
            us(p50),
            us(p99),
            us(p50_32),
            us(p99_32),
            many.cpu_pct(0),
            many.cpu_pct(1),
            kib_to_mib(row.rss_kib)
        );
        match row.route {
            HttpRoute::Stdio => {}
            HttpRoute::Serve => {
                f.http_added_p50_ns = Some(p50 - stdio_p50);
                f.http_p50_ns = [stdio_p50, p50];
                f.serve_rate = Some(rate32);
            }
            HttpRoute::Supergateway | HttpRoute::McpProxy => {
                if !matches!(f.peer_rate, Some((_, r)) if r >= rate32) {
                    f.peer_rate = Some((row.route.label(), rate32));
                }
            }
        }
    }
    let _ = writeln!(out);
    for row in &rows {
        if !row.how.is_empty() {
            let _ = writeln!(out, "- {}: `{}`", row.route.label(), row.how);
        }
    }
    let _ = writeln!(out);
    for row in rows {
        row.stop();
    }
}

/// stdio gangway and `gangway serve` at 1 in flight with this client and every server
/// process on CPU 0, as in the pinned stdio table: an unpinned run lands in one of two
/// regimes (wake-ups on one CPU or across two) and need not land in the same one for both.
fn http_pinned(env: &mut Env, settings: &Settings, out: &mut String, f: &mut Findings) {
    let _ = writeln!(
        out,
        "### Over HTTP: 16 B echo calls, 1 in flight, everything pinned to CPU 0\n"
    );
    let Some(saved) = get_affinity() else {
        let _ = writeln!(out, "sched_getaffinity failed; not measured.\n");
        return;
    };
    if !set_affinity(&only_cpu(0)) {
        let _ = writeln!(out, "CPU 0 is not available; not measured.\n");
        return;
    }
    // Spawned while this thread runs on CPU 0, so the servers and their mocks inherit it.
    let mut rows: Vec<HttpRow> = [HttpRoute::Stdio, HttpRoute::Serve]
        .iter()
        .map(|&r| HttpRow::start(env, r))
        .collect();
    for row in rows.iter_mut() {
        row.run(1, Duration::from_millis(150));
    }
    for round in 0..settings.rounds() {
        for k in 0..rows.len() {
            let n = rows.len();
            let row = &mut rows[(round + k) % n];
            if let Some(run) = row.run(1, settings.run_time()) {
                row.cells[0].rates.push(run.rate());
                row.cells[0].lat.extend_from_slice(&run.lat);
            }
        }
    }
    let _ = writeln!(out, "| route | calls/s | p50 µs | p99 µs | added p50 µs |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let stdio_p50 = rows[0].cells[0].p(0.5);
    for row in rows.iter_mut() {
        if let Subject::Out(why) = &row.subject {
            let _ = writeln!(
                out,
                "| {} | not measured: {} | | | |",
                row.route.label(),
                why.replace('|', "/")
            );
            continue;
        }
        let cell = &mut row.cells[0];
        let (rate, p50, p99) = (cell.rate(), cell.p(0.5), cell.p(0.99));
        let added = if row.route == HttpRoute::Stdio {
            "-".to_string()
        } else {
            f.http_pinned_added_ns = Some(p50 - stdio_p50);
            f.http_pinned_p50_ns = [stdio_p50, p50];
            format!("{:+.1}", (p50 - stdio_p50) / 1000.0)
        };
        let _ = writeln!(
            out,
            "| {} | {rate:.0} | {} | {} | {added} |",
            row.route.label(),
            us(p50),
            us(p99)
        );
    }
    let _ = writeln!(out);
    for row in rows {
        row.stop();
    }
    set_affinity(&saved);
    eprintln!("  measured HTTP, 1 in flight, pinned");
}

/// `gangway serve` with `HTTP_SESSIONS` sessions open, each on a connection of its own that
/// stays open, each having made one call.
fn http_memory(env: &mut Env, out: &mut String, f: &mut Findings) {
    let _ = writeln!(out, "### `gangway serve` memory with sessions open\n");
    let server = match env.start_http(HttpRoute::Serve) {
        Ok(Ok((server, _))) => server,
        Ok(Err(why)) | Err(why) => {
            let _ = writeln!(out, "gangway serve did not start: {why}\n");
            return;
        }
    };
    let pid = server.pid();
    let t = Template::echo(HttpRoute::Serve.names(), SMALL);
    let mut buf = Vec::new();
    let mut first = HttpConn::new(server.addr, server.path);
    let result = first.open_session().and_then(|()| {
        for _ in 0..10 {
            first.call(&t, &mut buf)?;
        }
        let one = (rss_kib(pid), hwm_kib(pid));
        let mut conns = Vec::with_capacity(HTTP_SESSIONS);
        for _ in 0..HTTP_SESSIONS {
            let mut c = HttpConn::new(server.addr, server.path);
            c.open_session()?;
            c.call(&t, &mut buf)?;
            conns.push(c);
        }
        let many = (rss_kib(pid), hwm_kib(pid));
        drop(conns);
        Ok((one, many))
    });
    match result {
        Ok((one, many)) => {
            let _ = writeln!(out, "| sessions open | VmRSS MiB | VmHWM MiB |");
            let _ = writeln!(out, "|---|---|---|");
            let _ = writeln!(
                out,
                "| 1 (10 calls) | {} | {} |",
                kib_to_mib(one.0),
                kib_to_mib(one.1)
            );
            let _ = writeln!(
                out,
                "| 1 + {HTTP_SESSIONS} (each on its own open connection, one call each) | {} | {} |",
                kib_to_mib(many.0),
                kib_to_mib(many.1)
            );
            f.http_sessions_kib = Some(many);
        }
        Err(e) => {
            let _ = writeln!(out, "failed: {e} (log: {})", server.log_tail());
        }
    }
    let _ = writeln!(out);
    drop(first);
    server.stop();
    eprintln!("  measured HTTP sessions");
}

// ---------------------------------------------------------------------------------------
// Payload sizes: gangway against the bare relay at 16 B, 64 KiB and 1 MiB (issue 16)
// ---------------------------------------------------------------------------------------

/// The payload section's routes at 1 in flight, in the order they are spawned and listed.
const PAYLOAD_ROUTES: [&str; 4] = [
    "direct",
    "bare relay (floor)",
    "gangway tools",
    "gangway serve (HTTP, tools)",
];
const PAYLOAD_SIZES: [usize; 3] = [SMALL, LARGE, HUGE];

/// `--payload-only` runs just this section. First, 1 in flight with everything pinned to
/// CPU 0: the mock directly, through the bare relay, through stdio gangway (tools mode)
/// and through `gangway serve` (tools mode, over HTTP), at each payload size; the echo
/// answer carries the text back, so the payload crosses each hop both ways. Added p50 is
/// a route's p50 minus direct's. Then, unpinned, 32 in flight on fresh servers (direct,
/// relay, stdio gangway) at 16 B and 64 KiB, and gangway's peak RSS after those runs.
fn payload_matrix(env: &mut Env, settings: &Settings, out: &mut String) {
    let _ = writeln!(
        out,
        "### Payload sizes: echo calls, 1 in flight, everything pinned to CPU 0\n"
    );
    let saved = get_affinity();
    // added[size][route]: p50 minus direct's p50, ns; NaN when not measured.
    let mut added = [[f64::NAN; PAYLOAD_ROUTES.len()]; PAYLOAD_SIZES.len()];
    if saved.is_none() || !set_affinity(&only_cpu(0)) {
        let _ = writeln!(out, "Could not pin to CPU 0; not measured.\n");
    } else {
        // Spawned while this thread runs on CPU 0, so the servers and their mocks inherit it.
        let mut legs: Vec<Subject> = [Route::Direct, Route::Relay, Route::Tools]
            .into_iter()
            .map(|r| Subject::Stdio(Server::start(env, r, 1)))
            .collect();
        legs.push(HttpRow::start(env, HttpRoute::Serve).subject);
        let _ = writeln!(
            out,
            "| payload | route | calls | calls/s | p50 µs | p99 µs | added p50 µs | added vs relay |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for (k, &payload) in PAYLOAD_SIZES.iter().enumerate() {
            // 1 MiB calls take milliseconds: longer runs, for a few hundred samples.
            let run_time = settings.run_time() * if payload == HUGE { 2 } else { 1 };
            let mut cells = measure(&mut legs, payload, 1, settings, run_time);
            let direct_p50 = cells[0].p(0.5);
            for (i, cell) in cells.iter_mut().enumerate() {
                if let Subject::Out(why) = &legs[i] {
                    let _ = writeln!(
                        out,
                        "| {} | {} | not measured: {} | | | | | |",
                        size(payload),
                        PAYLOAD_ROUTES[i],
                        why.replace('|', "/")
                    );
                    continue;
                }
                let (p50, p99) = (cell.p(0.5), cell.p(0.99));
                added[k][i] = p50 - direct_p50;
                let (added_us, vs_relay) = match i {
                    0 => ("-".to_string(), "-".to_string()),
                    1 => (us(added[k][i]), "1.00".to_string()),
                    _ => (us(added[k][i]), format!("{:.2}", added[k][i] / added[k][1])),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {} | {} | {added_us} | {vs_relay} |",
                    size(payload),
                    PAYLOAD_ROUTES[i],
                    cell.lat.len(),
                    cell.rate(),
                    us(p50),
                    us(p99),
                );
            }
            eprintln!("  measured {} x 1 in flight, pinned", size(payload));
        }
        let _ = writeln!(out);
        for leg in legs {
            leg.stop();
        }
    }
    if let Some(saved) = saved {
        set_affinity(&saved);
    }

    let _ = writeln!(
        out,
        "### Payload sizes: echo calls, {HTTP_DEPTH} in flight, unpinned (fresh servers)\n"
    );
    let mut servers: Vec<Server> = [Route::Direct, Route::Relay, Route::Tools]
        .into_iter()
        .map(|r| Server::start(env, r, 1))
        .collect();
    let _ = writeln!(
        out,
        "| payload | route | calls/s | vs relay | p50 µs | p99 µs | CPU client / gateway / mock |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    // rates[size][route], calls/s.
    let mut rates = [[0.0f64; 3]; 2];
    for (k, payload) in [SMALL, LARGE].into_iter().enumerate() {
        let mut cells = measure(
            &mut servers,
            payload,
            HTTP_DEPTH,
            settings,
            settings.run_time(),
        );
        for (i, cell) in cells.iter().enumerate() {
            rates[k][i] = cell.rate();
        }
        for (i, cell) in cells.iter_mut().enumerate() {
            let gw_cpu = if i == 0 {
                "-".to_string()
            } else {
                format!("{:.0}%", cell.cpu_pct(1))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {} | {} | {:.0}% / {gw_cpu} / {:.0}% |",
                size(payload),
                PAYLOAD_ROUTES[i],
                rates[k][i],
                rates[k][i] / rates[k][1],
                us(cell.p(0.5)),
                us(cell.p(0.99)),
                cell.cpu_pct(0),
                cell.cpu_pct(2),
            );
        }
        eprintln!("  measured {} x {HTTP_DEPTH} in flight", size(payload));
    }
    let _ = writeln!(out);
    // Peak RSS over the whole life of each process, which ran 16 B and then 64 KiB calls at
    // 32 in flight (the relay is this bench binary, for reference).
    let relay_hwm = hwm_kib(servers[1].pid());
    let gangway_hwm = hwm_kib(servers[2].pid());
    for s in servers {
        s.stop();
    }

    let _ = writeln!(out, "### Payload targets\n");
    let _ = writeln!(out, "| target | measured | result |");
    let _ = writeln!(out, "|---|---|---|");
    let mut row = |name: String, measured: String, ok: bool| {
        let _ = writeln!(out, "| {name} | {measured} | {} |", verdict(ok));
    };
    // NaN (not measured) and a floor at or below zero both fail.
    let within = |a: f64, b: f64, max: f64| b > 0.0 && a / b <= max;
    for (k, max) in [1.2, 1.3, 1.3].into_iter().enumerate() {
        let (gw, relay) = (added[k][2], added[k][1]);
        row(
            format!(
                "added p50, 1 in flight, pinned, {}: gangway tools <= {max}x the bare relay's",
                size(PAYLOAD_SIZES[k])
            ),
            format!("{} vs {} µs: {:.2}x", us(gw), us(relay), gw / relay),
            within(gw, relay, max),
        );
    }
    for (k, payload) in [SMALL, LARGE].into_iter().enumerate() {
        let (gw, relay) = (rates[k][2], rates[k][1]);
        row(
            format!(
                "calls/s, {HTTP_DEPTH} in flight, {}: gangway tools >= 90% of the bare relay's",
                size(payload)
            ),
            format!("{gw:.0} vs {relay:.0}: {:.0}%", gw / relay * 100.0),
            gw >= 0.9 * relay,
        );
    }
    row(
        format!("peak RSS (VmHWM) of gangway tools, 64 KiB at {HTTP_DEPTH} in flight: < 6 MiB"),
        format!(
            "{} MiB (the bare relay: {} MiB)",
            kib_to_mib(gangway_hwm),
            kib_to_mib(relay_hwm)
        ),
        gangway_hwm > 0 && gangway_hwm < 6 * 1024,
    );
    let (serve, stdio) = (added[1][3], added[1][2]);
    row(
        "added p50, 1 in flight, pinned, 64 KiB: gangway serve <= 1.3x stdio gangway tools"
            .to_string(),
        format!("{} vs {} µs: {:.2}x", us(serve), us(stdio), serve / stdio),
        within(serve, stdio, 1.3),
    );
    let _ = writeln!(out);
}

// ---------------------------------------------------------------------------------------
// Building what is measured
// ---------------------------------------------------------------------------------------

fn cargo(args: &[&str]) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    eprintln!("e2e: cargo {}", args.join(" "));
    Command::new(cargo)
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .status()
        .is_ok_and(|s| s.success())
}

fn musl_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-linux-musl"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({cpu}), Linux {}, gangway {commit}",
        kernel.trim()
    )
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--relay") {
        relay(args.get(1).expect("--relay MOCK"));
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench binaries without `--bench`: nothing to check.
        println!("e2e: run it with `cargo bench --bench e2e`");
        return;
    }
    let settings = Settings {
        quick: args.iter().any(|a| a == "--quick"),
        out: args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from),
        musl: !args.iter().any(|a| a == "--no-musl"),
    };

    assert!(
        cargo(&["build", "--release", "--example", "mock_server"]),
        "building the mock server failed"
    );
    let built = PathBuf::from(env!("CARGO_BIN_EXE_gangway"));
    let release_dir = built
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let target_dir = release_dir
        .parent()
        .expect("the target directory")
        .to_path_buf();
    // `--gangway PATH` measures another build (an A/B comparison of a change).
    let gangway = args
        .iter()
        .position(|a| a == "--gangway")
        .and_then(|i| args.get(i + 1))
        .map_or(built, PathBuf::from);
    let musl = target_dir.join("x86_64-unknown-linux-musl/release/gangway");
    let mut musl_note = String::new();
    if settings.musl && musl_installed() {
        if !cargo(&[
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
            "--bin",
            "gangway",
        ]) {
            musl_note = " (the musl build failed)".to_string();
        }
    } else if musl.exists() {
        musl_note = " (not rebuilt: may be stale)".to_string();
    }
    let mock = release_dir.join("examples/mock_server");
    assert!(mock.exists(), "no mock server at {}", mock.display());
    let dir = std::env::temp_dir().join(format!("gangway-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    let mut env = Env {
        gangway,
        mock,
        dir: dir.clone(),
        spawned: 0,
    };

    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let route = match args.get(i + 1).map(String::as_str) {
            Some("direct") => Route::Direct,
            Some("tools") => Route::Tools,
            Some("relay") => Route::Relay,
            _ => Route::Meta,
        };
        profile(&mut env, route);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let started = Instant::now();
    let mut f = Findings::default();
    let mut body = String::new();
    // `--http-only`: just the HTTP section (the other targets then read "not measured").
    let http_only = args.iter().any(|a| a == "--http-only");
    // `--payload-only`: just the payload section, with its own targets.
    let payload_only = args.iter().any(|a| a == "--payload-only");
    eprintln!(
        "e2e: measuring (about {} s)",
        match (settings.quick, payload_only) {
            (true, true) => 25,
            (false, true) => 60,
            (true, false) => 55,
            (false, false) => 170,
        }
    );
    if !http_only && !payload_only {
        latency_matrix(&mut env, &settings, &mut body, &mut f);
        pinned_matrix(&mut env, &settings, &mut body, &mut f, Placement::OneCpu);
        pinned_matrix(&mut env, &settings, &mut body, &mut f, Placement::Split);
        memory(&mut env, &settings, &mut body, &mut f);
        startup(&mut env, &settings, &mut body, &mut f);
        idle(&mut env, &settings, &mut body, &mut f);
    }
    if !http_only {
        payload_matrix(&mut env, &settings, &mut body);
    }
    if !payload_only {
        http_matrix(&mut env, &settings, &mut body, &mut f);
        http_pinned(&mut env, &settings, &mut body, &mut f);
        http_memory(&mut env, &mut body, &mut f);
    }
    f.musl_bytes = std::fs::metadata(&musl).ok().map(|m| m.len());

    let mut out = String::new();
    let _ = writeln!(out, "## gangway end-to-end benchmark\n");
    let _ = writeln!(
        out,
        "{}; measured in {:.0} s{}.\n",
        machine(),
        started.elapsed().as_secs_f64(),
        if settings.quick { " (--quick)" } else { "" }
    );
    out.push_str(&body);
    // With `--payload-only` none of these was measured (its section has its own targets).
    if !payload_only {
        let _ = writeln!(out, "### Targets\n");
        let _ = writeln!(out, "| target | measured | result |");
        let _ = writeln!(out, "|---|---|---|");
    }
    let mut row = |name: &str, measured: String, ok: Option<bool>| {
        // With `--http-only` only the HTTP targets (all about `gangway serve`) were measured.
        if payload_only || (http_only && !name.contains("gangway serve")) {
            return;
        }
        let result = ok.map_or("n/a", verdict);
        let _ = writeln!(out, "| {name} | {measured} | {result} |");
    };
    row(
        "added p50, 1 in flight, 16 B, pinned: <= 10 µs over direct",
        format!(
            "{} µs (worst mode; a bare relay adds {} µs)",
            us(f.pinned_added_ns),
            us(f.relay_added_ns)
        ),
        Some(f.pinned_added_ns <= 10_000.0),
    );
    row(
        "p50, 1 in flight, 16 B, unpinned: <= 2x direct",
        format!(
            "{:.2}x (worst mode; a bare relay: {:.2}x; direct p50 {} µs; split CPUs: {:.2}x)",
            f.p50_ratio,
            f.relay_ratio,
            us(f.direct_p50_ns),
            f.split_ratio
        ),
        Some(f.p50_ratio <= 2.0),
    );
    row(
        "throughput, 32 in flight, 16 B: >= 50% of direct",
        format!("{:.0}% (worst mode)", f.tput_ratio * 100.0),
        Some(f.tput_ratio >= 0.5),
    );
    row(
        "64 slow calls (20 ms, 8 in flight) not serialized: <= 1.2x direct",
        format!(
            "{:.2}x of {:.0} ms (serialized would be 1280 ms)",
            f.slow_ratio, f.slow_direct_ms
        ),
        Some(f.slow_ratio <= 1.2),
    );
    row(
        "peak RSS, 1,000 in flight, 16 B: < 6 MiB",
        format!("{} MiB", kib_to_mib(f.rss_1000_kib)),
        Some(f.rss_1000_kib > 0 && f.rss_1000_kib < 6 * 1024),
    );
    let peak_growth = f.rss_10n_kib.saturating_sub(f.rss_n_kib);
    let rest_growth = f.rest_10n_kib.saturating_sub(f.rest_n_kib);
    row(
        "64 KiB payloads: no growth from N to 10N calls (peak: <= 1 MiB or 10%; at rest: <= 512 KiB)",
        format!(
            "peak {} -> {} MiB, at rest {} -> {} MiB",
            kib_to_mib(f.rss_n_kib),
            kib_to_mib(f.rss_10n_kib),
            kib_to_mib(f.rest_n_kib),
            kib_to_mib(f.rest_10n_kib)
        ),
        Some((peak_growth <= 1024 || peak_growth * 10 <= f.rss_n_kib) && rest_growth <= 512),
    );
    row(
        "spawn to initialize: < 5 ms (1 and 50 backends)",
        format!(
            "{:.2} / {:.2} ms",
            f.startup_ns[0] / 1e6,
            f.startup_ns[1] / 1e6
        ),
        Some(f.startup_ns.iter().all(|&ns| ns < 5e6)),
    );
    row(
        "idle: zero CPU ticks with backends running",
        format!(
            "{} ticks in {} s",
            f.idle_ticks,
            settings.idle_time().as_secs()
        ),
        Some(f.idle_ticks == 0),
    );
    row(
        "static binary (release, stripped, musl): < 3 MiB",
        match f.musl_bytes {
            Some(b) => format!("{:.2} MiB ({b} bytes){musl_note}", b as f64 / MIB as f64),
            None => "not built (rustup target add x86_64-unknown-linux-musl)".to_string(),
        },
        f.musl_bytes.map(|b| b < 3 * MIB),
    );
    row(
        "HTTP p50, 1 in flight, 16 B: `gangway serve` within 50 µs of stdio gangway (tools), unpinned and pinned",
        match (f.http_added_p50_ns, f.http_pinned_added_ns) {
            (Some(added), pinned) => format!(
                "unpinned {} vs {} µs: {:+.1} µs; pinned to CPU 0 {}",
                us(f.http_p50_ns[1]),
                us(f.http_p50_ns[0]),
                added / 1000.0,
                match pinned {
                    Some(p) => format!(
                        "{} vs {} µs: {:+.1} µs",
                        us(f.http_pinned_p50_ns[1]),
                        us(f.http_pinned_p50_ns[0]),
                        p / 1000.0
                    ),
                    None => "not measured".to_string(),
                }
            ),
            (None, _) => "not measured".to_string(),
        },
        Some(
            f.http_added_p50_ns.is_some_and(|a| a <= 50_000.0)
                && !matches!(f.http_pinned_added_ns, Some(a) if a > 50_000.0),
        ),
    );
    row(
        "HTTP throughput, 32 in flight, 16 B: `gangway serve` >= 10x the faster peer",
        match (f.serve_rate, f.peer_rate) {
            (Some(serve), Some((peer, rate))) => format!(
                "{serve:.0} vs {rate:.0} calls/s ({peer}): {:.1}x",
                serve / rate
            ),
            (Some(serve), None) => format!("{serve:.0} calls/s; no peer measured"),
            (None, _) => "not measured".to_string(),
        },
        match (f.serve_rate, f.peer_rate) {
            (Some(serve), Some((_, rate))) => Some(serve >= 10.0 * rate),
            (Some(_), None) => None,
            (None, _) => Some(false),
        },
    );
    row(
        "`gangway serve` RSS with 100 sessions open: < 16 MiB (judged on the peak, VmHWM)",
        match f.http_sessions_kib {
            Some((rss, hwm)) => format!(
                "VmRSS {} MiB, VmHWM {} MiB",
                kib_to_mib(rss),
                kib_to_mib(hwm)
            ),
            None => "not measured".to_string(),
        },
        Some(
            f.http_sessions_kib
                .is_some_and(|(_, hwm)| hwm > 0 && hwm < 16 * 1024),
        ),
    );

    print!("\n{out}");
    let path = settings
        .out
        .clone()
        .unwrap_or_else(|| target_dir.join("e2e-results.md"));
    match std::fs::write(&path, &out) {
        Ok(()) => println!("\ne2e: table written to {}", path.display()),
        Err(e) => eprintln!("e2e: could not write {}: {e}", path.display()),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
