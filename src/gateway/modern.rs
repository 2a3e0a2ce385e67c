//! MCP revision 2026-07-28 ("modern") toward a client: no `initialize`, a
//! `server/discover`, the version and capabilities on every request's `_meta`, and a
//! `resultType` on every result. Backends stay on the handshake era; this module
//! translates at the edge.
//!
//! A session's first request decides its era, as the SDK's dual-era servers do: one that
//! carries `_meta["io.modelcontextprotocol/protocolVersion"]` and is not `initialize` makes
//! it modern for good; any other makes it a handshake-era session for good (where a request
//! carrying the envelope is refused). A modern session's output is staged and rewritten
//! line by line (`modernize`) before it reaches the client; `subscriptions/listen` carries
//! the list changes and the updates of the resources it subscribed to; log messages follow
//! each request's `logLevel`. A backend's request to the client during a modern call goes
//! out inside an `InputRequiredResult` and its answer comes back in the call's retry
//! (`modern_ask`, `modern_retry`); asks are the gateway's, not a session's, because over
//! `gangway serve` each modern request is a session of its own (`HttpFront::post_modern`)
//! and the retry comes in another one.

use super::outbox::OutBuf;
use super::requests::PendingKind;
use super::stats::Outcome;
use super::{after, Gateway, SessionId, Timer, SUPPORTED_PROTOCOL_VERSIONS};
use crate::timer::TimerHandle;
use crate::wire::ids::{Peer, RawId};
use crate::wire::lists::{ListKind, LIST_KINDS};
use crate::wire::message::{
    span_of, splice, write_error, write_result, Kind, Message, BACKEND_ERROR, INVALID_PARAMS,
    METHOD_NOT_FOUND, REQUEST_TIMEOUT,
};
use log::warn;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Instant;

/// The modern revision gangway speaks toward clients.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The `_meta` key of the protocol version on a modern request.
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of the client's capabilities on a modern request.
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The revision's error code for a protocol version the server does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// Methods the revision removed (answered "method not found", as SDK servers do), and
/// those gangway does not serve to modern clients yet.
const REMOVED: [&str; 8] = [
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
];
/// How long a list answer is good for when every backend's list is known (`ttlMs`): a
/// client that keeps a listen hears of a change at once; one that does not re-asks after
/// this long.
const LIST_TTL_MS: u64 = 60_000;

/// The list `method` asks for, if it is a list method.
fn list_of(method: &str) -> Option<ListKind> {
    LIST_KINDS.into_iter().find(|k| k.method() == method)
}

/// Methods whose results are cacheable, so carry `ttlMs` and `cacheScope`.
const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];
/// Notifications a modern client hears only inside a `subscriptions/listen`: sent to each
/// listen that asked for them, else not at all.
const NOT_SENT: [&str; 4] = [
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
];

/// A modern session's state: the output waiting to be rewritten, which of its requests
/// expect a cacheable result, and its open `subscriptions/listen` streams.
#[derive(Debug, Default)]
pub struct Modern {
    /// What the gateway wrote for this client, before [`modernize`].
    pub staged: OutBuf,
    /// Raw ids of its requests in flight whose result is cacheable, with the list each asks
    /// for (`None`: `resources/read`); an id leaves when its answer passes or the client
    /// cancels it.
    cacheable: HashMap<Vec<u8>, Option<ListKind>>,
    /// Its open listens, oldest first (at most [`LISTENS_MAX`]).
    listens: Vec<Listen>,
}

/// A backend's request to the client, handed to a modern client inside an
/// `InputRequiredResult` answering its call: the answer comes in the call's retry, which
/// may come in another session (over `gangway serve`, each request is a session of its
/// own), so asks are the gateway's, by `requestState`.
#[derive(Debug)]
pub(super) struct Ask {
    /// The gateway id of the client's call at the backend (still in flight there until
    /// `ended`).
    gw: u64,
    backend: usize,
    /// The backend's own id of its request, raw.
    backend_id: Vec<u8>,
    /// The session the suspended call belongs to (the one its answer would go to).
    session: SessionId,
    /// The call's method (a metrics label: `tools/call`, `prompts/get`, `resources/read`).
    method: &'static str,
    /// When the client's retry is due (the backend's `client_request_timeout`): then the
    /// backend's request gets a timeout error and the call is cancelled.
    timer: Option<TimerHandle>,
    /// The call's answer (its `result` or `error` member, raw), when the backend gave it
    /// before the client retried: the retry gets it.
    ended: Option<(bool, Vec<u8>)>,
}

