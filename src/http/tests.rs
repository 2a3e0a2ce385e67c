//! The HTTP front against a real gateway with no processes: requests in as bytes, answers
//! out as bytes; a backend's messages are written into the session's output as the gateway
//! would write them.

use super::*;
use crate::config::Config;
use std::path::Path;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"t","version":"1"}}}"#;

struct T {
    front: HttpFront,
    gw: Gateway,
    now: Instant,
}

fn settings() -> Settings {
    Settings {
        tokens: Vec::new(),
        allowed_origins: vec!["https://app.example".to_string()],
        session_timeout: Duration::from_secs(60),
        max_connections: 4,
        max_sessions: 2,
        max_body: 4096,
        rate_limit: None,
    }
}

impl T {
    fn new(settings: Settings) -> T {
        // A backend that is never spawned (no runtime here): a call to it stays in flight.
        let text =
            r#"{"expose": "tools", "catalog": false, "backends": {"b": {"command": "never-run"}}}"#;
        let config = Config::parse(text, Path::new("t.json"), &|_| None).expect("valid config");
        let now = Instant::now();
        T {
            front: HttpFront::new(settings),
            gw: Gateway::new(&config, now, 1_700_000_000),
            now,
        }
    }

    /// A front with the default settings, a connection and a session opened on it: the
    /// connection, the session id and its `Mcp-Session-Id` header line.
    fn with_session() -> (T, usize, String, String) {
        let mut t = T::new(settings());
        let c = t.conn();
        let sid = t.initialize(c);
        let header = format!("Mcp-Session-Id: {sid}\r\n");
        (t, c, sid, header)
    }

    fn conn(&mut self) -> usize {
        self.front.accept(self.now)
    }

    /// Sends raw bytes on `c` and returns everything written back since.
    fn send(&mut self, c: usize, bytes: &str) -> String {
        self.front
            .input(c)
            .expect("open connection")
            .extend_from_slice(bytes.as_bytes());
        self.front.on_input(self.now, c, &mut self.gw);
        self.take(c)
    }

    fn take(&mut self, c: usize) -> String {
        self.front.pump(self.now, &mut self.gw);
        let Some(out) = self.front.output(c) else {
            return String::new();
        };
        let text = String::from_utf8_lossy(out.pending()).into_owned();
        let n = out.len();
        out.consume(n);
        text
    }

    fn post(&mut self, c: usize, headers: &str, body: &str) -> String {
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(c, &req)
    }

    /// Opens a session; returns its id.
    fn initialize(&mut self, c: usize) -> String {
        let answer = self.post(c, "", INIT);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let id = header(&answer, "Mcp-Session-Id").expect("a session id");
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let accepted = self.post(c, &format!("Mcp-Session-Id: {id}\r\n"), note);
        assert!(
            accepted.starts_with("HTTP/1.1 202 Accepted\r\n"),
            "{accepted}"
        );
        id
    }

    /// Writes `line` into session `sid`'s output, as the gateway does for a backend message.
    fn backend_says(&mut self, sid: &str, line: &str) {
        let gs = self.front.sessions[sid].gw;
        let out = self.gw.session_out(gs).expect("session is open");
        out.buf().extend_from_slice(line.as_bytes());
        out.buf().push(b'\n');
    }
}

fn header(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"b__t","arguments":{},"_meta":{"progressToken":7}}}"#;

