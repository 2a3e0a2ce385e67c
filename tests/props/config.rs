//! `Config::parse`: any text gives a config or an error, never a panic, and never shows a
//! variable's value in an error.

use super::check::config::check_text;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Strings that exercise expansion, naming and path rules.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "npx",
            "docker",
            "gangway",
            "/usr/bin/gangway.exe",
            "${HOME}",
            "${HOME:-/tmp}",
            "${A:-}",
            "$${HOME}",
            "abc$$def",
            "autoApprove",
            "${",
            "${1X}",
            "${A",
            "$",
            "a$b",
            "x\u{0}y",
            "${A}${B:-${C}}",
            "rel/dir",
            "stdio",
            "http",
            "sse",
            "meta",
            "tools",
            "both",
            "ok-name_1",
            "name with space",
            "é",
            "alpha__x",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9_${}:\\-/ ]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        prop::sample::select(vec![0.0, 0.5, 1.0, 30.0, -1.0, 1023.0, 1024.0, 1e19, 1e300])
            .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// Keys valid somewhere in some shape, and a few typos.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "command",
        "args",
        "env",
        "cwd",
        "description",
        "timeout",
        "startup_timeout",
        "idle_timeout",
        "disabled",
        "name",
        "type",
        "url",
        "autoApprove",
        "transportType",
        "tiemout",
        "expose",
        "max_message_bytes",
        "$schema",
        "backends",
        "mcpServers",
    ])
    .prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            vec((prop_oneof![key(), text()], inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A backend object with mostly the right keys.
fn backend() -> impl Strategy<Value = Value> {
    (
        text(),
        vec(text(), 0..3),
        vec((text(), text()), 0..3),
        vec((key(), value()), 0..3),
    )
        .prop_map(|(command, args, env, extra)| {
            let mut b = json!({"command": command, "args": args,
                               "env": env.into_iter().map(|(k, v)| (k, Value::from(v))).collect::<Map<_, _>>()});
            for (k, v) in extra {
                b[k] = v;
            }
            b
        })
}

/// Configs of the three shapes, with settings and noise; sometimes cut short.
fn config_text() -> impl Strategy<Value = String> {
    let servers = vec((text(), backend()), 0..4);
    (
        0..4u8,
        servers,
        vec((key(), value()), 0..3),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(shape, servers, top, cut, at)| {
            let mut root = match shape {
                0 => json!({"backends": servers.iter().cloned().collect::<Map<_, _>>()}),
                1 => json!({"backends": servers.iter().map(|(n, b)| {
                    let mut b = b.clone();
                    b["name"] = json!(n);
                    b
                }).collect::<Vec<_>>()}),
                2 => json!({"mcpServers": servers.iter().cloned().collect::<Map<_, _>>()}),
                _ => json!({}),
            };
            for (k, v) in top {
                root[k] = v;
            }
            let mut s = serde_json::to_string_pretty(&root).unwrap_or_default();
            if cut && !s.is_empty() {
                let mut i = at.index(s.len());
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                s.truncate(i);
            }
            s
        })
}

proptest! {
    #![proptest_config(super::runner(512))]

    #[test]
    fn configs_parse_or_fail_cleanly(text in config_text()) {
        check_text(&text);
    }

    #[test]
    fn any_text_parses_or_fails_cleanly(text in ".{0,200}") {
        check_text(&text);
    }
}
