//! Tools for the person setting gangway up: `gangway check`, `gangway tools` and
//! `gangway call`, and the systemd unit's installer ([`service`]).
//!
//! Each is a client of the same engine that serves MCP clients: a shell session of the
//! gateway run by the runtime in place of stdio ([`session`], over
//! [`crate::runtime::run_local`]). The gateway starts the backends as it does when
//! serving (same arguments, container names and labels, process group, stop ladder,
//! container removal, process guard), reports their failures in its own words, refreshes
//! the catalog, and places the exposed names; a command sends MCP requests, reads the
//! answers and prints them. Nothing a command starts outlives it: its session ends, or a
//! Ctrl-C (see [`handle_interrupts`]) stops everything as it stops serving.
//!
//! Output that is the command's product (the table, the tool list, the tool's result)
//! goes to `out`; problems go to `err`.

use crate::config::{BackendConfig, Config};
use crate::gateway::tools::DISCOVER;
use crate::gateway::Gateway;
use crate::runtime::{LocalEnd, RunError};
use serde_json::{json, Value};
use session::{Answer, Command, Requests};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod call;
mod check;
mod docker;
pub mod service;
pub mod session;
mod tools;

pub use call::{call, parse_arguments};
pub use check::check;
pub use docker::{docker_preflight, DockerProblem, DockerReport};
pub use tools::tools;

/// How a setup command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked: exit code 0.
    Success,
    /// A backend, the call or Docker failed: exit code 1.
    Failed,
    /// Bad usage (unknown backend, invalid JSON arguments): exit code 2.
    Usage,
    /// Interrupted by SIGINT, SIGTERM or SIGHUP; every backend was stopped: exit code 130.
    Interrupted,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failed => 1,
            Outcome::Usage => 2,
            Outcome::Interrupted => 130,
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT, SIGTERM and SIGHUP mark the command as interrupted instead of killing
/// gangway at once (which would leave `docker run` containers behind until the next
/// gangway start): the Docker preflight gives up, and once the gateway runs, its event
/// loop hears the signal too and stops everything as it does when serving (a second
/// signal there kills every backend at once, then removes their containers).
///
/// # Errors
///
/// When a signal handler cannot be installed.
pub fn handle_interrupts() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, &INTERRUPTED)?;
    }
    Ok(())
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
// ---------------------------------------------------------------------------------------
// Listing the tools of backends
// ---------------------------------------------------------------------------------------

/// One tool as a backend lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// The backend's own name for it.
    pub name: String,
    /// Its description, if it has one.
    pub description: Option<String>,
}

/// A backend's tools, or why it could not list them.
type Tools = Result<Vec<ToolInfo>, String>;

/// What [`list_tools`] learned.
struct Listed {
    /// How the session ended.
    end: LocalEnd,
    /// Each backend's tools (all of them: a shell session's `discover_backend_tools`
    /// ignores the `tools` filters), or why it could not list them, by backend name.
    results: Vec<(String, Tools)>,
    /// The gateway after the session (its name table, start times); `None` when nothing
    /// was asked for.
    gateway: Option<Gateway>,
    /// Why the catalog could not be saved, if it could not.
    catalog_error: Option<String>,
}

impl Listed {
    fn of(&self, backend: &str) -> Option<&Tools> {
        self.results
            .iter()
            .find(|(name, _)| name == backend)
            .map(|(_, r)| r)
    }
}

/// The command behind [`list_tools`]: one `discover_backend_tools` per backend, all at
/// once.
struct Discover {
    /// Per backend: the request's id, and its answer once it came.
    asked: Vec<(String, u64, Option<Tools>)>,
}

impl Command for Discover {
    fn start(&mut self, requests: &mut Requests) {
        for (name, id, _) in &mut self.asked {
            *id = requests.call(DISCOVER, json!({ "backend_server": name }));
        }
        if self.asked.is_empty() {
            requests.finish();
        }
    }

    fn answer(&mut self, requests: &mut Requests, id: u64, answer: Answer) {
        if let Some((name, _, slot)) = self.asked.iter_mut().find(|(_, i, _)| *i == id) {
            *slot = Some(discovered(name, answer));
        }
        if self.asked.iter().all(|(_, _, r)| r.is_some()) {
            requests.finish();
        }
    }
}

/// Backend `name`'s tools from a `discover_backend_tools` answer, or the failure it
/// reports (an `isError` result's text, or a JSON-RPC error's message).
fn discovered(name: &str, answer: Answer) -> Tools {
    let result = match answer {
        Answer::Result(r) => r,
        Answer::Error(_, message) => return Err(message),
    };
    let text = || {
        result
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or("no tools listed")
            .to_string()
    };
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err(text());
    }
    let body = result.get("structuredContent");
    if let Some(e) = body
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .and_then(|es| es.first())
    {
        return Err(e
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string());
    }
    let Some(tools) = body.and_then(|b| b.get("tools")).and_then(Value::as_array) else {
        return Err(text());
    };
    // The meta-tool marks each description with its backend, and stands in for a missing
    // one; the shell shows the backend's own.
    let mark = format!("[{name}] ");
    Ok(tools
        .iter()
        .filter_map(|t| {
            let description = t
                .get("description")
                .and_then(Value::as_str)
                .map(|d| d.strip_prefix(&mark).unwrap_or(d))
                .filter(|d| *d != "No description")
                .map(str::to_string);
            Some(ToolInfo {
                name: t.get("name")?.as_str()?.to_string(),
                description,
            })
        })
        .collect())
}

