//! Multi round-trip requests of revision 2026-07-28: a backend's request to the client
//! (sampling, elicitation, roots) made during a modern client's call travels inside an
//! `InputRequiredResult` answering that call, and its answer comes back in the call's
//! retry, a new request carrying `requestState` and `inputResponses`. The call stays in
//! flight at the backend meanwhile, under a placeholder id, with its timeout paused.
//!
//! Asks are the gateway's, not a session's: over `gangway serve` each modern request is
//! a session of its own, and the retry comes in another one, which takes the call over.

use super::requests::PendingKind;
use super::stats::Outcome;
use super::{after, Gateway, Life, SessionId, Timer};
use crate::timer::TimerHandle;
use crate::wire::ids::{Peer, RawId};
use crate::wire::message::{
    write_error, write_result, Message, BACKEND_ERROR, INTERNAL_ERROR, INVALID_PARAMS,
    INVALID_REQUEST, REQUEST_TIMEOUT,
};
use log::warn;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Instant;

/// Open asks one session may have (over HTTP a session holds one request, so at most one).
const ASKS_MAX: usize = 64;
/// Open asks the sessions of one principal may have (one `http.tokens` token; all
/// clients without a token count as one).
const ASKS_PER_PRINCIPAL: usize = 1024;
/// Asks the gateway keeps in all.
const ASKS_TOTAL: usize = 4096;
/// Bytes of calls' answers kept for retries that have not come yet; an answer past it is
/// replaced by an error saying so.
const KEPT_ANSWERS_MAX: usize = 64 << 20;
/// How a suspended call's id starts (then its `requestState`, then `"`): the id it has
/// in the id table while its client answers an input request.
pub(super) const PLACEHOLDER: &[u8] = b"\"input-required:";
/// What a backend's request gets when its call ended before the client answered it.
const CALL_ENDED: &str =
    "gangway: the call this request was made for ended before the client answered it";
/// The key of the one input request in an `InputRequiredResult` gangway makes.
const ASK_KEY: &str = "gangway";
/// The methods whose calls may carry an ask (the revision's `InputRequiredResult` answers
/// only these).
const ASKING_CALLS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// A backend's request to the client, handed to a modern client inside an
/// `InputRequiredResult` answering its call.
#[derive(Debug)]
pub(super) struct Ask {
    /// The gateway id of the client's call at the backend (in flight there until `ended`).
    gw: u64,
    backend: usize,
    /// The backend's own id of its request, raw.
    backend_id: Vec<u8>,
    /// The session the suspended call belongs to (the one its answer would go to).
    session: SessionId,
    /// The call's method: a retry must repeat it.
    method: &'static str,
    /// The principal of that session (`Session::principal`).
    principal: Option<u32>,
    /// When the client's retry is due (the backend's `client_request_timeout`): then the
    /// backend's request gets a timeout error and the call is cancelled.
    timer: Option<TimerHandle>,
    /// The call has left the id table (answered, failed or cancelled): its answer, if it
    /// gets one, is the next line under the placeholder id to its session.
    gone: bool,
    /// The call's answer (its `result` or `error` member, raw), when it came before the
    /// client retried: the retry gets it.
    ended: Option<(bool, Vec<u8>)>,
}

/// The asks waiting for retries, by `requestState`; the open ones (their call's answer
/// not in yet) are counted per session and per principal, and each is found by its call's
/// gateway id.
#[derive(Debug, Default)]
pub(super) struct Asks {
    by_state: HashMap<String, Ask>,
    open: HashMap<SessionId, usize>,
    open_by_principal: HashMap<Option<u32>, usize>,
    by_gw: HashMap<u64, String>,
    /// Bytes of the answers kept (`Ask::ended`).
    kept: usize,
}

impl Asks {
    fn insert(&mut self, state: String, ask: Ask) {
        if ask.ended.is_none() {
            *self.open.entry(ask.session).or_default() += 1;
            *self.open_by_principal.entry(ask.principal).or_default() += 1;
        }
        self.kept += ask.ended.as_ref().map_or(0, |(_, a)| a.len());
        self.by_gw.insert(ask.gw, state.clone());
        self.by_state.insert(state, ask);
    }

