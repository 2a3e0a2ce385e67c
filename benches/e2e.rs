//! End-to-end benchmark: one load client against the project's mock MCP server
//! (`examples/mock_server.rs`), directly and through gangway in meta mode (`use_tool`) and in
//! tools mode (`mock__echo`), all in one run so that the ratios to direct compare numbers
//! taken minutes apart on the same machine. A fourth route, a bare byte relay (this binary
//! with `--relay`), measures what any extra process on the path costs: the floor under
//! gangway's overhead.
//!
//! ```sh
//! cargo bench --bench e2e                    # about 1.5 minutes, table in target/e2e-results.md
//! cargo bench --bench e2e -- --quick         # about 30 s, noisier numbers
//! cargo bench --bench e2e -- --out FILE      # write the table to FILE instead
//! cargo bench --bench e2e -- --no-musl       # do not build the static binary to size it
//! cargo bench --bench e2e -- --gangway PATH  # measure another gangway binary (A/B a change)
//! cargo bench --bench e2e -- --profile meta  # 15 s of pinned 1-in-flight calls to attach a
//!                                            # profiler to (meta, tools, direct or relay)
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
//! Under `cargo test --benches` (no `--bench` argument) it does nothing: a 1.5-minute run is
//! not a test.

use memchr::memmem;
use serde_json::json;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
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
        let path = format!("/proc/{0}/task/{0}/children", self.pid());
        let text = std::fs::read_to_string(path).ok()?;
        text.split_whitespace().next()?.parse().ok()
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
    if bytes == SMALL {
        "16 B"
    } else {
        "64 KiB"
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

/// Measures `payload` x `depth` on each server, `rounds` times with the routes taking
/// turns. Servers are indexed like `ROUTES`.
fn measure(servers: &mut [Server], payload: usize, depth: usize, settings: &Settings) -> Vec<Cell> {
    let templates: Vec<Template> = servers
        .iter()
        .map(|s| Template::echo(s.route, payload))
        .collect();
    for (s, t) in servers.iter_mut().zip(&templates) {
        s.warm_up(t, depth, Duration::from_millis(150));
    }
    let mut cells: Vec<Cell> = servers.iter().map(|_| Cell::default()).collect();
    for round in 0..settings.rounds() {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let s = &mut servers[i];
            let pids = [
                0,
                if s.route == Route::Direct {
                    -1
                } else {
                    s.pid()
                },
                s.mock_pid().unwrap_or(-1),
            ];
            let before = pids.map(|p| if p < 0 { 0 } else { cpu_ticks(p) });
            let t0 = Instant::now();
            let budget = Budget::time(settings.run_time());
            let run = if depth == 1 {
                run_serial(s, &templates[i], budget)
            } else {
                run_window(s, &templates[i], depth, budget)
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
}

/// The rows of one configuration: direct first, then the relay (when measured), then
/// gangway's modes. Servers are in `ROUTES` order; the relay only runs at 1 in flight
/// (its blocking writes could deadlock against a full pipe with a window).
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
        let n = if depth == 1 { ROUTES.len() } else { 3 };
        let mut cells = measure(&mut servers[..n], payload, depth, settings);
        let direct_rate = cells[0].rate();
        let direct_p50 = cells[0].p(0.5);
        for i in row_order(n) {
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
        let mut cells = measure(&mut servers, payload, 1, settings);
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
    let t = Template::echo(route, SMALL);
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
/// stdin and the mock's stdout, 64 KiB reads until a short read, each chunk written on at
/// once: what gangway's event loop does minus framing, parsing, ids and timers. Writes
/// block, which is safe with one request in flight and is all it is used for.
fn relay(mock: &str) -> ! {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};

    fn nonblocking(fd: impl AsFd) {
        let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).expect("F_GETFL");
        fcntl(
            fd.as_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .expect("F_SETFL");
    }

    let mut child = Command::new(mock)
        .args(["--name", BACKEND])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the mock");
    let mut to_mock = child.stdin.take().expect("the mock's stdin");
    let mut from_mock = child.stdout.take().expect("the mock's stdout");
    let stdin = std::io::stdin();
    nonblocking(stdin.as_fd());
    nonblocking(from_mock.as_fd());
    let mut poll = Poll::new().expect("epoll");
    let (client_fd, mock_fd) = (stdin.as_raw_fd(), from_mock.as_raw_fd());
    poll.registry()
        .register(&mut SourceFd(&client_fd), Token(0), Interest::READABLE)
        .expect("register stdin");
    poll.registry()
        .register(&mut SourceFd(&mock_fd), Token(1), Interest::READABLE)
        .expect("register the mock's stdout");
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; 64 * KIB];
    let mut stdout = std::io::stdout();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        for ev in &events {
            let from_client = ev.token() == Token(0);
            loop {
                let read = if from_client {
                    nix::unistd::read(stdin.as_fd(), &mut buf).map_err(std::io::Error::from)
                } else {
                    from_mock.read(&mut buf)
                };
                let n = match read {
                    Ok(0) => {
                        drop(to_mock);
                        let _ = child.wait();
                        std::process::exit(0);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("relay read: {e}"),
                };
                let written = if from_client {
                    to_mock.write_all(&buf[..n])
                } else {
                    stdout.write_all(&buf[..n]).and_then(|()| stdout.flush())
                };
                written.expect("relay write");
                if n < buf.len() {
                    // A short read from a pipe means it is empty now; its next write is
                    // a new edge.
                    break;
                }
            }
        }
    }
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
    eprintln!(
        "e2e: measuring (about {} s)",
        if settings.quick { 30 } else { 85 }
    );
    latency_matrix(&mut env, &settings, &mut body, &mut f);
    pinned_matrix(&mut env, &settings, &mut body, &mut f, Placement::OneCpu);
    pinned_matrix(&mut env, &settings, &mut body, &mut f, Placement::Split);
    memory(&mut env, &settings, &mut body, &mut f);
    startup(&mut env, &settings, &mut body, &mut f);
    idle(&mut env, &settings, &mut body, &mut f);
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
    let _ = writeln!(out, "### Targets\n");
    let _ = writeln!(out, "| target | measured | result |");
    let _ = writeln!(out, "|---|---|---|");
    let mut row = |name: &str, measured: String, ok: Option<bool>| {
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
