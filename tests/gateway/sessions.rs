//! Sessions as the stdio client sees them: the stdio front is one session, and a backend
//! with `"scope": "session"` runs a process of its own for it.

use crate::util::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_session_scoped_backend_serves_the_stdio_client_from_a_process_of_its_own() {
    let dir = TempDir::new();
    let mut own = mock("own", &[]);
    own["scope"] = json!("session");
    let config = json!({ "expose": "tools",
                         "backends": { "own": own, "shared": mock("shared", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    // Listing asks the session's own process (no catalog yet): no process no session owns.
    let names = gw.list_tool_names();
    assert!(names.contains(&"own__echo".to_string()), "{names:?}");
    let first = ok_text(&gw.call_tool("own__pid", json!({})));
    let again = ok_text(&gw.call_tool("own__pid", json!({})));
    assert_eq!(first, again, "the session keeps its process");
    let shared = ok_text(&gw.call_tool("shared__pid", json!({})));
    assert_ne!(first, shared);
    let pid: i32 = first.parse().expect("a pid");
    let owns = |p: &i32| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"own"))
    };
    let own_processes: Vec<i32> = child_pids(gw.pid()).into_iter().filter(owns).collect();
    assert_eq!(
        own_processes,
        vec![pid],
        "one process of 'own', the session's"
    );
    gw.close_stdin();
    assert!(gw.wait_exit(T).is_some_and(|s| s.success()));
    assert_pid_gone(pid, Duration::from_secs(5));
}
