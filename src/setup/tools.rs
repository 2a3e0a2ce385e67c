//! `gangway tools [BACKEND]`: the tools of the backends, started through a shell session
//! of the gateway, under the names the gateway serves them.

use super::docker::{docker_preflight, report_docker};
use super::{find_backend, list_tools, one_line, Outcome};
use crate::config::{BackendConfig, Config};
use crate::wire::lists::ListKind;
use std::io::{self, Write};

/// `gangway tools [BACKEND]`: lists the tools of `backend` or of every enabled backend,
/// grouped by backend and sorted by name: the name a client's `tools/list` has it under
/// (the gateway's own name table once the lists are known, with the backends not asked
/// for taking part from the catalog, as in serving; "(filtered out)" for a tool its `tools`
/// filter refuses, "(via use_tool)" for one that is not listed directly), the backend's
/// own name and the first line of the description.
///
/// Returns [`Outcome::Usage`] for an unknown backend and [`Outcome::Failed`] when a
/// backend failed (the others are still listed).
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn tools(
    config: &Config,
    backend: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let selected: Vec<&BackendConfig> = match backend {
        Some(name) => match find_backend(config, name, err)? {
            Some(b) => vec![b],
            None => return Ok(Outcome::Usage),
        },
        None => config.enabled().collect(),
    };
    if selected.is_empty() {
        writeln!(
            err,
            "gangway: no enabled backends in {}",
            config.path.display()
        )?;
        return Ok(Outcome::Success);
    }
    let mut docker_err = Vec::new();
    let reports = docker_preflight(&selected);
    let docker_failed = report_docker(
        &reports.into_iter().filter(|r| !r.ok()).collect::<Vec<_>>(),
        &config.path,
        &mut docker_err,
    )?;
    err.write_all(&docker_err)?;
    let to_probe: Vec<&BackendConfig> = selected
        .iter()
        .copied()
        .filter(|b| !docker_failed.contains(&b.name))
        .collect();
    let listed = match list_tools(config, &to_probe, err)? {
        Ok(l) => l,
        Err(outcome) => return Ok(outcome),
    };

    let mut outcome = if docker_failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    let mut text = String::new();
    for b in &to_probe {
        let tools = match listed.of(&b.name) {
            Some(Ok(tools)) => tools,
            Some(Err(e)) => {
                writeln!(
                    err,
                    "gangway: backend {} ({}): {e}",
                    b.name,
                    config.path.display()
                )?;
                outcome = Outcome::Failed;
                continue;
            }
            None => continue,
        };
        if !text.is_empty() {
            text.push('\n');
        }
        let n = tools.len();
        text.push_str(&format!(
            "{}: {n} tool{}\n",
            b.name,
            if n == 1 { "" } else { "s" }
        ));
        let gw = listed.gateway.as_ref();
        let index = gw.and_then(|gw| {
            (0..gw.backend_count())
                .find(|&i| gw.backend_config(i).is_some_and(|c| c.name == b.name))
        });
        let shown: Vec<String> = tools
            .iter()
            .map(|t| {
                let exposed = gw
                    .zip(index)
                    .and_then(|(gw, i)| gw.exposed_name(ListKind::Tools, i, &t.name));
                match exposed {
                    Some(exposed) => exposed.to_string(),
                    None if !b.tools.permits(&t.name) => "(filtered out)".to_string(),
                    // Not listed directly: the meta-tools reach it under its own name.
                    None => "(via use_tool)".to_string(),
                }
            })
            .collect();
        // Columns line up within a backend's group.
        let name_w = tools
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0);
        let full_w = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        for (t, full) in tools.iter().zip(&shown) {
            let desc = t.description.as_deref().map(one_line).unwrap_or_default();
            let line = format!("  {full:<full_w$}  {:<name_w$}  {desc}", t.name);
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    out.write_all(text.as_bytes())?;
    Ok(outcome)
}
