//! Containment of everything gangway starts: a nesting depth passed to every child, a
//! marker in the environment of every backend (inherited by all its descendants, even those
//! that call `setsid` or leave the process group), the sweep that kills marked processes,
//! and a watchdog process that runs the sweep when gangway dies, SIGKILL included.
//!
//! Why a marker: process groups and the parent-death signal only reach processes that stay
//! in the group or are direct children. The environment is inherited across `fork`, `setsid`
//! and `exec`, so a backend's wrappers (`sh -c`, `npx`, `uvx`) and daemons keep it unless
//! they deliberately start with a clean environment.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that tells a process how many gangways it runs under.
pub const DEPTH_VAR: &str = "GANGWAY_DEPTH";
/// The deepest a gangway may run: a gangway started by a gangway (depth 1) may serve; one
/// started by that one (depth 2) refuses to start, so a config that contains gangway
/// itself, in any form, cannot start an endless chain.
pub const MAX_DEPTH: u32 = 1;
/// Prefix of the marker variable; the full name ends with this instance's id, so a
/// process started through nested gangways carries one marker per level.
pub const MARK_PREFIX: &str = "GANGWAY_MARK_";
/// A sweep repeats while it finds processes it had not killed yet (a dying process may
/// have forked first), at most this many times.
const SWEEP_ROUNDS: usize = 8;
/// At most this much of a process's environment is read when looking for the marker; a
/// process environment is limited by the kernel to a fraction of the stack limit, so
/// this is a safety bound, not a policy.
const ENVIRON_MAX: u64 = 8 * 1024 * 1024;

/// Who this gangway is for containment: a random id and its nesting depth.
#[derive(Debug)]
struct Identity {
    id: String,
    depth: u32,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();
static SPAWNS: AtomicU64 = AtomicU64::new(0);
/// The write end of the watchdog's pipe, held for the whole life of the process.
static WATCHDOG: OnceLock<OwnedFd> = OnceLock::new();

fn identity() -> &'static Identity {
    IDENTITY.get_or_init(|| Identity {
        id: crate::docker::random_id(),
        depth: depth_from_env().unwrap_or(0),
    })
}

/// Why gangway refuses to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepthError {
    /// `GANGWAY_DEPTH` says this gangway runs under too many gangways.
    TooDeep(u32),
    /// `GANGWAY_DEPTH` holds something that is not a number.
    Invalid(String),
}

impl std::fmt::Display for DepthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepthError::TooDeep(d) => write!(
                f,
                "refusing to start: this gangway was started by a gangway that was itself started \
                 by a gangway ({DEPTH_VAR}={d}; at most {MAX_DEPTH} level of nesting is allowed). \
                 A config that lists gangway, or its container image, as a backend would otherwise \
                 start gangways without end. Remove that entry from the config of the nested \
                 gangway, or unset {DEPTH_VAR} if you started this gangway by hand from inside a \
                 backend"
            ),
            DepthError::Invalid(v) => write!(
                f,
                "refusing to start: {DEPTH_VAR}={v:?} is not a number. gangway sets it for the \
                 processes it starts, to count nesting; unset it or set it to 0"
            ),
        }
    }
}

impl std::error::Error for DepthError {}

/// Reads this process's nesting depth from [`DEPTH_VAR`] (unset: 0).
fn depth_from_env() -> Result<u32, DepthError> {
    match std::env::var(DEPTH_VAR) {
        Err(_) => Ok(0),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| DepthError::Invalid(v.clone())),
    }
}

/// Checks the nesting depth and fixes this process's identity. Call once, first thing.
///
/// # Errors
///
/// [`DepthError`] when gangway runs nested deeper than [`MAX_DEPTH`] or the variable is
/// garbage: gangway must then not start.
pub fn init() -> Result<(), DepthError> {
    let depth = depth_from_env()?;
    if depth > MAX_DEPTH {
        return Err(DepthError::TooDeep(depth));
    }
    let _ = IDENTITY.set(Identity {
        id: crate::docker::random_id(),
        depth,
    });
    Ok(())
}

/// The depth to give a child of this gangway ([`DEPTH_VAR`]'s value for it).
pub fn child_depth() -> u32 {
    identity().depth.saturating_add(1)
}

/// A new spawn number, for [`child_env`] and [`sweep`].
pub fn next_spawn() -> u64 {
    SPAWNS.fetch_add(1, Ordering::Relaxed) + 1
}

/// The variables every process gangway starts gets: its depth, and the marker of this
/// instance carrying the spawn number `spawn`.
pub fn child_env(spawn: u64) -> [(String, String); 2] {
    [
        (DEPTH_VAR.to_string(), child_depth().to_string()),
        (mark_name(), spawn.to_string()),
    ]
}

fn mark_name() -> String {
    format!("{MARK_PREFIX}{}", identity().id)
}

/// Whether `environ` (NUL-separated `K=V` entries) carries `name`, with value `value` when
/// one is given.
fn carries(environ: &[u8], name: &str, value: Option<&str>) -> bool {
    environ.split(|&b| b == 0).any(|entry| {
        entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
            .is_some_and(|v| value.map_or(true, |want| v == want.as_bytes()))
    })
}

