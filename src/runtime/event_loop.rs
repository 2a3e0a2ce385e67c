//! The mio loop: turns readiness into gateway events, and gateway output and actions into
//! writes, spawns and signals. One thread; it sleeps until a source is ready or the next
//! deadline is due.

use super::guard;
use super::http::Serve;
use super::notify::Systemd;
use super::process::{self, Spawned};
use super::remote::{Remote, RemoteEvent, Transport, FAREWELL, REMOTE_BASE, SLOTS};
use super::stdio::{ClientIn, ClientOut};
use crate::catalog::Catalog;
use crate::config::{self, Config};
use crate::docker::{self, Container, Instance};
use crate::gateway::{Action, Gateway, OutBuf, SessionId, StopSignal};
use crate::wire::frame::{Frame, LineFramer};
use mio::unix::pipe::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

const STDIN: Token = Token(0);
const STDOUT: Token = Token(1);
const SIGNALS: Token = Token(2);
/// Backend pipes use tokens from here on: three per backend (stdin, stdout, stderr).
const BACKEND_BASE: usize = 16;

/// Reading from backends pauses while this much output waits for the client, so memory
/// stays bounded when the client stops reading (the rest waits in the backends' pipes).
const CLIENT_HIGH_WATER: usize = crate::gateway::CLIENT_OUT_BOUND;
/// At most this many reads from one source per loop turn, so one busy pipe cannot starve
/// the others; a source cut short stays marked readable.
const READS_PER_TURN: usize = 16;
/// When a backend's leader has exited, at most this many reads (of up to 64 KiB) are
/// taken from each of its pipes for its last words: enough to empty a full pipe of the
/// largest size an unprivileged process can set (1 MiB). A process that escaped the kill
/// and keeps writing cannot hold the loop.
const EXIT_DRAIN_READS: usize = 16;
/// At most this many exchanges between a local client and the gateway per loop turn (a
/// shell command sends a few requests per answer; far more is a bug).
const LOCAL_ROUNDS_PER_TURN: usize = 1024;
/// stderr lines longer than this are cut (they are only logged).
const STDERR_LINE_MAX: usize = 64 * 1024;
/// How long gangway waits at exit for killed backends to be reaped.
const REAP_AT_EXIT: Duration = Duration::from_millis(500);
/// How long gangway keeps trying to hand its last answers to the client at exit.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// How long `gangway serve` lets requests in flight finish after SIGTERM.
const SERVE_DRAIN: Duration = Duration::from_secs(10);
/// How long gangway waits at exit for `docker rm -f` of its containers to finish.
const CLEANUP_AT_EXIT: Duration = Duration::from_secs(5);

/// Why gangway could not run.
#[derive(Debug)]
pub enum RunError {
    /// Setting up the event loop, stdio or signals failed.
    Setup(&'static str, io::Error),
    /// Waiting for events failed.
    Poll(io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Setup(what, e) => write!(f, "could not set up {what}: {e}"),
            RunError::Poll(e) => write!(f, "waiting for I/O failed: {e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Setup(_, e) | RunError::Poll(e) => Some(e),
        }
    }
}

/// The pipes of one running backend process.
struct BackendIo {
    pid: i32,
    /// Its spawn number, the marker its descendants carry.
    mark: u64,
    stdin: Option<Sender>,
    stdout: Option<Receiver>,
    stderr: Option<Receiver>,
    out_framer: LineFramer,
    err_framer: LineFramer,
    stdin_writable: bool,
    stdout_readable: bool,
    stderr_readable: bool,
    /// Whether epoll reported the pipe's writer gone (or an error): read it to EOF then,
    /// past short reads.
    stdout_closed: bool,
    stderr_closed: bool,
}

/// Runs gangway on this process's stdin/stdout until the client leaves or a signal stops
/// it. Returns once every backend has been stopped and reaped.
pub fn run(config: &Config) -> Result<(), RunError> {
    guard::become_subreaper();
    let poll = Poll::new().map_err(|e| RunError::Setup("the event loop", e))?;
    let client_in =
        ClientIn::new(poll.registry(), STDIN).map_err(|e| RunError::Setup("stdin", e))?;
    let client_out =
        ClientOut::new(poll.registry(), STDOUT).map_err(|e| RunError::Setup("stdout", e))?;
    let front = Front::Stdio {
        client_in,
        client_out,
        in_framer: LineFramer::new(config.max_message_bytes),
        client_gone: false,
    };
    let mut rt = Runtime::new(config, poll, front)?;
    rt.gw.keep_warm(Instant::now());
    rt.run()
}

/// Runs `gangway serve`: the gateway for every client that connects to `listener` over
/// HTTP (`front` decides what the requests mean), until a signal stops it. Returns once
/// every backend has been stopped and reaped.
///
/// Under systemd (`$NOTIFY_SOCKET` set) it says `READY=1` once it listens, `RELOADING=1`
/// and `READY=1` around a SIGHUP reload, `STOPPING=1` when a signal stops it, and
/// `WATCHDOG=1` every half of `$WATCHDOG_USEC` while the loop turns (see [`Systemd`]).
///
/// # Errors
///
/// When the event loop, the listener's registration, the signal handling or a wait fails.
pub fn run_serve(
    config: &Config,
    listener: mio::net::TcpListener,
    front: crate::http::HttpFront,
) -> Result<(), RunError> {
    guard::become_subreaper();
    let poll = Poll::new().map_err(|e| RunError::Setup("the event loop", e))?;
    let addr = listener.local_addr();
    let serve = Serve::new(poll.registry(), listener, front)
        .map_err(|e| RunError::Setup("the HTTP listener", e))?;
    let mut rt = Runtime::new(config, poll, Front::Serve(Box::new(serve)))?;
    rt.systemd = Systemd::from_env();
    // Listening, with every source registered: connections wait in the backlog for the
    // loop's first turn, just below.
    rt.systemd.ready(match addr {
        Ok(addr) => format!("serving on http://{addr}/mcp"),
        Err(_) => "serving".to_string(),
    });
    rt.gw.keep_warm(Instant::now());
    rt.run()
}

/// Runs the gateway for `client`, a client in this process, until it is done or a signal
/// stops it: the same engine as [`run`] (spawning, the stop ladder, container removal,
/// the process guard, the catalog), with the client's session in place of stdio. Returns
/// once every backend has been stopped and reaped.
///
/// # Errors
///
/// When the event loop, the signal handling or a wait fails.
pub fn run_local(config: &Config, client: &mut dyn LocalClient) -> Result<LocalRun, RunError> {
    guard::become_subreaper();
    let poll = Poll::new().map_err(|e| RunError::Setup("the event loop", e))?;
    let front = Front::Local {
        client,
        closed: false,
        interrupted: false,
    };
    let mut rt = Runtime::new(config, poll, front)?;
    rt.run()?;
    let end = match rt.front {
        Front::Local {
            interrupted: true, ..
        } => LocalEnd::Interrupted,
        _ => LocalEnd::Done,
    };
    Ok(LocalRun {
        end,
        gateway: rt.gw,
        catalog_error: rt.catalog_error,
    })
}

/// A client inside this process (a shell command: `gangway check`, `tools`, `call`): it
/// talks to the gateway through a session of its own, with MCP lines, as a client on
/// stdio would, and sees the same engine serve it.
pub trait LocalClient {
    /// The lines (requests, answers to the gateway's requests) to send now. Called when
    /// the session opens and after every line the gateway sent it.
    fn take_lines(&mut self) -> Vec<Vec<u8>>;
    /// A line from the gateway (an answer, a notification or a request), without its
    /// newline.
    fn on_line(&mut self, line: &[u8]);
    /// Whether the client is done: then its session is closed and everything the
    /// gateway started is stopped, as at a client's EOF.
    fn done(&self) -> bool;
}

/// What a local session leaves: how it ended, the gateway as it was at the end (what it
/// learned of the backends, for the command to report), and why the catalog could not be
/// saved, if it could not.
#[derive(Debug)]
pub struct LocalRun {
    /// How it ended.
    pub end: LocalEnd,
    /// The gateway, every backend stopped.
    pub gateway: Gateway,
    /// The last error saving the catalog.
    pub catalog_error: Option<String>,
}

/// How a local session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalEnd {
    /// The client was done.
    Done,
    /// A termination signal (SIGINT, SIGTERM, SIGHUP) stopped everything first; the
    /// client was handed the gateway's answers to what was still in flight.
    Interrupted,
}