/// Starts `backends` through a shell session of a gateway for `config` (all at once, each
/// bounded by its `startup_timeout` and `timeout`), lists their tools, and stops them.
/// When it was interrupted (before or during) or could not run, says so on `err` and
/// returns the command's outcome instead.
fn list_tools(
    config: &Config,
    backends: &[&BackendConfig],
    err: &mut dyn Write,
) -> io::Result<Result<Listed, Outcome>> {
    if interrupted() {
        writeln!(err, "gangway: interrupted")?;
        return Ok(Err(Outcome::Interrupted));
    }
    let listed = match run_discover(config, backends) {
        Ok(l) => l,
        Err(e) => {
            writeln!(err, "gangway: {e}")?;
            return Ok(Err(Outcome::Failed));
        }
    };
    if listed.end == LocalEnd::Interrupted {
        writeln!(err, "gangway: interrupted; every backend was stopped")?;
        return Ok(Err(Outcome::Interrupted));
    }
    Ok(Ok(listed))
}

/// [`list_tools`] without the reporting.
fn run_discover(config: &Config, backends: &[&BackendConfig]) -> Result<Listed, RunError> {
    if backends.is_empty() {
        return Ok(Listed {
            end: LocalEnd::Done,
            results: Vec::new(),
            gateway: None,
            catalog_error: None,
        });
    }
    let mut command = Discover {
        asked: backends.iter().map(|b| (b.name.clone(), 0, None)).collect(),
    };
    let run = session::run(config, &mut command)?;
    let results = command
        .asked
        .into_iter()
        .map(|(name, _, r)| {
            let r = r.unwrap_or_else(|| Err("interrupted".to_string()));
            (name, r)
        })
        .collect();
    Ok(Listed {
        end: run.end,
        results,
        gateway: Some(run.gateway),
        catalog_error: run.catalog_error,
    })
}

// ---------------------------------------------------------------------------------------
// Shared by the commands
// ---------------------------------------------------------------------------------------

/// Finds backend `name` in `config`, or says (to `err`) which backends there are. A
/// disabled backend is refused too: its values are not even expanded.
fn find_backend<'a>(
    config: &'a Config,
    name: &str,
    err: &mut dyn Write,
) -> io::Result<Option<&'a BackendConfig>> {
    let file = config.path.display();
    if let Some(b) = config.backends.iter().find(|b| b.name == name) {
        if let Some(reason) = &b.disabled_reason {
            writeln!(
                err,
                "gangway: backend {name} in {file} is disabled: {reason}"
            )?;
            return Ok(None);
        }
        if b.disabled {
            writeln!(
                err,
                "gangway: backend {name} is disabled in {file}; remove its \"disabled\": true \
                 to use it"
            )?;
            return Ok(None);
        }
        return Ok(Some(b));
    }
    let known: Vec<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
    let known = if known.is_empty() {
        "it configures none".to_string()
    } else {
        format!("known backends: {}", known.join(", "))
    };
    let hint = if let Some((b, t)) = name
        .split_once("__")
        .filter(|(b, _)| known_backend(config, b))
    {
        format!(" (that is the gangway name of tool {t} of backend {b}: give the backend as {b})")
    } else if let Some(b) = config
        .backends
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
    {
        format!(" (names are case-sensitive: did you mean {}?)", b.name)
    } else {
        String::new()
    };
    writeln!(
        err,
        "gangway: no backend named {name:?} in {file}{hint}; {known}"
    )?;
    Ok(None)
}

fn known_backend(config: &Config, name: &str) -> bool {
    config.backends.iter().any(|c| c.name == name)
}

/// `30 s`, `0.5 s`.
pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// The first line of `s`, trimmed, control characters removed.
fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_answers_become_tools_or_the_failure() {
        let ok = json!({"content": [], "structuredContent": {"tools": [
            {"name": "a", "description": "[alpha] first\nmore", "backend": "alpha"},
            {"name": "b", "description": "[alpha] No description", "backend": "alpha"},
        ]}});
        let tools = discovered("alpha", Answer::Result(ok)).expect("tools");
        assert_eq!(tools[0].description.as_deref(), Some("first\nmore"));
        assert_eq!(tools[1].name, "b");
        assert_eq!(tools[1].description, None);
        let failed = json!({"content": [{"type": "text", "text": "backend 'alpha' exited (exit status 3)"}], "isError": true});
        assert_eq!(
            discovered("alpha", Answer::Result(failed)),
            Err("backend 'alpha' exited (exit status 3)".to_string())
        );
        assert_eq!(
            discovered("alpha", Answer::Error(-32602, "no".to_string())),
            Err("no".to_string())
        );
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(secs(Duration::from_secs(30)), "30 s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
    }
}
