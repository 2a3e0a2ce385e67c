//! gangway between the MCP Python SDK (`mcp` 2.3.0, as the client, over stdio, Streamable
//! HTTP and HTTP+SSE) and real servers:
//! `@modelcontextprotocol/server-everything` (backend `everything`) and `mcp-server-time`
//! (backend `time`). Each test writes a config, runs one scenario of `sdk_client.py` with the
//! gangway binary, and expects its `ok` line; the scenario's assertions live in the script.
//!
//! The peers are installed into `.peers` by `.ci/run`. Without them (or without `python3` or
//! `node`) the tests are skipped with a note on stderr, except under CI, where they fail.

use crate::util::{nothing_missing, program_runs, run_bounded};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The longest a scenario may run; the script bounds itself well below this (25 s), so this
/// only catches a hung interpreter.
const DEADLINE: Duration = Duration::from_secs(60);

/// Where the peers are, once they are known to be there.
struct Peers {
    root: PathBuf,
}

impl Peers {
    fn python_path(&self) -> PathBuf {
        self.root.join(".peers").join("py")
    }

    fn everything_js(&self) -> PathBuf {
        self.root
            .join(".peers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    }

    fn script(&self) -> PathBuf {
        self.root.join("tests").join("peers").join("sdk_client.py")
    }

    fn everything_backend(&self) -> Value {
        json!({"command": "node", "args": [self.everything_js()]})
    }

    fn time_backend(&self) -> Value {
        json!({
            "command": "python3",
            "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
            "env": {"PYTHONPATH": self.python_path()},
        })
    }
}

/// The peers, or None when the test should be skipped (it prints why). Under CI (`CI` set)
/// a missing peer fails the test instead: `.ci/run` installs them, so it is a real breakage.
fn peers() -> Option<Peers> {
    let peers = Peers {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    let mut missing = Vec::new();
    for (path, what) in [
        (peers.python_path().join("mcp"), "the MCP Python SDK"),
        (
            peers.python_path().join("mcp_server_time"),
            "mcp-server-time",
        ),
        (
            peers.everything_js(),
            "@modelcontextprotocol/server-everything",
        ),
    ] {
        if !path.exists() {
            missing.push(format!("{what} ({})", path.display()));
        }
    }
    for program in ["python3", "node"] {
        if !program_runs(program) {
            missing.push(format!("`{program}` in PATH"));
        }
    }
    nothing_missing("real-peer tests", &missing).then_some(peers)
}

/// A fresh directory for one test's config, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gangway-peers-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn write_config(&self, config: &Value) -> PathBuf {
        let path = self.0.join("config.json");
        let text = serde_json::to_string_pretty(config).expect("config serializes");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What gangway fronts in a scenario.
enum Setup {
    /// `everything` and `time`, exposed this way (`meta`, `tools` or `both`).
    EverythingAndTime(&'static str),
    /// Two server-everything instances, `a` and `b`, in tools mode.
    TwoEverythings,
    /// server-everything twice in tools mode: `everything` shared, `own` with
    /// `"scope": "session"`.
    SharedAndPerSession,
}

fn config(peers: &Peers, setup: Setup) -> Value {
    match setup {
        Setup::EverythingAndTime(expose) => json!({
            "expose": expose,
            "backends": {"everything": peers.everything_backend(), "time": peers.time_backend()},
        }),
        Setup::TwoEverythings => json!({
            "expose": "tools",
            "backends": {"a": peers.everything_backend(), "b": peers.everything_backend()},
        }),
        Setup::SharedAndPerSession => {
            let mut own = peers.everything_backend();
            own["scope"] = json!("session");
            json!({
                "expose": "tools",
                "backends": {"everything": peers.everything_backend(), "own": own},
            })
        }
    }
}

/// Runs `scenario` of sdk_client.py against gangway set up as `setup`, with the client on
/// `transport` (`stdio`, `http` or `sse`), and expects its `ok` line and exit status 0.
fn scenario(name: &str, setup: Setup, transport: &str) {
    let Some(peers) = peers() else { return };
    let scratch = Scratch::new(&format!("{name}-{transport}"));
    let config_path = scratch.write_config(&config(&peers, setup));
    let mut cmd = Command::new("python3");
    cmd.arg(peers.script())
        .arg(name)
        .arg(env!("CARGO_BIN_EXE_gangway"))
        .arg(&config_path)
        .arg(transport)
        .env("PYTHONPATH", peers.python_path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("XDG_CACHE_HOME", scratch.0.join("cache"));
    // Past the deadline the script's own deadlines failed: it is ended (its gangway sees
    // stdin close and exits).
    let ran = run_bounded(cmd, b"", DEADLINE);
    let ok_line = format!("ok {name}");
    let passed = ran.success() && ran.stdout.lines().any(|l| l == ok_line);
    assert!(
        passed,
        "scenario {name} over {transport} failed with config {} (stderr holds the script's, gangway's and the backends'): {}",
        config_path.display(),
        ran.report(),
    );
}

/// Every scenario, with what gangway fronts in it: run over stdio (gangway as the SDK's
/// subprocess), and again in `http` over Streamable HTTP (one `gangway serve` per
/// scenario, each SDK session a session of it) and in `sse` over HTTP+SSE.
macro_rules! scenarios {
    ($($name:ident => $setup:expr,)*) => {
        $(
            #[test]
            fn $name() {
                scenario(stringify!($name), $setup, "stdio");
            }
        )*

        /// The scenarios through `gangway serve` and the SDK's Streamable HTTP client.
        mod http {
            use super::*;
            $(
                #[test]
                fn $name() {
                    scenario(stringify!($name), $setup, "http");
                }
            )*
        }
    };
}

scenarios! {
    tools_mode_lists_every_tool_of_both_prefixed => Setup::EverythingAndTime("tools"),
    meta_mode_lists_use_tool_and_discover => Setup::EverythingAndTime("meta"),
    echo_through_use_tool_and_tools_mode => Setup::EverythingAndTime("both"),
    long_running_progress_reaches_the_client => Setup::EverythingAndTime("tools"),
    sampling_request_answered_by_client_callback => Setup::EverythingAndTime("tools"),
    elicitation_round_trip => Setup::EverythingAndTime("tools"),
    roots_reach_the_backend => Setup::EverythingAndTime("tools"),
    structured_content_passes_through => Setup::EverythingAndTime("tools"),
    resources_list_and_read => Setup::EverythingAndTime("meta"),
    prompts_list_and_get => Setup::EverythingAndTime("meta"),
    completion_for_prompt_argument => Setup::EverythingAndTime("meta"),
    logging_reaches_the_client => Setup::EverythingAndTime("tools"),
    cancellation_of_a_long_call => Setup::EverythingAndTime("tools"),
    list_changed_reaches_the_client => Setup::EverythingAndTime("tools"),
    two_instances_server_to_client_requests_route_right => Setup::TwoEverythings,
    tasks_augmented_call_followed_to_result => Setup::EverythingAndTime("tools"),
}

/// Two SDK sessions of one `gangway serve` at once, sharing one backend process and each
/// with a session-scoped process of another.
#[test]
fn two_http_sessions_share_one_backend_and_hear_only_their_own() {
    scenario(
        "two_sessions_share_one_backend_and_hear_only_their_own",
        Setup::SharedAndPerSession,
        "http",
    );
}

/// The SDK's HTTP+SSE client (the 2024-11-05 transport) against `gangway serve`'s `/sse`.
mod sse {
    use super::*;

    #[test]
    fn echo_through_use_tool_and_tools_mode() {
        scenario(
            "echo_through_use_tool_and_tools_mode",
            Setup::EverythingAndTime("both"),
            "sse",
        );
    }

    #[test]
    fn long_running_progress_reaches_the_client() {
        scenario(
            "long_running_progress_reaches_the_client",
            Setup::EverythingAndTime("tools"),
            "sse",
        );
    }

    #[test]
    fn sampling_request_answered_by_client_callback() {
        scenario(
            "sampling_request_answered_by_client_callback",
            Setup::EverythingAndTime("tools"),
            "sse",
        );
    }
}

/// Runs `tests/peers/modern_client.py` with the SDK's client in `mode` (pinned to the
/// 2026-07-28 revision, or `auto`) against gangway fronting server-everything with
/// `expose: both`, over stdio or (`http`) a `gangway serve`: the client must end up
/// speaking 2026-07-28 (no `initialize`), call tools both ways, get progress, answer
/// sampling and elicitation through the multi round-trip flow, hear a resource update on a
/// listen, (over HTTP) cancel a call by closing its request, and read a resource, each
/// result in the revision's shape (the SDK validates them strictly).
fn modern(mode: &str, http: bool) {
    let Some(peers) = peers() else { return };
    let scratch = Scratch::new(&format!("modern-{mode}-{http}"));
    let config = config(&peers, Setup::EverythingAndTime("both"));
    let config_path = scratch.write_config(&config);
    let mut cmd = Command::new("python3");
    cmd.arg(peers.root.join("tests/peers/modern_client.py"))
        .arg(mode)
        .arg(env!("CARGO_BIN_EXE_gangway"))
        .arg(&config_path)
        .env("PYTHONPATH", peers.python_path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    // Over HTTP: one `gangway serve` the client reaches by URL.
    let dir = crate::util::TempDir::new();
    let served = http.then(|| crate::util::Served::start(&dir, &config, &[]));
    if let Some(s) = &served {
        cmd.arg(format!("http://{}/mcp", s.addr));
    }
    let ran = run_bounded(cmd, b"", DEADLINE);
    let passed = ran.success() && ran.stdout.lines().any(|l| l == format!("ok {mode}"));
    assert!(
        passed,
        "the modern client ({mode}) failed: {}",
        ran.report()
    );
}

#[test]
fn a_client_pinned_to_2026_07_28_gets_every_feature_over_stdio() {
    modern("2026-07-28", false);
}

#[test]
fn an_auto_client_adopts_2026_07_28_and_gets_every_feature_over_stdio() {
    modern("auto", false);
}

#[test]
fn a_client_pinned_to_2026_07_28_gets_every_feature_over_http() {
    modern("2026-07-28", true);
}

#[test]
fn an_auto_client_adopts_2026_07_28_and_gets_every_feature_over_http() {
    modern("auto", true);
}
