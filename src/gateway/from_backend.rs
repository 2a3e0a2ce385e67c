//! What a backend sends: answers to requests (mapped back to the session that asked, id
//! bytes intact), its own requests to a client, and its notifications (progress,
//! cancellation, list changes, log messages, resource updates), routed by ownership.

use super::backend::ListState;
use super::lists::ListKind;
use super::requests::{cancel_target, Pending, PendingKind};
use super::session;
use super::stats::Outcome;
use super::tasks::{self, TaskOp};
use super::tools;
use super::{after, trim_end, Gateway, Life, SessionId, Timer};
use super::{PING_TO_CLIENT_MAX, TO_CLIENT_MAX};
use crate::wire::ids::{parse_gateway_id, IdText, Peer, RawId};
use crate::wire::message::{
    self, span_of, splice, write_error, write_result, Kind, Message, Raw, BACKEND_ERROR,
    INVALID_REQUEST, METHOD_NOT_FOUND,
};
use log::{debug, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Instant;

impl Gateway {
    /// Handles one line from backend `b`'s stdout: an answer, a request to a client or a
    /// notification; anything else is logged and skipped.
    pub(super) fn backend_line(&mut self, now: Instant, b: usize, line: &[u8]) {
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
                self.backends[b].noise_line(line, &bad.reason);
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
            self.backends[b].set_unattributed(said);
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
        let Some((origin, pending)) = self.untrack(now, gw, outcome_of(msg)) else {
            return;
        };
        let to = pending.session;
        // Read only for a task operation: an answer is not scanned again otherwise.
        let task = match pending.task {
            TaskOp::Create | TaskOp::Single => msg.result.and_then(tasks::task_id_and_status),
            TaskOp::None => None,
        };
        match (pending.task, task, to) {
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
            self.queue_to(to).splice(msg.line, edits);
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
        self.queue_to(to).splice(msg.line, &edits);
    }

    fn backend_request(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        let Some(raw) = msg.id.map(|i| i.get().as_bytes()) else {
            return;
        };
        if self.modern_ask(now, b, msg) {
            return;
        }
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
        self.warn_shared_ask(b, method);
        let be = &self.backends[b];
        if be.to_client() >= TO_CLIENT_MAX {
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
                let token = message::notification_progress_token(msg.params);
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
                // A session's own process updates only that session.
                let to: Vec<SessionId> = match &uri {
                    Some(uri) if self.listening() => self
                        .subscribers(uri)
                        .filter(|s| self.backends[b].serves(*s))
                        .collect(),
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
                let be = &self.backends[b];
                for (s, c) in self.sessions.iter_mut() {
                    if be.serves(*s) && c.wants_log(level) {
                        c.queue().buf().extend_from_slice(&line);
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
                let Some((_, pending)) = self.untrack(now, gw, Outcome::Cancelled) else {
                    return;
                };
                let Some(to) = pending.session else { return };
                let gw_text = IdText::new(gw);
                self.queue_to(to)
                    .splice(msg.line, &[(span, gw_text.as_bytes())]);
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

    /// Whether backend `b` declared `capability` in its `initialize` answer.
    pub(super) fn backend_has_capability(&self, b: usize, capability: &str) -> bool {
        self.backend_capability(b, capability).is_some()
    }

    /// What backend `b` declared for `capability` in its `initialize` result, if it did.
    pub(super) fn backend_capability(
        &self,
        b: usize,
        capability: &str,
    ) -> Option<serde_json::Value> {
        #[derive(Deserialize)]
        struct Init {
            #[serde(default)]
            capabilities: HashMap<String, serde_json::Value>,
        }
        let init = self.backends[b].init_result.as_ref()?;
        serde_json::from_str::<Init>(init.get())
            .ok()?
            .capabilities
            .remove(capability)
    }
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
        .then(|| error_message(e.error.into()))
}

/// A JSON-RPC error object as a sentence for error texts: its message and code, or the raw
/// object when it has no message.
pub(super) fn error_message(err: Raw<'_>) -> String {
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

/// How a backend's answer ends its request, for the metrics: an error, a tool result with
/// `isError: true` (a member the pass that read the line found), or a result.
fn outcome_of(msg: &Message<'_>) -> Outcome {
    if msg.error.is_some() {
        Outcome::Error
    } else if msg.is_tool_error() {
        Outcome::ToolError
    } else {
        Outcome::Ok
    }
}
