//! One backend's life: `Stopped -> Starting -> Ready -> Stopping -> Stopped`, plus
//! `Failed { until }` after failed starts or repeated crashes (design.md, "Backend
//! lifecycle").
//!
//! [`Lifecycle`] owns the phase, the process generation, the restart back-off and the
//! timers of that life (start progress, idle, the stop ladder), and makes the decisions:
//! whether a spawn may be asked for, how long to back off after a crash, which stop step
//! comes next, whether a backend is idle, and whether a timer is still for the current
//! process. The gateway turns those decisions into actions, answers and log lines; this
//! file knows nothing of requests, sessions or messages.

use super::{after, StopSignal};
use crate::timer::{TimerHandle, TimerWheel};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many crashes within `CRASH_WINDOW` put a backend into the `Failed` phase.
pub const CRASH_LIMIT: usize = 3;
/// The window in which crashes are counted.
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long a backend that crashed too often is left alone.
pub const FAILED_PAUSE: Duration = Duration::from_secs(30);
/// The pause after a first failed start; it doubles with every further one in a row.
pub const START_BACKOFF_FIRST: Duration = Duration::from_secs(10);
/// The longest pause between failed starts.
pub const START_BACKOFF_MAX: Duration = Duration::from_secs(600);
/// How long a backend may take to exit after its stdin is closed, and after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// While a backend starts, requests waiting for it that carry a progress token get a
/// progress notification this often, so the client's own timeout does not fire.
pub const START_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The pause after `failures` failed starts in a row (10 s, 20 s, 40 s, … at most 10 min).
pub fn start_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    START_BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(START_BACKOFF_MAX)
}

/// Where a backend is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not running; the next request starts it.
    Stopped,
    /// Spawned; gangway's `initialize` is in flight. Requests queue.
    Starting,
    /// Initialized; requests flow.
    Ready,
    /// On the stop ladder (stdin closed, then SIGTERM, then SIGKILL). Requests queue and
    /// restart it once it has exited.
    Stopping,
    /// Crashed too often; requests are refused until the instant given.
    Failed {
        /// When it may be started again.
        until: Instant,
    },
}

/// What a lifecycle timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Tell the requests waiting for the start that it is still under way.
    StartProgress,
    /// Look whether the backend has been idle for its `idle_timeout`.
    Idle,
    /// The next rung of the stop ladder: send this signal.
    Stop(StopSignal),
}

/// A timer a [`Lifecycle`] set, handed back to it when due. It names the process it was
/// set for, so a timer of an earlier process is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakeup {
    generation: u64,
    step: Step,
}

impl Wakeup {
    /// What the timer is for.
    pub fn step(self) -> Step {
        self.step
    }
}

/// Why a backend in the `Failed` phase refuses requests for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    /// Its last `failures` starts in a row failed; it is tried again in `wait`.
    FailedStarts {
        /// Failed starts in a row.
        failures: u32,
        /// Until it may be started again.
        wait: Duration,
    },
    /// It crashed [`CRASH_LIMIT`] times within [`CRASH_WINDOW`]; it is left alone for
    /// `wait`.
    Crashed {
        /// Until it may be started again.
        wait: Duration,
    },
}

/// What a crash (or a failed start) did to the restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The process never answered `initialize`: this is failed start number `in_a_row`,
    /// and the next start waits `pause`.
    StartFailed {
        /// Failed starts in a row, this one included.
        in_a_row: u32,
        /// How long requests are refused before the next start.
        pause: Duration,
    },
    /// A crash of a process that had been ready, and the [`CRASH_LIMIT`]th within
    /// [`CRASH_WINDOW`]: requests are refused for [`FAILED_PAUSE`].
    TooOften,
    /// A crash of a process that had been ready; the next request starts it again.
    Restartable,
}

/// How a process's exit is to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// gangway stopped it (the stop ladder ran, and nothing had failed): it is stopped.
    Stopped,
    /// It exited on its own, or after gangway decided it failed: a crash, which the
    /// gateway reports with [`Lifecycle::on_crash`] once what waited on it is answered.
    Crashed,
}

