//! Which backend a client's request goes to: tool names (prefixed, direct, or through
//! the meta-tools `use_tool` and `discover_backend_tools`), prompt names, resource URIs,
//! completion references and task ids, resolved to a backend and its own name.

use super::aggregate::AggregateKind;
use super::lists::{self, ListKind};
use super::requests::PendingKind;
use super::tasks::{self, TaskOp};
use super::Gateway;
use super::{naming, tools};
use crate::config::{BackendConfig, Expose};
use crate::wire::message::{
    self, span_of, write_error, write_result, Message, Raw, INVALID_PARAMS, RESOURCE_NOT_FOUND,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;

impl Gateway {
    /// The live backends (in config order) reached through the meta-tools.
    fn meta_backends(&self) -> Vec<usize> {
        let meta = |b: &usize| self.backends[*b].config.in_meta();
        self.order.iter().copied().filter(meta).collect()
    }

    /// Whether `use_tool` and `discover_backend_tools` exist: some backend is reached
    /// through them, or (with no backend at all) the top-level `expose` asks for them.
    pub(super) fn meta_enabled(&self) -> bool {
        let live = self.order.iter().map(|b| &self.backends[*b].config);
        naming::meta_listed(self.expose, live)
    }

    /// The live backends with tools listed directly.
    pub(super) fn direct_backends(&self) -> Vec<usize> {
        let direct = |b: &usize| has_direct_tools(&self.backends[*b].config);
        self.order.iter().copied().filter(direct).collect()
    }

    /// The names of the backends the meta-tools reach, for their schema and errors.
    pub(super) fn backend_names(&self) -> Vec<&str> {
        let metas = self.meta_backends();
        metas.iter().map(|b| self.backends[*b].name()).collect()
    }

    /// The meta-tools' error for a backend they do not reach: why it is disabled, if
    /// gangway disabled it, else that it is unknown; `available` lists the valid names.
    fn unknown_backend(&self, name: &str, available: &str) -> String {
        match self.unavailable.iter().find(|(n, _)| n == name) {
            Some((_, reason)) => format!(
                "Error: backend server {name} is disabled: {reason}. Available servers: {available}"
            ),
            None => {
                format!("Error: Unknown backend server: {name}. Available servers: {available}")
            }
        }
    }

    /// The live backend called `name`.
    fn backend_named(&self, name: &str) -> Option<usize> {
        self.order
            .iter()
            .copied()
            .find(|b| self.backends[*b].name() == name)
    }

    /// A client's `tools/call`: a meta-tool, or an exposed tool routed to its backend under
    /// the backend's own name; an unknown name is answered with the choices.
    pub(super) fn tools_call(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        let Some(params) = tools::CallParams::of(msg) else {
            let text = "tools/call needs params with a string \"name\"";
            write_error(self.reply(), id, INVALID_PARAMS, text);
            return;
        };
        let name: String = serde_json::from_str(params.name.get()).unwrap_or_default();
        let meta = self.meta_enabled() || self.handling_shell();
        if meta && name == tools::USE_TOOL {
            self.use_tool(now, msg, id, &params);
            return;
        }
        if meta && name == tools::DISCOVER {
            self.discover(now, id, &params);
            return;
        }
        let (b, tool) = match self.resolve_tool(&name) {
            Ok(found) => found,
            Err(text) => {
                write_error(self.reply(), id, INVALID_PARAMS, &text);
                return;
            }
        };
        let mut new_name = Vec::with_capacity(tool.len() + 2);
        message::write_json_string(&mut new_name, &tool);
        let Some(name_span) = span_of(msg.line, params.name.get()) else {
            return;
        };
        let op = if params.task.is_some() {
            TaskOp::Create
        } else {
            TaskOp::None
        };
        let edit = Some((name_span, new_name));
        self.forward(now, b, msg, PendingKind::Forward, edit, op);
    }

    /// The backend and own name of an exposed tool name, or the client's error text.
    fn resolve_tool(&self, name: &str) -> Result<(usize, String), String> {
        if let Some((b, own)) = self.resolve_exposed(ListKind::Tools, name) {
            let config = &self.backends[b].config;
            if !config.tools.permits(&own) {
                return Err(format!(
                    "Tool '{own}' of backend '{}' is not offered: its config's tools.allow/tools.deny filter it out",
                    self.backends[b].name()
                ));
            }
            if !config.is_direct(&own) {
                return Err(format!(
                    "Tool '{own}' of backend '{}' is not listed directly; call it with use_tool (backend_server \"{}\", server_tool \"{own}\"). use_tool reaches backends: {}",
                    self.backends[b].name(),
                    self.backends[b].name(),
                    self.backend_names().join(", ")
                ));
            }
            self.check_tool_known(b, &own)?;
            return Ok((b, own));
        }
        let meta = if self.meta_enabled() {
            format!(
                "gangway also offers {} and {} for backends: {}. ",
                tools::USE_TOOL,
                tools::DISCOVER,
                self.backend_names().join(", ")
            )
        } else {
            String::new()
        };
        let direct = self.direct_backends();
        let direct: Vec<&str> = direct.iter().map(|b| self.backends[*b].name()).collect();
        let listed = if direct.is_empty() {
            "No backend has tools listed directly. ".to_string()
        } else {
            format!(
                "Tools listed directly are named PREFIX{}TOOL and come from backends: {}; call tools/list to see them. ",
                self.separator,
                direct.join(", ")
            )
        };
        Err(format!("Unknown tool: {name}. {listed}{meta}")
            .trim_end()
            .to_string())
    }

    /// The (backend, own name) an exposed tool or prompt name stands for: from the name
    /// table when the backend's list is known, else by its prefix and the separator (the
    /// longest matching prefix wins, since prefixes may contain the separator).
    fn resolve_exposed(&self, kind: ListKind, name: &str) -> Option<(usize, String)> {
        if let Some((b, own)) = self.names[kind.index()].resolve(name) {
            if self.order.contains(&b) {
                return Some((b, own.to_string()));
            }
        }
        self.split_prefixed(name, &self.separator, |c| &c.prefix)
    }

    /// The live backend whose `head` (its prefix, or its name) and `separator` begin
    /// `name`, and the rest of `name`. The longest matching head wins, since heads may
    /// contain the separator; an empty head matches any name whole.
    fn split_prefixed(
        &self,
        name: &str,
        separator: &str,
        head: impl Fn(&BackendConfig) -> &str,
    ) -> Option<(usize, String)> {
        self.order
            .iter()
            .filter_map(|&b| {
                let head = head(&self.backends[b].config);
                let rest = if head.is_empty() {
                    name
                } else {
                    name.strip_prefix(head)?.strip_prefix(separator)?
                };
                (!rest.is_empty()).then_some((b, head.len(), rest))
            })
            .max_by_key(|(_, len, _)| *len)
            .map(|(b, _, rest)| (b, rest.to_string()))
    }

    /// The backend and its own task id for a client task id `BACKEND__TASKID` (the longest
    /// matching backend name wins).
    pub(super) fn resolve_task(&self, task_id: &str) -> Option<(usize, String)> {
        self.split_prefixed(task_id, tasks::TASK_SEPARATOR, |c| &c.name)
    }

    /// When the backend's tool list is known, refuses a tool it does not have.
    fn check_tool_known(&self, b: usize, tool: &str) -> Result<(), String> {
        let be = &self.backends[b];
        match be.known(ListKind::Tools) {
            Some(list) if !list.iter().any(|t| t.key == tool) => {
                let names: Vec<&str> = list
                    .iter()
                    .map(|t| t.key.as_str())
                    .filter(|t| be.config.tools.permits(t))
                    .collect();
                Err(format!(
                    "Unknown tool: backend '{}' has no tool '{tool}'. Its tools: {}",
                    be.name(),
                    names.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }

    fn use_tool(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        id: &[u8],
        params: &tools::CallParams<'_>,
    ) {
        let args = tools::UseToolArgs::read(params.arguments);
        // Only an error names the servers.
        let available = |gw: &Gateway| gw.backend_names().join(", ");
        let shell = self.handling_shell();
        let fail = |gw: &mut Gateway, text: String| {
            if shell {
                write_error(gw.reply(), id, INVALID_PARAMS, &text);
            } else {
                write_result(gw.reply(), id, &tools::error_result(&text));
            }
        };
        let args = match args {
            Ok(a) => a,
            Err(e) => {
                let available = available(self);
                return fail(self, format!("Error: use_tool arguments must be an object with backend_server, server_tool and tool_arguments ({e}). Available servers: {available}"));
            }
        };
        let Some(backend) = args.backend_server.as_deref() else {
            let available = available(self);
            return fail(self, format!("Error: Missing required parameter: backend_server. Available servers: {available}"));
        };
        let found = self.backend_named(backend);
        let Some(b) = found.filter(|b| shell || self.backends[*b].config.in_meta()) else {
            let text = self.unknown_backend(backend, &available(self));
            return fail(self, text);
        };
        let Some(tool) = args.server_tool.as_deref() else {
            return fail(self, format!("Error: Missing required parameter: server_tool. Call discover_backend_tools with backend_server \"{backend}\" to list its tools"));
        };
        if let Some(a) = args.tool_arguments {
            if !a.get().starts_with('{') {
                return fail(
                    self,
                    "Error: tool_arguments must be a JSON object".to_string(),
                );
            }
        }
        if !shell && !self.backends[b].config.tools.permits(tool) {
            return fail(self, format!("Error: tool '{tool}' of backend '{backend}' is not offered: its config's tools.allow/tools.deny filter it out. Call discover_backend_tools with backend_server \"{backend}\" to list the tools offered"));
        }
        if let Err(text) = self.check_tool_known(b, tool) {
            return fail(self, format!("Error: {text}"));
        }
        let body = tools::use_tool_params(tool, args.tool_arguments, params.meta, params.task);
        let op = if params.task.is_some() {
            TaskOp::Create
        } else {
            TaskOp::None
        };
        self.forward_built(now, b, msg, "tools/call", &body, op);
    }

    fn discover(&mut self, now: Instant, id: &[u8], params: &tools::CallParams<'_>) {
        let args: tools::DiscoverArgs<'_> = params
            .arguments
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        let shell = self.handling_shell();
        let targets = match args.backend_server.as_deref() {
            None | Some("") if shell => self.order.clone(),
            None | Some("") => self.meta_backends(),
            Some(name) => match self
                .backend_named(name)
                .filter(|b| shell || self.backends[*b].config.in_meta())
            {
                Some(b) => vec![b],
                None => {
                    let text = self.unknown_backend(name, &self.backend_names().join(", "));
                    write_result(self.reply(), id, &tools::error_result(&text));
                    return;
                }
            },
        };
        let parts = targets.into_iter().map(|b| (b, ListKind::Tools)).collect();
        self.start_aggregate(now, id, AggregateKind::Discover, parts);
    }

    /// A client's `prompts/get`, routed to the backend of the exposed prompt name.
    pub(super) fn prompts_get(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: &'a RawValue,
        }
        let name = msg
            .params
            .and_then(|p| serde_json::from_str::<Params<'_>>(p.get()).ok())
            .map(|p| Raw::from(p.name));
        self.forward_prefixed(now, msg, id, name, Some(ListKind::Prompts), TaskOp::None);
    }

    /// Forwards a request that names an exposed prompt (`kind` Prompts) or a client task id
    /// (`kind` None, `BACKEND__TASKID`) to its backend, with the name's bytes replaced by
    /// the backend's own name.
    pub(super) fn forward_prefixed(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        id: &[u8],
        name: Option<Raw<'_>>,
        kind: Option<ListKind>,
        task: TaskOp,
    ) {
        let exposed: Option<String> = name.and_then(|n| serde_json::from_str(n.get()).ok());
        let target = exposed.as_deref().and_then(|e| match kind {
            Some(kind) => self.resolve_exposed(kind, e),
            None => self.resolve_task(e),
        });
        let span = name.and_then(|n| span_of(msg.line, n.get()));
        let (Some((b, own)), Some(span)) = (target, span) else {
            let shown = exposed.as_deref().unwrap_or("(missing name)");
            let text = match kind {
                Some(_) => format!(
                    "Unknown prompt: {shown}. gangway names prompts PREFIX{}NAME (the prefix is the backend's name unless its config sets one); call prompts/list to see them",
                    self.separator,
                ),
                None => format!(
                    "Unknown task: {shown}. gangway's task ids are BACKEND{}TASKID; backends: {}",
                    tasks::TASK_SEPARATOR,
                    self.order.iter().map(|b| self.backends[*b].name()).collect::<Vec<_>>().join(", ")
                ),
            };
            write_error(self.reply(), id, INVALID_PARAMS, &text);
            return;
        };
        let mut own_json = Vec::with_capacity(own.len() + 2);
        message::write_json_string(&mut own_json, &own);
        self.forward(
            now,
            b,
            msg,
            PendingKind::Forward,
            Some((span, own_json)),
            task,
        );
    }

    /// A client's `resources/read`, `resources/subscribe` or `resources/unsubscribe`,
    /// routed to the backend that lists the URI (subscriptions are shared by sessions).
    pub(super) fn resource_request(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Params {
            uri: String,
        }
        let Some(uri) = msg
            .params
            .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
            .map(|p| p.uri)
        else {
            let text = format!(
                "{} needs params with a string \"uri\"",
                msg.method.unwrap_or("")
            );
            write_error(self.reply(), id, INVALID_PARAMS, &text);
            return;
        };
        // A backend subscription is shared by the sessions that asked for it: the first
        // subscribe and the last unsubscribe reach the backend, the others are answered
        // here.
        let me = self.handling;
        let shared = self.subscribers(&uri).any(|s| s != me);
        let mine = self.sessions.get_mut(&me).map(|c| &mut c.subscriptions);
        match (msg.method, mine) {
            (Some("resources/subscribe"), Some(subs)) => {
                subs.insert(uri.clone());
                if shared {
                    write_result(self.reply(), id, b"{}");
                    return;
                }
            }
            (Some("resources/unsubscribe"), Some(subs)) => {
                subs.remove(&uri);
                if shared {
                    write_result(self.reply(), id, b"{}");
                    return;
                }
            }
            _ => {}
        }
        self.forward_by_uri(now, msg, id, &uri);
    }

    /// A client's `completion/complete`, routed by its reference: a prompt name or a
    /// resource URI.
    pub(super) fn complete(&mut self, now: Instant, msg: &Message<'_>, id: &[u8]) {
        #[derive(Deserialize)]
        struct Ref<'a> {
            #[serde(rename = "type")]
            kind: String,
            #[serde(borrow, default)]
            name: Option<&'a RawValue>,
            #[serde(default)]
            uri: Option<String>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(rename = "ref", borrow)]
            reference: Ref<'a>,
        }
        let parsed = msg
            .params
            .and_then(|p| serde_json::from_str::<Params<'_>>(p.get()).ok());
        match parsed.map(|p| p.reference) {
            Some(r) if r.kind == "ref/prompt" => self.forward_prefixed(
                now,
                msg,
                id,
                r.name.map(Raw::from),
                Some(ListKind::Prompts),
                TaskOp::None,
            ),
            Some(Ref {
                kind,
                uri: Some(uri),
                ..
            }) if kind == "ref/resource" => self.forward_by_uri(now, msg, id, &uri),
            _ => {
                let text = "completion/complete needs params.ref of type ref/prompt (with name) or ref/resource (with uri)";
                write_error(self.reply(), id, INVALID_PARAMS, text);
            }
        }
    }

    /// Forwards a request about `uri` to the backend that owns it. When no known list
    /// has it but some backend's resource lists are not known yet, those are fetched
    /// first and the request is processed again.
    fn forward_by_uri(&mut self, now: Instant, msg: &Message<'_>, id: &[u8], uri: &str) {
        if let Some(b) = self.resource_owner(uri) {
            self.forward(now, b, msg, PendingKind::Forward, None, TaskOp::None);
            return;
        }
        let unknown: Vec<(usize, ListKind)> = if self.retrying {
            Vec::new()
        } else {
            self.order
                .iter()
                .flat_map(|&b| [(b, ListKind::Resources), (b, ListKind::Templates)])
                .filter(|(b, k)| self.backends[*b].known(*k).is_none())
                .collect()
        };
        if unknown.is_empty() {
            let text = format!(
                "Resource not found: {uri}. No backend lists it or has a template that matches it; call resources/list and resources/templates/list to see what there is"
            );
            write_error(self.reply(), id, RESOURCE_NOT_FOUND, &text);
            return;
        }
        let kind = AggregateKind::Retry {
            line: msg.line.to_vec(),
        };
        self.start_aggregate(now, id, kind, unknown);
    }

    /// The backend that owns `uri`: the first (in config order) that lists it, else the
    /// first with a template that matches it.
    pub(super) fn resource_owner(&self, uri: &str) -> Option<usize> {
        let in_list = |kind: ListKind, hit: &dyn Fn(&str) -> bool| {
            self.order.iter().copied().find(|b| {
                let list = self.backends[*b].known(kind);
                list.is_some_and(|items| items.iter().any(|i| hit(&i.key)))
            })
        };
        in_list(ListKind::Resources, &|k| k == uri)
            .or_else(|| in_list(ListKind::Templates, &|t| lists::template_matches(t, uri)))
    }
}

/// Whether some of the backend's tools are listed directly in tools/list.
pub(super) fn has_direct_tools(config: &BackendConfig) -> bool {
    config.expose != Expose::Meta || !config.direct.is_empty()
}
