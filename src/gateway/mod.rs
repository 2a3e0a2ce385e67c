//! The MCP behaviour of gangway, with no I/O: events in, output bytes and actions out.
//!
//! The runtime feeds every event (a line from the client or a backend, a process exit, a
//! due timer) into [`Gateway`]; the gateway appends the lines to send to [`Outbox`] and the
//! process work to do (spawn, close stdin, signal) to its action list. Time is always passed
//! in, so every protocol behaviour is testable without processes or sleeps.

mod aggregate;
pub mod backend;
mod cached;
mod containers;
pub mod lifecycle;
pub mod lists;
pub mod naming;
pub mod outbox;
pub mod reload;
pub mod repeat;
mod session;
mod tasks;
pub mod tools;

use crate::catalog::Catalog;
use crate::config::{BackendConfig, Config, Expose};
use crate::timer::{TimerHandle, TimerWheel};
use crate::wire::ids::{parse_gateway_id, IdTable, IdText, Peer, RawId};
use crate::wire::message::{
    self, span_of, splice, write_error, write_request, write_result, Kind, Message, BACKEND_ERROR,
    INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT, RESOURCE_NOT_FOUND,
};
use aggregate::{Aggregate, AggregateKind};
use backend::{Backend, ListState, Queued};
use lifecycle::{Crash, Exit, Paused, Phase, Step, StopDecision, Wakeup, FAILED_PAUSE, STOP_GRACE};
use lists::{ListKind, LIST_KINDS};
use log::{debug, error, info, warn};
pub use outbox::OutBuf;
use serde::Deserialize;
use serde_json::value::RawValue;
use session::Session;
pub use session::SessionId;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tasks::TaskOp;

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
pub const CLIENT_OUT_BOUND: usize = 4 * 1024 * 1024;
/// Bytes of requests that may wait for one backend (queued behind its start, or written
/// but not yet read from its stdin). Past it, client input is paused while the backend
/// keeps reading (backpressure on a busy but healthy server); a backend that took none of
/// its input for [`BACKEND_STALL`], or is still starting, pauses nobody and has further
/// requests refused with an error. One message always fits.
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

/// What a tracked request is, so its answer (or failure) is handled right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    /// A client request forwarded with its id rewritten.
    Forward,
    /// A client `use_tool` call: failures become `isError` tool results.
    UseTool,
    /// gangway's own `initialize`.
    Init,
    /// gangway's own list request (one page of tools, prompts, resources or templates).
    List(ListKind),
    /// gangway's own request whose answer is not needed (`logging/setLevel`).
    Internal,
    /// gangway's own `tasks/list` page for the client's merged `tasks/list` with this id.
    TaskList(u64),
    /// A backend's request forwarded to the client.
    ToClient,
}

/// A tracked request's bookkeeping.
#[derive(Debug)]
struct Pending {
    backend: usize,
    kind: PendingKind,
    /// Written to the backend (false while queued behind a start).
    sent: bool,
    timer: Option<TimerHandle>,
    /// The client's progress token, while notifications for it are expected.
    token: Option<RawId>,
    /// The token the backend was sent instead, when the client's was already in use at
    /// that backend by another request (another session's, typically: SDKs number their
    /// tokens from the same start). Progress for it goes back with the client's token.
    wire_token: Option<RawId>,
    /// Where the answer carries task ids to prefix.
    task: TaskOp,
    /// The session the request belongs to: the one that sent it, or for a backend's
    /// request to a client, the one it was sent to. `None` for gangway's own.
    session: Option<SessionId>,
}

impl Pending {
    /// A request for backend `b`, not yet written, with no timer, token or task.
    fn new(backend: usize, kind: PendingKind) -> Pending {
        Pending {
            backend,
            kind,
            sent: false,
            timer: None,
            token: None,
            wire_token: None,
            task: TaskOp::None,
            session: None,
        }
    }
}

/// Deadlines the gateway sets.
#[derive(Debug, Clone, Copy)]
enum Timer {
    Request(u64),
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
    /// Set while a request deferred until lists were fetched is processed again, so it is
    /// not deferred twice.
    retrying: bool,
    /// Client lines (and their sessions) to process again once the lists they waited for
    /// are known.
    deferred: Vec<(SessionId, Vec<u8>)>,
    life: Life,
    /// Backends gangway disabled, with the reason (`BackendConfig::disabled_reason`), for
    /// the instructions and the meta-tools' errors.
    unavailable: Vec<(String, String)>,
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
            retrying: false,
            deferred: Vec::new(),
            life: Life::Running,
            unavailable: unavailable(config),
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
    /// more than [`BACKEND_IN_BOUND`] behind. A backend that stopped reading (none of its
    /// input taken for [`BACKEND_STALL`]) pauses nobody: requests for it are refused.
    pub fn accepts_client_input(&self, now: Instant, s: SessionId) -> bool {
        self.wants_client_input()
            && self
                .sessions
                .get(&s)
                .is_some_and(|c| c.out.len() <= CLIENT_OUT_BOUND)
            && !self.backends.iter().any(|be| {
                be.lifecycle.is_ready()
                    && be.drain_watch.is_some_and(|(_, since)| {
                        now.saturating_duration_since(since) < BACKEND_STALL
                    })
            })
    }

    /// Notes, for each backend more than [`BACKEND_IN_BOUND`] behind, when it last took
    /// some of its input (a wakeup is set for when it would count as stalled); forgets it
    /// for those that caught up.
    fn watch_inputs(&mut self, now: Instant) {
        for b in 0..self.backends.len() {
            self.watch_input(now, b);
        }
    }

    /// [`Gateway::watch_inputs`] for backend `b`.
    fn watch_input(&mut self, now: Instant, b: usize) {
        let written = self.out.backends[b].written();
        let behind = self.waiting_input(b) > BACKEND_IN_BOUND;
        let be = &mut self.backends[b];
        if !behind || !be.lifecycle.is_ready() {
            be.drain_watch = None;
        } else if be.drain_watch.map_or(true, |(seen, _)| seen != written) {
            self.saw_progress(now, b, written);
        }
    }

    /// Bytes of requests waiting for backend `b`: queued behind its start, or written to
    /// its stdin's queue and not yet taken.
    fn waiting_input(&self, b: usize) -> usize {
        let queued: usize = self.backends[b].queue.iter().map(|q| q.bytes.len()).sum();
        self.out.backends[b].len() + queued
    }

