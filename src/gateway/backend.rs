//! One backend's state: its [`Lifecycle`], the requests waiting for it to become ready,
//! and what it told us about itself (its lists, its stderr, its answer to `initialize`).

use super::backpressure::InputWatch;
use super::lifecycle::Lifecycle;
use super::lists::{Item, ListKind, LIST_KINDS};
use super::repeat::Repeats;
use crate::config::BackendConfig;
use crate::wire::message;
use log::{info, warn};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

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

/// One configured backend and everything gangway tracks about it. The fields the
/// gateway's files share are `pub(super)` (none is visible outside `gateway/`); its request
/// counts and what is kept of its output for error messages are private, changed only
/// through its methods, so their bounds and redaction hold wherever they are fed.
#[derive(Debug)]
pub struct Backend {
    /// Its configuration.
    pub(super) config: BackendConfig,
    /// Where it is in its life (start, ready, crash back-off, idle, stop ladder), with
    /// that life's timers.
    pub(super) lifecycle: Lifecycle,
    /// Requests (in either direction) tracked for this backend; it is idle at zero.
    in_flight: usize,
    /// Of those, its requests waiting for the client's answer (bounded by
    /// `TO_CLIENT_MAX`).
    to_client: usize,
    /// While more than `BACKEND_IN_BOUND` bytes wait for it: whether it still reads them.
    pub(super) input: InputWatch,
    /// A list answer was sent without its list of this kind (it took too long): the
    /// client hears list_changed once the list arrives. By `ListKind::index`.
    pub(super) late: [bool; LIST_KINDS.len()],
    /// Its start failed in an earlier run (from the catalog): until this time (seconds
    /// since the Unix epoch), list requests leave it out instead of starting it. The text
    /// says why.
    pub(super) lists_skipped_until: Option<(u64, String)>,
    /// The last error it sent with `"id": null` that could not be tied to one request
    /// (quoted when a request to it then times out).
    unattributed: Option<String>,
    /// Requests waiting for `Ready`.
    pub(super) queue: Vec<Queued>,
    /// The last lines it wrote to stderr.
    stderr_tail: VecDeque<String>,
    /// The first line it wrote to stdout that is not JSON-RPC (redacted, shortened): a
    /// server that logs to stdout, quoted when it fails to start or exits.
    noise: Option<String>,
    /// What it answered to `initialize`, raw.
    pub(super) init_result: Option<Box<RawValue>>,
    /// Its lists (tools, prompts, resources, templates), as far as known, by
    /// `ListKind::index`.
    pub(super) lists: [ListState; LIST_KINDS.len()],
    /// A reload removed it: it is neither listed nor callable, and stops once its last
    /// request has ended. (For a session's own instance: its session ended.)
    pub(super) removed: bool,
    /// This is the process of a `"scope": "session"` backend (its listed slot first) for
    /// one session: it serves only that session and is not listed itself.
    pub(super) instance_of: Option<(usize, super::SessionId)>,
    /// It was told (once) that its requests to clients cannot be tied to one session while
    /// it serves several.
    pub(super) warned_shared_ask: bool,
    /// What it did and how it went, for `/metrics` and the status page.
    pub(super) stats: super::stats::BackendStats,
    /// Its current process (pid) and container name, as the runtime reported them (for
    /// the status page only).
    pub(super) process: Option<(i32, Option<String>)>,
    /// Start it again once its process has exited (a restart asked for from the status
    /// page).
    pub(super) start_after_stop: bool,
    /// A wakeup is set for when its pause after crashes ends (it is kept warm).
    pub(super) warm_armed: bool,
    /// Stopped from the status page: not kept warm until started again.
    pub(super) warm_held: bool,
    /// Repeated lines suppressed from its log: stderr, then non-JSON stdout.
    log_repeats: [Repeats; 2],
}

