//! Tests with real containers: the gangway image run as Claude Desktop runs it (`image`), and
//! gangway's docker backends.
//!
//! They need a running Docker engine and the images `scripts/docker-images` builds from
//! host-built static binaries (it runs once per test process, through [`docker_ready`]).
//! Without them the tests are skipped with a note on stderr, except under CI (`CI` set),
//! where a missing prerequisite fails the test.
//!
//! Every test labels the containers it starts with [`TEST_LABEL`]`=`[`docker_test_id`], so it
//! finds only its own containers and never touches another test's.

#![allow(dead_code)]

mod containers;
mod image;
mod isolation;

use crate::util::wait_for;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The mock MCP server (examples/mock_server.rs) in a FROM-scratch image: its entrypoint is
/// the mock, so arguments after the image name are mock flags.
pub const MOCK_IMAGE: &str = "gangway-mock:test";

/// The gangway image built from the top-level Dockerfile. It is the default tag, the one the
/// README and `examples/claude_desktop_config.docker.json` run as `gangway`.
pub const GANGWAY_IMAGE: &str = "gangway:latest";

/// The label key tests put on the containers they start; the value is a [`docker_test_id`].
pub const TEST_LABEL: &str = "gangway-test";

/// Whether Docker tests can run: `docker info` works and `scripts/docker-images` built the
/// images (once per test process). When not, under CI this panics with the reason (CI must
/// provide Docker); elsewhere it prints "skipping: REASON" to stderr and returns None, and
/// the test should return at once.
///
/// When they can, it returns a guard that the test holds to its end: docker tests run one
/// at a time, because every gangway with a docker backend removes, at its start, the
/// containers of gangways that no longer run, and some tests kill a gangway on purpose and
/// then look at what it left.
pub fn docker_ready() -> Option<MutexGuard<'static, ()>> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    match READY.get_or_init(prepare) {
        // A test that failed while holding the lock poisons it; the next may still run.
        Ok(()) => Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner())),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("docker tests cannot run under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// Checks the engine and builds the images.
fn prepare() -> Result<(), String> {
    let info = Command::new("docker")
        .arg("info")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`docker` could not be run ({e}); install Docker"))?;
    if !info.status.success() {
        let why = String::from_utf8_lossy(&info.stderr);
        return Err(format!(
            "the Docker daemon is not reachable (`docker info`: {}); start it, e.g. `sudo systemctl start docker`",
            why.trim()
        ));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-images");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let built = Command::new(&script)
        .env("CARGO", cargo)
        .env("GANGWAY_IMAGE", GANGWAY_IMAGE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} could not be run: {e}", script.display()))?;
    if !built.status.success() {
        return Err(format!(
            "{} failed ({}); run it by hand to see why. Its stderr:\n{}",
            script.display(),
            built.status,
            String::from_utf8_lossy(&built.stderr).trim_end()
        ));
    }
    eprint!("{}", String::from_utf8_lossy(&built.stdout));
    Ok(())
}

/// A value unique to this call among all test runs on this machine (process id, time, and a
/// counter), for [`TEST_LABEL`] so a test finds only the containers it started.
pub fn docker_test_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}-{ms}-{n}", std::process::id())
}

/// Runs `docker ARGS` with stdin closed and returns what it did; panics only when `docker`
/// cannot be started at all.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run `docker {}`: {e}", args.join(" ")))
}

/// Runs `docker ARGS`, asserts it succeeded and returns its stdout.
pub fn docker_stdout(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ids of all containers, running or not, that match `docker ps` filter `filter`
/// (e.g. `label=KEY=VALUE`, `volume=/host/path`, `status=running`).
pub fn containers_where(filter: &str) -> Vec<String> {
    docker_stdout(&["ps", "-aq", "--filter", filter])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The ids of all containers, running or not, that carry label `filter_label` (`KEY` or
/// `KEY=VALUE`).
pub fn containers(filter_label: &str) -> Vec<String> {
    containers_where(&format!("label={filter_label}"))
}

/// The ids of the running containers that carry label `filter_label`.
pub fn running_containers(filter_label: &str) -> Vec<String> {
    docker_stdout(&[
        "ps",
        "-q",
        "--filter",
        &format!("label={filter_label}"),
        "--filter",
        "status=running",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Waits until no container (running or not) carries label `label`; false on timeout.
pub fn wait_no_containers(label: &str, timeout: Duration) -> bool {
    wait_for(timeout, || containers(label).is_empty())
}

/// Removes, when dropped, every container matching any of its `docker ps` filters, so a
/// failing test leaves nothing behind for the next run. Create it before starting containers.
pub struct RemoveOnDrop(pub Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for filter in &self.0 {
            let Ok(out) = Command::new("docker")
                .args(["ps", "-aq", "--filter", filter])
                .stdin(Stdio::null())
                .output()
            else {
                continue;
            };
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.lines().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
