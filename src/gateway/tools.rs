//! The meta-tools (`use_tool`, `discover_backend_tools`, compatible with the Python gateway
//! mcpware).

use super::lists::Item;
use crate::wire::message::{write_json_string, Message, Raw};
use crate::wire::scan;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;

/// The meta-tool that calls a tool of a backend.
pub const USE_TOOL: &str = "use_tool";
/// The meta-tool that lists the tools of one backend or of all.
pub const DISCOVER: &str = "discover_backend_tools";

/// The definitions of the two meta-tools, with the backend names as an enum, as JSON
/// array elements (no brackets), in mcpware's schema.
pub fn meta_tool_definitions(backends: &[&str]) -> String {
    let list = backends.join(", ");
    let use_tool = json!({
        "name": USE_TOOL,
        "description": "Route a tool call to a specific backend MCP server. Call discover_backend_tools first to learn a backend's tools and their arguments.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "backend_server": {
                    "type": "string",
                    "description": format!("The backend server to use. Available servers: {list}"),
                    "enum": backends,
                },
                "server_tool": {
                    "type": "string",
                    "description": "The name of the tool to call on the backend server",
                },
                "tool_arguments": {
                    "type": "object",
                    "description": "Arguments to pass to the backend server's tool",
                    "additionalProperties": true,
                },
            },
            "required": ["backend_server", "server_tool"],
            "additionalProperties": false,
        },
    });
    let discover = json!({
        "name": DISCOVER,
        "description": "Discover available tools on backend MCP servers",
        "inputSchema": {
            "type": "object",
            "properties": {
                "backend_server": {
                    "type": "string",
                    "description": "The backend server to query for available tools (optional, omit to list all)",
                    "enum": backends,
                },
            },
            "additionalProperties": false,
        },
    });
    format!("{use_tool},{discover}")
}

/// The arguments of a `use_tool` call, borrowed.
#[derive(Default)]
pub struct UseToolArgs<'a> {
    /// Which backend.
    pub backend_server: Option<Cow<'a, str>>,
    /// Which of its tools.
    pub server_tool: Option<Cow<'a, str>>,
    /// The tool's arguments, passed on unparsed.
    pub tool_arguments: Option<Raw<'a>>,
}

impl<'a> UseToolArgs<'a> {
    /// Reads a `use_tool` call's `arguments` (absent: all empty) as serde_json would
    /// into a struct of these three optional members: in one fast pass when the names are
    /// plain strings, else by serde_json itself (escapes, and the error of a bad shape).
    ///
    /// # Errors
    ///
    /// serde_json's, when `arguments` is not an object of that shape.
    pub fn read(arguments: Option<Raw<'a>>) -> Result<UseToolArgs<'a>, serde_json::Error> {
        const KEYS: [&[u8]; 3] = [b"backend_server", b"server_tool", b"tool_arguments"];
        let Some(arguments) = arguments else {
            return Ok(UseToolArgs::default());
        };
        // A member that is absent or null is none; a string without escapes is itself.
        let plain = |raw: Option<&'a str>| match raw {
            None | Some("null") => Some(None),
            Some(text) => {
                let inner = text.strip_prefix('"')?.strip_suffix('"')?;
                (!inner.contains('\\')).then_some(Some(Cow::Borrowed(inner)))
            }
        };
        if let Some([backend, tool, args]) = scan::members(arguments.get(), &KEYS) {
            if let (Some(backend_server), Some(server_tool)) = (plain(backend), plain(tool)) {
                return Ok(UseToolArgs {
                    backend_server,
                    server_tool,
                    tool_arguments: args.filter(|a| *a != "null").map(Raw::of),
                });
            }
        }
        let f = {
            // Named as the type it reads into: serde_json's errors name it.
            #[derive(Deserialize)]
            struct UseToolArgs<'a> {
                #[serde(borrow, default)]
                backend_server: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                server_tool: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                tool_arguments: Option<&'a RawValue>,
            }
            serde_json::from_str::<UseToolArgs<'a>>(arguments.get())?
        };
        Ok(Self {
            backend_server: f.backend_server,
            server_tool: f.server_tool,
            tool_arguments: f.tool_arguments.map(Raw::from),
        })
    }
}

/// The arguments of a `discover_backend_tools` call.
#[derive(Deserialize, Default)]
pub struct DiscoverArgs<'a> {
    /// One backend, or all when absent.
    #[serde(borrow, default)]
    pub backend_server: Option<Cow<'a, str>>,
}

