//! The catalog: what each backend reported the last time it was initialized, kept in a file
//! so that `initialize`, `tools/list` and the other lists can be answered without starting
//! backends.
//!
//! Entries are keyed by a [`fingerprint`] of how a backend is spawned, not by its name, so a
//! renamed backend keeps its entry and one catalog file can be shared by several gangway
//! configs. The file is a cache: a missing or damaged one is rebuilt as backends start, and
//! nothing in it is ever a reason to fail.
//!
//! The items of every list are kept as the raw JSON text the backend sent; they are never
//! parsed into `Value` and re-encoded, so what a client is served from the catalog is byte
//! for byte what the backend said.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::BackendConfig;
use crate::wire::lists::{ListKind, LIST_KINDS};

/// The file format version written and accepted.
pub const VERSION: u64 = 1;
/// The most entries a catalog file keeps; the least recently updated go first.
pub const MAX_ENTRIES: usize = 256;

/// The key of a backend's entry: 16 lowercase hex digits of [`crate::hash::fnv1a64`] over
/// the canonical JSON array `[command, args, sorted env names, cwd as a string or null]`.
///
/// Two configs that would spawn the same program the same way share it, whatever their
/// env values (which are secrets, and often rotate), description, timeouts or filters. A
/// `cwd` that is not UTF-8 is taken lossily.
pub fn fingerprint(cfg: &BackendConfig) -> String {
    let mut env_names: Vec<&str> = cfg.env.iter().map(|(name, _)| name.as_str()).collect();
    env_names.sort_unstable();
    let canonical = serde_json::json!([
        cfg.command,
        cfg.args,
        env_names,
        cfg.cwd.as_ref().map(|cwd| cwd.to_string_lossy()),
    ]);
    format!(
        "{:016x}",
        crate::hash::fnv1a64(canonical.to_string().as_bytes())
    )
}

/// A one-line description of a server from its `initialize` result: its
/// `serverInfo.description`, else the first line of its `instructions`, else its
/// `serverInfo.title`; `None` when it gives none of them (or `init` is not JSON).
pub fn server_description(init: &RawValue) -> Option<String> {
    const MAX_CHARS: usize = 200;
    let init: serde_json::Value = serde_json::from_str(init.get()).ok()?;
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .and_then(|s| s.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(str::to_string)
    };
    let info = init.get("serverInfo");
    let line = text(info.and_then(|i| i.get("description")))
        .or_else(|| text(init.get("instructions")))
        .or_else(|| text(info.and_then(|i| i.get("title"))))?;
    if line.chars().count() <= MAX_CHARS {
        return Some(line);
    }
    let mut short: String = line.chars().take(MAX_CHARS).collect();
    short.push('…');
    Some(short)
}

/// What one backend reported.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The backend's name when the entry was written (for people reading the file).
    pub backend: String,
    /// When it was written, in seconds since the Unix epoch.
    pub updated: u64,
    /// Its `initialize` result (protocolVersion, capabilities, serverInfo, instructions),
    /// raw.
    pub init: Option<Box<RawValue>>,
    /// Its lists by [`ListKind::index`], each item raw as the backend sent it.
    pub lists: [Vec<Box<RawValue>>; 4],
    /// Its last start failed (and none succeeded since): a later run leaves it out of
    /// list answers for a while instead of waiting for it again.
    pub failed: Option<Failure>,
}

/// A failed start, as the catalog remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Failure {
    /// When it failed, in seconds since the Unix epoch.
    pub at: u64,
    /// How many starts in a row have failed.
    pub count: u32,
    /// Why, in gangway's words (at most [`FAILURE_TEXT_MAX`] bytes).
    pub error: String,
}

/// The longest failure text a catalog entry keeps, in bytes.
pub const FAILURE_TEXT_MAX: usize = 600;

impl Entry {
    /// Whether the entry holds what the backend reported (an entry written only to
    /// remember a failed start has nothing to list).
    pub fn has_lists(&self) -> bool {
        self.init.is_some() || self.failed.is_none()
    }
}

impl Entry {
    /// Whether two entries hold the same init result and lists, compared as JSON text byte
    /// for byte, ignoring `backend` and `updated`.
    pub fn same_content(&self, other: &Entry) -> bool {
        let same_raw = |a: &RawValue, b: &RawValue| a.get() == b.get();
        let same_init = match (&self.init, &other.init) {
            (None, None) => true,
            (Some(a), Some(b)) => same_raw(a, b),
            _ => false,
        };
        same_init
            && self.failed == other.failed
            && self
                .lists
                .iter()
                .zip(&other.lists)
                .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_raw(x, y)))
    }
}

