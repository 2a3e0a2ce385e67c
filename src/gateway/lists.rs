//! The lists merged across backends (tools, prompts, resources, resource templates): how
//! each is fetched, how its entries are named to the client, and how a resource URI finds
//! the backend that owns it.

pub use crate::wire::lists::{ListKind, LIST_KINDS};
use crate::wire::message::{span_of, splice, write_json_string, Raw};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One entry of a list as a backend sent it: its identifying key (name or URI) and its
/// whole definition, kept raw so it is passed on byte for byte.
#[derive(Debug)]
pub struct Item {
    /// The name, URI or URI template.
    pub key: String,
    /// The entry exactly as the backend sent it.
    pub raw: Box<RawValue>,
}

/// Reads one page of a list result: its entries and the cursor of the next page. Entries
/// without a string key are skipped (they could not be addressed anyway).
pub fn parse_page(kind: ListKind, result: Raw<'_>) -> Result<(Vec<Item>, Option<String>), String> {
    type Fields<'a> = std::collections::HashMap<String, &'a RawValue>;
    let page: Fields<'_> = serde_json::from_str(result.get())
        .map_err(|e| format!("its {} result is malformed ({e})", kind.method()))?;
    let next_cursor = match page.get("nextCursor") {
        Some(c) => serde_json::from_str::<Option<String>>(c.get())
            .map_err(|e| format!("its {} nextCursor is malformed ({e})", kind.method()))?,
        None => None,
    };
    let items_raw = page.get(kind.items_key()).ok_or_else(|| {
        format!(
            "its {} result has no \"{}\"",
            kind.method(),
            kind.items_key()
        )
    })?;
    let raws: Vec<Box<RawValue>> = serde_json::from_str(items_raw.get())
        .map_err(|e| format!("its {} result is malformed ({e})", kind.method()))?;
    let items = raws
        .into_iter()
        .filter_map(|raw| {
            let key = key_of(kind, &raw)?;
            Some(Item { key, raw })
        })
        .collect();
    Ok((items, next_cursor.filter(|c| !c.is_empty())))
}

fn key_of(kind: ListKind, raw: &RawValue) -> Option<String> {
    let fields: std::collections::HashMap<String, &RawValue> =
        serde_json::from_str(raw.get()).ok()?;
    serde_json::from_str(fields.get(kind.id_key())?.get()).ok()
}

/// The params of a paged list request: `{"cursor": …}` for a later page, none for the first.
pub fn cursor_params(cursor: Option<&str>) -> Option<Vec<u8>> {
    cursor.map(|c| {
        let mut p = b"{\"cursor\":".to_vec();
        write_json_string(&mut p, c);
        p.push(b'}');
        p
    })
}

/// Entries read back from raw values (the catalog's), skipping those without a string
/// key as [`parse_page`] does.
pub fn items_from_raw(kind: ListKind, raws: &[Box<RawValue>]) -> Vec<Item> {
    raws.iter()
        .filter_map(|raw| {
            let key = key_of(kind, raw)?;
            Some(Item {
                key,
                raw: raw.clone(),
            })
        })
        .collect()
}

/// Puts a fetched list in the order gangway keeps and shows it: tools and prompts sorted
/// by name, so neither the client's list nor the comparison with the catalog changes when
/// only a backend's order did; resources and templates in the backend's own order.
pub fn canonical(kind: ListKind, items: &mut [Item]) {
    if kind.prefixed() {
        items.sort_by(|a, b| a.key.cmp(&b.key));
    }
}

/// Whether two lists hold the same entries, byte for byte, in the same order.
pub fn same_items(a: &[Item], b: &[Item]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.key == y.key && x.raw.get() == y.raw.get())
}

/// Appends `item` with its `name` replaced by `exposed`, as one JSON value (no newline).
/// Only the name's bytes change; the rest is copied as the backend sent it.
pub fn write_renamed(out: &mut Vec<u8>, exposed: &str, item: &Item) {
    #[derive(Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        name: &'a RawValue,
    }
    let raw = item.raw.get();
    let span = serde_json::from_str::<Name<'_>>(raw)
        .ok()
        .and_then(|n| span_of(raw.as_bytes(), n.name.get()));
    let mut name = Vec::with_capacity(exposed.len() + 4);
    write_json_string(&mut name, exposed);
    match span {
        Some(span) => {
            splice(out, raw.as_bytes(), &[(span, &name)]);
            // `splice` ends lines; a list element must not.
            out.pop();
        }
        None => out.extend_from_slice(raw.as_bytes()),
    }
}

