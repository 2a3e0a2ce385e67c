//! What a client sends: its requests, dispatched by method, its notifications
//! (cancellation, progress, roots changes) and its answers to backends' requests, plus
//! `initialize` and the instructions gangway gives.

use super::aggregate::AggregateKind;
use super::lists::ListKind;
use super::requests::{cancel_target, PendingKind};
use super::session;
use super::stats::Outcome;
use super::tasks::TaskOp;
use super::SUPPORTED_PROTOCOL_VERSIONS;
use super::{naming, tools};
use super::{trim_end, Gateway, Life};
use crate::config::Expose;
use crate::wire::ids::{parse_gateway_id, IdText, Peer};
use crate::wire::message::{
    self, splice, write_error, write_result, Kind, Message, Raw, INVALID_PARAMS, METHOD_NOT_FOUND,
    RATE_LIMITED,
};
use log::{debug, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;

impl Gateway {
    /// Handles one line from the client of the session being handled: a request, a
    /// notification or an answer; a line that is not JSON-RPC is answered with its error.
    pub(super) fn client_line(&mut self, now: Instant, line: &[u8]) {
        let line = trim_end(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if self.ignoring_client() {
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
        self.dispatch(now, &msg);
    }

    /// [`Gateway::client_line`] for a line its front has parsed already.
    pub(super) fn client_message(&mut self, now: Instant, msg: &Message<'_>) {
        if !self.ignoring_client() {
            self.dispatch(now, msg);
        }
    }

    /// Whether client messages are dropped: once shutting down. A deferred request was
    /// accepted before shutdown began, so it still gets its answer (its backend is then
    /// unavailable, which says why).
    fn ignoring_client(&self) -> bool {
        let ignoring = matches!(self.life, Life::ShuttingDown | Life::Exited) && !self.retrying;
        if ignoring {
            debug!("client line ignored: gangway is shutting down");
        }
        ignoring
    }

    fn dispatch(&mut self, now: Instant, msg: &Message<'_>) {
        match msg.kind {
            Kind::Request => self.client_request(now, msg),
            Kind::Notification => self.client_notification(now, msg),
            Kind::Response => self.client_response(now, msg),
        }
    }

    fn client_request(&mut self, now: Instant, msg: &Message<'_>) {
        let Some(id) = msg.id.map(|i| i.get().as_bytes()) else {
            return;
        };
        let method = msg.method.unwrap_or("");
        let refusal = self
            .sessions
            .get_mut(&self.handling)
            .and_then(|c| c.bucket.as_mut())
            .and_then(|b| b.take(now).err().map(|wait| b.limit().refusal(wait)));
        if let Some(text) = refusal {
            write_error(self.reply(), id, RATE_LIMITED, &text);
            return;
        }
        if self.modern_request(now, msg, id) {
            return;
        }
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

    fn initialize(&mut self, id: &[u8], params: Option<Raw<'_>>) {
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
        let client = init.client_info.map(super::modern::client_label);
        if let Some(c) = self.sessions.get_mut(&self.handling) {
            c.client = client;
            c.version = Some(version);
        }
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

    /// Records the protocol version, capabilities and clientInfo that the `initialize`
    /// gangway sends to backends carries (the client that initialized last).
    pub(super) fn set_client_init(
        &mut self,
        version: &str,
        caps: Option<&RawValue>,
        info: Option<&RawValue>,
    ) {
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

    pub(super) fn instructions(&self) -> String {
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

    fn tools_list(&mut self, now: Instant, id: &[u8], params: Option<Raw<'_>>) {
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
    fn list_request(&mut self, now: Instant, id: &[u8], params: Option<Raw<'_>>, kind: ListKind) {
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
    fn refuse_cursor(&mut self, id: &[u8], params: Option<Raw<'_>>) -> bool {
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

    fn client_notification(&mut self, now: Instant, msg: &Message<'_>) {
        match msg.method.unwrap_or("") {
            "notifications/cancelled" => {
                let Some(span) = cancel_target(msg) else {
                    return;
                };
                let raw = &msg.line[span.clone()];
                if self.asks.is_placeholder(raw) {
                    // The client got its answer (an InputRequiredResult); the call goes on
                    // until its retry or its ask's expiry.
                    debug!("client cancelled a call suspended for its retry; ignored");
                    return;
                }
                self.forget_cacheable(raw);
                if let Some(gw) = self.ids.find(Peer::Session(self.handling.0), raw) {
                    let Some((_, pending)) = self.untrack(now, gw, Outcome::Cancelled) else {
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
                } else if self.end_listen(now, raw) {
                    debug!("client ended a subscriptions/listen");
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
        let Some((origin, pending)) = self.untrack(now, gw, Outcome::Ok) else {
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

    fn set_log_level(&mut self, now: Instant, id: &[u8], params: Option<Raw<'_>>) {
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
        self.set_session_log_level(now, Some(rank));
        write_result(self.reply(), id, b"{}");
    }

    /// Sets the log level of the session being handled (`None`: none asked for). Backends
    /// are shared: each runs at the most verbose level any session asked for, and each
    /// session hears only what its own level admits.
    pub(super) fn set_session_log_level(&mut self, now: Instant, rank: Option<u8>) {
        let before = self.backend_log_params();
        if let Some(c) = self.sessions.get_mut(&self.handling) {
            c.log_level = rank;
        }
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
    }
}