/// Every backend's entry, by [`fingerprint`].
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The entries, keyed by fingerprint.
    pub entries: BTreeMap<String, Entry>,
}

/// One entry as the file holds it. Unknown fields are ignored so that a newer gangway's
/// additions do not make an older one drop the entry.
#[derive(Deserialize)]
struct EntryIn {
    #[serde(default)]
    backend: String,
    updated: u64,
    #[serde(default)]
    init: Option<Box<RawValue>>,
    #[serde(default)]
    tools: Vec<Box<RawValue>>,
    #[serde(default)]
    prompts: Vec<Box<RawValue>>,
    #[serde(default)]
    resources: Vec<Box<RawValue>>,
    #[serde(default, rename = "resourceTemplates")]
    resource_templates: Vec<Box<RawValue>>,
    #[serde(default)]
    failed: Option<Failure>,
}

impl EntryIn {
    fn into_entry(self) -> Entry {
        let mut lists: [Vec<Box<RawValue>>; 4] = Default::default();
        lists[ListKind::Tools.index()] = self.tools;
        lists[ListKind::Prompts.index()] = self.prompts;
        lists[ListKind::Resources.index()] = self.resources;
        lists[ListKind::Templates.index()] = self.resource_templates;
        Entry {
            backend: self.backend,
            updated: self.updated,
            init: self.init,
            lists,
            failed: self.failed,
        }
    }
}

