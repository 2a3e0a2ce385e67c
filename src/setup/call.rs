//! `gangway call BACKEND TOOL [JSON_ARGS]`: one tool call through a shell session of the
//! gateway (`use_tool`, which in a shell session reaches every backend and ignores the
//! `tools` filters).

use super::session::{self, Answer, Command, Requests};
use super::{docker_preflight, find_backend, Outcome};
use crate::config::Config;
use crate::gateway::tools::{DISCOVER, USE_TOOL};
use crate::runtime::LocalEnd;
use crate::wire::message::{BACKEND_ERROR, REQUEST_TIMEOUT};
use serde_json::{json, Value};
use std::io::{self, Write};

/// Parses the JSON arguments of `gangway call`: a JSON object, `{}` when absent.
///
/// # Errors
///
/// A message naming the problem and showing the expected form.
pub fn parse_arguments(text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(json!({}));
    };
    let example =
        r#"for example '{"text": "hi"}' (in single quotes, so the shell keeps the double quotes)"#;
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(v) => Err(format!(
            "JSON_ARGS must be a JSON object, not {}: {}; {example}",
            crate::config::type_name(&v),
            text.trim()
        )),
        Err(e) => Err(format!(
            "JSON_ARGS is not valid JSON ({e}): {}; {example}",
            text.trim()
        )),
    }
}

/// The call as a state machine: `use_tool`, then, when the call was refused or the
/// backend answered with an error, `discover_backend_tools` to name the tools there are.
struct Call<'a> {
    backend: &'a str,
    tool: &'a str,
    args: Value,
    call: u64,
    discover: u64,
    answer: Option<Answer>,
    /// The backend's tools, when they were asked for.
    tools: Option<Vec<String>>,
}

