//! Backend processes: spawning with non-blocking pipes in a process group of their own,
//! signalling that group, and reaping exits.

use crate::config::BackendConfig;
use mio::unix::pipe::{Receiver, Sender};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A spawned backend: its process id (also its process group id) and its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// The process id, which is also the id of its process group.
    pub pid: i32,
    /// Its stdin, non-blocking.
    pub stdin: Sender,
    /// Its stdout, non-blocking.
    pub stdout: Receiver,
    /// Its stderr, non-blocking.
    pub stderr: Receiver,
    /// Its spawn number, carried by it and its descendants in their environment (see
    /// [`super::guard::sweep`]).
    pub mark: u64,
}

/// Starts `cfg`'s command with piped stdio, in a new process group (so a signal reaches
/// wrappers like `npx` and everything they start), with gangway's environment minus
/// `cfg.env_remove` and systemd's [`super::notify::PRIVATE_VARS`], plus the backend's
/// `env` and the variables of [`super::guard::child_env`] (nesting depth and this spawn's
/// marker), and with a parent-death signal so it does not outlive gangway. `args` replace
/// `cfg.args` (see [`crate::docker::launch`], which adds a docker backend's name and
/// labels).
pub fn spawn(cfg: &BackendConfig, args: &[String]) -> io::Result<Spawned> {
    let mut cmd = Command::new(&cfg.command);
    let mark = super::guard::next_spawn();
    // Another backend's secrets first, so the backend's own `env` can still set a name.
    cfg.env_remove
        .iter()
        .for_each(|var| _ = cmd.env_remove(var));
    // systemd's channel to gangway is not the backend's to use.
    super::notify::PRIVATE_VARS
        .iter()
        .for_each(|var| _ = cmd.env_remove(var));
    cmd.args(args)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .envs(super::guard::child_env(mark))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &cfg.cwd {
        cmd.current_dir(cwd);
    }
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // gangway may have died between fork and prctl; then the signal never comes.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other(
                    "gangway exited while starting the backend",
                ));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("the child's pipes were not created"));
    };
    let stdin = Sender::from(stdin);
    let stdout = Receiver::from(stdout);
    let stderr = Receiver::from(stderr);
    stdin.set_nonblocking(true)?;
    stdout.set_nonblocking(true)?;
    stderr.set_nonblocking(true)?;
    // The child is reaped with waitpid(-1) (see `reap`), not through `child`; dropping the
    // handle neither waits for nor kills the process.
    drop(child);
    Ok(Spawned {
        pid,
        mark,
        stdin,
        stdout,
        stderr,
    })
}

/// Sends `signal` to the process group `pid`. A group that is already gone is fine.
pub fn signal_group(pid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => log::warn!("could not send {signal} to process group {pid}: {e}"),
    }
}

/// One reaped child: its pid and a description of how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process id.
    pub pid: i32,
    /// "exit status N" or "killed by signal SIGX".
    pub status: String,
}

/// Reaps every child that has exited, without blocking. Children that are not backends
/// (orphans re-parented to gangway when it is PID 1) are reaped too, so none is left a
/// zombie.
pub fn reap() -> Vec<Exit> {
    let mut exits = Vec::new();
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => exits.push(Exit {
                pid: pid.as_raw(),
                status: format!("exit status {code}"),
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => exits.push(Exit {
                pid: pid.as_raw(),
                status: format!("killed by signal {sig}"),
            }),
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("waitpid failed: {e}");
                break;
            }
        }
    }
    exits
}

/// Why `cfg`'s command could not be started (`error`, from [`spawn`]), and what to do:
/// a `cwd` that is not a directory, a command not in PATH, not found or not executable.
pub fn spawn_error_text(cfg: &BackendConfig, error: &io::Error) -> String {
    let command = &cfg.command;
    if let Some(cwd) = cfg.cwd.as_ref().filter(|c| !c.is_dir()) {
        return format!(
            "its working directory {} does not exist; set \"cwd\" to an existing directory",
            cwd.display()
        );
    }
    match error.kind() {
        io::ErrorKind::NotFound if !command.contains('/') => format!(
            "cannot run {command:?}: it is not in PATH; install it, or set \"command\" to its absolute path"
        ),
        io::ErrorKind::NotFound => format!("cannot run {command:?}: no such file; fix \"command\""),
        io::ErrorKind::PermissionDenied => format!(
            "cannot run {command:?}: permission denied; make it executable or fix \"command\""
        ),
        _ => format!("cannot run {command:?}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(command: &str) -> BackendConfig {
        let config = crate::config::Config::parse(
            &serde_json::json!({"backends": {"b": {"command": command}}}).to_string(),
            std::path::Path::new("t.json"),
            &|_| None,
        )
        .expect("valid");
        config.backends[0].clone()
    }

    #[test]
    fn spawn_errors_say_what_to_fix() {
        let missing = cfg("gangway-no-such-command");
        let e = spawn(&missing, &[]).expect_err("not found");
        let text = spawn_error_text(&missing, &e);
        assert!(
            text.contains("\"gangway-no-such-command\": it is not in PATH"),
            "{text}"
        );

        let absolute = cfg("/nonexistent/gangway-cmd");
        let e = spawn(&absolute, &[]).expect_err("not found");
        assert!(spawn_error_text(&absolute, &e).contains("no such file"));

        let mut in_nowhere = cfg("sh");
        in_nowhere.cwd = Some(std::path::PathBuf::from("/nonexistent/dir"));
        let e = spawn(&in_nowhere, &[]).expect_err("no cwd");
        let text = spawn_error_text(&in_nowhere, &e);
        assert!(
            text.contains("working directory /nonexistent/dir"),
            "{text}"
        );
    }
}
