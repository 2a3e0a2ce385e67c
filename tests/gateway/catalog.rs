//! The tool catalog: what backends reported in an earlier run answers the lists of a later
//! one without starting them; only a call starts its backend.

use crate::util::*;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// `n` recording mocks `b1..bn` (their record files `DIR/bK.jsonl`) with `expose`.
fn recorded(dir: &TempDir, n: usize, expose: &str) -> (Value, Vec<PathBuf>) {
    let mut backends = Map::new();
    let mut records = Vec::new();
    for k in 1..=n {
        let name = format!("b{k}");
        let record = dir.join(&format!("{name}.jsonl"));
        backends.insert(name.clone(), recording_mock(&name, &record, &[]));
        records.push(record);
    }
    (json!({ "expose": expose, "backends": backends }), records)
}

fn line_counts(records: &[PathBuf]) -> Vec<usize> {
    records.iter().map(|r| line_count(r)).collect()
}

/// Asserts gangway runs no backend: it has no child process and logged no start.
fn assert_no_backend_started(gw: &mut Gangway) {
    let children = child_pids(gw.pid());
    if !children.is_empty() {
        gw.fail(&format!(
            "gangway has child processes {children:?}: it started a backend to answer from the catalog"
        ));
    }
    gw.stderr_barrier();
    if let Some(l) = gw.stderr().iter().find(|l| l.contains("starting backend")) {
        gw.fail(&format!("a backend was started: {l}"));
    }
}

/// The catalog's entries object (fails unless the file is a version 1 catalog).
fn entries(dir: &TempDir) -> Map<String, Value> {
    let catalog = read_catalog(dir);
    assert_eq!(catalog["version"], json!(1), "{catalog}");
    catalog["entries"]
        .as_object()
        .unwrap_or_else(|| panic!("no entries object in {catalog}"))
        .clone()
}

#[test]
fn cold_gangway_lists_five_backends_from_the_catalog_without_starting_any() {
    let dir = TempDir::new();
    let (config, records) = recorded(&dir, 5, "tools");

    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let first = gw.list_tool_names();
    assert_eq!(first.len(), 5 * MOCK_TOOLS.len(), "{first:?}");
    gw.finish();
    let entries = entries(&dir);
    assert_eq!(entries.len(), 5, "{entries:?}");
    for entry in entries.values() {
        assert_eq!(
            entry["tools"].as_array().map(Vec::len),
            Some(MOCK_TOOLS.len()),
            "{entry}"
        );
    }

    let before = line_counts(&records);
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    assert_eq!(
        gw.list_tool_names(),
        first,
        "the catalog gives the same names"
    );
    assert_no_backend_started(&mut gw);
    assert_eq!(
        line_counts(&records),
        before,
        "no backend may receive anything"
    );

    // A call starts its own backend, and only that one.
    assert_eq!(
        ok_text(&gw.call_tool("b3__echo", json!({ "text": "hi" }))),
        "hi"
    );
    let after = line_counts(&records);
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        if k == 2 {
            assert!(
                a > b,
                "backend b3 received nothing: {before:?} -> {after:?}"
            );
        } else {
            assert_eq!(a, b, "backend b{} received lines", k + 1);
        }
    }
    assert_eq!(child_pids(gw.pid()).len(), 1, "one backend runs");
}

#[test]
fn cold_gangway_answers_discover_backend_tools_from_the_catalog_without_starting_any() {
    let dir = TempDir::new();
    let (config, records) = recorded(&dir, 3, "meta");

    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let all = gw.call_tool("discover_backend_tools", json!({}));
    let first = all["result"]["structuredContent"]["tools"].clone();
    assert_eq!(
        first.as_array().map(Vec::len),
        Some(3 * MOCK_TOOLS.len()),
        "{all}"
    );
    gw.finish();
    assert_eq!(entries(&dir).len(), 3);

    let before = line_counts(&records);
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let all = gw.call_tool("discover_backend_tools", json!({}));
    assert!(all["result"]["isError"].is_null(), "{all}");
    assert_eq!(all["result"]["structuredContent"]["tools"], first);
    let one = gw.call_tool("discover_backend_tools", json!({ "backend_server": "b2" }));
    let tools = one["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {one}"))
        .clone();
    assert_eq!(tools.len(), MOCK_TOOLS.len(), "{one}");
    assert!(tools.iter().all(|t| t["backend"] == "b2"), "{one}");
    assert_no_backend_started(&mut gw);
    assert_eq!(line_counts(&records), before);

    assert_eq!(
        ok_text(&gw.use_tool("b1", "echo", json!({ "text": "x" }))),
        "x"
    );
    let after = line_counts(&records);
    assert!(after[0] > before[0], "b1 was not reached");
    assert_eq!(after[1..], before[1..], "only b1 may start");
}