impl Backend {
    /// A stopped backend for `config`.
    pub fn new(config: BackendConfig, now: Instant) -> Backend {
        Backend {
            config,
            lifecycle: Lifecycle::new(now),
            in_flight: 0,
            to_client: 0,
            input: InputWatch::default(),
            unattributed: None,
            late: [false; LIST_KINDS.len()],
            lists_skipped_until: None,
            queue: Vec::new(),
            stderr_tail: VecDeque::new(),
            noise: None,
            init_result: None,
            lists: Default::default(),
            removed: false,
            instance_of: None,
            warned_shared_ask: false,
            stats: Default::default(),
            process: None,
            start_after_stop: false,
            warm_armed: false,
            warm_held: false,
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

    /// Whether what it sends may reach session `s`: a session's own process (of a
    /// `"scope": "session"` backend) serves only that session.
    pub(super) fn serves(&self, s: super::SessionId) -> bool {
        self.instance_of.map_or(true, |(_, o)| o == s)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A new process of it starts: what it said, and what was kept of the last process's
    /// output, is forgotten (errors must quote this process's stderr, not an earlier
    /// one's).
    pub fn new_process(&mut self) {
        self.init_result = None;
        self.stderr_tail.clear();
        self.noise = None;
        self.unattributed = None;
    }

    /// Requests (in either direction) tracked for it; it is idle at zero.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Of those, its requests waiting for a client's answer (bounded by `TO_CLIENT_MAX`).
    pub fn to_client(&self) -> usize {
        self.to_client
    }

    /// A request for it (or, with `to_client`, its request to a client) is tracked.
    pub fn request_began(&mut self, to_client: bool) {
        self.in_flight += 1;
        if to_client {
            self.to_client += 1;
        }
    }

    /// A request counted by [`Backend::request_began`] ended: returns whether none is
    /// left in flight.
    pub fn request_ended(&mut self, to_client: bool) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if to_client {
            self.to_client = self.to_client.saturating_sub(1);
        }
        self.in_flight == 0
    }

    /// It sent an error with `"id": null` that could not be tied to one request: kept to
    /// be quoted when one of its requests times out (see [`Backend::unattributed_suffix`]).
    pub fn set_unattributed(&mut self, error: String) {
        self.unattributed = Some(error);
    }

    /// A line from its stderr: logged under its name (env values redacted; a line
    /// repeated over and over is logged once, then counted) and kept for error messages.
    pub fn stderr_line(&mut self, line: &[u8]) {
        // Env values are never logged, even when a backend prints its token.
        let text = self.config.redact(&String::from_utf8_lossy(line));
        let config = &self.config;
        let seen = self.log_repeats[0].see(line, || {
            config.redact(&message::excerpt(super::trim_end(line)))
        });
        if let Some((excerpt, n)) = seen.summary {
            info!(target: "gangway::backend", "[{}] {excerpt} (repeated {n} times)", self.name());
        }
        if seen.show {
            info!(target: "gangway::backend", "[{}] {}", self.name(), text.trim_end());
            self.remember_stderr(&text);
        }
    }

    /// A stdout line that is not JSON-RPC (`why` says what is wrong with it): skipped,
    /// logged (redacted, repeats counted) and, the first one, kept for error messages.
    pub fn noise_line(&mut self, line: &[u8], why: &str) {
        let config = &self.config;
        let seen = self.log_repeats[1].see(line, || config.redact(&message::excerpt(line)));
        if let Some((text, n)) = seen.summary {
            let name = self.name();
            warn!("backend '{name}' wrote that line again, skipped: {text} (repeated {n} times)");
        }
        self.remember_noise(&String::from_utf8_lossy(line));
        if seen.show {
            let name = self.name();
            let text = self.config.redact(&message::excerpt(line));
            warn!("backend '{name}' wrote a line that is not JSON-RPC ({why}), skipped: {text}");
        }
    }

    /// Its process is gone: the counts of lines suppressed last are logged.
    pub fn log_repeats_end(&mut self) {
        let name = self.config.name.as_str();
        if let Some((excerpt, n)) = self.log_repeats[0].finish() {
            info!(target: "gangway::backend", "[{name}] {excerpt} (repeated {n} times)");
        }
        if let Some((text, n)) = self.log_repeats[1].finish() {
            warn!("backend '{name}' wrote that line again, skipped: {text} (repeated {n} times)");
        }
    }

    /// Keeps a stderr line for error messages (its env values redacted, shortened, oldest
    /// dropped first).
    fn remember_stderr(&mut self, line: &str) {
        let line = shorten(self.config.redact(line.trim_end()));
        if line.is_empty() {
            return;
        }
        if self.stderr_tail.len() == STDERR_TAIL_LINES {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(line);
    }

    /// The last lines it wrote to stderr, oldest first (redacted and shortened).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr_tail.iter().cloned().collect()
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
    fn remember_noise(&mut self, line: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use std::time::Duration;

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
            keep_warm: 0,
            remote: false,
            sse: false,
            disabled_reason: None,
            env_remove: vec![],
            vars: vec![],
        };
        Backend::new(config, Instant::now())
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
