//! What gangway remembers of its backends between runs and between starts: lists served
//! from the catalog without starting anything, refreshed after every start, and the
//! exposed-name table built from them.

use super::backend::ListState;
use super::lifecycle::start_backoff;
use super::lists::{self, Item, ListKind, LIST_KINDS};
use super::naming::{self, NameTable, Renamed, Why, GANGWAY};
use super::routing::has_direct_tools;
use super::{Gateway, Timer, LIST_CHANGED_DELAY};
use crate::catalog::{self, Catalog, Entry, Failure};
use log::{info, warn};
use std::rc::Rc;
use std::time::Instant;

/// The kinds with exposed names, by their index in `Gateway::names`.
const NAMED: [ListKind; 2] = [ListKind::Tools, ListKind::Prompts];

impl Gateway {
    /// Uses `catalog` (or none: the catalog is off): every backend whose entry it has is
    /// listed from it without being started, and every backend that starts from now on
    /// has its entry refreshed. Lists already fetched in this run are kept.
    pub fn set_catalog(&mut self, catalog: Option<Catalog>) {
        self.catalog = catalog;
        for b in self.order.clone() {
            self.seed(b);
        }
        self.rebuild_names();
    }

    /// The catalog, when it changed since the last call (the runtime saves it then).
    pub fn catalog_to_save(&mut self) -> Option<&Catalog> {
        if !std::mem::take(&mut self.catalog_dirty) {
            return None;
        }
        self.catalog.as_ref()
    }

    /// Fills backend `b`'s unknown lists from its catalog entry.
    pub(super) fn seed(&mut self, b: usize) {
        let Some(entry) = self
            .catalog
            .as_ref()
            .and_then(|c| c.get(&self.backends[b].config))
        else {
            return;
        };
        if let Some(f) = &entry.failed {
            let until = f.at.saturating_add(start_backoff(f.count).as_secs());
            self.backends[b].lists_skipped_until = Some((until, f.error.clone()));
        }
        if !entry.has_lists() {
            return;
        }
        let lists: Vec<Vec<Item>> = LIST_KINDS
            .iter()
            .map(|k| {
                let mut items = lists::items_from_raw(*k, &entry.lists[k.index()]);
                lists::canonical(*k, &mut items);
                items
            })
            .collect();
        let be = &mut self.backends[b];
        for (kind, items) in LIST_KINDS.iter().zip(lists) {
            let state = &mut be.lists[kind.index()];
            if matches!(state, ListState::Unknown) {
                *state = ListState::Known(Rc::new(items));
            }
        }
    }

    /// After backend `b` initialized: every list is fetched again so the catalog holds
    /// what this process offers (a list whose capability it lacks is empty).
    pub(super) fn refresh_all(&mut self, now: Instant, b: usize) {
        if self.catalog.is_none() {
            return;
        }
        for kind in LIST_KINDS {
            if self.backend_has_capability(b, kind.capability()) {
                self.refresh_list(now, b, kind);
                continue;
            }
            let state = &mut self.backends[b].lists[kind.index()];
            if matches!(state, ListState::Fetching { .. }) {
                continue;
            }
            let before = match std::mem::take(state) {
                ListState::Known(list) => Some(list),
                _ => None,
            };
            *state = ListState::Known(Rc::new(Vec::new()));
            if before.is_some_and(|l| !l.is_empty()) {
                self.notify_list_changed(now, b, kind);
            }
            self.lists_updated(now, b, kind);
        }
    }

    /// Fetches backend `b`'s list of `kind` again while it runs (catalog on), serving the
    /// known one meanwhile.
    pub(super) fn refresh_list(&mut self, now: Instant, b: usize, kind: ListKind) {
        if self.catalog.is_none() || !self.backends[b].lifecycle.is_ready() {
            return;
        }
        let state = &mut self.backends[b].lists[kind.index()];
        let previous = match std::mem::take(state) {
            ListState::Known(list) => Some(list),
            ListState::Unknown => None,
            fetching @ ListState::Fetching { .. } => {
                *state = fetching;
                return;
            }
        };
        *state = ListState::Fetching {
            previous,
            so_far: Vec::new(),
            waiters: Vec::new(),
            stale: false,
        };
        self.request_page(now, b, kind, None);
    }

