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

use super::asks::{placeholder_state, Asks};
use super::outbox::OutBuf;
use super::{Gateway, SessionId, SUPPORTED_PROTOCOL_VERSIONS};
use crate::wire::lists::{ListKind, LIST_KINDS};
use crate::wire::message::{
    span_of, splice, write_error, write_result, Kind, Message, INVALID_PARAMS, METHOD_NOT_FOUND,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Instant;

/// The modern revision gangway speaks toward clients.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The `_meta` key of the protocol version on a modern request.
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of the log level a modern request asks for (none: no log messages).
const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";
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

/// Whether `method`'s results are cacheable (carry `ttlMs` and `cacheScope`).
pub(super) fn is_cacheable(method: &str) -> bool {
    CACHEABLE.contains(&method)
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

/// One open `subscriptions/listen`: its raw request id, and the list changes and resource
/// updates it asked for (and gangway honored).
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
    log_level: Option<&'a RawValue>,
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
        let level = match envelope.log_level {
            None => None,
            Some(raw) => {
                let rank = serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get())
                    .ok()
                    .and_then(|l| super::session::level_rank(&l));
                if rank.is_none() {
                    let text = format!("params._meta[\"{LOG_LEVEL_KEY}\"] must be one of the strings debug, info, notice, warning, error, critical, alert, emergency (or left out: no log messages)");
                    write_error(self.reply(), id, INVALID_PARAMS, &text);
                    return true;
                }
                rank
            }
        };
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
                self.unsubscribe_unused(now, s, &uri);
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

    /// Notes that session `s`'s request `id` (of `method`) expects a cacheable result when
    /// `cacheable`.
    pub(super) fn note_cacheable(
        &mut self,
        s: SessionId,
        id: &[u8],
        method: &str,
        cacheable: bool,
    ) {
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
        if !self
            .sessions
            .values()
            .any(|c| c.modern.as_ref().is_some_and(|m| !m.staged.is_empty()))
        {
            return;
        }
        let ttls = LIST_KINDS.map(|k| self.list_ttl(k));
        let mut released = Vec::new();
        let asks = &mut self.asks;
        for (&s, c) in self.sessions.iter_mut() {
            let Some(m) = c.modern.as_mut() else {
                continue;
            };
            let staged = std::mem::take(&mut m.staged);
            let pending = staged.pending();
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', pending) {
                let line = &pending[start..nl];
                start = nl + 1;
                modernize(line, s, m, asks, &ttls, &mut released, c.out.buf());
            }
            m.staged = staged;
            m.staged.consume(start);
        }
        self.release_asks(released);
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
    s: SessionId,
    m: &mut Modern,
    asks: &mut Asks,
    ttls: &[u64; LIST_KINDS.len()],
    released: &mut Vec<(usize, Vec<u8>)>,
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
            if let Some(state) = placeholder_state(&key) {
                // A call answered while its client had an input request of it to answer:
                // kept for the retry (the client never used this id).
                let answer = match (msg.result, msg.error) {
                    (Some(r), _) => (false, r.get().as_bytes().to_vec()),
                    (None, Some(e)) => (true, e.get().as_bytes().to_vec()),
                    (None, None) => (true, b"{\"code\":-32603,\"message\":\"an answer with neither result nor error\"}".to_vec()),
                };
                if let Some(backend_request) = asks.end(state, s, answer) {
                    released.extend(backend_request);
                    return;
                }
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
            SessionId(0),
            &mut m,
            &mut Asks::default(),
            &[0; 4],
            &mut Vec::new(),
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