/// Asks one session may have waiting for a retry.
const ASKS_MAX: usize = 64;
/// Asks the gateway keeps in all (each session's are also bounded by [`ASKS_MAX`]).
const ASKS_TOTAL: usize = 4096;
/// How a suspended call's id starts (then its `requestState`, then `"`): the id it has
/// in the id table while its client answers an input request.
const PLACEHOLDER: &[u8] = b"\"input-required:";
/// The key of the one input request in an `InputRequiredResult` gangway makes.
const ASK_KEY: &str = "gangway";

/// One open `subscriptions/listen`: its raw request id and the list changes it asked for.
#[derive(Debug)]
struct Listen {
    id: Vec<u8>,
    filter: Filter,
}

/// The kinds of notification a listen asks for, and the resources whose updates it
/// wants (those a backend is known to own: the acknowledgement names them, which tells
/// the client the others are not honored).
#[derive(Debug, Default, Deserialize)]
struct Filter {
    #[serde(rename = "toolsListChanged", default)]
    tools: bool,
    #[serde(rename = "promptsListChanged", default)]
    prompts: bool,
    #[serde(rename = "resourcesListChanged", default)]
    resources: bool,
    #[serde(rename = "resourceSubscriptions", default)]
    uris: Vec<String>,
}

impl Filter {
    /// Whether this listen carries notification `method` (about resource `uri`, for
    /// `notifications/resources/updated`: one it subscribed to).
    fn wants(&self, method: &str, uri: Option<&str>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => {
                uri.is_some_and(|u| self.uris.iter().any(|s| s == u))
            }
            _ => false,
        }
    }
}

/// Resources one listen may subscribe to.
const LISTEN_URIS_MAX: usize = 64;

/// Listens one session may keep open; a new one past it ends the oldest.
const LISTENS_MAX: usize = 16;
/// The `_meta` key naming the listen a notification belongs to.
const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// The envelope keys of a request's `params._meta`.
#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    version: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    client_info: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    log_level: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    fn of(msg: &Message<'a>) -> Envelope<'a> {
        msg.call_params()
            .and_then(|p| p.meta)
            .filter(|m| m.contains(VERSION_KEY))
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default()
    }
}

