//! Warm backends (`keep_warm`): started before anyone asks, so the first call does not
//! pay the cold start. A warm shared backend is started when serving begins, is not
//! stopped for idling, and is started again after a crash (once its back-off allows); a
//! warm session-scoped backend keeps that many spare processes running, and a session
//! that needs its own process takes a spare (another is started in its place).

use super::backend::Backend;
use super::lifecycle::Phase;
use super::outbox::OutBuf;
use super::{Gateway, Life, SessionId, Timer};
use crate::config::Scope;
use log::{debug, info};
use std::time::Instant;

/// The session a spare process is held for: none (no session has this id).
pub(super) const SPARE: SessionId = SessionId(u32::MAX);

/// What a warm start declares before any client has initialized: every client
/// capability a backend may ask for. gangway routes such requests to a client that
/// declared the capability and answers the backend with an error when none did.
const WARM_CAPABILITIES: &str = r#"{"roots":{"listChanged":true},"sampling":{},"elicitation":{}}"#;

impl Gateway {
    /// Serving begins: backends with `keep_warm` are started now and kept warm from then
    /// on. (The shell commands never call this: they start only what they need.)
    pub fn keep_warm(&mut self, now: Instant) {
        if !self.backends.iter().any(|be| be.config.keep_warm > 0) {
            return;
        }
        self.warm = true;
        if !self.sessions.values().any(|c| !c.caps.is_null()) {
            let caps = serde_json::value::RawValue::from_string(WARM_CAPABILITIES.to_string()).ok();
            let version = super::SUPPORTED_PROTOCOL_VERSIONS[0];
            self.set_client_init(version, caps.as_deref(), None);
        }
        self.rewarm(now);
        self.settle(now);
    }

    /// Starts what `keep_warm` asks for and is not running: a warm shared backend that
    /// stopped, spare processes of a session-scoped one. A backend pausing after crashes
    /// gets a wakeup for when the pause ends.
    pub(super) fn rewarm(&mut self, now: Instant) {
        if !self.warm || self.life != Life::Running {
            return;
        }
        // Indexed, not cloned: this runs after every event while serving keeps backends
        // warm, and starting one does not change the order.
        for k in 0..self.order.len() {
            let b = self.order[k];
            let be = &self.backends[b];
            let want = be.config.keep_warm;
            if want == 0 || be.removed || be.warm_held {
                continue;
            }
            if be.config.scope == Scope::Session {
                let spares = self.spares_of(b).len() as u32;
                for _ in spares..want {
                    let i = self.new_instance(now, b, SPARE);
                    debug!(
                        "backend '{}': a spare process, kept warm",
                        self.backends[i].name()
                    );
                    self.start(now, i);
                }
                continue;
            }
            match be.lifecycle.phase() {
                Phase::Stopped if self.available(now, b).is_ok() => {
                    info!(
                        "starting backend '{}' to keep it warm",
                        self.backends[b].name()
                    );
                    self.start(now, b);
                }
                Phase::Failed { until } if !self.backends[b].warm_armed => {
                    self.backends[b].warm_armed = true;
                    self.timers.insert(until, Timer::Warm(b));
                }
                _ => {}
            }
        }
    }

    /// The wakeup set for a warm backend's end of pause.
    pub(super) fn warm_due(&mut self, now: Instant, b: usize) {
        if let Some(be) = self.backends.get_mut(b) {
            be.warm_armed = false;
        }
        self.rewarm(now);
    }

    /// Spare processes of session-scoped backend `b` that are starting or ready.
    pub(super) fn spares_of(&self, b: usize) -> Vec<usize> {
        (0..self.backends.len())
            .filter(|&i| {
                let x = &self.backends[i];
                x.instance_of == Some((b, SPARE)) && !x.removed && x.lifecycle.is_running()
            })
            .collect()
    }

    /// Whether backend `b` is kept warm, so idling does not stop it.
    pub(super) fn kept_warm(&self, b: usize) -> bool {
        let be = &self.backends[b];
        self.warm && be.config.keep_warm > 0 && matches!(be.instance_of, None | Some((_, SPARE)))
    }

    /// A process slot of session-scoped backend `b` for `owner` (a stopped slot of an
    /// ended session is reused).
    pub(super) fn new_instance(&mut self, now: Instant, b: usize, owner: SessionId) -> usize {
        let config = self.backends[b].config.clone();
        let free = self.backends.iter().position(|x| {
            x.instance_of.is_some()
                && x.removed
                && x.lifecycle.phase() == Phase::Stopped
                && x.in_flight() == 0
        });
        let i = match free {
            Some(i) => {
                self.backends[i] = Backend::new(config, now);
                self.out.backends[i].clear();
                i
            }
            None => {
                self.backends.push(Backend::new(config, now));
                self.out.backends.push(OutBuf::default());
                self.backends.len() - 1
            }
        };
        self.backends[i].instance_of = Some((b, owner));
        i
    }
}
