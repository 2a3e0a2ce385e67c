//! `gangway check`: the config, Docker, and every enabled backend started at once through a
//! shell session of the gateway, reported as a table; the catalog is refreshed by the
//! gateway's own catalog handling, as serving refreshes it.

use super::docker::{docker_preflight, report_docker};
use super::{list_tools, one_line, secs, Outcome};
use crate::config::{BackendConfig, Config};
use crate::gateway::naming::{Renamed, Why, GANGWAY};
use crate::gateway::Gateway;
use crate::wire::lists::ListKind;
use std::io::{self, IsTerminal, Write};

/// `gangway check`: checks Docker when a backend needs it, starts every enabled backend
/// through a shell session of the gateway (all at once: `discover_backend_tools` for each,
/// which waits for its fresh tool list; the gateway fetches its other lists after its
/// start, as it does when serving), and prints a table to `out`: backend, status (ok,
/// failed, disabled, skipped), start time, tools offered (after its `tools` filter),
/// error. Then it prints the tool and prompt names the gateway exposes renamed (a
/// collision or an invalid name) and what became of the catalog.
///
/// Returns [`Outcome::Failed`] when an enabled backend failed or was skipped because
/// Docker is not usable; renamed names and an unsaved catalog are not failures.
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn check(config: &Config, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Outcome> {
    let file = &config.path;
    let n = config.backends.len();
    writeln!(
        out,
        "config: {} is valid ({n} backend{}, {} enabled)",
        file.display(),
        if n == 1 { "" } else { "s" },
        config.enabled().count()
    )?;
    for note in &config.notes {
        writeln!(out, "note: {note}")?;
    }
    let enabled: Vec<&BackendConfig> = config.enabled().collect();
    let docker_failed = report_docker(&docker_preflight(&enabled), file, out)?;
    let to_probe: Vec<&BackendConfig> = enabled
        .iter()
        .copied()
        .filter(|b| !docker_failed.contains(&b.name))
        .collect();
    if !to_probe.is_empty() && io::stderr().is_terminal() {
        let longest = to_probe.iter().map(|b| b.startup_timeout).max();
        writeln!(
            err,
            "starting {} backend(s) (each may take up to {})...",
            to_probe.len(),
            secs(longest.unwrap_or_default())
        )?;
    }
    let listed = match list_tools(config, &to_probe, err)? {
        Ok(l) => l,
        Err(outcome) => return Ok(outcome),
    };

    let mut rows = vec![[
        "BACKEND".to_string(),
        "STATUS".to_string(),
        "START".to_string(),
        "TOOLS".to_string(),
        "ERROR".to_string(),
    ]];
    let (mut ok, mut failed, mut skipped, mut disabled) = (0, 0, 0, 0);
    for b in &config.backends {
        let row = if b.disabled {
            disabled += 1;
            [
                b.name.clone(),
                "disabled".into(),
                "-".into(),
                "-".into(),
                b.disabled_reason
                    .as_deref()
                    .map(one_line)
                    .unwrap_or_default(),
            ]
        } else if docker_failed.contains(&b.name) {
            skipped += 1;
            [
                b.name.clone(),
                "skipped".into(),
                "-".into(),
                "-".into(),
                "Docker is not usable (see above)".into(),
            ]
        } else {
            let Some(result) = listed.of(&b.name) else {
                continue;
            };
            let start = listed
                .gateway
                .as_ref()
                .and_then(|gw| ready_after(gw, &b.name))
                .map_or_else(|| "-".to_string(), |d| format!("{} ms", d.as_millis()));
            match result {
                Ok(tools) => {
                    ok += 1;
                    let offered = tools.iter().filter(|t| b.tools.permits(&t.name)).count();
                    let cell = match tools.len() - offered {
                        0 => offered.to_string(),
                        filtered => format!("{offered} ({filtered} filtered)"),
                    };
                    [b.name.clone(), "ok".into(), start, cell, String::new()]
                }
                Err(e) => {
                    failed += 1;
                    [
                        b.name.clone(),
                        "failed".into(),
                        start,
                        "-".into(),
                        one_line(e),
                    ]
                }
            }
        };
        rows.push(row);
    }
    out.write_all(table(&rows, &[false, false, true, true, false]).as_bytes())?;

    if let Some(gw) = &listed.gateway {
        for line in renamings(gw) {
            writeln!(out, "{line}")?;
        }
    }
    let mut summary = format!("{ok} ok, {failed} failed");
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} skipped"));
    }
    if disabled > 0 {
        summary.push_str(&format!(", {disabled} disabled"));
    }
    writeln!(out, "{summary}")?;
    for line in shell_only_vars(config, &crate::config::process_env) {
        writeln!(out, "{line}")?;
    }
    match (&config.catalog, &listed.catalog_error) {
        (None, _) => writeln!(out, "catalog: off")?,
        (Some(path), Some(e)) => writeln!(out, "catalog: could not save {}: {e}", path.display())?,
        (Some(path), None) => {
            let noun = if ok == 1 { "entry" } else { "entries" };
            writeln!(out, "catalog: refreshed {ok} {noun} in {}", path.display())?;
        }
    }
    if skipped > 0 {
        writeln!(
            out,
            "fix Docker (see above), then run `gangway check` again"
        )?;
    }
    if failed > 0 {
        writeln!(
            out,
            "fix the failed backends in {} (`gangway --log-level debug check` shows their stderr)",
            file.display()
        )?;
    }
    if failed + skipped > 0 {
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// How long backend `name`'s start took: its process's, or (when it runs one process per
/// session) the process the shell session had.
fn ready_after(gw: &Gateway, name: &str) -> Option<std::time::Duration> {
    (0..gw.backend_count())
        .filter(|&b| gw.backend_config(b).is_some_and(|c| c.name == name))
        .find_map(|b| gw.ready_after(b))
}

/// The names the gateway exposes under something else than `prefix` + separator + name,
/// as `names:` lines: its own placement ([`Gateway::renamed`]) of the tools and prompts it
/// knows, as a client is served them.
fn renamings(gw: &Gateway) -> Vec<String> {
    let mut lines = Vec::new();
    for kind in [ListKind::Tools, ListKind::Prompts] {
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        let name = |b: usize| gw.backend_config(b).map_or("?", |c| c.name.as_str());
        for r in gw.renamed(kind) {
            lines.push(names_line(what, &r, name));
        }
    }
    lines
}

/// One `names:` line: what `r` is exposed as and why.
fn names_line<'a>(what: &str, r: &Renamed, name: impl Fn(usize) -> &'a str) -> String {
    let cand = r.candidate.escape_debug();
    let why = match &r.why {
        Why::Collision {
            backend: GANGWAY,
            name,
        } => format!(
            "name collision: '{cand}' is already gangway's meta-tool '{name}'; give the \
             backend a \"prefix\" to choose the name yourself"
        ),
        Why::Collision {
            backend: other,
            name: taken,
        } => format!(
            "name collision: '{cand}' is already {what} '{}' of backend '{}'; give one \
             of the backends another \"prefix\" to choose the names yourself",
            taken.escape_debug(),
            name(*other)
        ),
        Why::Invalid => format!("'{cand}' is not 1 to 64 characters of A-Z a-z 0-9 _ -"),
    };
    format!(
        "names: {what} '{}' of backend '{}' is exposed as '{}' ({why})",
        r.name.escape_debug(),
        name(r.backend),
        r.exposed
    )
}

