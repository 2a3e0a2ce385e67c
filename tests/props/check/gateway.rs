//! The sans-IO gateway driven by a script of events, as the runtime would drive it: client
//! lines (well-formed requests built from a few selector bytes, and raw bytes), backend
//! lines (answers to the requests a backend really received, its own requests and
//! notifications, raw bytes), process exits, spawn failures, stdin EOF, termination, time
//! passing, a catalog from an earlier run and config reloads (SIGHUP). Checked throughout:
//! nothing panics; every line written to the client or a backend is a JSON-RPC message; no
//! client request is answered twice or answered without having been asked; no backend
//! process gets two requests with one id, or an answer to an id it never used; every tool and
//! prompt name in a `tools/list` or `prompts/list` answer matches `^[A-Za-z0-9_-]{1,64}$`,
//! and no name is listed twice unless a backend's raw bytes could have listed it twice; a
//! catalog the gateway hands over for saving reads back (`to_json`, `parse`) to the same
//! entries. Checked at the end, once every backend has exited and every deadline has passed:
//! every client request was answered and `in_flight() == 0`.
//!
//! # Script format
//!
//! A script is bytes, one event per line (`'\n'`-separated), so that any fuzz input is a
//! script and a hand-written one is readable. The first line is a header: its first byte
//! picks how tools are exposed (`m` meta, `t` tools, `b` both; any other byte modulo 3),
//! its second whether backends are stopped when idle (`0` never, otherwise after 30 s), its
//! third (a selector modulo `SETTINGS`, absent = `0`) the per-backend settings:
//!
//! | S | settings                                                                       |
//! |---|--------------------------------------------------------------------------------|
//! | 0 | none: every backend exposed as the top level says, prefixed with its name, `__` |
//! | 1 | alpha denies `add`; alpha__x lists `echo` and `*.*` directly; beta exposes `tools` |
//! | 2 | separator `-`; alpha's prefix is empty; beta's is `b`; alpha__x allows only `e*` and `v*` and exposes `both` |
//! | 3 | alpha and beta both have an empty prefix (their names collide); alpha__x exposes `meta` but lists `*` directly |
//! | 4 | separator `_`; alpha's prefix is `alpha__x`, like alpha__x's (names collide); beta denies `*` |
//! | 5 | alpha__x and beta run a process per session (`scope: session`); beta exposes `both` |
//!
//! Every other line is a tag byte and its arguments; a small argument is a *selector*:
//! `'0'..='9'` mean 0 to 9 and `'a'..='z'` 10 to 35, any other byte is its own value, and a
//! selector indexes a list of choices modulo its length. `B` is a backend selector, taken
//! modulo `backend_count()` when the event happens: `0` alpha, `1` alpha__x, `2` beta, and
//! each backend a reload adds (or adds back) gets the next index; a removed backend keeps
//! its index, and its process may still be running.
//!
//! | tag | arguments          | event                                                       |
//! |-----|--------------------|-------------------------------------------------------------|
//! | `c` | line               | the client writes `line` as it is                           |
//! | `r` | method id a b c    | the client sends a well-formed request (see `client_request`) |
//! | `u` | kind pick id       | the client uses a name it was shown or a configured backend (see `use_name`) |
//! | `n` | kind pick          | the client sends a notification (cancel a request, ...)    |
//! | `k` | pick shape         | the client answers a request a backend sent it              |
//! | `a` | B pick shape body  | backend B answers a request it received (`body`: raw result) |
//! | `b` | B line             | backend B writes `line` as it is                            |
//! | `q` | B method id        | backend B sends the client a request (sampling, roots, ...) |
//! | `m` | B kind pick        | backend B sends a notification (list changed, progress, ...) |
//! | `x` | B                  | backend B's process exits                                   |
//! | `z` | B                  | backend B closes its pipes                                  |
//! | `f` | B                  | backend B's next spawn fails                                |
//! | `e` | wait               | the client closes stdin (`wait` odd: input was a file)      |
//! | `t` |                    | SIGTERM                                                     |
//! | `w` | amount             | time passes (`ADVANCES`), and due timers fire               |
//! | `s` | B line             | backend B writes `line` to its stderr (quoted in errors)    |
//! | `o` | B n                | a line of `n` KiB over the limit arrives (odd B: from backend B, else from the client) |
//! | `l` | M P                | the catalog is replaced, as a reload pointing `catalog` elsewhere does: `M` = 0 turns it off; otherwise every backend whose index modulo 6 is a set bit of `M` has an entry, whose tools are the `CATALOG_TOOLS` at the set bits of `P` (and prompts `p1` and `p.2`, a resource, a template) |
//! | `v` | S                  | client events now come from client S modulo 3 (each has a session of its own, opened on first use; client 1 declares sampling and roots, client 2 nothing) |
//! | `V` |                    | the current client's session ends: its requests need no answer any more, and none may reach it |
//! | `h` | C S                | SIGHUP: the header's config, changed as reload `C` (modulo `RELOADS`, table below) says and with settings `S` (`0` the header's, else `S` modulo `SETTINGS`), is applied with `Gateway::reload` |
//!
//! Like the runtime, `l` and `h` do nothing once stdin ended or shutdown began.
//!
//! | C | reload                                                                          |
//! |---|---------------------------------------------------------------------------------|
//! | 0 | no change (after other reloads: back to the header's backends, removed ones added anew) |
//! | 1 | adds gamma (prefix `g`, denies `add`)                                          |
//! | 2 | removes alpha__x                                                               |
//! | 3 | changes alpha's args (a new process and a new catalog entry)                   |
//! | 4 | the top-level expose moves on (meta, tools, both, meta), and beta exposes `meta` with `add` direct |
//! | 5 | adds gamma, disables beta, and changes alpha's timeout (same process)         |
//!
//! Any other tag byte stands for one of these, weighted towards requests and answers.

use gangway::catalog::{self, Catalog};
use gangway::config::Config;
use gangway::gateway::{Action, Gateway, SessionId, StopSignal};
use gangway::wire::message::{Kind, Message};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The backends of every header, in the order the object form gives them (sorted by name).
/// `alpha__x` contains the tool-name separator, so `alpha__x__echo` must resolve to the
/// longer name. Reloads may add `gamma`.
pub const NAMES: [&str; 3] = ["alpha", "alpha__x", "beta"];

/// Tool names a catalog entry may list: a name of 70 characters and names with `.` must be
/// exposed under valid names, and `use_tool` under an empty prefix meets the meta-tool.
pub const CATALOG_TOOLS: [&str; 8] = [
    "echo",
    "a_tool_name_of_seventy_characters_which_no_client_accepts_as_it_is_xx",
    "files.read",
    "add",
    "v1.2.run",
    "use_tool",
    "",
    "ünïcode",
];

/// Per-backend settings a header or a reload may choose (see the module docs).
pub const SETTINGS: usize = 6;

/// Config changes a reload may make (see the module docs).
pub const RELOADS: usize = 6;

/// Scripts longer than this are cut, so one fuzz input cannot run for long.
const MAX_OPS: usize = 800;

/// Tags that any other tag byte is mapped to, weighted.
const TAGS: &[u8] = b"crrrrnkaaaaabqmmxzfetwwwsouulh";

