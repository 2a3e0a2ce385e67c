//! Backpressure toward backends: how many bytes of requests wait for each backend, and
//! whether one that is behind is still reading (then client input pauses) or stalled
//! (then further requests to it are refused). See [`BACKEND_IN_BOUND`].

use super::{Gateway, Timer};
use super::{BACKEND_IN_BOUND, BACKEND_IN_MAX, BACKEND_STALL};
use std::time::Instant;

impl Gateway {
    /// Notes, for each backend more than [`BACKEND_IN_BOUND`] behind, when it last took
    /// some of its input (a wakeup is set for when it would count as stalled); forgets it
    /// for those that caught up.
    pub(super) fn watch_inputs(&mut self, now: Instant) {
        for b in 0..self.backends.len() {
            self.watch_input(now, b);
        }
    }

    /// [`Gateway::watch_inputs`] for backend `b`.
    fn watch_input(&mut self, now: Instant, b: usize) {
        let written = self.out.backends[b].written();
        let behind = self.waiting_input(b) > BACKEND_IN_BOUND;
        let be = &mut self.backends[b];
        if !behind || !be.lifecycle.is_ready() {
            be.drain_watch = None;
        } else if be.drain_watch.map_or(true, |(seen, _)| seen != written) {
            self.saw_progress(now, b, written);
        }
    }

    /// Bytes of requests waiting for backend `b`: queued behind its start, or written to
    /// its stdin's queue and not yet taken.
    fn waiting_input(&self, b: usize) -> usize {
        let queued: usize = self.backends[b].queue.iter().map(|q| q.bytes.len()).sum();
        self.out.backends[b].len() + queued
    }

    /// Backend `b`, behind on its input, had taken `written` bytes of it by `now`; a
    /// wakeup is set for when it would count as stalled, so paused input resumes then.
    fn saw_progress(&mut self, now: Instant, b: usize, written: u64) {
        let be = &mut self.backends[b];
        be.drain_watch = Some((written, now));
        if let Some(t) = be.stall_timer.take() {
            self.timers.cancel(t);
        }
        let wake = self.timers.insert(now + BACKEND_STALL, Timer::InputStall);
        self.backends[b].stall_timer = Some(wake);
    }

    /// Whether `len` more bytes of requests may wait for backend `b` (see
    /// [`BACKEND_IN_BOUND`]), or why not.
    pub(super) fn input_room(&mut self, now: Instant, b: usize, len: usize) -> Result<(), String> {
        let waiting = self.waiting_input(b);
        if waiting == 0 || waiting + len <= BACKEND_IN_BOUND {
            return Ok(());
        }
        self.watch_input(now, b);
        let be = &self.backends[b];
        let mib = |n: usize| n / (1024 * 1024);
        let why = if !be.lifecycle.is_ready() {
            Some(format!(
                "it is still starting; at most {} MiB wait for a start",
                mib(BACKEND_IN_BOUND)
            ))
        } else if waiting + len > BACKEND_IN_MAX {
            Some(format!(
                "it is reading them more slowly than they come; at most {} MiB may wait",
                mib(BACKEND_IN_MAX)
            ))
        } else {
            // Over the first bound a reading backend may fall behind; one that has not
            // taken a byte for BACKEND_STALL is not reading.
            be.drain_watch
                .filter(|(_, since)| now.saturating_duration_since(*since) >= BACKEND_STALL)
                .map(|_| {
                    format!(
                        "it is not reading its input: it took none of it for {} s",
                        BACKEND_STALL.as_secs()
                    )
                })
        };
        match why {
            None => Ok(()),
            Some(why) => Err(format!(
                "backend '{}' has {waiting} bytes of requests waiting ({why}); this request was refused, try again when it has caught up",
                be.name(),
            )),
        }
    }
}
