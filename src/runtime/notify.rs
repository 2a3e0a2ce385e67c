//! systemd's service notification protocol (`sd_notify`, without libsystemd): one datagram
//! of `KEY=VALUE` lines per state change, sent to the socket named by `$NOTIFY_SOCKET`, and
//! `WATCHDOG=1` every half of `$WATCHDOG_USEC` while the event loop turns.
//!
//! Only `gangway serve` notifies (see [`Systemd::from_env`]); nothing here is ever fatal:
//! the first failure to send is logged at debug level and later ones are not.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The variables through which systemd talks to the service it started. They are
/// gangway's alone: a backend that saw them could claim gangway's readiness or feed its
/// watchdog, so [`super::process::spawn`] removes them from every backend's environment.
pub const PRIVATE_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The notification channel to the service manager, and the watchdog's next ping.
///
/// Built with nothing to talk to (when `$NOTIFY_SOCKET` is unset or unusable), every
/// method does nothing and [`Systemd::next_deadline`] is `None`, so the loop does not wake
/// for it.
#[derive(Debug, Default)]
pub struct Systemd {
    channel: Option<Channel>,
    /// Half of `$WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
    /// When the next `WATCHDOG=1` is due.
    next_ping: Option<Instant>,
    /// What `systemctl status` shows while the service runs.
    status: String,
}

#[derive(Debug)]
struct Channel {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Whether a send has failed (only the first failure is logged).
    failed: bool,
}

impl Systemd {
    /// The channel named by this process's environment (`$NOTIFY_SOCKET`, `$WATCHDOG_USEC`,
    /// `$WATCHDOG_PID`). Without a usable socket, one that does nothing (an unusable one is
    /// logged at debug level).
    pub fn from_env() -> Systemd {
        let var = |name| std::env::var(name).ok();
        let Some(path) = var("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Systemd::default();
        };
        let channel = socket_addr(&path).and_then(|addr| {
            let socket = UnixDatagram::unbound()?;
            // The loop must never wait for the service manager.
            socket.set_nonblocking(true)?;
            Ok(Channel {
                socket,
                addr,
                failed: false,
            })
        });
        let channel = match channel {
            Ok(c) => c,
            Err(e) => {
                log::debug!("NOTIFY_SOCKET={path:?} cannot be used ({e}); systemd will not hear from gangway");
                return Systemd::default();
            }
        };
        let watchdog = watchdog_interval(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Systemd {
            channel: Some(channel),
            watchdog,
            next_ping: watchdog.map(|w| Instant::now() + w),
            status: String::new(),
        }
    }

    /// Whether a service manager is listening (`$NOTIFY_SOCKET` named a usable socket).
    pub fn is_on(&self) -> bool {
        self.channel.is_some()
    }

    /// Says the service is ready (`READY=1`), with `status` as the text `systemctl status`
    /// shows (one line).
    pub fn ready(&mut self, status: String) {
        self.status = status.replace('\n', " ");
        self.reloaded();
    }

    /// Says the service is ready again after a reload (`READY=1`, with the status given to
    /// [`Systemd::ready`]).
    pub fn reloaded(&mut self) {
        let message = format!("READY=1\nSTATUS={}", self.status);
        self.send(&message);
    }

    /// Says a reload has begun (`RELOADING=1`, with the monotonic time systemd wants
    /// since version 253); [`Systemd::ready`] says it has ended.
    pub fn reloading(&mut self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1_000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }

    /// Says the service is stopping (`STOPPING=1`).
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping backends");
    }

    /// When the loop must wake next for the watchdog; `None` when it is off.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Sends `WATCHDOG=1` when it is due at `now`, and sets the next deadline.
    pub fn on_timer(&mut self, now: Instant) {
        let (Some(due), Some(every)) = (self.next_ping, self.watchdog) else {
            return;
        };
        if now >= due {
            self.next_ping = Some(now + every);
            self.send("WATCHDOG=1");
        }
    }

    fn send(&mut self, message: &str) {
        let Some(c) = self.channel.as_mut() else {
            return;
        };
        let sent = loop {
            match c.socket.send_to_addr(message.as_bytes(), &c.addr) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match sent {
            Ok(_) => c.failed = false,
            Err(e) if !c.failed => {
                c.failed = true;
                let first = message.lines().next().unwrap_or(message);
                log::debug!("could not tell systemd {first} on NOTIFY_SOCKET: {e}");
            }
            Err(_) => {}
        }
    }
}

/// The address `$NOTIFY_SOCKET` names: an absolute path, or an abstract socket when it
/// starts with `@`. (systemd also knows `vsock:` addresses, which gangway does not use.)
fn socket_addr(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name.as_bytes());
    }
    if value.starts_with('/') {
        return SocketAddr::from_pathname(value);
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "not an absolute path or an abstract socket name (@NAME)",
    ))
}

/// How often to send `WATCHDOG=1`: half of `usec` (`$WATCHDOG_USEC`), when it is a
/// positive number and `pid` (`$WATCHDOG_PID`) is unset or names `own`, this process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_and_only_for_its_pid() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(watchdog_interval(Some("200000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("200000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("200000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
        assert_eq!(
            watchdog_interval(Some("1"), None, 7),
            Some(Duration::from_millis(1)),
            "never a busy loop"
        );
    }

    #[test]
    fn notify_socket_names_a_path_or_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let path = socket_addr("/run/systemd/notify").expect("a path");
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = socket_addr("@/org/freedesktop/systemd1/notify/1").expect("abstract");
        assert_eq!(
            abs.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify/1"[..])
        );
        assert!(socket_addr("relative/notify").is_err());
        assert!(socket_addr("vsock:2:1234").is_err());
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_wakes_the_loop() {
        let mut s = Systemd::default();
        s.ready("serving".to_string());
        s.on_timer(Instant::now());
        assert!(!s.is_on());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn messages_arrive_as_one_datagram_each_and_the_watchdog_reschedules() {
        let dir = std::env::temp_dir().join(format!("gangway-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let socket = UnixDatagram::unbound().expect("socket");
        let t0 = Instant::now();
        let every = Duration::from_millis(100);
        let mut s = Systemd {
            channel: Some(Channel {
                socket,
                addr: socket_addr(path.to_str().expect("utf-8")).expect("addr"),
                failed: false,
            }),
            watchdog: Some(every),
            next_ping: Some(t0 + every),
            status: String::new(),
        };
        let mut buf = [0u8; 256];
        let mut recv = || {
            let n = server.recv(&mut buf).expect("a datagram");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        s.ready("serving on http://127.0.0.1:1/mcp".to_string());
        assert_eq!(recv(), "READY=1\nSTATUS=serving on http://127.0.0.1:1/mcp");
        s.on_timer(t0);
        assert_eq!(s.next_deadline(), Some(t0 + every), "not due yet");
        s.on_timer(t0 + every);
        assert_eq!(recv(), "WATCHDOG=1");
        assert_eq!(s.next_deadline(), Some(t0 + 2 * every));
        s.reloading();
        assert!(recv().starts_with("RELOADING=1\nMONOTONIC_USEC="));
        s.reloaded();
        assert_eq!(recv(), "READY=1\nSTATUS=serving on http://127.0.0.1:1/mcp");
        s.stopping();
        assert!(recv().starts_with("STOPPING=1"));
        drop(server);
        // The socket is gone: sending fails, quietly, and keeps failing without harm.
        s.stopping();
        s.stopping();
        assert!(s.channel.as_ref().is_some_and(|c| c.failed));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
