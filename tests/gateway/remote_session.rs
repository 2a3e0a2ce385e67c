//! A server reached by URL that ends gangway's session (it restarted, or expired the
//! session): gangway starts a new one with the client's handshake and sends the refused
//! request again, so the client notices nothing.

use crate::util::*;
use serde_json::json;

#[test]
fn a_server_that_lost_the_session_gets_a_new_handshake_and_the_request_again() {
    let dir = TempDir::new();
    let inner = json!({"expose": "tools", "backends": {"m": mock("m", &[])}});
    let served = Served::start(&dir, &inner, &[]);
    let addr = served.addr.clone();
    let outer_dir = TempDir::new();
    let outer = json!({"expose": "tools",
        "backends": {"shared": {"url": format!("http://{addr}/mcp")}}});
    let mut cmd = gangway_command(&outer_dir, &outer);
    cmd.env("RUST_LOG", "gangway=debug");
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    let first = gw.call_tool("shared__m__echo", json!({"text": "first"}));
    assert_eq!(ok_text(&first), "first");
    served.gw.wait_stderr("HTTP: session", T);
    // Nothing in flight (the lists gangway fetches after a first call are in).
    gw.wait_stderr("catalog: updated the entry of backend 'shared'", T);
    // The server restarts on the same address: gangway's session id means nothing there.
    drop(served);
    let mut cmd = gangway_command(&dir, &inner);
    cmd.args(["serve", "--listen", &addr]);
    let again = Gangway::spawn(cmd);
    again.wait_stderr("/mcp", T);
    let second = gw.call_tool("shared__m__echo", json!({"text": "second"}));
    assert_eq!(ok_text(&second), "second");
    gw.wait_stderr("ended gangway's session (404)", T);
    again.wait_stderr("HTTP: session", T);
    // The new session is used from then on, with no other handshake.
    let mark = gw.stderr_len();
    let third = gw.call_tool("shared__m__echo", json!({"text": "third"}));
    assert_eq!(ok_text(&third), "third");
    gw.stderr_barrier();
    assert!(
        !gw.stderr()[mark..].iter().any(|l| l.contains("404")),
        "{:?}",
        &gw.stderr()[mark..]
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
}