/// How far `w` moves the clock; `None` means to the next deadline the gateway asked for.
const ADVANCES: [Option<Duration>; 16] = [
    Some(Duration::ZERO),
    Some(Duration::from_millis(1)),
    Some(Duration::from_millis(49)),
    Some(Duration::from_millis(51)),
    Some(Duration::from_millis(500)),
    Some(Duration::from_secs(1)),
    Some(Duration::from_millis(1500)),
    Some(Duration::from_secs(2)),
    Some(Duration::from_secs(3)),
    Some(Duration::from_secs(5)),
    Some(Duration::from_secs(10)),
    Some(Duration::from_secs(31)),
    Some(Duration::from_secs(61)),
    Some(Duration::from_secs(301)),
    None,
    None,
];

/// One event of a script. A backend `b` is a selector, taken modulo `backend_count()` when
/// the event happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The client writes these bytes as one line.
    ClientRaw(Vec<u8>),
    /// The client sends a well-formed request.
    ClientRequest {
        /// Which method.
        method: usize,
        /// How its id is chosen.
        id: usize,
        /// Selectors for its params.
        args: [usize; 3],
    },
    /// The client calls something by a name it was shown, or names a configured backend.
    UseName {
        /// What it does with the name.
        kind: usize,
        /// Which name.
        pick: usize,
        /// How its id is chosen.
        id: usize,
    },
    /// The client sends a notification.
    ClientNotify {
        /// Which notification.
        kind: usize,
        /// Which request it is about.
        pick: usize,
    },
    /// The client answers a request a backend sent it.
    ClientAnswer {
        /// Which request (0 is the latest).
        pick: usize,
        /// How it answers.
        shape: usize,
    },
    /// A backend answers a request it received.
    BackendAnswer {
        /// Backend selector.
        b: usize,
        /// Which request (0 is the latest).
        pick: usize,
        /// How it answers.
        shape: usize,
        /// A raw result for the shape that uses one.
        body: Vec<u8>,
    },
    /// A backend writes these bytes as one line.
    BackendRaw {
        /// Backend selector.
        b: usize,
        /// The line.
        line: Vec<u8>,
    },
    /// A backend sends the client a request.
    BackendRequest {
        /// Backend selector.
        b: usize,
        /// Which method.
        method: usize,
        /// How its id is chosen.
        id: usize,
    },
    /// A backend sends a notification.
    BackendNotify {
        /// Backend selector.
        b: usize,
        /// Which notification.
        kind: usize,
        /// Which request it is about, where that applies.
        pick: usize,
    },
    /// A backend's process exits.
    Exit(usize),
    /// A backend closes its pipes.
    Closed(usize),
    /// A backend's next spawn fails.
    FailNextSpawn(usize),
    /// The client closes gangway's stdin.
    Eof {
        /// Input was a file: requests in flight are waited for.
        wait: bool,
    },
    /// SIGTERM.
    Terminate,
    /// Time passes: an index into `ADVANCES`.
    Advance(usize),
    /// A backend writes a line to its stderr.
    Stderr {
        /// Backend selector.
        b: usize,
        /// The line.
        line: Vec<u8>,
    },
    /// The framer dropped a line over `max_message_bytes`.
    Oversize {
        /// From this backend (selector), or from the client when `None`.
        from: Option<usize>,
        /// Its length.
        len: usize,
    },
    /// The catalog is replaced (`set_catalog`).
    SetCatalog {
        /// 0: no catalog; otherwise bit `i` gives an entry to backends `i`, `i + 6`, ...
        which: usize,
        /// Bit `i` lists `CATALOG_TOOLS[i]` in every entry.
        tools: usize,
    },
    /// Client events now come from client `S` (modulo `MAX_SESSIONS`), whose session is
    /// opened (and initialized) on first use.
    Session(usize),
    /// The current client's session ends (`Gateway::close_session`).
    CloseSession,
    /// SIGHUP with a changed config.
    Reload {
        /// Which change (`RELOADS`).
        change: usize,
        /// Per-backend settings: 0 the header's, else `SETTINGS` modulo.
        settings: usize,
    },
}

/// A decoded script: the gateway's config and the events.
#[derive(Debug, Clone)]
pub struct Script {
    /// `expose` in the config: `meta`, `tools` or `both`.
    pub expose: &'static str,
    /// Whether backends stop when idle (after 30 s).
    pub idle: bool,
    /// Per-backend settings, an index below `SETTINGS`.
    pub settings: usize,
    /// The events, in order.
    pub ops: Vec<Op>,
}

/// A small choice from a byte: digits and lower-case letters count from 0, so hand-written
/// scripts read naturally; any other byte is its own value.
fn sel(b: u8) -> usize {
    match b {
        b'0'..=b'9' => usize::from(b - b'0'),
        b'a'..=b'z' => usize::from(b - b'a') + 10,
        _ => usize::from(b),
    }
}

/// Decodes a script; every byte string is one.
pub fn script_from_bytes(data: &[u8]) -> Script {
    let mut lines = data.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let expose = EXPOSES[match header.first() {
        Some(b'm') | None => 0,
        Some(b't') => 1,
        Some(b'b') => 2,
        Some(&other) => usize::from(other) % 3,
    }];
    let idle = header.get(1).is_some_and(|&b| b != b'0');
    let settings = header.get(2).map_or(0, |&b| sel(b) % SETTINGS);
    let ops = lines.filter_map(op_from_line).take(MAX_OPS).collect();
    Script {
        expose,
        idle,
        settings,
        ops,
    }
}

/// The values of `expose`, in the order the header's first byte counts them.
const EXPOSES: [&str; 3] = ["meta", "tools", "both"];

fn op_from_line(line: &[u8]) -> Option<Op> {
    let (&tag, rest) = line.split_first()?;
    let at = |i: usize| sel(rest.get(i).copied().unwrap_or(b'0'));
    let b = at(0);
    let tag = if b"cruknabqmxzfetwsolhvV".contains(&tag) {
        tag
    } else {
        TAGS[usize::from(tag) % TAGS.len()]
    };
    Some(match tag {
        b'c' => Op::ClientRaw(rest.to_vec()),
        b'r' => Op::ClientRequest {
            method: at(0),
            id: at(1),
            args: [at(2), at(3), at(4)],
        },
        b'u' => Op::UseName {
            kind: at(0),
            pick: at(1),
            id: at(2),
        },
        b'n' => Op::ClientNotify {
            kind: at(0),
            pick: at(1),
        },
        b'k' => Op::ClientAnswer {
            pick: at(0),
            shape: at(1),
        },
        b'a' => Op::BackendAnswer {
            b,
            pick: at(1),
            shape: at(2),
            body: rest.get(3..).unwrap_or_default().to_vec(),
        },
        b'b' => Op::BackendRaw {
            b,
            line: rest.get(1..).unwrap_or_default().to_vec(),
        },
        b'q' => Op::BackendRequest {
            b,
            method: at(1),
            id: at(2),
        },
        b'm' => Op::BackendNotify {
            b,
            kind: at(1),
            pick: at(2),
        },
        b'x' => Op::Exit(b),
        b'z' => Op::Closed(b),
        b'f' => Op::FailNextSpawn(b),
        b'e' => Op::Eof {
            wait: at(0) % 2 == 1,
        },
        b't' => Op::Terminate,
        b's' => Op::Stderr {
            b,
            line: rest.get(1..).unwrap_or_default().to_vec(),
        },
        b'o' => Op::Oversize {
            from: (rest.first().is_some_and(|c| c % 2 == 1)).then_some(b),
            len: (16 << 20) + 1024 * at(1),
        },
        b'l' => Op::SetCatalog {
            which: at(0),
            tools: at(1),
        },
        b'v' => Op::Session(at(0)),
        b'V' => Op::CloseSession,
        b'h' => Op::Reload {
            change: at(0),
            settings: at(1),
        },
        _ => Op::Advance(at(0) % ADVANCES.len()),
    })
}

