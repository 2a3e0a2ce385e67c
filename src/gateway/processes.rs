//! The gateway's side of each backend's [`Lifecycle`](super::lifecycle::Lifecycle): it
//! starts a process (spawn, `initialize`, the queued requests), reports its start's
//! progress, stops it (the stop ladder, idle reaping, reloads) and handles its exit or
//! crash, turning the lifecycle's decisions into actions, answers and log lines.

use super::lifecycle::{self, Crash, Exit, Step, StopDecision, Wakeup, FAILED_PAUSE, STOP_GRACE};
use super::requests::{Pending, PendingKind};
use super::{Action, Gateway, Life, StopSignal, Timer};
use crate::wire::message::{self, write_request, Message};
use log::{debug, error, info, warn};
use std::time::Instant;

impl Gateway {
    /// Backend `b` closed its pipes while starting or ready: it is stopped, and its exit
    /// counts as a crash.
    pub(super) fn backend_closed(&mut self, now: Instant, b: usize) {
        let Some(be) = self.backends.get_mut(b) else {
            return;
        };
        if be.lifecycle.reads_input() {
            debug!("backend '{}' closed its pipes", be.name());
            be.lifecycle.mark_failing(None);
            self.stop(now, b);
        }
    }

    /// Backend `b` could not be spawned: a crash (of a start) that names its command.
    pub(super) fn spawn_failed(&mut self, now: Instant, b: usize, error: &str) {
        if b >= self.backends.len() {
            return;
        }
        self.process_gone(b);
        let be = &self.backends[b];
        let reason = format!(
            "backend '{}' could not be started: {error}. Check its \"command\" ({}) in {}",
            be.name(),
            be.config.shown_command(),
            self.config_path.display()
        );
        error!("{reason}");
        self.crashed(now, b, reason);
    }

    /// Backend `b`'s process exited: a stop gangway asked for ends here (requests queued
    /// meanwhile start it again); anything else is a crash.
    pub(super) fn backend_exit(&mut self, now: Instant, b: usize, status: &str) {
        if b >= self.backends.len() {
            return;
        }
        self.process_gone(b);
        let be = &mut self.backends[b];
        let name = be.name().to_string();
        let shutting_down = matches!(self.life, Life::ShuttingDown | Life::Exited);
        let exit = be.lifecycle.on_exit(shutting_down);
        if shutting_down {
            info!("backend '{name}' stopped ({status})");
            let reason = format!("gangway is shutting down; backend '{name}' was stopped");
            self.fail_pending(now, b, &reason, true);
            return;
        }
        if exit == Exit::Stopped {
            info!("backend '{name}' stopped ({status})");
            let reason = format!("backend '{name}' was stopped");
            self.fail_pending(now, b, &reason, false);
            let ids = &self.ids;
            self.backends[b].queue.retain(|q| ids.get(q.gw).is_some());
            let again = std::mem::take(&mut self.backends[b].start_after_stop);
            if again || !self.backends[b].queue.is_empty() {
                self.start(now, b);
            }
            return;
        }
        let reason = format!("backend '{name}' exited ({status}){}", be.stderr_suffix());
        error!("{reason}");
        self.crashed(now, b, reason);
    }

    /// Starts a process for backend `b`: asks for its spawn, sends `initialize` and sets
    /// the start-progress timer. Requests queued for it are sent once it is ready.
    pub(super) fn start(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        be.lifecycle.begin_start(now, &mut self.timers);
        be.new_process();
        be.stats.starts += 1;
        if std::mem::take(&mut be.stats.crashed_last) {
            be.stats.restarts += 1;
        }
        info!("starting backend '{}'", be.name());
        self.out.backends[b].clear();
        self.ask_spawn(b);
        let pending = Pending::new(b, PendingKind::Init);
        let Some(gw) = self.track(None, pending) else {
            return;
        };
        let params = std::mem::take(&mut self.backend_init_params);
        write_request(
            self.out.backends[b].buf(),
            Some(gw),
            "initialize",
            Some(&params),
        );
        self.backend_init_params = params;
        self.mark_sent(now, b, gw);
        self.arm_start_progress(now, b);
    }

    fn arm_start_progress(&mut self, now: Instant, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        self.backends[b]
            .lifecycle
            .arm_start_progress(now, &mut self.timers, wake);
    }

