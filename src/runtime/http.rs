//! The sockets of `gangway serve`: the listener and its connections, registered in the
//! one `mio::Poll` beside the backend pipes. What the bytes mean is the HTTP front's job
//! (`crate::http`); this reads, writes, accepts and closes.

use crate::gateway::Gateway;
use crate::http::HttpFront;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// The listener's token.
pub const LISTENER: Token = Token(3);
/// Connection `c` has token `CONN_BASE + c`, far above the backends' tokens.
const CONN_BASE: usize = 1 << 40;
/// At most this many connections accepted per loop turn.
const ACCEPTS_PER_TURN: usize = 64;
/// At most this many reads (of up to 64 KiB) from one connection per loop turn.
const READS_PER_TURN: usize = 16;

struct Socket {
    stream: TcpStream,
    peer: SocketAddr,
    readable: bool,
    writable: bool,
}

/// The listener, its connections and the front that serves them.
pub struct Serve {
    listener: Option<TcpListener>,
    listener_ready: bool,
    socks: Vec<Option<Socket>>,
    /// What one read takes, before it goes to its connection's input: made once (a
    /// buffer on the stack would be zeroed for every read).
    scratch: Vec<u8>,
    /// The HTTP front.
    pub front: HttpFront,
}

impl Serve {
    /// Listens on `listener` (already bound) for `front`.
    pub fn new(
        registry: &Registry,
        mut listener: TcpListener,
        front: HttpFront,
    ) -> io::Result<Serve> {
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Serve {
            listener: Some(listener),
            listener_ready: true,
            socks: Vec::new(),
            scratch: vec![0; 64 * 1024],
            front,
        })
    }

    /// Notes readiness for `token`; returns false when the token is not the front's.
    pub fn mark_ready(&mut self, token: Token, readable: bool, writable: bool) -> bool {
        if token == LISTENER {
            self.listener_ready = true;
            return true;
        }
        let Some(c) = token.0.checked_sub(CONN_BASE) else {
            return false;
        };
        if let Some(Some(s)) = self.socks.get_mut(c) {
            s.readable |= readable;
            s.writable |= writable;
        }
        true
    }

    /// Whether a source was cut short and more can be done without waiting.
    pub fn has_ready_work(&self) -> bool {
        self.listener_ready
            || self.socks.iter().enumerate().any(|(c, s)| {
                s.as_ref()
                    .is_some_and(|s| s.readable && self.front.wants_input(c))
            })
    }

    /// Accepts new connections and reads what arrived on every readable one.
    pub fn read(&mut self, registry: &Registry, now: Instant, gw: &mut Gateway) {
        self.accept(registry, now);
        let mut buf = std::mem::take(&mut self.scratch);
        for c in 0..self.socks.len() {
            for _ in 0..READS_PER_TURN {
                let Some(Some(s)) = self.socks.get_mut(c) else {
                    break;
                };
                if !s.readable || !self.front.wants_input(c) {
                    break;
                }
                match s.stream.read(&mut buf) {
                    Ok(0) => {
                        s.readable = false;
                        self.front.on_eof(now, c, gw);
                        break;
                    }
                    Ok(n) => {
                        self.front.note_io(n, 0);
                        if let Some(input) = self.front.input(c) {
                            input.extend_from_slice(&buf[..n]);
                        }
                        self.front.on_input(now, c, gw);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        s.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("HTTP: reading from {} failed: {e}", s.peer);
                        self.close(registry, now, c, gw);
                        break;
                    }
                }
            }
        }
        self.scratch = buf;
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        let Some(listener) = self.listener.as_ref().filter(|_| self.listener_ready) else {
            return;
        };
        for _ in 0..ACCEPTS_PER_TURN {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let c = self.front.accept(now);
                    let token = Token(CONN_BASE + c);
                    if let Err(e) = registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!(
                            "HTTP: cannot watch the connection from {peer}: {e}; closing it"
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if self.socks.len() <= c {
                        self.socks.resize_with(c + 1, || None);
                    }
                    self.socks[c] = Some(Socket {
                        stream,
                        peer,
                        readable: true,
                        writable: true,
                    });
                    log::debug!("HTTP: connection {c} from {peer}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors, typically: wait for the next readiness.
                    log::warn!("HTTP: accepting a connection failed: {e}");
                    self.listener_ready = false;
                    return;
                }
            }
        }
    }

    /// Routes the gateway's output for the sessions, writes what every connection can
    /// take, and closes the connections that are done.
    pub fn write(&mut self, registry: &Registry, now: Instant, gw: &mut Gateway) {
        self.front.pump(now, gw);
        for c in 0..self.socks.len() {
            let Some(Some(s)) = self.socks.get_mut(c) else {
                continue;
            };
            let Some(out) = self.front.output(c) else {
                continue;
            };
            let mut failed = false;
            let mut written = 0;
            while s.writable && !out.is_empty() {
                match s.stream.write(out.pending()) {
                    Ok(n) => {
                        out.consume(n);
                        written += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("HTTP: writing to {} failed: {e}", s.peer);
                        failed = true;
                        break;
                    }
                }
            }
            self.front.note_io(0, written);
            if failed || self.front.should_close(c) {
                self.close(registry, now, c, gw);
            }
        }
    }

    /// Stops accepting connections (the listening socket is closed, so new clients are
    /// refused at once and a load balancer moves on).
    pub fn stop_listening(&mut self, registry: &Registry) {
        if let Some(mut l) = self.listener.take() {
            let _ = registry.deregister(&mut l);
        }
        self.listener_ready = false;
    }

    /// Whether the listener was closed (a stop is under way).
    pub fn stopping(&self) -> bool {
        self.listener.is_none()
    }

    fn close(&mut self, registry: &Registry, now: Instant, c: usize, gw: &mut Gateway) {
        if let Some(mut s) = self.socks.get_mut(c).and_then(Option::take) {
            let _ = registry.deregister(&mut s.stream);
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
        }
        self.front.on_closed(now, c, gw);
    }
}