#[test]
fn initialize_mints_a_random_session_that_later_requests_must_name() {
    let mut t = T::new(settings());
    let c = t.conn();
    let a = t.initialize(c);
    let b = t.initialize(c);
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(a, b);
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(status(&t.post(c, "", ping)), 400, "no session id");
    let unknown = t.post(c, "Mcp-Session-Id: 0123\r\n", ping);
    assert_eq!(status(&unknown), 404);
    let ok = t.post(c, &format!("Mcp-Session-Id: {a}\r\n"), ping);
    assert_eq!(status(&ok), 200);
    assert!(
        ok.ends_with(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#),
        "{ok}"
    );
    let del = t.send(
        c,
        &format!("DELETE /mcp HTTP/1.1\r\nMcp-Session-Id: {a}\r\n\r\n"),
    );
    assert_eq!(status(&del), 200);
    assert_eq!(
        status(&t.post(c, &format!("Mcp-Session-Id: {a}\r\n"), ping)),
        404
    );
    // The limit of two sessions: `b` and one more.
    let c2 = t.conn();
    t.initialize(c2);
    assert_eq!(status(&t.post(c2, "", INIT)), 503);
}

#[test]
fn each_bad_request_gets_its_status() {
    let (mut t, c, _, s) = T::with_session();
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let cases: Vec<(String, u16)> = vec![
        (format!("{s}Origin: http://evil.example\r\n"), 403),
        (format!("{s}Origin: https://app.example\r\n"), 200),
        (format!("{s}Origin: http://localhost:5173\r\n"), 200),
        (format!("{s}MCP-Protocol-Version: 2099-01-01\r\n"), 400),
        (format!("{s}MCP-Protocol-Version: 2025-03-26\r\n"), 200),
    ];
    for (headers, want) in cases {
        assert_eq!(status(&t.post(c, &headers, ping)), want, "{headers}");
    }
    assert_eq!(status(&t.post(c, &s, "[1,2]")), 400, "a batch");
    assert_eq!(status(&t.post(c, &s, "{nope")), 400, "not JSON");
    let no_accept = format!("POST /mcp HTTP/1.1\r\nAccept: application/json\r\nContent-Type: application/json\r\n{s}Content-Length: {}\r\n\r\n{ping}", ping.len());
    assert_eq!(status(&t.send(c, &no_accept)), 406);
    let text = format!("POST /mcp HTTP/1.1\r\nAccept: */*\r\nContent-Type: text/plain\r\n{s}Content-Length: {}\r\n\r\n{ping}", ping.len());
    assert_eq!(status(&t.send(c, &text)), 415);
    assert_eq!(status(&t.send(c, "PUT /mcp HTTP/1.1\r\n\r\n")), 405);
    assert_eq!(status(&t.send(c, "GET /nope HTTP/1.1\r\n\r\n")), 404);
    let get = t.send(
        c,
        &format!("GET /mcp HTTP/1.1\r\nAccept: application/json\r\n{s}\r\n"),
    );
    assert_eq!(status(&get), 406);
    // A body over max_message_bytes is refused from its length, and the connection closes.
    let big = t.send(c, "POST /mcp HTTP/1.1\r\nContent-Length: 99999\r\n\r\n");
    assert_eq!(status(&big), 413);
    assert!(t.front.should_close(c));
    let c = t.conn();
    let huge = format!("GET /mcp HTTP/1.1\r\nX: {}\r\n", "a".repeat(HEAD_MAX + 10));
    assert_eq!(status(&t.send(c, &huge)), 431);
    let c = t.conn();
    assert_eq!(status(&t.send(c, "\x16\x03\x01 not http\r\n\r\n")), 400);
}

#[test]
fn tokens_are_required_when_configured() {
    let mut t = T::new(Settings {
        tokens: vec!["s3cret".to_string()],
        ..settings()
    });
    let c = t.conn();
    let none = t.post(c, "", INIT);
    assert_eq!(status(&none), 401);
    assert_eq!(header(&none, "WWW-Authenticate").as_deref(), Some("Bearer"));
    let wrong = t.post(c, "Authorization: Bearer s3cre\r\n", INIT);
    assert_eq!(status(&wrong), 401);
    assert!(!wrong.contains("s3cret"), "the token leaks: {wrong}");
    assert_eq!(
        status(&t.post(c, "Authorization: Bearer s3cret\r\n", INIT)),
        200
    );
}

#[test]
fn a_chunked_post_with_100_continue_is_served() {
    let mut t = T::new(settings());
    let c = t.conn();
    let body = INIT;
    let (a, b) = body.split_at(20);
    let req = "POST /mcp HTTP/1.1\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    let first = t.send(c, req);
    assert_eq!(first, "HTTP/1.1 100 Continue\r\n\r\n");
    let rest = format!("{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n", a.len(), b.len());
    let answer = t.send(c, &rest);
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains(r#""serverInfo""#));
}

#[test]
fn progress_and_the_answer_go_to_the_post_that_asked_and_the_rest_to_the_get_stream() {
    let (mut t, c, sid, s) = T::with_session();
    let g = t.conn();
    let get = t.send(
        g,
        &format!("GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\n{s}\r\n"),
    );
    assert_eq!(status(&get), 200);
    assert_eq!(
        header(&get, "Content-Type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(header(&get, "Cache-Control").as_deref(), Some("no-cache"));
    assert_eq!(header(&get, "X-Accel-Buffering").as_deref(), Some("no"));
    assert!(get.contains("retry: 1000"));
    // The call waits for a backend that never starts here.
    assert_eq!(t.post(c, &s, CALL), "");
    t.backend_says(&sid, r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#);
    t.backend_says(&sid, r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#);
    t.backend_says(
        &sid,
        r#"{"jsonrpc":"2.0","id":"c1","result":{"content":[]}}"#,
    );
    let post = t.take(c);
    assert_eq!(status(&post), 200);
    assert_eq!(
        header(&post, "Transfer-Encoding").as_deref(),
        Some("chunked")
    );
    let progress = post
        .find("notifications/progress")
        .expect("progress on the POST stream");
    let answer = post
        .find(r#""id":"c1""#)
        .expect("the answer on the POST stream");
    assert!(progress < answer);
    assert!(!post.contains("notifications/message"));
    assert!(
        post.ends_with("0\r\n\r\n"),
        "the stream ends with the answer: {post:?}"
    );
    let events = t.take(g);
    assert!(events.contains("notifications/message"), "{events}");
    assert!(!events.contains("progress"));
    // The connection serves the next request after the stream ended.
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    assert_eq!(status(&t.post(c, &s, ping)), 200);
}

#[test]
fn a_request_to_the_client_goes_to_the_open_post_while_no_get_stream_is_open() {
    let (mut t, c, sid, s) = T::with_session();
    t.post(c, &s, CALL);
    t.backend_says(
        &sid,
        r#"{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}"#,
    );
    let post = t.take(c);
    assert!(post.contains("sampling/createMessage"), "{post}");
    // Its answer comes back as a POST of its own: 202.
    let c2 = t.conn();
    let answer = r#"{"jsonrpc":"2.0","id":0,"result":{"role":"assistant","content":{"type":"text","text":"x"},"model":"m"}}"#;
    assert_eq!(status(&t.post(c2, &s, answer)), 202);
}

#[test]
fn a_dropped_post_stream_resumes_from_its_last_event_id() {
    let (mut t, c, sid, s) = T::with_session();
    t.post(c, &s, CALL);
    t.backend_says(&sid, r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#);
    let first = t.take(c);
    let id_line = first
        .lines()
        .find(|l| l.starts_with("id: "))
        .expect("an event id");
    let last = id_line.trim_start_matches("id: ").to_string();
    t.front.on_closed(t.now, c, &mut t.gw);
    // Meanwhile: more progress and the answer, kept for the stream.
    t.backend_says(&sid, r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":2}}"#);
    t.backend_says(
        &sid,
        r#"{"jsonrpc":"2.0","id":"c1","result":{"content":[]}}"#,
    );
    t.front.pump(t.now, &mut t.gw);
    let r = t.conn();
    let resumed = t.send(
        r,
        &format!(
            "GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\n{s}Last-Event-ID: {last}\r\n\r\n"
        ),
    );
    assert_eq!(status(&resumed), 200);
    assert!(
        !resumed.contains(r#""progress":1"#),
        "replayed what was seen: {resumed}"
    );
    assert!(
        resumed.contains(r#""progress":2"#) && resumed.contains(r#""id":"c1""#),
        "{resumed}"
    );
    assert!(resumed.ends_with("0\r\n\r\n"));
}

#[test]
fn a_slow_reader_is_cut_off_and_its_session_survives() {
    let (mut t, c, sid, s) = T::with_session();
    let g = t.conn();
    t.send(
        g,
        &format!("GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\n{s}\r\n"),
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":"{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    // Nobody reads `g`: its output grows until it passes the bound.
    for _ in 0..(SLOW_READER_MAX / big.len() + 2) {
        t.backend_says(&sid, &big);
        t.front.pump(t.now, &mut t.gw);
    }
    assert!(t.front.should_close(g), "the slow reader is cut");
    assert!(
        t.front.output(g).is_some_and(|o| o.is_empty()),
        "its output is dropped"
    );
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    assert_eq!(status(&t.post(c, &s, ping)), 200, "the session lives on");
}

#[test]
fn an_idle_session_expires_and_an_open_stream_keeps_it() {
    let mut t = T::new(settings());
    let c = t.conn();
    let a = t.initialize(c);
    let b = t.initialize(c);
    let g = t.conn();
    t.send(
        g,
        &format!("GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {b}\r\n\r\n"),
    );
    let later = t.now + Duration::from_secs(61);
    assert!(t.front.next_deadline().is_some_and(|d| d <= later));
    t.front.on_timer(later, &mut t.gw);
    t.now = later;
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    let c2 = t.conn();
    assert_eq!(
        status(&t.post(c2, &format!("Mcp-Session-Id: {a}\r\n"), ping)),
        404
    );
    assert_eq!(
        status(&t.post(c2, &format!("Mcp-Session-Id: {b}\r\n"), ping)),
        200
    );
    assert!(
        t.take(g).contains(": keep-alive"),
        "an idle stream hears a keep-alive comment"
    );
}

#[test]
fn the_legacy_sse_transport_names_its_endpoint_and_streams_answers() {
    let mut t = T::new(settings());
    let g = t.conn();
    let open = t.send(g, "GET /sse HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n");
    assert_eq!(status(&open), 200);
    let endpoint = open
        .lines()
        .skip_while(|l| *l != "event: endpoint")
        .nth(1)
        .and_then(|l| l.strip_prefix("data: "))
        .expect("an endpoint event")
        .to_string();
    assert!(endpoint.starts_with("/messages?sessionId="));
    let c = t.conn();
    let req = format!("POST {endpoint} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{INIT}", INIT.len());
    assert_eq!(status(&t.send(c, &req)), 202);
    let events = t.take(g);
    assert!(
        events.contains("event: message") && events.contains(r#""serverInfo""#),
        "{events}"
    );
    let bad = "POST /messages?sessionId=nope HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(status(&t.send(c, bad)), 404);
    // The session ends with its stream.
    t.front.on_closed(t.now, g, &mut t.gw);
    assert_eq!(t.front.session_count(), 0);
}

#[test]
fn too_many_connections_get_503() {
    let mut t = T::new(settings());
    let conns: Vec<usize> = (0..4).map(|_| t.conn()).collect();
    let fifth = t.conn();
    assert_eq!(status(&t.take(fifth)), 503);
    assert!(t.front.should_close(fifth));
    t.front.on_closed(t.now, fifth, &mut t.gw);
    t.front.on_closed(t.now, conns[0], &mut t.gw);
    let again = t.conn();
    assert_eq!(t.take(again), "", "room again after a close");
}

#[test]
fn a_request_that_does_not_arrive_in_time_gets_408() {
    let mut t = T::new(settings());
    let c = t.conn();
    assert_eq!(t.send(c, "POST /mcp HTTP/1.1\r\nContent-Le"), "");
    let due = t.front.next_deadline().expect("a deadline");
    t.front.on_timer(due, &mut t.gw);
    assert_eq!(status(&t.take(c)), 408);
    assert!(t.front.should_close(c));
}

#[test]
fn a_batch_is_served_on_2025_03_26_and_refused_after() {
    let (mut t, c, sid, s) = T::with_session();
    let batch = r#"[{"jsonrpc":"2.0","id":"b1","method":"ping"},{"jsonrpc":"2.0","id":"b2","method":"tools/call","params":{"name":"b__t","arguments":{},"_meta":{"progressToken":"bt"}}},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"zz"}}]"#;
    let newer = t.post(
        c,
        &format!("{s}MCP-Protocol-Version: 2025-06-18\r\n"),
        batch,
    );
    assert_eq!(status(&newer), 400);
    assert!(newer.contains("since 2025-06-18"), "{newer}");
    let stream = t.post(
        c,
        &format!("{s}MCP-Protocol-Version: 2025-03-26\r\n"),
        batch,
    );
    assert_eq!(
        header(&stream, "Content-Type").as_deref(),
        Some("text/event-stream")
    );
    assert!(
        stream.contains(r#""id":"b1""#),
        "the ping is answered at once: {stream}"
    );
    assert!(!stream.ends_with("0\r\n\r\n"), "the call is still open");
    t.backend_says(&sid, r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"bt","progress":1}}"#);
    t.backend_says(
        &sid,
        r#"{"jsonrpc":"2.0","id":"b2","result":{"content":[]}}"#,
    );
    let rest = t.take(c);
    assert!(
        rest.contains("\"progress\":1") && rest.contains(r#""id":"b2""#),
        "{rest}"
    );
    assert!(
        rest.ends_with("0\r\n\r\n"),
        "the stream ends with its last answer"
    );
    let notes =
        r#"[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"zz"}}]"#;
    assert_eq!(status(&t.post(c, &s, notes)), 202);
    assert_eq!(status(&t.post(c, &s, "[]")), 400);
    let init_in_batch = format!("[{INIT}]");
    assert_eq!(status(&t.post(c, &s, &init_in_batch)), 400);
}

#[test]
fn an_answered_stream_nobody_resumes_is_dropped_after_the_resume_window() {
    let mut t = T::new(Settings {
        session_timeout: RESUME_WINDOW * 2,
        ..settings()
    });
    let c = t.conn();
    let sid = t.initialize(c);
    let s = format!("Mcp-Session-Id: {sid}\r\n");
    t.post(c, &s, CALL);
    t.front.on_closed(t.now, c, &mut t.gw);
    t.backend_says(
        &sid,
        r#"{"jsonrpc":"2.0","id":"c1","result":{"content":[]}}"#,
    );
    t.front.pump(t.now, &mut t.gw);
    let kept = |t: &T| {
        t.front.sessions[&sid]
            .streams
            .keys()
            .filter(|&&n| n != 0)
            .count()
    };
    assert_eq!(kept(&t), 1, "kept for resumption");
    let due = t.front.next_deadline().expect("a deadline for the window");
    assert!(due <= t.now + RESUME_WINDOW);
    t.front.on_timer(t.now + RESUME_WINDOW, &mut t.gw);
    assert_eq!(kept(&t), 0, "dropped after the window");
}

#[test]
fn past_the_rate_a_token_gets_429_with_retry_after_and_other_tokens_do_not() {
    let limit = crate::ratelimit::RateLimit {
        per_second: 1.0,
        burst: 2,
    };
    let mut t = T::new(Settings {
        tokens: vec!["one".to_string(), "two".to_string()],
        rate_limit: Some(limit),
        ..settings()
    });
    let c = t.conn();
    let init = t.post(c, "Authorization: Bearer one\r\n", INIT);
    let sid = header(&init, "Mcp-Session-Id").expect("a session");
    let one = format!("Authorization: Bearer one\r\nMcp-Session-Id: {sid}\r\n");
    let two = format!("Authorization: Bearer two\r\nMcp-Session-Id: {sid}\r\n");
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    // The initialize took one of the two.
    assert_eq!(status(&t.post(c, &one, ping)), 200);
    let over = t.post(c, &one, ping);
    assert_eq!(status(&over), 429);
    assert_eq!(header(&over, "Retry-After").as_deref(), Some("1"));
    assert!(
        over.contains("-32029") && over.contains("rate limit"),
        "{over}"
    );
    assert_eq!(status(&t.post(c, &two, ping)), 200, "a bucket per token");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}"#;
    assert_eq!(
        status(&t.post(c, &one, note)),
        202,
        "notifications are not counted"
    );
    t.now += Duration::from_secs(1);
    assert_eq!(status(&t.post(c, &one, ping)), 200, "refilled");
}

#[test]
fn probes_answer_without_credentials_and_head_gets_no_body() {
    let mut t = T::new(Settings {
        tokens: vec!["secret".to_string()],
        ..settings()
    });
    let c = t.conn();
    let ok = t.send(c, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status(&ok), 200);
    assert!(ok.ends_with("\r\n\r\nok\n"), "{ok:?}");
    let head = t.send(c, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(header(&head, "Content-Length").as_deref(), Some("3"));
    assert!(head.ends_with("\r\n\r\n"), "no body after a HEAD: {head:?}");
    assert_eq!(status(&t.send(c, "GET /readyz HTTP/1.1\r\n\r\n")), 200);
    assert_eq!(
        status(&t.send(c, "GET /metrics HTTP/1.1\r\n\r\n")),
        401,
        "metrics need the token"
    );
    t.front.set_stopping();
    let stopping = t.send(c, "GET /readyz HTTP/1.1\r\n\r\n");
    assert_eq!(status(&stopping), 503);
    assert!(stopping.contains("shutting down"), "{stopping}");
}

#[test]
fn a_2026_07_28_request_is_checked_against_its_headers_and_gets_no_session() {
    let mut t = T::new(settings());
    let c = t.conn();
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let discover =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{meta}}}}}"#);
    let right = "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\n";
    let ok = t.post(c, right, &discover);
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(!ok.contains("Mcp-Session-Id"), "{ok}");
    assert!(ok.contains(r#""supportedVersions":["2026-07-28"]"#), "{ok}");
    // Headers that say something else than the body: 400 with the revision's code.
    let wrong = "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\n";
    let bad = t.post(c, wrong, &discover);
    assert_eq!(status(&bad), 400, "{bad}");
    assert!(bad.contains("-32020"), "{bad}");
    // No envelope under a modern header: 400; a removed method: 404.
    let bare = t.post(
        c,
        right,
        r#"{"jsonrpc":"2.0","id":2,"method":"server/discover"}"#,
    );
    assert_eq!(status(&bare), 400, "{bare}");
    let ping = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{{meta}}}}}"#);
    let gone = t.post(
        c,
        "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: ping\r\n",
        &ping,
    );
    assert_eq!(status(&gone), 404, "{gone}");
}
