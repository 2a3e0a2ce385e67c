//! Sessions: one per client. A session holds what belongs to that client alone: its
//! capabilities, its log level and its output. Requests are owned by the session that sent
//! them (the id table records it), so answers, progress and cancellations find their way
//! back; what concerns every client (list_changed) goes to all sessions.
//!
//! Here too are the gateway's session operations: opening and ending a session, the
//! output of each, which session a backend's request goes to, the log level backends run
//! at, shared resource subscriptions, and the per-session processes of a
//! `"scope": "session"` backend.

use super::stats::Outcome;
use super::{Gateway, OutBuf, PendingKind};
use crate::config::Scope;
use crate::wire::message::{self, Raw, BACKEND_ERROR};
use log::debug;
use std::time::Instant;

/// A client of the gateway. Ids are never reused within one gateway, so a late answer for
/// a session that ended is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// The MCP log levels, least severe first (RFC 5424 order, as MCP defines them).
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The rank of an MCP log level name (0 = debug), or `None` for another text.
pub fn level_rank(name: &str) -> Option<u8> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// The level name of a rank from [`level_rank`].
pub fn level_name(rank: u8) -> &'static str {
    LEVELS.get(usize::from(rank)).copied().unwrap_or("debug")
}

/// The rank of the `level` field of `logging/setLevel` params or of a
/// `notifications/message`'s params, when it is a known level.
pub fn params_level(params: Option<Raw<'_>>) -> Option<u8> {
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        level: &'a str,
    }
    let p: P<'_> = serde_json::from_str(params?.get()).ok()?;
    level_rank(p.level)
}

/// The client capability a backend's request `method` needs, if any.
pub(super) fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        m if m.starts_with("tasks/") => Some("tasks"),
        _ => None,
    }
}

/// `{"uri":URI}`.
fn uri_params(uri: &str) -> Vec<u8> {
    let mut params = b"{\"uri\":".to_vec();
    message::write_json_string(&mut params, uri);
    params.push(b'}');
    params
}

/// One client's state.
#[derive(Debug, Default)]
pub struct Session {
    /// What is waiting to be written to this client.
    pub out: OutBuf,
    /// The capabilities the client declared in `initialize` (null before).
    pub caps: serde_json::Value,
    /// The least severe level of `notifications/message` it asked for with
    /// `logging/setLevel`, or a 2026-07-28 client with its last request's `_meta` (a rank
    /// of [`level_rank`]); `None`: every message (none for a 2026-07-28 client).
    pub log_level: Option<u8>,
    /// The resource URIs it subscribed to (`resources/subscribe`).
    pub subscriptions: std::collections::BTreeSet<String>,
    /// One of gangway's own shell commands (`check`, `tools`, `call`): see
    /// `Gateway::open_shell_session`.
    pub shell: bool,
    /// Its `rate_limit` bucket; `None` when unlimited here (a shell command, or a front
    /// that limits its clients itself).
    pub bucket: Option<crate::ratelimit::TokenBucket>,
    /// Its clientInfo's name and version (cut to 64 characters each), once initialized.
    pub client: Option<String>,
    /// The protocol version agreed in `initialize`.
    pub version: Option<&'static str>,
    /// Set when the client speaks revision 2026-07-28 (see `modern`).
    pub modern: Option<Box<super::modern::Modern>>,
    /// Its first request was of the handshake era: it stays there (see `modern`).
    pub handshake: bool,
    /// Who the client is, as far as the front can tell (the index of its `http.tokens`
    /// token); `None` for a client without a token, and on stdio. Bounds what one
    /// credential's clients may hold (see `asks`).
    pub principal: Option<u32>,
}

impl Session {
    /// The queue the gateway writes this client's output to: for a modern client, the
    /// one its lines are rewritten from (see `modern`).
    pub fn queue(&mut self) -> &mut OutBuf {
        match self.modern.as_mut() {
            Some(m) => &mut m.staged,
            None => &mut self.out,
        }
    }