/// The config text of a header (`expose`, `idle`, `settings`) changed by reload `change`
/// (`None`: as the header gives it).
pub fn config_text(expose: &str, idle: bool, settings: usize, change: Option<usize>) -> String {
    let idle = if idle { 30 } else { 0 };
    let mut top = json!({
        "expose": expose,
        "catalog": false,
        "backends": {
            "alpha": {"command": "alpha-mcp", "args": ["--stdio"], "timeout": 5,
                      "startup_timeout": 10, "idle_timeout": idle},
            "alpha__x": {"command": "x-mcp", "description": "Its name has the separator",
                         "timeout": 2, "startup_timeout": 3, "idle_timeout": idle},
            "beta": {"command": "docker", "args": ["run", "-i", "--rm", "beta-image"],
                     "timeout": 1.5, "startup_timeout": 4, "idle_timeout": idle},
        }
    });
    let backends = &mut top["backends"];
    match settings % SETTINGS {
        1 => {
            backends["alpha"]["tools"] = json!({"deny": ["add"]});
            backends["alpha__x"]["direct"] = json!(["echo", "*.*"]);
            backends["beta"]["expose"] = json!("tools");
        }
        2 => {
            backends["alpha"]["prefix"] = json!("");
            backends["beta"]["prefix"] = json!("b");
            backends["alpha__x"]["tools"] = json!({"allow": ["e*", "v*"]});
            backends["alpha__x"]["expose"] = json!("both");
        }
        3 => {
            backends["alpha"]["prefix"] = json!("");
            backends["beta"]["prefix"] = json!("");
            backends["alpha__x"]["expose"] = json!("meta");
            backends["alpha__x"]["direct"] = json!(["*"]);
        }
        4 => {
            backends["alpha"]["prefix"] = json!("alpha__x");
            backends["beta"]["tools"] = json!({"deny": ["*"]});
        }
        5 => {
            backends["alpha__x"]["scope"] = json!("session");
            backends["beta"]["scope"] = json!("session");
            backends["beta"]["expose"] = json!("both");
        }
        _ => {}
    }
    let gamma = json!({"command": "gamma-mcp", "prefix": "g", "tools": {"deny": ["add"]},
                       "timeout": 1, "startup_timeout": 2, "idle_timeout": idle});
    match change.map(|c| c % RELOADS) {
        Some(1) => backends["gamma"] = gamma,
        Some(2) => {
            if let Some(b) = backends.as_object_mut() {
                b.remove("alpha__x");
            }
        }
        Some(3) => backends["alpha"]["args"] = json!(["--stdio", "--v2"]),
        Some(4) => {
            let i = EXPOSES.iter().position(|e| *e == expose).unwrap_or(0);
            top["expose"] = json!(EXPOSES[(i + 1) % EXPOSES.len()]);
            let beta = &mut top["backends"]["beta"];
            beta["expose"] = json!("meta");
            beta["direct"] = json!(["add"]);
        }
        Some(5) => {
            backends["gamma"] = gamma;
            backends["beta"]["disabled"] = json!(true);
            backends["alpha"]["timeout"] = json!(1);
        }
        _ => {}
    }
    match settings % SETTINGS {
        2 => top["separator"] = json!("-"),
        4 => top["separator"] = json!("_"),
        _ => {}
    }
    top.to_string()
}

fn parse_config(text: &str) -> Config {
    Config::parse(text, Path::new("fuzz.json"), &|_| None).expect("the harness config is valid")
}

/// A catalog with an entry for every backend config in `configs` whose index modulo 6 is a
/// set bit of `which`, listing the `CATALOG_TOOLS` at the set bits of `tools`, a prompt
/// named with a `.`, a resource and a template.
fn catalog_for<'a>(
    configs: impl Iterator<Item = (usize, &'a gangway::config::BackendConfig)>,
    which: usize,
    tools: usize,
) -> Catalog {
    let mut entries = serde_json::Map::new();
    for (b, cfg) in configs {
        if which >> (b % 6) & 1 == 0 {
            continue;
        }
        let tools: Vec<Value> = CATALOG_TOOLS
            .iter()
            .enumerate()
            .filter(|(i, _)| tools >> i & 1 == 1)
            .map(|(_, name)| json!({"name": name, "inputSchema": {"type": "object"}}))
            .collect();
        entries.insert(
            catalog::fingerprint(cfg),
            json!({
                "backend": cfg.name,
                "updated": 1_700_000_000 + b,
                "init": {"protocolVersion": "2025-11-25",
                         "capabilities": {"tools": {"listChanged": true}, "prompts": {},
                                          "resources": {"subscribe": true}},
                         "serverInfo": {"name": cfg.name, "version": "0.9"}},
                "tools": tools,
                "prompts": [{"name": "p1"}, {"name": "p.2", "description": "dotted"}],
                "resources": [{"uri": format!("mem://{b}/r1"), "name": "r1"}],
                "resourceTemplates": [{"uriTemplate": format!("mem://{b}/t/{{id}}"), "name": "t"}],
            }),
        );
    }
    let text = json!({"version": catalog::VERSION, "entries": entries}).to_string();
    Catalog::parse(&text).expect("the harness catalog is valid")
}

/// Runs a script given as bytes (a fuzz input); panics when an invariant breaks.
pub fn run(data: &[u8]) {
    run_script(&script_from_bytes(data));
}

/// Runs a decoded script; panics when an invariant breaks.
pub fn run_script(script: &Script) {
    let mut h = Harness::new(script);
    for op in &script.ops {
        if h.exited {
            // The runtime exits on `Action::Exit`: no more events come.
            break;
        }
        h.apply(op);
    }
    h.finish();
}

/// A request a backend received and has not answered.
#[derive(Debug, Clone)]
struct Received {
    id: Vec<u8>,
    method: String,
    params: Value,
}

/// One client of the gateway: its session and what it is waiting for. Ids are the
/// session's own: two sessions may use the same one at once.
#[derive(Default)]
struct Client {
    /// Its session; `None` once it was closed.
    s: Option<SessionId>,
    /// Ids (raw JSON) of its requests awaiting their answer, with their method.
    waiting: BTreeMap<Vec<u8>, String>,
    /// Ids it cancelled while waiting: one late answer is tolerated; never reused.
    cancelled: BTreeSet<Vec<u8>>,
    /// Ids answered, which it may use again.
    answered: Vec<Vec<u8>>,
    /// Ids (raw) of requests backends sent it, not answered yet.
    to_client: Vec<(Vec<u8>, String)>,
    /// Its last fresh id: every client counts from 1, so sessions use the same ids.
    next_id: u64,
}

/// The most sessions a script opens.
const MAX_SESSIONS: usize = 3;

