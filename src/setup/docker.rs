//! The Docker preflight of the setup commands: before a `docker run` backend is started,
//! its Docker daemon is asked for its version, once per distinct docker command, global
//! options and `DOCKER_*` environment, so an unreachable daemon is reported as such (with
//! the socket tried and the fix) rather than as the backend's failure.

use super::secs;
use crate::config::BackendConfig;
use crate::docker::{self, Instance};
use crate::gateway::backend::points_elsewhere;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long `docker version` may take to reach the daemon.
const DOCKER_VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the wait for `docker version` looks again.
const CHILD_POLL: Duration = Duration::from_millis(10);
/// What `docker` talks to when nothing says otherwise.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// The most bytes of `docker version`'s stdout and stderr read.
const OUTPUT_MAX: u64 = 64 * 1024;
/// The most characters of docker's stderr line shown.
const LINE_SHOWN: usize = 300;

/// The result of asking one Docker daemon for its version, for the backends that use it.
#[derive(Debug)]
pub struct DockerReport {
    /// The backends that run `docker run` against this daemon.
    pub backends: Vec<String>,
    /// The docker executable.
    pub program: String,
    /// Where the daemon is expected, and why: "unix:///var/run/docker.sock (the default)".
    pub host: String,
    /// The server version, or what went wrong.
    pub result: Result<String, DockerProblem>,
}

/// Why Docker is not usable.
#[derive(Debug)]
pub enum DockerProblem {
    /// The docker CLI is not found.
    CliMissing {
        /// The PATH searched.
        path: String,
    },
    /// The docker CLI could not be run for another reason.
    CannotRun(io::Error),
    /// `docker version` did not finish in time.
    TimedOut,
    /// `docker version` failed: as a rule the daemon is not reachable.
    Unreachable {
        /// How it ended: "exited with status 1".
        status: String,
        /// Its last meaningful stderr line.
        said: Option<String>,
    },
}

impl DockerReport {
    /// Whether Docker answered.
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// What to show: one line when Docker answered, else the problem, what docker said
    /// and the fix, on indented lines. `file` is the config file, for fixes that edit it.
    pub fn render(&self, file: &Path) -> String {
        let who = format!("needed by: {}", self.backends.join(", "));
        let program = &self.program;
        match &self.result {
            Ok(version) => format!("docker: ok: server {version} at {}; {who}\n", self.host),
            Err(DockerProblem::CliMissing { path }) => format!(
                "docker: FAILED: the docker CLI {program:?} is not installed or not in PATH \
                 (PATH={path}); {who}\n  \
                 fix: install the Docker CLI (https://docs.docker.com/engine/install/), or set \
                 \"command\" of those backends in {} to the docker executable's absolute path\n",
                file.display()
            ),
            Err(DockerProblem::CannotRun(e)) => format!(
                "docker: FAILED: cannot run {program:?}: {e}; {who}\n  \
                 fix: check that {program:?} is the docker CLI and is executable\n"
            ),
            Err(DockerProblem::TimedOut) => format!(
                "docker: FAILED: no answer from the Docker daemon at {} within {} \
                 (`{program} version`); {who}\n  fix: {}\n",
                self.host,
                secs(DOCKER_VERSION_TIMEOUT),
                self.daemon_fix(false)
            ),
            Err(DockerProblem::Unreachable { status, said }) => {
                let denied = said
                    .as_deref()
                    .is_some_and(|s| s.to_lowercase().contains("permission denied"));
                let mut s = format!(
                    "docker: FAILED: cannot reach the Docker daemon at {} (`{program} version` \
                     {status}); {who}\n",
                    self.host
                );
                if let Some(said) = said {
                    s.push_str(&format!("  docker said: {said}\n"));
                }
                s.push_str(&format!("  fix: {}\n", self.daemon_fix(denied)));
                s
            }
        }
    }

    fn daemon_fix(&self, permission_denied: bool) -> String {
        if permission_denied {
            return "this user may not use the Docker socket: add it to the docker group \
                    (`sudo usermod -aG docker $USER`, then log in again), or run gangway as a \
                    user that may"
                .to_string();
        }
        let mut fix = "start the Docker daemon (`sudo systemctl start docker`, or start Docker \
                       Desktop); if gangway itself runs in a container, mount the host's socket \
                       into it with `-v /var/run/docker.sock:/var/run/docker.sock`"
            .to_string();
        if self.host.contains("DOCKER_HOST") {
            fix.push_str("; or fix or unset DOCKER_HOST");
        }
        fix
    }
}

