//! `gangway serve` run as a service (issue 14), from the outside: `/healthz` and `/readyz`
//! for probes, `/metrics` read by the reference Prometheus parser (`prometheus_client`), the
//! status page driven in headless Chromium, and the controls behind its buttons.
//!
//! The parser and the DevTools client are Python packages that `.ci/run` installs into
//! `.peers/py-tools`, and Chromium is Debian's `chromium`. Without them the tests that need them
//! are skipped with a note on stderr, except under CI, where they fail.

use crate::util::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The Python tools of these tests, once they are known to be there.
struct Tools {
    root: PathBuf,
}

impl Tools {
    /// The tools, or None when the test should be skipped (see [`nothing_missing`]); with
    /// `chromium`, headless Chromium is needed too.
    fn find(chromium: bool) -> Option<Tools> {
        let tools = Tools {
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        };
        let mut missing = Vec::new();
        if !program_runs("python3") {
            missing.push("`python3` in PATH".to_string());
        } else {
            let mut check = Command::new("python3");
            check
                .args(["-c", "import prometheus_client, websocket"])
                .env("PYTHONPATH", tools.python_path());
            if !run_bounded(check, b"", T).success() {
                missing.push(format!(
                    "prometheus_client and websocket-client in {}",
                    tools.python_path().display()
                ));
            }
        }
        if chromium && !program_runs("chromium") {
            missing.push("`chromium` in PATH (Debian's package)".to_string());
        }
        nothing_missing("the service tests", &missing).then_some(tools)
    }

    fn python_path(&self) -> PathBuf {
        self.root.join(".peers").join("py-tools")
    }

    /// Runs `script` (in tests/gateway) with `args` and `input`, within `deadline`.
    fn python(&self, script: &str, args: &[&str], input: &str, deadline: Duration) -> Ran {
        let mut cmd = Command::new("python3");
        cmd.arg(self.root.join("tests").join("gateway").join(script))
            .args(args)
            .env("PYTHONPATH", self.python_path())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run_bounded(cmd, input.as_bytes(), deadline)
    }

    /// `/metrics` of `served`, read by prometheus_client's parser.
    fn metrics(&self, served: &Served) -> Metrics {
        let (status, head, text) = served.request_to("GET", "/metrics", &[], "");
        assert_eq!(status, 200, "{head}{text}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "not the text format's content type: {head}"
        );
        let ran = self.python("metrics_check.py", &[], &text, T);
        assert!(
            ran.success(),
            "prometheus_client refused /metrics: {}\n--- the text:\n{text}",
            ran.report()
        );
        let parsed: Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("metrics_check.py printed no JSON ({e}): {}", ran.stdout));
        Metrics {
            families: parsed["families"].as_array().expect("families").clone(),
            text,
        }
    }
}

/// What prometheus_client read from one `/metrics`.
struct Metrics {
    families: Vec<Value>,
    text: String,
}

impl Metrics {
    /// The type the parser gave the family `name` (a counter's family is named without
    /// its `_total`).
    fn kind(&self, name: &str) -> &str {
        self.families
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["type"].as_str())
            .unwrap_or_else(|| panic!("no family {name}:\n{}", self.text))
    }

    /// The value of the one sample `name` with (at least) `labels`; 0 when there is none
    /// (a counter not yet incremented is not exposed).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .families
            .iter()
            .flat_map(|f| f["samples"].as_array().expect("samples"))
            .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().expect("a number"))
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} samples:\n{}",
            found.len(),
            self.text
        );
        found.first().copied().unwrap_or(0.0)
    }

    /// The buckets of histogram `name` for `backend`, as (le, cumulative count).
    fn buckets(&self, name: &str, backend: &str) -> Vec<(String, f64)> {
        self.families
            .iter()
            .flat_map(|f| f["samples"].as_array().expect("samples"))
            .filter(|s| s["name"] == format!("{name}_bucket") && s["labels"]["backend"] == backend)
            .map(|s| {
                let le = s["labels"]["le"].as_str().expect("le").to_string();
                (le, s["value"].as_f64().expect("a number"))
            })
            .collect()
    }
}

