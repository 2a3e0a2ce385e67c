//! The setup commands: `gangway check`, `gangway tools` and `gangway call`, against the
//! mock backend (good, broken, slow and missing ones) and against an unreachable or
//! missing Docker.

use super::{gangway, row, run, setup_with, Run};
use crate::util::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Runs `gangway SUBCOMMAND --config DIR/config.json ARGS...` with `config`.
fn setup(dir: &TempDir, config: &Value, subcommand: &str, args: &[&str]) -> Run {
    setup_with(dir, config, subcommand, args, |_| {})
}

/// The STATUS column of a row.
fn status(row: &str) -> &str {
    row.split_whitespace().nth(1).unwrap_or("")
}

/// Where `docker` is on this machine's PATH, if anywhere.
fn docker_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("docker"))
        .find(|p| p.is_file())
}

#[test]
fn check_reports_good_and_broken_backends_and_exits_1() {
    let dir = TempDir::new();
    let mut slow = mock("slow", &["--init-delay-ms", "5000"]);
    slow["startup_timeout"] = json!(0.5);
    let mut off = mock("off", &[]);
    off["disabled"] = json!(true);
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "broken": mock("broken", &["--fail-init"]),
        "crashy": mock("crashy", &["--exit-on-init", "3"]),
        "slow": slow,
        "off": off,
        "missing": { "command": "gangway-test-no-such-command" },
    }});
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("config.json is valid"), "{}", r.stdout);
    let header = r.stdout.lines().find(|l| l.starts_with("BACKEND")).unwrap();
    for col in ["STATUS", "START", "TOOLS", "ERROR"] {
        assert!(header.contains(col), "{header}");
    }

    let alpha = row(&r, "alpha");
    assert_eq!(status(alpha), "ok", "{alpha}");
    assert!(alpha.contains(" ms"), "start time in ms: {alpha}");
    assert_eq!(
        alpha.split_whitespace().nth(4),
        Some(MOCK_TOOLS.len().to_string().as_str()),
        "{alpha}"
    );

    let broken = row(&r, "broken");
    assert_eq!(status(broken), "failed", "{broken}");
    assert!(broken.contains("mock init failure"), "{broken}");

    let crashy = row(&r, "crashy");
    assert_eq!(status(crashy), "failed", "{crashy}");
    assert!(crashy.contains("exit status 3"), "{crashy}");
    assert!(
        crashy.contains("exiting during init"),
        "the backend's last stderr line: {crashy}"
    );

    let slow = row(&r, "slow");
    assert_eq!(status(slow), "failed", "{slow}");
    assert!(slow.contains("within 0.5 s"), "{slow}");
    assert!(
        slow.contains("startup_timeout"),
        "names the setting: {slow}"
    );

    let missing = row(&r, "missing");
    assert_eq!(status(missing), "failed", "{missing}");
    assert!(
        missing.contains("gangway-test-no-such-command") && missing.contains("not in PATH"),
        "{missing}"
    );

    assert_eq!(status(row(&r, "off")), "disabled");
    assert!(
        r.stdout.contains("1 ok, 4 failed, 1 disabled"),
        "{}",
        r.stdout
    );
}