    /// Backend `b`, behind on its input, had taken `written` bytes of it by `now`; a
    /// wakeup is set for when it would count as stalled, so paused input resumes then.
    fn saw_progress(&mut self, now: Instant, b: usize, written: u64) {
        let be = &mut self.backends[b];
        be.drain_watch = Some((written, now));
        if let Some(t) = be.stall_timer.take() {
            self.timers.cancel(t);
        }
        let wake = self.timers.insert(now + BACKEND_STALL, Timer::InputStall);
        self.backends[b].stall_timer = Some(wake);
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
        }
        s
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
        let running = |be: &Backend| be.lifecycle.is_running();
        if self.life == Life::ShuttingDown && !self.backends.iter().any(running) {
            self.exit();
        }
    }

    // ----- event handling -----------------------------------------------------------------

    fn client_line(&mut self, now: Instant, line: &[u8]) {
        let line = trim_end(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        // A deferred request was accepted before shutdown began, so it still gets its
        // answer (its backend is then unavailable, which says why).
        if matches!(self.life, Life::ShuttingDown | Life::Exited) && !self.retrying {
            debug!("client line ignored: gangway is shutting down");
            return;
        }
        let msg = match Message::parse(line) {
            Ok(m) => m,
            Err(bad) => {
                let id = bad.id.map_or(&b"null"[..], |id| id.get().as_bytes());
                warn!(
                    "client sent an invalid message ({}): {}",
                    bad.reason,
                    message::excerpt(line)
                );
                write_error(self.reply(), id, bad.code, &bad.reason);
                return;
            }
        };
        match msg.kind {
            Kind::Request => self.client_request(now, &msg),
            Kind::Notification => self.client_notification(now, &msg),
            Kind::Response => self.client_response(now, &msg),
        }
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

    fn client_eof(&mut self, now: Instant, wait_for_answers: bool) {
        if self.life != Life::Running {
            return;
        }
        if self.client_requests_pending() == 0 {
            info!("client closed stdin; shutting down");
            self.shutdown(now);
        } else {
            info!("client closed stdin; finishing requests in flight before shutting down");
            self.life = Life::Draining;
            if !wait_for_answers {
                self.timers.insert(now + DRAIN_GRACE, Timer::Drain);
            }
        }
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

    fn backend_line(&mut self, now: Instant, b: usize, line: &[u8]) {
        let line = trim_end(line);
        if b >= self.backends.len() || line.is_empty() {
            return;
        }
        let msg = match Message::parse(line) {
            Ok(m) => m,
            Err(_) if null_id_error(line).is_some() => {
                self.null_id_error(now, b, line);
                return;
            }
            Err(bad) => {
                let be = &mut self.backends[b];
                let seen =
                    be.log_repeats[1].see(line, || be.config.redact(&message::excerpt(line)));
                if let Some((text, n)) = seen.summary {
                    let name = be.name();
                    warn!("backend '{name}' wrote that line again, skipped: {text} (repeated {n} times)");
                }
                be.remember_noise(&String::from_utf8_lossy(line));
                if seen.show {
                    let (name, why) = (be.name(), bad.reason);
                    let text = be.config.redact(&message::excerpt(line));
                    warn!("backend '{name}' wrote a line that is not JSON-RPC ({why}), skipped: {text}");
                }
                return;
            }
        };
        match msg.kind {
            Kind::Response => self.backend_response(now, b, &msg),
            Kind::Request => self.backend_request(now, b, &msg),
            Kind::Notification => self.backend_notification(now, b, &msg),
        }
    }

    /// Backend `b` answered with an error whose id is `null`: it could not read a request
    /// (JSON it rejects, such as a lone surrogate escape, `1e999` or deep nesting). With
    /// one request in flight the error is that request's answer; otherwise it is logged
    /// and quoted when one of them times out.
    fn null_id_error(&mut self, now: Instant, b: usize, line: &[u8]) {
        let said = null_id_error(line).unwrap_or_default();
        let name = self.backends[b].name().to_string();
        let sent = self.ids.ids_where(|e| {
            e.data.backend == b && e.data.sent && e.data.kind != PendingKind::ToClient
        });
        let [gw] = sent[..] else {
            warn!(
                "backend '{name}' sent an error without a request id, so gangway cannot tell which of its {} requests in flight it is about: {said}",
                sent.len()
            );
            self.backends[b].unattributed = Some(said);
            return;
        };
        let text = format!(
            "backend '{name}' could not process the request gangway forwarded to it and answered without a request id: {said}"
        );
        warn!("{text}");
        let mut answer = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{gw},\"error\":{{\"code\":{BACKEND_ERROR},\"message\":"
        )
        .into_bytes();
        message::write_json_string(&mut answer, &text);
        answer.extend_from_slice(b"}}");
        if let Ok(msg) = Message::parse(&answer) {
            self.backend_response(now, b, &msg);
        }
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
            // Env values are never logged, even when a backend prints its token.
            let text = be.config.redact(&String::from_utf8_lossy(line));
            let seen =
                be.log_repeats[0].see(line, || be.config.redact(&message::excerpt(trim_end(line))));
            if let Some((excerpt, n)) = seen.summary {
                info!(target: "gangway::backend", "[{}] {excerpt} (repeated {n} times)", be.name());
            }
            if seen.show {
                info!(target: "gangway::backend", "[{}] {}", be.name(), text.trim_end());
                be.remember_stderr(&text);
            }
        }
    }

    /// Backend `b`'s process is gone: the counts of lines suppressed last are logged.
    fn log_repeats_end(&mut self, b: usize) {
        let be = &mut self.backends[b];
        let name = be.config.name.as_str();
        if let Some((excerpt, n)) = be.log_repeats[0].finish() {
            info!(target: "gangway::backend", "[{name}] {excerpt} (repeated {n} times)");
        }
        if let Some((text, n)) = be.log_repeats[1].finish() {
            warn!("backend '{name}' wrote that line again, skipped: {text} (repeated {n} times)");
        }
    }

    fn backend_closed(&mut self, now: Instant, b: usize) {
        let Some(be) = self.backends.get_mut(b) else {
            return;
        };
        if be.lifecycle.reads_input() {
            debug!("backend '{}' closed its pipes", be.name());
            be.lifecycle.mark_failing(None);
            self.stop(now, b);
        }
    }

    fn spawn_failed(&mut self, now: Instant, b: usize, error: &str) {
        if b >= self.backends.len() {
            return;
        }
        self.process_gone(b);
        let be = &self.backends[b];
        let reason = format!(
            "backend '{}' could not be started: {error}. Check its \"command\" ({}) in {}",
            be.name(),
            be.config.command,
            self.config_path.display()
        );
        error!("{reason}");
        self.crashed(now, b, reason);
    }

    fn backend_exit(&mut self, now: Instant, b: usize, status: &str) {
        if b >= self.backends.len() {
            return;
        }
        self.process_gone(b);
        let be = &mut self.backends[b];
        let name = be.name().to_string();
        let shutting_down = matches!(self.life, Life::ShuttingDown | Life::Exited);
        let exit = be.lifecycle.on_exit(shutting_down);
        if shutting_down {
            info!("backend '{name}' stopped ({status})");
            let reason = format!("gangway is shutting down; backend '{name}' was stopped");
            self.fail_pending(now, b, &reason, true);
            return;
        }
        if exit == Exit::Stopped {
            info!("backend '{name}' stopped ({status})");
            let reason = format!("backend '{name}' was stopped");
            self.fail_pending(now, b, &reason, false);
            let ids = &self.ids;
            self.backends[b].queue.retain(|q| ids.get(q.gw).is_some());
            if !self.backends[b].queue.is_empty() {
                self.start(now, b);
            }
            return;
        }
        let reason = format!("backend '{name}' exited ({status}){}", be.stderr_suffix());
        error!("{reason}");
        self.crashed(now, b, reason);
    }

    fn timers_due(&mut self, now: Instant) {
        while let Some(t) = self.timers.poll(now) {
            match t {
                Timer::Request(gw) => self.request_timed_out(now, gw),
                Timer::Backend(b, w) => self.backend_wakeup(now, b, w),
                Timer::ListWait(agg) => self.list_wait_over(agg),
                Timer::InputStall => {}
                Timer::ListChanged(kind) => {
                    self.list_changed_armed[kind.index()] = false;
                    if self.life == Life::Running {
                        for c in self.sessions.values_mut() {
                            write_request(c.out.buf(), None, kind.list_changed(), None);
                        }
                    }
                }
                Timer::Drain => {
                    if self.life == Life::Draining {
                        info!("requests still in flight after stdin closed; shutting down anyway");
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

    // ----- client requests --------------------------------------------------------------

    fn client_request(&mut self, now: Instant, msg: &Message<'_>) {
        let Some(id) = msg.id.map(|i| i.get().as_bytes()) else {
            return;
        };
        let method = msg.method.unwrap_or("");
        match method {
            "initialize" => self.initialize(id, msg.params),
            "ping" => write_result(self.reply(), id, b"{}"),
            "tools/list" => self.tools_list(now, id, msg.params),
            "tools/call" => self.tools_call(now, msg, id),
            "prompts/list" => self.list_request(now, id, msg.params, ListKind::Prompts),
            "resources/list" => self.list_request(now, id, msg.params, ListKind::Resources),
            "resources/templates/list" => {
                self.list_request(now, id, msg.params, ListKind::Templates)
            }
            "prompts/get" => self.prompts_get(now, msg, id),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.resource_request(now, msg, id)
            }
            "completion/complete" => self.complete(now, msg, id),
            "logging/setLevel" => self.set_log_level(now, id, msg.params),
            "tasks/get" | "tasks/cancel" => self.task_request(now, msg, id, TaskOp::Single),
            "tasks/result" => self.task_request(now, msg, id, TaskOp::None),
            "tasks/list" => self.tasks_list(now, id),
            _ => {
                let text = format!("Method not found: {method}");
                write_error(self.reply(), id, METHOD_NOT_FOUND, &text);
            }
        }
    }

    fn initialize(&mut self, id: &[u8], params: Option<&RawValue>) {
        #[derive(Deserialize, Default)]
        struct Init<'a> {
            #[serde(rename = "protocolVersion", default)]
            protocol_version: Option<String>,
            #[serde(borrow, default)]
            capabilities: Option<&'a RawValue>,
            #[serde(rename = "clientInfo", borrow, default)]
            client_info: Option<&'a RawValue>,
        }
        let init: Init<'_> = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let requested = init.protocol_version.as_deref().unwrap_or("");
        let version = SUPPORTED_PROTOCOL_VERSIONS
            .iter()
            .find(|v| **v == requested)
            .copied()
            .unwrap_or(SUPPORTED_PROTOCOL_VERSIONS[0]);
        self.set_client_init(version, init.capabilities, init.client_info);
        let result = serde_json::json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "completions": {},
                "logging": {},
                "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
            },
            "serverInfo": {"name": "gangway", "version": env!("CARGO_PKG_VERSION")},
            "instructions": self.instructions(),
        });
        write_result(self.reply(), id, result.to_string().as_bytes());
    }

    fn set_client_init(&mut self, version: &str, caps: Option<&RawValue>, info: Option<&RawValue>) {
        let caps = caps.map_or("{}", |c| c.get());
        let default_info = format!(
            "{{\"name\":\"gangway\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        let info = info.map_or(default_info.as_str(), |i| i.get());
        if let Some(c) = self.sessions.get_mut(&self.handling) {
            c.caps = serde_json::from_str(caps).unwrap_or(serde_json::Value::Null);
        }
        self.backend_init_params = format!(
            "{{\"protocolVersion\":\"{version}\",\"capabilities\":{caps},\"clientInfo\":{info}}}"
        )
        .into_bytes();
    }

    fn instructions(&self) -> String {
        let mut s = format!("gangway fronts {} MCP server(s):\n", self.order.len());
        for &b in &self.order {
            let be = &self.backends[b];
            // A Claude Desktop file has no descriptions: the server's own, from its last
            // initialize (or the catalog), says more than nothing.
            let reported = || {
                let catalog = self.catalog.as_ref().and_then(|c| c.get(&be.config));
                let init = be.init_result.as_deref();
                init.or_else(|| catalog.and_then(|e| e.init.as_deref()))
                    .and_then(crate::catalog::server_description)
            };
            let desc = be
                .config
                .description
                .clone()
                .or_else(reported)
                .unwrap_or_else(|| "(no description)".to_string());
            let how = match (be.config.expose, be.config.direct.is_empty()) {
                (Expose::Meta, true) => "through use_tool".to_string(),
                (Expose::Meta, false) => format!(
                    "through use_tool; some tools also directly as {}",
                    naming::candidate(&be.config.prefix, &self.separator, "TOOL")
                ),
                (Expose::Tools, _) => format!(
                    "tools named {}",
                    naming::candidate(&be.config.prefix, &self.separator, "TOOL")
                ),
                (Expose::Both, _) => format!(
                    "tools named {} and through use_tool",
                    naming::candidate(&be.config.prefix, &self.separator, "TOOL")
                ),
            };
            s.push_str(&format!("- {} ({how}): {desc}\n", be.name()));
        }
        for (name, reason) in &self.unavailable {
            s.push_str(&format!("- {name} (disabled): {reason}\n"));
        }
        if self.meta_enabled() {
            s.push_str(
                "Call discover_backend_tools (optionally with backend_server) to see a backend's tools, then use_tool with backend_server, server_tool and tool_arguments to call one.",
            );
        }
        s
    }

    /// The live backends (in config order) reached through the meta-tools.
    fn meta_backends(&self) -> Vec<usize> {
        let meta = |b: &usize| self.backends[*b].config.in_meta();
        self.order.iter().copied().filter(meta).collect()
    }

    /// Whether `use_tool` and `discover_backend_tools` exist: some backend is reached
    /// through them, or (with no backend at all) the top-level `expose` asks for them.
    fn meta_enabled(&self) -> bool {
        let live = self.order.iter().map(|b| &self.backends[*b].config);
        naming::meta_listed(self.expose, live)
    }

    /// The live backends with tools listed directly.
    fn direct_backends(&self) -> Vec<usize> {
        let direct = |b: &usize| has_direct_tools(&self.backends[*b].config);
        self.order.iter().copied().filter(direct).collect()
    }

    /// The names of the backends the meta-tools reach, for their schema and errors.
    fn backend_names(&self) -> Vec<&str> {
        let metas = self.meta_backends();
        metas.iter().map(|b| self.backends[*b].name()).collect()
    }

    /// The meta-tools' error for a backend they do not reach: why it is disabled, if
    /// gangway disabled it, else that it is unknown; `available` lists the valid names.
    fn unknown_backend(&self, name: &str, available: &str) -> String {
        match self.unavailable.iter().find(|(n, _)| n == name) {
            Some((_, reason)) => format!(
                "Error: backend server {name} is disabled: {reason}. Available servers: {available}"
            ),
            None => {
                format!("Error: Unknown backend server: {name}. Available servers: {available}")
            }
        }
    }

    /// The live backend called `name`.
    fn backend_named(&self, name: &str) -> Option<usize> {
        self.order
            .iter()
            .copied()
            .find(|b| self.backends[*b].name() == name)
    }

    fn tools_list(&mut self, now: Instant, id: &[u8], params: Option<&RawValue>) {
        if self.refuse_cursor(id, params) {
            return;
        }
        let direct = self.direct_backends();
        if direct.is_empty() {
            let defs = if self.meta_enabled() {
                tools::meta_tool_definitions(&self.backend_names())
            } else {
                String::new()
            };
            let body = format!("{{\"tools\":[{defs}]}}");
            write_result(self.reply(), id, body.as_bytes());
            return;
        }
        let with_meta = self.meta_enabled();
        let parts = direct.into_iter().map(|b| (b, ListKind::Tools)).collect();
        let kind = AggregateKind::List {
            kind: ListKind::Tools,
            with_meta,
        };
        self.start_aggregate(now, id, kind, parts);
    }

    /// A merged list: every live backend's list of `kind`, fetched as needed.
    fn list_request(&mut self, now: Instant, id: &[u8], params: Option<&RawValue>, kind: ListKind) {
        if self.refuse_cursor(id, params) {
            return;
        }
        let all = self.order.iter().map(|&b| (b, kind)).collect();
        let kind = AggregateKind::List {
            kind,
            with_meta: false,
        };
        self.start_aggregate(now, id, kind, all);
    }

    /// gangway answers every list in one page and issues no cursors, so a cursor is an
    /// error; answers it and returns true when there is one.
    fn refuse_cursor(&mut self, id: &[u8], params: Option<&RawValue>) -> bool {
        #[derive(Deserialize, Default)]
        struct ListParams {
            #[serde(default)]
            cursor: Option<String>,
        }
        let p: ListParams = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        if p.cursor.is_some() {
            let text =
                "Invalid cursor: gangway returns each list whole in one page and issues no cursors";
            write_error(self.reply(), id, INVALID_PARAMS, text);
        }
        p.cursor.is_some()
    }

    fn tools_call(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        let params: Option<tools::CallParams<'_>> =
            msg.params.and_then(|p| serde_json::from_str(p.get()).ok());
        let Some(params) = params else {
            let text = "tools/call needs params with a string \"name\"";
            write_error(self.reply(), id, INVALID_PARAMS, text);
            return;
        };
        let name: String = serde_json::from_str(params.name.get()).unwrap_or_default();
        let meta = self.meta_enabled() || self.handling_shell();
        if meta && name == tools::USE_TOOL {
            self.use_tool(now, msg, id, &params);
            return;
        }
        if meta && name == tools::DISCOVER {
            self.discover(now, id, &params);
            return;
        }
        let (b, tool) = match self.resolve_tool(&name) {
            Ok(found) => found,
            Err(text) => {
                write_error(self.reply(), id, INVALID_PARAMS, &text);
                return;
            }
        };
        let mut new_name = Vec::with_capacity(tool.len() + 2);
        message::write_json_string(&mut new_name, &tool);
        let Some(name_span) = span_of(msg.line, params.name.get()) else {
            return;
        };
        let op = if params.task.is_some() {
            TaskOp::Create
        } else {
            TaskOp::None
        };
        let edit = Some((name_span, new_name));
        self.forward(now, b, msg, PendingKind::Forward, edit, op);
    }

    /// The backend and own name of an exposed tool name, or the client's error text.
    fn resolve_tool(&self, name: &str) -> Result<(usize, String), String> {
        if let Some((b, own)) = self.resolve_exposed(ListKind::Tools, name) {
            let config = &self.backends[b].config;
            if !config.tools.permits(&own) {
                return Err(format!(
                    "Tool '{own}' of backend '{}' is not offered: its config's tools.allow/tools.deny filter it out",
                    self.backends[b].name()
                ));
            }
            if !config.is_direct(&own) {
                return Err(format!(
                    "Tool '{own}' of backend '{}' is not listed directly; call it with use_tool (backend_server \"{}\", server_tool \"{own}\"). use_tool reaches backends: {}",
                    self.backends[b].name(),
                    self.backends[b].name(),
                    self.backend_names().join(", ")
                ));
            }
            self.check_tool_known(b, &own)?;
            return Ok((b, own));
        }
        let meta = if self.meta_enabled() {
            format!(
                "gangway also offers {} and {} for backends: {}. ",
                tools::USE_TOOL,
                tools::DISCOVER,
                self.backend_names().join(", ")
            )
        } else {
            String::new()
        };
        let direct = self.direct_backends();
        let direct: Vec<&str> = direct.iter().map(|b| self.backends[*b].name()).collect();
        let listed = if direct.is_empty() {
            "No backend has tools listed directly. ".to_string()
        } else {
            format!(
                "Tools listed directly are named PREFIX{}TOOL and come from backends: {}; call tools/list to see them. ",
                self.separator,
                direct.join(", ")
            )
        };
        Err(format!("Unknown tool: {name}. {listed}{meta}")
            .trim_end()
            .to_string())
    }

    /// The (backend, own name) an exposed tool or prompt name stands for: from the name
    /// table when the backend's list is known, else by its prefix and the separator (the
    /// longest matching prefix wins, since prefixes may contain the separator).
    fn resolve_exposed(&self, kind: ListKind, name: &str) -> Option<(usize, String)> {
        if let Some((b, own)) = self.names[kind.index()].resolve(name) {
            if self.order.contains(&b) {
                return Some((b, own.to_string()));
            }
        }
        self.split_prefixed(name, &self.separator, |c| &c.prefix)
    }

    /// The live backend whose `head` (its prefix, or its name) and `separator` begin
    /// `name`, and the rest of `name`. The longest matching head wins, since heads may
    /// contain the separator; an empty head matches any name whole.
    fn split_prefixed(
        &self,
        name: &str,
        separator: &str,
        head: impl Fn(&BackendConfig) -> &str,
    ) -> Option<(usize, String)> {
        self.order
            .iter()
            .filter_map(|&b| {
                let head = head(&self.backends[b].config);
                let rest = if head.is_empty() {
                    name
                } else {
                    name.strip_prefix(head)?.strip_prefix(separator)?
                };
                (!rest.is_empty()).then_some((b, head.len(), rest))
            })
            .max_by_key(|(_, len, _)| *len)
            .map(|(b, _, rest)| (b, rest.to_string()))
    }

    /// The backend and its own task id for a client task id `BACKEND__TASKID` (the longest
    /// matching backend name wins).
    fn resolve_task(&self, task_id: &str) -> Option<(usize, String)> {
        self.split_prefixed(task_id, tasks::TASK_SEPARATOR, |c| &c.name)
    }

    /// When the backend's tool list is known, refuses a tool it does not have.
    fn check_tool_known(&self, b: usize, tool: &str) -> Result<(), String> {
        let be = &self.backends[b];
        match be.known(ListKind::Tools) {
            Some(list) if !list.iter().any(|t| t.key == tool) => {
                let names: Vec<&str> = list
                    .iter()
                    .map(|t| t.key.as_str())
                    .filter(|t| be.config.tools.permits(t))
                    .collect();
                Err(format!(
                    "Unknown tool: backend '{}' has no tool '{tool}'. Its tools: {}",
                    be.name(),
                    names.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }

    fn use_tool(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        id: &[u8],
        params: &tools::CallParams<'_>,
    ) {
        let args: Result<tools::UseToolArgs<'_>, _> = match params.arguments {
            Some(a) => serde_json::from_str(a.get()),
            None => Ok(tools::UseToolArgs::default()),
        };
        let available = self.backend_names().join(", ");
        let shell = self.handling_shell();
        let fail = |gw: &mut Gateway, text: String| {
            if shell {
                write_error(gw.reply(), id, INVALID_PARAMS, &text);
            } else {
                write_result(gw.reply(), id, &tools::error_result(&text));
            }
        };
        let args = match args {
            Ok(a) => a,
            Err(e) => {
                return fail(self, format!("Error: use_tool arguments must be an object with backend_server, server_tool and tool_arguments ({e}). Available servers: {available}"));
            }
        };
        let Some(backend) = args.backend_server.as_deref() else {
            return fail(self, format!("Error: Missing required parameter: backend_server. Available servers: {available}"));
        };
        let found = self.backend_named(backend);
        let Some(b) = found.filter(|b| shell || self.backends[*b].config.in_meta()) else {
            let text = self.unknown_backend(backend, &available);
            return fail(self, text);
        };
        let Some(tool) = args.server_tool.as_deref() else {
            return fail(self, format!("Error: Missing required parameter: server_tool. Call discover_backend_tools with backend_server \"{backend}\" to list its tools"));
        };
        if let Some(a) = args.tool_arguments {
            if !a.get().starts_with('{') {
                return fail(
                    self,
                    "Error: tool_arguments must be a JSON object".to_string(),
                );
            }
        }
        if !shell && !self.backends[b].config.tools.permits(tool) {
            return fail(self, format!("Error: tool '{tool}' of backend '{backend}' is not offered: its config's tools.allow/tools.deny filter it out. Call discover_backend_tools with backend_server \"{backend}\" to list the tools offered"));
        }
        if let Err(text) = self.check_tool_known(b, tool) {
            return fail(self, format!("Error: {text}"));
        }
        let body = tools::use_tool_params(tool, args.tool_arguments, params.meta, params.task);
        let op = if params.task.is_some() {
            TaskOp::Create
        } else {
            TaskOp::None
        };
        self.forward_built(now, b, msg, "tools/call", &body, op);
    }

    fn discover(&mut self, now: Instant, id: &[u8], params: &tools::CallParams<'_>) {
        let args: tools::DiscoverArgs<'_> = params
            .arguments
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        let shell = self.handling_shell();
        let targets = match args.backend_server.as_deref() {
            None | Some("") if shell => self.order.clone(),
            None | Some("") => self.meta_backends(),
            Some(name) => match self
                .backend_named(name)
                .filter(|b| shell || self.backends[*b].config.in_meta())
            {
                Some(b) => vec![b],
                None => {
                    let text = self.unknown_backend(name, &self.backend_names().join(", "));
                    write_result(self.reply(), id, &tools::error_result(&text));
                    return;
                }
            },
        };
        let parts = targets.into_iter().map(|b| (b, ListKind::Tools)).collect();
        self.start_aggregate(now, id, AggregateKind::Discover, parts);
    }

    // ----- forwarding -------------------------------------------------------------------

    /// Forwards a client request to backend `b` with its id rewritten, and optionally one
    /// more span replaced (anywhere in the line), and its progress token when it must be.
    fn forward(
        &mut self,
        now: Instant,
        b: usize,
        msg: &Message<'_>,
        kind: PendingKind,
        extra: Option<(std::ops::Range<usize>, Vec<u8>)>,
        task: TaskOp,
    ) {
        let Some(id_span) = msg.id_span() else { return };
        let b = self.route(now, b, self.handling);
        let client_id = &msg.line[id_span.clone()];
        let len = msg.line.len();
        let Some(gw) = self.admit(now, b, client_id, kind, msg.params, task, len) else {
            return;
        };
        let gw_text = IdText::new(gw);
        let wire = self.ids.get(gw).and_then(|e| e.data.wire_token.clone());
        let token_span = wire
            .as_ref()
            .and_then(|_| progress_token(msg.params))
            .and_then(|t| span_of(msg.line, t.get()));
        let mut edits: Vec<(std::ops::Range<usize>, &[u8])> = vec![(id_span, gw_text.as_bytes())];
        if let Some((span, bytes)) = &extra {
            edits.push((span.clone(), bytes.as_slice()));
        }
        if let (Some(span), Some(wire)) = (token_span, wire.as_ref()) {
            edits.push((span, wire.as_bytes()));
        }
        edits.sort_by_key(|(r, _)| r.start);
        self.send(now, b, gw, |out| splice(out, msg.line, &edits));
    }

    /// Sends gangway-built params to backend `b` on behalf of a client request (use_tool).
    fn forward_built(
        &mut self,
        now: Instant,
        b: usize,
        msg: &Message<'_>,
        method: &str,
        params: &[u8],
        task: TaskOp,
    ) {
        let Some(id) = msg.id.map(|i| i.get().as_bytes()) else {
            return;
        };
        let b = self.route(now, b, self.handling);
        let len = params.len();
        // A shell command hears failures as errors, as for any forwarded request.
        let kind = if self.handling_shell() {
            PendingKind::Forward
        } else {
            PendingKind::UseTool
        };
        let Some(gw) = self.admit(now, b, id, kind, msg.params, task, len) else {
            return;
        };
        let rewritten = self
            .ids
            .get(gw)
            .and_then(|e| e.data.wire_token.as_ref())
            .and_then(|wire| with_progress_token(params, wire.as_bytes()));
        let params = rewritten.as_deref().unwrap_or(params);
        self.send(now, b, gw, |out| {
            write_request(out, Some(gw), method, Some(params))
        });
    }

    /// Checks that backend `b` can take a client request of about `len` bytes and tracks
    /// it; answers the client itself (and returns None) when it cannot.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        now: Instant,
        b: usize,
        client_id: &[u8],
        kind: PendingKind,
        params: Option<&RawValue>,
        task: TaskOp,
        len: usize,
    ) -> Option<u64> {
        if let Err(text) = self
            .available(now, b)
            .and_then(|()| self.input_room(now, b, len))
        {
            self.answer_failure(Some(self.handling), kind, client_id, BACKEND_ERROR, &text);
            return None;
        }
        let pending = Pending {
            task,
            session: Some(self.handling),
            ..Pending::new(b, kind)
        };
        match self.track(Some((Peer::Session(self.handling.0), client_id)), pending) {
            Some(gw) => {
                if let Some(token) = progress_token(params) {
                    let token = RawId::new(token.get().as_bytes());
                    // Tokens must be unique among a backend's requests in flight.
                    let wire = self
                        .progress
                        .contains_key(&(b, token.clone()))
                        .then(|| RawId::new(format!("\"gangway-progress-{gw}\"").as_bytes()));
                    let key = wire.clone().unwrap_or_else(|| token.clone());
                    self.progress.insert((b, key), gw);
                    if let Some(e) = self.ids.get_mut(gw) {
                        e.data.wire_token = wire;
                        e.data.token = Some(token);
                    }
                }
                Some(gw)
            }
            None => {
                let text = "Invalid request: this id is already used by a request in flight; ids must be unique among pending requests";
                write_error(self.reply(), client_id, INVALID_REQUEST, text);
                None
            }
        }
    }

    /// Writes a tracked request to backend `b` now when it is ready, or queues it and
    /// starts the backend.
    fn send(&mut self, now: Instant, b: usize, gw: u64, write: impl FnOnce(&mut Vec<u8>)) {
        if self.backends[b].lifecycle.is_ready() {
            write(self.out.backends[b].buf());
            self.mark_sent(now, b, gw);
        } else {
            let mut bytes = Vec::new();
            write(&mut bytes);
            self.backends[b].queue.push(Queued { gw, bytes });
            if self.backends[b].lifecycle.phase() == Phase::Stopped {
                self.start(now, b);
            }
        }
    }

    fn mark_sent(&mut self, now: Instant, b: usize, gw: u64) {
        let config = &self.backends[b].config;
        let (timeout, startup) = (config.timeout, config.startup_timeout);
        self.backends[b].lifecycle.touch(now);
        if let Some(e) = self.ids.get_mut(gw) {
            let timeout = if e.data.kind == PendingKind::Init {
                startup
            } else {
                timeout
            };
            e.data.sent = true;
            e.data.timer = Some(self.timers.insert(after(now, timeout), Timer::Request(gw)));
        }
    }

    /// Whether backend `b` may be used now, or why not.
    fn available(&mut self, now: Instant, b: usize) -> Result<(), String> {
        if self.life != Life::Running && self.life != Life::Draining {
            return Err("gangway is shutting down".to_string());
        }
        let be = &mut self.backends[b];
        if be.removed {
            return Err(format!(
                "backend '{}' was removed from the config",
                be.name()
            ));
        }
        let last_error = |be: &Backend| be.lifecycle.last_error().unwrap_or("unknown").to_string();
        match be.lifecycle.check_available(now) {
            Ok(()) => Ok(()),
            Err(Paused::FailedStarts { failures, wait }) => {
                let wait = wait.as_millis().div_ceil(1000);
                Err(format!(
                    "backend '{}' failed to start ({failures} time(s) in a row), so gangway waits before trying again (in {wait} s; a config reload that changes it retries at once). Last error: {}",
                    be.name(),
                    last_error(be)
                ))
            }
            Err(Paused::Crashed { wait }) => {
                let wait = wait.as_secs() + 1;
                Err(format!(
                    "backend '{}' crashed {} times within {} s, so gangway is not restarting it for {} s (try again in {wait} s). Last error: {}",
                    be.name(),
                    lifecycle::CRASH_LIMIT,
                    lifecycle::CRASH_WINDOW.as_secs(),
                    FAILED_PAUSE.as_secs(),
                    last_error(be)
                ))
            }
        }
    }

    /// Whether `len` more bytes of requests may wait for backend `b` (see
    /// [`BACKEND_IN_BOUND`]), or why not.
    fn input_room(&mut self, now: Instant, b: usize, len: usize) -> Result<(), String> {
        let waiting = self.waiting_input(b);
        if waiting == 0 || waiting + len <= BACKEND_IN_BOUND {
            return Ok(());
        }
        self.watch_input(now, b);
        let be = &self.backends[b];
        let mib = |n: usize| n / (1024 * 1024);
        let why = if !be.lifecycle.is_ready() {
            Some(format!(
                "it is still starting; at most {} MiB wait for a start",
                mib(BACKEND_IN_BOUND)
            ))
        } else if waiting + len > BACKEND_IN_MAX {
            Some(format!(
                "it is reading them more slowly than they come; at most {} MiB may wait",
                mib(BACKEND_IN_MAX)
            ))
        } else {
            // Over the first bound a reading backend may fall behind; one that has not
            // taken a byte for BACKEND_STALL is not reading.
            be.drain_watch
                .filter(|(_, since)| now.saturating_duration_since(*since) >= BACKEND_STALL)
                .map(|_| {
                    format!(
                        "it is not reading its input: it took none of it for {} s",
                        BACKEND_STALL.as_secs()
                    )
                })
        };
        match why {
            None => Ok(()),
            Some(why) => Err(format!(
                "backend '{}' has {waiting} bytes of requests waiting ({why}); this request was refused, try again when it has caught up",
                be.name(),
            )),
        }
    }

    fn track(&mut self, origin: Option<(Peer, &[u8])>, pending: Pending) -> Option<u64> {
        let b = pending.backend;
        let to_client = pending.kind == PendingKind::ToClient;
        let gw = self.ids.insert(origin, pending).ok()?;
        self.backends[b].in_flight += 1;
        if to_client {
            self.backends[b].to_client += 1;
        }
        Some(gw)
    }

    fn untrack(&mut self, now: Instant, gw: u64) -> Option<(Option<RawId>, Pending)> {
        let entry = self.ids.remove(gw)?;
        if let Some(t) = entry.data.timer {
            self.timers.cancel(t);
        }
        let b = entry.data.backend;
        if let Some(token) = entry.data.wire_token.as_ref().or(entry.data.token.as_ref()) {
            self.progress.remove(&(b, token.clone()));
        }
        let be = &mut self.backends[b];
        be.in_flight = be.in_flight.saturating_sub(1);
        if entry.data.kind == PendingKind::ToClient {
            be.to_client = be.to_client.saturating_sub(1);
        }
        be.lifecycle.touch(now);
        if be.in_flight == 0 {
            if be.removed || be.lifecycle.restart_pending() {
                // A reload removed or changed it; its last request has ended.
                self.stop(now, b);
            } else {
                self.arm_idle(b);
            }
        }
        Some((entry.origin.map(|(_, raw)| raw), entry.data))
    }

    fn client_requests_pending(&self) -> usize {
        self.aggregates.len()
            + self.task_lists.len()
            + self
                .ids
                .ids_where(|e| matches!(e.origin, Some((Peer::Session(_), _))))
                .len()
    }

    /// Answers session `to`'s request `client_id` that could not be served: an `isError`
    /// tool result for `use_tool`, a JSON-RPC error otherwise.
    fn answer_failure(
        &mut self,
        to: Option<SessionId>,
        kind: PendingKind,
        client_id: &[u8],
        code: i64,
        text: &str,
    ) {
        let Some(to) = to else { return };
        if kind == PendingKind::UseTool {
            write_result(
                self.out_to(to),
                client_id,
                &tools::error_result(&format!("Error: {text}")),
            );
        } else {
            write_error(self.out_to(to), client_id, code, text);
        }
    }

    // ----- backend lifecycle ------------------------------------------------------------

    fn start(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        be.lifecycle.begin_start(now, &mut self.timers);
        be.init_result = None;
        // Errors must quote this process's stderr, not an earlier one's.
        be.stderr_tail.clear();
        be.noise = None;
        be.unattributed = None;
        info!("starting backend '{}'", be.name());
        self.out.backends[b].clear();
        self.ask_spawn(b);
        let pending = Pending::new(b, PendingKind::Init);
        let Some(gw) = self.track(None, pending) else {
            return;
        };
        let params = std::mem::take(&mut self.backend_init_params);
        write_request(
            self.out.backends[b].buf(),
            Some(gw),
            "initialize",
            Some(&params),
        );
        self.backend_init_params = params;
        self.mark_sent(now, b, gw);
        self.arm_start_progress(now, b);
    }

    fn arm_start_progress(&mut self, now: Instant, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        self.backends[b]
            .lifecycle
            .arm_start_progress(now, &mut self.timers, wake);
    }

    /// A timer of backend `b`'s lifecycle is due; one set for an earlier process (or
    /// phase) is refused by the lifecycle.
    fn backend_wakeup(&mut self, now: Instant, b: usize, w: Wakeup) {
        if b >= self.backends.len() {
            return;
        }
        match w.step() {
            Step::StartProgress => self.start_progress(now, b, w),
            Step::Idle => self.idle_check(now, b, w),
            Step::Stop(_) => self.stop_step(now, b, w),
        }
    }

    /// Backend `b` is still starting: every request waiting for it that carries a progress
    /// token hears so (the request timeout only counts once the backend is ready).
    fn start_progress(&mut self, now: Instant, b: usize, w: Wakeup) {
        let be = &mut self.backends[b];
        if !be.lifecycle.start_progress_due(w) {
            return;
        }
        let secs = be.lifecycle.starting_for(now).as_secs();
        let pulling = if be.config.runs_docker() {
            "; docker may be pulling the image"
        } else {
            ""
        };
        let text = format!("Starting backend '{}' ({secs} s{pulling})", be.name());
        let mut notes = Vec::new();
        for q in &be.queue {
            let Some(e) = self.ids.get(q.gw) else {
                continue;
            };
            let (Some(token), Some(to)) = (e.data.token.as_ref(), e.data.session) else {
                continue;
            };
            let mut params = b"{\"progressToken\":".to_vec();
            params.extend_from_slice(token.as_bytes());
            params.extend_from_slice(format!(",\"progress\":{secs},\"message\":").as_bytes());
            message::write_json_string(&mut params, &text);
            params.push(b'}');
            notes.push((to, params));
        }
        for (to, params) in notes {
            write_request(
                self.out_to(to),
                None,
                "notifications/progress",
                Some(&params),
            );
        }
        self.arm_start_progress(now, b);
    }

    fn init_done(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        let be = &mut self.backends[b];
        if !be.lifecycle.is_starting() {
            return;
        }
        if let Some(err) = msg.error {
            let reason = format!("backend '{}' refused initialize: {}", be.name(), err.get());
            error!("{reason}");
            self.start_failed(now, b, &reason);
            return;
        }
        be.init_result = msg.result.map(|r| r.to_owned());
        let took = be.lifecycle.on_ready(now, &mut self.timers);
        be.lists_skipped_until = None;
        info!("backend '{}' ready in {} ms", be.name(), took.as_millis());
        write_request(
            self.out.backends[b].buf(),
            None,
            "notifications/initialized",
            None,
        );
        if let Some(level) = self.backend_log_params() {
            if self.backend_has_capability(b, "logging") {
                self.send_internal(now, b, "logging/setLevel", &level);
            }
        }
        let queue = std::mem::take(&mut self.backends[b].queue);
        for q in queue {
            if self.ids.get(q.gw).is_some() {
                self.out.backends[b].buf().extend_from_slice(&q.bytes);
                self.mark_sent(now, b, q.gw);
            }
        }
        self.refresh_all(now, b);
        if self.backends[b].in_flight == 0 {
            self.arm_idle(b);
        }
    }

    fn start_failed(&mut self, now: Instant, b: usize, reason: &str) {
        let life = &mut self.backends[b].lifecycle;
        life.mark_failing(Some(reason.to_string()));
        self.fail_pending(now, b, reason, true);
        self.stop(now, b);
    }

    /// A backend died or could not start: everything waiting on it is answered, and the
    /// restart back-off is updated.
    fn crashed(&mut self, now: Instant, b: usize, reason: String) {
        self.cancel_backend_timers(b);
        self.fail_pending(now, b, &reason, true);
        let be = &mut self.backends[b];
        match be.lifecycle.on_crash(now, reason) {
            Crash::StartFailed { in_a_row, pause } => {
                warn!(
                    "backend '{}' failed to start ({in_a_row} in a row); gangway tries again in {} s",
                    be.name(),
                    pause.as_secs()
                );
                self.remember_failed_start(now, b);
            }
            Crash::TooOften => warn!(
                "backend '{}' crashed {} times within {} s; not restarting it for {} s",
                be.name(),
                lifecycle::CRASH_LIMIT,
                lifecycle::CRASH_WINDOW.as_secs(),
                FAILED_PAUSE.as_secs()
            ),
            Crash::Restartable => {}
        }
    }

    /// Answers every request tracked for backend `b` with `reason`; queued ones too when
    /// `with_queued` (otherwise they wait for the next start).
    fn fail_pending(&mut self, now: Instant, b: usize, reason: &str, with_queued: bool) {
        let gws = self
            .ids
            .ids_where(|e| e.data.backend == b && (with_queued || e.data.sent));
        for gw in gws {
            let Some((origin, pending)) = self.untrack(now, gw) else {
                continue;
            };
            match pending.kind {
                PendingKind::Forward | PendingKind::UseTool => {
                    if let Some(raw) = origin {
                        let to = pending.session;
                        self.answer_failure(
                            to,
                            pending.kind,
                            raw.as_bytes(),
                            BACKEND_ERROR,
                            reason,
                        );
                    }
                }
                PendingKind::List(kind) => {
                    self.list_fetched(now, b, kind, Err(reason.to_string()));
                }
                PendingKind::ToClient => self.cancel_to_client(pending.session, gw, reason),
                PendingKind::TaskList(list) => self.task_page(now, b, list, None),
                PendingKind::Init | PendingKind::Internal => {}
            }
        }
        if with_queued {
            self.backends[b].queue.clear();
        }
    }

    fn stop(&mut self, now: Instant, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        match self.backends[b]
            .lifecycle
            .begin_stop(now, &mut self.timers, wake)
        {
            StopDecision::NotRunning => {}
            StopDecision::Abandoned { failing } => self.start_abandoned(now, b, failing),
            StopDecision::CloseStdin => self.actions.push(Action::CloseStdin(b)),
        }
    }

    fn stop_step(&mut self, now: Instant, b: usize, w: Wakeup) {
        let wake = |w| Timer::Backend(b, w);
        let be = &mut self.backends[b];
        let Some(signal) = be.lifecycle.stop_due(now, w, &mut self.timers, wake) else {
            return;
        };
        warn!(
            "backend '{}' still running {} s after {}; sending {}",
            be.name(),
            STOP_GRACE.as_secs(),
            if signal == StopSignal::Term {
                "its stdin closed"
            } else {
                "SIGTERM"
            },
            signal.name()
        );
        self.actions.push(Action::Signal(b, signal));
    }

    /// Backend `b`'s process is gone: drop the input it never read (it must not hold the
    /// client's backpressure shut) and the timers that were for that process.
    fn process_gone(&mut self, b: usize) {
        self.log_repeats_end(b);
        self.out.backends[b].clear();
        self.cancel_backend_timers(b);
    }

    /// Cancels the idle timer and the stop ladder of backend `b` (its process is gone or
    /// being replaced), so no wakeup is left for them.
    fn cancel_backend_timers(&mut self, b: usize) {
        self.backends[b].lifecycle.cancel_timers(&mut self.timers);
    }

    fn arm_idle(&mut self, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        let be = &mut self.backends[b];
        be.lifecycle
            .arm_idle(be.config.idle_timeout, &mut self.timers, wake);
    }

    fn idle_check(&mut self, now: Instant, b: usize, w: Wakeup) {
        let be = &mut self.backends[b];
        if !be.lifecycle.idle_fired(w) || be.in_flight > 0 {
            return;
        }
        let Some(idle) = be.config.idle_timeout else {
            return;
        };
        // A client waiting for resource updates, or for a task, is using it, requests
        // or not.
        let watched = self.tasks.running_at(b)
            || self
                .sessions
                .values()
                .flat_map(|c| c.subscriptions.iter())
                .any(|uri| self.resource_owner(uri) == Some(b));
        if watched {
            debug!(
                "backend '{}' is idle but a client watches its resources or tasks; kept running",
                self.backends[b].name()
            );
            // Looked at again one idle period later.
            self.backends[b].lifecycle.touch(now);
            self.arm_idle(b);
            return;
        }
        let be = &self.backends[b];
        if be.lifecycle.idle_due(now, idle) {
            info!(
                "stopping backend '{}': idle for {} s",
                be.name(),
                idle.as_secs_f64()
            );
            self.stop(now, b);
        } else {
            // Activity since the timer was set pushed the deadline back.
            self.arm_idle(b);
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

    fn request_timed_out(&mut self, now: Instant, gw: u64) {
        let Some(entry) = self.ids.get_mut(gw) else {
            return;
        };
        // The timer is firing, so there is nothing to cancel.
        entry.data.timer = None;
        let Some((origin, pending)) = self.untrack(now, gw) else {
            return;
        };
        let b = pending.backend;
        let name = self.backends[b].name().to_string();
        let secs = self.backends[b].config.timeout.as_secs_f64();
        let reason = format!(
            "Request timed out: backend '{name}' did not answer within {secs} s (its \"timeout\" in the config){}",
            self.backends[b].unattributed_suffix()
        );
        if !matches!(pending.kind, PendingKind::Init | PendingKind::ToClient) {
            warn!("{reason}");
        }
        match pending.kind {
            PendingKind::Forward | PendingKind::UseTool => {
                if let Some(raw) = origin {
                    let to = pending.session;
                    self.answer_failure(to, pending.kind, raw.as_bytes(), REQUEST_TIMEOUT, &reason);
                }
                self.cancel_to_backend(b, gw, "request timed out in gangway");
            }
            PendingKind::List(kind) => {
                self.cancel_to_backend(b, gw, "request timed out in gangway");
                self.list_fetched(now, b, kind, Err(reason));
            }
            PendingKind::Internal => self.cancel_to_backend(b, gw, "request timed out in gangway"),
            PendingKind::TaskList(list) => {
                self.cancel_to_backend(b, gw, "request timed out in gangway");
                self.task_page(now, b, list, None);
            }
            PendingKind::Init => {
                let secs = self.backends[b].config.startup_timeout.as_secs_f64();
                let reason = format!(
                    "backend '{name}' did not finish starting (answer initialize) within {secs} s, its \"startup_timeout\"; check that it is an MCP server speaking stdio, or raise startup_timeout if it needs longer (an image pull){}",
                    self.backends[b].stderr_suffix()
                );
                error!("{reason}");
                self.start_failed(now, b, &reason);
            }
            PendingKind::ToClient => {
                let text = format!(
                    "the client did not answer backend '{name}''s request in time (\"client_request_timeout\" in gangway's config; at most 10 s for a ping); it was cancelled"
                );
                warn!("{text}");
                self.cancel_to_client(pending.session, gw, &text);
                let text = format!("gangway: {text}");
                self.refuse_backend_request(b, origin, REQUEST_TIMEOUT, &text);
            }
        }
    }

    /// Answers backend `b`'s own request `raw` (to a client) with an error, while the
    /// backend still reads its input.
    pub(super) fn refuse_backend_request(
        &mut self,
        b: usize,
        raw: Option<RawId>,
        code: i64,
        text: &str,
    ) {
        let reads = self.backends[b].lifecycle.reads_input();
        if let (Some(raw), true) = (raw, reads) {
            write_error(self.out.backends[b].buf(), raw.as_bytes(), code, text);
        }
    }

    /// Marks backend `b` removed (a reload dropped it, or the session it served ended):
    /// it is stopped at once when nothing is in flight, else when its last request ends.
    pub(super) fn retire(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        be.removed = true;
        if be.lifecycle.is_running() && be.in_flight == 0 {
            self.stop(now, b);
        }
    }

    /// Backend `b`'s process must be replaced (a reload changed how it is spawned): it is
    /// stopped once idle, and the next request starts the new one.
    pub(super) fn respawn_when_idle(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        if !be.lifecycle.is_running() {
            return;
        }
        be.lifecycle.want_restart();
        if be.in_flight == 0 {
            info!(
                "reload: restarting backend '{}' with its new command",
                be.name()
            );
            self.stop(now, b);
        }
    }

    fn cancel_to_backend(&mut self, b: usize, gw: u64, reason: &str) {
        if self.backends[b].lifecycle.is_ready() {
            let mut params = format!("{{\"requestId\":{gw},\"reason\":").into_bytes();
            message::write_json_string(&mut params, reason);
            params.push(b'}');
            write_request(
                self.out.backends[b].buf(),
                None,
                "notifications/cancelled",
                Some(&params),
            );
        }
    }

    /// Tells session `to` that gangway's request `gw` (a backend's, forwarded to it) is
    /// cancelled.
    fn cancel_to_client(&mut self, to: Option<SessionId>, gw: u64, reason: &str) {
        let Some(to) = to else { return };
        let mut params = format!("{{\"requestId\":{gw},\"reason\":").into_bytes();
        message::write_json_string(&mut params, reason);
        params.push(b'}');
        write_request(
            self.out_to(to),
            None,
            "notifications/cancelled",
            Some(&params),
        );
    }

    // ----- answers and messages from backends -------------------------------------------

    fn backend_response(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        let raw = msg.id.map_or(&b""[..], |i| i.get().as_bytes());
        let gw = parse_gateway_id(raw);
        let ours = gw
            .and_then(|gw| self.ids.get(gw))
            .is_some_and(|e| e.data.backend == b && e.data.kind != PendingKind::ToClient);
        let Some(gw) = gw.filter(|_| ours) else {
            debug!(
                "backend '{}' answered id {} which is not pending (late answer after a timeout or cancel); dropped",
                self.backends[b].name(),
                String::from_utf8_lossy(raw)
            );
            return;
        };
        let Some((origin, pending)) = self.untrack(now, gw) else {
            return;
        };
        let to = pending.session;
        match (
            pending.task,
            msg.result.and_then(tasks::task_id_and_status),
            to,
        ) {
            (TaskOp::Create, Some((id, status)), Some(owner)) => {
                let running = tasks::still_running(&status);
                self.tasks.created(b, id, owner, running);
            }
            (TaskOp::Single, Some((id, status)), _) => self.tasks.status(b, &id, &status),
            _ => {}
        }
        match pending.kind {
            PendingKind::Forward => self.reply_spliced(b, msg, to, origin, pending.task),
            PendingKind::UseTool => match (msg.error, origin, to) {
                (Some(err), Some(raw), Some(to)) => {
                    let text = format!(
                        "Error: Backend error from {}: {}",
                        self.backends[b].name(),
                        error_message(err)
                    );
                    write_result(self.out_to(to), raw.as_bytes(), &tools::error_result(&text));
                }
                (None, origin, _) => self.reply_spliced(b, msg, to, origin, pending.task),
                (Some(_), _, _) => {}
            },
            PendingKind::Init => self.init_done(now, b, msg),
            PendingKind::List(kind) => self.list_page(now, b, kind, msg),
            PendingKind::TaskList(list) => self.task_page(now, b, list, Some(msg)),
            PendingKind::ToClient | PendingKind::Internal => {}
        }
    }

    /// Passes a response on to session `to` with its own id put back.
    fn reply_spliced(
        &mut self,
        b: usize,
        msg: &Message<'_>,
        to: Option<SessionId>,
        origin: Option<RawId>,
        task: TaskOp,
    ) {
        if let (Some(to), Some(raw), Some(span)) = (to, origin, msg.id_span()) {
            self.relay_to_client(b, msg, to, task, Some((span, raw.as_bytes())));
        }
    }

    /// Appends a backend's message for session `to`: its id replaced when `id` is given
    /// and every task id prefixed with the backend's name, nothing else changed.
    fn relay_to_client(
        &mut self,
        b: usize,
        msg: &Message<'_>,
        to: SessionId,
        task: TaskOp,
        id: Option<(std::ops::Range<usize>, &[u8])>,
    ) {
        let task_spans = tasks::backend_task_id_spans(msg, task);
        if task_spans.is_empty() {
            let edits: &[(std::ops::Range<usize>, &[u8])] = match &id {
                Some(e) => std::slice::from_ref(e),
                None => &[],
            };
            splice(self.out_to(to), msg.line, edits);
            return;
        }
        let prefix = format!("{}{}", self.backends[b].name(), tasks::TASK_SEPARATOR);
        let mut edits: Vec<(std::ops::Range<usize>, &[u8])> = id.into_iter().collect();
        edits.extend(
            task_spans
                .iter()
                .map(|s| (tasks::prefix_edit(s), prefix.as_bytes())),
        );
        edits.sort_by_key(|(r, _)| r.start);
        splice(self.out_to(to), msg.line, &edits);
    }

    fn backend_request(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        let Some(raw) = msg.id.map(|i| i.get().as_bytes()) else {
            return;
        };
        let method = msg.method.unwrap_or("");
        let target = self.client_for(b, method);
        let refusal = if self.life != Life::Running {
            Some("the client is gone (gangway is shutting down)".to_string())
        } else if target.is_none() {
            Some(format!(
                "no client connected to gangway declared the capability needed for {method}"
            ))
        } else {
            None
        };
        let (None, Some(to)) = (refusal.as_ref(), target) else {
            let text = refusal.unwrap_or_default();
            write_error(self.out.backends[b].buf(), raw, METHOD_NOT_FOUND, &text);
            return;
        };
        let be = &self.backends[b];
        if be.to_client >= TO_CLIENT_MAX {
            let text = format!(
                "gangway: {TO_CLIENT_MAX} requests from backend '{}' already wait for the client's answer; {method} refused until one is answered",
                be.name()
            );
            warn!("{text}");
            write_error(self.out.backends[b].buf(), raw, BACKEND_ERROR, &text);
            return;
        }
        // A client that never answers must not pin the backend (its requests keep it from
        // idling): a ping is answered at once by a live client, other requests may wait
        // for a person (sampling, elicitation) and get the long, configurable limit.
        let limit = if method == "ping" {
            PING_TO_CLIENT_MAX
                .min(be.config.timeout)
                .min(be.config.client_request_timeout)
        } else {
            be.config.client_request_timeout
        };
        let pending = Pending {
            sent: true,
            session: Some(to),
            ..Pending::new(b, PendingKind::ToClient)
        };
        let Some(gw) = self.track(Some((Peer::Backend(b), raw)), pending) else {
            let text = "Invalid request: this id is already used by a request in flight";
            write_error(self.out.backends[b].buf(), raw, INVALID_REQUEST, text);
            return;
        };
        let timer = self.timers.insert(after(now, limit), Timer::Request(gw));
        if let Some(e) = self.ids.get_mut(gw) {
            e.data.timer = Some(timer);
        }
        let Some(span) = msg.id_span() else { return };
        let gw_text = IdText::new(gw);
        self.relay_to_client(b, msg, to, TaskOp::None, Some((span, gw_text.as_bytes())));
    }

    fn backend_notification(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        match msg.method.unwrap_or("") {
            method if ListKind::from_list_changed(method).is_some() => {
                for &kind in ListKind::from_list_changed(method).unwrap_or(&[]) {
                    let state = &mut self.backends[b].lists[kind.index()];
                    match state {
                        ListState::Known(_) => *state = ListState::Unknown,
                        ListState::Fetching { stale, .. } => *stale = true,
                        ListState::Unknown => {}
                    }
                    // The catalog must learn the new list even if the client never asks.
                    self.refresh_list(now, b, kind);
                }
                let kind = ListKind::from_list_changed(method).map_or(ListKind::Tools, |k| k[0]);
                self.notify_list_changed(now, b, kind);
            }
            "notifications/progress" => {
                // Progress belongs to the session whose request carries the token.
                let token = progress_notification_token(msg.params);
                let owner = token
                    .and_then(|t| self.progress.get(&(b, RawId::new(t.get().as_bytes()))))
                    .and_then(|gw| self.ids.get(*gw))
                    .and_then(|e| {
                        Some((
                            e.data.session?,
                            e.data.wire_token.is_some(),
                            e.data.token.clone()?,
                        ))
                    });
                if let Some((to, rewritten, mine)) = owner.filter(|_| self.listening()) {
                    // A token gangway rewrote goes back as the client's own.
                    let edit = token
                        .filter(|_| rewritten)
                        .and_then(|t| span_of(msg.line, t.get()))
                        .map(|span| (span, mine.as_bytes()));
                    self.relay_to_client(b, msg, to, TaskOp::None, edit);
                } else {
                    debug!(
                        "progress from backend '{}' for a request no longer in flight; dropped",
                        self.backends[b].name()
                    );
                }
            }
            "notifications/tasks/status" => {
                // A task's news is for the session that created it (everyone's, when
                // gangway does not know the task).
                let task = msg.params.and_then(tasks::task_id_and_status);
                if let Some((id, status)) = &task {
                    self.tasks.status(b, id, status);
                }
                let owner = task.and_then(|(id, _)| self.tasks.get(b, &id));
                match owner {
                    Some(t) if self.listening() => {
                        self.relay_to_client(b, msg, t.owner, TaskOp::None, None)
                    }
                    Some(_) => {}
                    None => self.pass_to_client(b, msg),
                }
            }
            "notifications/resources/updated" => {
                #[derive(Deserialize)]
                struct Updated {
                    uri: String,
                }
                let uri = msg
                    .params
                    .and_then(|p| serde_json::from_str::<Updated>(p.get()).ok())
                    .map(|u| u.uri);
                let to: Vec<SessionId> = match &uri {
                    Some(uri) if self.listening() => self.subscribers(uri).collect(),
                    _ => Vec::new(),
                };
                for s in to {
                    self.relay_to_client(b, msg, s, TaskOp::None, None);
                }
            }
            "notifications/message" => {
                if !self.listening() {
                    return;
                }
                let name = self.backends[b].name().to_string();
                let level = session::params_level(msg.params);
                let mut line = Vec::new();
                write_log_with_logger(&mut line, msg, &name);
                let only = self.backends[b].instance_of.map(|(_, s)| s);
                for (s, c) in self.sessions.iter_mut() {
                    if only.map_or(true, |o| o == *s) && c.wants_log(level) {
                        c.out.buf().extend_from_slice(&line);
                    }
                }
            }
            "notifications/cancelled" => {
                let Some(span) = cancel_target(msg) else {
                    return;
                };
                let raw = &msg.line[span.clone()];
                let Some(gw) = self.ids.find(Peer::Backend(b), raw) else {
                    return;
                };
                let Some((_, pending)) = self.untrack(now, gw) else {
                    return;
                };
                let Some(to) = pending.session else { return };
                let gw_text = IdText::new(gw);
                splice(self.out_to(to), msg.line, &[(span, gw_text.as_bytes())]);
            }
            _ => self.pass_to_client(b, msg),
        }
    }

    /// Whether clients still hear notifications (not once shutdown began).
    fn listening(&self) -> bool {
        self.life == Life::Running || self.life == Life::Draining
    }

    /// Passes a backend's notification on to every session unchanged, while they listen.
    fn pass_to_client(&mut self, b: usize, msg: &Message<'_>) {
        if !self.listening() {
            return;
        }
        let to: Vec<SessionId> = match self.backends[b].instance_of {
            Some((_, s)) => vec![s],
            None => self.sessions.keys().copied().collect(),
        };
        for to in to {
            self.relay_to_client(b, msg, to, TaskOp::None, None);
        }
    }

    // ----- messages from the client that are not requests -------------------------------

    fn client_notification(&mut self, now: Instant, msg: &Message<'_>) {
        match msg.method.unwrap_or("") {
            "notifications/cancelled" => {
                let Some(span) = cancel_target(msg) else {
                    return;
                };
                let raw = &msg.line[span.clone()];
                if let Some(gw) = self.ids.find(Peer::Session(self.handling.0), raw) {
                    let Some((_, pending)) = self.untrack(now, gw) else {
                        return;
                    };
                    let b = pending.backend;
                    if pending.sent && self.backends[b].lifecycle.is_ready() {
                        let gw_text = IdText::new(gw);
                        splice(
                            self.out.backends[b].buf(),
                            msg.line,
                            &[(span, gw_text.as_bytes())],
                        );
                    }
                } else if self.cancel_aggregate(raw) {
                    debug!("client cancelled a list request; its answer will not be sent");
                } else {
                    debug!("client cancelled a request gangway no longer tracks; ignored");
                }
            }
            "notifications/roots/list_changed" => {
                for b in 0..self.backends.len() {
                    if self.backends[b].lifecycle.is_ready() {
                        let line = msg.line;
                        self.out.backends[b].buf().extend_from_slice(line);
                        self.out.backends[b].buf().push(b'\n');
                    }
                }
            }
            m => debug!("client notification {m} needs no action"),
        }
    }

    fn client_response(&mut self, now: Instant, msg: &Message<'_>) {
        let raw = msg.id.map_or(&b""[..], |i| i.get().as_bytes());
        // Only the session a backend's request was sent to can answer it.
        let gw = parse_gateway_id(raw).filter(|gw| {
            self.ids.get(*gw).is_some_and(|e| {
                e.data.kind == PendingKind::ToClient && e.data.session == Some(self.handling)
            })
        });
        let Some(gw) = gw else {
            debug!(
                "client answered id {} which is not pending; dropped",
                String::from_utf8_lossy(raw)
            );
            return;
        };
        let Some((origin, pending)) = self.untrack(now, gw) else {
            return;
        };
        let b = pending.backend;
        if let (Some(raw), Some(span), true) = (
            origin,
            msg.id_span(),
            self.backends[b].lifecycle.reads_input(),
        ) {
            splice(
                self.out.backends[b].buf(),
                msg.line,
                &[(span, raw.as_bytes())],
            );
        }
    }

    // ----- prompts, resources, completions, logging ---------------------------------------

    /// Whether backend `b` declared `capability` in its `initialize` answer.
    fn backend_has_capability(&self, b: usize, capability: &str) -> bool {
        #[derive(Deserialize)]
        struct Init {
            #[serde(default)]
            capabilities: HashMap<String, serde_json::Value>,
        }
        self.backends[b]
            .init_result
            .as_ref()
            .and_then(|r| serde_json::from_str::<Init>(r.get()).ok())
            .is_some_and(|i| i.capabilities.contains_key(capability))
    }

    /// Sends gangway's own request, whose answer is not needed, to a ready backend.
    fn send_internal(&mut self, now: Instant, b: usize, method: &str, params: &[u8]) {
        self.send_own(now, b, PendingKind::Internal, method, Some(params));
    }

    /// Sends a request of gangway's own (`kind` says what its answer is for) to backend
    /// `b`, tracked like any other and queued while the backend starts.
    fn send_own(
        &mut self,
        now: Instant,
        b: usize,
        kind: PendingKind,
        method: &str,
        params: Option<&[u8]>,
    ) {
        let pending = Pending::new(b, kind);
        let Some(gw) = self.track(None, pending) else {
            return;
        };
        self.send(now, b, gw, |out| {
            write_request(out, Some(gw), method, params)
        });
    }

    fn set_log_level(&mut self, now: Instant, id: &[u8], params: Option<&RawValue>) {
        let Some(params) = params else {
            let text = "logging/setLevel needs params with a \"level\"";
            write_error(self.reply(), id, INVALID_PARAMS, text);
            return;
        };
        let Some(rank) = session::params_level(Some(params)) else {
            let text = "logging/setLevel needs a \"level\" of debug, info, notice, warning, error, critical, alert or emergency";
            write_error(self.reply(), id, INVALID_PARAMS, text);
            return;
        };
        let before = self.backend_log_params();
        if let Some(c) = self.sessions.get_mut(&self.handling) {
            c.log_level = Some(rank);
        }
        // Backends are shared: each runs at the most verbose level any session asked for,
        // and each session hears only what its own level admits.
        if let Some(level) = self
            .backend_log_params()
            .filter(|l| Some(l) != before.as_ref())
        {
            for b in 0..self.backends.len() {
                if self.backends[b].lifecycle.is_ready()
                    && self.backend_has_capability(b, "logging")
                {
                    self.send_internal(now, b, "logging/setLevel", &level);
                }
            }
        }
        write_result(self.reply(), id, b"{}");
    }

    fn prompts_get(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: &'a RawValue,
        }
        let name = msg
            .params
            .and_then(|p| serde_json::from_str::<Params<'_>>(p.get()).ok())
            .map(|p| p.name);
        self.forward_prefixed(now, msg, id, name, Some(ListKind::Prompts), TaskOp::None);
    }

    /// Forwards a request that names an exposed prompt (`kind` Prompts) or a client task id
    /// (`kind` None, `BACKEND__TASKID`) to its backend, with the name's bytes replaced by
    /// the backend's own name.
    fn forward_prefixed(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        id: &[u8],
        name: Option<&RawValue>,
        kind: Option<ListKind>,
        task: TaskOp,
    ) {
        let exposed: Option<String> = name.and_then(|n| serde_json::from_str(n.get()).ok());
        let target = exposed.as_deref().and_then(|e| match kind {
            Some(kind) => self.resolve_exposed(kind, e),
            None => self.resolve_task(e),
        });
        let span = name.and_then(|n| span_of(msg.line, n.get()));
        let (Some((b, own)), Some(span)) = (target, span) else {
            let shown = exposed.as_deref().unwrap_or("(missing name)");
            let text = match kind {
                Some(_) => format!(
                    "Unknown prompt: {shown}. gangway names prompts PREFIX{}NAME (the prefix is the backend's name unless its config sets one); call prompts/list to see them",
                    self.separator,
                ),
                None => format!(
                    "Unknown task: {shown}. gangway's task ids are BACKEND{}TASKID; backends: {}",
                    tasks::TASK_SEPARATOR,
                    self.order.iter().map(|b| self.backends[*b].name()).collect::<Vec<_>>().join(", ")
                ),
            };
            write_error(self.reply(), id, INVALID_PARAMS, &text);
            return;
        };
        let mut own_json = Vec::with_capacity(own.len() + 2);
        message::write_json_string(&mut own_json, &own);
        self.forward(
            now,
            b,
            msg,
            PendingKind::Forward,
            Some((span, own_json)),
            task,
        );
    }

    fn resource_request(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Params {
            uri: String,
        }
        let Some(uri) = msg
            .params
            .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
            .map(|p| p.uri)
        else {
            let text = format!(
                "{} needs params with a string \"uri\"",
                msg.method.unwrap_or("")
            );
            write_error(self.reply(), id, INVALID_PARAMS, &text);
            return;
        };
        // A backend subscription is shared by the sessions that asked for it: the first
        // subscribe and the last unsubscribe reach the backend, the others are answered
        // here.
        let me = self.handling;
        let shared = self.subscribers(&uri).any(|s| s != me);
        let mine = self.sessions.get_mut(&me).map(|c| &mut c.subscriptions);
        match (msg.method, mine) {
            (Some("resources/subscribe"), Some(subs)) => {
                subs.insert(uri.clone());
                if shared {
                    write_result(self.reply(), id, b"{}");
                    return;
                }
            }
            (Some("resources/unsubscribe"), Some(subs)) => {
                subs.remove(&uri);
                if shared {
                    write_result(self.reply(), id, b"{}");
                    return;
                }
            }
            _ => {}
        }
        self.forward_by_uri(now, msg, id, &uri);
    }

    fn complete(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Ref<'a> {
            #[serde(rename = "type")]
            kind: String,
            #[serde(borrow, default)]
            name: Option<&'a RawValue>,
            #[serde(default)]
            uri: Option<String>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(rename = "ref", borrow)]
            reference: Ref<'a>,
        }
        let parsed = msg
            .params
            .and_then(|p| serde_json::from_str::<Params<'_>>(p.get()).ok());
        match parsed.map(|p| p.reference) {
            Some(r) if r.kind == "ref/prompt" => {
                self.forward_prefixed(now, msg, id, r.name, Some(ListKind::Prompts), TaskOp::None)
            }
            Some(Ref {
                kind,
                uri: Some(uri),
                ..
            }) if kind == "ref/resource" => self.forward_by_uri(now, msg, id, &uri),
            _ => {
                let text = "completion/complete needs params.ref of type ref/prompt (with name) or ref/resource (with uri)";
                write_error(self.reply(), id, INVALID_PARAMS, text);
            }
        }
    }

    /// Forwards a request about `uri` to the backend that owns it. When no known list
    /// has it but some backend's resource lists are not known yet, those are fetched
    /// first and the request is processed again.
    fn forward_by_uri(&mut self, now: Instant, msg: &Message<'_>, id: &[u8], uri: &str) {
        if let Some(b) = self.resource_owner(uri) {
            self.forward(now, b, msg, PendingKind::Forward, None, TaskOp::None);
            return;
        }
        let unknown: Vec<(usize, ListKind)> = if self.retrying {
            Vec::new()
        } else {
            self.order
                .iter()
                .flat_map(|&b| [(b, ListKind::Resources), (b, ListKind::Templates)])
                .filter(|(b, k)| self.backends[*b].known(*k).is_none())
                .collect()
        };
        if unknown.is_empty() {
            let text = format!(
                "Resource not found: {uri}. No backend lists it or has a template that matches it; call resources/list and resources/templates/list to see what there is"
            );
            write_error(self.reply(), id, RESOURCE_NOT_FOUND, &text);
            return;
        }
        let kind = AggregateKind::Retry {
            line: msg.line.to_vec(),
        };
        self.start_aggregate(now, id, kind, unknown);
    }

    /// The backend that owns `uri`: the first (in config order) that lists it, else the
    /// first with a template that matches it.
    fn resource_owner(&self, uri: &str) -> Option<usize> {
        let in_list = |kind: ListKind, hit: &dyn Fn(&str) -> bool| {
            self.order.iter().copied().find(|b| {
                let list = self.backends[*b].known(kind);
                list.is_some_and(|items| items.iter().any(|i| hit(&i.key)))
            })
        };
        in_list(ListKind::Resources, &|k| k == uri)
            .or_else(|| in_list(ListKind::Templates, &|t| lists::template_matches(t, uri)))
    }
}

/// Whether some of the backend's tools are listed directly in tools/list.
fn has_direct_tools(config: &BackendConfig) -> bool {
    config.expose != Expose::Meta || !config.direct.is_empty()
}

/// The raw `params._meta.progressToken` of a request, if it asks for progress.
fn progress_token(params: Option<&RawValue>) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "progressToken", borrow, default)]
        token: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Meta<'a>>,
    }
    serde_json::from_str::<Params<'_>>(params?.get())
        .ok()?
        .meta?
        .token
}