/// The gateway, a clock, and a model of the client and the backend processes. Per-backend
/// vectors grow with `backend_count()` (see `grow`).
struct Harness {
    gw: Gateway,
    /// The clients, one per session; `cur` is the one the client events come from.
    clients: Vec<Client>,
    cur: usize,
    now: Instant,
    /// The header, which reloads change.
    expose: &'static str,
    idle: bool,
    settings: usize,
    /// Names of the backends in the running config, in config order.
    configured: Vec<String>,
    /// Backend processes running (spawned, not yet exited).
    alive: Vec<bool>,
    /// The gateway closed the backend's stdin: what it writes after that is never read.
    stdin_closed: Vec<bool>,
    /// The next spawn of the backend fails.
    fail_spawn: Vec<bool>,
    /// The client still writes (no EOF, no SIGTERM yet).
    client_open: bool,
    /// The gateway asked to exit.
    exited: bool,
    /// Tool and prompt names of the latest `tools/list` and `prompts/list` answers.
    shown_tools: Vec<String>,
    shown_prompts: Vec<String>,
    /// A backend wrote bytes of the script's own (a raw line or result), which may list one
    /// name twice: names in list answers are then not checked for uniqueness.
    raw_lists: bool,
    /// Requests each backend process received and has not answered.
    received: Vec<Vec<Received>>,
    /// Ids (raw) each backend process used for its own requests to the client.
    asked: Vec<Vec<String>>,
    /// Ids of every request each backend process received: gangway never reuses one.
    ids_seen: Vec<BTreeSet<Vec<u8>>>,
    next_backend_id: u64,
    /// Lines checked, for failure messages: the last few events.
    trail: Vec<String>,
}

impl Harness {
    fn new(script: &Script) -> Harness {
        let text = config_text(script.expose, script.idle, script.settings, None);
        let config = parse_config(&text);
        let now = Instant::now();
        let mut gw = Gateway::new(&config, now, 1_700_000_000);
        let s = gw.open_session();
        assert_eq!(gw.backend_count(), NAMES.len());
        for (b, name) in NAMES.iter().enumerate() {
            assert_eq!(gw.backend_config(b).map(|c| c.name.as_str()), Some(*name));
        }
        let mut h = Harness {
            gw,
            clients: vec![Client {
                s: Some(s),
                ..Client::default()
            }],
            cur: 0,
            now,
            expose: script.expose,
            idle: script.idle,
            settings: script.settings,
            configured: config.enabled().map(|c| c.name.clone()).collect(),
            alive: Vec::new(),
            stdin_closed: Vec::new(),
            fail_spawn: Vec::new(),
            client_open: true,
            exited: false,
            shown_tools: Vec::new(),
            shown_prompts: Vec::new(),
            raw_lists: false,
            received: Vec::new(),
            asked: Vec::new(),
            ids_seen: Vec::new(),
            next_backend_id: 1,
            trail: Vec::new(),
        };
        h.grow();
        h
    }

    /// Backends a reload added get their model, not running.
    fn grow(&mut self) {
        let n = self.gw.backend_count();
        self.alive.resize(n, false);
        self.stdin_closed.resize(n, false);
        self.fail_spawn.resize(n, false);
        self.received.resize_with(n, Vec::new);
        self.asked.resize_with(n, Vec::new);
        self.ids_seen.resize_with(n, BTreeSet::new);
    }

    /// Backend selector `b` as an index.
    fn backend(&self, b: usize) -> usize {
        b % self.gw.backend_count().max(1)
    }

    fn note(&mut self, what: String) {
        if tracing() {
            eprintln!("{what}");
        }
        if self.trail.len() == 40 {
            self.trail.remove(0);
        }
        self.trail.push(what);
    }

    /// Panics with the recent events.
    fn fail(&self, what: String) -> ! {
        panic!(
            "{what}\n--- last events (> in, < out):\n{}",
            self.trail.join("\n")
        );
    }

    fn apply(&mut self, op: &Op) {
        // The gateway may have made slots since the model last looked (a session's own
        // process of a session-scoped backend is made when the session first needs it).
        self.grow();
        match op {
            Op::ClientRaw(line) => self.client_line(line),
            Op::ClientRequest { method, id, args } => {
                let id = self.choose_id(*id);
                let line = client_request(*method, &id, args);
                self.client_line(line.as_bytes());
            }
            Op::UseName { kind, pick, id } => self.use_name(*kind, *pick, *id),
            Op::ClientNotify { kind, pick } => self.client_notify(*kind, *pick),
            Op::ClientAnswer { pick, shape } => self.client_answer(*pick, *shape),
            Op::BackendAnswer {
                b,
                pick,
                shape,
                body,
            } => self.backend_answer(self.backend(*b), *pick, *shape, body),
            Op::BackendRaw { b, line } => {
                let b = self.backend(*b);
                if self.alive[b] {
                    self.raw_lists = true;
                }
                self.backend_line(b, line);
            }
            Op::BackendRequest { b, method, id } => {
                self.backend_request(self.backend(*b), *method, *id);
            }
            Op::BackendNotify { b, kind, pick } => {
                self.backend_notify(self.backend(*b), *kind, *pick);
            }
            Op::Exit(b) => self.exit(self.backend(*b), "exit status 1"),
            Op::Closed(b) => {
                let b = self.backend(*b);
                if self.alive[b] {
                    self.note(format!("> backend {b} closed its pipes"));
                    self.gw.on_backend_closed(self.now, b);
                    self.pump();
                }
            }
            Op::FailNextSpawn(b) => {
                let b = self.backend(*b);
                self.fail_spawn[b] = true;
            }
            Op::Eof { wait } => {
                if self.client_open {
                    self.client_open = false;
                    self.note(format!("> client EOF (wait {wait})"));
                    self.gw.on_client_eof(self.now, *wait);
                    self.pump();
                }
            }
            Op::Session(i) => {
                let i = i % MAX_SESSIONS;
                while self.clients.len() <= i {
                    let n = self.clients.len();
                    let s = self.gw.open_session();
                    self.note(format!("> client {n} opens session {s:?}"));
                    self.clients.push(Client {
                        s: Some(s),
                        ..Client::default()
                    });
                    let caps = if n == 1 {
                        r#"{"sampling":{},"roots":{"listChanged":true}}"#
                    } else {
                        "{}"
                    };
                    let was = std::mem::replace(&mut self.cur, n);
                    let line = format!(
                        r#"{{"jsonrpc":"2.0","id":"init-{n}","method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{caps},"clientInfo":{{"name":"fuzz-{n}","version":"0"}}}}}}"#
                    );
                    self.client_line(line.as_bytes());
                    self.cur = was;
                }
                self.cur = i;
            }
            Op::CloseSession => {
                let c = &mut self.clients[self.cur];
                if let Some(s) = c.s.take() {
                    c.waiting.clear();
                    c.cancelled.clear();
                    c.to_client.clear();
                    self.note(format!("> client {} closes session {s:?}", self.cur));
                    self.gw.close_session(self.now, s);
                    self.pump();
                }
            }
            Op::Terminate => {
                self.client_open = false;
                self.note("> SIGTERM".to_string());
                self.gw.on_terminate(self.now);
                self.pump();
            }
            Op::Stderr { b, line } => {
                let b = self.backend(*b);
                if self.alive[b] {
                    self.note(format!("> backend {b} stderr: {}", excerpt(line)));
                    self.gw.on_backend_stderr(b, line);
                    self.pump();
                }
            }
            Op::Oversize { from, len } => {
                let max = 16 << 20;
                match from.map(|b| self.backend(b)) {
                    Some(b) if self.alive[b] => self.gw.on_backend_oversize(b, *len, max),
                    Some(_) => {}
                    None if self.client_open && self.gw.wants_client_input() => {
                        if let Some(s) = self.clients[self.cur].s {
                            self.gw.on_client_oversize(s, *len, max);
                        }
                    }
                    None => {}
                }
                self.note(format!("> oversize line of {len} bytes from {from:?}"));
                self.pump();
            }
            Op::Advance(i) => {
                let next = self.gw.next_deadline();
                let to = match ADVANCES[*i % ADVANCES.len()] {
                    Some(d) => self.now + d,
                    None => next.map_or(self.now, |d| d.max(self.now)),
                };
                self.note(format!("> time +{:?}", to - self.now));
                self.now = to;
                self.gw.on_timer(self.now);
                self.pump();
            }
            Op::SetCatalog { which, tools } => {
                // The runtime replaces the catalog only at start and on a reload, which it
                // ignores once shutdown began.
                if !self.gw.wants_client_input() {
                    return;
                }
                let catalog = (*which != 0).then(|| {
                    let configs = (0..self.gw.backend_count())
                        .filter_map(|b| self.gw.backend_config(b).map(|c| (b, c)));
                    catalog_for(configs, *which, *tools)
                });
                self.note(format!(
                    "> catalog: {:?}",
                    catalog.as_ref().map(|c| c.entries.len())
                ));
                self.gw.set_catalog(catalog);
                self.pump();
            }
            Op::Reload { change, settings } => {
                if !self.gw.wants_client_input() {
                    return;
                }
                let settings = match settings {
                    0 => self.settings,
                    s => s % SETTINGS,
                };
                let text = config_text(self.expose, self.idle, settings, Some(*change));
                let config = parse_config(&text);
                let reloaded = self.gw.reload(self.now, &config);
                self.note(format!("> SIGHUP: {text}\n< {reloaded:?}"));
                self.configured = config.enabled().map(|c| c.name.clone()).collect();
                self.grow();
                self.pump();
            }
        }
    }