    /// Whether the client declared `capability` (`sampling`, `roots`, …).
    pub fn declares(&self, capability: &str) -> bool {
        self.caps.get(capability).is_some()
    }

    /// Whether a log message of rank `level` (unknown: always) is for this client. A
    /// 2026-07-28 client hears log messages only when its last request asked for them
    /// (`_meta` `io.modelcontextprotocol/logLevel`).
    pub fn wants_log(&self, level: Option<u8>) -> bool {
        match (self.log_level, level) {
            (None, _) if self.modern.is_some() => false,
            (Some(min), Some(level)) => level >= min,
            _ => true,
        }
    }
}

impl Gateway {
    /// Opens a session for a new client; its output is [`Gateway::session_out`].
    pub fn open_session(&mut self) -> SessionId {
        let s = SessionId(self.next_session);
        self.next_session = self.next_session.wrapping_add(1);
        let bucket = self
            .rate_limit
            .map(|l| crate::ratelimit::TokenBucket::new(l, self.wall_origin.0));
        self.sessions.insert(
            s,
            Session {
                bucket,
                ..Session::default()
            },
        );
        s
    }

    /// Ends session `s` (its client left): its requests in flight are cancelled at their
    /// backends, a backend's request waiting for its answer gets an error, its pending
    /// list answers are dropped, and the subscriptions no other session shares are
    /// withdrawn. Other sessions notice nothing. Its output is discarded.
    pub fn close_session(&mut self, now: Instant, s: SessionId) {
        let Some(gone) = self.sessions.remove(&s) else {
            return;
        };
        // Its own processes of session-scoped backends stop once their requests (cancelled
        // below) have ended.
        let mine: Vec<usize> = self
            .instances
            .iter()
            .filter(|((_, of), _)| *of == s)
            .map(|(_, i)| *i)
            .collect();
        self.instances.retain(|(_, of), _| *of != s);
        for i in mine {
            self.retire(now, i);
        }
        let reason = "the client's session ended";
        self.drop_asks_of(s);
        for gw in self.ids.ids_where(|e| e.data.session == Some(s)) {
            let Some((origin, pending)) = self.untrack(now, gw, Outcome::Cancelled) else {
                continue;
            };
            let b = pending.backend;
            match pending.kind {
                PendingKind::ToClient => {
                    let text = format!("gangway: {reason} before it answered");
                    self.refuse_backend_request(b, origin, BACKEND_ERROR, &text);
                }
                _ if pending.sent => self.cancel_to_backend(b, gw, reason),
                _ => {}
            }
        }
        self.drop_aggregates_of(s);
        self.drop_task_lists_of(s);
        self.tasks.forget_session(s);
        self.deferred.retain(|(of, _)| *of != s);
        for uri in gone.subscriptions {
            self.unsubscribe_unused(now, s, &uri);
        }
        self.settle(now);
    }

    /// Withdraws session `s`'s part of the backend subscription to `uri` (it holds it no
    /// more): a shared backend is unsubscribed when no session holds it any more, the
    /// session's own process of a `"scope": "session"` backend at once.
    pub(super) fn unsubscribe_unused(&mut self, now: Instant, s: SessionId, uri: &str) {
        let Some(b) = self.resource_owner(uri) else {
            return;
        };
        let target = if self.backends[b].config.scope == Scope::Session {
            match self.instances.get(&(b, s)) {
                Some(&i) => i,
                None => return,
            }
        } else if self.subscribers(uri).next().is_some() {
            return;
        } else {
            b
        };
        if self.backends[target].lifecycle.is_ready() {
            self.send_internal(now, target, "resources/unsubscribe", &uri_params(uri));
        }
    }