#[test]
fn check_with_every_backend_good_exits_0_and_leaves_no_process() {
    let dir = TempDir::new();
    // gamma ignores both EOF and SIGTERM: only the end of the stop ladder ends it.
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "beta": mock("beta", &["--tools", "3"]),
        "gamma": mock("gamma", &["--ignore-eof", "--ignore-sigterm"]),
    }});
    let path = dir.write_config("config.json", &config);
    let mut cmd = gangway(&dir);
    cmd.args(["--log-level", "debug", "check", "--config"])
        .arg(&path);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(status(row(&r, "alpha")), "ok");
    let beta = row(&r, "beta");
    assert_eq!(
        beta.split_whitespace().nth(4),
        Some((MOCK_TOOLS.len() + 3).to_string().as_str()),
        "{beta}"
    );
    assert_eq!(status(row(&r, "gamma")), "ok");
    assert!(r.stdout.contains("3 ok, 0 failed"), "{}", r.stdout);

    // The debug log carries each backend's stderr, where the mock says its pid.
    let pids: Vec<i32> = r
        .stderr
        .lines()
        .filter_map(|l| l.split("started pid ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 3, "one start per backend:\n{}", r.stderr);
    for pid in pids {
        assert_pid_gone(pid, T);
    }
}

/// The line of `check`'s output that starts with `prefix`.
fn line_starting<'a>(r: &'a Run, prefix: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no {prefix:?} line in:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            )
        })
}

/// The tool names of a catalog entry.
fn entry_tools(entry: &Value) -> Vec<String> {
    entry["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array: {entry}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_writes_a_catalog_entry_for_every_backend_that_answered() {
    let dir = TempDir::new();
    let catalog = dir.join("state/catalog.json");
    let config = json!({
        "catalog": catalog.to_str().unwrap(),
        "backends": {
            "alpha": mock("alpha", &[]),
            "beta": mock("beta", &["--tools", "2"]),
            "broken": mock("broken", &["--exit-on-init", "3"]),
        },
    });
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        line_starting(&r, "catalog:"),
        format!("catalog: refreshed 2 entries in {}", catalog.display())
    );

    let text = std::fs::read_to_string(&catalog).expect("the catalog was written");
    let file: Value = serde_json::from_str(&text).expect("the catalog is JSON");
    assert_eq!(file["version"], json!(1), "{text}");
    let entries = file["entries"].as_object().expect("entries");
    let listed = entries
        .values()
        .filter(|e| e["tools"].as_array().is_some_and(|t| !t.is_empty()))
        .count();
    assert_eq!(listed, 2, "lists for each backend that answered: {text}");
    let by_backend = |name: &str| {
        entries
            .values()
            .find(|e| e["backend"] == json!(name))
            .unwrap_or_else(|| panic!("no entry for {name}: {text}"))
    };
    let mut want: Vec<String> = MOCK_TOOLS.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(entry_tools(by_backend("alpha")), want);
    want.extend(["t0".to_string(), "t1".to_string()]);
    want.sort();
    assert_eq!(entry_tools(by_backend("beta")), want);
    let alpha = by_backend("alpha");
    assert_eq!(
        alpha["init"]["serverInfo"]["name"],
        json!("alpha"),
        "{alpha}"
    );
    assert!(alpha["updated"].as_u64().is_some_and(|t| t > 0), "{alpha}");
    // The mock declares no prompts or resources.
    for key in ["prompts", "resources", "resourceTemplates"] {
        assert_eq!(alpha[key], json!([]), "{key}: {alpha}");
    }
    // A failed start is recorded as serving records it (so serving's lists do not wait
    // for it during its back-off), without lists.
    if let Some(broken) = entries.values().find(|e| e["backend"] == json!("broken")) {
        assert_eq!(broken["tools"], json!([]), "no lists: {text}");
        assert!(
            broken["failed"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("exit status 3")),
            "{text}"
        );
    }
    assert!(
        !dir.join("cache").exists(),
        "only the configured catalog is written"
    );
}

#[test]
fn check_without_a_catalog_says_so_and_an_unsaved_catalog_is_no_failure() {
    let dir = TempDir::new();
    let config = json!({ "catalog": false, "backends": { "alpha": mock("alpha", &[]) } });
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(line_starting(&r, "catalog:"), "catalog: off");
    assert!(
        !dir.join("cache").exists(),
        "nothing is written to the default place"
    );

    // A catalog below a regular file cannot be saved: said, but the check still passes.
    std::fs::write(dir.join("plain"), "").unwrap();
    let catalog = dir.join("plain/catalog.json");
    let config = json!({
        "catalog": catalog.to_str().unwrap(),
        "backends": { "alpha": mock("alpha", &[]) },
    });
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let line = line_starting(&r, "catalog:");
    assert!(
        line.starts_with(&format!("catalog: could not save {}: ", catalog.display())),
        "{line}"
    );
}