/// What [`Lifecycle::begin_stop`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopDecision {
    /// Nothing runs that could be stopped (stopped, failed, or already stopping).
    NotRunning,
    /// The start was holding its spawn, so no process exists: it is stopped at once, and
    /// everything waiting for it is to be answered. `failing` says whether the start had
    /// failed (its waiting past `startup_timeout`), which counts as a failed start.
    Abandoned {
        /// The start had been declared failed.
        failing: bool,
    },
    /// The ladder began: close the process's stdin now; the SIGTERM timer is set.
    CloseStdin,
}

/// Whether a backend's spawn waits for the removal of its last container. docker refuses a
/// `--name` the user chose while a container of that name exists, so a start of such a
/// backend holds its spawn until the runtime reports that the removal it began ended. A
/// generated name is new at every start, so its spawn never waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SpawnGate {
    /// The runtime is removing the container of a process of it that ended.
    removing: bool,
    /// A start is under way whose spawn was not asked for yet.
    held: bool,
}

impl SpawnGate {
    /// The runtime began removing the container of a process that ended.
    fn removal_started(&mut self) {
        self.removing = true;
    }

    /// Every removal the runtime began ended: returns whether a held spawn may be asked
    /// for now.
    fn removal_ended(&mut self) -> bool {
        self.removing = false;
        std::mem::take(&mut self.held)
    }

    /// A start needs its process: returns whether the spawn may be asked for now; if not,
    /// it is held until [`SpawnGate::removal_ended`]. `fixed_name` says whether every
    /// start uses the same container name.
    fn may_spawn(&mut self, fixed_name: bool) -> bool {
        self.held = self.removing && fixed_name;
        !self.held
    }

    /// The start is given up: returns whether its spawn was held (then no process exists
    /// and none will be asked for).
    fn abandon(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }
}

/// One backend's lifecycle state and timers. Timers live in the gateway's wheel; the
/// methods that set or cancel one take the wheel and `wake`, which wraps a [`Wakeup`]
/// into the wheel's timer type. A due wakeup is handed back to the method for its
/// [`Step`], which refuses it when it was set for an earlier process or phase.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    /// Incremented at every start, so timers set for an earlier process are recognised.
    generation: u64,
    /// Whether the current process answered `initialize` (a failure before that is a
    /// failed start, which backs off longer than a crash).
    ready_seen: bool,
    /// Starts in a row that failed before `initialize` was answered.
    start_failures: u32,
    /// gangway decided the process failed (initialize failed, output closed): its exit
    /// then counts as a crash even though gangway stopped it.
    failing: bool,
    /// A reload changed how it is spawned: the running process stops once idle, and the
    /// next request starts the new one.
    restart: bool,
    /// Recent crash instants, for the restart back-off.
    crashes: VecDeque<Instant>,
    /// The last failure, quoted while the backend is `Failed`.
    last_error: Option<String>,
    /// When the current process was started.
    started_at: Instant,
    /// How long the last start took, from the spawn to the answer to `initialize`.
    ready_after: Option<Duration>,
    /// When the last request to it was sent or finished.
    last_active: Instant,
    idle_timer: Option<TimerHandle>,
    stop_timer: Option<TimerHandle>,
    start_timer: Option<TimerHandle>,
    spawn_gate: SpawnGate,
}

impl Lifecycle {
    /// A stopped backend's life, with no history, at `now`.
    pub fn new(now: Instant) -> Lifecycle {
        Lifecycle {
            phase: Phase::Stopped,
            generation: 0,
            ready_seen: false,
            start_failures: 0,
            failing: false,
            restart: false,
            crashes: VecDeque::new(),
            last_error: None,
            started_at: now,
            ready_after: None,
            last_active: now,
            idle_timer: None,
            stop_timer: None,
            start_timer: None,
            spawn_gate: SpawnGate::default(),
        }
    }

    // ----- queries ----------------------------------------------------------------------

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether requests flow (`Ready`).
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether `initialize` is in flight (`Starting`).
    pub fn is_starting(&self) -> bool {
        self.phase == Phase::Starting
    }