/// Whether `uri` is an instance of the RFC 6570 `template`. Literal parts must match
/// exactly; a simple `{var}` matches any text without `/`, `?` or `#`, and the other
/// operators (`{+var}`, `{#var}`, `{/var}`, `{?var}`, …) match any text.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let (t, u) = (template.as_bytes(), uri.as_bytes());
    if t.len() > 1024 || u.len() > 8192 {
        return false;
    }
    // reach[i]: the template so far can match exactly u[..i]. One pass per template token
    // keeps this O(|template| * |uri|) whatever the URI (no backtracking to exploit).
    let mut reach = vec![false; u.len() + 1];
    reach[0] = true;
    let mut at = 0;
    while at < t.len() {
        let close = (t[at] == b'{')
            .then(|| t[at..].iter().position(|c| *c == b'}'))
            .flatten();
        let mut next = vec![false; u.len() + 1];
        match close {
            Some(close) => {
                let simple = t
                    .get(at + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                let mut open = false;
                for j in 0..=u.len() {
                    open |= reach[j];
                    next[j] = open;
                    if simple && j < u.len() && matches!(u[j], b'/' | b'?' | b'#') {
                        open = false;
                    }
                }
                at += close + 1;
            }
            None => {
                // A literal run up to the next expression (or all the rest if a `{` is
                // never closed).
                let end = if t[at] == b'{' {
                    t.len()
                } else {
                    t[at..]
                        .iter()
                        .position(|c| *c == b'{')
                        .map_or(t.len(), |p| at + p)
                };
                let lit = &t[at..end];
                for i in 0..=u.len() {
                    if reach[i] && u[i..].starts_with(lit) {
                        next[i + lit.len()] = true;
                    }
                }
                at = end;
            }
        }
        reach = next;
    }
    reach[u.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: ListKind, raw: &str) -> Item {
        let raw = RawValue::from_string(raw.to_string()).unwrap();
        Item {
            key: key_of(kind, &raw).unwrap(),
            raw,
        }
    }

    #[test]
    fn pages_of_every_kind_are_read_with_their_keys() {
        let r = RawValue::from_string(
            r#"{"resources":[{"uri":"file:///a","name":"a"},{"name":"no uri"}],"nextCursor":"2"}"#
                .into(),
        )
        .unwrap();
        let (items, next) = parse_page(ListKind::Resources, (&*r).into()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key, "file:///a");
        assert_eq!(next.as_deref(), Some("2"));
        let r =
            RawValue::from_string(r#"{"resourceTemplates":[{"uriTemplate":"x://{id}"}]}"#.into())
                .unwrap();
        let (items, next) = parse_page(ListKind::Templates, (&*r).into()).unwrap();
        assert_eq!(items[0].key, "x://{id}");
        assert!(next.is_none());
        let bad = RawValue::from_string(r#"{"tools":3}"#.into()).unwrap();
        assert!(parse_page(ListKind::Tools, (&*bad).into()).is_err());
        let missing = RawValue::from_string(r#"{}"#.into()).unwrap();
        assert!(parse_page(ListKind::Prompts, (&*missing).into())
            .unwrap_err()
            .contains("prompts"));
    }

    #[test]
    fn prefixing_changes_only_the_name() {
        let t = item(
            ListKind::Tools,
            r#"{"inputSchema":{"type":"object"},"name":"echo","x":{"name":"inner"}}"#,
        );
        let mut out = Vec::new();
        write_renamed(&mut out, "be__echo", &t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"inputSchema":{"type":"object"},"name":"be__echo","x":{"name":"inner"}}"#
        );
    }

    #[test]
    fn templates_match_like_rfc_6570() {
        assert!(template_matches(
            "demo://resource/{id}",
            "demo://resource/17"
        ));
        assert!(!template_matches(
            "demo://resource/{id}",
            "demo://resource/1/2"
        ));
        assert!(!template_matches("demo://resource/{id}", "demo://other/1"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches("x://{a}/{b}", "x://1/2"));
        assert!(!template_matches("x://{a}/{b}", "x://1"));
        assert!(template_matches("plain", "plain"));
        assert!(template_matches("broken{", "broken{"));
        assert!(!template_matches(&"{a}".repeat(600), "x"));
        assert!(template_matches("{a}{b}", "xy"));
        assert!(template_matches("{+a}", ""));
    }

    #[test]
    fn hostile_uris_do_not_stall_template_matching() {
        let template = "x://{+a}/{+b}/{+c}/{+d}/z";
        let uri = format!("x://{}", "/".repeat(8000));
        let started = std::time::Instant::now();
        assert!(!template_matches(template, &uri));
        // Linear work: far below a second even unoptimised (backtracking took minutes).
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn list_changed_methods_map_to_kinds() {
        assert_eq!(
            ListKind::from_list_changed("notifications/resources/list_changed"),
            Some(&[ListKind::Resources, ListKind::Templates][..])
        );
        assert_eq!(ListKind::from_list_changed("notifications/message"), None);
        for k in LIST_KINDS {
            assert_eq!(LIST_KINDS[k.index()], k);
        }
    }
}