impl Gateway {
    /// Handles what the 2026-07-28 revision changes about client request `msg` (id `id`):
    /// returns true when it was answered here, false when the usual dispatch goes on.
    pub(super) fn modern_request(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) -> bool {
        let method = msg.method.unwrap_or("");
        let envelope = Envelope::of(msg);
        let Some(c) = self.sessions.get_mut(&self.handling) else {
            return false;
        };
        if c.modern.is_none() {
            let modern = !c.handshake
                && c.version.is_none()
                && method != "initialize"
                && envelope.version.is_some();
            if !modern {
                c.handshake = true;
                if envelope.version.is_none() {
                    return false;
                }
                // As the SDK's dual-era servers answer it.
                let text = "this connection serves the handshake protocol era; requests carrying the 2026-07-28 envelope are not accepted on it";
                let line = error(id, crate::wire::message::INVALID_REQUEST, text, None);
                self.reply().extend_from_slice(&line);
                return true;
            }
            c.modern = Some(Box::default());
            // Backends are started with the handshake, declaring what this client declares:
            // their requests reach it inside `InputRequiredResult`s (`modern_ask`).
            let info = envelope.client_info;
            c.version = Some(SUPPORTED_PROTOCOL_VERSIONS[0]);
            c.client = info.map(client_label);
            self.set_client_init(SUPPORTED_PROTOCOL_VERSIONS[0], envelope.capabilities, info);
        }
        let requested = envelope
            .version
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        let refused = match (requested.as_deref(), envelope.capabilities) {
            _ if method == "initialize" => {
                let asked = msg
                    .params
                    .and_then(|p| serde_json::from_str::<InitVersion>(p.get()).ok())
                    .and_then(|i| i.protocol_version)
                    .unwrap_or_default();
                Some(unsupported(id, &asked, "connection is serving the 2026-07-28 protocol; the initialize handshake is not accepted"))
            }
            (None, _) => Some(error(id, INVALID_PARAMS, &format!("params._meta must be an object carrying the required '{VERSION_KEY}' and '{CAPABILITIES_KEY}' envelope keys"), None)),
            (Some(v), _) if v != MODERN_VERSION => Some(unsupported(id, v, "Unsupported protocol version")),
            (Some(_), None) => Some(error(id, INVALID_PARAMS, &format!("params._meta is missing the required envelope key(s): {CAPABILITIES_KEY}"), None)),
            _ => None,
        };
        if let Some(line) = refused {
            self.reply().extend_from_slice(&line);
            return true;
        }
        // Log messages are asked for per request: absent, none are sent.
        let level = envelope.log_level.and_then(super::session::level_rank);
        if self.sessions.get(&self.handling).and_then(|c| c.log_level) != level {
            self.set_session_log_level(now, level);
        }
        let answer = match method {
            "subscriptions/listen" => {
                self.listen(now, msg, id);
                return true;
            }
            _ if REMOVED.contains(&method) => Some(error(
                id,
                METHOD_NOT_FOUND,
                "Method not found",
                Some(method),
            )),
            "server/discover" => Some(self.server_discover(id)),
            _ if self.modern_retry(now, msg, id) => return true,
            _ => None,
        };
        if let Some(line) = answer {
            self.reply().extend_from_slice(&line);
            return true;
        }
        if CACHEABLE.contains(&method) {
            if let Some(m) = self
                .sessions
                .get_mut(&self.handling)
                .and_then(|c| c.modern.as_mut())
            {
                m.cacheable.insert(id.to_vec(), list_of(method));
            }
        }
        false
    }