#[test]
fn check_counts_the_tools_a_filter_leaves() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["tools"] = json!({ "deny": ["crash", "garbage", "fail"] });
    let config = json!({
        "catalog": dir.join("catalog.json").to_str().unwrap(),
        "backends": { "alpha": alpha, "beta": mock("beta", &[]) },
    });
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let alpha = row(&r, "alpha");
    assert!(
        alpha.ends_with(&format!("{} (3 filtered)", MOCK_TOOLS.len() - 3)),
        "{alpha}"
    );
    let beta = row(&r, "beta");
    assert!(beta.ends_with(&MOCK_TOOLS.len().to_string()), "{beta}");
}

#[test]
fn check_reports_tool_name_collisions_without_failing() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["prefix"] = json!("x");
    let mut beta = mock("beta", &["--tool", "only_beta"]);
    beta["prefix"] = json!("x");
    beta["tools"] = json!({ "allow": ["echo", "only_beta"] });
    let config = json!({
        "catalog": dir.join("catalog.json").to_str().unwrap(),
        "expose": "tools",
        "backends": { "alpha": alpha, "beta": beta },
    });
    let r = setup(&dir, &config, "check", &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let names: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("names:"))
        .collect();
    assert_eq!(names.len(), 1, "only echo collides:\n{}", r.stdout);
    let line = names[0];
    assert!(
        line.starts_with("names: tool 'echo' of backend 'beta' is exposed as 'x__echo_"),
        "{line}"
    );
    assert!(
        line.contains("collision: 'x__echo' is already tool 'echo' of backend 'alpha'"),
        "{line}"
    );
    assert!(line.contains("prefix"), "says how to fix it: {line}");
    assert!(r.stdout.contains("2 ok, 0 failed"), "{}", r.stdout);
}

#[test]
fn tools_lists_every_enabled_backend_grouped() {
    let dir = TempDir::new();
    let mut off = mock("off", &[]);
    off["disabled"] = json!(true);
    let mut alpha = mock("alpha", &[]);
    alpha["expose"] = json!("tools");
    let config = json!({ "backends": {
        "alpha": alpha,
        "beta": mock("beta", &["--tools", "2"]),
        "off": off,
    }});
    let r = setup(&dir, &config, "tools", &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let alpha_at = r.stdout.find("alpha: 10 tools").expect(&r.stdout);
    let beta_at = r.stdout.find("beta: 12 tools").expect(&r.stdout);
    assert!(alpha_at < beta_at, "in config order:\n{}", r.stdout);
    let echo = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("alpha__echo"))
        .expect(&r.stdout);
    let cols: Vec<&str> = echo.split_whitespace().collect();
    assert_eq!(cols[1], "echo", "the plain name follows: {echo}");
    assert!(
        echo.contains("Returns text; with structured=true also as structuredContent"),
        "{echo}"
    );
    // beta is in meta mode (the default): its tools are reached through use_tool only.
    let t1 = r
        .stdout
        .lines()
        .find(|l| l.contains(" t1 "))
        .expect(&r.stdout);
    assert!(t1.starts_with("  (via use_tool)  t1 "), "{t1}");
    assert!(!r.stdout.contains("beta__"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("off"),
        "disabled backends are not listed"
    );

    // One backend.
    let r = setup(&dir, &config, "tools", &["beta"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("beta: 12 tools\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("alpha"), "{}", r.stdout);
}

#[test]
fn tools_of_an_unknown_backend_exits_2_listing_the_known_ones() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "beta": mock("beta", &[]),
    }});
    let r = setup(&dir, &config, "tools", &["gamma"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("\"gamma\""), "{}", r.stderr);
    assert!(r.stderr.contains("alpha, beta"), "{}", r.stderr);
    assert!(
        r.stderr.contains("config.json"),
        "names the file: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // A gangway tool name in place of a backend gets a pointer to the backend.
    let r = setup(&dir, &config, "tools", &["alpha__echo"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("give the backend as alpha"),
        "{}",
        r.stderr
    );
}

#[test]
fn tools_with_a_broken_backend_lists_the_rest_and_exits_1() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "broken": mock("broken", &["--exit-on-init", "4"]),
    }});
    let r = setup(&dir, &config, "tools", &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("alpha: 10 tools"), "{}", r.stdout);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("backend broken"))
        .expect(&r.stderr);
    assert!(line.contains("exit status 4"), "{line}");
    assert!(line.contains("config.json"), "names the file: {line}");
}

