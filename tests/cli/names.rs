//! What `gangway tools` and `gangway check` say a tool is exposed as is what a client is
//! served: a tool named like a meta-tool, names colliding across backends, filters and
//! `direct`.

use super::{setup_with, Run};
use crate::util::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Every backend has an empty prefix, so their tools collide with each other and with the
/// meta-tools (listed, since `alpha` is in `both` mode and `gamma` in `meta`):
/// - alpha (both) and beta (tools) have the mock's tools plus `use_tool` and `dup`;
/// - beta also has `discover_backend_tools` and filters out `crash`;
/// - gamma (meta) lists only `echo` and `use_tool` directly (`direct`).
fn colliding_config() -> Value {
    let mut alpha = mock("alpha", &["--tool", "use_tool", "--tool", "dup"]);
    alpha["expose"] = json!("both");
    let mut beta = mock(
        "beta",
        &[
            "--tool",
            "use_tool",
            "--tool",
            "discover_backend_tools",
            "--tool",
            "dup",
        ],
    );
    beta["expose"] = json!("tools");
    beta["tools"] = json!({ "deny": ["crash"] });
    let mut gamma = mock("gamma", &["--tool", "use_tool"]);
    gamma["direct"] = json!(["echo", "use_tool"]);
    for b in [&mut alpha, &mut beta, &mut gamma] {
        b["prefix"] = json!("");
    }
    json!({ "backends": { "alpha": alpha, "beta": beta, "gamma": gamma } })
}

/// `gangway tools`' rows: (backend, own name) -> what its first column shows.
fn tools_rows(r: &Run) -> BTreeMap<(String, String), String> {
    let mut rows = BTreeMap::new();
    let mut backend = None;
    for line in r.stdout.lines() {
        if let Some(row) = line.strip_prefix("  ") {
            // The first column is a name or a parenthesized remark with spaces.
            let end = if row.starts_with('(') {
                row.find(')').expect(line) + 1
            } else {
                row.find(' ').expect(line)
            };
            let shown = row[..end].to_string();
            let own = row[end..]
                .split_whitespace()
                .next()
                .expect(line)
                .to_string();
            let backend: &String = backend.as_ref().expect("a row after a header");
            rows.insert((backend.clone(), own), shown);
        } else if let Some((name, _)) = line.split_once(": ") {
            backend = Some(name.to_string());
        }
    }
    rows
}

#[test]
fn tools_shows_the_names_a_client_is_served_even_for_a_tool_named_use_tool() {
    let dir = TempDir::new();
    let config = colliding_config();
    let r = setup_with(&dir, &config, "tools", &[], |_| {});
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let rows = tools_rows(&r);
    let row = |b: &str, t: &str| -> &str {
        rows.get(&(b.to_string(), t.to_string()))
            .unwrap_or_else(|| panic!("no row for {b}'s {t} in:\n{}", r.stdout))
    };
    let shown: Vec<&str> = rows
        .values()
        .map(String::as_str)
        .filter(|s| !s.starts_with('('))
        .collect();

    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let mut served = gw.list_tool_names();
    served.retain(|n| n != "use_tool" && n != "discover_backend_tools");
    let mut shown_sorted = shown.clone();
    shown_sorted.sort_unstable();
    served.sort_unstable();
    assert_eq!(
        shown_sorted, served,
        "`gangway tools` (left) and tools/list (right, without the meta-tools) differ:\n{}",
        r.stdout
    );

    // The meta-tools keep their names; the backends' tools of the same names are renamed,
    // and each exposed name reaches its own backend's tool.
    for b in ["alpha", "beta", "gamma"] {
        let exposed = row(b, "use_tool");
        assert_ne!(exposed, "use_tool", "{}", r.stdout);
        let text = ok_text(&gw.call_tool(exposed, json!({ "text": "hi" })));
        assert_eq!(text, format!("{b}/use_tool: hi"), "{exposed}");
    }
    assert_ne!(
        row("beta", "discover_backend_tools"),
        "discover_backend_tools"
    );
    // A collision between two backends: the first in config order keeps the name.
    assert_eq!(row("alpha", "dup"), "dup");
    assert_ne!(row("beta", "dup"), "dup");
    for b in ["alpha", "beta"] {
        let text = ok_text(&gw.call_tool(row(b, "dup"), json!({ "text": "x" })));
        assert_eq!(text, format!("{b}/dup: x"));
    }
    assert_eq!(row("alpha", "echo"), "echo");
    assert_ne!(row("gamma", "echo"), "echo");
    // Not listed directly: a filtered tool, and a tool reached only through use_tool.
    assert_eq!(row("beta", "crash"), "(filtered out)");
    assert_eq!(row("gamma", "pid"), "(via use_tool)");

    // Serving put every backend in the catalog. Asked for one backend, `gangway tools`
    // still places its names among the others, from the catalog, as serving does.
    let entries = |dir: &TempDir| {
        let path = catalog_file(dir);
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|c| c["entries"].as_object().map(|e| e.len()))
    };
    assert!(
        wait_for(T, || entries(&dir) == Some(3)),
        "the catalog was not written: {:?}",
        entries(&dir)
    );
    drop(gw);
    let one = setup_with(&dir, &config, "tools", &["beta"], |_| {});
    assert_eq!(one.code, Some(0), "{}\n{}", one.stdout, one.stderr);
    let beta: BTreeMap<_, _> = rows
        .iter()
        .filter(|((b, _), _)| b == "beta")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(tools_rows(&one), beta, "{}", one.stdout);
}

#[test]
fn check_names_lines_agree_with_what_a_client_is_served() {
    let dir = TempDir::new();
    let mut config = colliding_config();
    config["catalog"] = json!(false);
    let check = setup_with(&dir, &config, "check", &[], |_| {});
    assert_eq!(check.code, Some(0), "{}\n{}", check.stdout, check.stderr);
    let tools = setup_with(&dir, &config, "tools", &[], |_| {});
    assert_eq!(tools.code, Some(0), "{}", tools.stderr);
    let rows = tools_rows(&tools);

    let names: Vec<&str> = check
        .stdout
        .lines()
        .filter(|l| l.starts_with("names: tool "))
        .collect();
    // Every tool of beta but crash and dup is renamed (alpha got there first), the three
    // `use_tool`s (the meta-tool did), and gamma's echo.
    let renamed: Vec<&(String, String)> = rows
        .iter()
        .filter(|((_, own), shown)| !shown.starts_with('(') && *shown != own)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names.len(), renamed.len(), "{}", check.stdout);
    for line in &names {
        // names: tool 'OWN' of backend 'B' is exposed as 'EXPOSED' (WHY)
        let parts: Vec<&str> = line.split('\'').collect();
        let (own, backend, exposed) = (parts[1], parts[3], parts[5]);
        let key = (backend.to_string(), own.to_string());
        assert_eq!(rows.get(&key).map(String::as_str), Some(exposed), "{line}");
    }
    let line = names
        .iter()
        .find(|l| l.starts_with("names: tool 'use_tool' of backend 'alpha'"))
        .expect(&check.stdout);
    assert!(
        line.contains("'use_tool' is already gangway's meta-tool"),
        "{line}"
    );
}
