//! Exposed tool names: filters, prefixes, separators, per-backend expose, names clients
//! would refuse, collisions and a stable order.

use crate::util::*;
use serde_json::{json, Value};

/// `backend` with extra config `keys` merged in.
fn with(mut backend: Value, keys: Value) -> Value {
    for (k, v) in keys.as_object().unwrap() {
        backend[k] = v.clone();
    }
    backend
}

fn prefixed(prefix: &str, tools: &[&str]) -> Vec<String> {
    tools.iter().map(|t| format!("{prefix}__{t}")).collect()
}

fn filtered_config(expose: &str) -> Value {
    json!({ "expose": expose, "backends": {
        "a": with(mock("a", &[]), json!({ "tools": { "deny": ["crash", "e*v"] } })),
        "b": with(mock("b", &[]), json!({ "tools": { "allow": ["echo", "p*"], "deny": ["progress"] } })),
    } })
}

#[test]
fn filtered_tools_are_neither_listed_nor_callable_in_tools_mode() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &filtered_config("tools"));
    gw.initialize();
    // Refused even before any list was asked for: the call must not reach the mock, whose
    // `crash` tool would end it.
    let resp = gw.call_tool("a__crash", json!({}));
    let msg = error_message(&resp, -32602);
    assert!(msg.contains("crash") && msg.contains("filter"), "{msg}");

    let names = gw.list_tool_names();
    let a: Vec<&str> = mock_tools_sorted()
        .into_iter()
        .filter(|t| !["crash", "env"].contains(t))
        .collect();
    let mut expected = prefixed("a", &a);
    expected.extend(prefixed("b", &["echo", "pid"]));
    assert_eq!(names, expected);

    for (tool, own) in [
        ("a__env", "env"),
        ("b__slow", "slow"),
        ("b__progress", "progress"),
    ] {
        let resp = gw.call_tool(tool, json!({ "name": "HOME", "ms": 1, "steps": 1 }));
        let msg = error_message(&resp, -32602);
        assert!(msg.contains(own) && msg.contains("filter"), "{tool}: {msg}");
    }
    assert_eq!(
        ok_text(&gw.call_tool("a__echo", json!({ "text": "a" }))),
        "a"
    );
    assert_eq!(
        ok_text(&gw.call_tool("b__echo", json!({ "text": "b" }))),
        "b"
    );
    // The refused crash never reached backend a: it still runs the same process.
    let pid = backend_pid(&mut gw, "a__pid");
    assert!(pid_exists(pid));
    assert_eq!(backend_pid(&mut gw, "a__pid"), pid);
}