/// Where the session's client is.
enum Front<'c> {
    /// This process's stdin and stdout.
    Stdio {
        client_in: ClientIn,
        client_out: ClientOut,
        in_framer: LineFramer,
        /// Client output is discarded once its stdout is gone.
        client_gone: bool,
    },
    /// HTTP clients, each a session of its own (`gangway serve`).
    Serve(Box<Serve>),
    /// A client in this process.
    Local {
        client: &'c mut dyn LocalClient,
        /// The client said it is done and its session was closed.
        closed: bool,
        /// A termination signal arrived.
        interrupted: bool,
    },
}

struct Runtime<'c> {
    poll: Poll,
    gw: Gateway,
    max_line: usize,
    front: Front<'c>,
    /// The gateway session of the client.
    session: SessionId,
    signals: Signals,
    /// The signal pipe was reported readable since it was last drained (true at first):
    /// it is read only then, not with a syscall every loop turn.
    signals_ready: bool,
    backends: Vec<Option<BackendIo>>,
    /// Backends reached by URL, in the slots of the backends that are remote.
    remotes: Vec<Option<Remote>>,
    /// Stopped remote backends whose session-ending DELETE is under way, by backend.
    farewells: Vec<(usize, Remote)>,
    /// Docker bookkeeping; `None` when no backend runs `docker run`.
    docker: Option<Docker>,
    /// The config file, read again on SIGHUP.
    config_path: std::path::PathBuf,
    /// Where the catalog is saved; `None` when it is off.
    catalog_path: Option<std::path::PathBuf>,
    /// The last error saving the catalog; after the first, failures are logged quietly.
    catalog_error: Option<String>,
    /// The `http.listen` of the config serving started with (a reload cannot move it).
    http_listen: Option<String>,
    /// The service manager, told of readiness, reloads and stops (serve only).
    systemd: Systemd,
}

/// What the runtime tracks for docker backends: who this instance is, each backend's
/// current container, and the `docker` commands running on the side.
struct Docker {
    instance: Instance,
    /// Starts so far, numbering generated container names.
    starts: u64,
    /// The container of each backend's current (or last, until removed) process.
    containers: Vec<Option<Container>>,
    /// `docker rm -f` commands, and lookups that precede them, still running: (pid,
    /// backend it was for). The gateway hears when a backend's last one ends.
    removals: Vec<(i32, Option<usize>)>,
    /// Lookups of user-named containers still running (their pids are in `removals` too):
    /// (pid, output file, the container).
    lookups: Vec<(i32, File, Container)>,
    /// The startup scan for containers of dead instances: its pid and its output file.
    scan: Option<(i32, File)>,
    /// How the scan reaches the daemon (the first docker backend's program and global
    /// options); stale containers are removed the same way.
    daemon: Container,
}

impl Docker {
    /// Bookkeeping for `gw`'s docker backends; `None` while it has none. Starts the scan
    /// for containers left by instances that are gone.
    fn for_gateway(gw: &Gateway) -> Option<Docker> {
        let n = gw.backend_count();
        let cfg = (0..n)
            .filter_map(|b| gw.backend_config(b))
            .find(|c| docker::is_docker_run(c))?;
        let instance = Instance::current();
        let daemon = docker::launch(cfg, &instance, 0).container?;
        let scan = start_scan(&daemon);
        Some(Docker {
            instance,
            starts: 0,
            containers: vec![None; n],
            removals: Vec::new(),
            lookups: Vec::new(),
            scan,
            daemon,
        })
    }
}

