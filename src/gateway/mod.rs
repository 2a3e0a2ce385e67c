//! The MCP behaviour of gangway, with no I/O: events in, output bytes and actions out.
//!
//! The runtime feeds every event (a line from the client or a backend, a process exit, a
//! due timer) into [`Gateway`]; the gateway appends the lines to send to [`Outbox`] and the
//! process work to do (spawn, close stdin, signal) to its action list. Time is always passed
//! in, so every protocol behaviour is testable without processes or sleeps.
//!
//! Where things live:
//! - this file: [`Gateway`], its event API (`on_*`), its actions and deadlines, and its own
//!   life (drain after stdin EOF, shutdown, exit);
//! - sessions (one per client): `session.rs`;
//! - what a client sends, by method: `client.rs`; which backend it goes to: `routing.rs`;
//! - requests in flight in both directions (the id table, forwarding, timeouts, failures):
//!   `requests.rs`; how much may wait for a backend: `backpressure.rs`;
//! - what a backend sends (answers, its requests to clients, notifications):
//!   `from_backend.rs`;
//! - backends: one backend's state in `backend.rs`, its life (start, crash back-off,
//!   idle, stop ladder) in `lifecycle.rs`, the gateway's side of that life in
//!   `processes.rs` (and `containers.rs` for docker names that wait for a removal);
//! - lists: `lists.rs`, `aggregate.rs` (answers merged across backends), `cached.rs`
//!   (the catalog), `naming.rs` and `tools.rs` (the meta-tools);
//! - tasks: `tasks.rs`; config reloads: `reload.rs`; output queues: `outbox.rs`.

mod aggregate;
mod asks;
pub mod backend;
mod backpressure;
mod cached;
mod client;
mod containers;
mod from_backend;
pub mod lifecycle;
pub mod lists;
pub mod modern;
pub mod naming;
pub mod outbox;
mod processes;
pub mod reload;
pub mod repeat;
mod requests;
mod routing;
mod session;
pub mod stats;
mod tasks;
pub mod tools;
mod warm;

use crate::catalog::Catalog;
use crate::config::{BackendConfig, Config, Expose};
use crate::timer::TimerWheel;
use crate::wire::ids::{IdTable, RawId};
use crate::wire::message::{write_error, write_request, Message, INVALID_REQUEST};
use aggregate::Aggregate;
use backend::Backend;
use lifecycle::Wakeup;
use lists::{ListKind, LIST_KINDS};
use log::{error, info, warn};
pub use outbox::OutBuf;
use requests::{Pending, PendingKind};
use session::Session;
pub use session::SessionId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// MCP revisions gangway speaks to clients, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// After stdin EOF, how long requests already in flight may still be answered.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// The shutdown gives up waiting for backends to be reaped after this long.
pub const EXIT_DEADLINE: Duration = Duration::from_millis(4400);
/// Bursts of list_changed notifications from backends are coalesced over this window.
const LIST_CHANGED_DELAY: Duration = Duration::from_millis(50);
/// Client input is not read while this many bytes wait to be written to the client, so a
/// client that stops reading cannot grow gangway's memory (whatever produced the output).
/// Eight pipes' worth: enough to keep a fast client busy.
pub const CLIENT_OUT_BOUND: usize = 512 * 1024;
/// Past this many bytes of requests waiting for one ready backend (written but not yet
/// read from its stdin), client input is paused while the backend keeps reading
/// (backpressure on a busy but healthy server): the requests wait in the client, not in
/// gangway's memory. Eight pipes' worth, so the backend never waits for gangway.
pub const BACKEND_IN_PAUSE: usize = 512 * 1024;
/// Bytes of requests that may wait for one backend (queued behind its start, or written
/// but not yet read from its stdin) before any is refused: past it, a backend that took
/// none of its input for [`BACKEND_STALL`] (it pauses nobody then), or is still starting,
/// has further requests refused with an error. One message always fits.
pub const BACKEND_IN_BOUND: usize = 8 * 1024 * 1024;
/// However a backend reads, at most this much waits for it; beyond it requests are
/// refused (what one turn of client input can add past [`BACKEND_IN_BOUND`]).
pub const BACKEND_IN_MAX: usize = 64 * 1024 * 1024;
/// A backend that took none of the bytes waiting for it for this long is not reading.
pub const BACKEND_STALL: Duration = Duration::from_secs(1);
/// Requests one backend may have waiting for the client's answer (sampling, elicitation,
/// roots, ping); more are refused with an error to the backend.
pub const TO_CLIENT_MAX: usize = 16;
/// The longest a backend's `ping` to the client waits (less when the backend's `timeout`
/// or `client_request_timeout` is shorter): a live client answers a ping at once.
pub const PING_TO_CLIENT_MAX: Duration = Duration::from_secs(10);

