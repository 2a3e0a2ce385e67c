//! `Config::parse` on any text: a value or an error, never a panic; an accepted config keeps
//! the promises its fields document; and a variable's value (a secret, as often as not)
//! never shows in an error or in `Debug` output where the text did not put it.

use gangway::config::Config;
use std::path::Path;
use std::time::Duration;

/// What a lookup returns for every variable; a text that already contains it is checked
/// without the secrecy test.
const SECRET: &str = "s3cr3t-\u{1F511}-value";

/// A variable lookup, as `Config::parse` takes it.
type Lookup = dyn Fn(&str) -> Option<String>;

/// Checks `text` with several environments; panics when an invariant breaks.
pub fn check_text(text: &str) {
    let path = Path::new("fuzz.json");
    let lookups: [&Lookup; 6] = [
        &|_| None,
        &|_| Some(SECRET.to_string()),
        &|_| Some(String::new()),
        // Substituted values are not expanded again.
        &|name| Some(format!("${{{name}}}")),
        &|_| Some("a\0b".to_string()),
        &|name| (name.len() % 2 == 0).then(|| "x".repeat(name.len())),
    ];
    for (i, lookup) in lookups.iter().enumerate() {
        match Config::parse(text, path, lookup) {
            Ok(config) => {
                check_config(&config);
                if i == 1 {
                    check_secret_kept(text, &config);
                }
            }
            Err(e) => {
                let shown = format!("{e} {e:?}");
                assert!(!shown.is_empty());
                if i == 1 && !text.contains(SECRET) {
                    assert!(
                        !shown.contains(SECRET),
                        "an error shows a variable's value: {shown}"
                    );
                }
            }
        }
    }
}

/// The promises of `Config` and `BackendConfig`'s field docs.
fn check_config(config: &Config) {
    assert!(config.max_message_bytes >= 1024, "{config:?}");
    for (i, b) in config.backends.iter().enumerate() {
        assert!(
            (1..=64).contains(&b.name.chars().count())
                && b.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "bad backend name {:?}",
            b.name
        );
        assert!(
            config.backends[..i].iter().all(|o| o.name != b.name),
            "duplicate backend name {:?}",
            b.name
        );
        assert!(
            !b.timeout.is_zero() && !b.startup_timeout.is_zero(),
            "{b:?}"
        );
        assert!(b.idle_timeout != Some(Duration::ZERO), "{b:?}");
        assert!(
            b.env.windows(2).all(|w| w[0].0 < w[1].0),
            "env not sorted by unique name: {b:?}"
        );
        assert!(
            b.disabled || b.disabled_reason.is_none(),
            "a reason without being disabled: {b:?}"
        );
        assert!(
            b.env_remove
                .iter()
                .all(|v| !b.vars.contains(v)
                    && !gangway::config::ALWAYS_INHERITED.contains(&v.as_str())),
            "a backend loses a variable it references, or a basic one: {b:?}"
        );
        if b.disabled {
            continue;
        }
        assert!(!b.command.trim().is_empty(), "empty command: {b:?}");
        for (name, value) in &b.env {
            assert!(
                !name.is_empty() && !name.contains(['=', '\0']),
                "bad env name {name:?}"
            );
            assert!(!value.contains('\0'), "NUL in env value of {name}");
        }
        let cwd = b.cwd.as_ref().map(|c| c.to_string_lossy().into_owned());
        for s in std::iter::once(&b.command)
            .chain(&b.args)
            .chain(cwd.as_ref())
        {
            assert!(!s.contains('\0'), "NUL in {b:?}");
        }
    }
}

/// With every variable set to `SECRET`: a backend whose command, args, cwd and description
/// do not contain it must not show it in `Debug` (env values are never printed).
fn check_secret_kept(text: &str, config: &Config) {
    if text.contains(SECRET) {
        return;
    }
    for text in config.notes.iter().chain(
        config
            .backends
            .iter()
            .filter_map(|b| b.disabled_reason.as_ref()),
    ) {
        assert!(
            !text.contains(SECRET),
            "a note or reason shows a value: {text}"
        );
    }
    for b in &config.backends {
        let visible = std::iter::once(&b.command)
            .chain(&b.args)
            .chain(b.description.as_ref())
            .any(|s| s.contains(SECRET))
            || b.cwd
                .as_ref()
                .is_some_and(|c| c.to_string_lossy().contains(SECRET));
        if !visible {
            let shown = format!("{b:?}");
            assert!(!shown.contains(SECRET), "Debug shows an env value: {shown}");
        }
    }
}