    /// Opens a `subscriptions/listen` (request `id`): acknowledged with what is honored;
    /// it then carries the list changes and resource updates it asked for until the
    /// client cancels it. A resource is honored when a backend is known to own it (lists
    /// it, or has a template that matches it): that backend is subscribed to it, as
    /// `resources/subscribe` did, shared with other sessions.
    fn listen(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize, Default)]
        struct P {
            #[serde(default)]
            notifications: Filter,
        }
        let mut filter = msg
            .params
            .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
            .unwrap_or_default()
            .notifications;
        let s = self.handling;
        let mut uris = std::mem::take(&mut filter.uris);
        uris.sort_unstable();
        uris.dedup();
        uris.truncate(LISTEN_URIS_MAX);
        uris.retain(|uri| self.subscribe_for(now, s, uri));
        filter.uris = uris;
        let mut honored = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", filter.tools),
            ("promptsListChanged", filter.prompts),
            ("resourcesListChanged", filter.resources),
        ] {
            if on {
                honored.insert(key.into(), true.into());
            }
        }
        if !filter.uris.is_empty() {
            honored.insert("resourceSubscriptions".into(), filter.uris.clone().into());
        }
        let ack = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{{\"notifications\":{},\"_meta\":{{\"{SUBSCRIPTION_KEY}\":{}}}}}}}\n",
            serde_json::Value::Object(honored),
            String::from_utf8_lossy(id)
        );
        let Some(c) = self.sessions.get_mut(&self.handling) else {
            return;
        };
        let Some(m) = c.modern.as_mut() else {
            return;
        };
        let evicted = (m.listens.len() >= LISTENS_MAX).then(|| m.listens.remove(0));
        if let Some(oldest) = &evicted {
            let result = format!(
                "{{\"resultType\":\"complete\",\"_meta\":{{\"{SUBSCRIPTION_KEY}\":{}}}}}",
                String::from_utf8_lossy(&oldest.id)
            );
            write_result(m.staged.buf(), &oldest.id, result.as_bytes());
        }
        m.listens.push(Listen {
            id: id.to_vec(),
            filter,
        });
        m.staged.buf().extend_from_slice(ack.as_bytes());
        if let Some(oldest) = evicted {
            self.release_listen(now, s, oldest);
        }
    }

    /// Withdraws what listen `l` of session `s` subscribed to and no other listen of it
    /// holds (the backend's subscription ends when no session holds it).
    fn release_listen(&mut self, now: Instant, s: SessionId, l: Listen) {
        for uri in l.filter.uris {
            let Some(c) = self.sessions.get_mut(&s) else {
                return;
            };
            let kept = c
                .modern
                .as_ref()
                .is_some_and(|m| m.listens.iter().any(|o| o.filter.uris.contains(&uri)));
            if !kept {
                c.subscriptions.remove(&uri);
                self.unsubscribe_unused(now, &uri);
            }
        }
    }

    /// Forgets that the client's request `raw` expects a cacheable result (it cancelled
    /// it: no answer will pass).
    pub(super) fn forget_cacheable(&mut self, raw: &[u8]) {
        if let Some(m) = self
            .sessions
            .get_mut(&self.handling)
            .and_then(|c| c.modern.as_mut())
        {
            m.cacheable.remove(raw);
        }
    }

    /// Ends the listen of the session being handled whose request id is `raw` (the client
    /// cancelled it); false when there is none.
    pub(super) fn end_listen(&mut self, now: Instant, raw: &[u8]) -> bool {
        let s = self.handling;
        let Some(m) = self.sessions.get_mut(&s).and_then(|c| c.modern.as_mut()) else {
            return false;
        };
        let Some(at) = m.listens.iter().position(|l| l.id == raw) else {
            return false;
        };
        let l = m.listens.remove(at);
        self.release_listen(now, s, l);
        true
    }

    /// A backend's request `msg` to a client (sampling, elicitation, roots) while a modern
    /// client's call is in flight at backend `b`: that call is answered with an
    /// `InputRequiredResult` carrying the request, and stays in flight at the backend until
    /// the client's retry brings the answer ([`Gateway::modern_retry`]). While it waits,
    /// the call's own timeout is paused: the client has the backend's
    /// `client_request_timeout` to retry (a person may be answering). False when no modern
    /// client's call waits at `b` (the request then goes the usual way).
    pub(super) fn modern_ask(&mut self, now: Instant, b: usize, msg: &Message<'_>) -> bool {
        let (Some(id), Some(method)) = (msg.id, msg.method) else {
            return false;
        };
        if !matches!(
            method,
            "sampling/createMessage" | "elicitation/create" | "roots/list"
        ) {
            return false;
        }
        let sessions = &self.sessions;
        let waiting = self.ids.ids_where(|e| {
            e.data.backend == b
                && e.data.sent
                && e.data.kind != PendingKind::ToClient
                && matches!(
                    e.data.method,
                    "tools/call" | "prompts/get" | "resources/read"
                )
                && e.data
                    .session
                    .is_some_and(|s| sessions.get(&s).is_some_and(|c| c.modern.is_some()))
                && e.origin
                    .as_ref()
                    .is_some_and(|(_, raw)| !raw.as_bytes().starts_with(PLACEHOLDER))
        });
        let Some(&gw) = waiting.first() else {
            return false;
        };
        // Its request names no call: the call that has waited longest gets it.
        self.warn_shared_ask(b, method);
        let Some((peer, client_id, s, call)) = self.ids.get(gw).and_then(|e| {
            let (peer, raw) = e.origin.as_ref()?;
            Some((
                *peer,
                raw.as_bytes().to_vec(),
                e.data.session?,
                e.data.method,
            ))
        }) else {
            return false;
        };
        let raw = id.get().as_bytes();
        let mine = self.asks.values().filter(|a| a.session == s).count();
        if mine >= ASKS_MAX || self.asks.len() >= ASKS_TOTAL {
            let text = format!(
                "gangway: {} input requests already wait for 2026-07-28 clients' retries ({ASKS_MAX} per client); {method} refused",
                mine.max(self.asks.len())
            );
            warn!("{text}");
            write_error(self.out.backends[b].buf(), raw, BACKEND_ERROR, &text);
            return true;
        }
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            let text = "gangway: no randomness for a requestState; the request is refused";
            write_error(self.out.backends[b].buf(), raw, BACKEND_ERROR, text);
            return true;
        }
        let token: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let placeholder = format!("{}{token}\"", String::from_utf8_lossy(PLACEHOLDER));
        if self.ids.rekey(gw, (peer, placeholder.as_bytes())).is_err() {
            return false;
        }
        // The call's timeout pauses while its client answers; the ask's runs instead.
        if let Some(t) = self.ids.get_mut(gw).and_then(|e| e.data.timer.take()) {
            self.timers.cancel(t);
        }
        let limit = self.backends[b].config.client_request_timeout;
        let timer = self.timers.insert(after(now, limit), Timer::Ask(gw));
        self.asks.insert(
            token.clone(),
            Ask {
                gw,
                backend: b,
                backend_id: raw.to_vec(),
                session: s,
                method: call,
                timer: Some(timer),
                ended: None,
            },
        );
        let params = msg.params.map_or("{}", |p| p.get());
        let result = format!(
            "{{\"resultType\":\"input_required\",\"inputRequests\":{{\"{ASK_KEY}\":{{\"method\":\"{method}\",\"params\":{params}}}}},\"requestState\":\"{token}\"}}"
        );
        if let Some(c) = self.sessions.get_mut(&s) {
            write_result(c.queue().buf(), &client_id, result.as_bytes());
        }
        true
    }

    /// Whether a modern client's call at backend `b` waits for its client's answer to an
    /// earlier request of `b` (a second one during it cannot reach that client).
    pub(super) fn modern_suspended_at(&self, b: usize) -> bool {
        self.asks
            .values()
            .any(|a| a.backend == b && a.ended.is_none())
    }

    /// Whether session `s` has a call suspended for its client's retry (a front keeps such
    /// a session open after its answer, until [`Gateway::waits_for_retry`] is false: the
    /// retry came, in whichever session, or the ask expired).
    pub fn waits_for_retry(&self, s: SessionId) -> bool {
        self.asks
            .values()
            .any(|a| a.session == s && a.ended.is_none())
    }

    /// The retry of ask `gw` did not come within the backend's `client_request_timeout`:
    /// the backend's request gets a timeout error and the call is cancelled (an answer
    /// the backend gave already is dropped).
    pub(super) fn ask_expired(&mut self, now: Instant, gw: u64) {
        let Some(state) = self
            .asks
            .iter()
            .find(|(_, a)| a.gw == gw)
            .map(|(state, _)| state.clone())
        else {
            return;
        };
        let Some(ask) = self.asks.remove(&state) else {
            return;
        };
        if ask.ended.is_some() {
            return;
        }
        let b = ask.backend;
        let name = self.backends[b].name().to_string();
        let secs = self.backends[b].config.client_request_timeout.as_secs_f64();
        let text = format!(
            "the 2026-07-28 client did not retry its call with the answer to backend '{name}''s request within {secs} s (\"client_request_timeout\" in gangway's config); the request and the call were cancelled"
        );
        warn!("{text}");
        let raw = RawId::new(&ask.backend_id);
        self.refuse_backend_request(b, Some(raw), REQUEST_TIMEOUT, &format!("gangway: {text}"));
        if let Some((_, pending)) = self.untrack(now, gw, Outcome::Timeout) {
            if pending.sent {
                self.cancel_to_backend(b, gw, "the client did not retry in time");
            }
        }
    }

    /// Session `s` ended: the backend requests its suspended calls carried get an error
    /// (the calls themselves are cancelled with the session's other requests).
    pub(super) fn drop_asks_of(&mut self, s: SessionId) {
        let states: Vec<String> = self
            .asks
            .iter()
            .filter(|(_, a)| a.session == s && a.ended.is_none())
            .map(|(state, _)| state.clone())
            .collect();
        for state in states {
            let Some(ask) = self.asks.remove(&state) else {
                continue;
            };
            if let Some(t) = ask.timer {
                self.timers.cancel(t);
            }
            let raw = RawId::new(&ask.backend_id);
            let text = "gangway: the client's session ended before it answered";
            self.refuse_backend_request(ask.backend, Some(raw), BACKEND_ERROR, text);
        }
    }

    /// A modern client's retry of a call answered with an `InputRequiredResult`: its
    /// `inputResponses` answer the backend's request, and the call (still in flight at the
    /// backend) is from now on this request's, in this session, with its timeout running
    /// again. True when `msg` was such a retry (handled here); an unknown `requestState`,
    /// or one of another method's call, is refused.
    fn modern_retry(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Retry<'a> {
            #[serde(rename = "requestState")]
            state: String,
            #[serde(rename = "inputResponses", borrow, default)]
            responses: Option<HashMap<String, &'a RawValue>>,
        }
        let Some(retry) = msg
            .params
            .filter(|p| p.get().contains("\"requestState\""))
            .and_then(|p| serde_json::from_str::<Retry<'_>>(p.get()).ok())
        else {
            return false;
        };
        let s = self.handling;
        let method = msg.method.unwrap_or("");
        let ask = match self.asks.remove(&retry.state) {
            Some(ask) if ask.method == method => ask,
            other => {
                // One of another method's call stays for its own retry.
                if let Some(ask) = other {
                    self.asks.insert(retry.state, ask);
                }
                let text = "unknown or already used requestState: a retry repeats the call it continues, with the requestState gangway gave, once (behind a load balancer, it must reach the gangway instance that answered the call)";
                let line = error(id, INVALID_PARAMS, text, None);
                self.reply().extend_from_slice(&line);
                return true;
            }
        };
        let cacheable = CACHEABLE.contains(&method);
        if let Some((failed, raw)) = &ask.ended {
            // The backend answered the call before this retry: that answer is the retry's.
            if let Some(t) = ask.timer {
                self.timers.cancel(t);
            }
            self.note_cacheable(s, id, method, cacheable);
            let member = if *failed { "error" } else { "result" };
            let line = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"{member}\":{}}}\n",
                String::from_utf8_lossy(id),
                String::from_utf8_lossy(raw)
            );
            self.reply().extend_from_slice(line.as_bytes());
            return true;
        }
        let peer = Peer::Session(s.0);
        let gone = self.ids.get(ask.gw).is_none();
        if gone || self.ids.rekey(ask.gw, (peer, id)).is_err() {
            // The call is gone, or the retry's id is taken by another request in flight:
            // nothing is sent; a taken id may retry again.
            let text = if gone {
                "the call this retry continues has already ended at its backend; call again"
            } else {
                "this id is already used by a request in flight"
            };
            if gone {
                if let Some(t) = ask.timer {
                    self.timers.cancel(t);
                }
            } else {
                self.asks.insert(retry.state, ask);
            }
            let line = error(id, crate::wire::message::INVALID_REQUEST, text, None);
            self.reply().extend_from_slice(&line);
            return true;
        }
        if let Some(t) = ask.timer {
            self.timers.cancel(t);
        }
        // The call is this session's now (over HTTP, the session the retry came in), and
        // its timeout starts again.
        let timeout = self.backends[ask.backend].config.timeout;
        let timer = self
            .timers
            .insert(after(now, timeout), Timer::Request(ask.gw));
        if let Some(e) = self.ids.get_mut(ask.gw) {
            e.data.session = Some(s);
            e.data.timer = Some(timer);
        }
        self.note_cacheable(s, id, method, cacheable);
        let answer = retry.responses.as_ref().and_then(|r| r.get(ASK_KEY));
        let out = self.out.backends[ask.backend].buf();
        match answer {
            Some(result) => write_result(out, &ask.backend_id, result.get().as_bytes()),
            None => write_error(
                out,
                &ask.backend_id,
                crate::wire::message::INTERNAL_ERROR,
                "the client's retry carried no answer to this request",
            ),
        }
        true
    }

    /// Notes that session `s`'s request `id` (of `method`) expects a cacheable result when
    /// `cacheable`.
    fn note_cacheable(&mut self, s: SessionId, id: &[u8], method: &str, cacheable: bool) {
        if !cacheable {
            return;
        }
        if let Some(m) = self.sessions.get_mut(&s).and_then(|c| c.modern.as_mut()) {
            m.cacheable.insert(id.to_vec(), list_of(method));
        }
    }

    /// How long a client may reuse gangway's list of `kind` (`ttlMs`): [`LIST_TTL_MS`]
    /// when every backend whose entries it holds has its list known (fetched, or from the
    /// catalog: a change then reaches listens as a list change), 0 while one is still
    /// being fetched or unknown (the answer left it out or may be stale).
    fn list_ttl(&self, kind: ListKind) -> u64 {
        let complete = self.order.iter().all(|&b| {
            let be = &self.backends[b];
            let listed = kind != ListKind::Tools || super::routing::has_direct_tools(&be.config);
            !listed || matches!(be.list(kind), super::backend::ListState::Known(_))
        });
        if complete {
            LIST_TTL_MS
        } else {
            0
        }
    }

    /// The answer to `server/discover`.
    fn server_discover(&self, id: &[u8]) -> Vec<u8> {
        let result = serde_json::json!({
            "supportedVersions": [MODERN_VERSION],
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"listChanged": true},
                "completions": {},
            },
            "instructions": self.instructions(),
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "gangway", "version": env!("CARGO_PKG_VERSION")}},
        });
        let mut out = Vec::new();
        write_result(&mut out, id, result.to_string().as_bytes());
        out
    }

    /// Rewrites what the gateway wrote for each modern session into its output (after
    /// every event).
    pub(super) fn flush_modern(&mut self) {
        let ttls = LIST_KINDS.map(|k| self.list_ttl(k));
        let asks = &mut self.asks;
        for c in self.sessions.values_mut() {
            let Some(m) = c.modern.as_mut() else {
                continue;
            };
            let staged = std::mem::take(&mut m.staged);
            let pending = staged.pending();
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', pending) {
                let line = &pending[start..nl];
                start = nl + 1;
                modernize(line, m, asks, &ttls, c.out.buf());
            }
            m.staged = staged;
            m.staged.consume(start);
        }
    }
}