/// Process work the runtime must do for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Spawn the backend with this index (its config is `Gateway::backend_config`) now;
    /// report failure with `on_spawn_failed`. It is asked for only once the process may
    /// start (a fixed container name waits for `on_container_removed`).
    Spawn(usize),
    /// Close the backend's stdin (the first step of the stop ladder).
    CloseStdin(usize),
    /// Send a signal to the backend's process group.
    Signal(usize, StopSignal),
    /// Everything is stopped: flush what is queued for the client and exit 0.
    Exit,
}

/// The signals of the stop ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: asks the process to exit.
    Term,
    /// SIGKILL: ends it.
    Kill,
}

impl StopSignal {
    /// The signal's conventional name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
        }
    }
}

/// Bytes waiting to be written to backends, one queue each (a session's queue is in the
/// session: [`Gateway::session_out`]).
#[derive(Debug, Default)]
pub struct Outbox {
    /// Lines for each backend's stdin, by backend index.
    pub backends: Vec<OutBuf>,
}

/// Deadlines the gateway sets.
#[derive(Debug, Clone, Copy)]
enum Timer {
    Request(u64),
    /// The retry of the call with this gateway id, suspended for its 2026-07-28 client's
    /// answer to a backend's request, is due.
    Ask(u64),
    /// A step of backend `.0`'s life: start progress, idle check or stop ladder.
    Backend(usize, Wakeup),
    ListChanged(ListKind),
    /// The aggregate with this id has waited `LIST_WAIT` for lists.
    ListWait(u64),
    /// A backend behind on its input may count as stalled now (client input paused for it
    /// is then read again).
    InputStall,
    Drain,
    ExitDeadline,
    /// Warm backend `.0`'s pause after crashes is over: start it again.
    Warm(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Stdin ended; requests in flight may still finish.
    Draining,
    /// Backends are being stopped; exit follows.
    ShuttingDown,
    Exited,
}

/// The sans-IO gateway. See the module docs.
#[derive(Debug)]
pub struct Gateway {
    /// The top-level `expose`, which decides whether the meta-tools exist when no backend
    /// is configured.
    expose: Expose,
    /// Between a backend's prefix and a tool or prompt name.
    separator: String,
    /// An instant and the wall-clock time then (seconds since the Unix epoch), from which
    /// the wall-clock time of any later instant is derived.
    wall_origin: (Instant, u64),
    /// Live backends (not removed by a reload) in config order: listing order.
    order: Vec<usize>,
    /// Exposed tool and prompt names, by `ListKind::index` (only Tools and Prompts are used).
    names: [naming::NameTable; 2],
    /// Renamings already reported, so a rebuild logs only new ones.
    reported: std::collections::HashSet<String>,
    /// What backends reported in earlier runs; `None` when the catalog is off.
    catalog: Option<Catalog>,
    /// The catalog changed since the runtime last saved it.
    catalog_dirty: bool,
    config_path: std::path::PathBuf,
    backends: Vec<Backend>,
    ids: IdTable<Pending>,
    timers: TimerWheel<Timer>,
    aggregates: HashMap<u64, Aggregate>,
    task_lists: HashMap<u64, tasks::TaskList>,
    /// Tasks backends created for sessions: their owners and whether they still run.
    tasks: tasks::Tasks,
    /// The process slot of each (session-scoped backend, session) pair.
    instances: HashMap<(usize, SessionId), usize>,
    next_aggregate: u64,
    /// The queued output; the runtime writes and consumes it.
    pub out: Outbox,
    actions: Vec<Action>,
    /// `initialize` params for backends: the version, capabilities and info of the client
    /// that initialized last.
    backend_init_params: Vec<u8>,
    /// The clients, by id; a session that ended is gone from here.
    sessions: std::collections::BTreeMap<SessionId, Session>,
    /// The next session id (never reused).
    next_session: u32,
    /// The session whose message is being handled: answers to it go to its output.
    handling: SessionId,
    /// Output for a session that no longer exists is written here and dropped.
    void: OutBuf,
    /// A list_changed notification to the client is scheduled, by `ListKind::index`.
    list_changed_armed: [bool; LIST_KINDS.len()],
    /// Progress tokens of requests in flight: (backend, token) -> gateway id.
    progress: HashMap<(usize, RawId), u64>,
    /// Backends' requests waiting for 2026-07-28 clients' retries, by `requestState`.
    asks: asks::Asks,
    /// Set while a request deferred until lists were fetched is processed again, so it is
    /// not deferred twice.
    retrying: bool,
    /// Client lines (and their sessions) to process again once the lists they waited for
    /// are known.
    deferred: Vec<(SessionId, Vec<u8>)>,
    life: Life,
    /// Serving keeps `keep_warm` backends warm (see [`Gateway::keep_warm`]).
    warm: bool,
    /// The config's `rate_limit`, for the sessions opened from now on.
    rate_limit: Option<crate::ratelimit::RateLimit>,
    /// Backends gangway disabled, with the reason (`BackendConfig::disabled_reason`), for
    /// the instructions and the meta-tools' errors.
    unavailable: Vec<(String, String)>,
    /// Every disabled backend (by the file or by gangway) with why, for the status page.
    disabled: Vec<(String, String)>,
}

impl Gateway {
    /// A gateway for the enabled backends of `config`; nothing is started. `unix_now` is
    /// the wall-clock time at `now`, in seconds since the Unix epoch: the gateway reads no
    /// clock, and dates what it writes to the catalog from these two.
    pub fn new(config: &Config, now: Instant, unix_now: u64) -> Gateway {
        let backends: Vec<Backend> = config
            .enabled()
            .map(|b| Backend::new(b.clone(), now))
            .collect();
        let mut gw = Gateway {
            expose: config.expose,
            separator: config.separator.clone(),
            wall_origin: (now, unix_now),
            order: (0..backends.len()).collect(),
            names: Default::default(),
            reported: Default::default(),
            catalog: None,
            catalog_dirty: false,
            config_path: config.path.clone(),
            out: Outbox {
                backends: backends.iter().map(|_| OutBuf::default()).collect(),
            },
            backends,
            ids: IdTable::new(),
            timers: TimerWheel::new(now),
            aggregates: HashMap::new(),
            task_lists: HashMap::new(),
            tasks: tasks::Tasks::default(),
            instances: HashMap::new(),
            next_aggregate: 1,
            actions: Vec::new(),
            backend_init_params: Vec::new(),
            sessions: Default::default(),
            next_session: 0,
            handling: SessionId(0),
            void: OutBuf::default(),
            list_changed_armed: [false; LIST_KINDS.len()],
            progress: HashMap::new(),
            asks: asks::Asks::default(),
            retrying: false,
            deferred: Vec::new(),
            life: Life::Running,
            unavailable: unavailable(config),
            disabled: disabled(config),
            rate_limit: config.rate_limit,
            warm: false,
        };
        gw.set_client_init(SUPPORTED_PROTOCOL_VERSIONS[0], None, None);
        gw
    }

