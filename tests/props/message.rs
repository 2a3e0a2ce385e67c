//! `Message::parse` and the id splice: any line classifies without panicking, and every id
//! can be replaced by a gateway id and put back byte for byte.

use super::check::message::check_line;
use proptest::collection::vec;
use proptest::prelude::*;

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        1 => Just(" ".to_string()),
        1 => Just(" \t\r\n ".to_string()),
    ]
}

/// Id texts: valid ones of every shape (numbers of any length, strings with escapes and
/// unicode, strings that look like numbers) and invalid ones (null, floats, containers).
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<u64>().prop_map(|n| n.to_string()),
        2 => "-?[0-9]{1,40}",
        3 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        2 => r#""([a-z0-9 ]|\\n|\\"|\\\\|\\u00e9|é|\}|,|:){0,12}""#,
        1 => prop::sample::select(vec!["null", "1.5", "1e3", "-0", "true", "{}", "[1]", "\"\""])
            .prop_map(str::to_string),
    ]
}

/// Any JSON value, as text, with strings that mention ids and braces.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        Just("1e400".to_string()),
        "[a-z\"{}:, ]{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just(r#""\"id\":1""#.to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            vec(
                (
                    prop::sample::select(vec!["id", "method", "x", "_meta", "progressToken"]),
                    inner
                ),
                0..4
            )
            .prop_map(|fields| {
                let body: Vec<String> =
                    fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// A JSON-RPC-shaped object: each field routing reads at most once (mostly a valid
/// message), in any order, with any whitespace, plus an unknown one.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let jsonrpc = prop_oneof![9 => Just("\"2.0\""), 1 => Just("\"1.0\"")];
    let method = prop::sample::select(vec![
        "\"tools/call\"",
        "\"ping\"",
        "\"notifications/cancelled\"",
        "\"a\\u0062\"",
        "7",
    ]);
    let fields = (
        prop::option::weighted(0.95, jsonrpc),
        prop::option::weighted(0.8, id()),
        prop::option::weighted(0.6, method),
        prop::option::weighted(0.5, value()),
        prop::option::weighted(0.3, value()),
        prop::option::weighted(0.1, value()),
        prop::option::weighted(0.3, value()),
    )
        .prop_map(|(j, i, m, p, r, e, x)| {
            let named = [
                ("jsonrpc", j.map(str::to_string)),
                ("id", i),
                ("method", m.map(str::to_string)),
                ("params", p),
                ("result", r),
                ("error", e),
                ("extra", x),
            ];
            named
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect::<Vec<_>>()
        })
        .prop_shuffle();
    (fields, vec((ws(), ws()), 7), ws()).prop_map(|(fields, spaces, end)| {
        let body: Vec<String> = fields
            .iter()
            .zip(&spaces)
            .map(|((k, v), (a, b))| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
            .collect();
        format!("{{{}{end}}}", body.join(",")).into_bytes()
    })
}

/// A well-formed line with one byte changed, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (line(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(|(mut l, at, b, how)| {
        if l.is_empty() {
            return l;
        }
        let i = at.index(l.len());
        match how {
            0 => l[i] = b,
            1 => l.insert(i, b),
            _ => {
                l.remove(i);
            }
        }
        l
    })
}

proptest! {
    #![proptest_config(super::runner(1024))]

    #[test]
    fn ids_splice_out_and_back_exactly(line in line()) {
        check_line(&line);
    }

    #[test]
    fn damaged_lines_classify_without_panic(line in mutated()) {
        check_line(&line);
    }

    #[test]
    fn arbitrary_bytes_classify_without_panic(line in vec(any::<u8>(), 0..200)) {
        check_line(&line);
    }
}