    /// Ends the run: every backend process exits (again and again, if the gateway restarts
    /// it for requests still queued) and the clock runs past every deadline. Then nothing
    /// may be tracked and every client request must have had its answer.
    fn finish(&mut self) {
        for _ in 0..100 {
            self.grow();
            for b in 0..self.gw.backend_count() {
                self.exit(b, "exit status 0");
            }
            match self.gw.next_deadline() {
                Some(d) => {
                    self.now = self.now.max(d);
                    self.note(format!("> time to next deadline {d:?}"));
                    self.gw.on_timer(self.now);
                    self.pump();
                }
                None if !self.alive.contains(&true) => break,
                None => {}
            }
        }
        if self.gw.next_deadline().is_some() || self.alive.contains(&true) {
            self.fail("the gateway keeps setting deadlines or restarting backends after every backend exited, for 100 rounds".to_string());
        }
        if self.gw.in_flight() != 0 {
            self.fail(format!(
                "{} requests still tracked after every backend exited and every deadline passed",
                self.gw.in_flight()
            ));
        }
        let ids: Vec<_> = self
            .clients
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.waiting.iter().map(move |(id, method)| {
                    format!("session {i}: {} ({method})", String::from_utf8_lossy(id))
                })
            })
            .collect();
        if !ids.is_empty() {
            self.fail(format!("client requests never answered: {ids:?}"));
        }
    }

    fn exit(&mut self, b: usize, status: &str) {
        if self.alive[b] {
            self.alive[b] = false;
            self.note(format!("> backend {b} exited ({status})"));
            self.gw.on_backend_exit(self.now, b, status);
            self.pump();
        }
    }

    /// Carries out the gateway's actions as the runtime does, then reads what it wrote.
    fn pump(&mut self) {
        self.grow();
        loop {
            let actions = self.gw.take_actions();
            if actions.is_empty() {
                break;
            }
            // Handling an action can make a slot (a session's own process of a
            // session-scoped backend), as the runtime's loop knows too.
            self.grow();
            for action in actions {
                self.note(format!("< {action:?}"));
                match action {
                    Action::Spawn(b) => {
                        // A process not yet reaped is killed and replaced, with no exit event.
                        self.received[b].clear();
                        self.asked[b].clear();
                        self.ids_seen[b].clear();
                        self.stdin_closed[b] = false;
                        if std::mem::take(&mut self.fail_spawn[b]) {
                            self.alive[b] = false;
                            self.gw
                                .on_spawn_failed(self.now, b, "fuzz: no such program");
                        } else {
                            self.alive[b] = true;
                        }
                    }
                    Action::CloseStdin(b) => self.stdin_closed[b] = true,
                    Action::Signal(b, StopSignal::Kill) => {
                        if self.alive[b] {
                            self.alive[b] = false;
                            self.gw.on_backend_exit(self.now, b, "signal 9");
                        }
                    }
                    Action::Signal(_, StopSignal::Term) => {}
                    Action::Exit => self.exited = true,
                }
            }
        }
        // A slot can also be made with no action for it (a session's own process whose
        // first request was refused).
        self.grow();
        self.read_client();
        for b in 0..self.gw.backend_count() {
            self.read_backend(b);
        }
        self.check_catalog();
    }

    /// Checks every line written to each client and keeps track of answers.
    fn read_client(&mut self) {
        for i in 0..self.clients.len() {
            self.read_session(i);
        }
    }

    /// Checks every line written to client `i`: an answer must be to a request of its own.
    fn read_session(&mut self, i: usize) {
        let Some(q) = self.clients[i].s.and_then(|s| self.gw.session_out(s)) else {
            return;
        };
        let bytes = q.pending().to_vec();
        q.consume(bytes.len());
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            self.fail(format!(
                "client output is not whole lines: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        for line in bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            self.note(format!("< client {i}: {}", excerpt(line)));
            let msg = match Message::parse(line) {
                Ok(m) => m,
                Err(bad) => {
                    // An error answer to a request whose id could not be read has id null.
                    let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                    if v.get("id") == Some(&Value::Null) && v["error"].is_object() {
                        continue;
                    }
                    self.fail(format!(
                        "gangway wrote the client a line that is not JSON-RPC ({}): {}",
                        bad.reason,
                        excerpt(line)
                    ));
                }
            };
            let id = msg.id.map(|i| i.get().as_bytes().to_vec());
            match (msg.kind, id) {
                (Kind::Response, Some(id)) => {
                    let c = &mut self.clients[i];
                    if let Some(method) = c.waiting.remove(&id) {
                        c.answered.push(id);
                        self.check_names(&method, line);
                    } else if !c.cancelled.remove(&id) {
                        self.fail(format!(
                            "answer to session {i}'s id {} which none of its requests awaits (answered twice, never asked, or another session's): {}",
                            String::from_utf8_lossy(&id),
                            excerpt(line)
                        ));
                    }
                }
                (Kind::Request, Some(id)) => {
                    let method = msg.method.unwrap_or("").to_string();
                    self.clients[i].to_client.push((id, method));
                }
                _ if msg.method == Some("notifications/cancelled") => {
                    if let Some(target) = cancelled_id(&msg) {
                        self.clients[i].to_client.retain(|(id, _)| *id != target);
                    }
                }
                _ => {}
            }
        }
    }

    /// Checks the names of a `tools/list` or `prompts/list` answer: each is one a client
    /// accepts, and none is listed twice (unless a backend's raw bytes may have listed it
    /// twice). Keeps them for `use_name`.
    fn check_names(&mut self, method: &str, line: &[u8]) {
        let key = match method {
            "tools/list" => "tools",
            "prompts/list" => "prompts",
            _ => return,
        };
        let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        let Some(items) = v["result"][key].as_array() else {
            return;
        };
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            let name = item["name"].as_str().unwrap_or_default();
            let valid = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !valid {
                self.fail(format!(
                    "{method} lists the name {:?}, which is not ^[A-Za-z0-9_-]{{1,64}}$: {}",
                    item["name"],
                    excerpt(line)
                ));
            }
            if !self.raw_lists && names.iter().any(|n| n == name) {
                self.fail(format!(
                    "{method} lists the name {name:?} twice: {}",
                    excerpt(line)
                ));
            }
            names.push(name.to_string());
        }
        if key == "tools" {
            self.shown_tools = names;
        } else {
            self.shown_prompts = names;
        }
    }

    /// Takes the catalog the gateway wants saved, as the runtime does, and checks that its
    /// file text reads back to the same entries.
    fn check_catalog(&mut self) {
        let Some(catalog) = self.gw.catalog_to_save().cloned() else {
            return;
        };
        self.note(format!(
            "< catalog to save: {} entries",
            catalog.entries.len()
        ));
        let text = catalog.to_json();
        let again = match Catalog::parse(&text) {
            Ok(c) => c,
            Err(e) => self.fail(format!(
                "the catalog to save does not read back: {e}\n{text}"
            )),
        };
        let same = again.entries.len() == catalog.entries.len()
            && catalog.entries.iter().all(|(fp, entry)| {
                again
                    .entries
                    .get(fp)
                    .is_some_and(|e| e.same_content(entry) && e.backend == entry.backend)
            });
        if !same {
            self.fail(format!("the catalog to save reads back different:\n{text}"));
        }
    }

    /// Checks every line written to backend `b` and records the requests it receives.
    fn read_backend(&mut self, b: usize) {
        let bytes = self.gw.out.backends[b].pending().to_vec();
        self.gw.out.backends[b].consume(bytes.len());
        if !self.alive[b] || self.stdin_closed[b] {
            // No process reads these bytes.
            return;
        }
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            self.fail(format!(
                "output to backend {b} is not whole lines: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        for line in bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            self.note(format!("< backend {b}: {}", excerpt(line)));
            let msg = match Message::parse(line) {
                Ok(m) => m,
                Err(bad) => self.fail(format!(
                    "gangway wrote backend {b} a line that is not JSON-RPC ({}): {}",
                    bad.reason,
                    excerpt(line)
                )),
            };
            let id = msg.id.map(|i| i.get().as_bytes().to_vec());
            if let (Kind::Response, Some(id)) = (msg.kind, &id) {
                let id = String::from_utf8_lossy(id);
                if !self.asked[b].iter().any(|a| *a == id) {
                    self.fail(format!(
                        "gangway answered backend {b} with id {id}, which it never used: {}",
                        excerpt(line)
                    ));
                }
            }
            if let (Kind::Request, Some(id)) = (msg.kind, id) {
                if !self.ids_seen[b].insert(id.clone()) {
                    self.fail(format!(
                        "gangway sent backend {b} a second request with id {}: {}",
                        String::from_utf8_lossy(&id),
                        excerpt(line)
                    ));
                }
                let params = msg
                    .params
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or(Value::Null);
                self.received[b].push(Received {
                    id,
                    method: msg.method.unwrap_or("").to_string(),
                    params,
                });
            }
        }
    }

    /// Sends a client line, as the runtime would while it reads stdin. A request whose id is
    /// still awaiting an answer (or was cancelled) is not sent: a client may reuse an id only
    /// once it has been answered.
    fn client_line(&mut self, line: &[u8]) {
        let cur = self.cur;
        let Some(s) = self.clients[cur].s else {
            return;
        };
        if !self.client_open || !self.gw.wants_client_input() || line.contains(&b'\n') {
            return;
        }
        let c = &mut self.clients[cur];
        let trimmed = trim_end(line);
        let asks = match Message::parse(trimmed) {
            Ok(m) if m.kind == Kind::Request => m.id.zip(m.method),
            Ok(m) => {
                if m.method == Some("notifications/cancelled") {
                    if let Some(target) = cancelled_id(&m) {
                        if c.waiting.remove(&target).is_some() {
                            c.cancelled.insert(target);
                        }
                    }
                }
                None
            }
            // The gateway answers an invalid message with its id when it can read one.
            Err(bad) => bad.id.map(|id| (id, "(invalid)")),
        };
        if let Some((id, method)) = asks {
            let id = id.get().as_bytes().to_vec();
            if c.waiting.contains_key(&id) || c.cancelled.contains(&id) {
                return;
            }
            c.answered.retain(|a| *a != id);
            c.waiting.insert(id, method.to_string());
        }
        self.note(format!("> client {cur}: {}", excerpt(line)));
        self.gw.on_client_line(self.now, s, line);
        self.pump();
    }

    /// A fresh id, mostly; now and then one answered before (ids may be reused).
    fn choose_id(&mut self, how: usize) -> String {
        match how % 6 {
            4 if !self.clients[self.cur].answered.is_empty() => {
                let answered = &self.clients[self.cur].answered;
                let i = how / 6 % answered.len();
                String::from_utf8_lossy(&answered[i]).into_owned()
            }
            3 => {
                self.clients[self.cur].next_id += 1;
                format!("\"req-{}\"", self.clients[self.cur].next_id)
            }
            5 => {
                self.clients[self.cur].next_id += 1;
                // Same text as a number id, different JSON: a distinct id.
                format!("\"{}\"", self.clients[self.cur].next_id)
            }
            _ => {
                self.clients[self.cur].next_id += 1;
                self.clients[self.cur].next_id.to_string()
            }
        }
    }

    /// The client uses a name it was shown, or a backend of the running config: `kind` 0
    /// calls a tool of the latest `tools/list` (with a progress token for odd `pick / n`), 1
    /// calls `use_tool` with a configured backend and a `CATALOG_TOOLS` name, 2 calls
    /// `discover_backend_tools` for a configured backend, 3 gets a prompt of the latest
    /// `prompts/list`.
    fn use_name(&mut self, kind: usize, pick: usize, how: usize) {
        let nth = |names: &[String]| {
            let n = names.len().max(1);
            (names.get(pick % n).cloned(), pick / n)
        };
        let (method, params) = match kind % 4 {
            0 => {
                let (Some(name), rest) = nth(&self.shown_tools) else {
                    return;
                };
                let mut params = json!({"name": name, "arguments": {"text": "hi"}});
                if rest % 2 == 1 {
                    params["_meta"] = json!({"progressToken": format!("use-{pick}")});
                }
                ("tools/call", params)
            }
            1 => {
                let (backend, rest) = nth(&self.configured);
                let tool = CATALOG_TOOLS[rest % CATALOG_TOOLS.len()];
                (
                    "tools/call",
                    json!({"name": "use_tool", "arguments": {"backend_server": backend,
                           "server_tool": tool, "tool_arguments": {}}}),
                )
            }
            2 => {
                let (backend, _) = nth(&self.configured);
                (
                    "tools/call",
                    json!({"name": "discover_backend_tools",
                           "arguments": {"backend_server": backend}}),
                )
            }
            _ => {
                let (Some(name), _) = nth(&self.shown_prompts) else {
                    return;
                };
                ("prompts/get", json!({"name": name, "arguments": {}}))
            }
        };
        let id = self.choose_id(how);
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        self.client_line(line.as_bytes());
    }

    fn client_notify(&mut self, kind: usize, pick: usize) {
        let line = match kind % 5 {
            0 | 1 => {
                let waiting = &self.clients[self.cur].waiting;
                let Some(id) = waiting.keys().nth(pick % waiting.len().max(1)) else {
                    return;
                };
                let id = String::from_utf8_lossy(id).into_owned();
                format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"fuzz"}}}}"#
                )
            }
            2 => r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#.to_string(),
            3 => r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
            _ => r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"nobody"}}"#
                .to_string(),
        };
        self.client_line(line.as_bytes());
    }

    fn client_answer(&mut self, pick: usize, shape: usize) {
        let to_client = &self.clients[self.cur].to_client;
        if to_client.is_empty() {
            return;
        }
        let i = to_client.len() - 1 - pick % to_client.len();
        let (id, method) = to_client[i].clone();
        let id = String::from_utf8_lossy(&id).into_owned();
        let result = match method.as_str() {
            "sampling/createMessage" => {
                r#"{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}"#
            }
            "roots/list" => r#"{"roots":[{"uri":"file:///tmp","name":"tmp"}]}"#,
            "elicitation/create" => r#"{"action":"decline"}"#,
            _ => "{}",
        };
        let line = match shape % 4 {
            1 => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-1,"message":"client says no"}}}}"#
            ),
            // The id as a string: not the gateway's id, so the answer must be dropped.
            2 => format!(r#"{{"jsonrpc":"2.0","id":"{id}","result":{result}}}"#),
            _ => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        };
        if shape % 4 != 3 {
            // Shape 3 answers and keeps the request, so it may be answered twice.
            self.clients[self.cur].to_client.remove(i);
        }
        self.client_line(line.as_bytes());
    }

    fn backend_line(&mut self, b: usize, line: &[u8]) {
        if !self.alive[b] || line.contains(&b'\n') {
            return;
        }
        if let Ok(msg) = Message::parse(trim_end(line)) {
            if let (Kind::Request, Some(id)) = (msg.kind, msg.id) {
                self.asked[b].push(id.get().to_string());
            }
        }
        self.note(format!("> backend {b}: {}", excerpt(line)));
        self.gw.on_backend_line(self.now, b, line);
        self.pump();
    }

    fn backend_answer(&mut self, b: usize, pick: usize, shape: usize, body: &[u8]) {
        let n = self.received[b].len();
        if !self.alive[b] || n == 0 {
            return;
        }
        let i = n - 1 - pick % n;
        let req = self.received[b][i].clone();
        let id = String::from_utf8_lossy(&req.id).into_owned();
        let name = self
            .gw
            .backend_config(b)
            .map_or_else(String::new, |c| c.name.clone());
        let mut lines = Vec::new();
        let result = match shape % 8 {
            4 => None,
            5 if !body.is_empty() && !body.contains(&b'\n') => {
                self.raw_lists = true;
                Some(String::from_utf8_lossy(body).into_owned())
            }
            7 => {
                // Progress first, for the request's token if it has one.
                let token = &req.params["_meta"]["progressToken"];
                if !token.is_null() {
                    lines.push(
                        json!({"jsonrpc": "2.0", "method": "notifications/progress",
                               "params": {"progressToken": token, "progress": 1, "total": 2}})
                        .to_string(),
                    );
                }
                Some(default_result(&req, b, &name, shape / 8))
            }
            _ => Some(default_result(&req, b, &name, shape / 8)),
        };
        lines.push(match result {
            Some(r) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{r}}}"#),
            None => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32603,"message":"backend {b} failed"}}}}"#
            ),
        });
        if shape % 8 != 6 {
            // Shape 6 answers and keeps the request: a second answer must be dropped.
            self.received[b].remove(i);
        }
        for line in lines {
            self.backend_line(b, line.as_bytes());
        }
    }

    fn backend_request(&mut self, b: usize, method: usize, how: usize) {
        if !self.alive[b] {
            return;
        }
        let id = match (how % 4, self.asked[b].last()) {
            (3, Some(last)) => last.clone(),
            (2, _) => {
                self.next_backend_id += 1;
                format!("\"b{}\"", self.next_backend_id)
            }
            _ => {
                self.next_backend_id += 1;
                self.next_backend_id.to_string()
            }
        };
        let (method, params) = match method % 6 {
            0 => (
                "sampling/createMessage",
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
                       "maxTokens": 10}),
            ),
            1 => ("roots/list", json!({})),
            2 => (
                "elicitation/create",
                json!({"message": "name?", "requestedSchema": {"type": "object", "properties": {}}}),
            ),
            3 => ("ping", json!({})),
            4 => ("tasks/get", json!({"taskId": "c1"})),
            _ => ("fuzz/unknown", json!([])),
        };
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        self.backend_line(b, line.as_bytes());
    }

    fn backend_notify(&mut self, b: usize, kind: usize, pick: usize) {
        if !self.alive[b] {
            return;
        }
        let (method, params) = match kind % 12 {
            0 => ("notifications/tools/list_changed", None),
            1 => ("notifications/prompts/list_changed", None),
            2 => ("notifications/resources/list_changed", Some(json!({}))),
            3 => {
                let tokens: Vec<&Value> = self.received[b]
                    .iter()
                    .map(|r| &r.params["_meta"]["progressToken"])
                    .filter(|t| !t.is_null())
                    .collect();
                let token = match tokens.len() {
                    0 => json!("nobody's"),
                    n => tokens[n - 1 - pick % n].clone(),
                };
                (
                    "notifications/progress",
                    Some(json!({"progressToken": token, "progress": pick, "message": "working"})),
                )
            }
            4 => (
                "notifications/message",
                Some(json!({"level": "info", "logger": "core", "data": "hello"})),
            ),
            5 => (
                "notifications/message",
                Some(json!({"level": "warning", "data": {"n": pick}})),
            ),
            6 => {
                let ids = &self.asked[b];
                let Some(id) = ids.get(ids.len().saturating_sub(1 + pick % ids.len().max(1)))
                else {
                    return;
                };
                let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
                (
                    "notifications/cancelled",
                    Some(json!({"requestId": id, "reason": "backend gave up"})),
                )
            }
            7 => (
                "notifications/resources/updated",
                Some(json!({"uri": format!("mem://{b}/r1")})),
            ),
            8 => (
                "notifications/tasks/status",
                Some(json!({"taskId": "t1", "status": "completed",
                            "createdAt": "2025-01-01T00:00:00Z", "ttl": 1000})),
            ),
            9 => ("notifications/message", Some(json!({}))),
            10 => ("notifications/message", Some(json!([1, 2]))),
            _ => ("notifications/fuzz", Some(json!({"x": pick}))),
        };
        let line = match params {
            Some(p) => format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{p}}}"#),
            None => format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#),
        };
        self.backend_line(b, line.as_bytes());
    }
}

