//! The HTTP front of `gangway serve` (`gangway::http::HttpFront`) driven by a script of
//! connection events against a gateway with one backend that never starts (no processes):
//! bytes arriving on connections (raw, or requests built from templates with the session
//! ids the front minted), peers closing, time passing, and messages a backend would send
//! written into sessions' output. Checked throughout: nothing panics; everything written to
//! a connection is a sequence of HTTP/1.1 responses (status line, headers, a body framed by
//! `Content-Length` or chunked coding, `100 Continue` allowed first), with nothing after a
//! response that closes; a connection's unwritten output stays within the slow-reader bound
//! plus one message; no more sessions than `max_sessions` are open.
//!
//! # Script format
//!
//! Events are `'\n'`-separated lines: a tag byte, then arguments. `C` is a connection
//! selector (modulo the connections accepted so far; `a` accepts one first if none).
//!
//! | tag | arguments | event |
//! |-----|-----------|-------|
//! | `a` |           | a connection is accepted |
//! | `r` | C bytes   | `bytes` arrive on C (`\\n` in them is written `\x01`) |
//! | `i` | C         | an `initialize` POST arrives on C |
//! | `p` | C s id    | a `ping` POST in session `s` (a session id seen so far, by selector) |
//! | `g` | C s last  | a GET of session `s`'s stream; `last` non-empty: `Last-Event-ID: last` |
//! | `d` | C s       | a DELETE of session `s` |
//! | `e` | C         | C's peer closes its sending side |
//! | `x` | C         | C is gone |
//! | `w` | n         | `n` seconds pass (`n` a byte), then due timers fire |
//! | `m` | k line    | gateway session `k` (a byte, modulo 8) gets `line` as a backend message |
//! | `o` | C n       | the client reads `n` KiB of C's output (`n` 255: all of it) |

use gangway::config::Config;
use gangway::gateway::{Gateway, SessionId};
use gangway::http::{HttpFront, Settings};
use std::path::Path;
use std::time::{Duration, Instant};

const MAX_BODY: usize = 4096;
const MAX_SESSIONS: usize = 4;
/// The front cuts a slow reader past 8 MiB; one message and framing may come on top.
const OUTPUT_BOUND: usize = 8 * 1024 * 1024 + 2 * MAX_BODY + 64 * 1024;

/// What the client has read of one connection, and whether the responses so far closed it.
struct Conn {
    id: usize,
    /// Output read and not yet parsed (a response in progress).
    pending: Vec<u8>,
    closed: bool,
    gone: bool,
}

impl Conn {
    fn new(id: usize) -> Conn {
        Conn {
            id,
            pending: Vec::new(),
            closed: false,
            gone: false,
        }
    }
}