/// Request params (`params`, one JSON object) with `_meta.progressToken` replaced by
/// `token` (raw JSON), or `None` when they carry no token.
fn with_progress_token(params: &[u8], token: &[u8]) -> Option<Vec<u8>> {
    let raw: &RawValue = serde_json::from_slice(params).ok()?;
    let span = span_of(params, progress_token(Some(raw))?.get())?;
    let mut out = Vec::with_capacity(params.len() + token.len());
    splice(&mut out, params, &[(span, token)]);
    out.pop(); // splice ends a line; params are not one.
    Some(out)
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

/// The raw `params.progressToken` of a `notifications/progress`.
fn progress_notification_token(params: Option<&RawValue>) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "progressToken", borrow)]
        token: &'a RawValue,
    }
    serde_json::from_str::<Params<'_>>(params?.get())
        .ok()
        .map(|p| p.token)
}

/// Appends a backend's `notifications/message` with `logger` naming the backend:
/// `BACKEND/LOGGER` when it had a logger, `BACKEND` when it had none. Only that field
/// changes.
fn write_log_with_logger(out: &mut Vec<u8>, msg: &Message<'_>, backend: &str) {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default)]
        logger: Option<&'a RawValue>,
    }
    let Some(params) = msg.params else {
        splice(out, msg.line, &[]);
        return;
    };
    let parsed: Option<Params<'_>> = serde_json::from_str(params.get()).ok();
    let mut value = Vec::with_capacity(backend.len() + 32);
    match parsed.as_ref().and_then(|p| p.logger) {
        Some(logger) => {
            let old: String = serde_json::from_str(logger.get()).unwrap_or_default();
            message::write_json_string(&mut value, &format!("{backend}/{old}"));
            match span_of(msg.line, logger.get()) {
                Some(span) => splice(out, msg.line, &[(span, &value)]),
                None => splice(out, msg.line, &[]),
            }
        }
        None => {
            let Some(span) =
                span_of(msg.line, params.get()).filter(|_| params.get().starts_with('{'))
            else {
                splice(out, msg.line, &[]);
                return;
            };
            value.extend_from_slice(b"\"logger\":");
            message::write_json_string(&mut value, backend);
            let empty = params.get()[1..].trim_start().starts_with('}');
            if !empty {
                value.push(b',');
            }
            let at = span.start + 1;
            splice(out, msg.line, &[(at..at, &value)]);
        }
    }
}

