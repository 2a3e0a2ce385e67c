//! What fuzzing found, each kept as a test named for what it guards. Scripts are in the
//! gateway script format (see `check/gateway.rs`).

use super::check::gateway;
use gangway::config::Config;
use gangway::gateway::{Action, Gateway};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

/// The client's output lines, parsed.
fn client_out(gw: &mut Gateway) -> Vec<Value> {
    let bytes = gw.out.client.pending().to_vec();
    gw.out.client.consume(bytes.len());
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("client output is JSON"))
        .collect()
}

/// Found by the `gateway` target in its first seconds (minimized input `b"\x08\n\x03a\n\xa4"`:
/// a `resources/read`, then SIGTERM). A request routed by URI whose backend is not known yet
/// waits for the resource lists; when they fail because shutdown stopped the backends, the
/// deferred line was processed again through `client_line`, which ignores client lines while
/// shutting down, so the request never got an answer while every other one did.
#[test]
fn deferred_resource_request_is_answered_at_shutdown() {
    let text =
        r#"{"backends": {"alpha": {"command": "alpha-mcp"}, "beta": {"command": "beta-mcp"}}}"#;
    let config = Config::parse(text, Path::new("test.json"), &|_| None).expect("valid config");
    let now = Instant::now();
    let mut gw = Gateway::new(&config, now);
    let read =
        br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"mem://0/r1"}}"#;
    gw.on_client_line(now, read);
    assert_eq!(gw.take_actions(), vec![Action::Spawn(0), Action::Spawn(1)]);
    gw.on_terminate(now);
    gw.on_backend_exit(now, 0, "exit status 0");
    gw.on_backend_exit(now, 1, "exit status 0");
    let answers: Vec<Value> = client_out(&mut gw)
        .into_iter()
        .filter(|m| m["id"] == 2)
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "resources/read waiting for resource lists at shutdown must get exactly one answer"
    );
    assert_eq!(gw.in_flight(), 0);
}

/// The same scenario through the harness, as the fuzzer found it; passes while the harness
/// tolerates the bug above, and keeps the input in the suite.
#[test]
fn resource_read_then_sigterm_does_not_panic_or_double_answer() {
    gateway::run(b"b0\nra0000\nt\n");
}

/// A fuzz target's check, on one input.
type Check = fn(&[u8]);

/// Every committed seed of the fuzz targets (`fuzz/corpus/TARGET/`) passes its target's
/// checks, so the corpus stays a valid starting point as the checks change.
#[test]
fn committed_fuzz_seeds_pass_their_checks() {
    use super::check::{config, framing, message};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus");
    let targets: [(&str, Check); 4] = [
        ("framing", |d| {
            framing::check(&framing::case_from_bytes(d), None)
        }),
        ("message", message::check_line),
        ("config", |d| {
            config::check_text(&String::from_utf8_lossy(d))
        }),
        ("gateway", gateway::run),
    ];
    for (target, check) in targets {
        let dir = root.join(target);
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("read corpus entry").path();
            let data = std::fs::read(&path).expect("read seed");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "seed {} fails its checks", path.display());
            seeds += 1;
        }
        assert!(seeds > 0, "no seeds in {}", dir.display());
    }
}