/// A well-formed client request: `method` picks one of the methods gangway handles (or an
/// unknown one), `args` pick its params. Every request may carry a progress token.
fn client_request(method: usize, id: &str, args: &[usize; 3]) -> String {
    let [a, c, d] = *args;
    let backend = ["alpha", "alpha__x", "beta", "nope"][a % 4];
    let tool = ["echo", "add", "missing"][c % 3];
    let (method, mut params) = match method % 20 {
        0 => {
            let bits = if a == 0 { 0xF } else { a };
            let mut caps = serde_json::Map::new();
            for (bit, cap) in [
                (1, "sampling"),
                (2, "roots"),
                (4, "elicitation"),
                (8, "tasks"),
            ] {
                if bits & bit != 0 {
                    caps.insert(cap.to_string(), json!({}));
                }
            }
            let version = ["2025-11-25", "2025-06-18", "2024-11-05", "1999-01-01"][c % 4];
            (
                "initialize",
                json!({"protocolVersion": version, "capabilities": caps,
                       "clientInfo": {"name": "fuzz", "version": "1"}}),
            )
        }
        1 => ("ping", json!({})),
        2 if c % 4 == 3 => ("tools/list", json!({"cursor": "x"})),
        2 => ("tools/list", json!({})),
        3 => {
            let mut arguments = json!({"backend_server": backend, "server_tool": tool,
                                       "tool_arguments": {"text": "hi"}});
            match d % 5 {
                1 => arguments["tool_arguments"] = json!("not an object"),
                2 => arguments = json!({"server_tool": tool}),
                3 => arguments = json!([1]),
                _ => {}
            }
            let mut params = json!({"name": "use_tool", "arguments": arguments});
            if d % 5 == 4 {
                params["task"] = json!({"ttl": 60000});
            }
            ("tools/call", params)
        }
        4 if c % 2 == 0 => (
            "tools/call",
            json!({"name": "discover_backend_tools", "arguments": {"backend_server": backend}}),
        ),
        4 => (
            "tools/call",
            json!({"name": "discover_backend_tools", "arguments": {}}),
        ),
        5 => {
            let mut params = json!({"name": format!("{backend}__{tool}"), "arguments": {"x": 1}});
            if d % 3 == 2 {
                params["task"] = json!({"ttl": 60000});
            }
            ("tools/call", params)
        }
        6 => ("prompts/list", json!({})),
        7 => (
            "prompts/get",
            json!({"name": format!("{backend}__p1"), "arguments": {"city": "Paris"}}),
        ),
        8 => ("resources/list", json!({})),
        9 => ("resources/templates/list", json!({})),
        10 | 11 => {
            let uri = ["mem://0/r1", "mem://1/r1", "mem://2/t/7", "other://nowhere"][c % 4];
            let method = [
                "resources/read",
                "resources/subscribe",
                "resources/unsubscribe",
            ][d % 3];
            (method, json!({ "uri": uri }))
        }
        12 if c % 2 == 0 => (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": format!("{backend}__p1")},
                   "argument": {"name": "city", "value": "P"}}),
        ),
        12 => (
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "mem://2/t/{id}"},
                   "argument": {"name": "id", "value": "1"}}),
        ),
        13 => ("logging/setLevel", json!({"level": "debug"})),
        14..=16 => {
            let method = ["tasks/get", "tasks/result", "tasks/cancel"][method % 20 - 14];
            let task = ["alpha__t1", "alpha__x__t1", "beta__t1", "t1", "nope__t1"][c % 5];
            (method, json!({ "taskId": task }))
        }
        17 => ("tasks/list", json!({})),
        18 => ("resources/read", json!({})),
        _ => ("fuzz/unknown", json!({})),
    };
    if d % 4 == 1 {
        if let Some(p) = params.as_object_mut() {
            let token = if c % 2 == 0 {
                json!(format!("tok-{id}"))
            } else {
                json!(1000 + a)
            };
            p.insert("_meta".to_string(), json!({ "progressToken": token }));
        }
    }
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// What backend `b`, named `name`, answers to `req` when it answers normally; `variant`
/// varies capabilities, pagination (a second page lists other tools and prompts than the
/// first, as a backend's pages do) and tool names (some that are not valid exposed names).
fn default_result(req: &Received, b: usize, name: &str, variant: usize) -> String {
    let cursor = req.params.get("cursor").is_some();
    let page = |key: &str, items: Value| {
        let mut v = json!({ key: items });
        if variant % 3 == 1 && !cursor {
            v["nextCursor"] = json!("page-2");
        }
        v.to_string()
    };
    match req.method.as_str() {
        "initialize" => {
            let mut caps = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true},
                                  "resources": {"subscribe": true, "listChanged": true},
                                  "completions": {}});
            if variant % 2 == 0 {
                caps["logging"] = json!({});
                caps["tasks"] = json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
            }
            json!({"protocolVersion": "2025-11-25", "capabilities": caps,
                   "serverInfo": {"name": name, "version": "1.0"}})
            .to_string()
        }
        "tools/list" if cursor => page(
            "tools",
            json!([{"name": "more", "inputSchema": {"type": "object"}}]),
        ),
        "tools/list" => {
            let mut tools = json!([{"name": "echo", "inputSchema": {"type": "object"}},
                   {"name": "add", "description": "Adds", "inputSchema": {"type": "object"}}]);
            if variant % 3 == 2 {
                for odd in &CATALOG_TOOLS[1..3] {
                    if let Some(list) = tools.as_array_mut() {
                        list.push(json!({"name": odd, "inputSchema": {"type": "object"}}));
                    }
                }
            }
            page("tools", tools)
        }
        "prompts/list" if cursor => page("prompts", json!([{"name": "p2"}])),
        "prompts/list" => page("prompts", json!([{"name": "p1", "description": "A prompt"}])),
        "resources/list" => page(
            "resources",
            json!([{"uri": format!("mem://{b}/r1"), "name": "r1"}]),
        ),
        "resources/templates/list" => page(
            "resourceTemplates",
            json!([{"uriTemplate": format!("mem://{b}/t/{{id}}"), "name": "t"}]),
        ),
        "tasks/list" => page(
            "tasks",
            json!([{"taskId": "t1", "status": "working", "createdAt": "2025-01-01T00:00:00Z",
                    "ttl": 1000}]),
        ),
        "tools/call" if req.params.get("task").is_some() => json!({"task": {
            "taskId": "t1", "status": "working", "createdAt": "2025-01-01T00:00:00Z", "ttl": 60000}})
        .to_string(),
        "tools/call" => {
            json!({"content": [{"type": "text", "text": format!("from {name}")}]}).to_string()
        }
        "tasks/get" | "tasks/cancel" => json!({"taskId": "t1", "status": "completed",
            "createdAt": "2025-01-01T00:00:00Z", "ttl": 1000})
        .to_string(),
        "prompts/get" => json!({"messages": []}).to_string(),
        "resources/read" => json!({"contents": [{"uri": format!("mem://{b}/r1"), "text": "x"}]})
            .to_string(),
        _ => "{}".to_string(),
    }
}

/// Whether every event is printed as it happens (`GANGWAY_SCRIPT_TRACE=1`), to follow a
/// script by hand; failures print the last 40 events regardless.
fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("GANGWAY_SCRIPT_TRACE").is_some_and(|v| v == "1"))
}

/// The raw `params.requestId` of a `notifications/cancelled`.
fn cancelled_id(msg: &Message<'_>) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(rename = "requestId", borrow)]
        request_id: &'a serde_json::value::RawValue,
    }
    let p: Params<'_> = serde_json::from_str(msg.params?.get()).ok()?;
    Some(p.request_id.get().as_bytes().to_vec())
}

/// `line` without trailing ASCII whitespace, as the gateway reads it.
fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(300)]);
    if line.len() > 300 {
        format!("{text}… ({} bytes)", line.len())
    } else {
        text.into_owned()
    }
}