/// A warning for each enabled backend whose `${VAR}`s are set here (`lookup`), in the
/// shell `gangway check` runs in: an MCP client starts gangway with a minimal environment,
/// so there they are unset unless the client's entry for gangway passes them.
fn shell_only_vars(config: &Config, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut lines = Vec::new();
    for b in config.enabled() {
        let vars: Vec<&str> = b
            .vars
            .iter()
            .map(String::as_str)
            .filter(|v| !crate::config::ALWAYS_INHERITED.contains(v) && lookup(v).is_some())
            .collect();
        if vars.is_empty() {
            continue;
        }
        let env: Vec<String> = vars.iter().map(|v| format!("\"{v}\": \"...\"")).collect();
        let flags: Vec<String> = vars.iter().map(|v| format!("\"-e\", \"{v}\"")).collect();
        lines.push(format!(
            "warning: backend {} takes {} from this shell's environment, but an MCP client \
             starts gangway with a minimal one: add \"env\": {{{}}} to gangway's entry in the \
             client's config (for gangway's container, also add {} to its \"args\" before \
             the image)",
            b.name,
            vars.join(", "),
            env.join(", "),
            flags.join(", ")
        ));
    }
    lines
}

/// Renders `rows` (the first is the header) as columns two spaces apart; `right` marks
/// right-aligned columns. The last column is not padded.
fn table<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else if i + 1 < N {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(cell);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::naming::NameTable;
    use std::path::Path;

    #[test]
    fn shell_only_variables_are_named_with_how_to_pass_them() {
        let config = Config::parse(
            r#"{"backends": {"gh": {"command": "x", "env": {"T": "${GH_TOKEN}", "H": "${HOME}", "U": "${UNSET_HERE:-d}"}}}}"#,
            Path::new("/tmp/c.json"),
            &|v: &str| (v != "UNSET_HERE").then(|| "v".to_string()),
        )
        .expect("valid");
        let lines = shell_only_vars(&config, &|v: &str| {
            (v != "UNSET_HERE").then(|| "v".to_string())
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert!(
            l.contains("backend gh takes GH_TOKEN from this shell"),
            "{l}"
        );
        assert!(l.contains("\"env\": {\"GH_TOKEN\": \"...\"}"), "{l}");
        assert!(l.contains("\"-e\", \"GH_TOKEN\""), "{l}");
        assert!(!l.contains("HOME"), "{l}");
    }

    #[test]
    fn names_lines_say_what_a_name_collided_with_and_how_to_fix_it() {
        let (_, renamed) = NameTable::build(
            "__",
            &[
                crate::gateway::naming::Wanted {
                    backend: 0,
                    prefix: "x",
                    name: "echo",
                },
                crate::gateway::naming::Wanted {
                    backend: 1,
                    prefix: "x",
                    name: "echo",
                },
            ],
        );
        let names = |b: usize| ["alpha", "beta"][b];
        let lines: Vec<String> = renamed
            .iter()
            .map(|r| names_line("tool", r, names))
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("names: tool 'echo' of backend 'beta' is exposed as 'x__echo_"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("(name collision: 'x__echo' is already tool 'echo' of backend 'alpha'; give one of the backends another \"prefix\""),
            "{}",
            lines[0]
        );
        let meta = Renamed {
            backend: 0,
            name: "use_tool".to_string(),
            candidate: "use_tool".to_string(),
            exposed: "use_tool_1".to_string(),
            why: Why::Collision {
                backend: GANGWAY,
                name: "use_tool".to_string(),
            },
        };
        assert!(names_line("tool", &meta, names).contains(
            "'use_tool' is already gangway's meta-tool 'use_tool'; give the backend a \"prefix\""
        ));
    }

    #[test]
    fn tables_align_columns() {
        let rows = [
            ["A".to_string(), "N".to_string(), "E".to_string()],
            ["long".to_string(), "10".to_string(), String::new()],
            ["b".to_string(), "2".to_string(), "boom".to_string()],
        ];
        assert_eq!(
            table(&rows, &[false, true, false]),
            "A      N  E\nlong  10\nb      2  boom\n"
        );
    }
}