/// The `params` of a `tools/call`, raw, as serde_json would read them into a struct with
/// a required `name` and optional others (an explicit `null` is absent, except for `name`).
#[derive(Debug, Clone, Copy)]
pub struct CallParams<'a> {
    /// The tool name, raw (so its span can be replaced).
    pub name: Raw<'a>,
    /// The arguments, raw.
    pub arguments: Option<Raw<'a>>,
    /// The request's `_meta` (progress token and friends), raw.
    pub meta: Option<Raw<'a>>,
    /// Task augmentation (`{"ttl": …}`), raw, when the caller asked for a task.
    pub task: Option<Raw<'a>>,
}

impl<'a> CallParams<'a> {
    /// The call params of `msg`, or `None` when it has no object `params` with a `name`.
    pub fn of(msg: &Message<'a>) -> Option<CallParams<'a>> {
        let p = msg.call_params()?;
        let present = |r: Option<&'a str>| r.filter(|r| *r != "null").map(Raw::of);
        Some(CallParams {
            name: Raw::of(p.name?),
            arguments: present(p.arguments),
            meta: present(p.meta),
            task: present(p.task),
        })
    }
}

/// The params of the `tools/call` that a `use_tool` call becomes: the backend's tool name,
/// the caller's arguments, `_meta` and `task` passed through unparsed.
pub fn use_tool_params(
    tool: &str,
    arguments: Option<Raw<'_>>,
    meta: Option<Raw<'_>>,
    task: Option<Raw<'_>>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + arguments.map_or(0, |a| a.get().len()));
    p.extend_from_slice(b"{\"name\":");
    write_json_string(&mut p, tool);
    p.extend_from_slice(b",\"arguments\":");
    p.extend_from_slice(arguments.map_or("{}", |a| a.get()).as_bytes());
    if let Some(meta) = meta {
        p.extend_from_slice(b",\"_meta\":");
        p.extend_from_slice(meta.get().as_bytes());
    }
    if let Some(task) = task {
        p.extend_from_slice(b",\"task\":");
        p.extend_from_slice(task.get().as_bytes());
    }
    p.push(b'}');
    p
}

/// A tool result that reports a failure to the model (`isError: true`), as JSON.
pub fn error_result(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    out.extend_from_slice(b"{\"content\":[{\"type\":\"text\",\"text\":");
    write_json_string(&mut out, message);
    out.extend_from_slice(b"}],\"isError\":true}");
    out
}

/// One backend's part of a `discover_backend_tools` answer.
pub struct DiscoverPart<'a> {
    /// The backend's name.
    pub backend: &'a str,
    /// Its tools, or why they could not be listed.
    pub tools: Result<Vec<&'a Item>, &'a str>,
}