/// Runs `script`; panics when an invariant breaks.
pub fn run(script: &[u8]) {
    let text =
        r#"{"expose": "tools", "catalog": false, "backends": {"b": {"command": "never-run"}}}"#;
    let Ok(config) = Config::parse(text, Path::new("fuzz.json"), &|_| None) else {
        panic!("the fuzz config is valid");
    };
    let mut now = Instant::now();
    let mut gw = Gateway::new(&config, now, 1_700_000_000);
    let mut front = HttpFront::new(Settings {
        tokens: Vec::new(),
        allowed_origins: Vec::new(),
        session_timeout: Duration::from_secs(60),
        max_connections: 6,
        max_sessions: MAX_SESSIONS,
        max_body: MAX_BODY,
        rate_limit: None,
    });
    let mut conns: Vec<Conn> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    for line in script.split(|&b| b == b'\n').take(256) {
        let Some((&tag, args)) = line.split_first() else {
            continue;
        };
        if std::env::var_os("GANGWAY_SCRIPT_TRACE").is_some() {
            eprintln!("event {:?}", String::from_utf8_lossy(line));
        }
        let pick = |conns: &mut Vec<Conn>, front: &mut HttpFront, now: Instant| -> usize {
            if conns.iter().all(|c| c.gone) {
                let id = front.accept(now);
                conns.push(Conn::new(id));
            }
            let live: Vec<usize> = (0..conns.len()).filter(|&i| !conns[i].gone).collect();
            live[usize::from(args.first().copied().unwrap_or(0)) % live.len()]
        };
        let session = |sessions: &Vec<String>| -> String {
            let s = args.get(1).copied().unwrap_or(0);
            sessions
                .get(usize::from(s) % sessions.len().max(1))
                .cloned()
                .unwrap_or_else(|| "none".to_string())
        };
        match tag {
            b'a' => {
                let id = front.accept(now);
                conns.push(Conn::new(id));
            }
            b'r' | b'i' | b'p' | b'g' | b'd' => {
                let k = pick(&mut conns, &mut front, now);
                let rest = args.get(1..).unwrap_or(&[]);
                let bytes: Vec<u8> = match tag {
                    b'r' => rest
                        .iter()
                        .map(|&b| if b == 1 { b'\n' } else { b })
                        .collect(),
                    b'i' => post(
                        "",
                        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"f","version":"1"}}}"#,
                    ),
                    b'p' => {
                        let id = args.get(2).copied().unwrap_or(b'1') % 10;
                        post(
                            &format!("Mcp-Session-Id: {}\r\n", session(&sessions)),
                            &format!(
                                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"b__t","arguments":{{}},"_meta":{{"progressToken":{id}}}}}}}"#
                            ),
                        )
                    }
                    b'g' => {
                        let last =
                            String::from_utf8_lossy(args.get(2..).unwrap_or(&[])).into_owned();
                        let last = if last.is_empty() {
                            String::new()
                        } else {
                            format!("Last-Event-ID: {last}\r\n")
                        };
                        format!("GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\n{last}\r\n", session(&sessions)).into_bytes()
                    }
                    _ => format!(
                        "DELETE /mcp HTTP/1.1\r\nMcp-Session-Id: {}\r\n\r\n",
                        session(&sessions)
                    )
                    .into_bytes(),
                };
                let c = conns[k].id;
                let wants = front.wants_input(c);
                if let (true, Some(input)) = (wants, front.input(c)) {
                    input.extend_from_slice(&bytes);
                    front.on_input(now, c, &mut gw);
                }
            }
            b'e' => {
                let k = pick(&mut conns, &mut front, now);
                front.on_eof(now, conns[k].id, &mut gw);
            }
            b'x' => {
                let k = pick(&mut conns, &mut front, now);
                front.on_closed(now, conns[k].id, &mut gw);
                conns[k].gone = true;
            }
            b'w' => {
                now += Duration::from_secs(u64::from(args.first().copied().unwrap_or(1)));
                gw.on_timer(now);
                front.on_timer(now, &mut gw);
            }
            b'm' => {
                let k = u32::from(args.first().copied().unwrap_or(0) % 8);
                let msg = args.get(1..).unwrap_or(&[]);
                if let Some(out) = gw.session_out(SessionId(k)) {
                    out.buf().extend_from_slice(msg);
                    out.buf().push(b'\n');
                }
            }
            b'o' => {
                let k = pick(&mut conns, &mut front, now);
                let n = args.get(1).copied().unwrap_or(255);
                read(
                    &mut front,
                    &mut conns[k],
                    &mut sessions,
                    (n != 255).then(|| usize::from(n) * 1024),
                );
            }
            _ => {}
        }
        front.pump(now, &mut gw);
        for conn in conns.iter_mut().filter(|c| !c.gone) {
            let len = front.output(conn.id).map_or(0, |o| o.len());
            assert!(
                len <= OUTPUT_BOUND,
                "connection {} holds {len} bytes of output",
                conn.id
            );
            if front.should_close(conn.id) {
                read(&mut front, conn, &mut sessions, None);
                front.on_closed(now, conn.id, &mut gw);
                conn.gone = true;
            }
        }
        assert!(
            front.session_count() <= MAX_SESSIONS,
            "{} sessions",
            front.session_count()
        );
    }
    for conn in conns.iter_mut().filter(|c| !c.gone) {
        read(&mut front, conn, &mut sessions, None);
    }
}

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The client reads up to `limit` bytes (all without one) of `conn`'s output and checks the
/// responses in it; session ids the front minted are remembered.
fn read(front: &mut HttpFront, conn: &mut Conn, sessions: &mut Vec<String>, limit: Option<usize>) {
    let Some(out) = front.output(conn.id) else {
        return;
    };
    let n = limit.map_or(out.len(), |l| l.min(out.len()));
    if n == 0 {
        return;
    }
    assert!(
        !conn.closed,
        "bytes after a response that closed the connection: {:?}",
        String::from_utf8_lossy(&out.pending()[..n.min(200)])
    );
    if std::env::var_os("GANGWAY_SCRIPT_TRACE").is_some() {
        eprintln!(
            "read conn {}: {:?}",
            conn.id,
            String::from_utf8_lossy(&out.pending()[..n])
        );
    }
    conn.pending.extend_from_slice(&out.pending()[..n]);
    out.consume(n);
    while let Some((used, close)) = response(&conn.pending, sessions) {
        conn.pending.drain(..used);
        if close {
            conn.closed = true;
            assert!(
                conn.pending.is_empty(),
                "bytes after a response that closed the connection"
            );
        }
    }
}

/// Parses one complete response at the start of `buf`: `Some((length, closes))`, `None`
/// while it is incomplete. Panics on anything that is not a well-framed response.
fn response(buf: &[u8], sessions: &mut Vec<String>) -> Option<(usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head =
        std::str::from_utf8(&buf[..end]).unwrap_or_else(|_| panic!("a head that is not UTF-8"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
    if status == 100 {
        return Some((end, false));
    }
    let (mut length, mut chunked, mut close) = (None, false, false);
    for l in lines.filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once(": ")
            .unwrap_or_else(|| panic!("a malformed header: {l:?}"));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    v.parse::<usize>()
                        .unwrap_or_else(|_| panic!("Content-Length {v:?}")),
                )
            }
            "transfer-encoding" => chunked = v == "chunked",
            "connection" => close = v == "close",
            "mcp-session-id" if !sessions.iter().any(|s| s == v) => sessions.push(v.to_string()),
            _ => {}
        }
    }
    assert!(
        length.is_some() != chunked,
        "a response must have exactly one of Content-Length and chunked: {head:?}"
    );
    if let Some(n) = length {
        return (buf.len() >= end + n).then_some((end + n, close));
    }
    let mut at = end;
    loop {
        let nl = buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&buf[at..at + nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .unwrap_or_else(|| {
                panic!(
                    "a bad chunk size {:?}",
                    String::from_utf8_lossy(&buf[at..at + nl])
                )
            });
        let data = at + nl + 2;
        if buf.len() < data + size + 2 {
            return None;
        }
        assert_eq!(
            &buf[data + size..data + size + 2],
            b"\r\n",
            "a chunk not ended by CRLF"
        );
        at = data + size + 2;
        if size == 0 {
            return Some((at, close));
        }
    }
}