impl Command for Call<'_> {
    fn start(&mut self, requests: &mut Requests) {
        let args = json!({
            "backend_server": self.backend,
            "server_tool": self.tool,
            "tool_arguments": self.args,
        });
        self.call = requests.call(USE_TOOL, args);
    }

    fn answer(&mut self, requests: &mut Requests, id: u64, answer: Answer) {
        if id == self.discover {
            self.tools = match answer {
                Answer::Result(r) => Some(
                    r.pointer("/structuredContent/tools")
                        .and_then(Value::as_array)
                        .map(|ts| {
                            ts.iter()
                                .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                Answer::Error(..) => None,
            };
            requests.finish();
            return;
        }
        if id != self.call {
            return;
        }
        // Most often an error is a tool name that does not exist: ask which ones do. A
        // crash or a timeout says enough.
        if let Answer::Error(code, _) = answer {
            if code != BACKEND_ERROR && code != REQUEST_TIMEOUT {
                self.discover = requests.call(DISCOVER, json!({"backend_server": self.backend}));
                self.answer = Some(answer);
                return;
            }
        }
        self.answer = Some(answer);
        requests.finish();
    }
}

/// `gangway call BACKEND TOOL [JSON_ARGS]`: calls `tool` of `backend` with the arguments
/// through a shell session of the gateway (which starts the backend as serving does and
/// stops it after), prints the result's content to `out` (text items as text, other
/// items as one line of JSON each; `structuredContent` when there is no content). A tool
/// the backend's `tools` filter refuses is called anyway, with a note on `err`.
///
/// Returns [`Outcome::Usage`] for invalid arguments or an unknown backend, and
/// [`Outcome::Failed`] when the result has `isError: true` or the call failed (the reason
/// goes to `err`).
///
/// # Errors
///
/// Only when writing to `out` or `err` fails.
pub fn call(
    config: &Config,
    backend: &str,
    tool: &str,
    arguments: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let args = match parse_arguments(arguments) {
        Ok(a) => a,
        Err(msg) => {
            writeln!(err, "gangway: {msg}")?;
            return Ok(Outcome::Usage);
        }
    };
    let Some(cfg) = find_backend(config, backend, err)? else {
        return Ok(Outcome::Usage);
    };
    let file = config.path.display();
    for r in docker_preflight(&[cfg]) {
        if !r.ok() {
            err.write_all(r.render(&config.path).as_bytes())?;
            return Ok(Outcome::Failed);
        }
    }
    if !cfg.tools.permits(tool) {
        writeln!(
            err,
            "gangway: note: the \"tools\" filter of backend {backend} in {file} refuses tool {tool}, so clients are not offered it; gangway call bypasses the filter"
        )?;
    }
    if super::interrupted() {
        writeln!(err, "gangway: interrupted")?;
        return Ok(Outcome::Interrupted);
    }
    let mut command = Call {
        backend,
        tool,
        args,
        call: 0,
        discover: 0,
        answer: None,
        tools: None,
    };
    let end = match session::run(config, &mut command) {
        Ok(run) => run.end,
        Err(e) => {
            writeln!(err, "gangway: {e}")?;
            return Ok(Outcome::Failed);
        }
    };
    if end == LocalEnd::Interrupted {
        writeln!(err, "gangway: interrupted; backend {backend} was stopped")?;
        return Ok(Outcome::Interrupted);
    }
    let result = match command.answer {
        Some(Answer::Result(r)) => r,
        Some(Answer::Error(code, message)) => {
            writeln!(
                err,
                "gangway: backend {backend} ({file}): tools/call {tool} failed: {message} (JSON-RPC error {code})"
            )?;
            if let Some(names) = command.tools.filter(|ts| !ts.iter().any(|t| t == tool)) {
                let prefix = format!("{backend}__");
                let plain = tool
                    .strip_prefix(&prefix)
                    .filter(|p| names.iter().any(|n| n == p));
                let mean = plain
                    .map(|p| format!(" (use the backend's own name: `{p}`)"))
                    .unwrap_or_default();
                writeln!(
                    err,
                    "gangway: backend {backend} has no tool {tool:?}{mean}; its tools: {}",
                    names.join(", ")
                )?;
            }
            return Ok(Outcome::Failed);
        }
        None => {
            writeln!(err, "gangway: backend {backend} ({file}): no answer")?;
            return Ok(Outcome::Failed);
        }
    };
    out.write_all(render_result(&result).as_bytes())?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        writeln!(
            err,
            "gangway: tool {tool} of backend {backend} returned an error (isError: true)"
        )?;
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// A tool result as the user reads it: each text item as its text, each other item as
/// one line of JSON; `structuredContent` as JSON when there is no content.
fn render_result(result: &Value) -> String {
    let mut s = String::new();
    let items = result
        .get("content")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty());
    match items {
        Some(items) => {
            for item in items {
                match (item.get("type").and_then(Value::as_str), item.get("text")) {
                    (Some("text"), Some(Value::String(t))) => s.push_str(t),
                    _ => s.push_str(&item.to_string()),
                }
                if !s.ends_with('\n') {
                    s.push('\n');
                }
            }
        }
        None => {
            if let Some(v) = result.get("structuredContent") {
                s.push_str(&v.to_string());
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_a_json_object() {
        assert_eq!(parse_arguments(None), Ok(json!({})));
        assert_eq!(parse_arguments(Some(r#"{"a":1}"#)), Ok(json!({"a": 1})));
        let e = parse_arguments(Some("[1]")).expect_err("array");
        assert!(e.contains("must be a JSON object, not an array"), "{e}");
        let e = parse_arguments(Some("{text: hi}")).expect_err("not JSON");
        assert!(
            e.contains("not valid JSON") && e.contains("line 1 column 2"),
            "{e}"
        );
    }

    #[test]
    fn results_print_text_as_text_and_the_rest_as_json() {
        let r = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "text", "text": "two\nlines\n"},
        ]});
        assert_eq!(
            render_result(&r),
            "hello\n{\"data\":\"AAAA\",\"mimeType\":\"image/png\",\"type\":\"image\"}\ntwo\nlines\n"
        );
        let r = json!({"content": [], "structuredContent": {"n": 1}});
        assert_eq!(render_result(&r), "{\"n\":1}\n");
    }
}