/// The result of `discover_backend_tools`: `{"tools": [...]}` as JSON text content and as
/// structuredContent, in mcpware's layout (description prefixed with `[backend]`) plus a
/// `backend` field per tool and an `errors` list for backends that could not be listed.
/// It is an `isError` result only when no backend could be listed at all.
pub fn discover_result(parts: &[DiscoverPart<'_>]) -> Vec<u8> {
    #[derive(Deserialize)]
    struct Def {
        #[serde(default)]
        description: Option<String>,
        #[serde(rename = "inputSchema", default)]
        input_schema: Option<Value>,
    }
    let mut tools = Vec::new();
    let mut errors = Vec::new();
    for part in parts {
        match &part.tools {
            Ok(list) => {
                for t in list {
                    let def: Def = serde_json::from_str(t.raw.get()).unwrap_or(Def {
                        description: None,
                        input_schema: None,
                    });
                    let description = def.description.as_deref().unwrap_or("No description");
                    tools.push(json!({
                        "name": t.key,
                        "description": format!("[{}] {description}", part.backend),
                        "inputSchema": def.input_schema.unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        "backend": part.backend,
                    }));
                }
            }
            Err(e) => errors.push(json!({"backend": part.backend, "error": e})),
        }
    }
    if tools.is_empty() && !errors.is_empty() {
        let msgs: Vec<String> = parts
            .iter()
            .filter_map(|p| p.tools.as_ref().err().map(|e| e.to_string()))
            .collect();
        return error_result(&msgs.join("\n"));
    }
    let mut body = json!({ "tools": tools });
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    let text = body.to_string();
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": body,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(raw: &str) -> Item {
        let raw = RawValue::from_string(raw.to_string()).unwrap();
        let key = serde_json::from_str::<Value>(raw.get()).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string();
        Item { key, raw }
    }

    #[test]
    fn meta_tools_are_valid_json_with_backend_enum() {
        let defs = meta_tool_definitions(&["a", "b"]);
        let v: Value = serde_json::from_str(&format!("[{defs}]")).unwrap();
        assert_eq!(v[0]["name"], USE_TOOL);
        assert_eq!(v[1]["name"], DISCOVER);
        assert_eq!(
            v[0]["inputSchema"]["properties"]["backend_server"]["enum"],
            json!(["a", "b"])
        );
        assert_eq!(
            v[0]["inputSchema"]["required"],
            json!(["backend_server", "server_tool"])
        );
    }

    #[test]
    fn use_tool_params_pass_arguments_and_meta_through() {
        let args = RawValue::from_string(r#"{"a": [1, 2]}"#.into()).unwrap();
        let meta = RawValue::from_string(r#"{"progressToken":"t"}"#.into()).unwrap();
        let p = use_tool_params("x\"y", Some((&*args).into()), Some((&*meta).into()), None);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"name":"x\"y","arguments":{"a": [1, 2]},"_meta":{"progressToken":"t"}}"#
        );
        let p = use_tool_params("t", None, None, None);
        assert_eq!(p, br#"{"name":"t","arguments":{}}"#);
    }

    #[test]
    fn discover_lists_tools_and_errors() {
        let tools = [tool(r#"{"name":"echo","description":"Echo it"}"#)];
        let out = discover_result(&[
            DiscoverPart {
                backend: "a",
                tools: Ok(tools.iter().collect()),
            },
            DiscoverPart {
                backend: "b",
                tools: Err("backend 'b' exited"),
            },
        ]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let text: Value = serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, v["structuredContent"]);
        assert_eq!(text["tools"][0]["description"], "[a] Echo it");
        assert_eq!(text["tools"][0]["backend"], "a");
        assert_eq!(text["errors"][0]["backend"], "b");
        assert!(v.get("isError").is_none());

        let only_err = discover_result(&[DiscoverPart {
            backend: "b",
            tools: Err("boom"),
        }]);
        let v: Value = serde_json::from_slice(&only_err).unwrap();
        assert_eq!(v["isError"], true);
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    /// `UseToolArgs::read` against serde_json reading the same struct.
    #[test]
    fn use_tool_arguments_read_as_serde_json_reads_them() {
        #[derive(Deserialize, Debug)]
        struct Oracle {
            #[serde(default)]
            backend_server: Option<String>,
            #[serde(default)]
            server_tool: Option<String>,
            #[serde(default)]
            tool_arguments: Option<Box<RawValue>>,
        }
        let cases = [
            r#"{"backend_server":"mock","server_tool":"echo","tool_arguments":{"text":"x"}}"#,
            r#"{"server_tool":"echo"}"#,
            r#"{"backend_server":null,"server_tool":"e\u0063ho","tool_arguments":null}"#,
            r#"{"backend_server":"a\"b","server_tool":"t"}"#,
            r#"{"backend_server":5}"#,
            r#"{"backend_server":"a","backend_server":"b"}"#,
            r#"["mock","echo",{}]"#,
            r#""text""#,
            r#"{"b\u0061ckend_server":"x"}"#,
            r#" { "backend_server" : "m" , "other" : [1, {"x": "\u12ab"}] } "#,
        ];
        for case in cases {
            let ours = UseToolArgs::read(Some(Raw::of(case)));
            let theirs: Result<Oracle, _> = serde_json::from_str(case);
            match (ours, theirs) {
                (Ok(o), Ok(t)) => {
                    assert_eq!(
                        o.backend_server.as_deref(),
                        t.backend_server.as_deref(),
                        "{case}"
                    );
                    assert_eq!(o.server_tool.as_deref(), t.server_tool.as_deref(), "{case}");
                    assert_eq!(
                        o.tool_arguments.map(Raw::get),
                        t.tool_arguments.as_deref().map(RawValue::get),
                        "{case}"
                    );
                }
                (Err(o), Err(t)) => assert_eq!(
                    o.to_string(),
                    t.to_string().replace("struct Oracle", "struct UseToolArgs"),
                    "{case}"
                ),
                (o, t) => panic!("{case}: ours {:?}, serde_json {t:?}", o.map(|_| ())),
            }
        }
    }
}
