//! Backends reached by URL over MCP's Streamable HTTP: the runtime's side of a remote
//! backend, in place of a process's pipes. Each line the gateway writes to the backend is
//! one POST on a kept-alive connection (a few in parallel); a JSON answer, or each event of
//! an event-stream answer, comes back to the gateway as a line, exactly as a stdio
//! backend's output would. What the lines mean stays the gateway's: this only reads what
//! the transport needs (the `Mcp-Session-Id` the server gives, which request is
//! `initialize`).
//!
//! Name resolution uses the system resolver and blocks; it happens once per connection
//! to the server (a loopback or `/etc/hosts` name answers at once; a slow DNS server
//! holds the loop for its time).
//!
//! An `https` URL's connections carry TLS ([`super::tls`]); certificates are checked
//! against the platform's roots and the backend's `ca_file`, and a failed handshake
//! fails the backend with a sentence saying what to do.

use super::tls::{self, Stream};
use crate::http::client::{write_request, ClientError, ReadStatus, ResponseReader, Url};
use crate::http::sse::SseParser;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;

/// Connections opened to one server at most; more requests wait for one.
pub const MAX_CONNS: usize = 4;
/// Tokens of remote connections: `REMOTE_BASE + MAX_CONNS * backend + connection`.
pub const REMOTE_BASE: usize = 1 << 36;
/// At most this many reads (of up to 64 KiB) per connection per loop turn.
const READS_PER_TURN: usize = 16;

/// What happened on a remote backend, for the runtime to tell the gateway.
#[derive(Debug)]
pub enum RemoteEvent {
    /// A message from the server (an answer, a notification or a request).
    Line(Vec<u8>),
    /// The backend is gone, with why (connection refused, TLS, an HTTP error...).
    Failed(String),
}

struct Conn {
    stream: Stream,
    /// Request bytes not yet written.
    out: Vec<u8>,
    written: usize,
    reader: Option<ResponseReader>,
    sse: Option<SseParser>,
    /// The line being answered on it (for `initialize`, its session id is kept).
    initialize: bool,
    /// That line, to send again on a new connection if this one turns out closed by the
    /// server before any byte of an answer (an idle kept-alive connection it let go).
    line: Vec<u8>,
    /// The line was sent once already.
    retried: bool,
    /// An answer came on this connection before (so a close here may be the server
    /// ending an idle keep-alive, not a failure).
    reused: bool,
    readable: bool,
    writable: bool,
    busy: bool,
}

/// One remote backend: its URL and headers, the session the server gave, and its
/// connections.
pub struct Remote {
    url: Url,
    headers: Vec<(String, String)>,
    session: Option<String>,
    /// Lines the gateway wrote and no connection has taken yet (with whether each was sent
    /// once already).
    queue: VecDeque<(Vec<u8>, bool)>,
    conns: Vec<Option<Conn>>,
    max_body: usize,
    /// Events for the gateway.
    pub events: Vec<RemoteEvent>,
    /// The backend failed: nothing more is sent.
    failed: bool,
    /// For an `https` URL: the TLS client config (its trusted CAs).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Remote {
    /// A remote backend for `url` with `headers`, accepting answers of `max_body` bytes;
    /// an `https` URL's certificate is checked against the platform's roots and the CA
    /// certificates of `ca_file` (a PEM file).
    ///
    /// # Errors
    ///
    /// When the URL cannot be used or `ca_file` cannot be read (both were checked when
    /// the config was read).
    pub fn new(
        url: &str,
        headers: &[(String, String)],
        max_body: usize,
        ca_file: Option<&Path>,
    ) -> Result<Remote, String> {
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        let tls = if url.https {
            let extra = match ca_file {
                Some(path) => tls::read_ca_file(path).map_err(|e| format!("\"ca_file\": {e}"))?,
                None => Vec::new(),
            };
            Some(tls::client_config(&extra)?)
        } else {
            None
        };
        Ok(Remote {
            url,
            headers: headers.to_vec(),
            session: None,
            queue: VecDeque::new(),
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            max_body,
            events: Vec::new(),
            failed: false,
            tls,
        })
    }