/// The span of `params.requestId` in a `notifications/cancelled` line.
fn cancel_target(msg: &Message<'_>) -> Option<std::ops::Range<usize>> {
    #[derive(Deserialize)]
    struct Cancel<'a> {
        #[serde(rename = "requestId", borrow)]
        request_id: &'a RawValue,
    }
    let p: Cancel<'_> = serde_json::from_str(msg.params?.get()).ok()?;
    span_of(msg.line, p.request_id.get())
}

/// The `message` of a JSON-RPC error object (or its raw text when it has none).
/// What a backend's error response with `"id": null` says (`"message (code N)"`), when
/// `line` is one.
fn null_id_error(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct NullIdError<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
        #[serde(borrow)]
        error: &'a RawValue,
    }
    let e: NullIdError<'_> = serde_json::from_slice(line).ok()?;
    e.id.map_or(true, |id| id.get() == "null")
        .then(|| error_message(e.error))
}

fn error_message(err: &RawValue) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        code: Option<i64>,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_str::<E>(err.get()) {
        Ok(E {
            message: Some(m),
            code: Some(c),
        }) => format!("{m} (code {c})"),
        Ok(E {
            message: Some(m), ..
        }) => m,
        _ => err.get().to_string(),
    }
}

/// The backends of `config` gangway disabled, with the reason.
fn unavailable(config: &Config) -> Vec<(String, String)> {
    config
        .backends
        .iter()
        .filter_map(|b| Some((b.name.clone(), b.disabled_reason.clone()?)))
        .collect()
}

#[cfg(test)]
mod tests;