    /// Subscribes session `s` to `uri` on a `subscriptions/listen`'s behalf: the backend
    /// that owns it (the session's own process of a `"scope": "session"` one) is asked,
    /// unless another session already holds that subscription of a shared backend. False,
    /// asking nothing, when no backend is known to own `uri` or its owner did not declare
    /// `resources.subscribe` (one not started yet is asked once it runs).
    pub(super) fn subscribe_for(&mut self, now: Instant, s: SessionId, uri: &str) -> bool {
        let Some(b) = self.resource_owner(uri) else {
            return false;
        };
        let own = self.backends[b].config.scope == Scope::Session;
        let known = if own {
            self.instances.get(&(b, s)).copied().unwrap_or(b)
        } else {
            b
        };
        if !self.subscribable(known) {
            return false;
        }
        let shared = !own && self.subscribers(uri).any(|o| o != s);
        let new = self
            .sessions
            .get_mut(&s)
            .is_some_and(|c| c.subscriptions.insert(uri.to_string()));
        if new && !shared {
            let target = if own { self.route(now, b, s) } else { b };
            self.send_internal(now, target, "resources/subscribe", &uri_params(uri));
        }
        true
    }

    /// Whether backend `b` takes `resources/subscribe`: it declared
    /// `capabilities.resources.subscribe`, or it has not said yet (not started).
    fn subscribable(&self, b: usize) -> bool {
        self.backends[b].init_result.is_none()
            || self
                .backend_capability(b, "resources")
                .is_some_and(|r| r.get("subscribe") == Some(&serde_json::Value::Bool(true)))
    }

    /// The sessions subscribed to `uri`.
    pub(super) fn subscribers<'a>(&'a self, uri: &'a str) -> impl Iterator<Item = SessionId> + 'a {
        self.sessions
            .iter()
            .filter(move |(_, c)| c.subscriptions.contains(uri))
            .map(|(s, _)| *s)
    }

    /// Records who session `s`'s client is (`principal`: the index of its token).
    pub fn set_principal(&mut self, s: SessionId, principal: Option<usize>) {
        if let Some(c) = self.sessions.get_mut(&s) {
            c.principal = principal.and_then(|p| u32::try_from(p).ok());
        }
    }

    /// How many bytes wait to be written to session `s`'s client.
    pub fn session_backlog(&self, s: SessionId) -> usize {
        self.sessions.get(&s).map_or(0, |c| c.out.len())
    }

    /// What waits to be written to session `s`'s client (`None` once it ended).
    pub fn session_out(&mut self, s: SessionId) -> Option<&mut OutBuf> {
        self.sessions.get_mut(&s).map(|c| &mut c.out)
    }

    /// The output of session `s`, or a sink when it has ended.
    pub(super) fn out_to(&mut self, s: SessionId) -> &mut Vec<u8> {
        self.queue_to(s).buf()
    }

    /// The output queue of session `s`, or a sink when it has ended (for
    /// [`OutBuf::splice`], which may write a forwarded line straight through).
    pub(super) fn queue_to(&mut self, s: SessionId) -> &mut OutBuf {
        match self.sessions.get_mut(&s) {
            Some(c) => c.queue(),
            None => {
                self.void.clear();
                &mut self.void
            }
        }
    }

    /// The output of the session whose message is being handled: where its answers go.
    pub(super) fn reply(&mut self) -> &mut Vec<u8> {
        self.out_to(self.handling)
    }

    /// The backend slot that serves session `s`'s requests for backend `b`: `b` itself
    /// when it is shared; when its scope is `session`, that session's own process slot,
    /// made on first use (a slot whose session ended and whose process is gone is used
    /// again, so the table does not grow with every session).
    pub(super) fn route(&mut self, now: Instant, b: usize, s: SessionId) -> usize {
        let be = &self.backends[b];
        if be.config.scope != Scope::Session || be.instance_of.is_some() {
            return b;
        }
        if let Some(&i) = self.instances.get(&(b, s)) {
            return i;
        }
        // A spare kept warm is taken first (another is started in its place).
        let i = match self.spares_of(b).first() {
            Some(&i) => {
                self.backends[i].instance_of = Some((b, s));
                self.rewarm(now);
                i
            }
            None => self.new_instance(now, b, s),
        };
        self.instances.insert((b, s), i);
        debug!(
            "backend '{}' gets a process of its own for session {}",
            self.backends[i].name(),
            s.0
        );
        i
    }