    /// The wall-clock time at `now`, in seconds since the Unix epoch.
    fn unix_secs(&self, now: Instant) -> u64 {
        let (origin, unix) = self.wall_origin;
        unix.saturating_add(now.saturating_duration_since(origin).as_secs())
    }

    /// How many backends there are (enabled ones; indices are `0..backend_count()`).
    pub fn backend_count(&self) -> usize {
        self.backends.len()
    }

    /// The configuration of backend `b`.
    pub fn backend_config(&self, b: usize) -> Option<&BackendConfig> {
        self.backends.get(b).map(|be| &be.config)
    }

    /// Takes the process work queued since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The earliest deadline the runtime must wake up for, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Whether client input is still wanted (false once stdin ended or shutdown began).
    pub fn wants_client_input(&self) -> bool {
        self.life == Life::Running
    }

    /// Whether the runtime should read session `s`'s client input at `now`: it is wanted,
    /// the output for that client is under [`CLIENT_OUT_BOUND`] (a client that does not
    /// read its answers is not sent more work), and no backend that is still reading is
    /// more than [`BACKEND_IN_PAUSE`] behind. A backend that stopped reading (none of its
    /// input taken for [`BACKEND_STALL`]) pauses nobody: requests for it are refused.
    pub fn accepts_client_input(&self, now: Instant, s: SessionId) -> bool {
        self.wants_client_input()
            && self
                .sessions
                .get(&s)
                .is_some_and(|c| c.out.len() <= CLIENT_OUT_BOUND)
            && !(0..self.backends.len()).any(|b| {
                let be = &self.backends[b];
                be.lifecycle.is_ready()
                    && be.input.reading(now)
                    && self.waiting_input(b) > BACKEND_IN_PAUSE
            })
    }