#[derive(Deserialize)]
struct InitVersion {
    #[serde(rename = "protocolVersion", default)]
    protocol_version: Option<String>,
}

/// "name version" of a clientInfo, each cut to 64 characters.
pub(super) fn client_label(info: &RawValue) -> String {
    let v: serde_json::Value = serde_json::from_str(info.get()).unwrap_or_default();
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or("")
            .chars()
            .take(64)
            .collect::<String>()
    };
    format!("{} {}", field("name"), field("version"))
        .trim()
        .to_string()
}

/// A JSON-RPC error line, with `data` when given; `id` is written as it came (raw).
fn error(id: &[u8], code: i64, message: &str, data: Option<&str>) -> Vec<u8> {
    let Some(d) = data else {
        let mut line = Vec::new();
        write_error(&mut line, id, code, message);
        return line;
    };
    error_line(
        id,
        &serde_json::json!({"code": code, "message": message, "data": d}),
    )
}

/// The revision's `UnsupportedProtocolVersion` error, naming what gangway speaks.
fn unsupported(id: &[u8], requested: &str, message: &str) -> Vec<u8> {
    let e = serde_json::json!({
        "code": UNSUPPORTED_PROTOCOL_VERSION,
        "message": message,
        "data": {"supported": [MODERN_VERSION], "requested": requested},
    });
    error_line(id, &e)
}

