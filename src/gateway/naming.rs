//! Names gangway exposes for backends' tools and prompts.
//!
//! A backend's tool `TOOL` is offered to the client as `PREFIX + SEPARATOR + TOOL` (or just
//! `TOOL` when the prefix is empty). Clients accept only `^[A-Za-z0-9_-]{1,64}$`, so a name that
//! is too long, empty or has other characters is shortened with a hash, and a name two backends
//! both want goes to the first one; the other gets a hashed name. Everything here is a pure
//! function of its input sequence: the same configuration exposes the same names in every run,
//! so a client's saved permissions and the model's memory of tool names stay valid.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::tools::{DISCOVER, USE_TOOL};
use crate::config::{BackendConfig, Expose};
use crate::hash::fnv1a64;
use crate::wire::lists::ListKind;

/// The longest name clients accept.
pub const MAX_NAME: usize = 64;

/// Hex digits of the hash appended to a shortened name.
pub const HASH_DIGITS: usize = 6;

/// Characters of the candidate kept in front of `'_'` and the hash in a shortened name.
const STEM: usize = MAX_NAME - 1 - HASH_DIGITS;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `name` matches `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_valid(name: &str) -> bool {
    // Every accepted character is one ASCII byte, so a byte test is a character test.
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(is_name_byte)
}

/// The name gangway would like to expose: `prefix + separator + name`, or just `name` when
/// `prefix` is empty. The result may be invalid; see [`is_valid`].
pub fn candidate(prefix: &str, separator: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        let mut s = String::with_capacity(prefix.len() + separator.len() + name.len());
        s.push_str(prefix);
        s.push_str(separator);
        s.push_str(name);
        s
    }
}

/// A valid name derived from `wanted`: every character outside `[A-Za-z0-9_-]` becomes `'_'`
/// (one `'_'` per character, multibyte characters included), the result is cut to
/// `MAX_NAME - 1 - HASH_DIGITS` characters, then `'_'` and the first `HASH_DIGITS` lowercase hex
/// digits of [`crate::hash::fnv1a64`]`(salt)` (zero-padded to 16 digits) are appended.
/// Always [`is_valid`], at most `MAX_NAME` long, and a pure function of `(wanted, salt)`.
pub fn shorten(wanted: &str, salt: &str) -> String {
    let mut out = String::with_capacity(MAX_NAME);
    for c in wanted.chars().take(STEM) {
        if c.is_ascii() && is_name_byte(c as u8) {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out.push('_');
    let hex = format!("{:016x}", fnv1a64(salt.as_bytes()));
    out.push_str(&hex[..HASH_DIGITS]);
    out
}

/// One name to place: backend index, its prefix, and the tool's (or prompt's) own name.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The backend's index (config order).
    pub backend: usize,
    /// The backend's prefix; empty means the name is exposed without prefix and separator.
    pub prefix: &'a str,
    /// The tool's (or prompt's) name as the backend reports it.
    pub name: &'a str,
}

/// Why a name was not exposed as its candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The candidate has characters clients refuse, or is longer than `MAX_NAME`, or is empty.
    Invalid,
    /// Another (backend, name) placed earlier has this candidate.
    Collision {
        /// The backend holding the candidate.
        backend: usize,
        /// Its own name of the tool holding the candidate.
        name: String,
    },
}

/// A name that is exposed under something else than its candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// The backend the name belongs to.
    pub backend: usize,
    /// The name as the backend reports it.
    pub name: String,
    /// The name gangway would have liked to expose (see [`candidate`]).
    pub candidate: String,
    /// The name actually exposed.
    pub exposed: String,
    /// Why the candidate was not used.
    pub why: Why,
}

impl fmt::Display for Renamed {
    /// One line for logs; control characters and quotes in names are escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backend {}'s '{}' is exposed as '{}' (",
            self.backend,
            self.name.escape_debug(),
            self.exposed
        )?;
        let cand = self.candidate.escape_debug();
        match &self.why {
            Why::Invalid if self.candidate.is_empty() => f.write_str("its name would be empty")?,
            Why::Invalid => {
                let bad_chars = !self.candidate.bytes().all(is_name_byte);
                let too_long = self.candidate.chars().count() > MAX_NAME;
                match (bad_chars, too_long) {
                    (true, true) => write!(
                        f,
                        "its name '{cand}' has characters clients refuse and is longer than {MAX_NAME}"
                    )?,
                    (true, false) => {
                        write!(f, "its name '{cand}' has characters clients refuse")?
                    }
                    _ => write!(f, "its name '{cand}' is longer than {MAX_NAME}")?,
                }
            }
            Why::Collision { backend, name } => write!(
                f,
                "'{cand}' is already backend {backend}'s '{}'",
                name.escape_debug()
            )?,
        }
        f.write_str(")")
    }
}

/// Exposed names and the (backend, name) each stands for, in both directions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameTable {
    /// Exposed name -> (backend, own name).
    by_exposed: HashMap<String, (usize, String)>,
    /// Backend -> own name -> exposed name; nested so lookups borrow instead of allocating.
    by_backend: HashMap<usize, HashMap<String, String>>,
}

impl NameTable {
    /// Places every wanted name, in the order given (callers pass backends in config order,
    /// names sorted), and lists those renamed, in placement order.
    ///
    /// Pass 1: each valid candidate is claimed by the first (backend, name) wanting it; later
    /// wanters of the same candidate are [`Why::Collision`]s.
    /// Pass 2, in the order given: [`Why::Invalid`] ones and collision losers get
    /// `shorten(candidate, salt)` with `salt = prefix + "\0" + name` for the first try, and
    /// `+ "\0" + attempt` (1, 2, …) on later tries, until the result is not taken (by pass 1 or
    /// earlier in pass 2). Natural names thus always win over shortened ones.
    ///
    /// A (backend, name) pair given twice is placed once, with its first prefix. The result
    /// depends only on the input sequence.
    pub fn build(separator: &str, wanted: &[Wanted<'_>]) -> (NameTable, Vec<Renamed>) {
        let mut table = NameTable::default();
        let mut seen: HashSet<(usize, &str)> = HashSet::with_capacity(wanted.len());
        let mut pending: Vec<(Wanted<'_>, String, Why)> = Vec::new();

        for w in wanted {
            if !seen.insert((w.backend, w.name)) {
                continue;
            }
            let cand = candidate(w.prefix, separator, w.name);
            if !is_valid(&cand) {
                pending.push((*w, cand, Why::Invalid));
            } else if let Some((backend, name)) = table.by_exposed.get(&cand) {
                let why = Why::Collision {
                    backend: *backend,
                    name: name.clone(),
                };
                pending.push((*w, cand, why));
            } else {
                table.insert(cand, w.backend, w.name);
            }
        }

        let mut renamed = Vec::with_capacity(pending.len());
        for (w, cand, why) in pending {
            let base = format!("{}\u{0}{}", w.prefix, w.name);
            let mut exposed = shorten(&cand, &base);
            // Terminates: each attempt hashes a different salt, and only as many names as were
            // wanted can be taken out of the 16^HASH_DIGITS endings of this stem.
            let mut attempt: u64 = 0;
            while table.by_exposed.contains_key(&exposed) {
                attempt += 1;
                exposed = shorten(&cand, &format!("{base}\u{0}{attempt}"));
            }
            table.insert(exposed.clone(), w.backend, w.name);
            renamed.push(Renamed {
                backend: w.backend,
                name: w.name.to_owned(),
                candidate: cand,
                exposed,
                why,
            });
        }

        (table, renamed)
    }

    fn insert(&mut self, exposed: String, backend: usize, name: &str) {
        self.by_backend
            .entry(backend)
            .or_default()
            .insert(name.to_owned(), exposed.clone());
        self.by_exposed.insert(exposed, (backend, name.to_owned()));
    }

    /// The exposed name of `name` of `backend`, if placed.
    pub fn exposed(&self, backend: usize, name: &str) -> Option<&str> {
        self.by_backend.get(&backend)?.get(name).map(String::as_str)
    }

    /// The (backend, own name) an exposed name stands for, if it is one.
    pub fn resolve(&self, exposed: &str) -> Option<(usize, &str)> {
        self.by_exposed
            .get(exposed)
            .map(|(backend, name)| (*backend, name.as_str()))
    }

    /// How many names are placed.
    pub fn len(&self) -> usize {
        self.by_exposed.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_exposed.is_empty()
    }
}

/// The backend index that stands for gangway itself in name tables: the meta-tools' names.
pub const GANGWAY: usize = usize::MAX;

/// Whether the client's tool list carries the meta-tools, for a gateway whose live
/// backends are `backends` and whose top-level `expose` is `expose`: when any backend is
/// reached through them, or, with no backend at all, when `expose` is not `tools`.
pub fn meta_listed<'a>(
    expose: Expose,
    backends: impl IntoIterator<Item = &'a BackendConfig>,
) -> bool {
    let mut backends = backends.into_iter().peekable();
    if backends.peek().is_none() {
        return expose != Expose::Tools;
    }
    backends.any(BackendConfig::in_meta)
}

/// The exposed names of the tools (or prompts, by `kind`) of `lists`: (backend index, its
/// config, its names sorted), backends in config order. This is the placement the gateway
/// serves, and the one `gangway tools` and `gangway check` show:
/// - a tool takes part only when it is offered directly (its backend's `tools` filter
///   permits it, and its `expose` or `direct` lists it); prompts always do;
/// - while the meta-tools are listed (argument `meta_listed`, decided by [`meta_listed`]),
///   their names are placed first, under [`GANGWAY`], so a backend tool called
///   `use_tool` is renamed rather than shadowing the meta-tool.
pub fn exposed_names<'a, N>(
    kind: ListKind,
    separator: &str,
    meta_listed: bool,
    lists: impl IntoIterator<Item = (usize, &'a BackendConfig, N)>,
) -> (NameTable, Vec<Renamed>)
where
    N: IntoIterator<Item = &'a str>,
{
    let tools = kind == ListKind::Tools;
    let mut wanted = Vec::new();
    if tools && meta_listed {
        for name in [USE_TOOL, DISCOVER] {
            wanted.push(Wanted {
                backend: GANGWAY,
                prefix: "",
                name,
            });
        }
    }
    for (backend, config, names) in lists {
        for name in names {
            if !tools || config.is_direct(name) {
                wanted.push(Wanted {
                    backend,
                    prefix: &config.prefix,
                    name,
                });
            }
        }
    }
    NameTable::build(separator, &wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w<'a>(backend: usize, prefix: &'a str, name: &'a str) -> Wanted<'a> {
        Wanted {
            backend,
            prefix,
            name,
        }
    }

    fn ends_with_hash(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() > HASH_DIGITS
            && b[b.len() - HASH_DIGITS - 1] == b'_'
            && b[b.len() - HASH_DIGITS..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    }

    #[test]
    fn validity_follows_the_client_pattern() {
        assert!(is_valid("a"));
        assert!(is_valid("A-z_09"));
        assert!(is_valid(&"x".repeat(64)));
        assert!(!is_valid(&"x".repeat(65)));
        assert!(!is_valid(""));
        assert!(!is_valid("a.b"));
        assert!(!is_valid("a b"));
        assert!(!is_valid("é"));
    }

    #[test]
    fn candidate_joins_prefix_separator_and_name() {
        assert_eq!(candidate("git", "__", "log"), "git__log");
        assert_eq!(candidate("", "__", "log"), "log");
        assert_eq!(candidate("git", "", "log"), "gitlog");
    }

    #[test]
    fn a_70_character_name_is_shortened_deterministically() {
        let name = "t".repeat(70);
        let (table, renamed) = NameTable::build("__", &[w(0, "", &name)]);
        let exposed = table.exposed(0, &name).expect("placed");
        assert!(is_valid(exposed));
        assert!(exposed.len() <= MAX_NAME);
        assert!(ends_with_hash(exposed), "{exposed}");
        assert!(exposed.starts_with(&"t".repeat(STEM)));
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].why, Why::Invalid);
        assert_eq!(renamed[0].candidate, name);
        assert_eq!(table.resolve(exposed), Some((0, name.as_str())));

        let (again, _) = NameTable::build("__", &[w(0, "", &name)]);
        assert_eq!(again.exposed(0, &name), Some(exposed));
        assert_eq!(shorten(&name, "s"), shorten(&name, "s"));
        assert_ne!(shorten(&name, "s"), shorten(&name, "t"));
    }

    #[test]
    fn shorten_uses_the_first_hex_digits_of_the_salt_hash() {
        // fnv1a64("a") = 0xaf63dc4c8601ec8c
        assert_eq!(shorten("x.y", "a"), "x_y_af63dc");
        assert_eq!(shorten("", "a"), "_af63dc");
        // One '_' per character, not per byte.
        assert_eq!(shorten("né", "a"), "n__af63dc");
    }

    #[test]
    fn odd_characters_get_valid_names() {
        let names = [
            "x.y",
            "a/b",
            "two words",
            "日本語",
            "emoji🎉",
            "tab\tand\nnewline",
        ];
        let wanted: Vec<_> = names.iter().map(|n| w(1, "p", n)).collect();
        let (table, renamed) = NameTable::build("__", &wanted);
        assert_eq!(renamed.len(), names.len());
        for n in names {
            let exposed = table.exposed(1, n).expect("placed");
            assert!(is_valid(exposed), "{exposed:?}");
            assert!(exposed.starts_with("p__"), "{exposed}");
            assert_eq!(table.resolve(exposed), Some((1, n)));
        }
        assert!(table.exposed(1, "x.y").unwrap_or("").starts_with("p__x_y_"));
        // Three characters, three underscores, however many bytes they take.
        let cjk = table.exposed(1, "日本語").unwrap_or("");
        assert_eq!(cjk.len(), "p__".len() + 3 + 1 + HASH_DIGITS, "{cjk}");
        assert!(cjk.starts_with("p_____"), "{cjk}");
        let line = renamed[0].to_string();
        assert!(line.contains("characters clients refuse"), "{line}");
        assert!(!renamed[5].to_string().contains('\n'));
    }

    #[test]
    fn colliding_pair_first_keeps_the_name() {
        let wanted = [w(0, "a", "b__c"), w(1, "a__b", "c")];
        let (table, renamed) = NameTable::build("__", &wanted);
        assert_eq!(table.exposed(0, "b__c"), Some("a__b__c"));
        let second = table.exposed(1, "c").expect("placed");
        assert_ne!(second, "a__b__c");
        assert!(is_valid(second) && ends_with_hash(second));
        assert_eq!(table.resolve("a__b__c"), Some((0, "b__c")));
        assert_eq!(table.resolve(second), Some((1, "c")));
        assert_eq!(
            renamed,
            vec![Renamed {
                backend: 1,
                name: "c".into(),
                candidate: "a__b__c".into(),
                exposed: second.to_owned(),
                why: Why::Collision {
                    backend: 0,
                    name: "b__c".into()
                },
            }]
        );
        let line = renamed[0].to_string();
        assert!(line.contains("already backend 0's 'b__c'"), "{line}");
    }

    #[test]
    fn same_prefix_and_same_tool_on_two_backends() {
        let wanted = [w(0, "x", "run"), w(1, "x", "run")];
        let (table, renamed) = NameTable::build("__", &wanted);
        assert_eq!(table.len(), 2);
        assert_eq!(table.exposed(0, "run"), Some("x__run"));
        let other = table.exposed(1, "run").expect("placed");
        assert!(other.starts_with("x__run_") && ends_with_hash(other));
        assert_eq!(table.resolve(other), Some((1, "run")));
        assert_eq!(renamed.len(), 1);
        assert_eq!(
            renamed[0].why,
            Why::Collision {
                backend: 0,
                name: "run".into()
            }
        );
    }

    #[test]
    fn natural_names_win_over_shortened_ones() {
        // Backend 0's "x.y" would shorten to exactly the name backend 1 wants naturally,
        // and is listed first: the natural name still goes to backend 1.
        let first_try = shorten("p__x.y", "p\u{0}x.y");
        let natural = first_try.strip_prefix("p__").expect("prefix kept");
        let wanted = [w(0, "p", "x.y"), w(1, "p", natural)];
        let (table, renamed) = NameTable::build("__", &wanted);
        assert_eq!(table.exposed(1, natural), Some(first_try.as_str()));
        let moved = table.exposed(0, "x.y").expect("placed");
        assert_ne!(moved, first_try);
        assert_eq!(moved, shorten("p__x.y", "p\u{0}x.y\u{0}1"));
        assert_eq!(table.resolve(moved), Some((0, "x.y")));
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].why, Why::Invalid);
    }

    #[test]
    fn empty_prefix_exposes_the_bare_name() {
        let (table, renamed) = NameTable::build("__", &[w(0, "", "search")]);
        assert_eq!(table.exposed(0, "search"), Some("search"));
        assert_eq!(table.resolve("search"), Some((0, "search")));
        assert!(renamed.is_empty());
    }

    #[test]
    fn empty_tool_name() {
        let (table, renamed) = NameTable::build("__", &[w(0, "p", ""), w(1, "", "")]);
        assert_eq!(table.exposed(0, ""), Some("p__"));
        let bare = table.exposed(1, "").expect("placed");
        assert!(is_valid(bare) && ends_with_hash(bare), "{bare}");
        assert_eq!(table.resolve(bare), Some((1, "")));
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].why, Why::Invalid);
        assert!(renamed[0].to_string().contains("would be empty"));
    }

    #[test]
    fn a_pair_given_twice_is_placed_once() {
        let (table, renamed) = NameTable::build("__", &[w(0, "p", "a"), w(0, "p", "a")]);
        assert_eq!(table.len(), 1);
        assert!(renamed.is_empty());
        assert_eq!(table.exposed(0, "a"), Some("p__a"));
    }

    #[test]
    fn unknown_names_resolve_to_nothing() {
        let (table, _) = NameTable::build("__", &[w(0, "p", "a")]);
        assert_eq!(table.resolve("p__b"), None);
        assert_eq!(table.exposed(0, "b"), None);
        assert_eq!(table.exposed(1, "a"), None);
        assert!(NameTable::default().is_empty());
    }

    #[test]
    fn too_long_is_explained() {
        let name = "n".repeat(70);
        let (_, renamed) = NameTable::build("__", &[w(0, "p", &name)]);
        let line = renamed[0].to_string();
        assert!(line.contains("longer than 64"), "{line}");
        assert!(!line.contains("refuse"), "{line}");
    }

    /// The backends of a config file holding `backends` (a JSON object), in its order.
    fn backends(expose: &str, backends: serde_json::Value) -> Vec<BackendConfig> {
        let text = serde_json::json!({ "expose": expose, "backends": backends }).to_string();
        let path = std::path::Path::new("test.json");
        crate::config::Config::parse(&text, path, &|_| None)
            .expect("test config is valid")
            .backends
    }

    fn placed<'a>(
        kind: ListKind,
        meta: bool,
        configs: &'a [BackendConfig],
        lists: &[&[&'a str]],
    ) -> (NameTable, Vec<Renamed>) {
        let lists: Vec<_> = configs
            .iter()
            .zip(lists)
            .enumerate()
            .map(|(b, (c, names))| (b, c, names.iter().copied()))
            .collect();
        exposed_names(kind, "__", meta, lists)
    }

    #[test]
    fn meta_tools_keep_their_names_while_listed() {
        let configs = backends(
            "both",
            serde_json::json!({ "a": { "command": "x", "prefix": "" } }),
        );
        let names: &[&str] = &["discover_backend_tools", "echo", "use_tool"];
        let (table, renamed) = placed(ListKind::Tools, true, &configs, &[names]);
        assert_eq!(table.resolve("use_tool"), Some((GANGWAY, "use_tool")));
        assert_eq!(table.resolve(DISCOVER), Some((GANGWAY, DISCOVER)));
        assert_eq!(table.exposed(0, "echo"), Some("echo"));
        for name in [DISCOVER, USE_TOOL] {
            let exposed = table.exposed(0, name).expect("placed");
            assert!(exposed.starts_with(&format!("{name}_")) && ends_with_hash(exposed));
            assert_eq!(table.resolve(exposed), Some((0, name)));
        }
        let why: Vec<_> = renamed.iter().map(|r| (r.name.as_str(), &r.why)).collect();
        assert_eq!(
            why,
            [
                (
                    DISCOVER,
                    &Why::Collision {
                        backend: GANGWAY,
                        name: DISCOVER.into()
                    }
                ),
                (
                    USE_TOOL,
                    &Why::Collision {
                        backend: GANGWAY,
                        name: USE_TOOL.into()
                    }
                ),
            ]
        );

        // Without the meta-tools listed, the names are free; and prompts never compete
        // with tools.
        let (table, renamed) = placed(ListKind::Tools, false, &configs, &[names]);
        assert_eq!(table.exposed(0, USE_TOOL), Some(USE_TOOL));
        assert!(renamed.is_empty() && table.resolve(DISCOVER) == Some((0, DISCOVER)));
        let (table, renamed) = placed(ListKind::Prompts, true, &configs, &[names]);
        assert_eq!(table.exposed(0, USE_TOOL), Some(USE_TOOL));
        assert!(renamed.is_empty() && table.len() == 3);
    }

    #[test]
    fn only_tools_offered_directly_take_names() {
        let configs = backends(
            "tools",
            serde_json::json!({
                "a": { "command": "x", "prefix": "p", "tools": { "deny": ["hidden"] } },
                "b": { "command": "x", "prefix": "p", "expose": "meta", "direct": ["pinned"] },
                "c": { "command": "x", "prefix": "p" },
            }),
        );
        let a: &[&str] = &["echo", "hidden"];
        let b: &[&str] = &["echo", "hidden", "pinned"];
        let c: &[&str] = &["echo", "hidden", "pinned"];
        let (table, renamed) = placed(ListKind::Tools, true, &configs, &[a, b, c]);
        assert_eq!(table.exposed(0, "echo"), Some("p__echo"));
        assert_eq!(table.exposed(0, "hidden"), None, "filtered out");
        assert_eq!(
            table.exposed(1, "echo"),
            None,
            "reached only through use_tool"
        );
        assert_eq!(table.exposed(1, "hidden"), None);
        assert_eq!(table.exposed(1, "pinned"), Some("p__pinned"));
        // Neither a filtered tool nor one behind use_tool claims a name: c's `hidden` is
        // p__hidden, and only c's echo and pinned (taken by a and b) are renamed.
        assert_eq!(table.exposed(2, "hidden"), Some("p__hidden"));
        let moved: Vec<_> = renamed
            .iter()
            .map(|r| (r.backend, r.name.as_str()))
            .collect();
        assert_eq!(moved, [(2, "echo"), (2, "pinned")]);

        // Prompts ignore `tools` filters and `expose`: every one takes part.
        let (table, _) = placed(ListKind::Prompts, true, &configs, &[a, b, c]);
        assert_eq!(table.len(), 8);
        assert_eq!(table.exposed(0, "hidden"), Some("p__hidden"));
        let b_hidden = table.exposed(1, "hidden").expect("placed");
        assert!(b_hidden.starts_with("p__hidden_"), "{b_hidden}");
    }

    #[test]
    fn the_meta_tools_are_listed_when_a_backend_is_reached_through_them() {
        let two = |a: &str, b: &str| {
            backends(
                "tools",
                serde_json::json!({
                    "a": { "command": "x", "expose": a },
                    "b": { "command": "x", "expose": b },
                }),
            )
        };
        assert!(!meta_listed(Expose::Tools, &two("tools", "tools")));
        assert!(meta_listed(Expose::Tools, &two("tools", "both")));
        assert!(meta_listed(Expose::Tools, &two("meta", "tools")));
        // `direct` pins tools of a meta backend; the rest still needs the meta-tools.
        let mut pinned = two("meta", "tools");
        pinned[0].direct = vec![glob::Pattern::new("*").expect("glob")];
        assert!(meta_listed(Expose::Tools, &pinned));
        // With no backend at all, the top-level setting decides.
        assert!(!meta_listed(Expose::Tools, &[]));
        assert!(meta_listed(Expose::Meta, &[]));
        assert!(meta_listed(Expose::Both, &[]));
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            // Few letters: many natural collisions.
            "[ab_]{0,4}",
            "[a-z0-9_.-]{0,70}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn every_input_gets_a_valid_distinct_reversible_name(
            separator in prop_oneof![Just("__"), Just("_"), Just(""), Just(".")],
            input in prop::collection::vec((0usize..4, text(), text()), 0..100),
        ) {
            let wanted: Vec<Wanted<'_>> = input
                .iter()
                .map(|(b, p, n)| Wanted { backend: *b, prefix: p, name: n })
                .collect();
            let (table, renamed) = NameTable::build(separator, &wanted);

            let mut seen = HashSet::new();
            for wt in &wanted {
                let exposed = table.exposed(wt.backend, wt.name);
                prop_assert!(exposed.is_some());
                let exposed = exposed.unwrap_or_default();
                prop_assert!(is_valid(exposed), "{:?}", exposed);
                prop_assert_eq!(table.resolve(exposed), Some((wt.backend, wt.name)));
                seen.insert((wt.backend, wt.name));
            }
            prop_assert_eq!(table.len(), seen.len());
            let distinct: HashSet<&str> = seen
                .iter()
                .filter_map(|(b, n)| table.exposed(*b, n))
                .collect();
            prop_assert_eq!(distinct.len(), seen.len());
            for r in &renamed {
                prop_assert!(r.exposed != r.candidate);
                prop_assert_eq!(table.exposed(r.backend, &r.name), Some(r.exposed.as_str()));
            }

            let (again, renamed_again) = NameTable::build(separator, &wanted);
            prop_assert_eq!(&again, &table);
            prop_assert_eq!(renamed_again, renamed);
        }
    }
}
