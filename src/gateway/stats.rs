//! What gangway counts about each backend, for `/metrics` and the status page: requests
//! by method and outcome, their latency, starts and how long they took, crashes, restarts
//! and idle stops. Labels stay low-cardinality: methods are a fixed list (tool names are
//! never used), outcomes a small enum.

use super::lifecycle::Phase;
use super::{Gateway, SessionId};
use crate::config::Scope;
use log::info;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram buckets; a last bucket holds the rest.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram over [`LATENCY_BOUNDS`], in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub counts: [u64; LATENCY_BOUNDS.len() + 1],
    /// The sum of the observations.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl Histogram {
    /// Adds one observation of `secs` seconds.
    pub fn observe(&mut self, secs: f64) {
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.counts[i] += 1;
        self.sum += secs;
        self.count += 1;
    }

    /// The `q` quantile (0 to 1), estimated as the upper bound of the bucket it falls in
    /// (the largest bound for the overflow bucket); `None` with no observation.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS[i.min(LATENCY_BOUNDS.len() - 1)]);
            }
        }
        LATENCY_BOUNDS.last().copied()
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// How a client's request to a backend ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A result.
    Ok,
    /// A result with `isError: true` (a tool that failed).
    ToolError,
    /// A JSON-RPC error from the backend.
    Error,
    /// No answer within the backend's `timeout`.
    Timeout,
    /// The backend failed (crashed, could not start, was stopped) before answering.
    Failed,
    /// The client cancelled it, or its session ended.
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The method label of a request: one of the methods clients send to backends, else
/// `other` (so a client cannot grow the label set).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "tools/call",
        "tools/list",
        "resources/read",
        "resources/list",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/get",
        "prompts/list",
        "completion/complete",
        "logging/setLevel",
        "ping",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    ];
    KNOWN
        .iter()
        .find(|&&m| m == method)
        .copied()
        .unwrap_or("other")
}

/// The counters of one backend (of one process slot: a session-scoped backend's
/// processes each have theirs, summed by name when reported).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendStats {
    /// Client requests by (method label, outcome).
    pub requests: BTreeMap<(&'static str, Outcome), u64>,
    /// Time from writing a request to the backend to its answer.
    pub latency: Histogram,
    /// Processes started.
    pub starts: u64,
    /// Starts that failed before `initialize` was answered.
    pub start_failures: u64,
    /// Time from spawn to the answer to `initialize` (cold start).
    pub start_seconds: Histogram,
    /// Exits gangway did not ask for (and failed starts).
    pub crashes: u64,
    /// Starts that followed a crash.
    pub restarts: u64,
    /// Stops for being idle.
    pub idle_stops: u64,
    /// The last exit was a crash, so the next start is a restart.
    pub(super) crashed_last: bool,
}

