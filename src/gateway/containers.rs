//! Restarts of docker backends whose container name the user chose: docker refuses the name
//! while the last container of that name exists, so the gateway asks for the new process
//! only once the runtime reports that the old container's removal ended. The runtime
//! removes containers and reports; the gateway decides when a spawn may go (see
//! [`Lifecycle::may_spawn`](super::lifecycle::Lifecycle::may_spawn)).

use super::{Action, Gateway, Life};
use log::{debug, info};
use std::time::Instant;

impl Gateway {
    /// The runtime began removing the container of backend `b`'s process that ended (it
    /// reports this before that process's `on_backend_exit`). Until
    /// [`Gateway::on_container_removed`], a start of `b` whose container name is fixed
    /// holds its spawn.
    pub fn on_container_removal_started(&mut self, b: usize) {
        if let Some(be) = self.backends.get_mut(b) {
            be.lifecycle.container_removal_started();
        }
    }

    /// Every container removal the runtime began for backend `b` finished or failed. A
    /// start that was waiting for it asks for its spawn now (`Action::Spawn`).
    pub fn on_container_removed(&mut self, b: usize) {
        let Some(be) = self.backends.get_mut(b) else {
            return;
        };
        if be.lifecycle.container_removed() {
            debug!("backend '{}': its old container is removed", be.name());
            self.actions.push(Action::Spawn(b));
        }
    }

    /// Asks the runtime for backend `b`'s process, unless its container name is fixed and
    /// the removal of its last container is still running: then the spawn waits for
    /// `on_container_removed` (meanwhile the start counts against `startup_timeout`).
    pub(super) fn ask_spawn(&mut self, b: usize) {
        let be = &mut self.backends[b];
        if be.lifecycle.may_spawn(be.config.fixed_container_name()) {
            self.actions.push(Action::Spawn(b));
        } else {
            debug!(
                "backend '{}' starts once its old container is removed",
                be.name()
            );
        }
    }

    /// Backend `b` is stopped while its spawn is held: no process was ever asked for, so
    /// there is none to stop and no exit to wait for. Everything waiting for it is
    /// answered (a stop while a start is held comes from shutdown, from a reload, or from
    /// a start that failed); a start that failed (it waited past `startup_timeout`) backs
    /// off like any failed start (`failing`).
    pub(super) fn start_abandoned(&mut self, now: Instant, b: usize, failing: bool) {
        self.process_gone(b);
        let be = &self.backends[b];
        let name = be.name().to_string();
        let shutting_down = matches!(self.life, Life::ShuttingDown | Life::Exited);
        if failing && !shutting_down {
            let reason = be
                .lifecycle
                .last_error()
                .map_or_else(|| format!("backend '{name}' did not start"), str::to_string);
            self.crashed(now, b, reason);
            return;
        }
        info!("backend '{name}' stopped before it started");
        let reason = if shutting_down {
            format!("gangway is shutting down; backend '{name}' was stopped before it started")
        } else {
            format!("backend '{name}' was stopped before it started")
        };
        self.fail_pending(now, b, &reason, true);
    }
}
