//! One backend's state: its lifecycle phase, the requests waiting for it to become ready,
//! what it told us about itself, and the history that decides whether to restart it.

use super::lists::{Item, ListKind, LIST_KINDS};
use super::repeat::Repeats;
use crate::config::BackendConfig;
use crate::timer::TimerHandle;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How many crashes within `CRASH_WINDOW` put a backend into the `Failed` phase.
pub const CRASH_LIMIT: usize = 3;
/// The window in which crashes are counted.
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long a backend that crashed too often is left alone.
pub const FAILED_PAUSE: Duration = Duration::from_secs(30);
/// The pause after a first failed start; it doubles with every further one in a row.
pub const START_BACKOFF_FIRST: Duration = Duration::from_secs(10);
/// The longest pause between failed starts.
pub const START_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// The pause after `failures` failed starts in a row (10 s, 20 s, 40 s, … at most 10 min).
pub fn start_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    START_BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(START_BACKOFF_MAX)
}

/// How many lines of a backend's stderr are kept for error messages.
const STDERR_TAIL_LINES: usize = 5;
/// The longest stderr line kept for error messages, in bytes.
const STDERR_LINE_MAX: usize = 300;

/// `line` cut to [`STDERR_LINE_MAX`] bytes (marked with `…`).
fn shorten(mut line: String) -> String {
    if line.len() > STDERR_LINE_MAX {
        let mut cut = STDERR_LINE_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// What a stdout line that is not JSON-RPC says about the server.
pub fn noise_sentence(line: &str) -> String {
    format!(
        "it printed a line that is not JSON-RPC to stdout, which MCP reserves for messages \
         (a server must log to stderr): {line}"
    )
}

/// Whether a stderr line only points elsewhere (docker's "See 'docker run --help'.", npm's
/// "A complete log of this run can be found in: …" and the path npm 8 puts on the next
/// line), so an error message is better off without it.
pub fn points_elsewhere(line: &str) -> bool {
    let line = line.trim();
    let help = (line.starts_with("See '") || line.starts_with("Run '")) && line.contains("--help");
    let npm = line
        .strip_prefix("npm error")
        .or_else(|| line.strip_prefix("npm ERR!"))
        .map(str::trim)
        .is_some_and(|rest| rest.contains("A complete log of this run") || rest.starts_with('/'));
    help || npm
}

/// Where a backend is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not running; the next request starts it.
    Stopped,
    /// Spawned; gangway's `initialize` is in flight. Requests queue.
    Starting,
    /// Initialized; requests flow.
    Ready,
    /// On the stop ladder (stdin closed, then SIGTERM, then SIGKILL). Requests queue and
    /// restart it once it has exited.
    Stopping,
    /// Crashed too often; requests are refused until the instant given.
    Failed {
        /// When it may be started again.
        until: Instant,
    },
}

/// What gangway knows of one of a backend's lists.
#[derive(Debug, Default)]
pub enum ListState {
    /// Never listed, or the backend said the list changed.
    #[default]
    Unknown,
    /// A paged walk is under way; `so_far` holds the pages already received and
    /// `waiters` the aggregates that need the result.
    Fetching {
        /// The list known before this walk (from the catalog or an earlier walk), served
        /// meanwhile and compared with the result to tell the client of a change.
        previous: Option<Rc<Vec<Item>>>,
        /// Entries from the pages received so far.
        so_far: Vec<Item>,
        /// Aggregate ids to notify when the walk ends.
        waiters: Vec<u64>,
        /// The backend said the list changed during the walk: hand the result to the
        /// waiters but do not remember it.
        stale: bool,
    },
    /// The complete list.
    Known(Rc<Vec<Item>>),
}

/// A request held back until the backend is ready.
#[derive(Debug)]
pub struct Queued {
    /// Its gateway id (still in the id table unless it was cancelled meanwhile).
    pub gw: u64,
    /// The line to send, id already rewritten, newline included.
    pub bytes: Vec<u8>,
}

/// Whether a backend's spawn waits for the removal of its last container. docker refuses a
/// `--name` the user chose while a container of that name exists, so a start of such a
/// backend holds its spawn until the runtime reports that the removal it began ended. A
/// generated name is new at every start, so its spawn never waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpawnGate {
    /// The runtime is removing the container of a process of it that ended.
    removing: bool,
    /// A start is under way whose spawn was not asked for yet.
    held: bool,
}