    /// Whether a process is running for it (or being stopped).
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Starting | Phase::Ready | Phase::Stopping)
    }

    /// Whether its process still reads its input (`Starting` or `Ready`; a stopping
    /// one had its stdin closed).
    pub fn reads_input(&self) -> bool {
        matches!(self.phase, Phase::Starting | Phase::Ready)
    }

    /// Starts in a row that failed before `initialize` was answered.
    pub fn start_failures(&self) -> u32 {
        self.start_failures
    }

    /// The last failure (a crash or failed start), as reported.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// How long the last successful start took, from the spawn to the answer to
    /// `initialize`.
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    /// How long the current process has been starting at `now`.
    pub fn starting_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started_at)
    }

    /// Whether a reload asked for a new process once this one is idle.
    pub fn restart_pending(&self) -> bool {
        self.restart
    }

    /// When its current process was started, while one runs.
    pub fn running_since(&self) -> Option<Instant> {
        self.is_running().then_some(self.started_at)
    }

    /// When a ready process with nothing in flight would be stopped for idling, given its
    /// `idle_timeout`.
    pub fn idle_stop_at(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        let idle = idle_timeout?;
        self.is_ready()
            .then(|| self.last_active.checked_add(idle))
            .flatten()
    }

    // ----- activity and reloads -----------------------------------------------------------

    /// A request to it was sent or finished at `now`: the idle period starts again.
    pub fn touch(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// A reload changed how it is spawned: the running process is replaced once idle.
    pub fn want_restart(&mut self) {
        self.restart = true;
    }

    /// A reload changed its config, maybe to fix what made its starts fail: the failed
    /// starts are forgotten and, when that is why it is paused, the pause ends now.
    pub fn forget_failed_starts(&mut self) {
        if self.start_failures > 0 {
            self.start_failures = 0;
            if matches!(self.phase, Phase::Failed { .. }) {
                self.phase = Phase::Stopped;
            }
        }
    }

    /// Whether it may be used at `now`, or why it is paused. A pause that is over ends
    /// here (the phase becomes `Stopped`, so the next request starts it).
    pub fn check_available(&mut self, now: Instant) -> Result<(), Paused> {
        if let Phase::Failed { until } = self.phase {
            let wait = until.saturating_duration_since(now);
            if now < until && self.start_failures > 0 {
                let failures = self.start_failures;
                return Err(Paused::FailedStarts { failures, wait });
            }
            if now < until {
                return Err(Paused::Crashed { wait });
            }
            self.phase = Phase::Stopped;
        }
        Ok(())
    }

    // ----- starting -----------------------------------------------------------------------

    /// A new process starts at `now`: the timers of the last one are cancelled, the
    /// generation moves on (so their late wakeups are refused) and the phase is
    /// `Starting`. Then ask [`Lifecycle::may_spawn`] whether the spawn may go now.
    pub fn begin_start<T>(&mut self, now: Instant, timers: &mut TimerWheel<T>) {
        self.cancel_timers(timers);
        self.generation += 1;
        self.phase = Phase::Starting;
        self.failing = false;
        self.restart = false;
        self.started_at = now;
        self.ready_seen = false;
    }

    /// Whether the process of the start under way may be asked for now; if not, it is
    /// held until [`Lifecycle::container_removed`]. `fixed_name` says whether every start
    /// uses the same container name.
    pub fn may_spawn(&mut self, fixed_name: bool) -> bool {
        self.spawn_gate.may_spawn(fixed_name)
    }

    /// The runtime began removing the container of a process that ended.
    pub fn container_removal_started(&mut self) {
        self.spawn_gate.removal_started();
    }

    /// Every container removal the runtime began ended: returns whether the spawn of the
    /// start under way was held and may be asked for now.
    pub fn container_removed(&mut self) -> bool {
        self.spawn_gate.removal_ended() && self.phase == Phase::Starting
    }

    /// Sets the next start-progress wakeup, [`START_PROGRESS_EVERY`] from `now`.
    pub fn arm_start_progress<T>(
        &mut self,
        now: Instant,
        timers: &mut TimerWheel<T>,
        wake: impl FnOnce(Wakeup) -> T,
    ) {
        let w = self.wakeup(Step::StartProgress);
        self.start_timer = Some(timers.insert(now + START_PROGRESS_EVERY, wake(w)));
    }

    /// A [`Step::StartProgress`] wakeup is due: whether it is for the start still under
    /// way (then it is used up, and the caller tells the waiting requests and sets the
    /// next one).
    pub fn start_progress_due(&mut self, w: Wakeup) -> bool {
        if w.generation != self.generation || self.phase != Phase::Starting {
            return false;
        }
        self.start_timer = None;
        true
    }

    /// The process answered `initialize` at `now`: it is `Ready`, the failed starts are
    /// forgotten and the start-progress timer is cancelled. Returns how long the start
    /// took.
    pub fn on_ready<T>(&mut self, now: Instant, timers: &mut TimerWheel<T>) -> Duration {
        let took = now.saturating_duration_since(self.started_at);
        self.ready_after = Some(took);
        self.phase = Phase::Ready;
        self.ready_seen = true;
        self.start_failures = 0;
        if let Some(t) = self.start_timer.take() {
            timers.cancel(t);
        }
        took
    }

    /// gangway decided the process failed (it refused `initialize`, did not answer it in
    /// time, or closed its pipes): its exit will count as a crash even though gangway
    /// stops it. `error`, when given, is what the backend is quoted with while paused.
    pub fn mark_failing(&mut self, error: Option<String>) {
        self.failing = true;
        if error.is_some() {
            self.last_error = error;
        }
    }

    // ----- idle ---------------------------------------------------------------------------

    /// Sets the idle wakeup for `idle_timeout` after the last activity, when it is ready,
    /// has an idle timeout and none is set yet.
    pub fn arm_idle<T>(
        &mut self,
        idle_timeout: Option<Duration>,
        timers: &mut TimerWheel<T>,
        wake: impl FnOnce(Wakeup) -> T,
    ) {
        if self.phase != Phase::Ready || self.idle_timer.is_some() {
            return;
        }
        if let Some(idle) = idle_timeout {
            let w = self.wakeup(Step::Idle);
            self.idle_timer = Some(timers.insert(after(self.last_active, idle), wake(w)));
        }
    }

    /// A [`Step::Idle`] wakeup is due: whether it is for the current process, which is
    /// ready (only then may the caller look at whether it is idle).
    pub fn idle_fired(&mut self, w: Wakeup) -> bool {
        if w.generation != self.generation {
            return false;
        }
        self.idle_timer = None;
        self.phase == Phase::Ready
    }

    /// Whether nothing was sent to it or finished for `idle_timeout` up to `now`
    /// (activity since the wakeup was set pushes the deadline back).
    pub fn idle_due(&self, now: Instant, idle_timeout: Duration) -> bool {
        now >= after(self.last_active, idle_timeout)
    }

    // ----- stopping -----------------------------------------------------------------------

    /// Begins the stop ladder when a process is starting or ready (see [`StopDecision`]):
    /// the stdin close is the caller's, the SIGTERM wakeup [`STOP_GRACE`] later is set
    /// here.
    pub fn begin_stop<T>(
        &mut self,
        now: Instant,
        timers: &mut TimerWheel<T>,
        wake: impl FnOnce(Wakeup) -> T,
    ) -> StopDecision {
        if !self.reads_input() {
            return StopDecision::NotRunning;
        }
        if self.spawn_gate.abandon() {
            self.phase = Phase::Stopped;
            return StopDecision::Abandoned {
                failing: self.failing,
            };
        }
        self.phase = Phase::Stopping;
        let w = self.wakeup(Step::Stop(StopSignal::Term));
        self.stop_timer = Some(timers.insert(now + STOP_GRACE, wake(w)));
        StopDecision::CloseStdin
    }

    /// A [`Step::Stop`] wakeup is due: returns the signal to send when it is for the
    /// process still stopping (a stale one gives `None`). After SIGTERM, the SIGKILL
    /// wakeup is set [`STOP_GRACE`] later; SIGKILL is the last rung.
    pub fn stop_due<T>(
        &mut self,
        now: Instant,
        w: Wakeup,
        timers: &mut TimerWheel<T>,
        wake: impl FnOnce(Wakeup) -> T,
    ) -> Option<StopSignal> {
        let Step::Stop(signal) = w.step else {
            return None;
        };
        if w.generation != self.generation || self.phase != Phase::Stopping {
            return None;
        }
        self.stop_timer = None;
        if signal == StopSignal::Term {
            let next = self.wakeup(Step::Stop(StopSignal::Kill));
            self.stop_timer = Some(timers.insert(now + STOP_GRACE, wake(next)));
        }
        Some(signal)
    }

    /// Cancels the idle, start-progress and stop-ladder timers (the process is gone or
    /// being replaced), so no wakeup is left for them.
    pub fn cancel_timers<T>(&mut self, timers: &mut TimerWheel<T>) {
        for t in [
            self.idle_timer.take(),
            self.stop_timer.take(),
            self.start_timer.take(),
        ]
        .into_iter()
        .flatten()
        {
            timers.cancel(t);
        }
    }

    // ----- exits --------------------------------------------------------------------------

    /// The process exited (or its spawn failed). With `shutting_down`, or when gangway
    /// stopped it and nothing had failed, it is now `Stopped`; otherwise it crashed, and
    /// the phase is left for [`Lifecycle::on_crash`].
    pub fn on_exit(&mut self, shutting_down: bool) -> Exit {
        let deliberate = self.phase == Phase::Stopping && !self.failing;
        if shutting_down || deliberate {
            self.phase = Phase::Stopped;
            Exit::Stopped
        } else {
            Exit::Crashed
        }
    }

    /// The process died or could not start, at `now`, for `reason`: decides the restart
    /// back-off. A process that never answered `initialize` is a failed start, paused by
    /// [`start_backoff`]; one that had been ready is `Failed` for [`FAILED_PAUSE`] at its
    /// [`CRASH_LIMIT`]th crash within [`CRASH_WINDOW`], and otherwise restarts on demand.
    pub fn on_crash(&mut self, now: Instant, reason: String) -> Crash {
        self.phase = Phase::Stopped;
        self.failing = false;
        self.last_error = Some(reason);
        if !self.ready_seen {
            // A start that fails (or hangs) will most likely fail again: the next
            // requests are refused at once for a while rather than each waiting for it.
            self.start_failures = self.start_failures.saturating_add(1);
            let pause = start_backoff(self.start_failures);
            self.phase = Phase::Failed { until: now + pause };
            return Crash::StartFailed {
                in_a_row: self.start_failures,
                pause,
            };
        }
        if self.record_crash(now) {
            self.phase = Phase::Failed {
                until: now + FAILED_PAUSE,
            };
            return Crash::TooOften;
        }
        Crash::Restartable
    }

    /// Records a crash at `now` and returns whether the back-off limit is reached.
    fn record_crash(&mut self, now: Instant) -> bool {
        while self
            .crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > CRASH_WINDOW)
        {
            self.crashes.pop_front();
        }
        self.crashes.push_back(now);
        if self.crashes.len() >= CRASH_LIMIT {
            self.crashes.clear();
            true
        } else {
            false
        }
    }

    /// A wakeup for `step` of the current process.
    fn wakeup(&self, step: Step) -> Wakeup {
        Wakeup {
            generation: self.generation,
            step,
        }
    }

    /// Sets the phase directly, for tests that put a backend in a state without driving
    /// it there.
    #[cfg(test)]
    pub fn force_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A lifecycle started and ready at `t0`, with its wheel.
    fn ready(t0: Instant) -> (Lifecycle, TimerWheel<Wakeup>) {
        let mut timers = TimerWheel::new(t0);
        let mut life = Lifecycle::new(t0);
        life.begin_start(t0, &mut timers);
        assert!(life.may_spawn(false));
        life.on_ready(t0, &mut timers);
        (life, timers)
    }

    #[test]
    fn three_crashes_in_a_minute_trip_the_back_off() {
        let t0 = Instant::now();
        let (mut life, _) = ready(t0);
        assert!(!life.record_crash(t0));
        assert!(!life.record_crash(t0 + secs(61)));
        assert!(!life.record_crash(t0 + secs(62)));
        assert!(life.record_crash(t0 + secs(63)));
        assert!(life.crashes.is_empty());
    }

    #[test]
    fn crashes_of_a_ready_process_pause_it_only_at_the_limit() {
        let t0 = Instant::now();
        let (mut life, mut timers) = ready(t0);
        for n in 1..CRASH_LIMIT {
            assert_eq!(life.on_exit(false), Exit::Crashed);
            assert_eq!(life.on_crash(t0, format!("crash {n}")), Crash::Restartable);
            assert_eq!(life.phase(), Phase::Stopped);
            assert_eq!(life.check_available(t0), Ok(()));
            life.begin_start(t0, &mut timers);
            life.on_ready(t0, &mut timers);
        }
        assert_eq!(life.on_crash(t0, "last".into()), Crash::TooOften);
        assert_eq!(
            life.check_available(t0 + secs(1)),
            Err(Paused::Crashed {
                wait: FAILED_PAUSE - secs(1)
            })
        );
        assert_eq!(life.last_error(), Some("last"));
        assert_eq!(life.check_available(t0 + FAILED_PAUSE), Ok(()));
        assert_eq!(life.phase(), Phase::Stopped, "the pause ended");
    }

    #[test]
    fn failed_starts_back_off_doubling_until_the_maximum_and_a_ready_start_forgets_them() {
        assert_eq!(start_backoff(1), START_BACKOFF_FIRST);
        assert_eq!(start_backoff(2), START_BACKOFF_FIRST * 2);
        assert_eq!(start_backoff(40), START_BACKOFF_MAX);
        let t0 = Instant::now();
        let mut timers = TimerWheel::<Wakeup>::new(t0);
        let mut life = Lifecycle::new(t0);
        for n in 1..=3 {
            life.begin_start(t0, &mut timers);
            let pause = start_backoff(n);
            let crash = life.on_crash(t0, "no".into());
            assert_eq!(crash, Crash::StartFailed { in_a_row: n, pause });
            assert_eq!(
                life.check_available(t0),
                Err(Paused::FailedStarts {
                    failures: n,
                    wait: pause
                })
            );
        }
        life.begin_start(t0, &mut timers);
        life.on_ready(t0 + secs(2), &mut timers);
        assert_eq!(life.start_failures(), 0);
        assert_eq!(life.ready_after(), Some(secs(2)));
    }

    #[test]
    fn a_reload_ends_a_failed_start_pause_but_not_a_crash_pause() {
        let t0 = Instant::now();
        let mut timers = TimerWheel::<Wakeup>::new(t0);
        let mut life = Lifecycle::new(t0);
        life.begin_start(t0, &mut timers);
        life.on_crash(t0, "no".into());
        life.forget_failed_starts();
        assert_eq!(life.phase(), Phase::Stopped);

        let (mut life, _) = ready(t0);
        for _ in 0..CRASH_LIMIT {
            life.on_crash(t0, "crash".into());
        }
        life.forget_failed_starts();
        assert!(matches!(life.phase(), Phase::Failed { .. }));
    }

    #[test]
    fn the_stop_ladder_closes_stdin_then_terms_then_kills() {
        let t0 = Instant::now();
        let (mut life, mut timers) = ready(t0);
        assert_eq!(
            life.begin_stop(t0, &mut timers, |w| w),
            StopDecision::CloseStdin
        );
        assert_eq!(life.phase(), Phase::Stopping);
        assert_eq!(
            life.begin_stop(t0, &mut timers, |w| w),
            StopDecision::NotRunning
        );
        assert_eq!(
            timers.poll(t0 + STOP_GRACE - Duration::from_millis(1)),
            None
        );
        let term = timers.poll(t0 + STOP_GRACE).expect("the SIGTERM rung");
        let t1 = t0 + STOP_GRACE;
        assert_eq!(
            life.stop_due(t1, term, &mut timers, |w| w),
            Some(StopSignal::Term)
        );
        let kill = timers.poll(t1 + STOP_GRACE).expect("the SIGKILL rung");
        assert_eq!(
            life.stop_due(t1 + STOP_GRACE, kill, &mut timers, |w| w),
            Some(StopSignal::Kill)
        );
        assert_eq!(timers.next_deadline(), None, "SIGKILL is the last rung");
        assert_eq!(life.on_exit(false), Exit::Stopped);
        assert_eq!(life.phase(), Phase::Stopped);
    }

    #[test]
    fn timers_of_an_earlier_process_are_refused() {
        let t0 = Instant::now();
        let (mut life, mut timers) = ready(t0);
        life.begin_stop(t0, &mut timers, |w| w);
        let stale_stop = life.wakeup(Step::Stop(StopSignal::Term));
        life.arm_start_progress(t0, &mut timers, |w| w);
        let stale_progress = life.wakeup(Step::StartProgress);
        assert_eq!(life.on_exit(false), Exit::Stopped);
        life.begin_start(t0, &mut timers);
        assert_eq!(
            timers.next_deadline(),
            None,
            "a new start cancels the old timers"
        );
        assert!(!life.start_progress_due(stale_progress));
        life.on_ready(t0, &mut timers);
        let stale_idle = Wakeup {
            generation: life.generation - 1,
            step: Step::Idle,
        };
        assert!(!life.idle_fired(stale_idle));
        life.begin_stop(t0, &mut timers, |w| w);
        assert_eq!(life.stop_due(t0, stale_stop, &mut timers, |w| w), None);
    }

    #[test]
    fn idle_is_counted_from_the_last_activity() {
        let t0 = Instant::now();
        let (mut life, mut timers) = ready(t0);
        let idle = secs(60);
        life.arm_idle(None, &mut timers, |w| w);
        assert_eq!(timers.next_deadline(), None, "no idle_timeout, no wakeup");
        life.arm_idle(Some(idle), &mut timers, |w| w);
        life.arm_idle(Some(idle), &mut timers, |w| w);
        assert_eq!(timers.len(), 1, "one idle wakeup at a time");
        life.touch(t0 + secs(30));
        let w = timers.poll(t0 + idle).expect("idle wakeup");
        assert!(life.idle_fired(w));
        assert!(!life.idle_due(t0 + idle, idle), "activity pushed it back");
        assert!(life.idle_due(t0 + secs(90), idle));
        life.begin_stop(t0, &mut timers, |w| w);
        life.arm_idle(Some(idle), &mut timers, |w| w);
        assert_eq!(
            timers.len(),
            1,
            "only a ready backend idles (the SIGTERM rung)"
        );
    }

    #[test]
    fn a_process_that_failed_crashes_even_when_stopped_by_gangway() {
        let t0 = Instant::now();
        let (mut life, mut timers) = ready(t0);
        life.mark_failing(Some("closed its pipes".into()));
        life.begin_stop(t0, &mut timers, |w| w);
        assert_eq!(life.on_exit(false), Exit::Crashed);
        assert_eq!(
            life.on_exit(true),
            Exit::Stopped,
            "unless gangway shuts down"
        );
    }

    #[test]
    fn only_a_fixed_name_waits_for_the_removal_and_only_once() {
        let mut gate = SpawnGate::default();
        assert!(gate.may_spawn(true), "nothing is being removed");
        gate.removal_started();
        assert!(gate.may_spawn(false), "a generated name is free at once");
        assert!(!gate.may_spawn(true));
        assert!(gate.held);
        assert!(gate.removal_ended(), "the held spawn goes now");
        assert!(!gate.removal_ended(), "and is asked for only once");
        assert!(gate.may_spawn(true));

        gate.removal_started();
        assert!(!gate.may_spawn(true));
        assert!(gate.abandon(), "a held start is given up without a process");
        assert!(!gate.abandon());
        assert!(
            !gate.removal_ended(),
            "an abandoned start is not spawned later"
        );
    }

    #[test]
    fn a_stop_while_the_spawn_is_held_abandons_the_start() {
        let t0 = Instant::now();
        let mut timers = TimerWheel::<Wakeup>::new(t0);
        let mut life = Lifecycle::new(t0);
        life.container_removal_started();
        life.begin_start(t0, &mut timers);
        assert!(!life.may_spawn(true));
        life.mark_failing(None);
        assert_eq!(
            life.begin_stop(t0, &mut timers, |w| w),
            StopDecision::Abandoned { failing: true }
        );
        assert_eq!(life.phase(), Phase::Stopped);
        assert!(!life.container_removed(), "nothing is spawned later");
    }
}