/// Tells temporary files of concurrent saves within one process apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Catalog {
    /// Reads a catalog file's text.
    ///
    /// Errs, with a reason, when the text is not JSON, not an object, has no `"version"` or
    /// another one than [`VERSION`], or has an `"entries"` that is not an object. A
    /// malformed entry is skipped with a `log::warn` naming its fingerprint, never fatal.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let top: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(text).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => "it is not a JSON object".to_owned(),
                _ => format!("it is not JSON ({e})"),
            })?;
        let version = top
            .get("version")
            .ok_or_else(|| "it has no \"version\"".to_owned())?;
        if serde_json::from_str::<u64>(version.get()).ok() != Some(VERSION) {
            return Err(format!(
                "it has \"version\": {}, but this gangway reads version {VERSION}",
                version.get()
            ));
        }
        let mut catalog = Catalog::default();
        let Some(entries) = top.get("entries") else {
            return Ok(catalog);
        };
        let entries: BTreeMap<String, Box<RawValue>> = serde_json::from_str(entries.get())
            .map_err(|_| "its \"entries\" is not an object".to_owned())?;
        for (fp, raw) in entries {
            match serde_json::from_str::<EntryIn>(raw.get()) {
                Ok(entry) => {
                    catalog.entries.insert(fp, entry.into_entry());
                }
                Err(e) => log::warn!("catalog entry {fp:?} is malformed and skipped: {e}"),
            }
        }
        Ok(catalog)
    }

    /// The file text: pretty-printed JSON ending with a newline, of the form
    /// `{"version":1,"entries":{FP:{"backend":..,"updated":..,"init":..,"tools":[..],
    /// "prompts":[..],"resources":[..],"resourceTemplates":[..]}}}`, entries in fingerprint
    /// order, `init` absent when there is none. Raw values are embedded verbatim.
    pub fn to_json(&self) -> String {
        let mut out = format!("{{\n  \"version\": {VERSION},\n  \"entries\": {{");
        for (i, (fp, entry)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n    ");
            out.push_str(&json_string(fp));
            out.push_str(": {\n      \"backend\": ");
            out.push_str(&json_string(&entry.backend));
            out.push_str(&format!(",\n      \"updated\": {}", entry.updated));
            if let Some(init) = &entry.init {
                out.push_str(",\n      \"init\": ");
                out.push_str(init.get());
            }
            if let Some(f) = &entry.failed {
                out.push_str(&format!(
                    ",\n      \"failed\": {{\"at\": {}, \"count\": {}, \"error\": {}}}",
                    f.at,
                    f.count,
                    json_string(&f.error)
                ));
            }
            for kind in LIST_KINDS {
                out.push_str(",\n      \"");
                out.push_str(kind.items_key());
                out.push_str("\": [");
                let items = &entry.lists[kind.index()];
                for (j, item) in items.iter().enumerate() {
                    out.push_str(if j > 0 { ",\n        " } else { "\n        " });
                    out.push_str(item.get());
                }
                if !items.is_empty() {
                    out.push_str("\n      ");
                }
                out.push(']');
            }
            out.push_str("\n    }");
        }
        if !self.entries.is_empty() {
            out.push_str("\n  ");
        }
        out.push_str("}\n}\n");
        out
    }

    /// Loads `path`. Never fails.
    ///
    /// A missing file gives an empty catalog silently (`log::debug`). An unreadable or
    /// damaged file, or one that is not a regular file (a symbolic link, a FIFO, a device:
    /// never opened in a way that could block), is logged with `log::warn` (what is wrong, the path, and that it will be
    /// rebuilt as backends start) and gives an empty catalog.
    pub fn load(path: &Path) -> Catalog {
        match read(path) {
            Ok(Some(catalog)) => catalog,
            Ok(None) => {
                log::debug!("catalog {}: no such file yet", path.display());
                Catalog::default()
            }
            Err(why) => {
                log::warn!(
                    "catalog {}: {why}; it is ignored and will be rebuilt as backends start",
                    path.display()
                );
                Catalog::default()
            }
        }
    }

    /// Writes the catalog to `path` atomically.
    ///
    /// Refuses (with the path and the fix) when `path` exists and is not a regular file: a
    /// symbolic link, FIFO, device or directory is never replaced. Creates missing parent
    /// directories. Re-reads the current file first and merges with
    /// it, because other gangway configs may share the file: an entry on disk that `self`
    /// lacks is kept; for a fingerprint in both, the one with the larger `updated` wins and
    /// ties go to `self` (a damaged current file is replaced, with a warning). Drops the
    /// least recently updated entries beyond [`MAX_ENTRIES`]. Writes a temporary file in the
    /// same directory (its name includes the pid) and renames it over `path`, removing it
    /// on failure. Every error names the path that failed.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let Some(file_name) = path.file_name() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot write the catalog {}: it names no file",
                    path.display()
                ),
            ));
        };
        fs::create_dir_all(dir).map_err(|e| {
            annotate(
                e,
                format!(
                    "cannot create the directory {} for the catalog {}",
                    dir.display(),
                    path.display()
                ),
            )
        })?;

        // Never replace what is not a catalog file: rename would swap a link, a FIFO or a
        // device node for a regular file.
        if let Ok(meta) = fs::symlink_metadata(path) {
            refuse_special(&meta).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot write the catalog {}: {why}", path.display()),
                )
            })?;
        }
        let mut merged = match read(path) {
            Ok(Some(on_disk)) => on_disk,
            Ok(None) => Catalog::default(),
            Err(why) => {
                log::warn!("catalog {}: {why}; it is replaced", path.display());
                Catalog::default()
            }
        };
        for (fp, entry) in &self.entries {
            match merged.entries.get(fp) {
                Some(on_disk) if on_disk.updated > entry.updated => {}
                _ => {
                    merged.entries.insert(fp.clone(), entry.clone());
                }
            }
        }
        merged.prune(MAX_ENTRIES);
        let text = merged.to_json();

        let temp = dir.join(format!(
            ".{}.{}.{}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|e| {
                annotate(
                    e,
                    format!(
                        "cannot write {} (the new catalog {})",
                        temp.display(),
                        path.display()
                    ),
                )
            })
            .and_then(|()| {
                fs::rename(&temp, path).map_err(|e| {
                    annotate(e, format!("cannot replace the catalog {}", path.display()))
                })
            });
        if written.is_err() {
            // Best effort: the error that matters is the one already in hand.
            let _ = fs::remove_file(&temp);
        }
        written
    }

    /// The entry for `cfg`, if any (by [`fingerprint`]).
    pub fn get(&self, cfg: &BackendConfig) -> Option<&Entry> {
        self.entries.get(&fingerprint(cfg))
    }

    /// Inserts or replaces `cfg`'s entry (by [`fingerprint`]).
    pub fn put(&mut self, cfg: &BackendConfig, entry: Entry) {
        self.entries.insert(fingerprint(cfg), entry);
    }

    /// Keeps the `max` most recently updated entries (ties broken by fingerprint, so the
    /// result does not depend on map order).
    fn prune(&mut self, max: usize) {
        let excess = self.entries.len().saturating_sub(max);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(fp, entry)| (entry.updated, fp.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, fp) in by_age.into_iter().take(excess) {
            self.entries.remove(&fp);
        }
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Reads and parses `path`: `Ok(None)` when it does not exist, `Err` with a reason when it
/// cannot be read or parsed.
///
/// Only a regular file is read: a FIFO or a device would block gangway's start or never
/// end, and a symbolic link may lead anywhere, so those are refused with the fix. The file
/// is opened without following a link and without blocking, and checked once open, so a
/// file swapped in meanwhile cannot block either.
fn read(path: &Path) -> Result<Option<Catalog>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it ({e})")),
        Ok(meta) => refuse_special(&meta)?,
    }
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOFOLLOW;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| format!("cannot read it ({e})"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it ({e})"))?;
    refuse_special(&meta)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("cannot read it ({e})"))?;
    Catalog::parse(&text).map(Some)
}

