//! More than one machine: two `gangway serve` instances behind HAProxy, run with the shipped
//! `dist/haproxy/haproxy.cfg` as it is (its addresses come from the environment), and the MCP
//! Python SDK as the clients (`tests/scale/sessions.py`).
//!
//! Needs `haproxy` (Debian's package) and the SDK in `.peers/py`, both installed by `.ci/run`.
//! Without them the test is skipped with a note on stderr, except under CI, where it fails.

use crate::util::{child_pids, http_request_to, mock, Gangway, Served, TempDir, T};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sessions the script opens at once.
const SESSIONS: usize = 20;
/// 2026-07-28 clients the modern script runs, one after the other (3 calls each).
const MODERN_CLIENTS: usize = 8;
/// The script bounds itself (60 s); this only catches a hung interpreter.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `program args` runs and exits 0.
fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the test needs from outside: HAProxy's binary (Debian puts it in /usr/sbin, which
/// is not on every PATH) and the SDK's directory; None (after saying why) when the test is
/// to be skipped. Under CI (`CI` set) a missing piece fails the test: `.ci/run` installs them.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let haproxy = [PathBuf::from("haproxy"), PathBuf::from("/usr/sbin/haproxy")]
        .into_iter()
        .find(|p| runs(p, &["-v"]));
    let sdk = root().join(".peers").join("py");
    let mut missing = Vec::new();
    if haproxy.is_none() {
        missing.push("`haproxy` (Debian's package)".to_string());
    }
    if !runs(Path::new("python3"), &["--version"]) {
        missing.push("`python3` in PATH".to_string());
    }
    if !sdk.join("mcp").exists() {
        missing.push(format!(
            "the MCP Python SDK ({})",
            sdk.join("mcp").display()
        ));
    }
    if missing.is_empty() {
        return haproxy.map(|h| (h, sdk));
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("the HAProxy test needs {what}; `.ci/run` installs them (run it, or see its output for why it did not)");
    }
    eprintln!("skipped: the HAProxy test needs {what}; run `.ci/run` to install them");
    None
}

/// One `gangway serve` on a free loopback port, fronting the mock as backend `m`.
struct Instance {
    gw: Gangway,
    addr: String,
    _dir: TempDir,
}

impl Instance {
    fn start() -> Instance {
        let dir = TempDir::new();
        let config = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
        let Served { gw, addr } = Served::start(&dir, &config, &[]);
        Instance {
            gw,
            addr,
            _dir: dir,
        }
    }

    /// The mock's pid: gangway's one child once a call has started it.
    fn mock_pid(&self) -> i64 {
        let children = child_pids(self.gw.pid());
        assert_eq!(
            children.len(),
            1,
            "one backend process under gangway {}",
            self.gw.pid()
        );
        i64::from(children[0])
    }

    /// The short ids (first 8 characters) of the sessions this instance logged as opened.
    fn opened(&self) -> Vec<String> {
        self.gw
            .stderr()
            .iter()
            .filter_map(|l| {
                let rest = l.split("HTTP: session ").nth(1)?;
                let (id, tail) = rest.split_once(' ')?;
                tail.starts_with("opened").then(|| id.to_string())
            })
            .collect()
    }

    fn stop(&mut self) {
        kill(Pid::from_raw(self.gw.pid()), Signal::SIGTERM).expect("signal gangway");
        assert!(
            self.gw.wait_exit(T).is_some_and(|s| s.success()),
            "SIGTERM ends serve cleanly"
        );
    }
}

/// HAProxy in the foreground (`-db`) in a process group of its own, killed on drop. Its
/// stderr (warnings and the request log) is collected by the same harness as gangway's.
struct Haproxy(Gangway);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(-self.0.pid()), Signal::SIGKILL);
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

