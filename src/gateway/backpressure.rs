//! Backpressure toward backends: how many bytes of requests wait for each backend, and
//! whether one that is behind is still reading (then client input pauses) or stalled
//! (then, past [`BACKEND_IN_BOUND`], further requests to it are refused). See
//! [`BACKEND_IN_PAUSE`].

use super::{Gateway, Timer};
use super::{BACKEND_IN_BOUND, BACKEND_IN_MAX, BACKEND_IN_PAUSE, BACKEND_STALL};
use crate::timer::{TimerHandle, TimerWheel};
use std::time::Instant;

/// How a backend more than [`BACKEND_IN_PAUSE`] behind takes its input: how much of it had
/// been written when that was last seen to change, and when, with the wakeup for when it
/// would count as stalled. Empty while it is not behind (or not ready).
#[derive(Debug, Default)]
pub(super) struct InputWatch {
    progress: Option<(u64, Instant)>,
    stall_timer: Option<TimerHandle>,
}

impl InputWatch {
    /// Whether it is behind and took some of its input less than [`BACKEND_STALL`]
    /// before `now`: it is reading, so client input waits for it.
    pub(super) fn reading(&self, now: Instant) -> bool {
        self.progress
            .is_some_and(|(_, since)| now.saturating_duration_since(since) < BACKEND_STALL)
    }

    /// Whether it is behind and took none of its input for [`BACKEND_STALL`] up to `now`.
    pub(super) fn stalled(&self, now: Instant) -> bool {
        self.progress
            .is_some_and(|(_, since)| now.saturating_duration_since(since) >= BACKEND_STALL)
    }

    /// It caught up, or is not ready: nothing is watched. (A stall wakeup already set
    /// finds nothing to do.)
    fn forget(&mut self) {
        self.progress = None;
    }

    /// It is behind and had taken `written` bytes of its input by `now`: when that changed
    /// since last seen, `now` is noted and the stall wakeup moves to [`BACKEND_STALL`]
    /// later, so paused input resumes then.
    fn saw(&mut self, now: Instant, written: u64, timers: &mut TimerWheel<Timer>) {
        if self.progress.is_some_and(|(seen, _)| seen == written) {
            return;
        }
        self.progress = Some((written, now));
        if let Some(t) = self.stall_timer.take() {
            timers.cancel(t);
        }
        self.stall_timer = Some(timers.insert(now + BACKEND_STALL, Timer::InputStall));
    }
}

impl Gateway {
    /// Notes, for each backend more than [`BACKEND_IN_PAUSE`] behind, when it last took
    /// some of its input (a wakeup is set for when it would count as stalled); forgets it
    /// for those that caught up.
    pub(super) fn watch_inputs(&mut self, now: Instant) {
        for b in 0..self.backends.len() {
            self.watch_input(now, b);
        }
    }

    /// [`Gateway::watch_inputs`] for backend `b`: also called as requests are written to
    /// it, so client input pauses within the read that put it behind.
    pub(super) fn watch_input(&mut self, now: Instant, b: usize) {
        let written = self.out.backends[b].written();
        let behind = self.waiting_input(b) > BACKEND_IN_PAUSE;
        let be = &mut self.backends[b];
        if !behind || !be.lifecycle.is_ready() {
            be.input.forget();
        } else {
            be.input.saw(now, written, &mut self.timers);
        }
    }

    /// Bytes of requests waiting for backend `b`: queued behind its start, or written to
    /// its stdin's queue and not yet taken.
    pub(super) fn waiting_input(&self, b: usize) -> usize {
        let queued: usize = self.backends[b].queue.iter().map(|q| q.bytes.len()).sum();
        self.out.backends[b].len() + queued
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
            be.input.stalled(now).then(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_behind_reads_until_it_takes_nothing_for_the_stall_period() {
        let t0 = Instant::now();
        let mut timers = TimerWheel::new(t0);
        let mut watch = InputWatch::default();
        assert!(!watch.reading(t0) && !watch.stalled(t0), "not behind");
        watch.saw(t0, 10, &mut timers);
        assert!(watch.reading(t0));
        let later = t0 + BACKEND_STALL / 2;
        watch.saw(later, 10, &mut timers);
        assert!(
            watch.stalled(t0 + BACKEND_STALL),
            "the same count is no progress"
        );
        watch.saw(later, 20, &mut timers);
        assert!(watch.reading(t0 + BACKEND_STALL), "progress moves it on");
        assert_eq!(timers.len(), 1, "one stall wakeup at a time");
        assert_eq!(timers.next_deadline(), Some(later + BACKEND_STALL));
        watch.forget();
        assert!(!watch.reading(later) && !watch.stalled(later + BACKEND_STALL));
    }
}