#[test]
fn a_changed_command_invalidates_its_entry() {
    let dir = TempDir::new();
    let (mut config, records) = recorded(&dir, 3, "tools");
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let first = gw.list_tool_names();
    gw.finish();

    let args = config["backends"]["b2"]["args"].as_array_mut().unwrap();
    args.extend([json!("--tools"), json!("2")]);
    let before = line_counts(&records);
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let second = gw.list_tool_names();
    let mut expected = first.clone();
    expected.extend(["b2__t0".to_string(), "b2__t1".to_string()]);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(second),
        sorted(expected),
        "b2's new tools are listed"
    );
    let after = line_counts(&records);
    assert_eq!(
        after[0], before[0],
        "b1 was started although its entry holds"
    );
    assert!(
        after[1] > before[1],
        "b2 was not started for its new command"
    );
    assert_eq!(
        after[2], before[2],
        "b3 was started although its entry holds"
    );
    assert_eq!(
        ok_text(&gw.call_tool("b2__t1", json!({ "text": "new" }))),
        "new"
    );
    gw.finish();
    // The new command has an entry of its own; the old one is kept for configs that use it.
    assert_eq!(entries(&dir).len(), 4);
}

#[test]
fn a_corrupted_catalog_is_rebuilt() {
    let dir = TempDir::new();
    let path = catalog_file(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{not json").unwrap();
    let config = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });

    let mut gw = Gangway::start(&dir, &config);
    let warning = gw.wait_stderr("catalog.json", T);
    assert!(warning.contains("warn"), "not a warning: {warning}");
    gw.initialize();
    let names = gw.list_tool_names();
    assert!(names.contains(&"a__echo".to_string()), "{names:?}");
    gw.finish();

    let entries = entries(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries.values().next().unwrap();
    assert_eq!(entry["backend"], "a");
    assert_eq!(
        entry["tools"].as_array().map(Vec::len),
        Some(MOCK_TOOLS.len())
    );
}

#[test]
fn catalog_false_writes_nothing() {
    let dir = TempDir::new();
    let record = dir.join("a.jsonl");
    let config = json!({ "catalog": false, "expose": "tools",
                         "backends": { "a": recording_mock("a", &record, &[]) } });
    for _ in 0..2 {
        let before = line_count(&record);
        let mut gw = Gangway::start(&dir, &config);
        gw.initialize();
        assert!(gw.list_tool_names().contains(&"a__echo".to_string()));
        // Without a catalog every run asks the backend itself.
        assert!(line_count(&record) > before, "the backend was not asked");
        gw.finish();
    }
    assert!(
        !dir.join("cache").exists(),
        "something was written under XDG_CACHE_HOME with the catalog off"
    );
}

#[test]
fn a_catalog_path_in_the_config_is_used() {
    let dir = TempDir::new();
    let record = dir.join("a.jsonl");
    // Relative: resolved against the config file's directory.
    let config = json!({ "catalog": "state/tools.json", "expose": "tools",
                         "backends": { "a": recording_mock("a", &record, &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let first = gw.list_tool_names();
    gw.finish();
    let text = std::fs::read_to_string(dir.join("state/tools.json")).expect("catalog written");
    let catalog: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(catalog["entries"].as_object().map(Map::len), Some(1));
    assert!(
        !catalog_file(&dir).exists(),
        "the default place was used too"
    );

    let before = line_count(&record);
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    assert_eq!(gw.list_tool_names(), first);
    assert_no_backend_started(&mut gw);
    assert_eq!(line_count(&record), before);
}

#[test]
fn list_changed_when_a_backend_offers_other_tools_than_the_catalog() {
    let dir = TempDir::new();
    let config = json!({ "expose": "tools", "backends": { "a": mock("a", &[]) } });
    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let first = gw.list_tool_names();
    assert!(first.contains(&"a__slow".to_string()));
    gw.finish();

    // The backend has changed since the catalog was written: it now offers `slow` too.
    let mut catalog = read_catalog(&dir);
    let entry = catalog["entries"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .expect("an entry");
    entry["tools"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["name"] != "slow");
    std::fs::write(catalog_file(&dir), catalog.to_string()).unwrap();

    let mut gw = Gangway::start(&dir, &config);
    gw.initialize();
    let cached = gw.list_tool_names();
    let without: Vec<String> = first.iter().filter(|n| *n != "a__slow").cloned().collect();
    assert_eq!(cached, without, "the list comes from the catalog");
    assert_no_backend_started(&mut gw);

    assert_eq!(
        ok_text(&gw.call_tool("a__echo", json!({ "text": "e" }))),
        "e"
    );
    gw.wait_notification("notifications/tools/list_changed", T);
    assert_eq!(gw.list_tool_names(), first);
    assert_eq!(
        ok_text(&gw.call_tool("a__slow", json!({ "ms": 1 }))),
        "slept 1"
    );
    gw.finish();
    // The catalog was brought up to date.
    let catalog = read_catalog(&dir);
    let entry = catalog["entries"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert!(
        entry["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "slow"),
        "{entry}"
    );
}