fn haproxy_command(bin: &Path, args: &[&str], gangways: [&str; 2], listen: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("-f")
        .arg(root().join("dist/haproxy/haproxy.cfg"))
        .env("GANGWAY_1", gangways[0])
        .env("GANGWAY_2", gangways[1])
        .env("HAPROXY_LISTEN", listen)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// HAProxy running the shipped config in front of `gangways`, once it answers `/readyz`;
/// with the address it listens on. The config is checked with `haproxy -c` first.
fn balancer(bin: &Path, gangways: [&str; 2]) -> (Haproxy, String) {
    let listen = format!("127.0.0.1:{}", free_port());

    let check = haproxy_command(bin, &["-c"], gangways, &listen)
        .output()
        .expect("run haproxy -c");
    assert!(
        check.status.success(),
        "haproxy -c rejects dist/haproxy/haproxy.cfg:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = haproxy_command(bin, &["-db"], gangways, &listen);
    cmd.process_group(0);
    let haproxy = Haproxy(Gangway::spawn(cmd));
    // Up once it answers; each probe is a fresh connection.
    let deadline = Instant::now() + T;
    while TcpStream::connect(&listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "HAProxy does not listen on {listen} within {T:?}: {:?}",
            haproxy.0.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, _, body) = http_request_to(&listen, "GET", "/readyz", &[], "");
    assert_eq!(
        (status, body.trim()),
        (200, "ready"),
        "/readyz through HAProxy"
    );
    (haproxy, listen)
}

/// Two instances behind HAProxy running the shipped config, and the SDK to drive them.
struct Stage {
    one: Instance,
    two: Instance,
    haproxy: Haproxy,
    /// Where HAProxy listens.
    listen: String,
    /// The SDK's directory (`PYTHONPATH`).
    sdk: PathBuf,
}

impl Stage {
    /// The stage, once HAProxy answers; `None` (after saying why) when the test is to be
    /// skipped (see [`tools`]).
    fn set() -> Option<Stage> {
        let (haproxy_bin, sdk) = tools()?;
        let one = Instance::start();
        let two = Instance::start();
        let (haproxy, listen) = balancer(&haproxy_bin, [&one.addr, &two.addr]);
        Some(Stage {
            one,
            two,
            haproxy,
            listen,
            sdk,
        })
    }
}

/// Runs the SDK script `tests/scale/NAME` against HAProxy at `listen` with `count` clients;
/// its JSON lines are read as they come, and it reads lines from the test.
fn sdk_script(sdk: &Path, name: &str, listen: &str, count: usize) -> Gangway {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/scale").join(name))
        .arg(format!("http://{listen}/mcp"))
        .arg(count.to_string())
        .env("PYTHONPATH", sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Gangway::spawn(cmd)
}

/// The script's next report; when it says it failed, the test fails with it, saying
/// `what` failed, with HAProxy's log.
fn report_of(script: &mut Gangway, haproxy: &Haproxy, what: &str) -> Value {
    let report = script.recv(SCRIPT_DEADLINE);
    if report.get("fail").is_some() {
        script.fail(&format!(
            "{what} failed: {report}\n--- HAProxy:\n{}",
            haproxy.0.stderr().join("\n")
        ));
    }
    report
}

/// A session id as gangway's log shows it (its first 8 characters).
fn short(sid: &Value) -> String {
    sid.as_str()
        .expect("a session id")
        .chars()
        .take(8)
        .collect()
}

#[test]
fn sessions_stick_to_their_instance_behind_haproxy_and_move_on_when_it_stops() {
    let started = Instant::now();
    let Some(Stage {
        mut one,
        mut two,
        haproxy,
        listen,
        sdk,
    }) = Stage::set()
    else {
        return;
    };

    // Many SDK sessions at once, each with a few calls.
    let mut script = sdk_script(&sdk, "sessions.py", &listen, SESSIONS);
    let report = report_of(&mut script, &haproxy, "the SDK sessions through HAProxy");
    let opened = report["opened"].as_array().expect("the opened sessions");
    assert_eq!(opened.len(), SESSIONS, "{report}");
    let sids: HashSet<&str> = opened.iter().filter_map(|s| s["sid"].as_str()).collect();
    assert_eq!(sids.len(), SESSIONS, "distinct session ids: {report}");

    // Both instances served sessions, and each session stayed where it was opened: the
    // instance that logged its id is the one whose backend answered all its calls.
    let (pid_one, pid_two) = (one.mock_pid(), two.mock_pid());
    let (logged_one, logged_two) = (one.opened(), two.opened());
    let on_one: Vec<&Value> = opened.iter().filter(|s| s["pid"] == pid_one).collect();
    let on_two = opened.iter().filter(|s| s["pid"] == pid_two).count();
    assert!(
        !on_one.is_empty() && on_two > 0 && on_one.len() + on_two == SESSIONS,
        "sessions on instance 1 (mock {pid_one}): {}, on instance 2 (mock {pid_two}): {on_two}: {report}",
        on_one.len()
    );
    for s in opened {
        let (own, other) = if s["pid"] == pid_one {
            (&logged_one, &logged_two)
        } else {
            (&logged_two, &logged_one)
        };
        let id = short(&s["sid"]);
        assert!(
            own.contains(&id) && !other.contains(&id),
            "session {id} was answered by mock {} but opened on the other instance",
            s["pid"]
        );
    }
    assert_eq!(
        (logged_one.len(), logged_two.len()),
        (on_one.len(), on_two),
        "no session was opened but the script's"
    );

    // Instance 1 stops; HAProxy's health check marks it down.
    one.stop();
    haproxy.0.wait_stderr("Server gangways/gangway1 is DOWN", T);
    let stopped_at = Instant::now();
    script.send_raw("continue");
    let report = report_of(
        &mut script,
        &haproxy,
        "the SDK sessions through HAProxy, after the stop,",
    );
    let moved_on = stopped_at.elapsed();
    let after = report["after"]
        .as_array()
        .expect("the sessions after the stop");
    assert_eq!(after.len(), SESSIONS, "{report}");
    let logged_two = two.opened();
    for (before, now) in opened.iter().zip(after) {
        assert_eq!(before["session"], now["session"]);
        if before["pid"] == pid_two {
            assert_eq!(
                now,
                &json!({"session": before["session"], "pid": pid_two}),
                "a session of instance 2 goes on as before"
            );
            continue;
        }
        // A session of instance 1: 404 "session not found", then a new session on instance 2.
        let error = now["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("session not found"),
            "a session of the stopped instance: {now}"
        );
        assert!(
            now["statuses"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(["POST", 404]))),
            "its call was answered 404: {now}"
        );
        let reopened = &now["reopened"];
        assert_eq!(
            reopened["pid"], pid_two,
            "the new session is served by instance 2: {now}"
        );
        assert!(
            logged_two.contains(&short(&reopened["sid"])),
            "instance 2 opened the new session: {now}"
        );
    }
    assert!(
        script.wait_exit(T).is_some_and(|s| s.success()),
        "the script ends cleanly: {:?}",
        script.stderr()
    );
    two.stop();
    eprintln!(
        "{SESSIONS} sessions through HAProxy ({} on instance 1, {on_two} on instance 2); after the stop, {:.1?} to move on; {:.1?} in all",
        on_one.len(),
        moved_on,
        started.elapsed()
    );
}

#[test]
fn the_readmes_haproxy_lines_match_the_shipped_config() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read README.md");
    let block = readme
        .split("### HAProxy\n")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's HAProxy block");
    let cfg = std::fs::read_to_string(root().join("dist/haproxy/haproxy.cfg"))
        .expect("read dist/haproxy/haproxy.cfg");
    assert!(
        block.contains("haproxy -db -f dist/haproxy/haproxy.cfg"),
        "{block}"
    );
    // "(those above are the file's defaults)": each VAR=ADDR is the file's "${VAR-ADDR}", and
    // each instance the block starts listens where the file looks for it.
    let mut vars = 0;
    for word in block.split_whitespace() {
        if let Some((var, addr)) = word.split_once('=') {
            assert!(
                cfg.contains(&format!("\"${{{var}-{addr}}}\"")),
                "the config has no \"${{{var}-{addr}}}\""
            );
            if var.starts_with("GANGWAY_") {
                assert!(
                    block.contains(&format!("--listen {addr} &")),
                    "no instance listens on {addr}: {block}"
                );
            }
            vars += 1;
        }
    }
    assert_eq!(vars, 3, "GANGWAY_1, GANGWAY_2 and HAPROXY_LISTEN: {block}");
    // The config tells 2026-07-28 requests apart by the handshake revisions gangway
    // serves: its list must be gangway's.
    let acl = cfg
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("acl handshake req.hdr(mcp-protocol-version) -m str ")
        })
        .expect("the config's handshake ACL");
    let listed: Vec<&str> = acl.split_whitespace().collect();
    assert_eq!(
        listed,
        gangway::http::VERSIONS,
        "dist/haproxy/haproxy.cfg's handshake revisions"
    );
}

