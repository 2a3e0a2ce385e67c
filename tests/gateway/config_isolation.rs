//! One config entry never takes the rest down (issue 11): an unset variable, another
//! client's keys, a server gangway cannot run or gangway's own container entry disable only
//! that entry; values written for Claude Desktop pass unchanged; a secret given to one
//! backend never reaches another; a catalog path that is not a regular file is left alone.

use crate::util::*;
use serde_json::{json, Value};
use std::path::Path;

/// A variable no test environment sets.
const UNSET: &str = "GANGWAY_TEST_SURELY_UNSET_VAR";

/// `backend`'s value of the environment variable `name`, through the mock's `env` tool.
fn env_of(gw: &mut Gangway, backend: &str, name: &str) -> String {
    ok_text(&gw.use_tool(backend, "env", json!({ "name": name })))
}

/// A mock entry with `env`.
fn mock_with_env(name: &str, env: Value) -> Value {
    let mut m = mock(name, &[]);
    m["env"] = env;
    m
}

fn instructions(init: &Value) -> String {
    init["instructions"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_unset_variable_disables_only_its_backend() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "needs": mock_with_env("needs", json!({ "TOKEN": format!("${{{UNSET}}}") })),
        "fine": mock("fine", &[]) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env_remove(UNSET);
    let mut gw = Gangway::spawn(cmd);
    let init = gw.initialize();
    let log = gw.wait_stderr("backend needs is disabled", T);
    assert!(log.contains(UNSET), "the log names the variable: {log}");

    let text = instructions(&init);
    let line = text
        .lines()
        .find(|l| l.starts_with("- needs"))
        .unwrap_or_else(|| panic!("no line for the disabled backend in: {text}"));
    assert!(line.contains("disabled") && line.contains(UNSET), "{line}");

    assert_eq!(
        ok_text(&gw.use_tool("fine", "echo", json!({ "text": "still here" }))),
        "still here"
    );
    let err = tool_error_text(&gw.use_tool("needs", "echo", json!({ "text": "x" })));
    assert!(
        err.contains("needs is disabled") && err.contains(UNSET) && err.contains("\"env\""),
        "use_tool names the reason and the fix: {err}"
    );
    assert!(err.contains("Available servers: fine"), "{err}");
    let err = tool_error_text(&gw.call_tool(
        "discover_backend_tools",
        json!({ "backend_server": "needs" }),
    ));
    assert!(err.contains("disabled") && err.contains(UNSET), "{err}");
    gw.finish();
}

#[test]
fn a_reload_with_an_unset_variable_keeps_the_other_backends() {
    let dir = TempDir::new();
    let mut config = json!({ "backends": {
        "a": mock("a", &[]), "b": mock("b", &[]) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env_remove(UNSET);
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    assert_eq!(
        ok_text(&gw.use_tool("a", "echo", json!({ "text": "1" }))),
        "1"
    );

    config["backends"]["a"]["env"] = json!({ "TOKEN": format!("${{{UNSET}}}") });
    dir.write_config("config.json", &config);
    let mark = gw.stderr_len();
    gw.sighup();
    gw.wait_stderr_after(mark, "config reloaded", T);
    assert_eq!(
        ok_text(&gw.use_tool("b", "echo", json!({ "text": "2" }))),
        "2",
        "the other backend keeps serving"
    );
    let err = tool_error_text(&gw.use_tool("a", "echo", json!({ "text": "3" })));
    assert!(
        err.contains("a is disabled") && err.contains(UNSET),
        "{err}"
    );
    gw.finish();
}

#[test]
fn other_clients_files_run_their_stdio_servers() {
    let dir = TempDir::new();
    let mut cline = mock("cline", &[]);
    cline["autoApprove"] = json!(["echo"]);
    cline["disabled"] = json!(false);
    cline["timeout"] = json!(60);
    let mut roo = mock("roo", &[]);
    roo["alwaysAllow"] = json!([]);
    roo["watchPaths"] = json!(["/tmp"]);
    let config = json!({ "mcpServers": {
        "cline": cline,
        "roo": roo,
        "remote": { "type": "http", "url": "https://mcp.invalid/mcp",
                    "headers": { "Authorization": "Bearer x" } },
        "cursor": { "url": "https://mcp.invalid/sse" } } });
    let mut gw = Gangway::start(&dir, &config);
    let init = gw.initialize();
    let note = gw.wait_stderr("ignoring \"autoApprove\"", T);
    assert!(note.contains("mcpServers.cline"), "{note}");

    assert_eq!(
        ok_text(&gw.use_tool("cline", "echo", json!({ "text": "c" }))),
        "c"
    );
    assert_eq!(
        ok_text(&gw.use_tool("roo", "echo", json!({ "text": "r" }))),
        "r"
    );
    // Its https server is run too: reaching it (a name that resolves nowhere) fails.
    let err = tool_error_text(&gw.use_tool("remote", "echo", json!({ "text": "x" })));
    assert!(err.contains("cannot resolve mcp.invalid"), "{err}");
    let text = instructions(&init);
    assert!(text.contains("- cursor"), "{text}");
    assert!(!text.contains("- cursor (disabled)"), "{text}");
    gw.finish();
}

#[test]
fn a_typo_in_a_desktop_file_is_still_an_error() {
    let dir = TempDir::new();
    let mut entry = mock("a", &[]);
    entry["autoApprove"] = json!([]);
    entry["tiemout"] = json!(5);
    let mut gw = Gangway::start(&dir, &json!({ "mcpServers": { "a": entry } }));
    let status = gw.wait_exit(T);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{:?}", gw.stderr());
    // The exit can be seen before the reader thread has collected the last stderr line.
    let line = gw.wait_stderr("unknown key", T);
    assert!(
        line.contains("unknown key \"tiemout\"") && line.contains("did you mean \"timeout\""),
        "{line}"
    );
}

#[test]
fn env_values_pass_exactly_as_claude_desktop_passes_them() {
    let dir = TempDir::new();
    let config = json!({ "mcpServers": { "m": mock_with_env("m", json!({
        "DOLLARS": "abc$$def",
        "LONE": "x${y",
        "EMPTY_REF": "${}",
        "DIGIT": "${1X}",
        "ESCAPED": "$${HOME}",
        "DEFAULTED": format!("${{{UNSET}:-fallback}}"),
    })) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env_remove(UNSET);
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    for (name, want) in [
        ("DOLLARS", "abc$$def"),
        ("LONE", "x${y"),
        ("EMPTY_REF", "${}"),
        ("DIGIT", "${1X}"),
        ("ESCAPED", "${HOME}"),
        ("DEFAULTED", "fallback"),
    ] {
        assert_eq!(env_of(&mut gw, "m", name), want, "{name}");
    }
    gw.finish();
}

#[test]
fn a_secret_given_to_one_backend_never_reaches_another() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "a": mock_with_env("a", json!({ "TOKEN": "${GANGWAY_TEST_SECRET_A}" })),
        "b": mock_with_env("b", json!({ "OWN": "${GANGWAY_TEST_SECRET_B}" })),
        "c": mock("c", &[]) } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("GANGWAY_TEST_SECRET_A", "secret-for-a")
        .env("GANGWAY_TEST_SECRET_B", "secret-for-b")
        .env("GANGWAY_TEST_UNREFERENCED", "shared");
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    assert_eq!(env_of(&mut gw, "a", "TOKEN"), "secret-for-a");
    assert_eq!(env_of(&mut gw, "b", "OWN"), "secret-for-b");
    for (backend, var) in [
        ("b", "GANGWAY_TEST_SECRET_A"),
        ("c", "GANGWAY_TEST_SECRET_A"),
        ("a", "GANGWAY_TEST_SECRET_B"),
        ("c", "GANGWAY_TEST_SECRET_B"),
    ] {
        assert_eq!(
            env_of(&mut gw, backend, var),
            "<unset>",
            "{var} reached {backend}"
        );
    }
    assert_eq!(
        env_of(&mut gw, "a", "GANGWAY_TEST_SECRET_A"),
        "secret-for-a",
        "a backend that references a variable inherits it"
    );
    assert_eq!(
        env_of(&mut gw, "c", "GANGWAY_TEST_UNREFERENCED"),
        "shared",
        "what no backend references is inherited by all"
    );
    gw.finish();
}

#[test]
fn a_crashing_backends_stderr_is_quoted_with_its_env_values_redacted() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "a": mock_with_env("a", json!({ "TOKEN": "tok-1234567" })) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let said = ok_text(&gw.use_tool(
        "a",
        "stderr",
        json!({ "text": "auth failed for token tok-1234567" }),
    ));
    assert_eq!(said, "ok");
    let logged = gw.wait_stderr("auth failed for token", T);
    assert!(
        logged.contains("[redacted]") && !logged.contains("tok-1234567"),
        "{logged}"
    );
    let err = tool_error_text(&gw.use_tool("a", "crash", json!({})));
    assert!(
        err.contains("auth failed for token [redacted]") && !err.contains("tok-1234567"),
        "{err}"
    );
    assert!(
        !gw.stderr().iter().any(|l| l.contains("tok-1234567")),
        "the secret was logged: {:?}",
        gw.stderr()
    );
    gw.finish();
}

#[test]
fn gangways_own_container_entry_is_disabled() {
    let dir = TempDir::new();
    let config = json!({ "mcpServers": {
        "gangway": { "command": "docker", "args": [
            "run", "-i", "--rm",
            "-v", "/var/run/docker.sock:/var/run/docker.sock",
            "-v", "/home/u/claude_desktop_config.json:/config.json:ro",
            "gangway", "--config", "/config.json"] },
        "tagged": { "command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/someone/gangway:0.1"] },
        "m": mock("m", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    let init = gw.initialize();
    let text = instructions(&init);
    for name in ["gangway", "tagged"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("- {name} ")))
            .unwrap_or_else(|| panic!("no line for {name} in: {text}"));
        assert!(
            line.contains("disabled") && line.contains("gangway's own container image"),
            "{line}"
        );
    }
    let err = tool_error_text(&gw.use_tool("gangway", "echo", json!({})));
    assert!(err.contains("recursively"), "{err}");
    assert_eq!(
        ok_text(&gw.use_tool("m", "echo", json!({ "text": "m" }))),
        "m"
    );
    gw.finish();
}

/// A config whose catalog is `path`.
fn with_catalog(path: &Path) -> Value {
    json!({ "catalog": path.to_str().unwrap(), "backends": { "a": mock("a", &[]) } })
}

#[test]
fn a_fifo_at_the_catalog_path_never_blocks_start_and_is_kept() {
    let dir = TempDir::new();
    let fifo = dir.join("catalog.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut gw = Gangway::start(&dir, &with_catalog(&fifo));
    // With the FIFO opened for reading, gangway would never get this far.
    gw.initialize();
    let warning = gw.wait_stderr("FIFO", T);
    assert!(
        warning.contains(fifo.to_str().unwrap()) && warning.contains("\"catalog\""),
        "the warning names the path and the fix: {warning}"
    );
    assert_eq!(
        ok_text(&gw.use_tool("a", "echo", json!({ "text": "x" }))),
        "x"
    );
    gw.finish();
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
}

#[test]
fn a_symlink_at_the_catalog_path_is_never_replaced() {
    let dir = TempDir::new();
    let target = dir.join("elsewhere.json");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("catalog.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut gw = Gangway::start(&dir, &with_catalog(&link));
    gw.initialize();
    gw.wait_stderr("symbolic link", T);
    assert_eq!(
        ok_text(&gw.use_tool("a", "echo", json!({ "text": "x" }))),
        "x"
    );
    // Closing stdin makes gangway save the catalog it learned, if it ever would.
    gw.finish();
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}