/// Every live process (other than this one) whose environment carries this instance's
/// marker, for spawn `spawn` only when given.
fn marked(spawn: Option<u64>) -> Vec<i32> {
    let name = mark_name();
    let value = spawn.map(|s| s.to_string());
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut found = Vec::new();
    let mut environ = Vec::new();
    for pid in live_pids() {
        if pid == me || pid <= 1 {
            continue;
        }
        environ.clear();
        // A process may be gone, or not ours to read (another user's): then it is no
        // process of ours either.
        let read = std::fs::File::open(format!("/proc/{pid}/environ"))
            .and_then(|f| f.take(ENVIRON_MAX).read_to_end(&mut environ));
        if read.is_ok() && carries(&environ, &name, value.as_deref()) {
            found.push(pid);
        }
    }
    found
}

/// The ids of the processes in `/proc` now (none when it cannot be read).
fn live_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
}

/// SIGKILLs every process carrying this instance's marker (of spawn `spawn` only, when
/// given), repeating while new ones turn up. Returns how many were killed.
pub fn sweep(spawn: Option<u64>) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut killed: Vec<i32> = Vec::new();
    for _ in 0..SWEEP_ROUNDS {
        let fresh: Vec<i32> = marked(spawn)
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed.push(pid);
            }
        }
    }
    killed.len()
}

/// SIGKILLs the children of this process that are not in `known`: orphans of backends that
/// the kernel re-parented to gangway (see [`become_subreaper`]). Returns how many.
pub fn kill_adopted(known: &[i32]) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut n = 0;
    for pid in live_pids() {
        if known.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(me)
            && state != Some("Z")
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Makes gangway the reaper of its backends' orphans: a process whose parent (a wrapper)
/// died is re-parented to gangway instead of init, so gangway can reap and kill it.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::warn!("could not become a child subreaper ({e}); orphans of backends are left to init and only killed by their marker");
    }
}

/// Starts the watchdog: a process in a session of its own, neither gangway's child nor in
/// its process group (so a signal meant for gangway or its group does not reach it), that
/// waits for the end of a pipe only gangway holds open and then kills every process
/// carrying this instance's marker. This is what ends the backends when gangway is killed
/// with SIGKILL. Call it early in `main`, while gangway has one thread, and before
/// [`become_subreaper`] (the watchdog must not be re-parented to gangway).
///
/// # Errors
///
/// Creating the pipe or forking failed; gangway still runs, without the watchdog.
pub fn start_watchdog() -> io::Result<()> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult};
    if std::process::id() == 1 {
        // As init of its PID namespace (gangway's container), gangway's death ends every
        // process in it: the kernel is the watchdog.
        return Ok(());
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // Fix the identity before forking, so the watchdog looks for the same marker.
    let _ = identity();
    // SAFETY: gangway has a single thread here (the caller's contract), so the child may
    // run ordinary code; it only returns by exiting.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(read);
            // The intermediate child exits at once, after forking the watchdog.
            let _ = waitpid(child, None);
            let _ = WATCHDOG.set(write);
            Ok(())
        }
        ForkResult::Child => {
            drop(write);
            // SAFETY: as above; this process is single-threaded too.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => watchdog(&read),
                // SAFETY: _exit ends the intermediate without running gangway's exit code.
                Ok(ForkResult::Parent { .. }) => unsafe { nix::libc::_exit(0) },
                Err(_) => unsafe { nix::libc::_exit(1) },
            }
        }
    }
}

/// The watchdog's life: detach, wait for gangway's end, sweep, exit.
fn watchdog(pipe: &OwnedFd) -> ! {
    use nix::sys::signal::{signal, SigHandler, Signal};
    let _ = nix::unistd::setsid();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SigIgn installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // The client waits for EOF on gangway's stdout; the watchdog must not hold it open.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(pipe.as_fd(), &mut byte) {
            Ok(0) => break,
            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
            Err(_) => break,
        }
    }
    let n = sweep(None);
    if n > 0 {
        eprintln!("gangway: watchdog: gangway is gone; killed {n} process(es) it had started");
    }
    // SAFETY: ends the watchdog without running exit handlers inherited from gangway.
    unsafe { nix::libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_by_name_and_value() {
        let env = b"A=1\0GANGWAY_MARK_x=12\0B=\0";
        assert!(carries(env, "GANGWAY_MARK_x", None));
        assert!(carries(env, "GANGWAY_MARK_x", Some("12")));
        assert!(!carries(env, "GANGWAY_MARK_x", Some("1")));
        assert!(!carries(env, "GANGWAY_MARK_", None));
        assert!(!carries(b"GANGWAY_MARK_xy=12", "GANGWAY_MARK_x", None));
        assert!(carries(b"B=", "B", Some("")));
    }

    #[test]
    fn depth_errors_say_what_and_how_to_fix() {
        let e = DepthError::TooDeep(2).to_string();
        assert!(
            e.contains("GANGWAY_DEPTH=2") && e.contains("Remove that entry"),
            "{e}"
        );
        let e = DepthError::Invalid("x".into()).to_string();
        assert!(e.contains("not a number") && e.contains("unset it"), "{e}");
    }
}
