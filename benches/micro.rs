//! Criterion micro-benchmarks of gangway's hot path, each on the public library API:
//!
//! - `framing`: `LineFramer` throughput over a pipe-sized reader, many small lines and
//!   1 MiB lines (bytes/s).
//! - `message`: classifying a line (`Message::parse`) and the splices that forward it
//!   (tools mode: id and tool name; meta mode: `use_tool` unwrapped into a new request;
//!   answers: the client's id put back), per message, 16 B and 64 KiB payloads.
//! - `gateway`: one whole call through the sans-IO `Gateway` (client line in, backend
//!   line out, backend answer in, client line out), meta and tools modes.
//! - `ids`: the id table at 1,000 requests in flight (insert, lookup, remove; find by
//!   origin id).
//! - `timer`: the timer wheel with 100k timers (insert, cancel, expire).
//!
//! `cargo bench --bench micro` (add a filter such as `-- message` to run one group).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gangway::config::Config;
use gangway::gateway::tools::{use_tool_params, CallParams, UseToolArgs};
use gangway::gateway::{Gateway, SessionId};
use gangway::timer::TimerWheel;
use gangway::wire::frame::{Frame, LineFramer};
use gangway::wire::ids::{parse_gateway_id, IdTable, IdText, Peer};
use gangway::wire::message::{span_of, splice, write_json_string, write_request, Message};
use std::collections::VecDeque;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const PAYLOADS: [(&str, usize); 2] = [("16B", 16), ("64KiB", 64 * KIB)];

/// A client `tools/call` as the e2e bench sends it: `use_tool` (meta) or `mock__echo`.
fn client_call(meta: bool, payload: usize) -> Vec<u8> {
    let text = "x".repeat(payload);
    let args = format!(r#"{{"text":"{text}"}}"#);
    let params = if meta {
        format!(
            r#"{{"name":"use_tool","arguments":{{"backend_server":"mock","server_tool":"echo","tool_arguments":{args}}}}}"#
        )
    } else {
        format!(r#"{{"name":"mock__echo","arguments":{args}}}"#)
    };
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#).into_bytes()
}

/// The `_meta` a revision 2026-07-28 client puts on every request.
const ENVELOPE: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

/// A 2026-07-28 client's `tools/call` of `mock__echo` (tools mode, the envelope after the
/// arguments, as the Python SDK writes it).
fn modern_call(payload: usize) -> Vec<u8> {
    let text = "x".repeat(payload);
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"mock__echo","arguments":{{"text":"{text}"}},{ENVELOPE}}}}}"#).into_bytes()
}

/// How the bench client speaks to the gateway.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `use_tool` after the handshake.
    Meta,
    /// `mock__echo` after the handshake.
    Tools,
    /// `mock__echo` as a revision 2026-07-28 client (no handshake; answers rewritten).
    Modern,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Meta => "meta",
            Mode::Tools => "tools",
            Mode::Modern => "modern",
        }
    }
}

/// The mock's answer to an echo, in its key order (`id` last). The id is followed by
/// blanks so that a benchmark can overwrite it in place with any gateway id.
fn backend_answer(payload: usize) -> (Vec<u8>, usize) {
    let text = "x".repeat(payload);
    let head = format!(
        r#"{{"result":{{"content":[{{"type":"text","text":"{text}"}}]}},"jsonrpc":"2.0","id":"#
    );
    let at = head.len();
    let mut line = head.into_bytes();
    line.extend_from_slice(b"1                   }");
    (line, at)
}

/// Writes `id` at `at`, padding the rest of the 20-byte field with blanks (valid JSON).
fn put_id(line: &mut [u8], at: usize, id: u64) {
    let text = IdText::new(id);
    let digits = text.as_bytes();
    line[at..at + digits.len()].copy_from_slice(digits);
    line[at + digits.len()..at + 20].fill(b' ');
}

// ---------------------------------------------------------------------------------------
// framing
// ---------------------------------------------------------------------------------------

