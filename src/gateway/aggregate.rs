//! Client requests answered from several backends' lists: `tools/list`, `prompts/list`,
//! `resources/list`, `resources/templates/list` and `discover_backend_tools`, plus requests
//! about a resource whose owner is only known once the resource lists are fetched.
//!
//! Each backend's list is fetched once (following `nextCursor` to the end) and remembered
//! until the backend says it changed; concurrent aggregates wait on the same walk.

use super::backend::ListState;
use super::lists::{self, Item, ListKind};
use super::naming::NameTable;
use super::{tools, Gateway, PendingKind, SessionId, Timer};
use crate::timer::TimerHandle;
use crate::wire::ids::RawId;
use crate::wire::message::{write_result, Message, METHOD_NOT_FOUND};
use log::warn;
use serde::Deserialize;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A backend list walk stops after this many entries: a backend paging without end is
/// broken, and must not grow gangway's memory without bound.
const MAX_LIST_ITEMS: usize = 100_000;

/// A list answer (`tools/list`, `discover_backend_tools`, …) waits at most this long for
/// backends that are still starting; it is then sent with what is known, and each backend
/// that was left out triggers list_changed when its list arrives. Clients give up on a
/// request after 60 s, and a hung backend may take `startup_timeout` (120 s) to fail.
pub const LIST_WAIT: Duration = Duration::from_secs(5);

/// One backend's list as an aggregate received it, or why it could not be had.
pub(super) type ListResult = Result<Rc<Vec<Item>>, String>;

/// What an aggregate answers once every part is in.
#[derive(Debug)]
pub(super) enum AggregateKind {
    /// A merged list (`tools/list` in tools or both mode, prompts, resources, templates).
    List {
        /// Which list.
        kind: ListKind,
        /// Whether the meta-tools come first (tools list in both mode).
        with_meta: bool,
    },
    /// `discover_backend_tools`.
    Discover,
    /// A request (this line) that needs resource lists to find its backend.
    Retry {
        /// The client's line, processed again when the lists are in.
        line: Vec<u8>,
    },
}

/// One backend list an aggregate waits for.
#[derive(Debug)]
pub(super) struct Part {
    backend: usize,
    kind: ListKind,
    result: Option<ListResult>,
}

/// A client request waiting for backend lists.
#[derive(Debug)]
pub(super) struct Aggregate {
    /// The id the client used (its answer carries it back).
    pub client_id: RawId,
    /// The session that asked.
    session: SessionId,
    kind: AggregateKind,
    parts: Vec<Part>,
    /// The [`LIST_WAIT`] deadline, while one is set.
    timer: Option<TimerHandle>,
}

impl Gateway {
    /// Starts answering a client request from the lists `parts` (backend, kind).
    pub(super) fn start_aggregate(
        &mut self,
        now: Instant,
        client_id: &[u8],
        kind: AggregateKind,
        parts: Vec<(usize, ListKind)>,
    ) {
        // A session-scoped backend's list not known yet is asked of this session's own
        // process, so that listing does not start a process no session owns.
        let parts: Vec<(usize, ListKind)> = parts
            .into_iter()
            .map(|(b, kind)| {
                let be = &self.backends[b];
                let own = be.config.scope == crate::config::Scope::Session
                    && be.instance_of.is_none()
                    && be.known(kind).is_none();
                (
                    if own {
                        self.route(now, b, self.handling)
                    } else {
                        b
                    },
                    kind,
                )
            })
            .collect();
        let id = self.next_aggregate;
        self.next_aggregate += 1;
        let agg = Aggregate {
            client_id: RawId::new(client_id),
            session: self.handling,
            kind,
            parts: parts
                .iter()
                .map(|&(backend, kind)| Part {
                    backend,
                    kind,
                    result: None,
                })
                .collect(),
            timer: None,
        };
        // A shell command (`gangway check`, `tools`) asks what the backends offer now: it
        // waits for fresh lists, however long their starts take (each is bounded by its
        // `startup_timeout` and `timeout`).
        let shell = self.handling_shell();
        let waits = !matches!(agg.kind, AggregateKind::Retry { .. }) && !shell;
        self.aggregates.insert(id, agg);
        for (b, kind) in parts {
            self.want_list(now, b, kind, id, shell);
        }
        self.finish_aggregate(id);
        if waits {
            if let Some(a) = self.aggregates.get_mut(&id) {
                a.timer = Some(self.timers.insert(now + LIST_WAIT, Timer::ListWait(id)));
            }
        }
    }

