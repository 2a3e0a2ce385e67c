//! Requests in flight, in both directions: the id table's bookkeeping ([`Pending`]),
//! forwarding a request to a backend (queued behind its start when it is not ready),
//! timeouts, cancellation, and the answers a request gets when its backend fails.

use super::backend::{Backend, Queued};
use super::lifecycle::{self, Paused, Phase, FAILED_PAUSE};
use super::lists::ListKind;
use super::stats::{method_label, Outcome};
use super::tasks::TaskOp;
use super::tools;
use super::{after, Gateway, Life, SessionId, Timer};
use crate::timer::TimerHandle;
use crate::wire::ids::{IdText, Peer, RawId};
use crate::wire::message::{
    self, request_progress_token, span_of, splice, write_error, write_request, write_result,
    Message, Raw, BACKEND_ERROR, INVALID_REQUEST, REQUEST_TIMEOUT,
};
use log::{error, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;

/// What a tracked request is, so its answer (or failure) is handled right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PendingKind {
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
pub(super) struct Pending {
    pub(super) backend: usize,
    pub(super) kind: PendingKind,
    /// Written to the backend (false while queued behind a start).
    pub(super) sent: bool,
    pub(super) timer: Option<TimerHandle>,
    /// The client's progress token, while notifications for it are expected.
    pub(super) token: Option<RawId>,
    /// The token the backend was sent instead, when the client's was already in use at
    /// that backend by another request (another session's, typically: SDKs number their
    /// tokens from the same start). Progress for it goes back with the client's token.
    pub(super) wire_token: Option<RawId>,
    /// Where the answer carries task ids to prefix.
    pub(super) task: TaskOp,
    /// The session the request belongs to: the one that sent it, or for a backend's
    /// request to a client, the one it was sent to. `None` for gangway's own.
    pub(super) session: Option<SessionId>,
    /// Its method, as a metrics label (a client's request only).
    pub(super) method: &'static str,
    /// When it was written to the backend, for its latency.
    pub(super) sent_at: Option<Instant>,
}

impl Pending {
    /// A request for backend `b`, not yet written, with no timer, token or task.
    pub(super) fn new(backend: usize, kind: PendingKind) -> Pending {
        Pending {
            backend,
            kind,
            sent: false,
            timer: None,
            token: None,
            wire_token: None,
            task: TaskOp::None,
            session: None,
            method: "other",
            sent_at: None,
        }
    }
}

impl Gateway {
    /// Forwards a client request to backend `b` with its id rewritten, and optionally one
    /// more span replaced (anywhere in the line), and its progress token when it must be.
    pub(super) fn forward(
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
        let token = msg.progress_token();
        let Some(gw) = self.admit(now, b, client_id, kind, token, task, len) else {
            return;
        };
        self.label(gw, msg.method.unwrap_or(""));
        let gw_text = IdText::new(gw);
        let wire = self.ids.get(gw).and_then(|e| e.data.wire_token.clone());
        let token_span = wire
            .as_ref()
            .and(token)
            .and_then(|t| span_of(msg.line, t.get()));
        let mut edits: Vec<(std::ops::Range<usize>, &[u8])> = vec![(id_span, gw_text.as_bytes())];
        if let Some((span, bytes)) = &extra {
            edits.push((span.clone(), bytes.as_slice()));
        }
        if let (Some(span), Some(wire)) = (token_span, wire.as_ref()) {
            edits.push((span, wire.as_bytes()));
        }
        edits.sort_by_key(|(r, _)| r.start);
        self.send_spliced(now, b, gw, msg.line, &edits);
    }

    /// Sends gangway-built params to backend `b` on behalf of a client request (use_tool).
    pub(super) fn forward_built(
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
        let Some(gw) = self.admit(now, b, id, kind, msg.progress_token(), task, len) else {
            return;
        };
        self.label(gw, method);
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

    /// Notes request `gw`'s method for its metrics.
    fn label(&mut self, gw: u64, method: &str) {
        if let Some(e) = self.ids.get_mut(gw) {
            e.data.method = method_label(method);
        }
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
        token: Option<Raw<'_>>,
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
                if let Some(token) = token {
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

    /// [`Gateway::send`] of `line` with `edits` applied: to a ready backend through
    /// [`OutBuf::splice`], which may write it straight through.
    fn send_spliced(
        &mut self,
        now: Instant,
        b: usize,
        gw: u64,
        line: &[u8],
        edits: &[(std::ops::Range<usize>, &[u8])],
    ) {
        if self.backends[b].lifecycle.is_ready() {
            self.out.backends[b].splice(line, edits);
            self.mark_sent(now, b, gw);
        } else {
            self.send(now, b, gw, |out| splice(out, line, edits));
        }
    }

    /// Request `gw` was written to backend `b` at `now`: its timeout starts (the
    /// `startup_timeout` for `initialize`, the backend's `timeout` otherwise).
    pub(super) fn mark_sent(&mut self, now: Instant, b: usize, gw: u64) {
        self.watch_input(now, b);
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
            e.data.sent_at = Some(now);
            e.data.timer = Some(self.timers.insert(after(now, timeout), Timer::Request(gw)));
        }
    }

    /// Whether backend `b` may be used now, or why not.
    pub(super) fn available(&mut self, now: Instant, b: usize) -> Result<(), String> {
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

    /// Enters `pending` in the id table (with the origin's id, if any) and counts it for
    /// its backend; returns its gateway id, or `None` when the table refuses it.
    pub(super) fn track(&mut self, origin: Option<(Peer, &[u8])>, pending: Pending) -> Option<u64> {
        let b = pending.backend;
        let to_client = pending.kind == PendingKind::ToClient;
        let gw = self.ids.insert(origin, pending).ok()?;
        self.backends[b].request_began(to_client);
        Some(gw)
    }

    /// Removes request `gw` from the id table (its timer, its progress token and its count
    /// at the backend too), counts a client's request as ended with `outcome` (ignored for
    /// gangway's own and for a backend's requests to a client), and returns its origin id
    /// and bookkeeping; a backend whose last
    /// request ended is stopped when a reload removed or changed it, else its idle timer
    /// is set.
    pub(super) fn untrack(
        &mut self,
        now: Instant,
        gw: u64,
        outcome: Outcome,
    ) -> Option<(Option<RawId>, Pending)> {
        let entry = self.ids.remove(gw)?;
        if !self.asks.is_empty() {
            self.asks.call_left(gw);
        }
        if matches!(entry.data.kind, PendingKind::Forward | PendingKind::UseTool) {
            let latency = entry
                .data
                .sent_at
                .map(|t| now.saturating_duration_since(t).as_secs_f64());
            let b = entry.data.backend;
            self.backends[b]
                .stats
                .request(entry.data.method, outcome, latency);
        }
        if let Some(t) = entry.data.timer {
            self.timers.cancel(t);
        }
        let b = entry.data.backend;
        if let Some(token) = entry.data.wire_token.as_ref().or(entry.data.token.as_ref()) {
            self.progress.remove(&(b, token.clone()));
        }
        let be = &mut self.backends[b];
        let idle = be.request_ended(entry.data.kind == PendingKind::ToClient);
        be.lifecycle.touch(now);
        if idle {
            if be.removed || be.lifecycle.restart_pending() {
                // A reload removed or changed it; its last request has ended.
                self.stop(now, b);
            } else {
                self.arm_idle(b);
            }
        }
        Some((entry.origin.map(|(_, raw)| raw), entry.data))
    }

    /// How many client requests are still unanswered (forwarded, merged or task lists).
    pub(super) fn client_requests_pending(&self) -> usize {
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

    /// Answers every request tracked for backend `b` with `reason`; queued ones too when
    /// `with_queued` (otherwise they wait for the next start).
    pub(super) fn fail_pending(&mut self, now: Instant, b: usize, reason: &str, with_queued: bool) {
        let gws = self
            .ids
            .ids_where(|e| e.data.backend == b && (with_queued || e.data.sent));
        for gw in gws {
            let Some((origin, pending)) = self.untrack(now, gw, Outcome::Failed) else {
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

    /// Request `gw`'s timeout fired: its origin gets a timeout error (a failed start for
    /// `initialize`), and the other side hears it was cancelled.
    pub(super) fn request_timed_out(&mut self, now: Instant, gw: u64) {
        let Some(entry) = self.ids.get_mut(gw) else {
            return;
        };
        // The timer is firing, so there is nothing to cancel.
        entry.data.timer = None;
        let Some((origin, pending)) = self.untrack(now, gw, Outcome::Timeout) else {
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

    /// Tells backend `b`, when it is ready, that gangway's request `gw` is cancelled.
    pub(super) fn cancel_to_backend(&mut self, b: usize, gw: u64, reason: &str) {
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

    /// Sends gangway's own request, whose answer is not needed, to a ready backend.
    pub(super) fn send_internal(&mut self, now: Instant, b: usize, method: &str, params: &[u8]) {
        self.send_own(now, b, PendingKind::Internal, method, Some(params));
    }

    /// Sends a request of gangway's own (`kind` says what its answer is for) to backend
    /// `b`, tracked like any other and queued while the backend starts.
    pub(super) fn send_own(
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
}

/// Request params (`params`, one JSON object) with `_meta.progressToken` replaced by
/// `token` (raw JSON), or `None` when they carry no token.
pub(super) fn with_progress_token(params: &[u8], token: &[u8]) -> Option<Vec<u8>> {
    let raw: &RawValue = serde_json::from_slice(params).ok()?;
    let span = span_of(params, request_progress_token(Some(raw.into()))?.get())?;
    let mut out = Vec::with_capacity(params.len() + token.len());
    splice(&mut out, params, &[(span, token)]);
    out.pop(); // splice ends a line; params are not one.
    Some(out)
}

/// The span of `params.requestId` in a `notifications/cancelled` line.
pub(super) fn cancel_target(msg: &Message<'_>) -> Option<std::ops::Range<usize>> {
    #[derive(Deserialize)]
    struct Cancel<'a> {
        #[serde(rename = "requestId", borrow)]
        request_id: &'a RawValue,
    }
    let p: Cancel<'_> = serde_json::from_str(msg.params?.get()).ok()?;
    span_of(msg.line, p.request_id.get())
}
