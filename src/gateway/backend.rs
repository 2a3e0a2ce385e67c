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
/// How many lines of a backend's stderr are kept for error messages.
const STDERR_TAIL_LINES: usize = 5;
/// The longest stderr line kept for error messages, in bytes.
const STDERR_LINE_MAX: usize = 300;

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
    /// What it answered to `initialize`, raw.
    pub init_result: Option<Box<RawValue>>,
    /// Its lists (tools, prompts, resources, templates), as far as known, by
    /// `ListKind::index`.
    pub lists: [ListState; LIST_KINDS.len()],
    /// A reload removed it: it is neither listed nor callable, and stops once its last
    /// request has ended.
    pub removed: bool,
    /// A reload changed how it is spawned: the running process stops once idle, and the
    /// next request starts the new one.
    pub restart: bool,
    /// Repeated lines suppressed from its log: stderr, then non-JSON stdout.
    pub log_repeats: [Repeats; 2],
}

impl Backend {
    /// A stopped backend for `config`.
    pub fn new(config: BackendConfig, now: Instant) -> Backend {
        Backend {
            config,
            phase: Phase::Stopped,
            generation: 0,
            in_flight: 0,
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
            init_result: None,
            lists: Default::default(),
            removed: false,
            restart: false,
            log_repeats: Default::default(),
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

    /// Keeps a stderr line for error messages (shortened, oldest dropped first).
    pub fn remember_stderr(&mut self, line: &str) {
        let mut line = line.trim_end().to_string();
        if line.len() > STDERR_LINE_MAX {
            let mut cut = STDERR_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if line.is_empty() {
            return;
        }
        if self.stderr_tail.len() == STDERR_TAIL_LINES {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(line);
    }

    /// The stderr tail as a sentence suffix for error messages ("" when it wrote nothing).
    pub fn stderr_suffix(&self) -> String {
        if self.stderr_tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = self.stderr_tail.iter().map(String::as_str).collect();
        format!("; its last stderr lines: {}", lines.join(" | "))
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
            idle_timeout: None,
            disabled: false,
            prefix: "b".into(),
            tools: Default::default(),
            expose: crate::config::Expose::Meta,
            direct: vec![],
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
}