    /// Takes the complete lines of `pending` (what the gateway wrote) and returns how
    /// many bytes it used.
    pub fn take_lines(&mut self, pending: &[u8]) -> usize {
        let Some(end) = memchr::memrchr(b'\n', pending) else {
            return 0;
        };
        for line in pending[..end].split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                self.queue.push_back((line.to_vec(), false));
            }
        }
        end + 1
    }

    /// Notes readiness of connection `i`.
    pub fn mark(&mut self, i: usize, readable: bool, writable: bool) {
        if let Some(Some(c)) = self.conns.get_mut(i) {
            c.readable |= readable;
            c.writable |= writable;
        }
    }

    /// Starts requests for queued lines on free connections (opening new ones), writes
    /// and reads what the sockets take. `b` is the backend, for tokens.
    pub fn drive(&mut self, registry: &Registry, b: usize) {
        if self.failed {
            self.queue.clear();
            return;
        }
        while let Some(i) = self.free_conn(registry, b) {
            let Some((line, retried)) = self.queue.pop_front() else {
                break;
            };
            let initialize =
                memchr::memmem::find(&line, b"\"initialize\"").is_some() && self.session.is_none();
            let mut headers: Vec<(&str, &str)> = vec![
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ];
            if let Some(s) = self.session.as_deref() {
                headers.push(("Mcp-Session-Id", s));
            }
            for (k, v) in &self.headers {
                headers.push((k, v));
            }
            let mut out = Vec::with_capacity(line.len() + 256);
            let host = self.url.host_header();
            if let Err(e) = write_request(&mut out, "POST", &self.url.path, &host, &headers, &line)
            {
                self.fail(format!("cannot send a request to {}: {e}", self.url));
                return;
            }
            if let Some(Some(c)) = self.conns.get_mut(i) {
                c.out = out;
                c.written = 0;
                c.reader = Some(ResponseReader::new(self.max_body));
                c.sse = None;
                c.initialize = initialize;
                c.busy = true;
                c.line = line;
                c.retried = retried;
            }
        }
        for i in 0..self.conns.len() {
            self.write_conn(registry, i);
            self.read_conn(registry, i);
        }
    }

    /// An idle connection, opening one if there is room; `None` when all are busy.
    fn free_conn(&mut self, registry: &Registry, b: usize) -> Option<usize> {
        if self.queue.is_empty() {
            return None;
        }
        if let Some(i) = self
            .conns
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| !c.busy))
        {
            return Some(i);
        }
        let i = self.conns.iter().position(Option::is_none)?;
        let addr = match (self.url.host.as_str(), self.url.port).to_socket_addrs() {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                self.fail(format!("cannot resolve {}: {e}", self.url.host));
                return None;
            }
        };
        let Some(addr) = addr else {
            self.fail(format!("{} resolves to no address", self.url.host));
            return None;
        };
        let sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("cannot connect to {}: {e}", self.url));
                return None;
            }
        };
        let _ = sock.set_nodelay(true);
        let mut stream = match &self.tls {
            None => Stream::Plain(sock),
            // A request is a line of at most `max_body` bytes plus its head: the TLS
            // session takes any request whole, even before its handshake ends.
            Some(config) => {
                let headers = self.headers.iter().map(|(k, v)| k.len() + v.len() + 4);
                let head = headers.sum::<usize>() + self.url.path.len() + self.url.host.len();
                let max_write = self.max_body.saturating_add(head);
                match Stream::tls(sock, Arc::clone(config), &self.url.host, max_write) {
                    Ok(s) => s,
                    Err(e) => {
                        self.fail(e);
                        return None;
                    }
                }
            }
        };
        let token = Token(REMOTE_BASE + MAX_CONNS * b + i);
        if let Err(e) =
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            self.fail(format!("cannot watch the connection to {}: {e}", self.url));
            return None;
        }
        self.conns[i] = Some(Conn {
            stream,
            out: Vec::new(),
            written: 0,
            reader: None,
            sse: None,
            initialize: false,
            line: Vec::new(),
            retried: false,
            reused: false,
            readable: false,
            writable: false,
            busy: false,
        });
        Some(i)
    }

    fn write_conn(&mut self, registry: &Registry, i: usize) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        // TLS records the socket did not take yet go out too.
        while c.writable && (c.written < c.out.len() || c.stream.has_pending_output()) {
            let wrote = if c.written < c.out.len() {
                c.stream.write(&c.out[c.written..])
            } else {
                c.stream.flush_pending().map(|()| 0)
            };
            match wrote {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => c.writable = false,
                Err(e) => {
                    let text = self.io_error("cannot send to", &e);
                    if self.resend(registry, i, &e) {
                        return;
                    }
                    self.close(registry, i);
                    self.fail(text);
                    return;
                }
            }
        }
    }

    fn read_conn(&mut self, registry: &Registry, i: usize) {
        let mut buf = [0u8; 64 * 1024];
        for _ in 0..READS_PER_TURN {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            if !c.readable {
                return;
            }
            let n = match c.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let busy = c.busy;
                    let text = self.io_error("the connection failed:", &e);
                    self.close(registry, i);
                    if busy {
                        self.fail(text);
                    }
                    return;
                }
            };
            if n == 0 {
                let outcome = c.reader.as_mut().map(ResponseReader::finish);
                let busy = c.busy;
                if let Some(Err(ClientError::ClosedBeforeResponse)) = outcome {
                    let closed = io::Error::from(io::ErrorKind::ConnectionReset);
                    if self.resend(registry, i, &closed) {
                        return;
                    }
                }
                if let Some(Ok(ReadStatus::Done)) = outcome {
                    self.response_data(i, true);
                }
                self.close(registry, i);
                if busy && !matches!(outcome, Some(Ok(ReadStatus::Done))) {
                    self.fail(format!(
                        "{} closed the connection before answering",
                        self.url
                    ));
                }
                return;
            }
            if let Err(e) = self.feed(i, &buf[..n]) {
                let text = format!("{}: {e}", self.url);
                self.close(registry, i);
                self.fail(text);
                return;
            }
        }
    }

    /// Feeds response bytes of connection `i`.
    fn feed(&mut self, i: usize, mut input: &[u8]) -> Result<(), ClientError> {
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return Ok(());
            };
            let Some(reader) = c.reader.as_mut() else {
                return Ok(());
            };
            let (used, status) = reader.feed(input)?;
            input = &input[used..];
            if matches!(status, ReadStatus::Head) {
                self.response_head(i);
            }
            self.response_data(i, matches!(status, ReadStatus::Done));
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return Ok(());
            };
            if matches!(status, ReadStatus::Done) {
                c.reader = None;
                c.sse = None;
                c.busy = false;
                c.reused = true;
                c.line.clear();
                return Ok(());
            }
            if used == 0 || input.is_empty() {
                return Ok(());
            }
        }
    }

    /// The head of connection `i`'s answer arrived: an HTTP error fails the backend, a
    /// session id from `initialize` is kept.
    fn response_head(&mut self, i: usize) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let Some(head) = c.reader.as_ref().and_then(ResponseReader::head) else {
            return;
        };
        let status = head.status;
        if c.initialize {
            if let Some(id) = head.session_id.clone() {
                self.session = Some(id);
            }
        }
        if head.is_event_stream() {
            c.sse = Some(SseParser::new(self.max_body));
        }
        if status >= 400 {
            let why = match status {
                401 | 403 => format!(
                    "{} answered {status}: set the credentials it expects in the backend's \"headers\" (for example \"Authorization\": \"Bearer ${{TOKEN}}\")",
                    self.url
                ),
                404 if self.session.is_some() => format!(
                    "{} answered 404: the server ended gangway's session; the next request starts a new one",
                    self.url
                ),
                _ => format!("{} answered HTTP {status}", self.url),
            };
            self.fail(why);
        }
    }

    /// Hands the decoded body of connection `i` to the gateway: a JSON answer once
    /// complete (`done`), an event stream event by event.
    fn response_data(&mut self, i: usize, done: bool) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let Some(reader) = c.reader.as_mut() else {
            return;
        };
        let status = reader.head().map_or(0, |h| h.status);
        if let Some(sse) = c.sse.as_mut() {
            let data = reader.take_data();
            let mut events = Vec::new();
            if let Err(e) = sse.feed(&data, &mut events) {
                let text = format!("{}: {e}", self.url);
                self.fail(text);
                return;
            }
            for e in events {
                if !e.data.is_empty() {
                    self.events.push(RemoteEvent::Line(e.data));
                }
            }
        } else if status == 200 && done {
            let body = reader.take_data();
            let body = body.trim_ascii();
            if !body.is_empty() {
                self.events.push(RemoteEvent::Line(body.to_vec()));
            }
        }
    }

    /// Connection `i`, kept alive from an earlier answer, was closed by the server (`e`)
    /// before any byte of the answer to its request: the request goes again, once, on a
    /// new connection. Returns whether it was queued again.
    fn resend(&mut self, registry: &Registry, i: usize, e: &io::Error) -> bool {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return false;
        };
        let closed = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        );
        let nothing_back = !c.reader.as_ref().is_some_and(|r| r.head().is_some());
        if !(c.busy && c.reused && !c.retried && closed && nothing_back) {
            return false;
        }
        let line = std::mem::take(&mut c.line);
        self.close(registry, i);
        self.queue.push_front((line, true));
        true
    }

    /// A sentence for an I/O error on a connection to the server: a refused connection
    /// says what to check.
    fn io_error(&self, what: &str, e: &io::Error) -> String {
        if let Some(text) = tls::explained(e) {
            text.to_string()
        } else if e.kind() == io::ErrorKind::ConnectionRefused {
            format!(
                "cannot connect to {}: {e}; is the server running there, and is the backend's \"url\" right?",
                self.url
            )
        } else {
            format!("{what} {}: {e}", self.url)
        }
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.events.push(RemoteEvent::Failed(why));
        }
    }

    /// Closes every connection (the backend stops); the server is told its session ended
    /// when there was one (a DELETE, not waited for).
    pub fn shut(&mut self, registry: &Registry) {
        for i in 0..self.conns.len() {
            self.close(registry, i);
        }
        if let Some(session) = self.session.take() {
            let mut out = Vec::new();
            let host = self.url.host_header();
            let headers: Vec<(&str, &str)> = std::iter::once(("Mcp-Session-Id", session.as_str()))
                .chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .collect();
            if write_request(&mut out, "DELETE", &self.url.path, &host, &headers, b"").is_ok() {
                if let Ok(mut addrs) = (self.url.host.as_str(), self.url.port).to_socket_addrs() {
                    if let Some(addr) = addrs.next() {
                        // Best effort, bounded: a server that does not take it at once
                        // learns of the end when the session expires.
                        let timeout = std::time::Duration::from_millis(200);
                        if let Some(config) = &self.tls {
                            let config = Arc::clone(config);
                            let _ = tls::send_blocking(config, &self.url.host, addr, &out, timeout);
                        } else if let Ok(mut s) =
                            std::net::TcpStream::connect_timeout(&addr, timeout)
                        {
                            let _ = s.set_write_timeout(Some(timeout));
                            let _ = s.write_all(&out);
                        }
                    }
                }
            }
        }
    }

    /// Whether something can be done without waiting (readiness not acted on, or queued
    /// lines and a free connection).
    pub fn has_ready_work(&self) -> bool {
        self.conns.iter().flatten().any(|c| {
            c.readable || (c.writable && (c.written < c.out.len() || c.stream.has_pending_output()))
        }) || (!self.queue.is_empty()
            && !self.failed
            && self
                .conns
                .iter()
                .any(|c| c.as_ref().map_or(true, |c| !c.busy)))
    }
}