    /// Opens a session for one of gangway's shell commands (`check`, `tools`, `call`),
    /// which look past what a client is offered: its meta-tools exist and reach every
    /// backend whatever its `expose`, `use_tool` ignores the `tools` filters,
    /// `discover_backend_tools` lists the tools they filter out too, and `use_tool`'s
    /// failures (a refusal, a crash, the backend's own error) are JSON-RPC errors, so the
    /// command can tell them from a tool's `isError` result.
    pub fn open_shell_session(&mut self) -> SessionId {
        let s = self.open_session();
        if let Some(c) = self.sessions.get_mut(&s) {
            c.shell = true;
            c.bucket = None;
        }
        s
    }

    /// Session `s`'s requests are not rate-limited here: its front limits them itself
    /// (the HTTP front, per token).
    pub fn exempt_from_rate_limit(&mut self, s: SessionId) {
        if let Some(c) = self.sessions.get_mut(&s) {
            c.bucket = None;
        }
    }

    /// Whether the session whose message is being handled is a shell command's.
    pub(super) fn handling_shell(&self) -> bool {
        self.sessions.get(&self.handling).is_some_and(|c| c.shell)
    }

    /// How many requests are tracked (client, backend and gangway's own).
    pub fn in_flight(&self) -> usize {
        self.ids.len() + self.aggregates.len() + self.task_lists.len()
    }

    // ----- events -----------------------------------------------------------------------

    /// A line from session `s`'s client (without its newline).
    pub fn on_client_line(&mut self, now: Instant, s: SessionId, line: &[u8]) {
        self.handling = s;
        self.client_line(now, line);
        self.settle(now);
    }

    /// [`Gateway::on_client_line`] for a message the front has parsed already (`gangway
    /// serve` reads each request to route its answer), so it is not scanned twice.
    pub fn on_client_message(&mut self, now: Instant, s: SessionId, msg: &Message<'_>) {
        self.handling = s;
        self.client_message(now, msg);
        self.settle(now);
    }

    /// The client closed gangway's stdin. With `wait_for_answers` (input was a file),
    /// requests in flight are answered before shutting down; otherwise they get
    /// `DRAIN_GRACE`.
    pub fn on_client_eof(&mut self, now: Instant, wait_for_answers: bool) {
        self.client_eof(now, wait_for_answers);
        self.settle(now);
    }

    /// SIGTERM or SIGINT (or the client stopped reading). A second call while shutting down
    /// kills every backend at once.
    pub fn on_terminate(&mut self, now: Instant) {
        self.terminate(now);
        self.settle(now);
    }