impl SpawnGate {
    /// The runtime began removing the container of a process that ended.
    pub fn removal_started(&mut self) {
        self.removing = true;
    }

    /// Every removal the runtime began ended: returns whether a held spawn may be asked
    /// for now.
    pub fn removal_ended(&mut self) -> bool {
        self.removing = false;
        std::mem::take(&mut self.held)
    }

    /// A start needs its process: returns whether the spawn may be asked for now; if not,
    /// it is held until [`SpawnGate::removal_ended`]. `fixed_name` says whether every
    /// start uses the same container name.
    pub fn may_spawn(&mut self, fixed_name: bool) -> bool {
        self.held = self.removing && fixed_name;
        !self.held
    }

    /// The start is given up: returns whether its spawn was held (then no process exists
    /// and none will be asked for).
    pub fn abandon(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }

    /// Whether a start waits to ask for its spawn.
    pub fn is_held(&self) -> bool {
        self.held
    }
}

/// One configured backend and everything gangway tracks about it.
#[derive(Debug)]
pub struct Backend {
    /// Its configuration.
    pub config: BackendConfig,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Incremented at every spawn, so timers set for an earlier process are recognised.
    pub generation: u64,
    /// Requests (in either direction) tracked for this backend; it is idle at zero.
    pub in_flight: usize,
    /// Of those, its requests waiting for the client's answer (bounded by
    /// `TO_CLIENT_MAX`).
    pub to_client: usize,
    /// While more than `BACKEND_IN_BOUND` bytes wait for it: how much of its input had
    /// been written when that was last seen to change, and when.
    pub drain_watch: Option<(u64, Instant)>,
    /// The wakeup for when it would count as stalled, while it is behind.
    pub stall_timer: Option<TimerHandle>,
    /// Whether its current process answered `initialize` (a failure before that is a
    /// failed start, which backs off longer than a crash).
    pub ready_seen: bool,
    /// Starts in a row that failed before `initialize` was answered.
    pub start_failures: u32,
    /// A list answer was sent without its list of this kind (it took too long): the
    /// client hears list_changed once the list arrives. By `ListKind::index`.
    pub late: [bool; LIST_KINDS.len()],
    /// Its start failed in an earlier run (from the catalog): until this time (seconds
    /// since the Unix epoch), list requests leave it out instead of starting it. The text
    /// says why.
    pub lists_skipped_until: Option<(u64, String)>,
    /// The last error it sent with `"id": null` that could not be tied to one request
    /// (quoted when a request to it then times out).
    pub unattributed: Option<String>,
    /// Requests waiting for `Ready`.
    pub queue: Vec<Queued>,
    /// When the last request to it was sent or finished.
    pub last_active: Instant,
    /// When its current process was spawned.
    pub started_at: Instant,
    /// The pending idle timer, if armed.
    pub idle_timer: Option<TimerHandle>,
    /// The pending step of the stop ladder, if stopping.
    pub stop_timer: Option<TimerHandle>,
    /// The next progress notification for requests waiting while it starts.
    pub start_timer: Option<TimerHandle>,
    /// Set when gangway decided the backend failed (initialize failed, output closed): its
    /// exit then counts as a crash even though gangway stopped it.
    pub failing: bool,
    /// Recent crash instants, for the restart back-off.
    pub crashes: VecDeque<Instant>,
    /// The last failure, quoted while the backend is `Failed`.
    pub last_error: Option<String>,
    /// The last lines it wrote to stderr.
    pub stderr_tail: VecDeque<String>,
    /// The first line it wrote to stdout that is not JSON-RPC (redacted, shortened): a
    /// server that logs to stdout, quoted when it fails to start or exits.
    pub noise: Option<String>,
    /// How long its last start took, from the spawn to the answer to `initialize`.
    pub ready_after: Option<Duration>,
    /// What it answered to `initialize`, raw.
    pub init_result: Option<Box<RawValue>>,
    /// Its lists (tools, prompts, resources, templates), as far as known, by
    /// `ListKind::index`.
    pub lists: [ListState; LIST_KINDS.len()],
    /// A reload removed it: it is neither listed nor callable, and stops once its last
    /// request has ended. (For a session's own instance: its session ended.)
    pub removed: bool,
    /// This is the process of a `"scope": "session"` backend (its listed slot first) for
    /// one session: it serves only that session and is not listed itself.
    pub instance_of: Option<(usize, super::SessionId)>,
    /// A reload changed how it is spawned: the running process stops once idle, and the
    /// next request starts the new one.
    pub restart: bool,
    /// Repeated lines suppressed from its log: stderr, then non-JSON stdout.
    pub log_repeats: [Repeats; 2],
    /// Whether its next spawn waits for its last container to be removed.
    pub spawn_gate: SpawnGate,
}