impl BackendStats {
    /// Counts a client request that ended with `outcome`, answered `latency` seconds after
    /// it was written to the backend (`None` if it never was).
    pub fn request(&mut self, method: &'static str, outcome: Outcome, latency: Option<f64>) {
        *self.requests.entry((method, outcome)).or_default() += 1;
        if let Some(secs) = latency {
            self.latency.observe(secs);
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &BackendStats) {
        for (k, v) in &other.requests {
            *self.requests.entry(*k).or_default() += v;
        }
        self.latency.merge(&other.latency);
        self.start_seconds.merge(&other.start_seconds);
        self.starts += other.starts;
        self.start_failures += other.start_failures;
        self.crashes += other.crashes;
        self.restarts += other.restarts;
        self.idle_stops += other.idle_stops;
    }

    /// Requests counted, of any outcome.
    pub fn calls(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests that did not end with a result (tool errors count as errors).
    pub fn errors(&self) -> u64 {
        self.requests
            .iter()
            .filter(|((_, o), _)| *o != Outcome::Ok && *o != Outcome::Cancelled)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What gangway reports of itself at one instant: the status page, `/status.json` and
/// `/metrics` are rendered from it. It holds no secret: commands are reduced to their
/// program's name, and stderr lines were redacted when they were kept.
#[derive(Debug, Clone)]
pub struct Status {
    /// Client sessions open.
    pub sessions: usize,
    /// Configured backends in config order (a session-scoped backend's processes summed
    /// into its entry), then the ones a reload removed that still run.
    pub backends: Vec<BackendStatus>,
    /// Bytes waiting to be written to backends' stdin, and to sessions.
    pub queued_to_backends: usize,
    /// Bytes waiting for clients.
    pub queued_to_clients: usize,
}

/// One backend in a [`Status`].
#[derive(Debug, Clone)]
pub struct BackendStatus {
    /// Its name.
    pub name: String,
    /// `stopped`, `starting`, `ready`, `stopping`, `failing` (backing off) or `disabled`.
    pub state: &'static str,
    /// While failing: how long until gangway tries again.
    pub retry_in: Option<Duration>,
    /// The program it runs (the first word of its command, no arguments).
    pub program: String,
    /// It runs `docker run`.
    pub docker: bool,
    /// `"scope": "session"`: a process per session.
    pub per_session: bool,
    /// Processes running (for a session-scoped backend, one per session using it).
    pub running: usize,
    /// The pid and container of its process (the first, for a session-scoped one).
    pub process: Option<(i32, Option<String>)>,
    /// How long its process has run.
    pub uptime: Option<Duration>,
    /// When it will be stopped for idling, if nothing comes meanwhile.
    pub idle_stop_in: Option<Duration>,
    /// Requests in flight.
    pub in_flight: usize,
    /// The last failure, and the last lines of its stderr.
    pub last_error: Option<String>,
    /// The last lines it wrote to stderr (redacted).
    pub stderr_tail: Vec<String>,
    /// What it did.
    pub stats: BackendStats,
}

impl Gateway {
    /// Backend `b` (a slot the runtime spawned) runs as process `pid`, in container
    /// `container` when it runs `docker run`: for the status page only.
    pub fn on_spawned(&mut self, b: usize, pid: i32, container: Option<String>) {
        if let Some(be) = self.backends.get_mut(b) {
            be.process = Some((pid, container));
        }
    }

    /// The sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Who session `s`'s client is (clientInfo name and version) and the protocol
    /// version it speaks, once it initialized.
    pub fn session_client(&self, s: SessionId) -> (Option<&str>, Option<&'static str>) {
        self.sessions
            .get(&s)
            .map_or((None, None), |c| (c.client.as_deref(), c.version))
    }

    /// A report of every backend and session at `now`.
    pub fn status(&self, now: Instant) -> Status {
        let mut backends: Vec<BackendStatus> = Vec::new();
        let slots = (0..self.backends.len()).filter(|&b| {
            let be = &self.backends[b];
            self.order.contains(&b) || be.instance_of.is_some() || be.lifecycle.is_running()
        });
        for b in slots {
            let be = &self.backends[b];
            let name = be.name().to_string();
            let owner = be.instance_of.map(|(listed, _)| listed);
            let entry = match backends.iter().position(|e| e.name == name) {
                Some(i) => i,
                None => {
                    backends.push(self.backend_status(owner.unwrap_or(b), now));
                    backends.len() - 1
                }
            };
            if owner.is_some() {
                let e = &mut backends[entry];
                e.stats.merge(&be.stats);
                e.in_flight += be.in_flight();
                if be.lifecycle.is_running() {
                    e.running += 1;
                    e.state = "ready";
                    e.process = e.process.clone().or_else(|| be.process.clone());
                }
            }
        }
        for (name, why) in &self.disabled {
            backends.push(BackendStatus {
                name: name.clone(),
                state: "disabled",
                retry_in: None,
                program: String::new(),
                docker: false,
                per_session: false,
                running: 0,
                process: None,
                uptime: None,
                idle_stop_in: None,
                in_flight: 0,
                last_error: Some(why.clone()),
                stderr_tail: Vec::new(),
                stats: BackendStats::default(),
            });
        }
        Status {
            sessions: self.sessions.len(),
            backends,
            queued_to_backends: self.out.backends.iter().map(|o| o.len()).sum(),
            queued_to_clients: self.sessions.values().map(|s| s.out.len()).sum(),
        }
    }

    fn backend_status(&self, b: usize, now: Instant) -> BackendStatus {
        let be = &self.backends[b];
        let life = &be.lifecycle;
        let (state, retry_in) = match life.phase() {
            _ if be.config.disabled => ("disabled", None),
            Phase::Stopped => ("stopped", None),
            Phase::Starting => ("starting", None),
            Phase::Ready => ("ready", None),
            Phase::Stopping => ("stopping", None),
            Phase::Failed { until } => ("failing", Some(until.saturating_duration_since(now))),
        };
        let per_session = be.config.scope == Scope::Session;
        BackendStatus {
            name: be.name().to_string(),
            state,
            retry_in,
            program: be
                .config
                .shown_command()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
            docker: be.config.runs_docker(),
            per_session,
            running: usize::from(life.is_running() && !per_session),
            process: be.process.clone(),
            uptime: life
                .running_since()
                .map(|t| now.saturating_duration_since(t)),
            idle_stop_in: (be.in_flight() == 0)
                .then(|| life.idle_stop_at(be.config.idle_timeout))
                .flatten()
                .map(|t| t.saturating_duration_since(now)),
            in_flight: be.in_flight(),
            last_error: life.last_error().map(str::to_string),
            stderr_tail: be.stderr_lines(),
            stats: be.stats.clone(),
        }
    }

    /// Starts backend `name` now (retrying at once if it is backing off after failures);
    /// a running one is left alone.
    ///
    /// # Errors
    ///
    /// When no backend has that name, it is disabled, or it runs one process per session.
    pub fn start_backend(&mut self, now: Instant, name: &str) -> Result<(), String> {
        let b = self.listed_backend(name)?;
        let be = &mut self.backends[b];
        be.warm_held = false;
        if !be.lifecycle.is_running() {
            be.lifecycle.forget_failed_starts();
            self.available(now, b)?;
            self.start(now, b);
        }
        self.settle(now);
        Ok(())
    }

    /// Stops backend `name` now (its requests in flight are answered with an error), or
    /// for a session-scoped one every process of it.
    ///
    /// # Errors
    ///
    /// When no backend has that name.
    pub fn stop_backend(&mut self, now: Instant, name: &str) -> Result<(), String> {
        let b = self.listed_backend(name)?;
        let slots: Vec<usize> = (0..self.backends.len())
            .filter(|&i| i == b || self.backends[i].instance_of.is_some_and(|(of, _)| of == b))
            .collect();
        self.backends[b].warm_held = true;
        for i in slots {
            self.backends[i].start_after_stop = false;
            if self.backends[i].lifecycle.is_running() {
                info!("stopping backend '{name}' as asked");
                self.stop(now, i);
            }
        }
        self.settle(now);
        Ok(())
    }

    /// Restarts backend `name`: stops it and starts a new process once it has exited (a
    /// stopped one is started).
    ///
    /// # Errors
    ///
    /// As [`Gateway::start_backend`].
    pub fn restart_backend(&mut self, now: Instant, name: &str) -> Result<(), String> {
        let b = self.listed_backend(name)?;
        if !self.backends[b].lifecycle.is_running() {
            return self.start_backend(now, name);
        }
        info!("restarting backend '{name}' as asked");
        self.backends[b].start_after_stop = true;
        self.stop(now, b);
        self.settle(now);
        Ok(())
    }

    /// The listed backend named `name`, for the controls.
    fn listed_backend(&self, name: &str) -> Result<usize, String> {
        if let Some((_, why)) = self.disabled.iter().find(|(n, _)| n == name) {
            return Err(format!("backend {name:?} is disabled: {why}"));
        }
        let b = self
            .order
            .iter()
            .copied()
            .find(|&b| self.backends[b].name() == name)
            .ok_or_else(|| format!("no backend named {name:?}"))?;
        let be = &self.backends[b];
        if be.config.disabled {
            return Err(format!("backend {name:?} is disabled in the config"));
        }
        if (be.config.scope == Scope::Session) && !self.backends[b].lifecycle.is_running() {
            return Err(format!(
                "backend {name:?} runs a process per session (\"scope\": \"session\"): each session starts its own"
            ));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..98 {
            h.observe(0.002);
        }
        h.observe(0.3);
        h.observe(100.0);
        assert_eq!(h.quantile(0.5), Some(0.0025));
        assert_eq!(h.quantile(0.99), Some(0.5));
        assert_eq!(
            h.quantile(1.0),
            Some(30.0),
            "the overflow bucket reports the last bound"
        );
        assert_eq!(h.count, 100);
        assert!((h.sum - (98.0 * 0.002 + 100.3)).abs() < 1e-9);
    }

    #[test]
    fn methods_outside_the_list_share_one_label() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/made-up-by-a-client"), "other");
    }

    #[test]
    fn merged_stats_add_up_and_errors_leave_out_results_and_cancels() {
        let mut a = BackendStats::default();
        a.request("tools/call", Outcome::Ok, Some(0.01));
        a.request("tools/call", Outcome::ToolError, Some(0.02));
        a.request("tools/call", Outcome::Cancelled, None);
        let mut b = BackendStats::default();
        b.request("tools/call", Outcome::Ok, Some(0.01));
        b.request("prompts/get", Outcome::Timeout, None);
        b.starts = 2;
        a.merge(&b);
        assert_eq!(a.calls(), 5);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.requests[&("tools/call", Outcome::Ok)], 2);
        assert_eq!(a.latency.count, 3);
        assert_eq!(a.starts, 2);
    }
}