/// Reads `input` through `framer` as the runtime does a pipe (64 KiB reads, frames taken
/// after every read); returns the number of frames.
fn frame_all(framer: &mut LineFramer, mut input: &[u8]) -> usize {
    let mut frames = 0;
    loop {
        match framer.read_from(&mut input) {
            Ok(0) => break,
            Ok(_) => {
                while let Some(frame) = framer.next_frame() {
                    if let Frame::Line(range) = frame {
                        black_box(&framer.buffer()[range]);
                    }
                    frames += 1;
                }
            }
            Err(e) => panic!("reading a slice failed: {e}"),
        }
    }
    frames
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");

    // 4 MiB of 128-byte lines: the size of a small JSON-RPC call.
    let mut small = Vec::with_capacity(4 * MIB);
    while small.len() + 128 <= 4 * MIB {
        small.extend_from_slice(&[b'a'; 127]);
        small.push(b'\n');
    }
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("128B_lines", |b| {
        let mut framer = LineFramer::new(16 * MIB);
        b.iter(|| frame_all(&mut framer, black_box(&small)));
    });

    // 8 lines of 1 MiB each.
    let mut large = Vec::with_capacity(8 * MIB + 8);
    for _ in 0..8 {
        large.extend_from_slice(&vec![b'a'; MIB]);
        large.push(b'\n');
    }
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("1MiB_lines", |b| {
        let mut framer = LineFramer::new(16 * MIB);
        b.iter(|| frame_all(&mut framer, black_box(&large)));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------
// message: classify and splice
// ---------------------------------------------------------------------------------------

/// Tools mode: the client's line with the id and the tool name replaced (what
/// `Gateway::forward` writes).
fn forward_tools(line: &[u8], gw: u64, out: &mut Vec<u8>) {
    let msg = Message::parse(line).expect("valid request");
    let params = CallParams::of(&msg).expect("call params");
    let name: String = serde_json::from_str(params.name.get()).expect("name");
    let tool = name.strip_prefix("mock__").expect("prefixed name");
    let mut new_name = Vec::with_capacity(tool.len() + 2);
    write_json_string(&mut new_name, tool);
    let name_span = span_of(line, params.name.get()).expect("name span");
    let id_span = msg.id_span().expect("id span");
    let gw_text = IdText::new(gw);
    let mut edits = [
        (id_span, gw_text.as_bytes()),
        (name_span, new_name.as_slice()),
    ];
    edits.sort_by_key(|(r, _)| r.start);
    out.clear();
    splice(out, line, &edits);
}

/// Meta mode: `use_tool` unwrapped into a `tools/call` of the backend's tool (what
/// `Gateway::use_tool` and `forward_built` write).
fn forward_meta(line: &[u8], gw: u64, out: &mut Vec<u8>) {
    let msg = Message::parse(line).expect("valid request");
    let params = CallParams::of(&msg).expect("call params");
    let args = UseToolArgs::read(params.arguments).expect("use_tool args");
    let tool = args.server_tool.as_deref().expect("server_tool");
    let body = use_tool_params(tool, args.tool_arguments, params.meta, params.task);
    out.clear();
    write_request(out, Some(gw), "tools/call", Some(&body));
}

/// An answer from the backend with the client's own id put back (`reply_spliced`).
fn reply(line: &[u8], client_id: &[u8], out: &mut Vec<u8>) {
    let msg = Message::parse(line).expect("valid answer");
    let gw = parse_gateway_id(msg.id.expect("id").get().as_bytes());
    black_box(gw);
    let span = msg.id_span().expect("id span");
    out.clear();
    splice(out, line, &[(span, client_id)]);
}

fn message(c: &mut Criterion) {
    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Elements(1));
    for (label, payload) in PAYLOADS {
        let meta_call = client_call(true, payload);
        let tools_call = client_call(false, payload);
        let (mut answer, at) = backend_answer(payload);
        put_id(&mut answer, at, 123_456);
        let mut out = Vec::with_capacity(2 * payload + 512);

        group.bench_function(format!("classify_request_{label}"), |b| {
            b.iter(|| Message::parse(black_box(&meta_call)).map(|m| m.kind).ok())
        });
        group.bench_function(format!("classify_answer_{label}"), |b| {
            b.iter(|| Message::parse(black_box(&answer)).map(|m| m.kind).ok())
        });
        let span = Message::parse(&tools_call)
            .ok()
            .and_then(|m| m.id_span())
            .expect("id span");
        group.bench_function(format!("splice_id_only_{label}"), |b| {
            b.iter(|| {
                out.clear();
                let gw = IdText::new(black_box(123_456));
                splice(
                    &mut out,
                    black_box(&tools_call),
                    &[(span.clone(), gw.as_bytes())],
                );
                out.len()
            })
        });
        group.bench_function(format!("forward_tools_{label}"), |b| {
            b.iter(|| {
                forward_tools(black_box(&tools_call), 123_456, &mut out);
                out.len()
            })
        });
        group.bench_function(format!("forward_meta_{label}"), |b| {
            b.iter(|| {
                forward_meta(black_box(&meta_call), 123_456, &mut out);
                out.len()
            })
        });
        group.bench_function(format!("reply_{label}"), |b| {
            b.iter(|| {
                reply(black_box(&answer), b"7", &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// gateway: one call through the sans-IO core
// ---------------------------------------------------------------------------------------

/// A gateway with one backend, `mock`, started and initialized, and a call to replay.
struct Rig {
    gw: Gateway,
    /// The bench client's session.
    s: SessionId,
    now: Instant,
    call: Vec<u8>,
    answer: Vec<u8>,
    answer_id_at: usize,
}

const INIT_RESULT: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"mock","version":"1.0.0"}}"#;
const TOOLS_RESULT: &str =
    r#"{"tools":[{"name":"echo","description":"Echoes","inputSchema":{"type":"object"}}]}"#;

impl Rig {
    fn new(mode: Mode, payload: usize) -> Rig {
        let meta = mode == Mode::Meta;
        let config = serde_json::json!({
            "expose": if meta { "meta" } else { "tools" },
            "backends": {"mock": {"command": "mock_server"}},
        })
        .to_string();
        let config =
            Config::parse(&config, Path::new("bench.json"), &|_| None).expect("valid config");
        let now = Instant::now();
        let (answer, answer_id_at) = backend_answer(payload);
        let mut rig = Rig {
            gw: Gateway::new(&config, now, 1_700_000_000),
            s: SessionId(0),
            now,
            call: match mode {
                Mode::Modern => modern_call(payload),
                _ => client_call(meta, payload),
            },
            answer,
            answer_id_at,
        };
        rig.s = rig.gw.open_session();
        if mode == Mode::Modern {
            let list = format!(
                r#"{{"jsonrpc":"2.0","id":"l","method":"tools/list","params":{{{ENVELOPE}}}}}"#
            );
            rig.client(list.as_bytes());
        } else {
            rig.client(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#);
            rig.client(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            if !meta {
                rig.client(br#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#);
            }
        }
        rig.serve_backend();
        // The first call starts the backend; answer whatever gangway asks on the way.
        let call = rig.call.clone();
        rig.client(&call);
        rig.serve_backend();
        let _ = rig.gw.take_actions();
        rig.take_client();
        rig
    }

    fn client(&mut self, line: &[u8]) {
        self.gw.on_client_line(self.now, self.s, line);
    }

    fn take_client(&mut self) -> Vec<u8> {
        let Some(q) = self.gw.session_out(self.s) else {
            return Vec::new();
        };
        let bytes = q.pending().to_vec();
        q.consume(bytes.len());
        bytes
    }

    /// Plays the backend until it has nothing left to answer: `initialize`, `tools/list`,
    /// and echo calls.
    fn serve_backend(&mut self) {
        loop {
            let bytes = self.gw.out.backends[0].pending().to_vec();
            self.gw.out.backends[0].consume(bytes.len());
            if bytes.is_empty() {
                return;
            }
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let msg = Message::parse(line).expect("gangway writes valid JSON-RPC");
                let (Some(id), Some(method)) = (msg.id, msg.method) else {
                    continue;
                };
                let result = match method {
                    "initialize" => INIT_RESULT,
                    "tools/list" => TOOLS_RESULT,
                    _ => {
                        let gw = parse_gateway_id(id.get().as_bytes()).expect("gateway id");
                        self.answer(gw);
                        continue;
                    }
                };
                let line = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get());
                self.gw.on_backend_line(self.now, 0, line.as_bytes());
            }
        }
    }

    fn answer(&mut self, gw: u64) {
        put_id(&mut self.answer, self.answer_id_at, gw);
        self.gw.on_backend_line(self.now, 0, &self.answer);
    }

    /// One call: the client's line in, the forwarded line taken, the answer in, the
    /// client's line taken. Returns the bytes the client got.
    fn round_trip(&mut self) -> usize {
        self.gw.on_client_line(self.now, self.s, &self.call);
        // Both modes write the gateway id first: `{"jsonrpc":"2.0","id":N,...`.
        let sent = self.gw.out.backends[0].pending();
        let digits = &sent[22..];
        let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(0);
        let gw = parse_gateway_id(&digits[..end]).expect("forwarded request has a gateway id");
        let n = self.gw.out.backends[0].len();
        self.gw.out.backends[0].consume(n);
        self.answer(gw);
        let got = self.gw.session_backlog(self.s);
        if let Some(q) = self.gw.session_out(self.s) {
            q.consume(got);
        }
        got
    }
}

fn gateway(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(1));
    for (label, payload) in PAYLOADS {
        for mode in [Mode::Meta, Mode::Tools, Mode::Modern] {
            let mut rig = Rig::new(mode, payload);
            let expected = rig.round_trip();
            assert!(expected > payload, "the client must get the echo back");
            let mode = mode.label();
            group.bench_function(format!("call_{mode}_{label}"), |b| {
                b.iter(|| rig.round_trip())
            });
            assert_eq!(rig.gw.in_flight(), 0, "every call must be answered");
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// ids
// ---------------------------------------------------------------------------------------

fn ids(c: &mut Criterion) {
    const IN_FLIGHT: u64 = 1000;
    let mut group = c.benchmark_group("ids");
    group.throughput(Throughput::Elements(1));

    // Steady state at 1,000 in flight: one request comes in, the oldest is answered.
    let mut table: IdTable<u64> = IdTable::new();
    let mut live = VecDeque::new();
    let mut next = 0u64;
    for _ in 0..IN_FLIGHT {
        let raw = IdText::new(next);
        live.push_back(
            table
                .insert(Some((Peer::Session(0), raw.as_bytes())), next)
                .unwrap(),
        );
        next += 1;
    }
    group.bench_function("insert_get_remove_1000_in_flight", |b| {
        b.iter(|| {
            let raw = IdText::new(next);
            let gw = table
                .insert(Some((Peer::Session(0), raw.as_bytes())), next)
                .expect("fresh id");
            next += 1;
            live.push_back(gw);
            let oldest = live.pop_front().expect("in flight");
            let data = table.get(oldest).map(|e| e.data);
            black_box(data);
            table.remove(oldest).is_some()
        })
    });
    let oldest = *live.front().expect("in flight");
    let oldest_raw = table
        .get(oldest)
        .and_then(|e| e.origin.as_ref())
        .map(|(_, raw)| raw.as_bytes().to_vec())
        .expect("a client origin");
    group.bench_function("find_by_origin_1000_in_flight", |b| {
        b.iter(|| table.find(Peer::Session(0), black_box(&oldest_raw)))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------
// timer
// ---------------------------------------------------------------------------------------

/// 100k deadlines spread over 0..30 s (request timeouts and idle timers live there),
/// from a fixed xorshift sequence so every run sees the same ones.
fn deadlines(origin: Instant) -> Vec<Instant> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            origin + Duration::from_micros(x % 30_000_000)
        })
        .collect()
}

fn timer(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut group = c.benchmark_group("timer_100k");
    group.throughput(Throughput::Elements(N));
    let origin = Instant::now();
    let times = deadlines(origin);

    // A wheel whose slab has already held 100k entries, as a busy gateway's has.
    let warm_wheel = || {
        let mut wheel = TimerWheel::new(origin);
        let handles: Vec<_> = times.iter().map(|&t| wheel.insert(t, 0u32)).collect();
        for h in handles {
            wheel.cancel(h);
        }
        wheel
    };
    group.bench_function("insert", |b| {
        b.iter_batched(
            warm_wheel,
            |mut wheel| {
                for &t in &times {
                    black_box(wheel.insert(t, 1u32));
                }
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("cancel", |b| {
        b.iter_batched(
            || {
                let mut wheel = warm_wheel();
                let handles: Vec<_> = times.iter().map(|&t| wheel.insert(t, 1u32)).collect();
                (wheel, handles)
            },
            |(mut wheel, handles)| {
                for h in handles {
                    black_box(wheel.cancel(h));
                }
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    // Time advances in 1 ms steps, as an event loop polling on every wakeup would see it;
    // every entry fires (and cascades down the levels on the way).
    group.bench_function("expire_1ms_steps", |b| {
        b.iter_batched(
            || {
                let mut wheel = warm_wheel();
                for &t in &times {
                    wheel.insert(t, 1u32);
                }
                wheel
            },
            |mut wheel| {
                let mut fired = 0u64;
                let mut now = origin;
                while fired < N {
                    now += Duration::from_millis(1);
                    while let Some(v) = wheel.poll(now) {
                        fired += u64::from(v);
                    }
                }
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the whole suite in about a minute and a half; the numbers are stable
    // to a few percent, which is all a per-message cost needs.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// ---------------------------------------------------------------------------------------
// scan
// ---------------------------------------------------------------------------------------

/// The one-pass scanner of `Message::parse` (`wire::scan::top`) against the serde_json pass
/// it replaces (`serde_members`, the slow path and oracle), on the mock's answer at 16 B,
/// 64 KiB and 1 MiB; and a `memchr` of the line for the speed of light.
fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    for (label, payload) in [("16B", 16), ("64KiB", 64 * KIB), ("1MiB", MIB)] {
        let (line, _) = backend_answer(payload);
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(format!("top_{label}"), |b| {
            b.iter(|| gangway::wire::scan::top(black_box(&line)).is_ok())
        });
        group.bench_function(format!("serde_{label}"), |b| {
            b.iter(|| gangway::wire::message::serde_members(black_box(&line)).is_ok())
        });
        group.bench_function(format!("memchr_{label}"), |b| {
            b.iter(|| memchr::memchr(b'\n', black_box(&line)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = framing, message, scan, gateway, ids, timer
}
criterion_main!(benches);