/// `Err` with what the file is and what to do, unless `meta` is a regular file's.
fn refuse_special(meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(format!(
        "it is {what}, which gangway never reads or replaces as its catalog; set \"catalog\" \
         in the config to a path for a regular file of its own (or false to keep no catalog)"
    ))
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `e` with `context` in front of its message, keeping its kind.
fn annotate(e: io::Error, context: String) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::PathBuf;

    fn backend(json: &str) -> BackendConfig {
        let text = format!("{{\"mcpServers\":{{\"a\":{json}}}}}");
        let config = Config::parse(&text, Path::new("/tmp/x.json"), &|_| None)
            .unwrap_or_else(|e| panic!("config {text} should parse: {e}"));
        config.backends[0].clone()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("test JSON is valid")
    }

    fn entry(name: &str, updated: u64, tool: &str) -> Entry {
        let mut lists: [Vec<Box<RawValue>>; 4] = Default::default();
        lists[ListKind::Tools.index()] = vec![raw(tool)];
        Entry {
            backend: name.to_owned(),
            updated,
            init: Some(raw(r#"{"protocolVersion":"2025-06-18","capabilities":{}}"#)),
            lists,
            failed: None,
        }
    }

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "gangway-catalog-{label}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn server_description_prefers_description_then_instructions_then_title() {
        let d = |t: &str| server_description(&raw(t));
        assert_eq!(
            d(r#"{"serverInfo":{"name":"n","title":"T","description":"Does X"},"instructions":"I"}"#).as_deref(),
            Some("Does X")
        );
        assert_eq!(
            d(r#"{"serverInfo":{"name":"n","title":"T"},"instructions":"\n  Use me for Y.\nMore."}"#).as_deref(),
            Some("Use me for Y.")
        );
        assert_eq!(
            d(r#"{"serverInfo":{"name":"n","title":"T"}}"#).as_deref(),
            Some("T")
        );
        assert_eq!(d(r#"{"serverInfo":{"name":"n"}}"#), None);
        assert_eq!(d("[1]"), None);
        let long = d(&format!(r#"{{"instructions":"{}"}}"#, "a".repeat(500)));
        assert_eq!(long.map(|l| l.chars().count()), Some(201));
    }

    #[test]
    fn fingerprint_is_stable_across_builds() {
        // Changing the canonical form orphans every user's catalog; this value must only
        // change on purpose. It is FNV-1a 64 of `["x",["1"],["K"],null]`.
        let cfg = backend(r#"{"command":"x","args":["1"],"env":{"K":"v"}}"#);
        assert_eq!(fingerprint(&cfg), "a718c70fc6e58fb4");
        assert_eq!(fingerprint(&cfg).len(), 16);
    }

    #[test]
    fn fingerprint_follows_how_the_backend_is_spawned() {
        let base = fingerprint(&backend(
            r#"{"command":"x","args":["1"],"env":{"K":"v"},"cwd":"/srv"}"#,
        ));
        for changed in [
            r#"{"command":"y","args":["1"],"env":{"K":"v"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["2"],"env":{"K":"v"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["1","2"],"env":{"K":"v"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["1"],"env":{"L":"v"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["1"],"env":{"K":"v","L":"v"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["1"],"env":{"K":"v"},"cwd":"/opt"}"#,
            r#"{"command":"x","args":["1"],"env":{"K":"v"}}"#,
        ] {
            assert_ne!(fingerprint(&backend(changed)), base, "{changed}");
        }
        for same in [
            r#"{"command":"x","args":["1"],"env":{"K":"other"},"cwd":"/srv"}"#,
            r#"{"command":"x","args":["1"],"env":{"K":"v"},"cwd":"/srv","description":"d"}"#,
            r#"{"command":"x","args":["1"],"env":{"K":"v"},"cwd":"/srv","timeout":5}"#,
        ] {
            assert_eq!(fingerprint(&backend(same)), base, "{same}");
        }
    }

    #[test]
    fn get_and_put_go_by_fingerprint() {
        let mut catalog = Catalog::default();
        let cfg = backend(r#"{"command":"x","env":{"K":"v"}}"#);
        catalog.put(&cfg, entry("a", 1, r#"{"name":"t"}"#));
        let same_spawn = backend(r#"{"command":"x","env":{"K":"w"},"description":"d"}"#);
        assert_eq!(catalog.get(&same_spawn).map(|e| e.updated), Some(1));
        assert!(catalog.get(&backend(r#"{"command":"z"}"#)).is_none());
    }

    #[test]
    fn round_trip_keeps_raw_items_byte_for_byte() {
        let mut lists: [Vec<Box<RawValue>>; 4] = Default::default();
        lists[ListKind::Tools.index()] = vec![
            raw(r#"{"name":"t","description":"caf\u00e9 \"q\"","inputSchema":{"type":"object"}}"#),
            raw(r#"{ "name" : "spaced" , "n": 1.50e3 }"#),
        ];
        lists[ListKind::Prompts.index()] = vec![raw(r#"{"name":"p"}"#)];
        lists[ListKind::Templates.index()] = vec![raw(r#"{"uriTemplate":"x://{id}"}"#)];
        let mut catalog = Catalog::default();
        catalog.entries.insert(
            "00000000000000aa".to_owned(),
            Entry {
                backend: "we\"ird\nname".to_owned(),
                updated: 42,
                init: Some(raw(
                    r#"{"protocolVersion":"2025-06-18","serverInfo":{"name":"s"}}"#,
                )),
                lists,
                failed: None,
            },
        );
        catalog.entries.insert(
            "00000000000000bb".to_owned(),
            Entry {
                init: None,
                failed: Some(Failure {
                    at: 9,
                    count: 2,
                    error: "it \"hung\"\nin initialize".to_owned(),
                }),
                ..entry("b", 7, "{}")
            },
        );

        let text = catalog.to_json();
        assert!(text.ends_with("}\n"));
        let back = Catalog::parse(&text).expect("own output parses");
        assert_eq!(back.entries.len(), 2);
        for (fp, original) in &catalog.entries {
            let copy = &back.entries[fp];
            assert!(copy.same_content(original), "{fp}");
            assert_eq!(copy.backend, original.backend);
            assert_eq!(copy.updated, original.updated);
            for (a, b) in copy.lists.iter().zip(&original.lists) {
                let a: Vec<&str> = a.iter().map(|r| r.get()).collect();
                let b: Vec<&str> = b.iter().map(|r| r.get()).collect();
                assert_eq!(a, b);
            }
        }
        assert!(back.entries["00000000000000bb"].init.is_none());
        assert_eq!(back.to_json(), text, "writing is deterministic");

        let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value["version"], 1);
        let e = &value["entries"]["00000000000000aa"];
        for kind in LIST_KINDS {
            assert!(e[kind.items_key()].is_array(), "{}", kind.items_key());
        }
        assert!(value["entries"]["00000000000000bb"].get("init").is_none());
        assert_eq!(
            Catalog::default().to_json(),
            "{\n  \"version\": 1,\n  \"entries\": {}\n}\n"
        );
    }

    #[test]
    fn same_content_ignores_name_and_time_only() {
        let a = entry("a", 1, r#"{"name":"t"}"#);
        assert!(a.same_content(&entry("b", 2, r#"{"name":"t"}"#)));
        assert!(!a.same_content(&entry("a", 1, r#"{"name":"u"}"#)));
        assert!(!a.same_content(&Entry {
            init: None,
            ..a.clone()
        }));
        let mut more = a.clone();
        more.lists[ListKind::Resources.index()].push(raw(r#"{"uri":"x:"}"#));
        assert!(!a.same_content(&more));
    }

    #[test]
    fn absent_lists_are_empty_and_malformed_entries_are_skipped() {
        let text = r#"{"version":1,"entries":{
            "good": {"backend":"g","updated":5,"tools":[{"name":"t"}],"futureField":true},
            "bare": {"updated":6},
            "no-time": {"backend":"n"},
            "bad-list": {"backend":"b","updated":1,"tools":{"name":"t"}},
            "not-object": [1,2]
        }}"#;
        let catalog = Catalog::parse(text).expect("a bad entry is not fatal");
        let keys: Vec<&str> = catalog.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["bare", "good"]);
        let good = &catalog.entries["good"];
        assert_eq!(
            good.lists[ListKind::Tools.index()][0].get(),
            r#"{"name":"t"}"#
        );
        assert!(good.lists[ListKind::Prompts.index()].is_empty());
        assert!(catalog.entries["bare"].init.is_none());
        assert!(Catalog::parse(r#"{"version":1}"#)
            .expect("no entries")
            .entries
            .is_empty());
    }

    #[test]
    fn damaged_files_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("not json", "not JSON"),
            ("", "not JSON"),
            (r#"{"version":1,"entries":{"#, "not JSON"),
            ("[1,2]", "not a JSON object"),
            ("\"s\"", "not a JSON object"),
            (r#"{"version":2,"entries":{}}"#, "version"),
            (r#"{"version":"1","entries":{}}"#, "version"),
            (r#"{"entries":{}}"#, "version"),
            (r#"{"version":1,"entries":[]}"#, "entries"),
        ] {
            let err = Catalog::parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn load_never_fails() {
        let dir = TempDir::new("load");
        assert!(Catalog::load(&dir.0.join("missing.json"))
            .entries
            .is_empty());
        for (i, text) in ["not json", r#"{"version":99}"#, "[]", "\u{0}\u{1}"]
            .iter()
            .enumerate()
        {
            let path = dir.0.join(format!("damaged{i}.json"));
            fs::write(&path, text).expect("write");
            assert!(Catalog::load(&path).entries.is_empty(), "{text}");
        }
        // A directory cannot be read as a file.
        assert!(Catalog::load(&dir.0).entries.is_empty());
        let path = dir.0.join("good.json");
        let mut catalog = Catalog::default();
        catalog.entries.insert("k".to_owned(), entry("a", 3, "{}"));
        fs::write(&path, catalog.to_json()).expect("write");
        assert_eq!(Catalog::load(&path).entries["k"].updated, 3);
    }

    #[test]
    fn special_files_are_never_read_blocking_or_replaced() {
        let tmp = TempDir::new("special");
        let dir = &tmp.0;
        let fifo = dir.join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let target = dir.join("target.json");
        fs::write(&target, "{\"version\":1,\"entries\":{}}").expect("write");
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let mut c = Catalog::default();
        c.put(
            &backend(r#"{"command":"x"}"#),
            entry("a", 1, r#"{"name":"t"}"#),
        );
        for (path, what) in [
            (&fifo, "a FIFO"),
            (&link, "a symbolic link"),
            (&PathBuf::from("/dev/null"), "a device"),
        ] {
            // Would block forever on the FIFO if it were opened for reading normally.
            assert!(Catalog::load(path).entries.is_empty());
            let why = read(path).err().unwrap_or_default();
            assert!(why.contains(what) && why.contains("\"catalog\""), "{why}");
            let e = c.save(path).expect_err("refused");
            assert!(e.to_string().contains(what), "{e}");
        }
        let meta = fs::symlink_metadata(&link).expect("still there");
        assert!(meta.file_type().is_symlink(), "the link was not replaced");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo());
        assert_eq!(
            fs::read_to_string(&target).expect("target"),
            "{\"version\":1,\"entries\":{}}"
        );
    }

    #[test]
    fn save_creates_directories_and_leaves_no_temp_file() {
        let dir = TempDir::new("save");
        let path = dir.0.join("a").join("b").join("catalog.json");
        let mut catalog = Catalog::default();
        catalog
            .entries
            .insert("k".to_owned(), entry("a", 3, r#"{"name":"t"}"#));
        catalog.save(&path).expect("save");
        assert_eq!(names_in(path.parent().expect("parent")), ["catalog.json"]);
        let loaded = Catalog::load(&path);
        assert!(loaded.entries["k"].same_content(&catalog.entries["k"]));
        // Saving again replaces the file in place.
        catalog.save(&path).expect("save again");
        assert_eq!(names_in(path.parent().expect("parent")), ["catalog.json"]);
    }

    #[test]
    fn save_merges_with_the_file_newer_wins() {
        let dir = TempDir::new("merge");
        let path = dir.0.join("catalog.json");
        let mut other = Catalog::default();
        other
            .entries
            .insert("foreign".to_owned(), entry("f", 10, r#"{"name":"f"}"#));
        other.entries.insert(
            "newer-on-disk".to_owned(),
            entry("d", 20, r#"{"name":"disk"}"#),
        );
        other.entries.insert(
            "older-on-disk".to_owned(),
            entry("d", 5, r#"{"name":"disk"}"#),
        );
        other
            .entries
            .insert("tie".to_owned(), entry("d", 7, r#"{"name":"disk"}"#));
        other.save(&path).expect("save other");

        let mut mine = Catalog::default();
        mine.entries.insert(
            "newer-on-disk".to_owned(),
            entry("m", 15, r#"{"name":"mine"}"#),
        );
        mine.entries.insert(
            "older-on-disk".to_owned(),
            entry("m", 6, r#"{"name":"mine"}"#),
        );
        mine.entries
            .insert("tie".to_owned(), entry("m", 7, r#"{"name":"mine"}"#));
        mine.entries
            .insert("new".to_owned(), entry("m", 1, r#"{"name":"mine"}"#));
        mine.save(&path).expect("save mine");

        let merged = Catalog::load(&path);
        let tool = |fp: &str| merged.entries[fp].lists[0][0].get().to_owned();
        assert_eq!(merged.entries.len(), 5);
        assert_eq!(tool("foreign"), r#"{"name":"f"}"#);
        assert_eq!(tool("newer-on-disk"), r#"{"name":"disk"}"#);
        assert_eq!(tool("older-on-disk"), r#"{"name":"mine"}"#);
        assert_eq!(tool("tie"), r#"{"name":"mine"}"#);
        assert_eq!(tool("new"), r#"{"name":"mine"}"#);
    }

    #[test]
    fn save_replaces_a_damaged_file() {
        let dir = TempDir::new("damaged");
        let path = dir.0.join("catalog.json");
        fs::write(&path, "{garbage").expect("write");
        let mut catalog = Catalog::default();
        catalog.entries.insert("k".to_owned(), entry("a", 1, "{}"));
        catalog.save(&path).expect("save over damage");
        assert_eq!(Catalog::load(&path).entries.len(), 1);
    }

    #[test]
    fn save_keeps_only_the_most_recent_entries() {
        let dir = TempDir::new("prune");
        let path = dir.0.join("catalog.json");
        let extra = 10;
        let mut catalog = Catalog::default();
        for i in 0..(MAX_ENTRIES + extra) as u64 {
            catalog
                .entries
                .insert(format!("{i:016x}"), entry("a", 1000 + i, "{}"));
        }
        catalog.save(&path).expect("save");
        let loaded = Catalog::load(&path);
        assert_eq!(loaded.entries.len(), MAX_ENTRIES);
        let oldest = loaded.entries.values().map(|e| e.updated).min();
        assert_eq!(oldest, Some(1000 + extra as u64));
    }

    #[test]
    fn save_errors_name_the_path_and_clean_up() {
        let dir = TempDir::new("unwritable");
        let file = dir.0.join("plain-file");
        fs::write(&file, "x").expect("write");
        let path = file.join("sub").join("catalog.json");
        let err = Catalog::default()
            .save(&path)
            .expect_err("parent is a file");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );

        // The rename fails when the target is a non-empty directory; the temp file must go.
        let target = dir.0.join("occupied");
        fs::create_dir_all(target.join("inside")).expect("mkdir");
        let err = Catalog::default()
            .save(&target)
            .expect_err("target is a directory");
        assert!(
            err.to_string().contains(&target.display().to_string()),
            "{err}"
        );
        assert_eq!(names_in(&dir.0), ["occupied", "plain-file"]);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_secs() > 1_700_000_000);
    }
}
