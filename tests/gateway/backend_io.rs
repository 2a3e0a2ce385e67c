//! What backends see and say: environment, stderr, garbage on stdout.

use crate::util::*;
use serde_json::json;

#[test]
fn garbage_from_a_backend_is_logged_and_the_call_still_answers() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "backends": { "alpha": mock("alpha", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let resp = gw.call_tool("alpha__garbage", json!({}));
    assert_eq!(ok_text(&resp), "garbage sent");
    let line = gw.wait_stderr("this is not json", T);
    assert!(line.contains("'alpha'"), "{line}");
    let line = gw.wait_stderr(r#"{"hello":1}"#, T);
    assert!(line.contains("'alpha'"), "{line}");
    // Nothing of it reached the client.
    assert!(
        !gw.seen()
            .iter()
            .any(|l| l.contains("this is not json") || l.contains("hello")),
        "{:#?}",
        gw.seen()
    );
    assert_eq!(
        ok_text(&gw.call_tool("alpha__echo", json!({ "text": "ok" }))),
        "ok"
    );
}

#[test]
fn backend_env_and_expansion_reach_the_child_and_gangway_env_is_inherited() {
    let dir = TempDir::new();
    let mut alpha = mock("alpha", &[]);
    alpha["env"] = json!({
        "GW_TEST_PLAIN": "plain value",
        "GW_TEST_FROM_PARENT": "${GW_TEST_PARENT_VALUE}",
        "GW_TEST_DEFAULTED": "${GW_TEST_SURELY_UNSET_VAR:-the default}",
        "GW_TEST_OVERRIDDEN": "from config",
    });
    let config = json!({ "expose": "tools", "backends": { "alpha": alpha } });
    let mut cmd = gangway_command(&dir, &config);
    cmd.env("GW_TEST_PARENT_VALUE", "parent's value")
        .env("GW_TEST_INHERITED", "inherited value")
        .env("GW_TEST_OVERRIDDEN", "from gangway's env")
        .env_remove("GW_TEST_SURELY_UNSET_VAR");
    let mut gw = Gangway::spawn(cmd);
    gw.initialize();
    let mut env = |name: &str| ok_text(&gw.call_tool("alpha__env", json!({ "name": name })));
    assert_eq!(env("GW_TEST_PLAIN"), "plain value");
    assert_eq!(env("GW_TEST_FROM_PARENT"), "parent's value");
    assert_eq!(env("GW_TEST_DEFAULTED"), "the default");
    assert_eq!(env("GW_TEST_INHERITED"), "inherited value");
    assert_eq!(env("GW_TEST_OVERRIDDEN"), "from config");
    assert_eq!(env("GW_TEST_NOT_ANYWHERE"), "<unset>");
    // Env values are secrets: never in gangway's logs.
    gw.stderr_barrier();
    let stderr = gw.stderr().join("\n");
    assert!(
        !stderr.contains("plain value") && !stderr.contains("parent's value"),
        "{stderr}"
    );
}

#[test]
fn backend_stderr_is_logged_under_its_name() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools",
                         "backends": { "alpha": mock("alpha", &[]), "beta": mock("beta", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let resp = gw.call_tool("beta__stderr", json!({ "text": "a line from beta 4711" }));
    assert_eq!(ok_text(&resp), "ok");
    let line = gw.wait_stderr("a line from beta 4711", T);
    assert!(line.contains("[beta]"), "not attributed to beta: {line}");
    assert!(!line.contains("[alpha]"), "{line}");
    // stdout carries protocol only.
    assert!(!gw.seen().iter().any(|l| l.contains("4711")));
}
