//! The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, installed into `.peers` by
//! `.ci/run`) lists and calls tools through `gangway serve` with `--transport http`, and
//! through a stdio gangway in revision 2026-07-28 (`--protocol-era modern`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::util::*;
use serde_json::{json, Value};

fn inspector() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/npm/node_modules/.bin/mcp-inspector");
    let missing = if bin.exists() {
        Vec::new()
    } else {
        vec![format!("the MCP Inspector ({})", bin.display())]
    };
    nothing_missing("the Inspector test", &missing).then_some(bin)
}

fn run(bin: &PathBuf, url: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(bin);
    cmd.args(["--cli", url, "--transport", "http"]).args(args);
    run_cli(cmd, args)
}

/// Runs the Inspector as `cmd`, expecting success and JSON on stdout.
fn run_cli(mut cmd: Command, args: &[&str]) -> Value {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run the MCP Inspector");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("inspector printed no JSON ({e}): {stdout}"))
}

/// Lists the tools and calls `m__echo` with `text` through `inspector` (which runs the
/// Inspector with a method's arguments and returns the JSON it printed): `m__echo` is
/// listed, and its answer carries `text`.
fn lists_and_echoes(inspector: impl Fn(&[&str]) -> Value, text: &str) {
    let listed = inspector(&["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("a tool list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"m__echo"), "{names:?}");
    let arg = format!("text={text}");
    let called = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "m__echo",
        "--tool-arg",
        &arg,
    ]);
    assert!(called.to_string().contains(text), "{called}");
}

#[test]
fn the_inspector_cli_lists_and_calls_tools_over_http() {
    let Some(bin) = inspector() else { return };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let url = format!("http://{}/mcp", served.addr);
    lists_and_echoes(|args| run(&bin, &url, args), "hello inspector");
}

#[test]
fn the_inspector_cli_speaks_2026_07_28_to_a_stdio_gangway() {
    let Some(bin) = inspector() else { return };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let config = dir.write_config("gangway.json", &config);
    let gangway = env!("CARGO_BIN_EXE_gangway");
    let modern = |args: &[&str], target: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args(["--cli", "--protocol-era", "modern"])
            .args(args)
            .arg("--")
            .args(target);
        cmd
    };
    let through = [gangway, "--config", config.to_str().expect("a UTF-8 path")];
    // The pinned era has no fallback: a handshake-only server (the mock itself) fails it.
    let mock = mock_path();
    let direct = modern(
        &["--method", "tools/list"],
        &[mock.to_str().expect("a UTF-8 path")],
    )
    .stdin(Stdio::null())
    .output()
    .expect("run the MCP Inspector");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&direct.stdout),
        String::from_utf8_lossy(&direct.stderr)
    );
    assert!(
        said.contains("no fallback"),
        "the mock passed a modern-only client: {said}"
    );
    lists_and_echoes(|args| run_cli(modern(args, &through), args), "hello modern");
}

/// The Inspector pinned to the modern era (`--protocol-era modern`) over Streamable HTTP:
/// `gangway serve` answers it per request, without a session, and the listing and the
/// call come back in the revision's shape.
#[test]
fn the_inspector_cli_speaks_2026_07_28_to_gangway_serve() {
    let Some(bin) = inspector() else { return };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let url = format!("http://{}/mcp", served.addr);
    let modern = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--cli",
            &url,
            "--transport",
            "http",
            "--protocol-era",
            "modern",
        ])
        .args(args);
        cmd
    };
    lists_and_echoes(|args| run_cli(modern(args), args), "hello modern http");
    // Served as 2026-07-28: no session was opened for it.
    let said = served.gw.stderr().join("\n");
    assert!(!said.contains("HTTP: session"), "{said}");
}
