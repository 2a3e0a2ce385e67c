//! `gangway check` for the config problems of issue 11 and newcomer friction: a backend
//! disabled for an unset variable (and variables only the shell has), other clients' keys,
//! the line that explains a failure, `--log-level` after the command, and the servers' own
//! descriptions in the instructions.

use super::{gangway, row, run, setup_with, Run};
use crate::util::*;
use serde_json::{json, Value};

/// A variable no test environment sets.
const UNSET: &str = "GANGWAY_TEST_SURELY_UNSET_VAR";

/// Runs `gangway check --config DIR/config.json` with `config`, after `prepare`.
fn check_with(
    dir: &TempDir,
    config: &Value,
    prepare: impl FnOnce(&mut std::process::Command),
) -> Run {
    setup_with(dir, config, "check", &[], prepare)
}

/// A backend running the shell script `script`, written into `dir`.
fn script_backend(dir: &TempDir, name: &str, script: &str) -> Value {
    let path = dir.join(&format!("{name}.sh"));
    std::fs::write(&path, script).unwrap();
    json!({ "command": "sh", "args": [path.to_str().unwrap()], "startup_timeout": 2 })
}

#[test]
fn check_shows_a_backend_disabled_for_an_unset_variable_and_checks_the_rest() {
    let dir = TempDir::new();
    let mut needs = mock("needs", &[]);
    needs["env"] = json!({ "TOKEN": format!("${{{UNSET}}}") });
    let config = json!({ "backends": { "needs": needs, "fine": mock("fine", &[]) } });
    let r = check_with(&dir, &config, |c| {
        c.env_remove(UNSET);
    });
    r.assert_code(0);
    let needs = row(&r, "needs");
    assert!(
        needs.contains("disabled") && needs.contains(UNSET) && needs.contains("\"env\""),
        "{needs}"
    );
    assert!(row(&r, "fine").contains("ok"), "{}", r.stdout);
}

#[test]
fn check_warns_about_variables_only_this_shell_has() {
    let dir = TempDir::new();
    let mut gh = mock("gh", &[]);
    gh["env"] = json!({ "GITHUB_PERSONAL_ACCESS_TOKEN": "${GANGWAY_TEST_SHELL_TOKEN}" });
    let r = check_with(&dir, &json!({ "backends": { "gh": gh } }), |c| {
        c.env("GANGWAY_TEST_SHELL_TOKEN", "from-the-shell");
    });
    r.assert_code(0);
    let warning = r
        .stdout
        .lines()
        .find(|l| l.contains("GANGWAY_TEST_SHELL_TOKEN"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", r.stdout));
    for part in [
        "backend gh",
        "this shell's environment",
        "minimal",
        "\"env\": {\"GANGWAY_TEST_SHELL_TOKEN\": \"...\"}",
        "\"-e\", \"GANGWAY_TEST_SHELL_TOKEN\"",
    ] {
        assert!(warning.contains(part), "{part:?} not in: {warning}");
    }
    assert!(!r.stdout.contains("from-the-shell"), "a value was printed");
}

#[test]
fn check_notes_other_clients_keys_and_disables_what_it_cannot_run() {
    let dir = TempDir::new();
    let mut cline = mock("cline", &[]);
    cline["autoApprove"] = json!([]);
    let config = json!({ "mcpServers": {
        "cline": cline,
        "remote": { "httpUrl": "https://mcp.invalid/mcp" } } });
    let r = check_with(&dir, &config, |_| {});
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("note: mcpServers.cline: ignoring \"autoApprove\""),
        "{}",
        r.stdout
    );
    assert!(row(&r, "cline").contains("ok"), "{}", r.stdout);
    let remote = row(&r, "remote");
    assert!(
        remote.contains("disabled") && remote.contains("\"httpUrl\" transport"),
        "{remote}"
    );
}

#[test]
fn check_shows_npms_404_line_not_its_log_file_line() {
    let dir = TempDir::new();
    let npm = script_backend(
        &dir,
        "npm",
        "cat >&2 <<'EOF'\n\
         npm error code E404\n\
         npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fserver - Not found\n\
         npm error 404\n\
         npm error 404  '@nope/server@*' is not in this registry.\n\
         npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log\n\
         EOF\n\
         exit 1\n",
    );
    let r = check_with(&dir, &json!({ "backends": { "npm": npm } }), |_| {});
    r.assert_code(1);
    let line = row(&r, "npm");
    assert!(line.contains("404 Not Found - GET"), "{line}");
    assert!(!line.contains("complete log"), "{line}");
}

#[test]
fn check_reports_a_server_that_prints_non_json_to_stdout() {
    let dir = TempDir::new();
    let exits = script_backend(
        &dir,
        "exits",
        "echo 'Server listening on port 3000'\necho 'second line'\nexit 1\n",
    );
    let hangs = script_backend(
        &dir,
        "hangs",
        "echo 'Starting the server...'\nexec sleep 30\n",
    );
    let mut hangs = hangs;
    hangs["startup_timeout"] = json!(0.5);
    let r = check_with(
        &dir,
        &json!({ "backends": { "exits": exits, "hangs": hangs } }),
        |_| {},
    );
    r.assert_code(1);
    let line = row(&r, "exits");
    assert!(
        line.contains("not JSON-RPC to stdout") && line.contains("Server listening on port 3000"),
        "{line}"
    );
    let line = row(&r, "hangs");
    assert!(
        line.contains("not JSON-RPC to stdout") && line.contains("Starting the server..."),
        "{line}"
    );
}

#[test]
fn log_level_is_accepted_after_the_subcommand() {
    let dir = TempDir::new();
    let r = check_with(&dir, &json!({ "backends": { "m": mock("m", &[]) } }), |c| {
        c.args(["--log-level", "debug"]);
    });
    r.assert_code(0);
    // The backend's stderr is logged by the gateway, at the level it uses when serving.
    assert!(
        r.stderr.contains("gangway debug: ") && r.stderr.contains("[m] mock m started"),
        "no debug log with --log-level debug after check:\n{}",
        r.stderr
    );
}

#[test]
fn a_desktop_file_shows_each_servers_own_description() {
    let dir = TempDir::new();
    let config = json!({ "mcpServers": { "m": mock("m", &[]) } });
    // check learns what the server says about itself into the catalog...
    let r = check_with(&dir, &config, |_| {});
    r.assert_code(0);
    // ...which the next gangway shows before the server ever starts.
    let mut gw = Gangway::start(&dir, &config);
    let init = gw.initialize();
    let text = init["instructions"].as_str().unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("- m "))
        .unwrap_or_else(|| panic!("no line for m in: {text}"));
    assert!(line.ends_with(": mock server"), "{line}");
    gw.finish();
}

#[test]
fn call_on_a_backend_disabled_for_an_unset_variable_says_why() {
    let dir = TempDir::new();
    let mut needs = mock("needs", &[]);
    needs["env"] = json!({ "TOKEN": format!("${{{UNSET}}}") });
    let path = dir.write_config("config.json", &json!({ "backends": { "needs": needs } }));
    let mut cmd = gangway(&dir);
    cmd.arg("call")
        .arg("--config")
        .arg(&path)
        .args(["needs", "echo"])
        .env_remove(UNSET);
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("needs")
            && r.stderr
                .contains("is disabled: ${GANGWAY_TEST_SURELY_UNSET_VAR}"),
        "{}",
        r.stderr
    );
}
