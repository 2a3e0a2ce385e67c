//! Running as a systemd service: the notifications `gangway serve` sends on
//! `$NOTIFY_SOCKET` (READY, WATCHDOG, STOPPING), the unit `install-service` renders (as
//! `systemd-analyze verify` judges it), installing and removing it, and `--log-format json`.

use super::{run, Run};
use crate::util::*;
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    /// Every datagram received so far, for failure messages.
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits up to `T` for a datagram for which `pred` holds; returns it.
    fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + T;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} on NOTIFY_SOCKET within {T:?}; received: {:?}",
                self.seen
            );
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!("reading the notify socket: {e}"),
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(text.clone());
            if pred(&text) {
                return text;
            }
        }
    }
}

/// Opens an MCP session on `gangway serve` at `addr`; returns its id.
fn open_session(addr: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "service-test", "version": "1"}}});
    let (status, head, body) = http_request(addr, "POST", &[], &init.to_string());
    assert_eq!(status, 200, "{head}{body}");
    let sid = session_id_in(&head);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (status, _, _) = http_request(addr, "POST", &[("Mcp-Session-Id", &sid)], note);
    assert_eq!(status, 202);
    sid
}

/// Calls `tool` with `args` in session `sid`; returns the text of its result.
fn call(addr: &str, sid: &str, tool: &str, args: Value) -> String {
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let (status, _, body) =
        http_request(addr, "POST", &[("Mcp-Session-Id", sid)], &call.to_string());
    assert_eq!(status, 200, "{body}");
    ok_text(&serde_json::from_str(&body).expect("a JSON answer"))
}

fn sigterm(gw: &Gangway) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal gangway");
}

#[test]
fn serve_tells_systemd_ready_watchdog_and_stopping_and_backends_never_see_its_socket() {
    let dir = TempDir::new();
    let path = dir.join("notify");
    let mut notify = NotifySocket::bind(&path);
    let config = json!({"expose": "tools", "backends": {"alpha": mock("alpha", &[])}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env("GW_TEST_PASSED_ON", "yes");
    let gw = Gangway::spawn(cmd);

    let ready = notify.wait("READY=1", |m| m.starts_with("READY=1\n"));
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving on http://"))
        .unwrap_or_else(|| panic!("READY names the URL: {ready:?}"));
    let addr = status.trim_end_matches("/mcp");
    // Ready means listening: a client connects at once.
    let sid = open_session(addr);

    notify.wait("WATCHDOG=1 (WATCHDOG_USEC=200000)", |m| m == "WATCHDOG=1");

    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert_eq!(
            call(addr, &sid, "alpha__env", json!({"name": var})),
            "<unset>",
            "a backend must not notify systemd in gangway's name ({var})"
        );
    }
    assert_eq!(
        call(
            addr,
            &sid,
            "alpha__env",
            json!({"name": "GW_TEST_PASSED_ON"})
        ),
        "yes",
        "the rest of the environment reaches backends"
    );

    sigterm(&gw);
    notify.wait("STOPPING=1 after SIGTERM", |m| m.starts_with("STOPPING=1"));
    let mut gw = gw;
    assert!(
        gw.wait_exit(T).is_some_and(|s| s.success()),
        "SIGTERM ends serve cleanly"
    );
}

/// `gangway install-service ARGS --dry-run`, with the user's config folder in `dir`.
fn dry_run(dir: &TempDir, args: &[&str]) -> Run {
    let mut cmd = Command::new(gangway_bin());
    cmd.arg("install-service")
        .args(args)
        .arg("--dry-run")
        .env("XDG_CONFIG_HOME", dir.join("xdg"));
    run(cmd)
}

#[test]
fn systemd_analyze_verify_passes_on_the_rendered_units() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is not installed; .ci/run installs Debian's systemd package for it"
        );
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = TempDir::new();
    let config = dir.write_config("config.json", &json!({"backends": {}}));
    let config = config.to_str().expect("utf-8");
    for scope in ["--user", "--system"] {
        let r = dry_run(
            &dir,
            &[scope, "--config", config, "--listen", "127.0.0.1:8123"],
        );
        r.assert_code(0);
        let exec = format!(
            "\nExecStart={} serve --config {config} --listen 127.0.0.1:8123\n",
            gangway_bin().display()
        );
        assert!(r.stdout.contains(&exec), "{scope}: {}", r.stdout);
        assert!(r.stdout.contains("\nType=notify\n"), "{}", r.stdout);
        assert!(r.stdout.contains("\nWatchdogSec="), "{}", r.stdout);
        assert!(
            !dir.join("xdg").exists(),
            "a dry run writes nothing: {}",
            r.stderr
        );
        let unit = dir.join("gangway.service");
        std::fs::write(&unit, &r.stdout).expect("write the unit");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("run systemd-analyze");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{scope}: {said}\n{}", r.stdout);
        // Unknown or misplaced keys are only warnings; they name the file.
        assert!(
            !said.contains("gangway.service"),
            "{scope}: systemd-analyze has remarks:\n{said}"
        );
    }
}