/// `{"jsonrpc":"2.0","id":ID,"error":ERROR}` and a newline, the id raw.
fn error_line(id: &[u8], error: &serde_json::Value) -> Vec<u8> {
    let mut line = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
    line.extend_from_slice(id);
    line.extend_from_slice(b",\"error\":");
    line.extend_from_slice(error.to_string().as_bytes());
    line.extend_from_slice(b"}\n");
    line
}

/// Appends `line` to `out` as a modern client must see it: a result gets `resultType`
/// (and `ttlMs` and `cacheScope` when its request expects a cacheable one) unless it has
/// one; a list change goes once to each listen that asked for it, under its id; other
/// notifications only heard inside a listen are left out; the rest as is.
fn modernize(
    line: &[u8],
    m: &mut Modern,
    asks: &mut HashMap<String, Ask>,
    ttls: &[u64; LIST_KINDS.len()],
    out: &mut Vec<u8>,
) {
    let Ok(msg) = Message::parse(line) else {
        return splice(out, line, &[]);
    };
    let method = msg.method.unwrap_or("");
    match msg.kind {
        Kind::Notification if NOT_SENT.contains(&method) => {
            #[derive(Deserialize)]
            struct Updated<'a> {
                #[serde(borrow)]
                uri: std::borrow::Cow<'a, str>,
            }
            let uri = (method == "notifications/resources/updated")
                .then(|| {
                    msg.params
                        .and_then(|p| serde_json::from_str::<Updated<'_>>(p.get()).ok())
                })
                .flatten()
                .map(|u| u.uri);
            let mut about = String::new();
            if let Some(u) = &uri {
                about = format!("\"uri\":{},", serde_json::Value::from(u.as_ref()));
            }
            for l in m
                .listens
                .iter()
                .filter(|l| l.filter.wants(method, uri.as_deref()))
            {
                let id = String::from_utf8_lossy(&l.id);
                let note = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{{{about}\"_meta\":{{\"{SUBSCRIPTION_KEY}\":{id}}}}}}}\n"
                );
                out.extend_from_slice(note.as_bytes());
            }
        }
        Kind::Response => {
            let key = msg
                .id
                .map(|i| i.get().as_bytes().to_vec())
                .unwrap_or_default();
            if let Some(token) = key
                .strip_prefix(PLACEHOLDER)
                .and_then(|t| t.strip_suffix(b"\""))
            {
                // The backend answered a call while its client had an input request of it
                // to answer: kept for the retry (the client never used this id).
                let token = String::from_utf8_lossy(token).into_owned();
                if let Some(ask) = asks.get_mut(&token) {
                    ask.ended = match (msg.result, msg.error) {
                        (Some(r), _) => Some((false, r.get().as_bytes().to_vec())),
                        (None, Some(e)) => Some((true, e.get().as_bytes().to_vec())),
                        (None, None) => None,
                    };
                }
                return;
            }
            let cache = m.cacheable.remove(&key);
            let typed = msg
                .result_members()
                .is_some_and(|r| r.result_type.is_some());
            let at = msg
                .result
                .filter(|r| r.get().starts_with('{') && !typed)
                .and_then(|r| span_of(line, r.get()))
                .map(|span| span.start + 1);
            let Some(at) = at else {
                return splice(out, line, &[]);
            };
            let empty = line[at..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
            let mut fields = String::from("\"resultType\":\"complete\"");
            if let Some(list) = cache {
                let ttl = list.map_or(0, |k| ttls[k.index()]);
                fields.push_str(&format!(",\"ttlMs\":{ttl},\"cacheScope\":\"private\""));
            }
            if !empty {
                fields.push(',');
            }
            splice(out, line, &[(at..at, fields.as_bytes())]);
        }
        _ => splice(out, line, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str, cacheable: &[&str]) -> String {
        let mut m = Modern {
            cacheable: cacheable
                .iter()
                .map(|i| (i.as_bytes().to_vec(), Some(ListKind::Tools)))
                .collect(),
            ..Modern::default()
        };
        let mut out = Vec::new();
        modernize(
            line.as_bytes(),
            &mut m,
            &mut HashMap::new(),
            &[0; 4],
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn results_get_a_result_type_and_cacheable_ones_their_hints() {
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#, &[]),
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"resultType\":\"complete\",\"content\":[]}}\n"
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","id":"a","result":{ }}"#, &["\"a\""]),
            "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{\"resultType\":\"complete\",\"ttlMs\":0,\"cacheScope\":\"private\" }}\n"
        );
        // Already modern: as is.
        let typed = r#"{"jsonrpc":"2.0","id":3,"result":{"resultType":"input_required"}}"#;
        assert_eq!(run(typed, &[]), format!("{typed}\n"));
        // Errors and progress pass; list changes wait for subscriptions/listen.
        let err = r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#;
        assert_eq!(run(err, &[]), format!("{err}\n"));
        let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
        assert_eq!(run(progress, &[]), format!("{progress}\n"));
        assert_eq!(
            run(
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                &[]
            ),
            ""
        );
    }
}