impl<'c> Runtime<'c> {
    fn new(config: &Config, poll: Poll, front: Front<'c>) -> Result<Runtime<'c>, RunError> {
        let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| RunError::Setup("signal handling", e))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| RunError::Setup("signal handling", e))?;
        let mut gw = Gateway::new(config, Instant::now(), crate::catalog::now_secs());
        let session = match front {
            Front::Stdio { .. } => gw.open_session(),
            Front::Local { .. } => gw.open_shell_session(),
            // The HTTP front opens a session per client; this one names none.
            Front::Serve(_) => SessionId(u32::MAX),
        };
        let catalog = config.catalog.as_deref().map(Catalog::load);
        // A shell command learns every list of what it starts, as serving does with a
        // catalog; with the catalog off, that one lives in memory only (it has no path).
        let catalog = match front {
            Front::Local { .. } => Some(catalog.unwrap_or_default()),
            Front::Stdio { .. } | Front::Serve(_) => catalog,
        };
        gw.set_catalog(catalog);
        let docker = Docker::for_gateway(&gw);
        let mut front = front;
        if let Front::Serve(serve) = &mut front {
            serve.front.set_docker_needed(docker.is_some());
            if docker.as_ref().is_some_and(|d| d.scan.is_none()) {
                serve
                    .front
                    .set_docker(Instant::now(), Err("could not run `docker ps`".into()));
            }
        }
        Ok(Runtime {
            poll,
            backends: (0..gw.backend_count()).map(|_| None).collect(),
            remotes: (0..gw.backend_count()).map(|_| None).collect(),
            farewells: Vec::new(),
            gw,
            max_line: config.max_message_bytes,
            front,
            session,
            signals,
            signals_ready: true,
            docker,
            config_path: config.path.clone(),
            catalog_path: config.catalog.clone(),
            catalog_error: None,
            http_listen: config.http.listen.clone(),
            systemd: Systemd::default(),
        })
    }

    /// Reads the config file again and applies it (SIGHUP). A file that fails to load is
    /// reported and the running config kept.
    fn reload(&mut self, now: Instant) {
        if !self.gw.wants_client_input() {
            log::info!("SIGHUP received while shutting down; not reloading");
            return;
        }
        log::info!("SIGHUP received: reloading {}", self.config_path.display());
        let config = match Config::load(&self.config_path, &config::process_env) {
            Ok(c) => c,
            Err(e) => {
                log::error!("config reload failed; keeping the running config. {e}");
                return;
            }
        };
        if config.max_message_bytes != self.max_line {
            log::warn!(
                "reload: max_message_bytes changed; it takes effect when gangway is restarted"
            );
        }
        self.gw.reload(now, &config);
        if let Front::Serve(serve) = &mut self.front {
            serve
                .front
                .update_settings(crate::http::Settings::from_config(&config));
            if config.http.listen != self.http_listen {
                log::warn!("reload: http.listen changed; the listening address changes when gangway serve is restarted");
            }
        }
        if config.catalog != self.catalog_path {
            self.catalog_path.clone_from(&config.catalog);
            self.gw
                .set_catalog(self.catalog_path.as_deref().map(Catalog::load));
        }
        self.grow_slots();
    }

    /// Gives every backend the gateway knows a slot (a reload adds backends, and a
    /// session-scoped backend gets one per session).
    fn grow_slots(&mut self) {
        let n = self.gw.backend_count();
        if self.backends.len() < n {
            self.backends.resize_with(n, || None);
        }
        if self.remotes.len() < n {
            self.remotes.resize_with(n, || None);
        }
        match self.docker.as_mut() {
            Some(d) if d.containers.len() < n => d.containers.resize(n, None),
            Some(_) => {}
            None => self.docker = Docker::for_gateway(&self.gw),
        }
    }

    /// Writes the catalog when the gateway changed it.
    fn save_catalog(&mut self) {
        let (Some(path), Some(catalog)) = (self.catalog_path.as_ref(), self.gw.catalog_to_save())
        else {
            return;
        };
        match catalog.save(path) {
            Ok(()) => {
                self.catalog_error = None;
                log::debug!("catalog saved to {}", path.display());
            }
            Err(e) if self.catalog_error.is_none() => {
                self.catalog_error = Some(e.to_string());
                log::warn!("could not save the tool catalog: {e}. Lists will be fetched from the backends again next time; set \"catalog\" in the config to a writable path, or false to turn it off");
            }
            Err(e) => {
                self.catalog_error = Some(e.to_string());
                log::debug!("could not save the tool catalog: {e}");
            }
        }
    }

    fn run(&mut self) -> Result<(), RunError> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            if std::mem::take(&mut self.signals_ready) {
                self.handle_signals(now);
            }
            self.read_client(now);
            if let Front::Serve(serve) = &mut self.front {
                serve.read(self.poll.registry(), now, &mut self.gw);
                if serve.front.take_probe_request() {
                    self.probe_docker(now);
                }
            }
            for b in 0..self.backends.len() {
                self.read_backend(now, b);
            }
            self.drive_farewells(now);
            self.gw.on_timer(now);
            if let Front::Serve(serve) = &mut self.front {
                serve.front.on_timer(now, &mut self.gw);
            }
            self.systemd.on_timer(now);
            if self.apply_actions(now) {
                self.finish();
                return Ok(());
            }
            self.write_all(now);
            if self.apply_actions(now) {
                self.finish();
                return Ok(());
            }
            self.save_catalog();
            let timeout = if self.has_ready_work() {
                Some(Duration::ZERO)
            } else {
                let front = match &self.front {
                    Front::Serve(serve) => serve.front.next_deadline(),
                    _ => None,
                };
                let remote = self.all_remotes().filter_map(Remote::next_deadline).min();
                let next = [
                    self.gw.next_deadline(),
                    front,
                    self.systemd.next_deadline(),
                    remote,
                ]
                .into_iter()
                .flatten()
                .min();
                next.map(|d| d.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RunError::Poll(e)),
            }
            for ev in events.iter() {
                self.mark_ready(ev);
            }
        }
    }

    /// Whether something can be done without waiting (a source was cut short, or stdin
    /// is a file that is always readable).
    fn has_ready_work(&self) -> bool {
        let client_paused = !self.may_read_client();
        let backend_paused = self.client_paused_backends();
        // The HTTP front gates each connection itself (`HttpFront::wants_input`); the
        // runtime's own session is not a client of it, so its pause does not apply there.
        let client_readable = match &self.front {
            Front::Stdio { client_in, .. } => client_in.readable && !client_paused,
            Front::Serve(serve) => serve.has_ready_work(),
            Front::Local { .. } => false,
        };
        let local_output = matches!(self.front, Front::Local { closed: false, .. })
            && self.gw.session_backlog(self.session) > 0;
        let remote_work = self.all_remotes().any(Remote::has_ready_work);
        local_output
            || remote_work
            || client_readable
            || self
                .backends
                .iter()
                .flatten()
                .any(|io| io.stderr_readable || (io.stdout_readable && !backend_paused))
    }

    fn mark_ready(&mut self, ev: &mio::event::Event) {
        let token = ev.token();
        // A pipe whose writer is gone: read it to the end, even past a short read.
        let closed = ev.is_read_closed() || ev.is_error();
        let readable = ev.is_readable() || closed;
        let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
        if let Front::Serve(serve) = &mut self.front {
            if serve.mark_ready(token, readable, writable) {
                return;
            }
        }
        match token {
            STDIN | STDOUT => {
                if let Front::Stdio {
                    client_in,
                    client_out,
                    ..
                } = &mut self.front
                {
                    if token == STDIN {
                        client_in.readable |= readable;
                        client_in.closed |= closed;
                    } else {
                        client_out.writable |= writable;
                    }
                }
            }
            SIGNALS => self.signals_ready = true,
            Token(t) if t >= REMOTE_BASE => {
                let (b, i) = ((t - REMOTE_BASE) / SLOTS, (t - REMOTE_BASE) % SLOTS);
                let remote = if i == FAREWELL {
                    self.farewells
                        .iter_mut()
                        .find(|(x, _)| *x == b)
                        .map(|(_, r)| r)
                } else {
                    self.remotes.get_mut(b).and_then(Option::as_mut)
                };
                if let Some(r) = remote {
                    r.mark(i, readable, writable);
                }
            }
            Token(t) if t >= BACKEND_BASE => {
                let b = (t - BACKEND_BASE) / 3;
                if let Some(Some(io)) = self.backends.get_mut(b) {
                    match (t - BACKEND_BASE) % 3 {
                        0 => io.stdin_writable |= writable,
                        1 => {
                            io.stdout_readable |= readable;
                            io.stdout_closed |= closed;
                        }
                        _ => {
                            io.stderr_readable |= readable;
                            io.stderr_closed |= closed;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn handle_signals(&mut self, now: Instant) {
        let mut child_exited = false;
        let mut terminate = false;
        for sig in self.signals.pending() {
            match sig {
                SIGCHLD => child_exited = true,
                SIGTERM | SIGINT => terminate = true,
                // A shell command has no config to reload: its user hung up.
                SIGHUP if matches!(self.front, Front::Local { .. }) => terminate = true,
                SIGHUP => {
                    // Not while shutting down: systemd heard STOPPING=1 already.
                    let live = self.gw.wants_client_input();
                    if live {
                        self.systemd.reloading();
                    }
                    self.reload(now);
                    if live {
                        self.systemd.reloaded();
                    }
                }
                _ => {}
            }
        }
        if terminate {
            if let Front::Serve(serve) = &mut self.front {
                // The first signal drains: no new clients or requests, those in flight
                // may finish; a second one stops at once.
                if !serve.stopping() {
                    serve.front.set_stopping();
                    serve.stop_listening(self.poll.registry());
                    log::info!(
                        "termination signal received; no longer accepting, finishing requests in flight (up to {} s; send it again to stop at once)",
                        SERVE_DRAIN.as_secs()
                    );
                    self.systemd.stopping();
                    self.gw.on_drain(now, SERVE_DRAIN);
                    terminate = false;
                }
            }
        }
        if terminate {
            if let Front::Local { interrupted, .. } = &mut self.front {
                *interrupted = true;
            }
            log::info!("termination signal received; stopping backends");
            self.systemd.stopping();
            self.gw.on_terminate(now);
        }
        if child_exited {
            self.reap(now);
        }
    }

    fn reap(&mut self, now: Instant) {
        for exit in process::reap() {
            let Some(b) = self
                .backends
                .iter()
                .position(|io| io.as_ref().is_some_and(|io| io.pid == exit.pid))
            else {
                if let Some(b) = self.docker_exit(exit.pid, &exit.status) {
                    self.gw.on_container_removed(b);
                }
                continue;
            };
            // Whatever the leader left behind, in its group or not, is orphaned now: kill
            // it first, so nothing keeps writing while the pipes are read.
            self.kill_leftovers(b);
            // Its last words may still sit in the pipes: hand them on before the exit.
            if let Some(io) = self.backends[b].as_mut() {
                io.stdout_readable = true;
                io.stderr_readable = true;
                io.stdout_closed = true;
                io.stderr_closed = true;
            }
            self.read_backend_pipes(now, b, true, EXIT_DRAIN_READS, true);
            if let Some(io) = self.backends[b].as_ref() {
                if io.stdout_readable || io.stderr_readable {
                    log::warn!(
                        "backend '{}' exited leaving more output than gangway reads after an exit ({EXIT_DRAIN_READS} reads per pipe); the rest was dropped",
                        backend_name(&self.gw, b)
                    );
                }
            }
            if let Some(mut io) = self.backends[b].take() {
                self.deregister(&mut io);
            }
            if self.remove_container(b) {
                self.gw.on_container_removal_started(b);
            }
            self.gw.on_backend_exit(now, b, &exit.status);
        }
    }

    fn may_read_client(&self) -> bool {
        self.gw.accepts_client_input(Instant::now(), self.session)
    }

    fn read_client(&mut self, now: Instant) {
        for _ in 0..READS_PER_TURN {
            if !self.may_read_client() {
                return;
            }
            let Front::Stdio {
                client_in,
                in_framer,
                ..
            } = &mut self.front
            else {
                return;
            };
            if !client_in.readable {
                return;
            }
            match client_in.read_into(in_framer) {
                Ok(0) => {
                    client_in.readable = false;
                    self.client_frames(now, true);
                    let Front::Stdio { client_in, .. } = &mut self.front else {
                        return;
                    };
                    client_in.close(self.poll.registry());
                    let from_file = !client_in.pollable;
                    self.gw.on_client_eof(now, from_file);
                    return;
                }
                Ok(_) => {
                    // A short read emptied a pipe or socket (see `drain`); a file is
                    // read until EOF, a terminal until it would block.
                    let drained = in_framer.read_was_short() && client_in.stream;
                    if drained && !client_in.closed {
                        client_in.readable = false;
                    }
                    self.arm_backends();
                    self.client_frames(now, false);
                    self.disarm_backends();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client_in.readable = false;
                    return;
                }
                Err(e) => {
                    log::error!("reading stdin failed: {e}; treating it as closed");
                    client_in.readable = false;
                    client_in.close(self.poll.registry());
                    self.gw.on_client_eof(now, false);
                    return;
                }
            }
        }
    }

    /// Lets the gateway write a request straight to each backend whose stdin is writable
    /// while it handles the lines of one read (see `OutBuf::arm`).
    fn arm_backends(&mut self) {
        for (b, io) in self.backends.iter().enumerate() {
            let Some((pipe, q)) = io
                .as_ref()
                .filter(|io| io.stdin_writable)
                .and_then(|io| io.stdin.as_ref())
                .zip(self.gw.out.backends.get_mut(b))
            else {
                continue;
            };
            // SAFETY: the queue is backend `b`'s stdin's, and `disarm_backends` runs before
            // anything can close that pipe: the gateway only decides while it handles lines,
            // and what it decides is carried out afterwards.
            unsafe { q.arm(pipe.as_raw_fd()) };
        }
    }

    /// Ends `arm_backends`: a backend a write found full is written again on its edge.
    fn disarm_backends(&mut self) {
        for (b, q) in self.gw.out.backends.iter_mut().enumerate() {
            if q.disarm() {
                if let Some(Some(io)) = self.backends.get_mut(b) {
                    io.stdin_writable = false;
                }
            }
        }
    }

    /// Hands the complete lines read from stdin to the gateway (at `eof`, an unterminated
    /// last line too).
    fn client_frames(&mut self, now: Instant, eof: bool) {
        let Front::Stdio { in_framer, .. } = &mut self.front else {
            return;
        };
        loop {
            let frame = match in_framer.next_frame() {
                Some(f) => f,
                None if eof => match in_framer.finish() {
                    Some(f) => f,
                    None => return,
                },
                None => return,
            };
            match frame {
                Frame::Line(range) => {
                    let line = &in_framer.buffer()[range];
                    self.gw.on_client_line(now, self.session, line);
                }
                Frame::Oversize { len } => {
                    self.gw.on_client_oversize(self.session, len, self.max_line);
                }
            }
        }
    }

    /// Whether reading backends' stdout waits for the client to read its output.
    fn client_paused_backends(&self) -> bool {
        let gone = match &self.front {
            Front::Stdio { client_gone, .. } => *client_gone,
            Front::Local { .. } | Front::Serve(_) => true,
        };
        self.gw.session_backlog(self.session) > CLIENT_HIGH_WATER && !gone
    }

    fn read_backend(&mut self, now: Instant, b: usize) {
        if self.remotes.get(b).is_some_and(Option::is_some) {
            return self.drive_remote(now, b);
        }
        let paused = self.client_paused_backends();
        self.read_backend_pipes(now, b, !paused, READS_PER_TURN, false);
    }

    /// Kills what backend `b`'s process left behind: its process group, and every process
    /// carrying its marker (those that left the group, `setsid` daemons).
    fn kill_leftovers(&self, b: usize) {
        let Some(io) = self.backends[b].as_ref() else {
            return;
        };
        process::signal_group(io.pid, Signal::SIGKILL);
        let n = guard::sweep(Some(io.mark));
        if n > 0 {
            log::info!(
                "killed {n} process(es) backend '{}' left running after it ended",
                backend_name(&self.gw, b)
            );
        }
    }

    fn read_backend_pipes(
        &mut self,
        now: Instant,
        b: usize,
        stdout_allowed: bool,
        max_reads: usize,
        exited: bool,
    ) {
        let Some(io) = self.backends[b].as_mut() else {
            return;
        };
        // stderr is only logged, so it is always drained: a backend blocked on a full
        // stderr pipe would stop answering.
        if io.stderr_readable {
            let gw = &mut self.gw;
            let outcome = drain(
                io.stderr.as_mut(),
                &mut io.err_framer,
                max_reads,
                io.stderr_closed,
                |f, frame| {
                    stderr_frame(gw, b, f, frame);
                    true
                },
            );
            io.stderr_readable = matches!(outcome, Drain::Capped);
            if matches!(outcome, Drain::Eof) {
                if let Some(mut pipe) = io.stderr.take() {
                    let _ = self.poll.registry().deregister(&mut pipe);
                }
            }
        }
        if stdout_allowed && io.stdout_readable {
            // While the client's stdout is writable the gateway may write answers straight
            // to it (see `OutBuf::arm`).
            let direct = matches!(
                &self.front,
                Front::Stdio { client_out, client_gone: false, .. } if client_out.writable
            );
            if let Some(q) = self.gw.session_out(self.session).filter(|_| direct) {
                // SAFETY: stdout is the stdio front's client output and is never closed.
                unsafe { q.arm(io::stdout().as_raw_fd()) };
            }
            let (gw, max_line, session) = (&mut self.gw, self.max_line, self.session);
            // After an exit its last words are read whatever waits for the client.
            let unbounded = exited
                || !matches!(
                    self.front,
                    Front::Stdio {
                        client_gone: false,
                        ..
                    }
                );
            let outcome = drain(
                io.stdout.as_mut(),
                &mut io.out_framer,
                max_reads,
                io.stdout_closed,
                |f, frame| {
                    backend_frame(gw, now, b, f, frame, max_line);
                    // Stop at the client's high water within the turn, not after it.
                    unbounded || gw.session_backlog(session) <= CLIENT_HIGH_WATER
                },
            );
            let blocked = self
                .gw
                .session_out(self.session)
                .is_some_and(OutBuf::disarm);
            if let Front::Stdio { client_out, .. } = &mut self.front {
                client_out.writable &= !blocked;
            }
            io.stdout_readable = matches!(outcome, Drain::Capped);
            match outcome {
                Drain::Eof => {
                    if let Some(mut pipe) = io.stdout.take() {
                        let _ = self.poll.registry().deregister(&mut pipe);
                    }
                    self.gw.on_backend_closed(now, b);
                }
                Drain::Failed(e) => log::warn!(
                    "reading backend '{}' stdout failed: {e}",
                    backend_name(&self.gw, b)
                ),
                Drain::Capped | Drain::WouldBlock => {}
            }
        }
    }

    /// Carries out the gateway's process work. Returns true when gangway should exit.
    fn apply_actions(&mut self, now: Instant) -> bool {
        let mut exit = false;
        loop {
            let actions = self.gw.take_actions();
            if actions.is_empty() {
                return exit;
            }
            self.grow_slots();
            for action in actions {
                match action {
                    Action::Spawn(b) => self.spawn(now, b),
                    Action::CloseStdin(b) | Action::Signal(b, _) if self.remotes[b].is_some() => {
                        self.remote_gone(now, b, "disconnected");
                    }
                    Action::CloseStdin(b) => {
                        if let Some(io) = self.backends[b].as_mut() {
                            if let Some(mut pipe) = io.stdin.take() {
                                let _ = self.poll.registry().deregister(&mut pipe);
                            }
                        }
                    }
                    Action::Signal(b, sig) => {
                        if let Some(io) = self.backends[b].as_ref() {
                            let sig = match sig {
                                StopSignal::Term => Signal::SIGTERM,
                                StopSignal::Kill => Signal::SIGKILL,
                            };
                            process::signal_group(io.pid, sig);
                        }
                    }
                    Action::Exit => exit = true,
                }
            }
        }
    }

    fn spawn(&mut self, now: Instant, b: usize) {
        if self.backends[b].is_some() {
            // A restart before the old process was reaped: make sure it goes.
            self.kill_leftovers(b);
        }
        if let Some(mut old) = self.backends[b].take() {
            self.deregister(&mut old);
            if self.remove_container(b) {
                self.gw.on_container_removal_started(b);
            }
        }
        if let Some(old) = self.remotes.get_mut(b).and_then(Option::take) {
            self.say_farewell(now, b, old);
        }
        let Some(cfg) = self.gw.backend_config(b) else {
            return;
        };
        if cfg.remote {
            let transport = if cfg.sse {
                Transport::Sse
            } else {
                Transport::Streamable
            };
            let ca_file = cfg.ca_file();
            match Remote::new(&cfg.command, transport, &cfg.env, self.max_line, ca_file) {
                Ok(r) => {
                    log::debug!(
                        "backend '{}' is reached at {}",
                        backend_name(&self.gw, b),
                        cfg.shown_command()
                    );
                    self.remotes[b] = Some(r);
                    self.drive_remote(now, b);
                }
                Err(e) => self.gw.on_spawn_failed(now, b, &e),
            }
            return;
        }
        let launch = match self.docker.as_mut() {
            Some(d) if docker::is_docker_run(cfg) => {
                d.starts += 1;
                let launch = docker::launch(cfg, &d.instance, d.starts);
                d.containers[b].clone_from(&launch.container);
                launch
            }
            _ => docker::Launch {
                args: cfg.args.clone(),
                container: None,
            },
        };
        let spawned = process::spawn(cfg, &launch.args);
        let Spawned {
            pid,
            mark,
            mut stdin,
            mut stdout,
            mut stderr,
        } = match spawned {
            Ok(s) => s,
            Err(e) => {
                let text = self
                    .gw
                    .backend_config(b)
                    .map_or_else(|| e.to_string(), |c| process::spawn_error_text(c, &e));
                self.gw.on_spawn_failed(now, b, &text);
                return;
            }
        };
        log::debug!(
            "backend '{}' spawned as pid {pid}",
            backend_name(&self.gw, b)
        );
        let reg = self.poll.registry();
        let base = BACKEND_BASE + 3 * b;
        let registered = reg
            .register(&mut stdin, Token(base), Interest::WRITABLE)
            .and_then(|()| reg.register(&mut stdout, Token(base + 1), Interest::READABLE))
            .and_then(|()| reg.register(&mut stderr, Token(base + 2), Interest::READABLE));
        if let Err(e) = registered {
            process::signal_group(pid, Signal::SIGKILL);
            self.gw
                .on_spawn_failed(now, b, &format!("could not watch its pipes: {e}"));
            return;
        }
        self.backends[b] = Some(BackendIo {
            pid,
            mark,
            stdin: Some(stdin),
            stdout: Some(stdout),
            stderr: Some(stderr),
            out_framer: LineFramer::new(self.max_line),
            err_framer: LineFramer::new(STDERR_LINE_MAX),
            stdin_writable: true,
            stdout_readable: true,
            stderr_readable: true,
            stdout_closed: false,
            stderr_closed: false,
        });
        let container = launch.container.map(|c| c.name);
        self.gw.on_spawned(b, pid, container);
    }

    fn deregister(&self, io: &mut BackendIo) {
        let reg = self.poll.registry();
        if let Some(p) = io.stdin.as_mut() {
            let _ = reg.deregister(p);
        }
        if let Some(p) = io.stdout.as_mut() {
            let _ = reg.deregister(p);
        }
        if let Some(p) = io.stderr.as_mut() {
            let _ = reg.deregister(p);
        }
    }

    fn write_all(&mut self, now: Instant) {
        // A local client's lines are handled first, so what they ask of backends is
        // written in this same turn (a pipe's readiness is reported once).
        self.serve_local(now);
        for b in 0..self.backends.len() {
            self.write_backend(now, b);
        }
        self.write_client(now);
    }

    /// Sends what the gateway wrote to remote backend `b`, reads what came back, and
    /// hands it to the gateway.
    fn drive_remote(&mut self, now: Instant, b: usize) {
        let Some(r) = self.remotes.get_mut(b).and_then(Option::as_mut) else {
            return;
        };
        let queue = &mut self.gw.out.backends[b];
        let used = r.take_lines(queue.pending());
        queue.consume(used);
        r.drive(self.poll.registry(), b, now);
        let events = std::mem::take(&mut r.events);
        for e in events {
            match e {
                RemoteEvent::Line(line) => self.gw.on_backend_line(now, b, &line),
                RemoteEvent::Failed(why) => {
                    log::warn!("backend '{}': {why}", backend_name(&self.gw, b));
                    self.remote_gone(now, b, &why);
                    return;
                }
            }
        }
    }

    /// Remote backend `b` is gone (stopped by gangway, or failed with `why`).
    fn remote_gone(&mut self, now: Instant, b: usize, why: &str) {
        if let Some(r) = self.remotes.get_mut(b).and_then(Option::take) {
            self.say_farewell(now, b, r);
            self.gw.on_backend_exit(now, b, why);
        }
    }

    /// Closes remote backend `b`'s connections and lets the DELETE that ends its session
    /// go on beside the loop (an earlier one of `b` still under way is dropped).
    fn say_farewell(&mut self, now: Instant, b: usize, mut r: Remote) {
        let registry = self.poll.registry();
        if let Some(k) = self.farewells.iter().position(|(x, _)| *x == b) {
            let (_, mut old) = self.farewells.swap_remove(k);
            old.shut(registry);
        }
        if r.farewell(registry, b, now) {
            self.farewells.push((b, r));
        }
    }

    /// Every remote backend, running or ending its session.
    fn all_remotes(&self) -> impl Iterator<Item = &Remote> {
        self.remotes
            .iter()
            .flatten()
            .chain(self.farewells.iter().map(|(_, r)| r))
    }

    /// Carries the session-ending DELETEs of stopped remote backends.
    fn drive_farewells(&mut self, now: Instant) {
        let registry = self.poll.registry();
        self.farewells
            .retain_mut(|(_, r)| r.drive_farewell(registry, now));
    }

    fn write_backend(&mut self, now: Instant, b: usize) {
        if self.remotes.get(b).is_some_and(Option::is_some) {
            return self.drive_remote(now, b);
        }
        let queue = &mut self.gw.out.backends[b];
        // With no process, the queue waits: `Gateway::start` resets it for the next one.
        let Some(io) = self.backends[b].as_mut() else {
            return;
        };
        let Some(pipe) = io.stdin.as_mut() else {
            queue.clear();
            return;
        };
        let mut failed = None;
        while io.stdin_writable && !queue.is_empty() {
            match pipe.write(queue.pending()) {
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.stdin_writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            queue.clear();
            if let Some(mut pipe) = io.stdin.take() {
                let _ = self.poll.registry().deregister(&mut pipe);
            }
            if e.kind() != io::ErrorKind::BrokenPipe {
                log::warn!(
                    "writing to backend '{}' failed: {e}",
                    backend_name(&self.gw, b)
                );
            }
            self.gw.on_backend_closed(now, b);
        }
    }

    fn write_client(&mut self, now: Instant) {
        if let Front::Serve(serve) = &mut self.front {
            serve.write(self.poll.registry(), now, &mut self.gw);
            return;
        }
        let Front::Stdio {
            client_out,
            client_gone,
            ..
        } = &mut self.front
        else {
            self.serve_local(now);
            return;
        };
        let Some(queue) = self.gw.session_out(self.session) else {
            return;
        };
        if *client_gone {
            queue.clear();
            return;
        }
        while client_out.writable && !queue.is_empty() {
            match client_out.write(queue.pending()) {
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => client_out.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        log::info!("the client closed gangway's stdout; shutting down");
                    } else {
                        log::error!("writing to stdout failed: {e}; shutting down");
                    }
                    *client_gone = true;
                    queue.clear();
                    self.gw.on_terminate(now);
                    return;
                }
            }
        }
    }

    /// Hands a local client every line the gateway wrote for it, and the gateway every
    /// line the client has to send, until neither has more. Once the client is done and
    /// the gateway has nothing of its own in flight (the lists fetched after a start, for
    /// the catalog), its session is closed and everything is stopped.
    fn serve_local(&mut self, now: Instant) {
        let Front::Local { client, closed, .. } = &mut self.front else {
            return;
        };
        if *closed {
            return;
        }
        // Each round hands over what the gateway wrote and what the client answered to it.
        // A client and gateway that keep talking are cut off like any busy source; what
        // the gateway still has for the client marks the loop as having work (see
        // `has_ready_work`), so the next turn goes on at once.
        for round in 0.. {
            if round == LOCAL_ROUNDS_PER_TURN {
                log::warn!(
                    "bug: a local client and the gateway exchanged lines for {LOCAL_ROUNDS_PER_TURN} rounds in one turn; the rest waits for the next turn"
                );
                break;
            }
            let mut delivered = false;
            if let Some(queue) = self.gw.session_out(self.session) {
                let pending = queue.pending();
                if let Some(end) = memchr::memrchr(b'\n', pending) {
                    for line in pending[..end].split(|&c| c == b'\n') {
                        client.on_line(line);
                    }
                    queue.consume(end + 1);
                    delivered = true;
                }
            }
            let lines = client.take_lines();
            let sent = !lines.is_empty();
            for line in lines {
                self.gw.on_client_line(now, self.session, &line);
            }
            if !delivered && !sent {
                break;
            }
        }
        if client.done() && self.gw.in_flight() == 0 {
            *closed = true;
            self.gw.close_session(now, self.session);
            self.gw.on_terminate(now);
        }
    }

    /// The way out: reap the backends, hand the client its last answers, then make sure
    /// every container is gone.
    fn finish(&mut self) {
        self.save_catalog();
        self.farewells_before_exit();
        self.reap_before_exit();
        self.sweep_at_exit();
        self.final_flush();
        self.cleanup_before_exit();
    }

    /// Gives the session-ending DELETEs of remote backends their time (each at most 2 s,
    /// all at once), so the servers hear that gangway's sessions ended.
    fn farewells_before_exit(&mut self) {
        let mut events = Events::with_capacity(8);
        while !self.farewells.is_empty() {
            let now = Instant::now();
            self.drive_farewells(now);
            let Some(next) = self
                .farewells
                .iter()
                .filter_map(|(_, r)| r.next_deadline())
                .min()
            else {
                break;
            };
            let left = next.saturating_duration_since(now);
            match self.poll.poll(&mut events, Some(left)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
            for ev in events.iter() {
                self.mark_ready(ev);
            }
        }
    }

    /// Waits briefly for backends that were just killed, so none is left a zombie for
    /// someone else to reap. Wakes on SIGCHLD through the signal pipe.
    fn reap_before_exit(&mut self) {
        let deadline = Instant::now() + REAP_AT_EXIT;
        self.wait_children(deadline, |rt| rt.backends.iter().all(Option::is_none));
    }

    /// Kills every process this instance started that is still there: backends that did
    /// not die in time, their descendants, and orphans re-parented to gangway. Only
    /// `docker` commands still running on the side are spared (they remove containers).
    fn sweep_at_exit(&mut self) {
        let mut n = guard::sweep(None);
        let mut known: Vec<i32> = Vec::new();
        if let Some(d) = self.docker.as_ref() {
            known.extend(d.removals.iter().map(|&(pid, _)| pid));
            known.extend(d.scan.as_ref().map(|(pid, _)| *pid));
        }
        n += guard::kill_adopted(&known);
        if n > 0 {
            log::info!("killed {n} leftover process(es) of backends at exit");
        }
    }

    /// Removes every container still known (killed backends may have left them) and waits
    /// for the removals to finish, so gangway leaves nothing behind when it exits.
    fn cleanup_before_exit(&mut self) {
        for b in 0..self.backends.len() {
            self.remove_container(b);
        }
        let deadline = Instant::now() + CLEANUP_AT_EXIT;
        self.wait_children(deadline, |rt| {
            rt.docker.as_ref().map_or(true, |d| d.removals.is_empty())
        });
        if let Some(d) = self.docker.as_ref().filter(|d| !d.removals.is_empty()) {
            log::warn!(
                "{} docker rm command(s) still running at exit; they finish on their own",
                d.removals.len()
            );
        }
    }

    /// Reaps children until `done` or `deadline`, waking on SIGCHLD through the signal
    /// pipe. Backends reaped here need no more gateway work; their containers are removed.
    fn wait_children(&mut self, deadline: Instant, done: impl Fn(&Runtime) -> bool) {
        let mut events = Events::with_capacity(8);
        loop {
            for exit in process::reap() {
                let backend = self
                    .backends
                    .iter()
                    .position(|io| io.as_ref().is_some_and(|io| io.pid == exit.pid));
                match backend {
                    Some(b) => {
                        self.kill_leftovers(b);
                        self.backends[b] = None;
                        self.remove_container(b);
                    }
                    None => {
                        // The gateway has exited: no start waits for a removal now.
                        let _ = self.docker_exit(exit.pid, &exit.status);
                    }
                }
            }
            if done(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.poll.poll(&mut events, Some(left)) {
                // SIGCHLD itself interrupts the wait.
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
            for _ in self.signals.pending() {}
        }
    }

    /// Runs `docker rm -f` for backend `b`'s container, if it has one: whichever way its
    /// process ended, the container must not outlive it. A generated name embeds this
    /// instance's random id, so it is removed by name at once; a name the user chose may
    /// belong to a container someone else started (then `docker run` failed with a
    /// conflict), so it is first looked up among the containers carrying this instance's
    /// label, and only what is found is removed (see `lookup_done`). Returns whether a
    /// command was started: then `docker_exit` names `b` when the last one for it ends.
    fn remove_container(&mut self, b: usize) -> bool {
        let Some(d) = self.docker.as_mut() else {
            return false;
        };
        let Some(container) = d.containers.get_mut(b).and_then(Option::take) else {
            return false;
        };
        if container.user_named {
            let started = memfd(c"gangway-lookup").and_then(|file| {
                let mut cmd = container.lookup_command(&d.instance.id);
                cmd.stdout(file.try_clone()?);
                Ok((spawn_side(cmd)?, file))
            });
            return match started {
                Ok((pid, file)) => {
                    d.removals.push((pid, Some(b)));
                    d.lookups.push((pid, file, container));
                    true
                }
                Err(e) => {
                    log::warn!(
                        "could not run `{} ps` to find backend '{}''s container {}: {e}; if it still exists, remove it by hand",
                        container.program,
                        backend_name(&self.gw, b),
                        container.name
                    );
                    false
                }
            };
        }
        log::debug!("removing container {}", container.name);
        match spawn_side(container.remove_command()) {
            Ok(pid) => {
                d.removals.push((pid, Some(b)));
                true
            }
            Err(e) => {
                log::warn!(
                    "could not run `{} rm -f {}` to remove backend '{}''s container: {e}; remove it by hand",
                    container.program,
                    container.name,
                    backend_name(&self.gw, b)
                );
                false
            }
        }
    }

    /// A child that is not a backend exited: a removal or the startup scan. Returns the
    /// backend this removal was for when it was the last one running for it.
    fn docker_exit(&mut self, pid: i32, status: &str) -> Option<usize> {
        let Some(d) = self.docker.as_mut() else {
            log::debug!("reaped process {pid} ({status})");
            return None;
        };
        if let Some(i) = d.removals.iter().position(|&(p, _)| p == pid) {
            let (_, of) = d.removals.swap_remove(i);
            if let Some(j) = d.lookups.iter().position(|(p, _, _)| *p == pid) {
                let (_, file, container) = d.lookups.swap_remove(j);
                lookup_done(d, file, &container, of, status);
            }
            let b = of?;
            let still = d.removals.iter().any(|&(_, o)| o == Some(b));
            return (!still).then_some(b);
        }
        if d.scan.as_ref().is_some_and(|(p, _)| *p == pid) {
            let (_, file) = d.scan.take()?;
            self.scan_done(file, status);
            return None;
        }
        log::debug!("reaped process {pid} ({status})");
        None
    }

    /// Removes the containers the startup scan found left by gangway instances that no
    /// longer run.
    fn scan_done(&mut self, mut file: File, status: &str) {
        if let Front::Serve(serve) = &mut self.front {
            let result = if status == "exit status 0" {
                Ok(())
            } else {
                Err(format!("`docker ps` ended with {status}; is dockerd running, and may gangway use its socket?"))
            };
            serve.front.set_docker(Instant::now(), result);
        }
        let Some(d) = self.docker.as_mut() else {
            return;
        };
        let mut out = String::new();
        let read = file.rewind().and_then(|()| file.read_to_string(&mut out));
        if status != "exit status 0" || read.is_err() {
            log::debug!("the scan for stale containers failed ({status}); skipped");
            return;
        }
        let stale =
            docker::stale_containers(&out, &d.instance, &|pid| docker::proc_start_time(pid));
        if stale.is_empty() {
            return;
        }
        log::info!(
            "removing {} container(s) left by gangway instances that no longer run: {}",
            stale.len(),
            stale.join(" ")
        );
        for id in stale {
            let c = Container {
                name: id,
                ..d.daemon.clone()
            };
            match spawn_side(c.remove_command()) {
                Ok(pid) => d.removals.push((pid, None)),
                Err(e) => log::warn!("could not remove stale container {}: {e}", c.name),
            }
        }
    }

    /// Checks the Docker daemon again for `/readyz` (the startup scan for stale
    /// containers, run once more: it asks the daemon, and removes what it finds).
    fn probe_docker(&mut self, now: Instant) {
        let Some(d) = self.docker.as_mut() else {
            if let Front::Serve(serve) = &mut self.front {
                serve
                    .front
                    .set_docker(now, Err("no docker backend is configured".into()));
            }
            return;
        };
        if d.scan.is_none() {
            d.scan = start_scan(&d.daemon);
        }
        if d.scan.is_none() {
            if let Front::Serve(serve) = &mut self.front {
                serve
                    .front
                    .set_docker(now, Err("could not run `docker ps`".into()));
            }
        }
    }

    /// Hands the last answers to the client, waiting for stdout to drain for a short while.
    fn final_flush(&mut self) {
        if let Front::Serve(serve) = &mut self.front {
            // The answers (errors, after a signal) reach their clients, and every event
            // stream ends properly.
            let deadline = Instant::now() + FINAL_FLUSH;
            let mut events = Events::with_capacity(64);
            serve.front.end_all();
            loop {
                serve.write(self.poll.registry(), Instant::now(), &mut self.gw);
                let left = deadline.saturating_duration_since(Instant::now());
                if !serve.front.has_output() || left.is_zero() {
                    return;
                }
                if self.poll.poll(&mut events, Some(left)).is_err() {
                    return;
                }
                for ev in events.iter() {
                    serve.mark_ready(ev.token(), false, true);
                }
            }
        }
        let Front::Stdio {
            client_out,
            client_gone,
            ..
        } = &mut self.front
        else {
            // The answers to what was in flight (errors, after a signal) reach the client.
            if let (Front::Local { client, .. }, Some(queue)) =
                (&mut self.front, self.gw.session_out(self.session))
            {
                for line in queue.pending().split(|&c| c == b'\n') {
                    if !line.is_empty() {
                        client.on_line(line);
                    }
                }
                queue.clear();
            }
            return;
        };
        let deadline = Instant::now() + FINAL_FLUSH;
        let mut events = Events::with_capacity(8);
        while !*client_gone && self.gw.session_backlog(self.session) > 0 {
            client_out.writable = true;
            let Some(queue) = self.gw.session_out(self.session) else {
                return;
            };
            match client_out.write(queue.pending()) {
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || self.poll.poll(&mut events, Some(left)).is_err() {
                        log::warn!(
                            "the client is not reading; {} bytes of output dropped at exit",
                            queue.len()
                        );
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        let _ = client_out.flush();
    }
}

/// A lookup of a user-named container ended: removes what it found (containers of that
/// name carrying this instance's label), on behalf of backend `of`.
fn lookup_done(
    d: &mut Docker,
    mut file: File,
    container: &Container,
    of: Option<usize>,
    status: &str,
) {
    /// A lookup prints a few ids; more is not read.
    const LOOKUP_OUTPUT_MAX: u64 = 64 * 1024;
    let mut out = String::new();
    let read = file
        .rewind()
        .and_then(|()| file.take(LOOKUP_OUTPUT_MAX).read_to_string(&mut out));
    if status != "exit status 0" || read.is_err() {
        log::warn!(
            "could not look up container {} ({status}); if gangway started it and it still exists, remove it by hand",
            container.name
        );
        return;
    }
    let ids = docker::container_ids(&out);
    if ids.is_empty() {
        log::debug!(
            "no container named {} carries this gangway's label; nothing to remove",
            container.name
        );
    }
    for id in ids {
        log::debug!("removing container {} ({id})", container.name);
        match spawn_side(container.remove_id_command(&id)) {
            Ok(pid) => d.removals.push((pid, of)),
            Err(e) => log::warn!(
                "could not run `{} rm -f {id}` to remove container {}: {e}; remove it by hand",
                container.program,
                container.name
            ),
        }
    }
}

/// An anonymous in-memory file for a side command's output.
fn memfd(name: &std::ffi::CStr) -> io::Result<File> {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(io::Error::from)
        .map(File::from)
}

/// Starts the scan for containers that gangway instances which no longer run left behind;
/// its output goes to an anonymous in-memory file read when it exits.
fn start_scan(daemon: &Container) -> Option<(i32, File)> {
    let started =
        nix::sys::memfd::memfd_create(c"gangway-scan", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(io::Error::from)
            .map(File::from)
            .and_then(|file| {
                let mut cmd = docker::scan_command(&daemon.program, &daemon.global);
                cmd.stdout(file.try_clone()?);
                Ok((spawn_side(cmd)?, file))
            });
    match started {
        Ok(scan) => Some(scan),
        Err(e) => {
            log::warn!(
                "could not run `{} ps` to look for containers left by earlier gangway runs: {e}",
                daemon.program
            );
            None
        }
    }
}

/// Spawns a `docker` command on the side, in a process group of its own so a Ctrl-C meant
/// for gangway does not cut a removal short. It is reaped by `process::reap`.
fn spawn_side(mut cmd: Command) -> io::Result<i32> {
    let child = cmd.process_group(0).spawn()?;
    i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))
}

/// How a `drain` of one pipe ended.
enum Drain {
    /// Nothing more to read for now.
    WouldBlock,
    /// The read cap was reached with data possibly left: stay readable.
    Capped,
    /// The pipe closed (every frame, including an unterminated tail, was handed on).
    Eof,
    /// Reading failed.
    Failed(io::Error),
}

/// Reads `pipe` into `framer` until it is drained, closes, fails or `max_reads` reads
/// were made, handing every complete frame to `on_frame`, which says whether to read on
/// (false: stop after this read's frames, as if capped). A pipe already closed (`None`)
/// has nothing to read.
///
/// A read that got less than it asked for emptied the pipe, so it counts as drained
/// (saving the read that would only say `WouldBlock`): any later write to an empty pipe
/// raises a new edge. Not when `closed` (epoll said the writer is gone, or it exited):
/// then the pipe is read to its end, since no further edge would come to report it.
fn drain(
    pipe: Option<&mut Receiver>,
    framer: &mut LineFramer,
    max_reads: usize,
    closed: bool,
    mut on_frame: impl FnMut(&LineFramer, Frame) -> bool,
) -> Drain {
    let Some(pipe) = pipe else {
        return Drain::WouldBlock;
    };
    for _ in 0..max_reads {
        match framer.read_from(pipe) {
            Ok(n) => {
                let mut more = true;
                while let Some(frame) = framer.next_frame() {
                    more &= on_frame(framer, frame);
                }
                if n == 0 {
                    if let Some(frame) = framer.finish() {
                        let _ = on_frame(framer, frame);
                    }
                    return Drain::Eof;
                }
                if framer.read_was_short() && !closed {
                    return Drain::WouldBlock;
                }
                if !more {
                    return Drain::Capped;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drain::WouldBlock,
            Err(e) => return Drain::Failed(e),
        }
    }
    Drain::Capped
}

fn backend_name(gw: &Gateway, b: usize) -> &str {
    gw.backend_config(b).map_or("?", |c| c.name.as_str())
}

fn backend_frame(
    gw: &mut Gateway,
    now: Instant,
    b: usize,
    framer: &LineFramer,
    frame: Frame,
    max: usize,
) {
    match frame {
        Frame::Line(range) => gw.on_backend_line(now, b, &framer.buffer()[range]),
        Frame::Oversize { len } => gw.on_backend_oversize(b, len, max),
    }
}

fn stderr_frame(gw: &mut Gateway, b: usize, framer: &LineFramer, frame: Frame) {
    match frame {
        Frame::Line(range) => {
            let line = &framer.buffer()[range];
            gw.on_backend_stderr(b, line);
            // docker's refusal of a taken --name does not say that gangway leaves the other
            // container alone, nor what to do; this line joins the error the client gets.
            if memchr::memmem::find(line, b"Conflict.").is_some() {
                let hint = gw
                    .backend_config(b)
                    .filter(|c| docker::is_docker_run(c))
                    .and_then(|c| docker::name_conflict(&String::from_utf8_lossy(line), &c.name));
                if let Some(hint) = hint {
                    gw.on_backend_stderr(b, hint.as_bytes());
                }
            }
        }
        Frame::Oversize { len } => gw.on_backend_stderr(
            b,
            format!("(a stderr line of {len} bytes, not shown)").as_bytes(),
        ),
    }
}