/// Asks the Docker daemon of every `docker run` backend among `backends` for its version,
/// once per distinct docker command, global options and `DOCKER_*` environment.
pub fn docker_preflight(backends: &[&BackendConfig]) -> Vec<DockerReport> {
    type Key = (String, Vec<String>, Vec<(String, String)>);
    let probe_instance = Instance {
        id: String::new(),
        owner: String::new(),
        container: None,
        child_depth: 1,
    };
    let mut groups: Vec<(Key, &BackendConfig, Vec<String>)> = Vec::new();
    for cfg in backends {
        let Some(container) = docker::launch(cfg, &probe_instance, 0).container else {
            continue;
        };
        let env: Vec<(String, String)> = cfg
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("DOCKER_") || k == "PATH")
            .cloned()
            .collect();
        let key = (container.program, container.global, env);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, names)) => names.push(cfg.name.clone()),
            None => groups.push((key, cfg, vec![cfg.name.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|((program, global, env), cfg, names)| {
            let host = docker_host(&global, &env);
            let result = docker_version(&program, &global, cfg, &env);
            DockerReport {
                backends: names,
                program,
                host,
                result,
            }
        })
        .collect()
}

fn docker_version(
    program: &str,
    global: &[String],
    cfg: &BackendConfig,
    env: &[(String, String)],
) -> Result<String, DockerProblem> {
    let mut cmd = Command::new(program);
    cmd.args(global)
        .args(["version", "--format", "{{.Server.Version}}"])
        .envs(cfg.env.iter().map(|(k, v)| (k, v)));
    match run_bounded(&mut cmd, DOCKER_VERSION_TIMEOUT) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DockerProblem::CliMissing {
            path: lookup(env, "PATH").unwrap_or_else(|| "(not set)".to_string()),
        }),
        Err(e) => Err(DockerProblem::CannotRun(e)),
        Ok(Ran { status: None, .. }) => Err(DockerProblem::TimedOut),
        Ok(Ran {
            status: Some(status),
            stdout,
            stderr,
        }) => {
            let version = stdout.trim();
            if status.success() && !version.is_empty() {
                Ok(version.to_string())
            } else {
                Err(DockerProblem::Unreachable {
                    status: match status.code() {
                        Some(c) => format!("exited with status {c}"),
                        None => format!("ended: {status}"),
                    },
                    said: last_meaningful_line(&stderr),
                })
            }
        }
    }
}

/// A variable from the backend's `env`, else from gangway's environment.
fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(name).ok())
        .filter(|v| !v.is_empty())
}

/// Where `docker` with `global` options and `env` looks for its daemon, and why.
fn docker_host(global: &[String], env: &[(String, String)]) -> String {
    let mut context = None;
    let mut it = global.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-H" | "--host" => {
                if let Some(h) = it.next() {
                    return format!("{h} (from {a})");
                }
            }
            "-c" | "--context" => context = it.next().cloned(),
            _ => {
                if let Some(h) = a.strip_prefix("--host=") {
                    return format!("{h} (from --host)");
                }
                if let Some(c) = a.strip_prefix("--context=") {
                    context = Some(c.to_string());
                }
            }
        }
    }
    if let Some(c) = context {
        return format!("the endpoint of docker context {c:?} (from --context)");
    }
    if let Some(h) = lookup(env, "DOCKER_HOST") {
        return format!("{h} (from DOCKER_HOST)");
    }
    if let Some(c) = lookup(env, "DOCKER_CONTEXT") {
        return format!("the endpoint of docker context {c:?} (from DOCKER_CONTEXT)");
    }
    format!("{DEFAULT_DOCKER_HOST} (the default)")
}

/// Prints the docker reports and returns the names of the backends whose Docker failed.
pub(super) fn report_docker(
    reports: &[DockerReport],
    file: &Path,
    to: &mut dyn Write,
) -> io::Result<Vec<String>> {
    let mut failed = Vec::new();
    for r in reports {
        to.write_all(r.render(file).as_bytes())?;
        if !r.ok() {
            failed.extend(r.backends.iter().cloned());
        }
    }
    Ok(failed)
}

/// The last line of docker's stderr that says something (its closing "See 'docker run
/// --help'." says nothing), shortened to [`LINE_SHOWN`] characters.
fn last_meaningful_line(text: &str) -> Option<String> {
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !points_elsewhere(l))?;
    if line.chars().count() <= LINE_SHOWN {
        return Some(line.to_string());
    }
    let mut short: String = line.chars().take(LINE_SHOWN).collect();
    short.push('…');
    Some(short)
}

/// What [`run_bounded`] saw.
struct Ran {
    /// None when the command was killed at the deadline.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with a deadline, killing it when the deadline passes; its stdout and stderr
/// go to anonymous in-memory files (so a full pipe cannot block it, and nothing needs
/// reading while it runs), of which the first [`OUTPUT_MAX`] bytes are kept.
fn run_bounded(cmd: &mut Command, limit: Duration) -> io::Result<Ran> {
    let memfd = |name: &std::ffi::CStr| {
        nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map(File::from)
            .map_err(io::Error::from)
    };
    let (mut out, mut err) = (memfd(c"gangway-docker-out")?, memfd(c"gangway-docker-err")?);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?);
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(CHILD_POLL);
    };
    let read = |file: &mut File| {
        let mut text = String::new();
        let _ = file
            .rewind()
            .and_then(|()| file.take(OUTPUT_MAX).read_to_string(&mut text));
        text
    };
    Ok(Ran {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_comes_from_options_then_env_then_default() {
        let g = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let env = vec![("DOCKER_HOST".to_string(), "tcp://h:2375".to_string())];
        assert_eq!(
            docker_host(&g(&["-H", "unix:///x.sock"]), &env),
            "unix:///x.sock (from -H)"
        );
        assert_eq!(docker_host(&[], &env), "tcp://h:2375 (from DOCKER_HOST)");
        assert!(docker_host(&g(&["--context=remote"]), &env).contains("\"remote\""));
    }

    #[test]
    fn docker_help_hints_are_not_the_last_word() {
        let lines = [
            "Unable to find image 'x:latest' locally",
            "docker: Error response from daemon: pull access denied for x.",
            "See 'docker run --help'.",
            "",
        ];
        assert_eq!(
            last_meaningful_line(&lines.join("\n")).as_deref(),
            Some("docker: Error response from daemon: pull access denied for x.")
        );
    }
}