    /// A timer of backend `b`'s lifecycle is due; one set for an earlier process (or
    /// phase) is refused by the lifecycle.
    pub(super) fn backend_wakeup(&mut self, now: Instant, b: usize, w: Wakeup) {
        if b >= self.backends.len() {
            return;
        }
        match w.step() {
            Step::StartProgress => self.start_progress(now, b, w),
            Step::Idle => self.idle_check(now, b, w),
            Step::Stop(_) => self.stop_step(now, b, w),
        }
    }

    /// Backend `b` is still starting: every request waiting for it that carries a progress
    /// token hears so (the request timeout only counts once the backend is ready).
    fn start_progress(&mut self, now: Instant, b: usize, w: Wakeup) {
        let be = &mut self.backends[b];
        if !be.lifecycle.start_progress_due(w) {
            return;
        }
        let secs = be.lifecycle.starting_for(now).as_secs();
        let pulling = if be.config.runs_docker() {
            "; docker may be pulling the image"
        } else {
            ""
        };
        let text = format!("Starting backend '{}' ({secs} s{pulling})", be.name());
        let mut notes = Vec::new();
        for q in &be.queue {
            let Some(e) = self.ids.get(q.gw) else {
                continue;
            };
            let (Some(token), Some(to)) = (e.data.token.as_ref(), e.data.session) else {
                continue;
            };
            let mut params = b"{\"progressToken\":".to_vec();
            params.extend_from_slice(token.as_bytes());
            params.extend_from_slice(format!(",\"progress\":{secs},\"message\":").as_bytes());
            message::write_json_string(&mut params, &text);
            params.push(b'}');
            notes.push((to, params));
        }
        for (to, params) in notes {
            write_request(
                self.out_to(to),
                None,
                "notifications/progress",
                Some(&params),
            );
        }
        self.arm_start_progress(now, b);
    }

    /// Backend `b` answered gangway's `initialize`: on success it is ready (initialized,
    /// its log level set, its queue sent, its lists refreshed); an error is a failed start.
    pub(super) fn init_done(&mut self, now: Instant, b: usize, msg: &Message<'_>) {
        let be = &mut self.backends[b];
        if !be.lifecycle.is_starting() {
            return;
        }
        if let Some(err) = msg.error {
            let reason = format!("backend '{}' refused initialize: {}", be.name(), err.get());
            error!("{reason}");
            self.start_failed(now, b, &reason);
            return;
        }
        be.init_result = msg
            .result
            .and_then(|r| serde_json::value::RawValue::from_string(r.get().to_string()).ok());
        let took = be.lifecycle.on_ready(now, &mut self.timers);
        be.stats.start_seconds.observe(took.as_secs_f64());
        be.lists_skipped_until = None;
        info!("backend '{}' ready in {} ms", be.name(), took.as_millis());
        write_request(
            self.out.backends[b].buf(),
            None,
            "notifications/initialized",
            None,
        );
        if let Some(level) = self.backend_log_params() {
            if self.backend_has_capability(b, "logging") {
                self.send_internal(now, b, "logging/setLevel", &level);
            }
        }
        let queue = std::mem::take(&mut self.backends[b].queue);
        for q in queue {
            if self.ids.get(q.gw).is_some() {
                self.out.backends[b].buf().extend_from_slice(&q.bytes);
                self.mark_sent(now, b, q.gw);
            }
        }
        self.refresh_all(now, b);
        if self.backends[b].in_flight() == 0 {
            self.arm_idle(b);
        }
    }

    /// Backend `b`'s start failed for `reason`: everything waiting for it is answered with
    /// it, and the process is stopped (its exit then counts as a failed start).
    pub(super) fn start_failed(&mut self, now: Instant, b: usize, reason: &str) {
        let life = &mut self.backends[b].lifecycle;
        life.mark_failing(Some(reason.to_string()));
        self.fail_pending(now, b, reason, true);
        self.stop(now, b);
    }

    /// A backend died or could not start: everything waiting on it is answered, and the
    /// restart back-off is updated.
    pub(super) fn crashed(&mut self, now: Instant, b: usize, reason: String) {
        self.cancel_backend_timers(b);
        self.fail_pending(now, b, &reason, true);
        let be = &mut self.backends[b];
        be.stats.crashes += 1;
        be.stats.crashed_last = true;
        match be.lifecycle.on_crash(now, reason) {
            Crash::StartFailed { in_a_row, pause } => {
                be.stats.start_failures += 1;
                warn!(
                    "backend '{}' failed to start ({in_a_row} in a row); gangway tries again in {} s",
                    be.name(),
                    pause.as_secs()
                );
                self.remember_failed_start(now, b);
            }
            Crash::TooOften => warn!(
                "backend '{}' crashed {} times within {} s; not restarting it for {} s",
                be.name(),
                lifecycle::CRASH_LIMIT,
                lifecycle::CRASH_WINDOW.as_secs(),
                FAILED_PAUSE.as_secs()
            ),
            Crash::Restartable => {}
        }
    }