impl Backend {
    /// A stopped backend for `config`.
    pub fn new(config: BackendConfig, now: Instant) -> Backend {
        Backend {
            config,
            phase: Phase::Stopped,
            generation: 0,
            in_flight: 0,
            to_client: 0,
            drain_watch: None,
            stall_timer: None,
            unattributed: None,
            ready_seen: false,
            start_failures: 0,
            late: [false; LIST_KINDS.len()],
            lists_skipped_until: None,
            queue: Vec::new(),
            last_active: now,
            started_at: now,
            idle_timer: None,
            stop_timer: None,
            start_timer: None,
            failing: false,
            crashes: VecDeque::new(),
            last_error: None,
            stderr_tail: VecDeque::new(),
            noise: None,
            ready_after: None,
            init_result: None,
            lists: Default::default(),
            removed: false,
            instance_of: None,
            restart: false,
            log_repeats: Default::default(),
            spawn_gate: SpawnGate::default(),
        }
    }

    /// The list of `kind` as last known: complete, or the one served while it is fetched
    /// again. `None` while it was never fetched.
    pub fn known(&self, kind: ListKind) -> Option<&Rc<Vec<Item>>> {
        match &self.lists[kind.index()] {
            ListState::Known(list) => Some(list),
            ListState::Fetching { previous, .. } => previous.as_ref(),
            ListState::Unknown => None,
        }
    }