    /// A line from backend `b`'s stdout.
    pub fn on_backend_line(&mut self, now: Instant, b: usize, line: &[u8]) {
        self.backend_line(now, b, line);
        self.settle(now);
    }

    /// Backend `b` closed its stdout or stopped reading its stdin: it can no longer take
    /// part, so it is stopped (its exit is then treated as a crash).
    pub fn on_backend_closed(&mut self, now: Instant, b: usize) {
        self.backend_closed(now, b);
        self.settle(now);
    }

    /// Backend `b` could not be spawned (`error` says why).
    pub fn on_spawn_failed(&mut self, now: Instant, b: usize, error: &str) {
        self.spawn_failed(now, b, error);
        self.settle(now);
    }

    /// Backend `b`'s process exited; `status` describes how ("exit status 3", "signal 9").
    pub fn on_backend_exit(&mut self, now: Instant, b: usize, status: &str) {
        self.backend_exit(now, b, status);
        self.settle(now);
    }

    /// Fires every timer that is due at `now`, and notes which backends are behind on their
    /// input (see [`Gateway::accepts_client_input`]).
    pub fn on_timer(&mut self, now: Instant) {
        self.watch_inputs(now);
        self.timers_due(now);
        self.settle(now);
    }

    /// Session `s`'s client sent a line longer than `max_message_bytes`; it was discarded.
    pub fn on_client_oversize(&mut self, s: SessionId, len: usize, max: usize) {
        self.handling = s;
        let reason = format!(
            "message of {len} bytes exceeds max_message_bytes ({max}) and was discarded; raise \"max_message_bytes\" in the config if such messages are expected"
        );
        warn!("{reason}");
        write_error(self.reply(), b"null", INVALID_REQUEST, &reason);
    }

    /// Backend `b` wrote a line longer than `max_message_bytes`; it was discarded.
    pub fn on_backend_oversize(&mut self, b: usize, len: usize, max: usize) {
        if let Some(be) = self.backends.get(b) {
            warn!(
                "backend '{}' wrote a message of {len} bytes, over max_message_bytes ({max}); it was discarded (the request it answered will time out)",
                be.name()
            );
        }
    }

    /// A line from backend `b`'s stderr: logged under its name and kept for error messages.
    pub fn on_backend_stderr(&mut self, b: usize, line: &[u8]) {
        if let Some(be) = self.backends.get_mut(b) {
            be.stderr_line(line);
        }
    }

    // ----- the gateway's own life: drain, shutdown, exit ------------------------------

    /// After any event: finish a drain whose last request was answered, and exit once
    /// shutdown has stopped every backend. Checked here, once, rather than at every place
    /// a request can end or a backend can stop.
    fn settle(&mut self, now: Instant) {
        for (s, line) in std::mem::take(&mut self.deferred) {
            self.handling = s;
            self.retrying = true;
            self.client_line(now, &line);
            self.retrying = false;
        }
        if self.life == Life::Draining && self.client_requests_pending() == 0 {
            info!("requests in flight answered; shutting down");
            self.shutdown(now);
        }
        self.rewarm(now);
        let running = |be: &Backend| be.lifecycle.is_running();
        if self.life == Life::ShuttingDown && !self.backends.iter().any(running) {
            self.exit();
        }
        self.flush_modern();
    }

    fn client_eof(&mut self, now: Instant, wait_for_answers: bool) {
        let grace = (!wait_for_answers).then_some(DRAIN_GRACE);
        self.drain(now, "client closed stdin", grace);
    }

    /// Stops taking new work and shuts down once the requests in flight are answered, or
    /// after `grace` (`None`: no limit); `why` is logged.
    fn drain(&mut self, now: Instant, why: &str, grace: Option<Duration>) {
        if self.life != Life::Running {
            return;
        }
        // No retry can come now.
        self.end_all_asks(now);
        if self.client_requests_pending() == 0 {
            info!("{why}; shutting down");
            self.shutdown(now);
        } else {
            info!("{why}; finishing requests in flight before shutting down");
            self.life = Life::Draining;
            if let Some(grace) = grace {
                self.timers.insert(now + grace, Timer::Drain);
            }
        }
    }