    /// Begins the stop ladder for backend `b` when it is starting or ready (see
    /// [`Lifecycle::begin_stop`](super::lifecycle::Lifecycle::begin_stop)).
    pub(super) fn stop(&mut self, now: Instant, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        match self.backends[b]
            .lifecycle
            .begin_stop(now, &mut self.timers, wake)
        {
            StopDecision::NotRunning => {}
            StopDecision::Abandoned { failing } => self.start_abandoned(now, b, failing),
            StopDecision::CloseStdin => self.actions.push(Action::CloseStdin(b)),
        }
    }

    fn stop_step(&mut self, now: Instant, b: usize, w: Wakeup) {
        let wake = |w| Timer::Backend(b, w);
        let be = &mut self.backends[b];
        let Some(signal) = be.lifecycle.stop_due(now, w, &mut self.timers, wake) else {
            return;
        };
        warn!(
            "backend '{}' still running {} s after {}; sending {}",
            be.name(),
            STOP_GRACE.as_secs(),
            if signal == StopSignal::Term {
                "its stdin closed"
            } else {
                "SIGTERM"
            },
            signal.name()
        );
        self.actions.push(Action::Signal(b, signal));
    }

    /// Backend `b`'s process is gone: drop the input it never read (it must not hold the
    /// client's backpressure shut) and the timers that were for that process.
    pub(super) fn process_gone(&mut self, b: usize) {
        self.backends[b].process = None;
        self.backends[b].log_repeats_end();
        self.out.backends[b].clear();
        self.cancel_backend_timers(b);
    }

    /// Cancels the idle timer and the stop ladder of backend `b` (its process is gone or
    /// being replaced), so no wakeup is left for them.
    fn cancel_backend_timers(&mut self, b: usize) {
        self.backends[b].lifecycle.cancel_timers(&mut self.timers);
    }

    /// Sets backend `b`'s idle timer, when it is ready and has an `idle_timeout`.
    pub(super) fn arm_idle(&mut self, b: usize) {
        let wake = |w| Timer::Backend(b, w);
        let be = &mut self.backends[b];
        be.lifecycle
            .arm_idle(be.config.idle_timeout, &mut self.timers, wake);
    }

    fn idle_check(&mut self, now: Instant, b: usize, w: Wakeup) {
        let be = &mut self.backends[b];
        if !be.lifecycle.idle_fired(w) || be.in_flight() > 0 {
            return;
        }
        let Some(idle) = be.config.idle_timeout else {
            return;
        };
        if self.kept_warm(b) {
            return;
        }
        // A client waiting for resource updates, or for a task, is using it, requests
        // or not.
        let watched = self.tasks.running_at(b)
            || self
                .sessions
                .values()
                .flat_map(|c| c.subscriptions.iter())
                .any(|uri| self.resource_owner(uri) == Some(b));
        if watched {
            debug!(
                "backend '{}' is idle but a client watches its resources or tasks; kept running",
                self.backends[b].name()
            );
            // Looked at again one idle period later.
            self.backends[b].lifecycle.touch(now);
            self.arm_idle(b);
            return;
        }
        let be = &self.backends[b];
        if be.lifecycle.idle_due(now, idle) {
            info!(
                "stopping backend '{}': idle for {} s",
                be.name(),
                idle.as_secs_f64()
            );
            self.backends[b].stats.idle_stops += 1;
            self.stop(now, b);
        } else {
            // Activity since the timer was set pushed the deadline back.
            self.arm_idle(b);
        }
    }

    /// Marks backend `b` removed (a reload dropped it, or the session it served ended):
    /// it is stopped at once when nothing is in flight, else when its last request ends.
    pub(super) fn retire(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        be.removed = true;
        if be.lifecycle.is_running() && be.in_flight() == 0 {
            self.stop(now, b);
        }
    }

    /// Backend `b`'s process must be replaced (a reload changed how it is spawned): it is
    /// stopped once idle, and the next request starts the new one.
    pub(super) fn respawn_when_idle(&mut self, now: Instant, b: usize) {
        let be = &mut self.backends[b];
        if !be.lifecycle.is_running() {
            return;
        }
        be.lifecycle.want_restart();
        if be.in_flight() == 0 {
            info!(
                "reload: restarting backend '{}' with its new command",
                be.name()
            );
            self.stop(now, b);
        }
    }
}