    /// What is known of one of its lists.
    pub fn list(&self, kind: ListKind) -> &ListState {
        &self.lists[kind.index()]
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether a process is running for it (or being stopped).
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Starting | Phase::Ready | Phase::Stopping)
    }

    /// Keeps a stderr line for error messages (its env values redacted, shortened, oldest
    /// dropped first).
    pub fn remember_stderr(&mut self, line: &str) {
        let line = shorten(self.config.redact(line.trim_end()));
        if line.is_empty() {
            return;
        }
        if self.stderr_tail.len() == STDERR_TAIL_LINES {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(line);
    }

    /// The stderr tail as a sentence suffix for error messages ("" when it wrote nothing
    /// that explains anything), then the first stdout line that was not JSON-RPC, if any.
    /// Lines that only point elsewhere are left out: docker's "See 'docker run --help'."
    /// and npm's "A complete log of this run can be found in …" with its path.
    pub fn stderr_suffix(&self) -> String {
        let lines: Vec<&str> = self
            .stderr_tail
            .iter()
            .map(String::as_str)
            .filter(|l| !points_elsewhere(l))
            .collect();
        let mut s = String::new();
        if !lines.is_empty() {
            s = format!("; its last stderr lines: {}", lines.join(" | "));
        }
        if let Some(line) = &self.noise {
            s.push_str("; ");
            s.push_str(&noise_sentence(line));
        }
        s
    }

    /// Keeps the first stdout line that is not JSON-RPC (see [`Backend::noise`]).
    pub fn remember_noise(&mut self, line: &str) {
        if self.noise.is_some() {
            return;
        }
        let line = self.config.redact(line.trim());
        if !line.is_empty() {
            self.noise = Some(shorten(line));
        }
    }

    /// The last unattributed error it sent, as a sentence suffix ("" when none).
    pub fn unattributed_suffix(&self) -> String {
        match &self.unattributed {
            Some(e) => format!("; meanwhile it sent an error without a request id (it could not tell which request it was about): {e}"),
            None => String::new(),
        }
    }

    /// Records a crash at `now` and returns whether the back-off limit is reached.
    pub fn record_crash(&mut self, now: Instant) -> bool {
        while self
            .crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > CRASH_WINDOW)
        {
            self.crashes.pop_front();
        }
        self.crashes.push_back(now);
        if self.crashes.len() >= CRASH_LIMIT {
            self.crashes.clear();
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;

    fn backend() -> Backend {
        let config = BackendConfig {
            name: "b".into(),
            command: "true".into(),
            args: vec![],
            env: vec![],
            cwd: None,
            description: None,
            timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(120),
            client_request_timeout: Duration::from_secs(600),
            idle_timeout: None,
            disabled: false,
            prefix: "b".into(),
            tools: Default::default(),
            expose: crate::config::Expose::Meta,
            direct: vec![],
            scope: crate::config::Scope::Shared,
            disabled_reason: None,
            env_remove: vec![],
            vars: vec![],
        };
        Backend::new(config, Instant::now())
    }

    #[test]
    fn three_crashes_in_a_minute_trip_the_back_off() {
        let mut b = backend();
        let t0 = Instant::now();
        assert!(!b.record_crash(t0));
        assert!(!b.record_crash(t0 + Duration::from_secs(61)));
        assert!(!b.record_crash(t0 + Duration::from_secs(62)));
        assert!(b.record_crash(t0 + Duration::from_secs(63)));
        assert!(b.crashes.is_empty());
    }

    #[test]
    fn only_a_fixed_name_waits_for_the_removal_and_only_once() {
        let mut gate = SpawnGate::default();
        assert!(gate.may_spawn(true), "nothing is being removed");
        gate.removal_started();
        assert!(gate.may_spawn(false), "a generated name is free at once");
        assert!(!gate.may_spawn(true));
        assert!(gate.is_held());
        assert!(gate.removal_ended(), "the held spawn goes now");
        assert!(!gate.removal_ended(), "and is asked for only once");
        assert!(gate.may_spawn(true));

        gate.removal_started();
        assert!(!gate.may_spawn(true));
        assert!(gate.abandon(), "a held start is given up without a process");
        assert!(!gate.abandon());
        assert!(
            !gate.removal_ended(),
            "an abandoned start is not spawned later"
        );
    }

    #[test]
    fn stderr_lines_have_env_values_redacted() {
        let mut b = backend();
        b.config.env = vec![
            ("TOKEN".into(), "ghp_secret".into()),
            ("LONG".into(), "ghp_secret_and_more".into()),
            ("DEBUG".into(), "1".into()),
        ];
        b.remember_stderr("auth failed for ghp_secret_and_more and ghp_secret (attempt 1)\n");
        assert_eq!(
            b.stderr_tail[0],
            "auth failed for [redacted] and [redacted] (attempt 1)"
        );
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines_shortened() {
        let mut b = backend();
        for i in 0..10 {
            b.remember_stderr(&format!("line {i}\n"));
        }
        b.remember_stderr("");
        b.remember_stderr(&"é".repeat(400));
        assert_eq!(b.stderr_tail.len(), STDERR_TAIL_LINES);
        assert_eq!(b.stderr_tail[0], "line 6");
        assert!(b.stderr_tail[4].ends_with('…'));
        assert!(b.stderr_suffix().contains("line 9"));
    }

    #[test]
    fn error_suffixes_leave_out_pointers_and_quote_stdout_noise() {
        let mut b = backend();
        for line in [
            "npm error code E404",
            "npm error 404 Not Found - GET https://registry.npmjs.org/@x%2fnope - Not found",
            "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log",
        ] {
            b.remember_stderr(line);
        }
        let s = b.stderr_suffix();
        assert!(s.contains("404 Not Found - GET"), "{s}");
        assert!(!s.contains("complete log"), "{s}");
        b.stderr_tail.clear();
        b.remember_stderr("docker: Error response from daemon: pull access denied for x.");
        b.remember_stderr("See 'docker run --help'.");
        assert_eq!(
            b.stderr_suffix(),
            "; its last stderr lines: docker: Error response from daemon: pull access denied for x."
        );

        b.stderr_tail.clear();
        b.config.env = vec![("TOKEN".into(), "s3cret".into())];
        b.remember_noise("Server listening on port 3000 with s3cret");
        b.remember_noise("second line");
        let s = b.stderr_suffix();
        assert!(
            s.starts_with("; it printed a line that is not JSON-RPC to stdout")
                && s.ends_with(": Server listening on port 3000 with [redacted]"),
            "{s}"
        );
    }
}