    /// Backend `b`'s list of `kind` changed: the client hears it (coalesced), unless it
    /// cannot see that list (tools of a backend reached only through the meta-tools).
    pub(super) fn notify_list_changed(&mut self, now: Instant, b: usize, kind: ListKind) {
        if kind == ListKind::Tools && !has_direct_tools(&self.backends[b].config) {
            return;
        }
        self.arm_list_changed(now, kind);
    }

    /// Schedules the client's list_changed notification for `kind`, once per burst.
    pub(super) fn arm_list_changed(&mut self, now: Instant, kind: ListKind) {
        // Templates are announced with the resources.
        let kind = if kind == ListKind::Templates {
            ListKind::Resources
        } else {
            kind
        };
        if !self.list_changed_armed[kind.index()] {
            self.list_changed_armed[kind.index()] = true;
            self.timers
                .insert(now + LIST_CHANGED_DELAY, Timer::ListChanged(kind));
        }
    }

    /// Backend `b`'s list of `kind` is newly known: names follow, and so does the catalog.
    pub(super) fn lists_updated(&mut self, now: Instant, b: usize, kind: ListKind) {
        if NAMED.contains(&kind) {
            self.rebuild_names();
        }
        self.store_entry(now, b);
    }

    /// Puts backend `b`'s entry in the catalog once this run's process told all its lists.
    fn store_entry(&mut self, now: Instant, b: usize) {
        let updated = self.unix_secs(now);
        let be = &self.backends[b];
        let Some(catalog) = self.catalog.as_mut() else {
            return;
        };
        // A process started before a reload changed the command speaks for the old one.
        let Some(init) = be
            .init_result
            .as_ref()
            .filter(|_| !be.lifecycle.restart_pending())
        else {
            return;
        };
        let mut lists: [Vec<Box<serde_json::value::RawValue>>; 4] = Default::default();
        for kind in LIST_KINDS {
            let ListState::Known(list) = &be.lists[kind.index()] else {
                return;
            };
            lists[kind.index()] = list.iter().map(|i| i.raw.clone()).collect();
        }
        let entry = Entry {
            backend: be.name().to_string(),
            updated,
            init: Some(init.clone()),
            lists,
            failed: None,
        };
        if catalog
            .get(&be.config)
            .is_some_and(|old| old.same_content(&entry))
        {
            return;
        }
        info!("catalog: updated the entry of backend '{}'", be.name());
        catalog.put(&be.config, entry);
        self.catalog_dirty = true;
    }

    /// Backend `b`'s start just failed: its catalog entry remembers it, so that the next
    /// run does not hold list answers for it either (see `Backend::lists_skipped_until`).
    /// What it reported before is kept. A later successful start clears it.
    pub(super) fn remember_failed_start(&mut self, now: Instant, b: usize) {
        let unix_now = self.unix_secs(now);
        let be = &self.backends[b];
        let Some(catalog) = self.catalog.as_mut() else {
            return;
        };
        let mut error = be.lifecycle.last_error().unwrap_or_default().to_string();
        if error.len() > catalog::FAILURE_TEXT_MAX {
            let mut cut = catalog::FAILURE_TEXT_MAX;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
            error.push('…');
        }
        let mut entry = catalog.get(&be.config).cloned().unwrap_or_else(|| Entry {
            backend: be.name().to_string(),
            updated: unix_now,
            init: None,
            lists: Default::default(),
            failed: None,
        });
        entry.updated = unix_now;
        entry.failed = Some(Failure {
            at: unix_now,
            count: be.lifecycle.start_failures(),
            error,
        });
        catalog.put(&be.config, entry);
        self.catalog_dirty = true;
    }

    /// The names for the tools (or prompts) of `lists` (backend, its list), in that order,
    /// as the client sees them: see [`naming::exposed_names`], which `gangway tools` and
    /// `gangway check` call too.
    pub(super) fn name_table(
        &self,
        kind: ListKind,
        lists: &[(usize, &[Item])],
    ) -> (NameTable, Vec<Renamed>) {
        naming::exposed_names(
            kind,
            &self.separator,
            self.meta_enabled(),
            lists.iter().map(|&(b, list)| {
                let names = list.iter().map(|item| item.key.as_str());
                (b, &self.backends[b].config, names)
            }),
        )
    }