    /// An aggregate's [`LIST_WAIT`] is over: it is answered with the lists it has, and
    /// each backend still missing is marked so the client hears list_changed later.
    pub(super) fn list_wait_over(&mut self, agg: u64) {
        let Some(a) = self.aggregates.get_mut(&agg) else {
            return;
        };
        a.timer = None;
        let missing: Vec<(usize, ListKind)> = a
            .parts
            .iter()
            .filter(|p| p.result.is_none())
            .map(|p| (p.backend, p.kind))
            .collect();
        for (b, kind) in missing {
            let be = &mut self.backends[b];
            be.late[kind.index()] = true;
            let text = format!(
                "backend '{}' did not list its {} within {} s (it is still starting); it is left out for now, and {} follows when it is ready",
                be.name(),
                kind.items_key(),
                LIST_WAIT.as_secs(),
                kind.list_changed()
            );
            log::info!("{text}");
            self.set_part(agg, b, kind, Err(text));
        }
        self.finish_aggregate(agg);
    }

    fn want_list(&mut self, now: Instant, b: usize, kind: ListKind, agg: u64, fresh: bool) {
        match &mut self.backends[b].lists[kind.index()] {
            ListState::Fetching { waiters, .. } if fresh => waiters.push(agg),
            state @ ListState::Known(_) if fresh => {
                let ListState::Known(previous) = std::mem::take(state) else {
                    return;
                };
                *state = ListState::Fetching {
                    previous: Some(previous),
                    so_far: Vec::new(),
                    waiters: vec![agg],
                    stale: false,
                };
                self.request_page(now, b, kind, None);
            }
            ListState::Known(list) => {
                let list = Rc::clone(list);
                self.set_part(agg, b, kind, Ok(list));
            }
            // A list being fetched again is served as it was known meanwhile; if it
            // turns out to differ, the client hears list_changed.
            ListState::Fetching {
                previous: Some(list),
                ..
            } => {
                let list = Rc::clone(list);
                self.set_part(agg, b, kind, Ok(list));
            }
            ListState::Fetching { waiters, .. } => waiters.push(agg),
            ListState::Unknown => {
                let skipped = if fresh {
                    Ok(())
                } else {
                    self.lists_skipped(now, b)
                };
                if let Err(e) = self.available(now, b).and(skipped) {
                    self.set_part(agg, b, kind, Err(e));
                    return;
                }
                self.backends[b].lists[kind.index()] = ListState::Fetching {
                    previous: None,
                    so_far: Vec::new(),
                    waiters: vec![agg],
                    stale: false,
                };
                self.request_page(now, b, kind, None);
            }
        }
    }