#[test]
fn install_service_writes_the_user_unit_and_uninstall_service_removes_it() {
    let dir = TempDir::new();
    let no_tools = dir.join("bin");
    std::fs::create_dir_all(&no_tools).expect("mkdir");
    let service = |args: &[&str]| {
        let mut cmd = Command::new(gangway_bin());
        cmd.args(args)
            .env("XDG_CONFIG_HOME", dir.join("xdg"))
            // No systemctl here: the commands must say so and still do their part.
            .env("PATH", &no_tools);
        run(cmd)
    };
    let unit = dir.join("xdg/systemd/user/gangway.service");

    let r = service(&["install-service", "--config", "/etc/gw.json"]);
    r.assert_code(0);
    assert!(r.stdout.contains(unit.to_str().unwrap()), "{}", r.stdout);
    assert!(
        r.stderr.contains("systemctl is not installed"),
        "{}",
        r.stderr
    );
    let written = std::fs::read_to_string(&unit).expect("the unit was written");
    assert_eq!(
        written,
        dry_run(&dir, &["--config", "/etc/gw.json"]).stdout,
        "the file is what --dry-run prints"
    );

    let r = service(&["install-service", "--config", "/etc/gw.json", "--enable"]);
    r.assert_code(1);
    assert!(r.stderr.contains("cannot enable"), "{}", r.stderr);

    let r = service(&["uninstall-service"]);
    r.assert_code(0);
    assert!(!unit.exists(), "removed: {}", r.stdout);
    let r = service(&["uninstall-service", "--user"]);
    r.assert_code(0);
    assert!(r.stdout.contains("nothing to remove"), "{}", r.stdout);

    let r = service(&["install-service", "--user", "--system"]);
    r.assert_code(2);
    assert!(r.stderr.contains("not both"), "{}", r.stderr);
    let r = service(&["install-service", "--listen", "localhost"]);
    r.assert_code(2);
    assert!(!unit.exists(), "nothing written on a usage error");
}

/// Every stderr line of `gw` parsed as JSON; fails on a line that is not a JSON object
/// with the fields every record has.
fn json_lines(gw: &Gangway) -> Vec<Value> {
    gw.stderr()
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"));
            for field in ["time", "level", "target", "message"] {
                assert!(v[field].is_string(), "no {field} in {line}");
            }
            let time = v["time"].as_str().unwrap_or("");
            assert!(
                time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
                "RFC 3339 UTC with milliseconds: {line}"
            );
            v
        })
        .collect()
}

#[test]
fn log_format_json_writes_one_object_per_line_naming_backend_and_session() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["env"] = json!({"GW_TEST_SECRET": "s3cret-never-logged"});
    let config = json!({"expose": "tools", "backends": {"alpha": alpha}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"]);
    let gw = Gangway::spawn(cmd);
    let line = gw.wait_stderr("/mcp", T);
    let start: Value = serde_json::from_str(&line).expect("JSON");
    let message = start["message"].as_str().expect("a message");
    let at = message.find("http://").expect("the URL") + "http://".len();
    let addr = message[at..].split("/mcp").next().unwrap_or("").to_string();

    let sid = open_session(&addr);
    call(
        &addr,
        &sid,
        "alpha__stderr",
        json!({"text": "hello from alpha, s3cret-never-logged"}),
    );
    gw.wait_stderr("hello from alpha", T);
    let lines = json_lines(&gw);
    let opened = lines
        .iter()
        .find(|v| v["message"].as_str().is_some_and(|m| m.contains("opened")))
        .expect("a session-opened line");
    assert_eq!(opened["session"], json!(&sid[..8]), "{opened}");
    assert_eq!(opened["level"], "info");
    let said = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("hello from alpha"))
        })
        .expect("the backend's stderr line");
    assert_eq!(said["backend"], "alpha", "{said}");
    assert_eq!(said["target"], "gangway::backend", "{said}");
    for v in &lines {
        assert!(
            !v.to_string().contains("s3cret-never-logged"),
            "an env value was logged: {v}"
        );
    }
}

#[test]
fn log_format_is_a_top_level_flag_too_and_refuses_unknown_formats() {
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "backends": {"alpha": mock("alpha", &[])}});
    let mut cmd = gangway_command(&dir, &config);
    cmd.args(["--log-format", "json"]);
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    ok_text(&gw.call_tool("alpha__stderr", json!({"text": "stdio says hi"})));
    gw.wait_stderr("stdio says hi", T);
    gw.finish();
    let lines = json_lines(&gw);
    assert!(lines.iter().any(|v| v["backend"] == "alpha"), "{lines:?}");

    // Why gangway could not start reaches a log collector as JSON too.
    let mut cmd = Command::new(gangway_bin());
    cmd.args(["--log-format", "json", "--config"])
        .arg(dir.join("missing.json"));
    let r = run(cmd);
    r.assert_code(2);
    let v: Value = serde_json::from_str(r.stderr.trim_end())
        .unwrap_or_else(|e| panic!("one JSON line ({e}): {}", r.stderr));
    assert_eq!(v["level"], "error", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("no config file")),
        "{v}"
    );

    let mut cmd = Command::new(gangway_bin());
    cmd.args(["--log-format", "yaml", "--version"]);
    let r = run(cmd);
    r.assert_code(2);
    assert!(
        r.stderr.contains("text") && r.stderr.contains("json"),
        "{}",
        r.stderr
    );
}