#[test]
fn filtered_tools_are_neither_discovered_nor_usable_in_meta_mode() {
    let dir = TempDir::new();
    let mut gw = Gangway::start(&dir, &filtered_config("meta"));
    gw.initialize();
    let resp = gw.use_tool("a", "crash", json!({}));
    let text = tool_error_text(&resp);
    assert!(text.contains("crash") && text.contains("filter"), "{text}");

    let one = gw.call_tool("discover_backend_tools", json!({ "backend_server": "b" }));
    let names: Vec<&str> = one["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {one}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "pid"], "{one}");

    let all = gw.call_tool("discover_backend_tools", json!({}));
    let tools = all["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap();
    let of_a: Vec<&str> = tools
        .iter()
        .filter(|t| t["backend"] == "a")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !of_a.contains(&"crash") && !of_a.contains(&"env") && of_a.contains(&"echo"),
        "{of_a:?}"
    );
    assert_eq!(of_a.len(), MOCK_TOOLS.len() - 2, "{of_a:?}");

    let resp = gw.use_tool("b", "slow", json!({ "ms": 1 }));
    let text = tool_error_text(&resp);
    assert!(text.contains("slow") && text.contains("filter"), "{text}");
    assert_eq!(
        ok_text(&gw.use_tool("b", "echo", json!({ "text": "ok" }))),
        "ok"
    );
}

#[test]
fn a_seventy_character_tool_name_gets_a_valid_name_that_reaches_it() {
    let long = format!(
        "{:_<70}",
        "a_tool_with_a_name_far_longer_than_clients_accept"
    );
    assert_eq!(long.len(), 70);
    let dir = TempDir::new();
    let config = json!({ "expose": "tools",
                         "backends": { "srv": mock("srv", &["--tool", &long]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = gw.list_tool_names();
    for n in &names {
        assert!(is_valid_tool_name(n), "{n:?} is not a name clients accept");
    }
    let ordinary = prefixed("srv", &MOCK_TOOLS);
    let extra: Vec<&String> = names.iter().filter(|n| !ordinary.contains(n)).collect();
    assert_eq!(extra.len(), 1, "{names:?}");
    let exposed = extra[0];
    let wanted = format!("srv__{long}");
    assert_eq!(exposed.len(), 64, "{exposed}");
    assert_eq!(exposed[..57], wanted[..57], "{exposed}");
    assert_eq!(&exposed[57..58], "_", "{exposed}");
    assert!(
        exposed[58..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{exposed}"
    );

    let resp = gw.call_tool(exposed, json!({ "text": "hi" }));
    assert_eq!(ok_text(&resp), format!("srv/{long}: hi"));
}

#[test]
fn colliding_names_go_to_the_first_backend_and_the_other_gets_a_hashed_name() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "backends": {
        "a__b": mock("a__b", &["--tool", "c"]),
        "a": mock("a", &["--tool", "b__c"]),
    } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = gw.list_tool_names();
    for n in &names {
        assert!(is_valid_tool_name(n), "{n:?}");
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");
    assert_eq!(names.len(), 2 * MOCK_TOOLS.len() + 2, "{names:?}");

    // "a" sorts before "a__b", so it is first in config order and keeps the name.
    assert_eq!(
        ok_text(&gw.call_tool("a__b__c", json!({ "text": "1" }))),
        "a/b__c: 1"
    );
    let mut ours = prefixed("a", &MOCK_TOOLS);
    ours.extend(prefixed("a__b", &MOCK_TOOLS));
    ours.push("a__b__c".to_string());
    let other: Vec<&String> = names.iter().filter(|n| !ours.contains(n)).collect();
    assert_eq!(other.len(), 1, "{names:?}");
    assert_eq!(
        ok_text(&gw.call_tool(other[0], json!({ "text": "2" }))),
        "a__b/c: 2"
    );
    let warning = gw.wait_stderr("collision", T);
    assert!(warning.contains("warn"), "{warning}");
    assert!(warning.contains(other[0].as_str()), "{warning}");
}

#[test]
fn prefix_and_separator_shape_the_names() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "separator": "-", "backends": {
        "github": with(mock("github", &["--tool", "hello"]), json!({ "prefix": "gh" })),
        "plain": with(mock("plain", &["--tool", "hello"]), json!({ "prefix": "" })),
    } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = gw.list_tool_names();
    let mut tools = MOCK_TOOLS.to_vec();
    tools.push("hello");
    tools.sort_unstable();
    let mut expected: Vec<String> = tools.iter().map(|t| format!("gh-{t}")).collect();
    expected.extend(tools.iter().map(|t| t.to_string()));
    assert_eq!(names, expected);

    assert_eq!(
        ok_text(&gw.call_tool("gh-echo", json!({ "text": "g" }))),
        "g"
    );
    assert_eq!(
        ok_text(&gw.call_tool("gh-hello", json!({ "text": "x" }))),
        "github/hello: x"
    );
    assert_eq!(
        ok_text(&gw.call_tool("hello", json!({ "text": "y" }))),
        "plain/hello: y"
    );
    assert_ne!(backend_pid(&mut gw, "gh-pid"), backend_pid(&mut gw, "pid"));
    error_message(
        &gw.call_tool("github__echo", json!({ "text": "g" })),
        -32602,
    );
}

#[test]
fn a_backend_can_expose_its_tools_unlike_the_others() {
    let dir = TempDir::new();
    let mut config = json!({ "expose": "meta", "backends": {
        "p": with(mock("p", &[]), json!({ "expose": "tools" })),
        "q": mock("q", &[]),
    } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let list = gw.call("tools/list", Value::Null);
    let mut expected = vec!["use_tool".to_string(), "discover_backend_tools".to_string()];
    expected.extend(prefixed("p", &mock_tools_sorted()));
    assert_eq!(tool_names(&list), expected);
    let discover = &list["result"]["tools"][1];
    assert_eq!(
        discover["inputSchema"]["properties"]["backend_server"]["enum"],
        json!(["q"]),
        "{discover}"
    );
    assert_eq!(
        ok_text(&gw.call_tool("p__echo", json!({ "text": "p" }))),
        "p"
    );
    assert_eq!(
        ok_text(&gw.use_tool("q", "echo", json!({ "text": "q" }))),
        "q"
    );
    error_message(&gw.call_tool("q__echo", json!({ "text": "q" })), -32602);
    gw.finish();

    // `direct` lists single tools of a meta backend as well.
    config["backends"]["q"]["direct"] = json!(["echo"]);
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = gw.list_tool_names();
    expected.push("q__echo".to_string());
    assert_eq!(names, expected);
    assert_eq!(
        ok_text(&gw.call_tool("q__echo", json!({ "text": "d" }))),
        "d"
    );
    assert_eq!(
        ok_text(&gw.use_tool("q", "echo", json!({ "text": "m" }))),
        "m"
    );
}

#[test]
fn tools_list_order_is_the_same_in_every_run() {
    let dir = TempDir::new();
    let config = |catalog: bool| {
        json!({ "expose": "both", "catalog": catalog, "backends": {
            "zeta": mock("zeta", &["--tool", "aardvark", "--tool", "zz"]),
            "alpha": mock("alpha", &["--tools", "2", "--tool", "m"]),
            "mid": mock("mid", &[]),
        } })
    };
    let mut runs = Vec::new();
    // Without the catalog, then with it filled, then answered from it.
    for catalog in [false, true, true] {
        let mut gw = Gangway::start(&dir, &config(catalog));
        gw.initialize();
        runs.push(gw.list_tool_names());
        gw.finish();
    }
    let mut expected = vec!["use_tool".to_string(), "discover_backend_tools".to_string()];
    let group = |prefix: &str, extra: &[&str]| {
        let mut tools: Vec<&str> = MOCK_TOOLS
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect();
        tools.sort_unstable();
        prefixed(prefix, &tools)
    };
    expected.extend(group("alpha", &["t0", "t1", "m"]));
    expected.extend(group("mid", &[]));
    expected.extend(group("zeta", &["aardvark", "zz"]));
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run, &expected, "run {i}");
    }
}

#[test]
fn a_tool_name_with_a_dot_gets_a_valid_name_that_reaches_it() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools",
                         "backends": { "srv": mock("srv", &["--tool", "files.read"]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let names = gw.list_tool_names();
    let ordinary = prefixed("srv", &MOCK_TOOLS);
    let extra: Vec<&String> = names.iter().filter(|n| !ordinary.contains(n)).collect();
    assert_eq!(extra.len(), 1, "{names:?}");
    let exposed = extra[0];
    assert!(is_valid_tool_name(exposed), "{exposed:?}");
    assert!(exposed.starts_with("srv__files_read_"), "{exposed}");
    assert_eq!(
        ok_text(&gw.call_tool(exposed, json!({ "text": "hi" }))),
        "srv/files.read: hi"
    );
}
