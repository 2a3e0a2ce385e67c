//! `Message::parse` and the id splice, the way the gateway forwards a message: for any line,
//! classification does not panic; for any line with an id, putting a gateway id in its
//! place gives a line that classifies the same, carries that id and is the same JSON value
//! apart from `id`, and putting the original id back gives the original bytes exactly.

use gangway::wire::ids::{parse_gateway_id, IdText};
use gangway::wire::message::{
    is_valid_id, serde_members, span_of, splice, Kind, Message, INVALID_REQUEST,
};
use gangway::wire::scan::{is_value, members, top};
use serde_json::Value;

/// Gateway ids to splice in: the first, one of each length class, the largest, and one taken
/// from the input so the fuzzer can vary it.
fn gateway_ids(line: &[u8]) -> [u64; 4] {
    let mut from_line = [0u8; 8];
    for (i, b) in line.iter().rev().take(8).enumerate() {
        from_line[i] = *b;
    }
    [1, 4_294_967_296, u64::MAX, u64::from_le_bytes(from_line)]
}

/// The scanner against serde_json as the oracle: whatever the scanner accepts, serde_json
/// accepts with the same members (so the scanner can never let through what the old path
/// refused); what it refuses, serde_json decides (the scanner refuses only the rare lines
/// listed in its docs beyond what serde_json refuses). Also for values alone.
fn check_scanner(line: &[u8]) {
    match (top(line), serde_members(line).ok()) {
        (Ok(ours), Some(mut theirs)) => {
            // The members of params and result: exact when the scanner gives them; it may
            // leave one with escapes to serde_json.
            if ours.params_members.is_none() && ours.params.is_some_and(|p| p.contains('\\')) {
                theirs.params_members = None;
            }
            if ours.result_members.is_none() && ours.result.is_some_and(|r| r.contains('\\')) {
                theirs.result_members = None;
            }
            assert_eq!(ours, theirs, "members");
        }
        (Ok(_), None) => panic!(
            "the scanner accepts a line serde_json refuses: {}",
            String::from_utf8_lossy(line)
        ),
        (Err(_), Some(_)) => {
            // Allowed only for the rare shapes the scanner leaves to serde_json.
            let starts = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
            assert!(
                starts == Some(b'[') || line.contains(&b'\\') || duplicate_member(line),
                "the scanner refuses a line serde_json takes: {}",
                String::from_utf8_lossy(line)
            );
        }
        (Err(_), None) => {}
    }
    // `members` on any text: what it finds, serde_json finds.
    if let Ok(text) = std::str::from_utf8(line) {
        let keys: [&[u8]; 5] = [b"name", b"arguments", b"_meta", b"task", b"requestState"];
        if let Some(found) = members(text, &keys) {
            let theirs = gangway::wire::message::serde_params(text.trim_start())
                .expect("serde_json reads an object members() read");
            assert_eq!(
                found,
                [
                    theirs.name,
                    theirs.arguments,
                    theirs.meta,
                    theirs.task,
                    theirs.request_state
                ],
                "members of {text}"
            );
        }
    }
    let value_ok = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
    if is_value(line) {
        assert!(
            value_ok,
            "the scanner takes a value serde_json refuses: {}",
            String::from_utf8_lossy(line)
        );
    }
}

/// Whether a known member appears twice at the top of `line` (serde_json says so).
fn duplicate_member(line: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Map<String, Value>>(line) {
        Err(_) => true,
        Ok(_) => {
            let text = String::from_utf8_lossy(line);
            ["jsonrpc", "id", "method", "params", "result", "error"]
                .iter()
                .any(|k| text.matches(&format!("\"{k}\"")).count() > 1)
        }
    }
}

/// Checks one line; panics with the details when an invariant breaks.
pub fn check_line(line: &[u8]) {
    check_scanner(line);
    let msg = match Message::parse(line) {
        Ok(msg) => msg,
        Err(bad) => {
            assert!(
                bad.code == INVALID_REQUEST || bad.code == gangway::wire::message::PARSE_ERROR,
                "invalid line answered with code {}: {}",
                bad.code,
                String::from_utf8_lossy(line)
            );
            // The id an error is answered with is a valid id from this very line.
            if let Some(id) = bad.id {
                assert!(is_valid_id(id), "error names an invalid id {}", id.get());
                assert!(
                    span_of(line, id.get()).is_some(),
                    "error id not in the line"
                );
            }
            return;
        }
    };
    assert_eq!(msg.line, line);
    assert_eq!(
        msg.method.is_some(),
        msg.kind != Kind::Response,
        "method presence disagrees with kind {:?}",
        msg.kind
    );
    let Some(id) = msg.id else {
        assert_eq!(
            msg.kind,
            Kind::Notification,
            "only notifications lack an id"
        );
        return;
    };
    assert!(is_valid_id(id), "accepted an invalid id {}", id.get());
    let span = msg
        .id_span()
        .expect("a parsed id is a slice of its own line");
    assert_eq!(&line[span.clone()], id.get().as_bytes());
    let original: Option<Value> = serde_json::from_slice(line).ok();
    for gw in gateway_ids(line) {
        let text = IdText::new(gw);
        let mut out = Vec::new();
        splice(&mut out, line, &[(span.clone(), text.as_bytes())]);
        assert_eq!(
            out.pop(),
            Some(b'\n'),
            "splice ends the line with a newline"
        );
        let rewritten = match Message::parse(&out) {
            Ok(m) => m,
            Err(e) => panic!(
                "the line with id {gw} spliced in does not parse ({}): {}",
                e.reason,
                String::from_utf8_lossy(&out)
            ),
        };
        assert_eq!(rewritten.kind, msg.kind);
        assert_eq!(rewritten.method, msg.method);
        assert_eq!(
            rewritten.params.map(|p| p.get()),
            msg.params.map(|p| p.get())
        );
        assert_eq!(
            rewritten.result.map(|p| p.get()),
            msg.result.map(|p| p.get())
        );
        assert_eq!(rewritten.error.map(|p| p.get()), msg.error.map(|p| p.get()));
        let new_id = rewritten.id.map(|i| i.get().as_bytes());
        assert_eq!(new_id.and_then(parse_gateway_id), Some(gw));
        // serde_json refuses some lines the borrowed view accepts (a number too large for
        // an f64 in a field nobody reads); compare values whenever the original is one.
        if let Some(mut before) = original.clone() {
            let mut after: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                panic!(
                    "rewritten line is not JSON ({e}) though the original was: {}",
                    String::from_utf8_lossy(&out)
                )
            });
            assert_eq!(after["id"], Value::from(gw));
            if let (Some(b), Some(a)) = (before.as_object_mut(), after.as_object_mut()) {
                b.remove("id");
                a.remove("id");
            }
            assert_eq!(before, after, "rewriting the id changed more than the id");
        }
        let back = rewritten
            .id_span()
            .expect("the spliced id is a slice of the rewritten line");
        let mut restored = Vec::new();
        splice(&mut restored, &out, &[(back, &line[span.clone()])]);
        assert_eq!(restored.pop(), Some(b'\n'));
        assert!(
            restored == line,
            "restoring the id did not give the original bytes:\n  original {}\n  restored {}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&restored)
        );
    }
}