    /// Every tool or prompt (`kind`) exposed under another name than its candidate, and
    /// why, as a client is served them now (backends by index). For `gangway check`.
    pub fn renamed(&self, kind: ListKind) -> Vec<Renamed> {
        let known: Vec<(usize, Rc<Vec<Item>>)> = self
            .order
            .iter()
            .filter_map(|&b| Some((b, Rc::clone(self.backends[b].known(kind)?))))
            .collect();
        let lists: Vec<(usize, &[Item])> = known.iter().map(|(b, l)| (*b, l.as_slice())).collect();
        self.name_table(kind, &lists).1
    }

    /// The name backend `b`'s tool or prompt `own` is listed under, when a client's list
    /// has it directly. For `gangway tools`.
    pub fn exposed_name(&self, kind: ListKind, b: usize, own: &str) -> Option<&str> {
        self.names.get(kind.index())?.exposed(b, own)
    }

    /// The names in backend `b`'s list of `kind` as last known, sorted.
    pub fn known_names(&self, kind: ListKind, b: usize) -> Option<Vec<&str>> {
        let list = self.backends.get(b)?.known(kind)?;
        Some(list.iter().map(|i| i.key.as_str()).collect())
    }

    /// How long backend `b`'s last start took, from its spawn to its answer to
    /// `initialize`.
    pub fn ready_after(&self, b: usize) -> Option<std::time::Duration> {
        self.backends.get(b)?.lifecycle.ready_after()
    }

    /// Places every exposed tool and prompt name again from the lists known now, and
    /// reports renamings not reported before.
    pub(super) fn rebuild_names(&mut self) {
        for kind in NAMED {
            let known: Vec<(usize, Rc<Vec<Item>>)> = self
                .order
                .iter()
                .filter_map(|&b| Some((b, Rc::clone(self.backends[b].known(kind)?))))
                .collect();
            let lists: Vec<(usize, &[Item])> =
                known.iter().map(|(b, l)| (*b, l.as_slice())).collect();
            let (table, renamed) = self.name_table(kind, &lists);
            for r in renamed {
                let key = format!("{}\0{}\0{}", kind.index(), r.candidate, r.exposed);
                if self.reported.insert(key) {
                    self.report(kind, &r);
                }
            }
            self.names[kind.index()] = table;
        }
    }

    /// Logs that a tool or prompt is exposed under another name than its candidate.
    fn report(&self, kind: ListKind, r: &Renamed) {
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        let backend = self.who(r.backend);
        match &r.why {
            Why::Collision {
                backend: other,
                name,
            } => warn!(
                "{what} name collision: '{}' of backend '{backend}' would be '{}', which is already '{name}' of {}; it is exposed as '{}' (set a different prefix to choose names yourself)",
                r.name,
                r.candidate,
                if *other == GANGWAY {
                    "gangway (a meta-tool)".to_string()
                } else {
                    format!("backend '{}'", self.who(*other))
                },
                r.exposed
            ),
            Why::Invalid => info!(
                "{what} '{}' of backend '{backend}' is exposed as '{}': '{}' is not 1-64 characters of A-Z a-z 0-9 _ -",
                r.name, r.exposed, r.candidate
            ),
        }
    }

    /// A backend's name for logs (`gangway` for the meta-tools' reservation).
    fn who(&self, b: usize) -> &str {
        self.backends.get(b).map_or("gangway", |be| be.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    /// `gangway tools` and `gangway check` reserve the meta-tools' names by
    /// `naming::meta_listed` on the config; serving, by whether it lists them. They must agree.
    #[test]
    fn meta_listed_agrees_with_what_the_gateway_lists() {
        let configs = [
            r#"{"expose": "tools", "backends": {}}"#,
            r#"{"expose": "meta", "backends": {}}"#,
            r#"{"expose": "tools", "backends": {"a": {"command": "x"}}}"#,
            r#"{"expose": "tools", "backends": {"a": {"command": "x", "expose": "both"}}}"#,
            r#"{"backends": {"a": {"command": "x", "expose": "tools"}}}"#,
            r#"{"backends": {"a": {"command": "x", "direct": ["*"]}}}"#,
            r#"{"expose": "tools", "backends": {"a": {"command": "x", "expose": "meta", "disabled": true}}}"#,
        ];
        for text in configs {
            let config = Config::parse(text, Path::new("test.json"), &|_| None).expect(text);
            let gw = Gateway::new(&config, Instant::now(), 0);
            let listed = naming::meta_listed(config.expose, config.enabled());
            assert_eq!(listed, gw.meta_enabled(), "{text}");
        }
    }
}