/// Clients pinned to revision 2026-07-28 through the shipped config: their requests carry
/// no session, and every call here is completed by a retry (the backend asks the client
/// during it), which HAProxy must send to the instance that holds the call. With plain
/// round robin, about every other retry would reach the wrong instance and fail.
#[test]
fn a_2026_07_28_retry_reaches_the_instance_holding_its_call_behind_haproxy() {
    let started = Instant::now();
    let Some(Stage {
        mut one,
        mut two,
        haproxy,
        listen,
        sdk,
    }) = Stage::set()
    else {
        return;
    };
    let mut script = sdk_script(&sdk, "modern.py", &listen, MODERN_CLIENTS);
    let report = report_of(
        &mut script,
        &haproxy,
        "the 2026-07-28 clients through HAProxy",
    );
    assert_eq!(report["ok"], MODERN_CLIENTS * 3, "{report}");
    assert!(
        script.wait_exit(T).is_some_and(|s| s.success()),
        "the script ends cleanly: {:?}",
        script.stderr()
    );
    // No handshake session was opened for them on either instance.
    assert!(one.opened().is_empty() && two.opened().is_empty());
    one.stop();
    two.stop();
    eprintln!(
        "{MODERN_CLIENTS} 2026-07-28 clients, {} calls each completed by a retry, through HAProxy in {:.1?}",
        3,
        started.elapsed()
    );
}