    fn remove(&mut self, state: &str) -> Option<Ask> {
        let ask = self.by_state.remove(state)?;
        self.by_gw.remove(&ask.gw);
        match &ask.ended {
            None => self.closed(ask.session, ask.principal),
            Some((_, answer)) => self.kept = self.kept.saturating_sub(answer.len()),
        }
        Some(ask)
    }

    /// One open ask of session `s` (of `principal`) is open no more.
    fn closed(&mut self, s: SessionId, principal: Option<u32>) {
        fn down<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
            if let Some(n) = counts.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }
        down(&mut self.open, s);
        down(&mut self.open_by_principal, principal);
    }

    /// Call `gw` left the id table: if an ask suspended it, its answer (if any) is the
    /// next line to its session under the placeholder id.
    pub(super) fn call_left(&mut self, gw: u64) {
        if let Some(ask) = self
            .by_gw
            .get(&gw)
            .and_then(|state| self.by_state.get_mut(state))
        {
            ask.gone = true;
        }
    }

    /// Whether `raw` (a client's request id) is the placeholder of a suspended call.
    pub(super) fn is_placeholder(&self, raw: &[u8]) -> bool {
        placeholder_state(raw)
            .and_then(|st| std::str::from_utf8(st).ok())
            .is_some_and(|st| self.by_state.contains_key(st))
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.by_state.is_empty()
    }

    /// A line to session `s` answers the placeholder id of the ask with `state`
    /// (`answer`: whether it failed, and its `result` or `error`, raw). `None` when it is
    /// not that ask's call's answer (no such ask, another session's, or its call is still
    /// in flight: a reply to the client's own request that reused the id), so the line
    /// goes on as is. Else the answer is kept for the retry (an error saying so past
    /// [`KEPT_ANSWERS_MAX`]), and the backend and its request's id are returned when the
    /// ask was open (the client will never answer that request now).
    #[allow(clippy::type_complexity)]
    pub(super) fn end(
        &mut self,
        state: &[u8],
        s: SessionId,
        answer: (bool, Vec<u8>),
    ) -> Option<Option<(usize, Vec<u8>)>> {
        let state = std::str::from_utf8(state).ok()?;
        let kept = self.kept;
        let ask = self
            .by_state
            .get_mut(state)
            .filter(|a| a.session == s && a.gone)?;
        if ask.ended.is_some() {
            return Some(None);
        }
        let answer = if kept + answer.1.len() > KEPT_ANSWERS_MAX {
            let text = format!("gangway: the call was answered before its retry came, and its answer was too large to keep ({} MiB of such answers are kept); call again", KEPT_ANSWERS_MAX >> 20);
            let mut e = b"{\"code\":-32603,\"message\":".to_vec();
            crate::wire::message::write_json_string(&mut e, &text);
            e.push(b'}');
            (true, e)
        } else {
            answer
        };
        self.kept += answer.1.len();
        ask.ended = Some(answer);
        let released = (ask.backend, ask.backend_id.clone());
        let principal = ask.principal;
        self.closed(s, principal);
        Some(Some(released))
    }

    /// Whether session `s` has a call suspended for its client's retry.
    fn waits(&self, s: SessionId) -> bool {
        self.open.contains_key(&s)
    }
}

/// The `requestState` of a suspended call's placeholder id (raw JSON), if it is one.
pub(super) fn placeholder_state(raw: &[u8]) -> Option<&[u8]> {
    raw.strip_prefix(PLACEHOLDER)?.strip_suffix(b"\"")
}