#[test]
fn call_prints_the_text_result() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let r = setup(
        &dir,
        &config,
        "call",
        &["alpha", "echo", r#"{"text": "hello"}"#],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "hello\n");

    // A request from the backend to the client is answered: ping with an empty result.
    let r = setup(
        &dir,
        &config,
        "call",
        &["alpha", "ask", r#"{"method": "ping"}"#],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "{}");
}

#[test]
fn call_of_a_failing_tool_exits_1() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let r = setup(&dir, &config, "call", &["alpha", "fail"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(r.stdout, "mock failure\n", "the result is still shown");
    assert!(r.stderr.contains("isError"), "{}", r.stderr);

    // A backend that dies during the call.
    let r = setup(&dir, &config, "call", &["alpha", "crash", r#"{"code": 5}"#]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("exit status 5"), "{}", r.stderr);
    assert!(r.stderr.contains("crashing on request"), "{}", r.stderr);
}

#[test]
fn call_with_bad_json_args_exits_2_without_starting_the_backend() {
    let dir = TempDir::new();
    let record = dir.join("record.jsonl");
    let config = json!({ "backends": { "alpha": recording_mock("alpha", &record, &[]) } });
    let r = setup(&dir, &config, "call", &["alpha", "echo", "{text: hi}"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
    assert!(r.stderr.contains("line 1 column 2"), "where: {}", r.stderr);

    let r = setup(&dir, &config, "call", &["alpha", "echo", r#"["hi"]"#]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("must be a JSON object, not an array"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(!record.exists(), "the backend was started");
}

#[test]
fn call_of_an_unknown_tool_or_backend_names_the_choices() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let r = setup(&dir, &config, "call", &["alpha", "nope"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("no tool \"nope\""), "{}", r.stderr);
    // Sorted by name, as the gateway keeps a backend's list (and `gangway tools` shows it).
    assert!(
        r.stderr.contains("its tools: ask, crash, echo, env, fail"),
        "lists the tools: {}",
        r.stderr
    );

    let r = setup(&dir, &config, "call", &["alpha", "alpha__echo"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("`echo`"), "{}", r.stderr);

    let r = setup(&dir, &config, "call", &["beta", "echo"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("known backends: alpha"), "{}", r.stderr);
}

#[test]
fn unreachable_docker_daemon_is_reported_with_the_socket_and_a_fix() {
    if docker_on_path().is_none() {
        let why = "the docker CLI is not on PATH";
        if std::env::var_os("CI").is_some() {
            panic!("{why}; CI must provide it");
        }
        eprintln!(
            "skipping unreachable_docker_daemon_is_reported_with_the_socket_and_a_fix: {why}"
        );
        return;
    }
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "box": { "command": "docker", "args": ["run", "-i", "--rm", "gangway-test-never-pulled:none"] },
    }});
    let sock = "unix:///nonexistent/docker.sock";
    let r = setup_with(&dir, &config, "check", &[], |c| {
        c.env("DOCKER_HOST", sock);
    });
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let docker = r
        .stdout
        .lines()
        .find(|l| l.starts_with("docker: FAILED"))
        .expect(&r.stdout);
    assert!(docker.contains(sock), "the socket in use: {docker}");
    assert!(docker.contains("box"), "which backends need it: {docker}");
    assert!(
        r.stdout.contains("sudo systemctl start docker"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("-v /var/run/docker.sock:/var/run/docker.sock"),
        "{}",
        r.stdout
    );
    assert_eq!(status(row(&r, "box")), "skipped");
    assert_eq!(
        status(row(&r, "alpha")),
        "ok",
        "the others are still checked"
    );

    // `call` says the same on stderr.
    let r = setup_with(&dir, &config, "call", &["box", "echo"], |c| {
        c.env("DOCKER_HOST", sock);
    });
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains(sock), "{}", r.stderr);
}

#[test]
fn missing_docker_cli_is_reported() {
    let dir = TempDir::new();
    let config = json!({ "backends": {
        "alpha": mock("alpha", &[]),
        "box": { "command": "docker", "args": ["run", "-i", "--rm", "gangway-test-never-pulled:none"] },
    }});
    let r = setup_with(&dir, &config, "check", &[], |c| {
        c.env("PATH", "/nonexistent");
    });
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("the docker CLI \"docker\" is not installed or not in PATH"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("PATH=/nonexistent"), "{}", r.stdout);
    assert!(r.stdout.contains("absolute path"), "the fix: {}", r.stdout);
    assert_eq!(status(row(&r, "box")), "skipped");
    assert_eq!(status(row(&r, "alpha")), "ok");
}

#[test]
fn usage_errors_exit_2_and_the_top_level_config_flag_reaches_commands() {
    let dir = TempDir::new();
    let config = json!({ "backends": { "alpha": mock("alpha", &[]) } });
    let r = setup(&dir, &config, "call", &["alpha"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("tool"),
        "names what is missing: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // `gangway --config PATH tools` works as well as `gangway tools --config PATH`.
    let path = dir.write_config("top.json", &config);
    let mut cmd = gangway(&dir);
    cmd.arg("--config").arg(&path).args(["tools", "alpha"]);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("alpha: 10 tools\n"), "{}", r.stdout);

    // Without any config: the same message and code as the gateway itself.
    let empty = TempDir::new();
    let mut cmd = gangway(&empty);
    cmd.arg("check");
    let r = run(cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("config.json"), "{}", r.stderr);
}

#[test]
fn ctrl_c_stops_every_backend_a_check_started_and_exits_130() {
    let dir = TempDir::new();
    // slow is still starting when Ctrl-C comes, and ignores SIGTERM: only the end of the
    // stop ladder ends it.
    let mut slow = mock("slow", &["--init-delay-ms", "30000", "--ignore-sigterm"]);
    slow["startup_timeout"] = json!(60);
    let config = json!({ "backends": { "alpha": mock("alpha", &[]), "slow": slow } });
    let path = dir.write_config("config.json", &config);
    let mut cmd = gangway(&dir);
    cmd.args(["--log-level", "debug", "check", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut gw = Gangway::spawn(cmd);
    let pid_of = |line: String| -> i32 {
        let pid = line.split("started pid ").nth(1).unwrap_or_default();
        pid.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid in {line:?}"))
    };
    let slow_pid = pid_of(gw.wait_stderr("mock slow started pid ", T));
    let alpha_pid = pid_of(gw.wait_stderr("mock alpha started pid ", T));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT to gangway");
    let status = gw.wait_exit(T);
    if status.and_then(|s| s.code()) != Some(130) {
        gw.fail(&format!("expected exit code 130, got {status:?}"));
    }
    gw.wait_stderr("gangway: interrupted; every backend was stopped", T);
    assert_pid_gone(slow_pid, T);
    assert_pid_gone(alpha_pid, T);
}