#[test]
fn metrics_read_by_prometheus_client_move_as_calls_are_made() {
    let Some(tools) = Tools::find(false) else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools",
                        "backends": {"m": mock("m", &[]), "idle": mock("idle", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let calls = [
        ("backend", "m"),
        ("method", "tools/call"),
        ("outcome", "ok"),
    ];
    let latency = "gangway_request_duration_seconds";

    let before = tools.metrics(&served);
    assert_eq!(before.kind("gangway_requests"), "counter");
    assert_eq!(before.kind(latency), "histogram");
    assert_eq!(before.kind("gangway_backend_starts"), "counter");
    assert_eq!(before.kind("gangway_sessions"), "gauge");
    assert_eq!(before.value("gangway_sessions", &[]), 0.0);
    assert_eq!(
        before.value("gangway_backend_starts_total", &[("backend", "m")]),
        0.0
    );

    let sid = served.session();
    const CALLS: usize = 3;
    for i in 0..CALLS {
        let text = format!("call {i}");
        assert_eq!(
            served.call_with(&sid, "m__echo", json!({"text": text})),
            text
        );
    }
    let after = tools.metrics(&served);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        moved("gangway_requests_total", &calls),
        CALLS as f64,
        "tools/call answered ok:\n{}",
        after.text
    );
    let count = moved(&format!("{latency}_count"), &[("backend", "m")]);
    assert_eq!(
        count, CALLS as f64,
        "the latency histogram counts each call (and nothing else went to m):\n{}",
        after.text
    );
    let buckets = after.buckets(latency, "m");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets are cumulative: {buckets:?}"
    );
    assert_eq!(
        buckets.last(),
        Some(&(
            "+Inf".to_string(),
            after.value(&format!("{latency}_count"), &[("backend", "m")])
        )),
        "the +Inf bucket is the count"
    );
    assert!(after.value(&format!("{latency}_sum"), &[("backend", "m")]) > 0.0);
    assert_eq!(
        after.value("gangway_backend_starts_total", &[("backend", "m")]),
        1.0
    );
    assert_eq!(
        after.value("gangway_backend_starts_total", &[("backend", "idle")]),
        0.0,
        "a backend nobody called did not start"
    );
    assert_eq!(after.value("gangway_backend_up", &[("backend", "m")]), 1.0);
    assert_eq!(
        after.value("gangway_backend_running", &[("backend", "m")]),
        1.0
    );
    assert_eq!(after.value("gangway_sessions", &[]), 1.0, "the session");
    assert!(after.value("gangway_http_connections_open", &[]) >= 1.0);

    let (status, _, _) = served.request("DELETE", &[("Mcp-Session-Id", &sid)], "");
    assert_eq!(status, 200);
    let ended = tools.metrics(&served);
    assert_eq!(
        ended.value("gangway_sessions", &[]),
        0.0,
        "the session ended"
    );
    assert!(
        !ended.text.contains(&sid) && !ended.text.contains("call 1"),
        "no session ids or arguments in the metrics"
    );
}

/// Each family name once, as a parser sees them: prometheus_client (and OpenMetrics) name
/// a counter's family without its `_total`, so a counter `X_total` and a gauge `X` clash.
#[test]
fn metric_family_names_are_unique_for_a_parser() {
    let Some(tools) = Tools::find(false) else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let metrics = tools.metrics(&served);
    let mut names: Vec<&str> = metrics
        .families
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    names.sort_unstable();
    let twice: Vec<&str> = names
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(twice.is_empty(), "families named twice: {twice:?}");
}