    /// Whether backend `b` may be started for a list, or why not: its start failed in an
    /// earlier run and the back-off of that failure is not over (a call still starts it).
    fn lists_skipped(&self, now: Instant, b: usize) -> Result<(), String> {
        let be = &self.backends[b];
        match &be.lists_skipped_until {
            Some((until, why)) if self.unix_secs(now) < *until => Err(format!(
                "backend '{}' is left out of lists: its last start failed ({why}); a call to one of its tools starts it again",
                be.name()
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn request_page(
        &mut self,
        now: Instant,
        b: usize,
        kind: ListKind,
        cursor: Option<&str>,
    ) {
        let params = lists::cursor_params(cursor);
        self.send_own(
            now,
            b,
            PendingKind::List(kind),
            kind.method(),
            params.as_deref(),
        );
    }

    /// One page of a list arrived from backend `b`.
    pub(super) fn list_page(&mut self, now: Instant, b: usize, kind: ListKind, msg: &Message<'_>) {
        let name = self.backends[b].name().to_string();
        let page = match (msg.result, msg.error) {
            (Some(result), _) => {
                lists::parse_page(kind, result).map_err(|e| format!("backend '{name}': {e}"))
            }
            // A backend without the capability has an empty list, not a broken one.
            (None, Some(err)) if error_code(err.get()) == Some(METHOD_NOT_FOUND) => {
                Ok((Vec::new(), None))
            }
            (None, Some(err)) => Err(format!(
                "backend '{name}' refused {}: {}",
                kind.method(),
                super::from_backend::error_message(err)
            )),
            (None, None) => Err(format!("backend '{name}' sent an empty answer")),
        };
        match page {
            Ok((items, next)) => {
                let ListState::Fetching { so_far, .. } = &mut self.backends[b].lists[kind.index()]
                else {
                    return;
                };
                so_far.extend(items);
                match next {
                    Some(cursor) if so_far.len() < MAX_LIST_ITEMS => {
                        self.request_page(now, b, kind, Some(&cursor));
                    }
                    Some(_) => {
                        let e = format!(
                            "backend '{name}' pages its {} past {MAX_LIST_ITEMS} entries",
                            kind.method()
                        );
                        self.list_fetched(now, b, kind, Err(e));
                    }
                    None => {
                        let list = std::mem::take(so_far);
                        self.list_fetched(now, b, kind, Ok(Rc::new(list)));
                    }
                }
            }
            Err(e) => {
                warn!("{e}");
                self.list_fetched(now, b, kind, Err(e));
            }
        }
    }

    /// A list walk of backend `b` ended: remember the list and finish the aggregates
    /// waiting for it.
    pub(super) fn list_fetched(
        &mut self,
        now: Instant,
        b: usize,
        kind: ListKind,
        result: ListResult,
    ) {
        let state = &mut self.backends[b].lists[kind.index()];
        let (waiters, stale, previous) = match std::mem::take(state) {
            ListState::Fetching {
                waiters,
                stale,
                previous,
                ..
            } => (waiters, stale, previous),
            other => {
                *state = other;
                return;
            }
        };
        let result = result.map(|list| match Rc::try_unwrap(list) {
            Ok(mut items) => {
                lists::canonical(kind, &mut items);
                Rc::new(items)
            }
            Err(shared) => shared,
        });
        match (&result, stale) {
            (Ok(list), false) => {
                *state = ListState::Known(Rc::clone(list));
                // What a session's own process lists is what its backend lists.
                if let Some((of, _)) = self.backends[b].instance_of {
                    let listed = &mut self.backends[of].lists[kind.index()];
                    if matches!(listed, ListState::Unknown) {
                        *listed = ListState::Known(Rc::clone(list));
                    }
                }
                let late = std::mem::take(&mut self.backends[b].late[kind.index()]);
                let changed = late
                    || previous
                        .as_ref()
                        .is_some_and(|p| !lists::same_items(p, list));
                if changed {
                    self.notify_list_changed(now, b, kind);
                }
                self.lists_updated(now, b, kind);
            }
            (Ok(_), true) => self.refresh_list(now, b, kind),
            // A failed refresh keeps what was known.
            (Err(_), _) => {
                if let Some(p) = previous {
                    *state = ListState::Known(p);
                }
            }
        }
        for agg in waiters {
            self.set_part(agg, b, kind, result.clone());
            self.finish_aggregate(agg);
        }
    }

    fn set_part(&mut self, agg: u64, b: usize, kind: ListKind, result: ListResult) {
        if let Some(a) = self.aggregates.get_mut(&agg) {
            let part = a
                .parts
                .iter_mut()
                .find(|p| p.backend == b && p.kind == kind && p.result.is_none());
            if let Some(part) = part {
                part.result = Some(result);
            }
        }
    }

    /// Drops every aggregate of session `s` (it ended): no answer is sent.
    pub(super) fn drop_aggregates_of(&mut self, s: SessionId) {
        let gone: Vec<u64> = self
            .aggregates
            .iter()
            .filter(|(_, a)| a.session == s)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(t) = self.aggregates.remove(&k).and_then(|a| a.timer) {
                self.timers.cancel(t);
            }
        }
    }

    /// Cancels the aggregate the client asked for with `raw_id`; returns whether there was one.
    pub(super) fn cancel_aggregate(&mut self, raw_id: &[u8]) -> bool {
        let found = self
            .aggregates
            .iter()
            .find(|(_, a)| a.session == self.handling && a.client_id.as_bytes() == raw_id)
            .map(|(k, _)| *k);
        let Some(a) = found.and_then(|k| self.aggregates.remove(&k)) else {
            return false;
        };
        if let Some(t) = a.timer {
            self.timers.cancel(t);
        }
        true
    }

    fn finish_aggregate(&mut self, agg: u64) {
        let done = self
            .aggregates
            .get(&agg)
            .is_some_and(|a| a.parts.iter().all(|p| p.result.is_some()));
        if !done {
            return;
        }
        let Some(a) = self.aggregates.remove(&agg) else {
            return;
        };
        if let Some(t) = a.timer {
            self.timers.cancel(t);
        }
        let body = match a.kind {
            // A reload while the lists were fetched may have removed the last backend
            // behind the meta-tools: they are listed only if they exist now, since the
            // names were placed for what exists now.
            AggregateKind::List { kind, with_meta } => {
                let with_meta = with_meta && self.meta_enabled();
                self.merged_list(kind, with_meta, &a.parts)
            }
            AggregateKind::Discover => {
                let shell = self.sessions.get(&a.session).is_some_and(|c| c.shell);
                let parts: Vec<tools::DiscoverPart<'_>> = a
                    .parts
                    .iter()
                    .map(|p| {
                        let be = &self.backends[p.backend];
                        tools::DiscoverPart {
                            backend: be.name(),
                            tools: match &p.result {
                                Some(Ok(list)) => Ok(list
                                    .iter()
                                    .filter(|t| shell || be.config.tools.permits(&t.key))
                                    .collect()),
                                Some(Err(e)) => Err(e.as_str()),
                                None => Err("not listed"),
                            },
                        }
                    })
                    .collect();
                tools::discover_result(&parts)
            }
            AggregateKind::Retry { line } => {
                self.deferred.push((a.session, line));
                return;
            }
        };
        write_result(self.out_to(a.session), a.client_id.as_bytes(), &body);
    }

    /// The result of a merged list: tools (those offered directly) and prompts under their
    /// exposed names; resources and templates unchanged, each URI once (the first backend
    /// in config order wins).
    fn merged_list(&self, kind: ListKind, with_meta: bool, parts: &[Part]) -> Vec<u8> {
        let mut body = format!("{{\"{}\":[", kind.items_key()).into_bytes();
        let mut first = true;
        if with_meta {
            body.extend_from_slice(tools::meta_tool_definitions(&self.backend_names()).as_bytes());
            first = false;
        }
        // A backend removed by a reload while this list was fetched is left out.
        let listed: Vec<(usize, &[Item])> = parts
            .iter()
            .filter(|p| !self.backends[p.backend].removed)
            .filter_map(|p| match &p.result {
                Some(Ok(list)) => Some((p.backend, list.as_slice())),
                _ => None,
            })
            .collect();
        // Named from exactly what is listed, so no name appears twice even when a list is
        // not the one the name table was built from (a walk made stale by list_changed).
        let names = if kind.prefixed() {
            self.name_table(kind, &listed).0
        } else {
            NameTable::default()
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for p in parts {
            let be = &self.backends[p.backend];
            if be.removed {
                continue;
            }
            let backend = be.name();
            match &p.result {
                Some(Ok(list)) => {
                    for item in list.iter() {
                        if kind == ListKind::Tools
                            && !(be.config.tools.permits(&item.key)
                                && be.config.is_direct(&item.key))
                        {
                            continue;
                        }
                        if !kind.prefixed() && !seen.insert(item.key.as_str()) {
                            log::debug!(
                                "{}: '{}' of backend '{backend}' is also offered by an earlier backend; the earlier one is used",
                                kind.method(),
                                item.key
                            );
                            continue;
                        }
                        if !first {
                            body.push(b',');
                        }
                        first = false;
                        if kind.prefixed() {
                            let exposed = names.exposed(p.backend, &item.key);
                            lists::write_renamed(&mut body, exposed.unwrap_or(&item.key), item);
                        } else {
                            body.extend_from_slice(item.raw.get().as_bytes());
                        }
                    }
                }
                Some(Err(e)) => warn!("{}: leaving out backend '{backend}': {e}", kind.method()),
                None => {}
            }
        }
        body.extend_from_slice(b"]}");
        body
    }
}

/// The `code` of a raw JSON-RPC error object.
fn error_code(raw: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct E {
        code: i64,
    }
    serde_json::from_str::<E>(raw).ok().map(|e| e.code)
}