    /// The session that gets backend `b`'s request `method`, among those that declared the
    /// capability it needs: the one whose request to `b` has waited longest (the backend
    /// is most likely asking on its behalf), else the session opened first. `None` when no
    /// session can answer.
    pub(super) fn client_for(&self, b: usize, method: &str) -> Option<SessionId> {
        let cap = capability_for(method);
        let able = |s: &SessionId| {
            self.sessions
                .get(s)
                .is_some_and(|c| c.modern.is_none() && cap.map_or(true, |cap| c.declares(cap)))
        };
        if let Some((_, s)) = self.backends[b].instance_of {
            return Some(s).filter(able);
        }
        let serving = self.ids.ids_where(|e| {
            e.data.backend == b
                && e.data.kind != PendingKind::ToClient
                && e.data.session.is_some_and(|s| able(&s))
        });
        serving
            .first()
            .and_then(|gw| self.ids.get(*gw))
            .and_then(|e| e.data.session)
            .or_else(|| self.sessions.keys().copied().find(|s| able(s)))
    }

    /// Warns, the first time for backend `b`, when it sends the client a request while
    /// requests of several sessions are in flight at it: its request names none of them, so
    /// the choice [`Gateway::client_for`] makes may not be the session it asks for.
    pub(super) fn warn_shared_ask(&mut self, b: usize, method: &str) {
        if self.backends[b].warned_shared_ask || self.backends[b].instance_of.is_some() {
            return;
        }
        let mut serving: Vec<SessionId> = self
            .ids
            .ids_where(|e| e.data.backend == b && e.data.kind != PendingKind::ToClient)
            .into_iter()
            .filter_map(|gw| self.ids.get(gw).and_then(|e| e.data.session))
            .collect();
        serving.sort_unstable();
        serving.dedup();
        if serving.len() < 2 {
            return;
        }
        self.backends[b].warned_shared_ask = true;
        log::warn!(
            "backend '{}' sent {method} while serving {} client sessions at once; its request does not say which client it is for, so gangway sent it to the one whose request has waited longest. If its questions belong to one client, give it \"scope\": \"session\" (a process per client)",
            self.backends[b].name(),
            serving.len()
        );
    }

    /// `logging/setLevel` params for backends: the most verbose level any session asked
    /// for (`None` while none asked).
    pub(super) fn backend_log_params(&self) -> Option<Vec<u8>> {
        let rank = self.sessions.values().filter_map(|c| c.log_level).min()?;
        Some(format!("{{\"level\":\"{}\"}}", level_name(rank)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rank_in_mcp_order() {
        assert_eq!(level_rank("debug"), Some(0));
        assert_eq!(level_rank("warning"), Some(3));
        assert_eq!(level_rank("emergency"), Some(7));
        assert_eq!(level_rank("verbose"), None);
        assert_eq!(level_name(3), "warning");
        let raw =
            serde_json::value::RawValue::from_string(r#"{"level":"error","data":1}"#.to_string())
                .ok();
        assert_eq!(params_level(raw.as_deref().map(Raw::from)), Some(4));
    }

    #[test]
    fn a_session_hears_what_its_level_admits() {
        let mut s = Session::default();
        assert!(s.wants_log(Some(0)), "no level set: everything");
        s.log_level = Some(3);
        assert!(!s.wants_log(Some(1)));
        assert!(s.wants_log(Some(3)) && s.wants_log(Some(7)));
        assert!(s.wants_log(None), "a message of unknown level is passed on");
    }
}