impl Gateway {
    /// A backend's request `msg` to a client (sampling, elicitation, roots) while the
    /// call that backend `b` has served longest, among those of clients that declared the
    /// capability it needs and not already waiting for their client's answer, is a modern
    /// client's (its request names no call; handshake clients' requests count as well, as
    /// in [`Gateway::client_for`]):
    /// that call is answered with an `InputRequiredResult` carrying the request, and stays
    /// in flight at the backend until the client's retry brings the answer
    /// ([`Gateway::modern_retry`]). While it waits, the call's own timeout is paused: the
    /// client has the backend's `client_request_timeout` to retry (a person may be
    /// answering). When every such call already waits for its client, the request is
    /// refused (a client answers one round at a time). False when the longest-served call
    /// is not a modern client's (the request then goes the usual way).
    pub(super) fn modern_ask(&mut self, now: Instant, b: usize, msg: &Message<'_>) -> bool {
        let (Some(id), Some(method)) = (msg.id, msg.method) else {
            return false;
        };
        let capability = match super::session::capability_for(method) {
            Some(c @ ("sampling" | "elicitation" | "roots")) => c,
            _ => return false,
        };
        // Once gangway stops, no retry can come: the usual way refuses it.
        if self.life != Life::Running {
            return false;
        }
        let sessions = &self.sessions;
        let candidates = self.ids.ids_where(|e| {
            e.data.backend == b
                && e.data.sent
                && e.data.kind != PendingKind::ToClient
                && e.data
                    .session
                    .and_then(|s| sessions.get(&s))
                    .is_some_and(|c| {
                        c.declares(capability)
                            && (c.modern.is_none() || ASKING_CALLS.contains(&e.data.method))
                    })
        });
        // A call already waiting for its client's answer is passed over: the backend is
        // most likely asking for another call (and one slow answer must not hold every
        // other client's asks up). When no other call is there, the request is refused.
        let asks = &self.asks;
        let oldest = candidates
            .iter()
            .copied()
            .find(|gw| !asks.by_gw.contains_key(gw))
            .or_else(|| candidates.first().copied());
        let Some((gw, peer, client_id, s, call)) = oldest.and_then(|gw| {
            let e = self.ids.get(gw)?;
            let (peer, raw) = e.origin.as_ref()?;
            let s = e.data.session?;
            Some((gw, *peer, raw.as_bytes().to_vec(), s, e.data.method))
        }) else {
            return false;
        };
        if !self.sessions.get(&s).is_some_and(|c| c.modern.is_some()) {
            return false;
        }
        let raw = id.get().as_bytes();
        let name = self.backends[b].name().to_string();
        let principal = self.sessions.get(&s).and_then(|c| c.principal);
        let refusal = if self.asks.by_gw.contains_key(&gw) {
            Some(format!(
                "gangway: every call backend '{name}' serves for a client that can answer {method} already waits for its client's answer to an earlier request; {method} is refused (a client answers one round at a time: ask again after its retry)"
            ))
        } else if self.asks.open.get(&s).copied().unwrap_or(0) >= ASKS_MAX {
            Some(format!(
                "gangway: {ASKS_MAX} calls of this client already wait for its answers; {method} is refused"
            ))
        } else if self
            .asks
            .open_by_principal
            .get(&principal)
            .copied()
            .unwrap_or(0)
            >= ASKS_PER_PRINCIPAL
        {
            Some(format!(
                "gangway: {ASKS_PER_PRINCIPAL} calls of clients with this client's credential already wait for their answers; {method} is refused"
            ))
        } else if self.asks.by_state.len() >= ASKS_TOTAL {
            Some(format!(
                "gangway: {ASKS_TOTAL} input requests already wait for 2026-07-28 clients' retries; {method} is refused"
            ))
        } else {
            None
        };
        if let Some(text) = refusal {
            warn!("{text}");
            write_error(self.out.backends[b].buf(), raw, BACKEND_ERROR, &text);
            return true;
        }
        self.warn_shared_ask(b, method);
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            let text = "gangway: no randomness for a requestState; the request is refused";
            write_error(self.out.backends[b].buf(), raw, BACKEND_ERROR, text);
            return true;
        }
        let state: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let placeholder = format!("{}{state}\"", String::from_utf8_lossy(PLACEHOLDER));
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
            state.clone(),
            Ask {
                gw,
                backend: b,
                backend_id: raw.to_vec(),
                session: s,
                method: call,
                principal,
                timer: Some(timer),
                gone: false,
                ended: None,
            },
        );
        let params = msg.params.map_or("{}", |p| p.get());
        let result = format!(
            "{{\"resultType\":\"input_required\",\"inputRequests\":{{\"{ASK_KEY}\":{{\"method\":\"{method}\",\"params\":{params}}}}},\"requestState\":\"{state}\"}}"
        );
        if let Some(c) = self.sessions.get_mut(&s) {
            write_result(c.queue().buf(), &client_id, result.as_bytes());
        }
        true
    }

    /// Whether session `s` has a call suspended for its client's retry (a front keeps such
    /// a session open after its answer, until this is false: the retry came, in whichever
    /// session, or the ask expired).
    pub fn waits_for_retry(&self, s: SessionId) -> bool {
        self.asks.waits(s)
    }

    /// The retry of the call with gateway id `gw` did not come within the backend's
    /// `client_request_timeout`: the backend's request gets a timeout error and the call
    /// is cancelled (an answer the call got already is dropped).
    pub(super) fn ask_expired(&mut self, now: Instant, gw: u64) {
        let Some(state) = self.asks.by_gw.get(&gw).cloned() else {
            return;
        };
        let Some(ask) = self.take_ask(&state) else {
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
        self.end_suspended(now, ask, REQUEST_TIMEOUT, &format!("gangway: {text}"));
    }

    /// Removes the ask with `state`, and its timer.
    fn take_ask(&mut self, state: &str) -> Option<Ask> {
        let ask = self.asks.remove(state)?;
        if let Some(t) = ask.timer {
            self.timers.cancel(t);
        }
        Some(ask)
    }

    /// Ends open ask `ask` (taken): its backend's request gets error `code` saying `text`,
    /// and its call is cancelled at the backend.
    fn end_suspended(&mut self, now: Instant, ask: Ask, code: i64, text: &str) {
        let b = ask.backend;
        self.refuse_backend_request(b, Some(RawId::new(&ask.backend_id)), code, text);
        if let Some((_, pending)) = self.untrack(now, ask.gw, Outcome::Cancelled) {
            if pending.sent {
                self.cancel_to_backend(b, ask.gw, "the client cannot answer");
            }
        }
    }

    /// gangway stops taking requests: no retry can come, so every ask ends (an open one's
    /// backend request gets an error and its call is cancelled).
    pub(super) fn end_all_asks(&mut self, now: Instant) {
        let states: Vec<String> = self.asks.by_state.keys().cloned().collect();
        for state in states {
            let Some(ask) = self.take_ask(&state) else {
                continue;
            };
            if ask.ended.is_none() {
                let text = "gangway is shutting down: the client cannot answer this request";
                self.end_suspended(now, ask, BACKEND_ERROR, text);
            }
        }
    }

    /// Session `s` ended: the backend requests its suspended calls carried get an error
    /// (the calls themselves are cancelled with the session's other requests).
    pub(super) fn drop_asks_of(&mut self, s: SessionId) {
        if !self.asks.waits(s) {
            return;
        }
        let states: Vec<String> = self
            .asks
            .by_state
            .iter()
            .filter(|(_, a)| a.session == s && a.ended.is_none())
            .map(|(state, _)| state.clone())
            .collect();
        for state in states {
            let Some(ask) = self.take_ask(&state) else {
                continue;
            };
            let raw = RawId::new(&ask.backend_id);
            let text = "gangway: the client's session ended before it answered";
            self.refuse_backend_request(ask.backend, Some(raw), BACKEND_ERROR, text);
        }
    }

    /// Answers the backends' requests whose calls ended before their clients answered
    /// (`released`, from [`Asks::end`]): the client will not answer them.
    pub(super) fn release_asks(&mut self, released: Vec<(usize, Vec<u8>)>) {
        for (b, id) in released {
            self.refuse_backend_request(b, Some(RawId::new(&id)), BACKEND_ERROR, CALL_ENDED);
        }
    }

    /// A modern client's retry of a call answered with an `InputRequiredResult`: its
    /// `inputResponses` answer the backend's request, and the call (still in flight at the
    /// backend) is from now on this request's, in this session, with its timeout running
    /// again and its progress under this request's token. True when `msg` was such a retry
    /// (handled here); an unknown `requestState`, or one of another method's call, is
    /// refused.
    pub(super) fn modern_retry(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Retry<'a> {
            #[serde(rename = "requestState")]
            state: String,
            #[serde(rename = "inputResponses", borrow, default)]
            responses: Option<HashMap<String, &'a RawValue>>,
        }
        let method = msg.method.unwrap_or("");
        if !ASKING_CALLS.contains(&method) {
            return false;
        }
        // Read in the pass that read the line: no second look at the call's arguments
        // unless it is a retry.
        if msg.call_params().and_then(|p| p.request_state).is_none() {
            return false;
        }
        let Some(retry) = msg
            .params
            .and_then(|p| serde_json::from_str::<Retry<'_>>(p.get()).ok())
        else {
            let text = "a retry carries requestState (the string gangway gave) and inputResponses (an object of answers by key)";
            write_error(self.reply(), id, INVALID_PARAMS, text);
            return true;
        };
        let s = self.handling;
        let refusal = match self.asks.by_state.get(&retry.state) {
            None => Some((INVALID_PARAMS, "unknown, expired or already used requestState: a retry carries the requestState gangway gave, once, within the backend's client_request_timeout (behind a load balancer, it must reach the gangway instance that answered the call)".to_string())),
            Some(a) if a.method != method => Some((INVALID_PARAMS, format!("this requestState belongs to a {} call: a retry repeats the call it continues", a.method))),
            // The retry's id is taken by another request in flight: nothing is sent, and
            // the ask waits for another try.
            Some(a)
                if a.ended.is_none()
                    && self.ids.get(a.gw).is_some()
                    && self.ids.find(Peer::Session(s.0), id).is_some() =>
            {
                Some((INVALID_REQUEST, "this id is already used by a request in flight".to_string()))
            }
            Some(_) => None,
        };
        if let Some((code, text)) = refusal {
            write_error(self.reply(), id, code, &text);
            return true;
        }
        let Some(ask) = self.take_ask(&retry.state) else {
            return false;
        };
        let cacheable = super::modern::is_cacheable(method);
        if let Some((failed, raw)) = &ask.ended {
            // The call was answered before this retry: that answer is the retry's.
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
        // The id was checked above: the rekey fails only when the call is gone.
        if self.ids.rekey(ask.gw, (Peer::Session(s.0), id)).is_err() {
            let raw = RawId::new(&ask.backend_id);
            self.refuse_backend_request(ask.backend, Some(raw), BACKEND_ERROR, CALL_ENDED);
            let text = "the call this retry continues has already ended at its backend; call again";
            write_error(self.reply(), id, INVALID_REQUEST, text);
            return true;
        }
        // The call is this session's now (over HTTP, the session the retry came in), its
        // timeout starts again, and its progress goes out under the retry's token.
        let timeout = self.backends[ask.backend].config.timeout;
        let timer = self
            .timers
            .insert(after(now, timeout), Timer::Request(ask.gw));
        let token = msg.progress_token().map(|t| RawId::new(t.get().as_bytes()));
        if let Some(e) = self.ids.get_mut(ask.gw) {
            e.data.session = Some(s);
            e.data.timer = Some(timer);
            let known = e.data.wire_token.clone().or_else(|| e.data.token.clone());
            if let (Some(known), Some(token)) = (known, token) {
                if Some(&token) != e.data.token.as_ref() {
                    e.data.wire_token = Some(known);
                    e.data.token = Some(token);
                }
            }
        }
        self.note_cacheable(s, id, method, cacheable);
        let answer = retry.responses.as_ref().and_then(|r| r.get(ASK_KEY));
        let out = self.out.backends[ask.backend].buf();
        match answer {
            Some(result) => write_result(out, &ask.backend_id, result.get().as_bytes()),
            None => write_error(
                out,
                &ask.backend_id,
                INTERNAL_ERROR,
                "the client's retry carried no answer to this request",
            ),
        }
        true
    }
}
