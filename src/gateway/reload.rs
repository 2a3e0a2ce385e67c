//! Applying a new config while the client stays connected (SIGHUP).

use super::backend::{Backend, ListState};
use super::lists::ListKind;
use super::{Gateway, OutBuf};
use crate::catalog;
use crate::config::Config;
use log::info;
use std::time::Instant;

/// What a reload changed, for the log and for the runtime.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Names of backends that were added.
    pub added: Vec<String>,
    /// Names of backends that were removed.
    pub removed: Vec<String>,
    /// Names of backends whose config changed.
    pub changed: Vec<String>,
}

impl Reloaded {
    /// Whether anything the client can see may have changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Gateway {
    /// Applies `config` in place of the running one, keeping the client connected.
    ///
    /// Backends are matched by name. An added backend gets a new index (so
    /// `backend_count` grows), unless a backend of that name was removed earlier: then it
    /// takes that one's index back; it starts when first needed. A
    /// removed one is no longer listed or callable; its process stops once its requests in
    /// flight have ended or timed out. A changed one takes its new settings at once; if
    /// how it is spawned changed, its running process stops once idle and the next request
    /// starts the new one, and if its catalog fingerprint changed its lists are fetched
    /// anew. When anything changed the client gets list_changed for tools, prompts and
    /// resources. The catalog location is the runtime's business (`set_catalog`).
    pub fn reload(&mut self, now: Instant, config: &Config) -> Reloaded {
        let mut done = Reloaded::default();
        let mut order = Vec::new();
        for cfg in config.enabled() {
            let existing = self
                .order
                .iter()
                .copied()
                .find(|b| self.backends[*b].name() == cfg.name);
            // A backend removed by an earlier reload and added again takes its old slot,
            // so the table does not grow with every remove and re-add.
            let revived = existing.is_none().then(|| {
                self.backends
                    .iter()
                    .position(|be| be.removed && be.instance_of.is_none() && be.name() == cfg.name)
            });
            let b = match (existing, revived.flatten()) {
                (Some(b), _) => b,
                (None, Some(b)) => {
                    self.backends[b].removed = false;
                    done.added.push(cfg.name.clone());
                    b
                }
                (None, None) => {
                    let b = self.backends.len();
                    self.backends.push(Backend::new(cfg.clone(), now));
                    self.out.backends.push(OutBuf::default());
                    self.seed(b);
                    done.added.push(cfg.name.clone());
                    order.push(b);
                    continue;
                }
            };
            order.push(b);
            let be = &mut self.backends[b];
            if be.config == *cfg {
                continue;
            }
            if existing.is_some() {
                done.changed.push(cfg.name.clone());
            }
            let new_fingerprint = catalog::fingerprint(&be.config) != catalog::fingerprint(cfg);
            let respawn = be.config.spawn_differs(cfg);
            be.config = cfg.clone();
            // The user changed it, maybe to fix what made its start fail: try at once.
            be.lists_skipped_until = None;
            be.lifecycle.forget_failed_starts();
            if new_fingerprint {
                for state in &mut be.lists {
                    match state {
                        // The walk's answer is for the old command: hand it to whoever
                        // waits, but do not keep it.
                        ListState::Fetching { stale, .. } => *stale = true,
                        other => *other = ListState::Unknown,
                    }
                }
                self.seed(b);
            }
            if respawn {
                self.respawn_when_idle(now, b);
            }
        }
        for b in self.order.clone() {
            if order.contains(&b) {
                continue;
            }
            done.removed.push(self.backends[b].name().to_string());
            self.retire(now, b);
        }
        self.reload_instances(now);
        let settings_changed = self.expose != config.expose || self.separator != config.separator;
        let reordered = self.order != order;
        self.expose = config.expose;
        self.separator = config.separator.clone();
        self.unavailable = super::unavailable(config);
        self.disabled = super::disabled(config);
        self.order = order;
        info!(
            "config reloaded from {}: {} added, {} removed, {} changed ({} backend slots)",
            config.path.display(),
            list_or_none(&done.added),
            list_or_none(&done.removed),
            list_or_none(&done.changed),
            self.backends.len()
        );
        if !done.is_empty() || settings_changed || reordered {
            self.rebuild_names();
            for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
                self.arm_list_changed(now, kind);
            }
        }
        done
    }
}

impl Gateway {
    /// Sessions' own processes of session-scoped backends follow their backend: removed
    /// with it, or given its new config (and restarted once idle if it spawns differently).
    fn reload_instances(&mut self, now: Instant) {
        for i in 0..self.backends.len() {
            let Some((of, s)) = self.backends[i].instance_of else {
                continue;
            };
            if self.backends[i].removed {
                continue;
            }
            let template = &self.backends[of];
            if template.removed || template.config.scope != crate::config::Scope::Session {
                self.instances.remove(&(of, s));
                self.retire(now, i);
                continue;
            }
            if self.backends[i].config == template.config {
                continue;
            }
            let config = template.config.clone();
            let be = &mut self.backends[i];
            let respawn = be.config.spawn_differs(&config);
            be.config = config;
            if respawn {
                self.respawn_when_idle(now, i);
            }
        }
    }
}

/// Names for a log line, or "none".
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