    /// The service is asked to stop (`gangway serve` got SIGTERM): requests in flight may
    /// finish within `grace`, no new ones are taken, then every backend is stopped.
    pub fn on_drain(&mut self, now: Instant, grace: Duration) {
        self.drain(now, "asked to stop", Some(grace));
        self.settle(now);
    }

    fn terminate(&mut self, now: Instant) {
        if self.life == Life::ShuttingDown {
            warn!("second termination request: killing backends now");
            self.kill_all_and_exit(now);
            return;
        }
        self.shutdown(now);
    }

    /// Answers every request still pending with the shutdown error, kills every backend
    /// still running, and exits: exit follows at once, so no exit of theirs would answer
    /// those requests later.
    fn kill_all_and_exit(&mut self, now: Instant) {
        for b in 0..self.backends.len() {
            let reason = format!(
                "gangway is shutting down; backend '{}' was killed",
                self.backends[b].name()
            );
            self.fail_pending(now, b, &reason, true);
            if self.backends[b].lifecycle.is_running() {
                self.actions.push(Action::Signal(b, StopSignal::Kill));
            }
        }
        self.exit();
    }

    /// Handles every timer due at `now`; a backend's lifecycle timers go to
    /// [`Gateway::backend_wakeup`].
    fn timers_due(&mut self, now: Instant) {
        while let Some(t) = self.timers.poll(now) {
            match t {
                Timer::Request(gw) => self.request_timed_out(now, gw),
                Timer::Ask(gw) => self.ask_expired(now, gw),
                Timer::Backend(b, w) => self.backend_wakeup(now, b, w),
                Timer::ListWait(agg) => self.list_wait_over(agg),
                Timer::InputStall => {}
                Timer::Warm(b) => self.warm_due(now, b),
                Timer::ListChanged(kind) => {
                    self.list_changed_armed[kind.index()] = false;
                    if self.life == Life::Running {
                        for c in self.sessions.values_mut() {
                            write_request(c.queue().buf(), None, kind.list_changed(), None);
                        }
                    }
                }
                Timer::Drain => {
                    if self.life == Life::Draining {
                        info!(
                            "requests still in flight after the grace period; shutting down anyway"
                        );
                        self.shutdown(now);
                    }
                }
                Timer::ExitDeadline => {
                    if self.life == Life::ShuttingDown {
                        error!("backends did not exit in time; killing them and exiting");
                        self.kill_all_and_exit(now);
                    }
                }
            }
        }
    }

    fn shutdown(&mut self, now: Instant) {
        if matches!(self.life, Life::ShuttingDown | Life::Exited) {
            return;
        }
        self.life = Life::ShuttingDown;
        for b in 0..self.backends.len() {
            if self.backends[b].lifecycle.is_running() {
                self.stop(now, b);
            }
        }
        self.timers.insert(now + EXIT_DEADLINE, Timer::ExitDeadline);
    }

    fn exit(&mut self) {
        if self.life != Life::Exited {
            self.life = Life::Exited;
            self.actions.push(Action::Exit);
        }
    }
}

/// `start + d`, saturating far in the future instead of overflowing (a config may say
/// `"timeout": 1e19`).
fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(start)
}

/// `line` without trailing whitespace (a stray `\r`), so splices keep lines clean.
fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// The backends of `config` gangway disabled, with the reason.
/// Every disabled backend of `config` and why: gangway's reason, or the file's own
/// `"disabled": true`.
fn disabled(config: &Config) -> Vec<(String, String)> {
    config
        .backends
        .iter()
        .filter(|b| b.disabled)
        .map(|b| {
            let why = b
                .disabled_reason
                .clone()
                .unwrap_or_else(|| "\"disabled\": true in the config".to_string());
            (b.name.clone(), why)
        })
        .collect()
}

fn unavailable(config: &Config) -> Vec<(String, String)> {
    config
        .backends
        .iter()
        .filter_map(|b| Some((b.name.clone(), b.disabled_reason.clone()?)))
        .collect()
}

#[cfg(test)]
mod tests;