#[test]
fn healthz_and_readyz_answer_without_the_token_and_nothing_else_does() {
    let dir = TempDir::new();
    let config = json!({"http": {"tokens": ["tok-probe"]}, "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let (status, head, body) = served.request_to("GET", "/healthz", &[], "");
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{head}");
    let (status, head, body) = served.request_to("GET", "/readyz", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, "ready\n"),
        "only a non-docker backend: {head}"
    );
    for path in ["/metrics", "/status.json", "/"] {
        let (status, head, _) = served.request_to("GET", path, &[], "");
        assert_eq!(status, 401, "{path} without the token: {head}");
        let bearer = [("Authorization", "Bearer tok-probe")];
        let (status, head, _) = served.request_to("GET", path, &bearer, "");
        assert_eq!(status, 200, "{path} with the token: {head}");
    }
}

/// A HEAD answer has a head only (RFC 9110, 9.3.2): a body after it is read by a client
/// on a kept-alive connection as the start of the next answer.
#[test]
fn probes_answer_head_without_a_body() {
    let dir = TempDir::new();
    let config = json!({"backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &config, &[]);
    for path in ["/healthz", "/readyz"] {
        let (status, head, body) = served.request_to("HEAD", path, &[], "");
        assert_eq!((status, body.as_str()), (200, ""), "HEAD {path}: {head}");
    }
}

#[test]
fn readyz_is_503_naming_the_docker_daemon_when_docker_fails() {
    let dir = TempDir::new();
    // A `docker` that fails as the real one does when its daemon is down.
    let bin = dir.join("bin");
    fake_program(
        &bin,
        "docker",
        "echo 'Cannot connect to the Docker daemon (the tests fake docker)' >&2\nexit 1\n",
    );
    let config = json!({"backends": {
        "boxed": {"command": "docker", "args": ["run", "-i", "--rm", "img"]},
        "m": mock("m", &[]),
    }});
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("PATH", path_with(&bin));
    let served = Served::spawn(cmd);
    // The first answer may say the check is still running: wait for its outcome.
    let mut answers = Vec::new();
    let settled = wait_for(T, || {
        let answer = served.request_to("GET", "/readyz", &[], "");
        let done = answer.2.contains("not reachable");
        answers.push(answer);
        done
    });
    assert!(settled, "readyz never named the failure: {answers:?}");
    for (status, head, body) in &answers {
        assert_eq!(*status, 503, "never ready while docker fails: {head}{body}");
        assert!(head.contains("Retry-After:"), "{head}");
        assert!(body.contains("Docker daemon"), "{body}");
    }
    let (status, _, _) = served.request_to("GET", "/healthz", &[], "");
    assert_eq!(status, 200, "alive all the same");
}

#[test]
fn readyz_is_503_while_shutting_down() {
    let dir = TempDir::new();
    // A backend that outlives its stdin and SIGTERM holds gangway's shutdown open for the
    // two grace periods (2 s each): /readyz is asked in that window.
    let config = json!({"backends": {"m": mock("m", &["--ignore-eof", "--ignore-sigterm"])}});
    let mut served = Served::start(&dir, &config, &[]);
    let (status, _, body) = served.request_to("POST", "/backends/m/start", &[], "");
    assert_eq!(status, 200, "{body}");
    served.gw.wait_stderr("backend 'm' ready", T);
    // A load balancer's kept-alive connection: the listener closes at SIGTERM, but this
    // connection is still answered while gangway drains.
    let mut probe = std::net::TcpStream::connect(&served.addr).expect("connect");
    probe.set_read_timeout(Some(T)).expect("timeout");
    let mut reader = std::io::BufReader::new(probe.try_clone().expect("clone"));
    let mut ask = || {
        use std::io::{Read, Write};
        probe
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("ask");
        let head = read_head(&mut reader);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a length");
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("the body");
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    assert!(ask().0.starts_with("HTTP/1.1 200"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(served.gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal gangway");
    served.gw.wait_stderr("termination signal received", T);
    let (head, body) = ask();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert_eq!(body, "not ready: gangway is shutting down\n");
    assert!(
        std::net::TcpStream::connect(&served.addr).is_err(),
        "new connections are refused"
    );
    assert!(
        served.gw.wait_exit(T).is_some_and(|s| s.success()),
        "SIGTERM ends serve cleanly"
    );
}

/// Waits until `/status.json` shows backend `name` in `state`; fails with what it showed.
fn wait_state(served: &Served, auth: &[(&str, &str)], name: &str, state: &str) {
    let mut seen = Vec::new();
    let reached = wait_for(T, || {
        let (_, _, body) = served.request_to("GET", "/status.json", auth, "");
        let status: Value = serde_json::from_str(&body).expect("status.json is JSON");
        let now = status["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["name"] == name))
            .map(|b| b["state"].clone())
            .unwrap_or_default();
        let done = now == state;
        seen.push(now);
        done
    });
    seen.dedup();
    assert!(reached, "{name} never showed {state:?}; it showed {seen:?}");
}

#[test]
fn the_controls_and_the_page_answer_as_specified() {
    let dir = TempDir::new();
    let mut own = mock("own", &[]);
    own["scope"] = json!("session");
    let config = json!({"http": {"tokens": ["tok-ctl"]},
                        "backends": {"m": mock("m", &[]), "own": own}});
    let served = Served::start(&dir, &config, &[]);
    let bearer = [("Authorization", "Bearer tok-ctl")];
    let (status, _, body) = served.request_to("POST", "/backends/own/start", &bearer, "");
    assert_eq!(
        status, 409,
        "a process per session is not started by hand: {body}"
    );
    let (status, _, body) = served.request_to("POST", "/backends/nope/start", &bearer, "");
    assert_eq!(status, 404, "an unknown backend: {body}");
    assert!(body.contains("nope"), "{body}");
    let (status, head, _) = served.request_to("GET", "/backends/m/start", &bearer, "");
    assert_eq!(status, 405, "GET on a control: {head}");
    assert!(head.contains("Allow: POST"), "{head}");
    let (status, _, _) = served.request_to("POST", "/backends/m/frobnicate", &bearer, "");
    assert_eq!(status, 404, "an unknown action");
    let (status, _, _) = served.request_to("POST", "/backends/m/start", &[], "");
    assert_eq!(status, 401, "the controls need the token");

    let (status, head, _) = served.request_to("GET", "/", &[], "");
    assert_eq!(status, 401, "{head}");
    assert!(
        head.contains("WWW-Authenticate: Basic realm="),
        "a browser is asked for the token: {head}"
    );
    // base64("any:tok-ctl"): any user name, the token as the password.
    let basic = [("Authorization", "Basic YW55OnRvay1jdGw=")];
    let (status, head, page) = served.request_to("GET", "/", &basic, "");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(
        page.contains(r#"<tr data-backend="m">"#) && page.contains(r#"data-state="stopped""#),
        "{page}"
    );
    // base64("any:wrong")
    let wrong = [("Authorization", "Basic YW55Ondyb25n")];
    assert_eq!(served.request_to("GET", "/", &wrong, "").0, 401);

    let (status, _, body) = served.request_to("POST", "/backends/m/start", &bearer, "");
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    wait_state(&served, &bearer, "m", "ready");
    let (status, _, _) = served.request_to("POST", "/backends/m/restart", &bearer, "");
    assert_eq!(status, 200);
    served.gw.wait_stderr("restarting backend 'm' as asked", T);
    wait_state(&served, &bearer, "m", "ready");
    let (status, _, _) = served.request_to("POST", "/backends/m/stop", &bearer, "");
    assert_eq!(status, 200);
    wait_state(&served, &bearer, "m", "stopped");
}

/// The page shows every backend, a disabled one too (state `disabled`), so a person sees
/// why a backend is missing; its start button answers 409, not 404.
#[test]
fn a_disabled_backend_shows_as_disabled() {
    let dir = TempDir::new();
    let mut off = mock("off", &[]);
    off["disabled"] = json!(true);
    let mut unset = mock("unset", &[]);
    unset["env"] = json!({"TOKEN": "${GANGWAY_TEST_SURELY_UNSET}"});
    let config = json!({"backends": {"m": mock("m", &[]), "off": off, "unset": unset}});
    let served = Served::start(&dir, &config, &[]);
    let (_, _, body) = served.request_to("GET", "/status.json", &[], "");
    let status: Value = serde_json::from_str(&body).expect("status.json is JSON");
    for name in ["off", "unset"] {
        let state = status["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["name"] == name))
            .map(|b| b["state"].clone());
        assert_eq!(state, Some(json!("disabled")), "{name} in {body}");
        let (code, _, _) = served.request_to("POST", &format!("/backends/{name}/start"), &[], "");
        assert_eq!(code, 409, "{name} cannot be started");
    }
}

/// Where test artifacts go: `target/test-artifacts` (beside the `debug` folder of this
/// test binary, so a custom target dir is followed).
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lies in TARGET/PROFILE/deps");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the test artifacts dir");
    dir
}

#[test]
fn the_status_page_in_headless_chromium_starts_and_stops_a_backend_from_its_buttons() {
    let Some(tools) = Tools::find(true) else {
        return;
    };
    let dir = TempDir::new();
    let config = json!({"expose": "tools", "http": {"tokens": ["tok-page"]},
                        "backends": {"m": mock("m", &[]), "n": mock("n", &[])}});
    let served = Served::start(&dir, &config, &[]);
    let shot = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{}/", served.addr);
    let args = [
        "--url",
        &url,
        "--backend",
        "m",
        "--other",
        "n",
        "--token",
        "tok-page",
        "--screenshot",
        shot.to_str().expect("a UTF-8 path"),
        "--deadline",
        "60",
    ];
    let ran = tools.python("status_page.py", &args, "", Duration::from_secs(90));
    let log = || served.gw.stderr().join("\n");
    assert!(
        ran.success(),
        "status_page.py failed: {}\n--- gangway's log:\n{}",
        ran.report(),
        log()
    );
    let result: Value = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ok "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no `ok` line: {}", ran.report()));
    let states: Vec<&str> = result["states"]["m"]
        .as_array()
        .expect("m's states")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(states.first(), Some(&"stopped"), "{result}");
    assert!(states.contains(&"ready"), "{result}");
    assert_eq!(states.last(), Some(&"stopped"), "{result}");
    let png = std::fs::read(&shot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is no PNG",
        shot.display()
    );
    println!("status page screenshot: {}", shot.display());
    for line in [
        "starting backend 'm'",
        "backend 'm' ready",
        "stopping backend 'm' as asked",
        "backend 'm' stopped",
    ] {
        served.gw.wait_stderr(line, T);
    }
    assert!(
        !log().contains("starting backend 'n'"),
        "n was not touched:\n{}",
        log()
    );
}
