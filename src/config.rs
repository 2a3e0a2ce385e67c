//! Configuration: which backends gangway fronts and how it runs them.
//!
//! # Accepted shapes
//!
//! One JSON file, in any of three shapes, so an existing file can be used as it is:
//!
//! 1. **gangway's own**: backends are an object keyed by name.
//!    ```json
//!    { "backends": { "github": { "command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"],
//!                                "env": { "GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}" } } },
//!      "expose": "meta", "timeout": 30, "idle_timeout": 300, "max_message_bytes": 16777216,
//!      "catalog": true, "separator": "__" }
//!    ```
//! 2. **mcpware's list form** (the Python gateway's original `config.json`): backends are an
//!    array of objects with a `name`, and `command` may be an array whose first element is the
//!    program and the rest its arguments (a string plus `args` is accepted too, as mcpware's
//!    later versions wrote it). Any `args` are appended after the array's arguments.
//!    ```json
//!    { "backends": [ { "name": "memory", "command": ["npx", "-y", "@modelcontextprotocol/server-memory"],
//!                      "description": "Memory", "timeout": 30 } ] }
//!    ```
//! 3. **Claude Desktop's `claude_desktop_config.json`** (or Claude Code's `.mcp.json`):
//!    servers are the object under `mcpServers`. Every other top-level key belongs to the
//!    application (`globalShortcut`, `preferences`, ...) and is ignored. Files of other
//!    clients with this shape (Cline, Roo Code, Cursor, Claude Code, Gemini CLI) work as
//!    they are: the keys those clients add to a server (`autoApprove`, `alwaysAllow`,
//!    `headers`, ...: [`FOREIGN_BACKEND_KEYS`]) are ignored with a note. A server may say
//!    `"type": "stdio"`; one with a `url` and `"type": "http"` (or no type) is a remote
//!    backend (see [`BackendConfig::remote`]); one with any other transport (`"sse"`,
//!    `httpUrl`) is disabled with the reason (skipped entirely when it has
//!    `"disabled": true`), and the other servers still run. A server whose program is
//!    gangway itself, on the host or as a `docker run` of the `gangway` image, is disabled
//!    with the reason, because pointing gangway at the file that launches it would make it
//!    spawn itself recursively.
//!
//! The shape is chosen by the top-level keys: `backends` (object: shape 1, array: shape 2)
//! or, when there is no `backends`, `mcpServers` (shape 3). A file with only gangway's
//! top-level settings, or `{}`, is shape 1 with no backends.
//!
//! Every backend, in every shape, accepts `command`, `args`, `env`, `cwd`, `description`,
//! `timeout`, `startup_timeout`, `idle_timeout`, `disabled`, `prefix`, `tools`, `expose`
//! and `direct` (plus `name` in shape 2 and `type` in shape 3). The top-level settings
//! `expose`, `timeout`, `startup_timeout`, `idle_timeout`, `max_message_bytes`, `catalog`,
//! `separator` and `$schema` (ignored) exist in shapes 1 and 2 only; shape 3 always uses
//! the defaults.
//!
//! # Names, filters and the catalog
//!
//! A backend's tools and prompts are exposed as `prefix` + `separator` + the tool's own
//! name (just the tool's own name when `prefix` is `""`). `prefix` defaults to the
//! backend's name and is 0 to 64 characters; the top-level `separator` defaults to `"__"`
//! and is 0 to 8 characters; both use only `A-Z a-z 0-9 _ -`, because clients only accept
//! tool names matching `^[A-Za-z0-9_-]{1,64}$`.
//!
//! `"tools": {"allow": [globs], "deny": [globs]}` restricts which of a backend's tools are
//! offered at all: a tool is offered when `allow` is absent or empty or one of its globs
//! matches, and no `deny` glob matches. A backend's own `expose` overrides the top-level
//! one for that backend, and `"direct": [globs]` lists matching tools directly in
//! `tools/list` whatever `expose` says. Globs are shell-style (`*`, `?`, `[...]`), matched
//! against the tool's own name, and never expanded.
//!
//! `catalog` is where the tool catalog is kept: absent or `true` means
//! `$XDG_CACHE_HOME/gangway/catalog.json` (when that variable is an absolute path), else
//! `$HOME/.cache/gangway/catalog.json`, else no catalog (with a warning); `false` or `null`
//! turns it off; a string is a file path, expanded like `cwd` and, when relative, resolved
//! against the config file's directory (`~` is not special).
//!
//! # Strictness
//!
//! An unknown key is an error everywhere except at the top level of shape 3 (and other
//! clients' keys in its servers), so that a typo
//! (`"tiemout"`) cannot silently drop a setting; the error lists the valid keys and
//! suggests the closest. Errors name the file and the JSON path of the offending value
//! (`backends.github.args[2]`, `backends[1].command`). A JSON object with a duplicate key
//! is not detected: serde_json keeps the last occurrence. Duplicate names in the list form
//! are detected. A config without backends is valid (gangway then serves no tools) and
//! only logs a warning.
//!
//! # Variable expansion
//!
//! In `command`, `args`, `env` values, `cwd` and `catalog`, `${NAME}` is replaced by the
//! value of `NAME` in gangway's environment and `${NAME:-default}` by that value, or by
//! `default` when `NAME` is unset or empty (as in a POSIX shell). NAME is letters, digits
//! and `_`, not starting with a digit; the default is taken literally up to the first `}`,
//! and substituted values are not expanded again. Everything else is kept exactly as
//! written, so a value written for Claude Desktop (which expands nothing) means the same
//! here: `abc$$def`, `$HOME`, a lone `${`, `${}` or `${1X}` pass unchanged. The one escape
//! is `$${`, a literal `${` (write `$${NAME}` to pass the text `${NAME}`).
//!
//! A backend that uses an unset variable without a default is disabled, with the reason
//! in the log, `gangway check`, the instructions and the meta-tools' errors; the other
//! backends run. An unset variable in `catalog` is an error. Disabled backends are not
//! expanded (their fields keep the text as written, so their variables need not be set).
//!
//! # What a backend inherits
//!
//! Each backend process gets gangway's environment plus its own `env`, except the
//! variables that some other backend references with `${...}`: those reach only the
//! backends whose config references them, so a secret pulled in for one server never
//! reaches another. [`ALWAYS_INHERITED`] (`HOME`, `PATH`, ...) is inherited by every
//! backend whatever references it. Everything else is inherited because servers rely on
//! it (`DOCKER_HOST`, proxies, `LANG`, npm's settings) and a client already starts gangway
//! with a short environment of its own.
//!
//! A relative `cwd` is resolved against the directory of the config file, because the
//! client that starts gangway picks gangway's working directory, not the user.
//!
//! Env values are secrets: no error, log line or `Debug` output contains them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// Default request timeout of a backend, in seconds, when neither the backend nor the top
/// level sets `timeout`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Default time, in seconds, a backend may take to start and answer `initialize` (long
/// enough for `docker run` to pull an image), when neither the backend nor the top level
/// sets `startup_timeout`.
pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 120;
/// Default idle time, in seconds, after which a backend process is stopped, when neither the
/// backend nor the top level sets `idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// Default time, in seconds, a backend's request to the client (sampling, elicitation,
/// roots) may wait for the client's answer: long, since a person may be answering.
pub const DEFAULT_CLIENT_REQUEST_TIMEOUT_SECS: u64 = 600;
/// Default largest accepted JSON-RPC message, in bytes (16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Smallest `max_message_bytes` accepted: below this not even `initialize` fits.
const MIN_MAX_MESSAGE_BYTES: usize = 1024;
/// Longest backend name; names end up in tool names, which clients limit in length.
const MAX_NAME_LEN: usize = 64;
/// Program names that are gangway itself, for the self-reference guard of shape 3.
const SELF_NAMES: &[&str] = &["gangway", "gangway.exe"];

/// Longest `prefix`: a prefix may be a whole backend name.
const MAX_PREFIX_LEN: usize = 64;
/// Longest `separator`; it is repeated in every exposed name, which clients limit to 64.
const MAX_SEPARATOR_LEN: usize = 8;
/// The `separator` when the file sets none.
const DEFAULT_SEPARATOR: &str = "__";

const TOP_KEYS: &[&str] = &[
    "$schema",
    "backends",
    "catalog",
    "client_request_timeout",
    "expose",
    "http",
    "idle_timeout",
    "max_message_bytes",
    "rate_limit",
    "separator",
    "startup_timeout",
    "timeout",
];
const BACKEND_KEYS: &[&str] = &[
    "args",
    "ca_file",
    "client_request_timeout",
    "command",
    "cwd",
    "description",
    "direct",
    "disabled",
    "env",
    "expose",
    "headers",
    "idle_timeout",
    "keep_warm",
    "prefix",
    "scope",
    "startup_timeout",
    "timeout",
    "tools",
    "type",
    "url",
];
const LIST_BACKEND_KEYS: &[&str] = &[
    "args",
    "ca_file",
    "client_request_timeout",
    "command",
    "cwd",
    "description",
    "direct",
    "disabled",
    "env",
    "expose",
    "headers",
    "idle_timeout",
    "keep_warm",
    "name",
    "prefix",
    "scope",
    "startup_timeout",
    "timeout",
    "tools",
    "type",
    "url",
];
const DESKTOP_BACKEND_KEYS: &[&str] = &[
    "args",
    "ca_file",
    "client_request_timeout",
    "command",
    "cwd",
    "description",
    "direct",
    "disabled",
    "env",
    "expose",
    "idle_timeout",
    "keep_warm",
    "prefix",
    "scope",
    "startup_timeout",
    "timeout",
    "tools",
    "type",
];
/// Keys other MCP clients write in their server entries (Cline, Roo Code, Cursor, Claude
/// Code, Gemini CLI, VS Code): ignored with a note in the Claude Desktop shape, so their
/// files can be used as they are. `type` is gangway's too; a non-stdio transport
/// (`url`, `httpUrl`, `type`/`transportType` other than "stdio") disables the server.
pub const FOREIGN_BACKEND_KEYS: &[&str] = &[
    "alwaysAllow",
    "auth",
    "autoApprove",
    "disabledTools",
    "envFile",
    "excludeTools",
    "extensionName",
    "headers",
    "headersHelper",
    "httpUrl",
    "includeTools",
    "networkTimeout",
    "oauth",
    "transportType",
    "trust",
    "url",
    "watchPaths",
];
/// The shortest env value [`BackendConfig::redact`] hides; shorter ones ("1", "off") are
/// settings rather than secrets, and hiding them would garble ordinary words.
pub const REDACT_MIN_LEN: usize = 4;
/// Keys of a backend's `tools` object.
const TOOLS_KEYS: &[&str] = &["allow", "deny"];
/// Keys that decide the shape; used to suggest one when no shape is recognised.
const SHAPE_KEYS: &[&str] = &["backends", "mcpServers"];

/// Who shares a backend's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// One process serves every session (the default).
    #[default]
    Shared,
    /// Each session gets a process of its own, started when that session first needs it
    /// and stopped when it ends (or idles): for servers that keep per-client state.
    Session,
}

/// How gangway presents the backends' tools to its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Expose {
    /// Only gangway's meta tools (discover a backend's tools, call one); the default, since
    /// it keeps the client's tool list short however many backends there are.
    #[default]
    Meta,
    /// Every backend tool directly in gangway's own tool list.
    Tools,
    /// Both the meta tools and every backend tool.
    Both,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from (as given to [`Config::load`] / [`Config::parse`]).
    pub path: PathBuf,
    /// How tools are exposed (`expose`; [`Expose::Meta`] unless set).
    pub expose: Expose,
    /// Largest JSON-RPC message accepted, in bytes; at least 1024.
    pub max_message_bytes: usize,
    /// Where the tool catalog is kept; `None` when disabled (`"catalog": false`).
    pub catalog: Option<PathBuf>,
    /// Between a backend's prefix and a tool or prompt name in exposed names (`separator`,
    /// default "__"): 0 to 8 characters of `A-Z a-z 0-9 _ -`.
    pub separator: String,
    /// Every backend, enabled and disabled, in a deterministic order: file order for the
    /// list form, sorted by name for the object forms. Names are unique.
    pub backends: Vec<BackendConfig>,
    /// What was ignored because it belongs to another MCP client (Cline's `autoApprove`,
    /// ...), one sentence each, for the log and `gangway check`.
    pub notes: Vec<String>,
    /// The settings of `gangway serve` (the top-level `"http"` object).
    pub http: HttpConfig,
    /// `rate_limit`: requests per second per client (per token over HTTP with tokens,
    /// per session otherwise); `None`: unlimited.
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
}

/// The top-level `"http"` object: how `gangway serve` listens and whom it lets in. Every
/// field has a default; `Debug` never prints the tokens.
#[derive(Clone, PartialEq, Default)]
pub struct HttpConfig {
    /// `listen`: the address to listen on (`--listen` overrides it).
    pub listen: Option<String>,
    /// `tokens`: bearer tokens accepted, `${VAR}` expanded; empty means no authentication.
    pub tokens: Vec<String>,
    /// `allowed_origins`: browser origins allowed besides loopback ones (`"*"`: any).
    pub allowed_origins: Vec<String>,
    /// `session_timeout`: a session with no request and no open stream for this long ends.
    pub session_timeout: Option<Duration>,
    /// `max_connections`: connections open at once.
    pub max_connections: Option<usize>,
    /// `max_sessions`: sessions open at once.
    pub max_sessions: Option<usize>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("tokens", &format_args!("[{} hidden]", self.tokens.len()))
            .field("allowed_origins", &self.allowed_origins)
            .field("session_timeout", &self.session_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_sessions", &self.max_sessions)
            .finish()
    }
}

/// One backend MCP server, as gangway will spawn it.
///
/// For an enabled backend, `command`, `args`, `env` values and `cwd` are expanded and a
/// relative `cwd` is resolved against the config file's directory; for a disabled one they
/// hold the text as written. `Debug` prints env names but never env values.
#[derive(Clone, PartialEq)]
pub struct BackendConfig {
    /// Unique name: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// The program to run; never empty or only whitespace.
    pub command: String,
    /// Its arguments, in order.
    pub args: Vec<String>,
    /// Variables added to gangway's own environment for the process, sorted by name. Names
    /// are non-empty and contain neither `=` nor NUL; nothing contains NUL.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` means gangway's own.
    pub cwd: Option<PathBuf>,
    /// Human-readable description, if the file gives one.
    pub description: Option<String>,
    /// How long a request may wait for its answer once the backend is ready; never zero.
    pub timeout: std::time::Duration,
    /// How long the process may take to start and answer `initialize`; never zero.
    pub startup_timeout: std::time::Duration,
    /// How long its requests to the client (sampling, elicitation, roots) may wait for an
    /// answer before gangway cancels them; never zero. A `ping` uses `timeout`.
    pub client_request_timeout: std::time::Duration,
    /// How long the process may sit idle before it is stopped; `None` (0 in the file) means
    /// it is never stopped for being idle.
    pub idle_timeout: Option<std::time::Duration>,
    /// A disabled backend is validated and listed but never started.
    pub disabled: bool,
    /// Put before the backend's tool and prompt names with `separator` (`prefix`, default
    /// the backend's name; may be empty, then names are the tool's own). 0 to 64
    /// characters of `A-Z a-z 0-9 _ -`.
    pub prefix: String,
    /// Which of its tools are offered at all (`tools: {"allow": [globs], "deny": [globs]}`).
    pub tools: ToolFilter,
    /// How its tools are exposed: its own `expose`, else the top-level one (already
    /// resolved here).
    pub expose: Expose,
    /// Tools also listed directly in tools/list whatever `expose` says (`direct: [globs]`),
    /// so a meta backend can pin a few everyday tools.
    pub direct: Vec<glob::Pattern>,
    /// Whether sessions share its process (`scope`: `"shared"`, the default, or
    /// `"session"`).
    pub scope: Scope,
    /// `keep_warm`: processes kept started before anyone asks (a shared backend: 0 or 1,
    /// `false` or `true`; a session-scoped one: spare processes handed to new sessions).
    /// A warm shared backend is not stopped for idling and is started again after a crash.
    pub keep_warm: u32,
    /// A server reached by URL over Streamable HTTP rather than a program gangway starts:
    /// then `command` is its URL, `env` its HTTP headers (values hidden from logs and
    /// `Debug` like env values), `args` empty or only its `ca_file` (see
    /// [`BackendConfig::ca_file`]), and `cwd` empty.
    pub remote: bool,
    /// A remote backend speaking the HTTP+SSE transport of 2024-11-05 (`"type": "sse"`)
    /// rather than Streamable HTTP.
    pub sse: bool,
    /// Why gangway disabled it although the file does not (an unset variable, a transport
    /// gangway cannot run, gangway itself); `None` when it is enabled or the file says
    /// `"disabled": true`. Shown in the log, `gangway check`, the instructions and the
    /// meta-tools' errors. Never contains an env value.
    pub disabled_reason: Option<String>,
    /// Variables of gangway's own environment the process must not inherit: those another
    /// backend's `${VAR}` references (see the module docs, "What a backend inherits"), sorted. Its own `env`
    /// is applied after these are removed.
    pub env_remove: Vec<String>,
    /// The variables its `${VAR}` references name, sorted and unique (for `gangway check`,
    /// which warns when one is only set in the shell).
    pub vars: Vec<String>,
}

/// Which tools of a backend are offered. A tool is offered when `allow` is empty or one of
/// its globs matches, and no `deny` glob matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolFilter {
    /// Globs of the tools offered; empty offers every tool `deny` does not exclude.
    pub allow: Vec<glob::Pattern>,
    /// Globs of the tools never offered, whatever `allow` says.
    pub deny: Vec<glob::Pattern>,
}

impl ToolFilter {
    /// Whether the tool `name` is offered (see the type's docs).
    pub fn permits(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|g| g.matches(name)))
            && !self.deny.iter().any(|g| g.matches(name))
    }

    /// Whether this filter lets everything through.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

impl BackendConfig {
    /// Whether `tool` is listed directly (as a `prefix`+`separator`+`tool` tool) by this
    /// backend: its expose is Tools or Both, or a `direct` glob matches. Filtered tools are
    /// never direct.
    pub fn is_direct(&self, tool: &str) -> bool {
        self.tools.permits(tool)
            && (matches!(self.expose, Expose::Tools | Expose::Both)
                || self.direct.iter().any(|g| g.matches(tool)))
    }

    /// Whether the backend is reached through the meta-tools (expose Meta or Both).
    pub fn in_meta(&self) -> bool {
        matches!(self.expose, Expose::Meta | Expose::Both)
    }

    /// `text` with every `env` value of at least [`REDACT_MIN_LEN`] bytes replaced by
    /// `[redacted]`, for quoting a backend's stderr in errors: a crashing server often
    /// prints its token.
    pub fn redact(&self, text: &str) -> String {
        let mut values: Vec<&str> = self
            .env
            .iter()
            .map(|(_, v)| v.as_str())
            .filter(|v| v.len() >= REDACT_MIN_LEN)
            .collect();
        // Longest first, so a value that contains another is hidden whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut text = text.to_string();
        for v in values {
            if text.contains(v) {
                text = text.replace(v, "[redacted]");
            }
        }
        text
    }

    /// Its command as messages, logs and the status page show it: for a remote backend, its
    /// URL without the query (which may carry a credential).
    pub fn shown_command(&self) -> &str {
        if self.remote {
            self.command.split('?').next().unwrap_or("")
        } else {
            &self.command
        }
    }

    /// A remote backend's `ca_file`: a PEM file of CA certificates trusted for its https
    /// URL besides the platform's roots. For an enabled backend the path is resolved
    /// against the config file's directory and the file was read and checked when the
    /// config was read. It is kept as the only element of `args`, which a remote backend
    /// has no other use for; `None` for a stdio backend.
    pub fn ca_file(&self) -> Option<&Path> {
        if self.remote {
            self.args.first().map(Path::new)
        } else {
            None
        }
    }

    /// Whether its command runs `docker run` (see [`crate::docker::is_docker_run`]): its
    /// start may include an image pull.
    pub fn runs_docker(&self) -> bool {
        crate::docker::is_docker_run(self)
    }

    /// Whether its command runs `docker run --name NAME` (see
    /// [`crate::docker::has_fixed_name`]): a restart must wait until the last container of
    /// that name is removed.
    pub fn fixed_container_name(&self) -> bool {
        crate::docker::has_fixed_name(self)
    }

    /// Whether a running process for `self` must be restarted to become `other` (command,
    /// args, env names or values, or cwd differ).
    pub fn spawn_differs(&self, other: &BackendConfig) -> bool {
        // `env` is sorted by name, so equal sets compare equal as vectors.
        self.command != other.command
            || self.args != other.args
            || self.env != other.env
            || self.env_remove != other.env_remove
            || self.cwd != other.cwd
    }
}

/// Globs shown as the text they were written as, not as compiled tokens.
struct Globs<'a>(&'a [glob::Pattern]);

impl fmt::Debug for Globs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(glob::Pattern::as_str))
            .finish()
    }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Env values are usually tokens; only their names may ever reach a log.
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("BackendConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env_names", &env_names)
            .field("cwd", &self.cwd)
            .field("description", &self.description)
            .field("timeout", &self.timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("client_request_timeout", &self.client_request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("disabled", &self.disabled)
            .field("prefix", &self.prefix)
            .field("tools_allow", &Globs(&self.tools.allow))
            .field("tools_deny", &Globs(&self.tools.deny))
            .field("expose", &self.expose)
            .field("direct", &Globs(&self.direct))
            .field("disabled_reason", &self.disabled_reason)
            .field("env_remove", &self.env_remove)
            .field("vars", &self.vars)
            .finish()
    }
}

impl Config {
    /// Reads and validates `path`, expanding variables with `lookup`.
    ///
    /// Fails with [`ConfigError::Io`] when the file cannot be read (or is not UTF-8), and
    /// otherwise as [`Config::parse`] does.
    pub fn load(
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, lookup)
    }

    /// Validates `text` as if it had been read from `path`.
    ///
    /// `path` is only used in error messages, as [`Config::path`], and to resolve relative
    /// `cwd`s; nothing is read. `lookup` supplies the variables for `${VAR}` expansion.
    /// Never panics: any text gives `Ok` or `Err`. Logs a warning when no backend is
    /// enabled.
    pub fn parse(
        text: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // Editors on Windows save JSON with a byte order mark, which serde_json rejects.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Value = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
        let parser = Parser {
            file: path,
            lookup,
            notes: Default::default(),
        };
        let mut config = parser.root(&root)?;
        config.notes = parser.notes.take();
        isolate(&mut config.backends);
        for note in &config.notes {
            log::info!("{}: {note}", path.display());
        }
        for b in &config.backends {
            if let Some(reason) = &b.disabled_reason {
                log::warn!(
                    "{}: backend {} is disabled: {reason}",
                    path.display(),
                    b.name
                );
            }
        }
        if config.backends.is_empty() {
            log::warn!(
                "{}: no backends are configured; gangway will serve no tools",
                path.display()
            );
        } else if config.enabled().next().is_none() {
            log::warn!(
                "{}: every backend is disabled; gangway will serve no tools",
                path.display()
            );
        }
        Ok(config)
    }

    /// The enabled backends, in order.
    pub fn enabled(&self) -> impl Iterator<Item = &BackendConfig> {
        self.backends.iter().filter(|b| !b.disabled)
    }
}

/// The process environment as a lookup for [`Config::load`].
///
/// A variable whose value is not valid UTF-8 is treated as unset (with a warning), since
/// it could not be passed on unchanged.
pub fn process_env(name: &str) -> Option<String> {
    // std may panic on such names on some platforms; they are never valid variables anyway.
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            log::warn!("environment variable {name} is not valid UTF-8; treating it as unset");
            None
        }
    }
}

/// Why a config file was rejected. `Display` gives one line: what is wrong, where (file
/// and JSON path) and what to do. No variant holds an env value.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The config file.
        file: PathBuf,
        /// What reading it failed with.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    Json {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description, without its position.
        message: String,
    },
    /// Valid JSON, but none of the accepted shapes.
    NoShape {
        /// The config file.
        file: PathBuf,
        /// The top-level keys found (all of them; `Display` shows the first few).
        keys: Vec<String>,
        /// `true` if the top level is not an object at all.
        not_object: bool,
    },
    /// A value has the wrong JSON type.
    WrongType {
        /// The config file.
        file: PathBuf,
        /// JSON path of the value.
        path: String,
        /// What it must be, e.g. "a string".
        expected: &'static str,
        /// What it is, e.g. "a number".
        found: &'static str,
    },
    /// A key that is not valid at that place.
    UnknownKey {
        /// The config file.
        file: PathBuf,
        /// JSON path of the object holding the key ("" for the top level).
        path: String,
        /// The unknown key.
        key: String,
        /// The keys valid there.
        valid: &'static [&'static str],
        /// The valid key it is probably a typo of.
        suggestion: Option<&'static str>,
    },
    /// A required key is absent.
    MissingKey {
        /// The config file.
        file: PathBuf,
        /// JSON path of the object missing the key.
        path: String,
        /// The missing key.
        key: &'static str,
    },
    /// A backend name breaks the naming rule.
    BadName {
        /// The config file.
        file: PathBuf,
        /// JSON path of the name (the backend's key, or its `name` field).
        path: String,
        /// The name as written.
        name: String,
    },
    /// Two backends of the list form share a name.
    DuplicateName {
        /// The config file.
        file: PathBuf,
        /// JSON path of the second `name`.
        path: String,
        /// The shared name.
        name: String,
        /// JSON path of the first `name`.
        first: String,
    },
    /// A backend's command is empty.
    EmptyCommand {
        /// The config file.
        file: PathBuf,
        /// JSON path of the command.
        path: String,
        /// `true` if it only became empty through variable expansion.
        after_expansion: bool,
    },
    /// A number out of its allowed range.
    BadNumber {
        /// The config file.
        file: PathBuf,
        /// JSON path of the number.
        path: String,
        /// The number as written in the file.
        value: String,
        /// The rule it breaks, phrased to follow "must be".
        rule: &'static str,
    },
    /// A value of the right type that is still not acceptable.
    BadValue {
        /// The config file.
        file: PathBuf,
        /// JSON path of the value.
        path: String,
        /// What is wrong and what to do, as a sentence fragment.
        problem: String,
    },
    /// `${VAR}` names a variable that is not set and has no default in a top-level setting
    /// (`catalog`); a backend with an unset variable is disabled instead.
    UnsetVariable {
        /// The config file.
        file: PathBuf,
        /// The backend using it; `None` for a top-level setting (`catalog`).
        backend: Option<String>,
        /// JSON path of the field using it.
        path: String,
        /// The variable.
        var: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { file, source } => write!(
                f,
                "cannot read config file {}: {source}; check the path and its permissions",
                file.display()
            ),
            ConfigError::Json {
                file,
                line,
                column,
                message,
            } => write!(
                f,
                "{}: invalid JSON at line {line}, column {column}: {message}; fix the syntax \
                 (JSON allows no comments and no trailing commas)",
                file.display()
            ),
            ConfigError::NoShape {
                file,
                keys,
                not_object,
            } => {
                write!(f, "{}: not a gangway config: ", file.display())?;
                if *not_object {
                    write!(f, "the top level must be a JSON object")?;
                } else if keys.is_empty() {
                    write!(f, "no top-level keys")?;
                } else {
                    write!(f, "found top-level keys {}", list_keys(keys))?;
                }
                write!(
                    f,
                    "; expected \"backends\" (gangway's own object form, or mcpware's list \
                     form) or \"mcpServers\" (Claude Desktop / Claude Code)"
                )?;
                if keys.iter().any(|k| k == "servers") {
                    write!(
                        f,
                        "; this looks like a VS Code mcp.json: rename \"servers\" to \"mcpServers\""
                    )?;
                } else if let Some((key, valid)) = keys
                    .iter()
                    .find_map(|k| closest(k, SHAPE_KEYS).map(|s| (k, s)))
                {
                    write!(f, "; did you mean \"{valid}\" instead of {}?", quoted(key))?;
                }
                Ok(())
            }
            ConfigError::WrongType {
                file,
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: {} must be {expected}, but it is {found}; change its value",
                file.display(),
                at(path)
            ),
            ConfigError::UnknownKey {
                file,
                path,
                key,
                valid,
                suggestion,
            } => {
                write!(
                    f,
                    "{}: {}: unknown key {}",
                    file.display(),
                    at(path),
                    quoted(key)
                )?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean \"{s}\"?")?;
                }
                match key.as_str() {
                    "mcpServers" if path.is_empty() => write!(
                        f,
                        " A file has either \"backends\" (gangway, mcpware) or \"mcpServers\" \
                         (Claude Desktop), not both; remove one."
                    )?,
                    "security_policy" if path.is_empty() => write!(
                        f,
                        " gangway has no equivalent of mcpware's security_policy; remove it."
                    )?,
                    _ => write!(
                        f,
                        " Valid keys here: {}. Unknown keys are rejected so that a typo \
                         cannot silently drop a setting.",
                        valid.join(", ")
                    )?,
                }
                Ok(())
            }
            ConfigError::MissingKey { file, path, key } => write!(
                f,
                "{}: {}: missing required key \"{key}\"; add it",
                file.display(),
                at(path)
            ),
            ConfigError::BadName { file, path, name } => write!(
                f,
                "{}: {}: invalid backend name {}; a name is 1 to {MAX_NAME_LEN} characters, \
                 each a letter, digit, '_' or '-'",
                file.display(),
                at(path),
                quoted(name)
            ),
            ConfigError::DuplicateName {
                file,
                path,
                name,
                first,
            } => write!(
                f,
                "{}: {}: backend name {} is already used at {first}; names must be unique, \
                 rename one of them",
                file.display(),
                at(path),
                quoted(name)
            ),
            ConfigError::EmptyCommand {
                file,
                path,
                after_expansion,
            } => {
                write!(f, "{}: {}: the command is empty", file.display(), at(path))?;
                if *after_expansion {
                    write!(
                        f,
                        " after expanding variables; set the variable it uses to the program \
                         to run"
                    )
                } else {
                    write!(f, "; give the program to run")
                }
            }
            ConfigError::BadNumber {
                file,
                path,
                value,
                rule,
            } => write!(
                f,
                "{}: {}: {value} is out of range; it must be {rule}",
                file.display(),
                at(path)
            ),
            ConfigError::BadValue {
                file,
                path,
                problem,
            } => write!(f, "{}: {}: {problem}", file.display(), at(path)),
            ConfigError::UnsetVariable {
                file,
                backend,
                path,
                var,
            } => {
                write!(f, "{}: {}: ", file.display(), at(path))?;
                match backend {
                    Some(backend) => write!(f, "backend \"{backend}\" uses")?,
                    None => write!(f, "this value uses")?,
                }
                write!(
                    f,
                    " ${{{var}}}, which is not set in gangway's environment; export {var} \
                     before starting gangway (clients such as Claude Desktop start it with a \
                     minimal environment), or give a default with ${{{var}:-default}}"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Which of the three shapes a backend came from; decides its valid keys.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Gangway,
    List,
    Desktop,
}

impl Shape {
    fn backend_keys(self) -> &'static [&'static str] {
        match self {
            Shape::Gangway => BACKEND_KEYS,
            Shape::List => LIST_BACKEND_KEYS,
            Shape::Desktop => DESKTOP_BACKEND_KEYS,
        }
    }
}

/// Per-backend defaults, set by the top level.
struct Defaults {
    timeout: Duration,
    startup_timeout: Duration,
    client_request_timeout: Duration,
    idle_timeout: Option<Duration>,
    expose: Expose,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            startup_timeout: Duration::from_secs(DEFAULT_STARTUP_TIMEOUT_SECS),
            client_request_timeout: Duration::from_secs(DEFAULT_CLIENT_REQUEST_TIMEOUT_SECS),
            idle_timeout: Some(Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS)),
            expose: Expose::default(),
        }
    }
}

struct Parser<'a> {
    file: &'a Path,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// See [`Config::notes`].
    notes: std::cell::RefCell<Vec<String>>,
}

impl Parser<'_> {
    fn root(&self, root: &Value) -> Result<Config, ConfigError> {
        let Value::Object(top) = root else {
            return Err(ConfigError::NoShape {
                file: self.file.to_path_buf(),
                keys: Vec::new(),
                not_object: true,
            });
        };
        let has_backends = top.contains_key("backends");
        let has_servers = top.contains_key("mcpServers");
        if has_backends
            || (!has_servers
                && (top.is_empty() || top.keys().any(|k| TOP_KEYS.contains(&k.as_str()))))
        {
            self.gangway_top(top)
        } else if has_servers {
            self.desktop_top(top)
        } else {
            Err(ConfigError::NoShape {
                file: self.file.to_path_buf(),
                keys: top.keys().cloned().collect(),
                not_object: false,
            })
        }
    }

    /// Shapes 1 and 2: they share the top level and differ in `backends`.
    fn gangway_top(&self, top: &Map<String, Value>) -> Result<Config, ConfigError> {
        self.check_keys("", top, TOP_KEYS)?;
        if let Some(v) = top.get("$schema") {
            self.string("$schema", v)?;
        }
        let expose = match top.get("expose") {
            None => Expose::Meta,
            Some(v) => self.expose("expose", v)?,
        };
        let catalog = self.catalog(top.get("catalog"))?;
        let separator = match top.get("separator") {
            None => DEFAULT_SEPARATOR.to_string(),
            Some(v) => self.name_part(
                "separator",
                v,
                MAX_SEPARATOR_LEN,
                "separator",
                "every exposed tool name",
            )?,
        };
        let mut defaults = Defaults {
            expose,
            ..Defaults::default()
        };
        if let Some(v) = top.get("timeout") {
            defaults.timeout = self.timeout("timeout", v)?;
        }
        if let Some(v) = top.get("startup_timeout") {
            defaults.startup_timeout = self.timeout("startup_timeout", v)?;
        }
        if let Some(v) = top.get("client_request_timeout") {
            defaults.client_request_timeout = self.timeout("client_request_timeout", v)?;
        }
        if let Some(v) = top.get("idle_timeout") {
            defaults.idle_timeout = self.idle_timeout("idle_timeout", v)?;
        }
        let max_message_bytes = match top.get("max_message_bytes") {
            None => DEFAULT_MAX_MESSAGE_BYTES,
            Some(v) => self.max_message_bytes("max_message_bytes", v)?,
        };
        let http = match top.get("http") {
            None => HttpConfig::default(),
            Some(v) => self.http(v)?,
        };
        let rate_limit = match top.get("rate_limit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(self.rate_limit(v)?),
        };
        let backends = match top.get("backends") {
            None => Vec::new(),
            Some(Value::Object(m)) => {
                self.object_backends("backends", m, Shape::Gangway, &defaults)?
            }
            Some(Value::Array(a)) => self.list_backends("backends", a, &defaults)?,
            Some(other) => {
                return Err(self.wrong_type(
                    "backends",
                    "an object of backends keyed by name (or an array, in mcpware's list form)",
                    other,
                ))
            }
        };
        Ok(Config {
            path: self.file.to_path_buf(),
            expose,
            max_message_bytes,
            catalog,
            separator,
            backends,
            notes: Vec::new(),
            http,
            rate_limit,
        })
    }

    /// Shape 3: only `mcpServers` is gangway's business.
    fn desktop_top(&self, top: &Map<String, Value>) -> Result<Config, ConfigError> {
        for key in top.keys().filter(|k| *k != "mcpServers") {
            if TOP_KEYS.contains(&key.as_str()) && key != "$schema" {
                // Likely meant for gangway, so louder than the application's own settings.
                log::warn!(
                    "{}: ignoring top-level {}: gangway settings are not read from a file with \
                     \"mcpServers\"; use gangway's own shape (\"backends\") to set them",
                    self.file.display(),
                    quoted(key)
                );
            } else {
                log::debug!(
                    "{}: ignoring top-level {} (not gangway's)",
                    self.file.display(),
                    quoted(key)
                );
            }
        }
        let backends = match top.get("mcpServers") {
            None => Vec::new(),
            Some(Value::Object(m)) => {
                self.object_backends("mcpServers", m, Shape::Desktop, &Defaults::default())?
            }
            Some(other) => {
                return Err(self.wrong_type(
                    "mcpServers",
                    "an object of servers keyed by name",
                    other,
                ))
            }
        };
        Ok(Config {
            path: self.file.to_path_buf(),
            expose: Expose::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            catalog: self.catalog(None)?,
            separator: DEFAULT_SEPARATOR.to_string(),
            backends,
            notes: Vec::new(),
            http: HttpConfig::default(),
            rate_limit: None,
        })
    }

    /// The top-level `rate_limit`: `{"requests_per_second": N, "burst": M}` (burst
    /// defaults to N rounded up).
    fn rate_limit(&self, v: &Value) -> Result<crate::ratelimit::RateLimit, ConfigError> {
        const KEYS: &[&str] = &["burst", "requests_per_second"];
        let Value::Object(m) = v else {
            return Err(self.wrong_type(
                "rate_limit",
                "an object: {\"requests_per_second\": 20, \"burst\": 40}",
                v,
            ));
        };
        self.check_keys("rate_limit", m, KEYS)?;
        let per_second = match m.get("requests_per_second").and_then(Value::as_f64) {
            Some(n) if n > 0.0 && n.is_finite() => n,
            _ => {
                return Err(self.bad_value(
                    "rate_limit.requests_per_second",
                    "must be a number greater than 0 (requests per second a client may send)"
                        .to_string(),
                ))
            }
        };
        let burst = match m.get("burst") {
            None => per_second.ceil().min(f64::from(u32::MAX)) as u32,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => n,
                _ => {
                    return Err(self.bad_value(
                        "rate_limit.burst",
                        "must be a whole number of requests, at least 1".to_string(),
                    ))
                }
            },
        };
        Ok(crate::ratelimit::RateLimit {
            per_second,
            burst: burst.max(1),
        })
    }

    /// The top-level `"http"` object.
    fn http(&self, v: &Value) -> Result<HttpConfig, ConfigError> {
        const KEYS: &[&str] = &[
            "allowed_origins",
            "listen",
            "max_connections",
            "max_sessions",
            "session_timeout",
            "tokens",
        ];
        let Value::Object(m) = v else {
            return Err(self.wrong_type(
                "http",
                "an object (listen, tokens, allowed_origins, ...)",
                v,
            ));
        };
        self.check_keys("http", m, KEYS)?;
        let mut http = HttpConfig::default();
        if let Some(v) = m.get("listen") {
            http.listen = Some(self.string("http.listen", v)?.to_string());
        }
        if let Some(v) = m.get("session_timeout") {
            http.session_timeout = Some(self.timeout("http.session_timeout", v)?);
        }
        for (key, slot) in [
            ("max_connections", &mut http.max_connections),
            ("max_sessions", &mut http.max_sessions),
        ] {
            if let Some(v) = m.get(key) {
                let path = format!("http.{key}");
                match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n > 0 => *slot = Some(n),
                    _ => {
                        return Err(self
                            .bad_value(&path, "must be a whole number greater than 0".to_string()))
                    }
                }
            }
        }
        for (key, list) in [
            ("tokens", &mut http.tokens),
            ("allowed_origins", &mut http.allowed_origins),
        ] {
            let Some(v) = m.get(key) else { continue };
            let Value::Array(items) = v else {
                return Err(self.wrong_type(&format!("http.{key}"), "an array of strings", v));
            };
            for (i, item) in items.iter().enumerate() {
                let path = format!("http.{key}[{i}]");
                let raw = self.string(&path, item)?;
                let mut found = Expansion::default();
                let text = self.expand(None, &path, raw, Some(self.lookup), &mut found)?;
                if let Some((var, _)) = found.unset.into_iter().next() {
                    return Err(ConfigError::UnsetVariable {
                        file: self.file.to_path_buf(),
                        backend: None,
                        path,
                        var,
                    });
                }
                if text.trim().is_empty() {
                    return Err(self.bad_value(
                        &path,
                        "is empty (after expanding variables); give a non-empty value or remove it"
                            .to_string(),
                    ));
                }
                list.push(text);
            }
        }
        Ok(http)
    }

    fn object_backends(
        &self,
        parent: &str,
        servers: &Map<String, Value>,
        shape: Shape,
        defaults: &Defaults,
    ) -> Result<Vec<BackendConfig>, ConfigError> {
        let mut out = Vec::with_capacity(servers.len());
        for (name, value) in servers {
            let path = child(parent, name);
            self.check_name(&path, name)?;
            if let Some(backend) = self.backend(name, &path, value, shape, defaults)? {
                out.push(backend);
            }
        }
        // serde_json's map is sorted unless another crate turns on `preserve_order`.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn list_backends(
        &self,
        parent: &str,
        items: &[Value],
        defaults: &Defaults,
    ) -> Result<Vec<BackendConfig>, ConfigError> {
        let mut out = Vec::with_capacity(items.len());
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (i, value) in items.iter().enumerate() {
            let path = index(parent, i);
            let Value::Object(obj) = value else {
                return Err(self.wrong_type(&path, "an object describing a backend", value));
            };
            self.check_keys(&path, obj, LIST_BACKEND_KEYS)?;
            let name_path = child(&path, "name");
            let name = match obj.get("name") {
                None => return Err(self.missing(&path, "name")),
                Some(v) => self.string(&name_path, v)?,
            };
            self.check_name(&name_path, name)?;
            if let Some(first) = seen.get(name) {
                return Err(ConfigError::DuplicateName {
                    file: self.file.to_path_buf(),
                    path: name_path,
                    name: name.to_string(),
                    first: first.clone(),
                });
            }
            seen.insert(name, name_path);
            if let Some(backend) = self.backend(name, &path, value, Shape::List, defaults)? {
                out.push(backend);
            }
        }
        Ok(out)
    }

    /// Validates one backend; `None` means it is skipped (a disabled non-stdio server).
    fn backend(
        &self,
        name: &str,
        path: &str,
        value: &Value,
        shape: Shape,
        defaults: &Defaults,
    ) -> Result<Option<BackendConfig>, ConfigError> {
        let Value::Object(obj) = value else {
            return Err(self.wrong_type(path, "an object describing a backend", value));
        };
        if shape == Shape::Desktop {
            // Checked before the keys: an http server's `url`/`headers` are not typos.
            let transport = self.transport(path, obj)?;
            let remote_ok = transport.as_deref().is_some_and(|t| {
                matches!(
                    t,
                    "http" | "streamable-http" | "streamableHttp" | "url" | "sse"
                ) && obj.contains_key("url")
            });
            if let Some(transport) = transport.filter(|_| !remote_ok) {
                if obj.get("disabled") == Some(&Value::Bool(true)) {
                    log::debug!(
                        "{}: skipping disabled server {name} ({} transport)",
                        self.file.display(),
                        quoted(&transport)
                    );
                    return Ok(None);
                }
                let reason = format!(
                    "it uses the {} transport, which gangway cannot run yet (it fronts stdio \
                     servers: a \"command\" it starts); keep using it from your MCP client \
                     directly, or remove it from this file",
                    quoted(&transport)
                );
                return Ok(Some(self.unrunnable(name, obj, defaults, reason)));
            }
            let remote_keys: &[&str] = if remote_ok {
                &["url", "headers", "type", "transportType"]
            } else {
                &[]
            };
            self.note_foreign_keys(path, obj, remote_keys);
        }
        let remote = !obj.contains_key("command") && obj.contains_key("url");
        let sse = remote && self.remote_transport(path, obj)?;
        if !remote && shape != Shape::Desktop {
            match obj.get("type") {
                None => {}
                Some(Value::String(t)) if t == "stdio" => {}
                Some(other) => {
                    return Err(self.bad_value(
                        &child(path, "type"),
                        format!("is {other}; a server gangway starts by \"command\" speaks \"stdio\" (\"http\" and \"sse\" go with a \"url\")"),
                    ))
                }
            }
        }
        let ignored: &[&str] = if shape == Shape::Desktop {
            if remote {
                &["url", "headers", "type", "transportType"]
            } else {
                FOREIGN_BACKEND_KEYS
            }
        } else {
            &[]
        };
        self.check_keys_ignoring(path, obj, shape.backend_keys(), ignored)?;
        if !remote && obj.contains_key("ca_file") {
            return Err(self.bad_value(
                &child(path, "ca_file"),
                "belongs to a server reached by an https \"url\" (the CA its certificate is \
                 checked against); a program gangway starts has no TLS connection, remove it"
                    .to_string(),
            ));
        }
        if remote {
            for key in ["args", "cwd", "env"] {
                if obj.contains_key(key) {
                    return Err(self.bad_value(
                        &child(path, key),
                        "belongs to a program gangway starts; a server reached by \"url\" has none (its HTTP headers go in \"headers\")".to_string(),
                    ));
                }
            }
        }

        let mut disabled = match obj.get("disabled") {
            None => false,
            Some(v) => self.boolean(&child(path, "disabled"), v)?,
        };

        // Each raw string keeps its own JSON path so expansion errors can point at it.
        let command_path = child(path, "command");
        let mut args: Vec<(&str, String)> = Vec::new();
        let (command, command_path) = match obj.get(if remote { "url" } else { "command" }) {
            None => return Err(self.missing(path, "command")),
            Some(Value::String(s)) if remote => (s.as_str(), child(path, "url")),
            Some(Value::String(s)) => (s.as_str(), command_path),
            Some(Value::Array(parts)) if shape == Shape::List => {
                let mut strings = Vec::with_capacity(parts.len());
                for (i, part) in parts.iter().enumerate() {
                    let part_path = index(&command_path, i);
                    strings.push((self.string(&part_path, part)?, part_path));
                }
                let mut strings = strings.into_iter();
                let Some(first) = strings.next() else {
                    return Err(ConfigError::EmptyCommand {
                        file: self.file.to_path_buf(),
                        path: command_path,
                        after_expansion: false,
                    });
                };
                args.extend(strings);
                first
            }
            Some(other) => {
                let expected = if shape == Shape::List {
                    "a string, or an array of strings with the program first"
                } else {
                    "a string naming the program (its arguments go in \"args\")"
                };
                return Err(self.wrong_type(&command_path, expected, other));
            }
        };
        if command.trim().is_empty() {
            return Err(ConfigError::EmptyCommand {
                file: self.file.to_path_buf(),
                path: command_path,
                after_expansion: false,
            });
        }

        // A remote backend's `ca_file` travels in `args` (see `BackendConfig::ca_file`),
        // expanded like the other fields.
        if let Some(v) = obj.get("ca_file").filter(|_| remote) {
            let ca_path = child(path, "ca_file");
            let s = self.string(&ca_path, v)?;
            if s.trim().is_empty() {
                return Err(self.bad_value(
                    &ca_path,
                    "is empty; remove it to trust only the platform's CA certificates".to_string(),
                ));
            }
            args.push((s, ca_path));
        }

        if let Some(v) = obj.get("args") {
            let args_path = child(path, "args");
            let Value::Array(items) = v else {
                return Err(self.wrong_type(&args_path, "an array of strings", v));
            };
            for (i, item) in items.iter().enumerate() {
                let item_path = index(&args_path, i);
                args.push((self.string(&item_path, item)?, item_path));
            }
        }

        let mut env: Vec<(&str, &str, String)> = Vec::new();
        let env_key = if remote { "headers" } else { "env" };
        if let Some(v) = obj.get(env_key) {
            let env_path = child(path, env_key);
            let Value::Object(vars) = v else {
                return Err(self.wrong_type(
                    &env_path,
                    "an object of strings keyed by variable name",
                    v,
                ));
            };
            for (key, value) in vars {
                let var_path = child(&env_path, key);
                if key.is_empty() || key.contains(['=', '\0']) {
                    return Err(self.bad_value(
                        &var_path,
                        "is not a usable environment variable name (it is empty or contains \
                         '=' or NUL); rename it"
                            .to_string(),
                    ));
                }
                env.push((key, self.string(&var_path, value)?, var_path));
            }
        }

        let cwd = match obj.get("cwd") {
            None => None,
            Some(v) => {
                let cwd_path = child(path, "cwd");
                let s = self.string(&cwd_path, v)?;
                if s.is_empty() {
                    return Err(self.bad_value(
                        &cwd_path,
                        "is empty; remove it to run the backend in gangway's own directory"
                            .to_string(),
                    ));
                }
                Some((s, cwd_path))
            }
        };

        let description = match obj.get("description") {
            None => None,
            Some(v) => Some(self.string(&child(path, "description"), v)?.to_string()),
        };
        let timeout = match obj.get("timeout") {
            None => defaults.timeout,
            Some(v) => self.timeout(&child(path, "timeout"), v)?,
        };
        let startup_timeout = match obj.get("startup_timeout") {
            None => defaults.startup_timeout,
            Some(v) => self.timeout(&child(path, "startup_timeout"), v)?,
        };
        let client_request_timeout = match obj.get("client_request_timeout") {
            None => defaults.client_request_timeout,
            Some(v) => self.timeout(&child(path, "client_request_timeout"), v)?,
        };
        let idle_timeout = match obj.get("idle_timeout") {
            None => defaults.idle_timeout,
            Some(v) => self.idle_timeout(&child(path, "idle_timeout"), v)?,
        };
        let prefix = match obj.get("prefix") {
            None => name.to_string(),
            Some(v) => self.name_part(
                &child(path, "prefix"),
                v,
                MAX_PREFIX_LEN,
                "prefix",
                "the backend's exposed tool names (\"\" for none)",
            )?,
        };
        let tools = match obj.get("tools") {
            None => ToolFilter::default(),
            Some(v) => self.tool_filter(&child(path, "tools"), v)?,
        };
        let expose = match obj.get("expose") {
            None => defaults.expose,
            Some(v) => self.expose(&child(path, "expose"), v)?,
        };
        let direct = match obj.get("direct") {
            None => Vec::new(),
            Some(v) => self.globs(&child(path, "direct"), v)?,
        };
        let scope = match obj.get("scope") {
            None => Scope::Shared,
            Some(v) => self.scope(&child(path, "scope"), v)?,
        };
        let keep_warm = match obj.get("keep_warm") {
            None => 0,
            Some(v) => self.keep_warm(&child(path, "keep_warm"), v, scope)?,
        };

        let mut disabled_reason = None;
        if shape == Shape::Desktop && !disabled {
            let raw_args: Vec<String> = args.iter().map(|(a, _)| a.to_string()).collect();
            let why = if is_self(command) {
                Some("it runs gangway itself")
            } else if crate::docker::runs_gangway_image(command, &raw_args) {
                Some("it runs gangway's own container image")
            } else {
                None
            };
            if let Some(why) = why {
                disabled = true;
                disabled_reason = Some(format!(
                    "{why}, which would start gangway recursively when gangway reads this \
                     file; give gangway a file without its own entry, or use gangway's own \
                     config shape (\"backends\") to nest gangway deliberately"
                ));
            }
        }

        // Expands every field; with `lookup` None the text is kept as written.
        let expand_all = |lookup: Lookup<'_>, found: &mut Expansion| {
            let mut field = |raw: &str, p: &str| self.expand(Some(name), p, raw, lookup, found);
            let command_text = field(command, &command_path)?;
            let args = args
                .iter()
                .map(|(raw, p)| field(raw, p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut env = env
                .iter()
                .map(|(k, raw, p)| Ok((k.to_string(), field(raw, p)?)))
                .collect::<Result<Vec<_>, ConfigError>>()?;
            env.sort_by(|a, b| a.0.cmp(&b.0));
            let cwd = match &cwd {
                None => None,
                Some((raw, p)) => Some(PathBuf::from(field(raw, p)?)),
            };
            Ok::<_, ConfigError>((command_text, args, env, cwd))
        };
        let mut found = Expansion::default();
        let lookup: Lookup<'_> = if disabled { None } else { Some(self.lookup) };
        let mut expanded = expand_all(lookup, &mut found)?;
        if !disabled && !found.unset.is_empty() {
            // One backend's missing secret must not take the others down: this one is
            // disabled with the reason, and keeps its text as written.
            disabled = true;
            disabled_reason = Some(unset_reason(&found.unset));
            expanded = expand_all(None, &mut Expansion::default())?;
        }
        let (command_text, mut args, env, cwd) = expanded;
        if !disabled && command_text.trim().is_empty() {
            return Err(ConfigError::EmptyCommand {
                file: self.file.to_path_buf(),
                path: command_path,
                after_expansion: true,
            });
        }
        if remote && !disabled {
            if let Err(e) = crate::http::client::Url::parse(&command_text) {
                return Err(self.bad_value(
                    &command_path,
                    format!("is not a URL gangway can reach: {e}"),
                ));
            }
            if let Some(ca) = args.first_mut() {
                let ca_path = child(path, "ca_file");
                let file = Path::new(ca.as_str());
                let file = if file.is_absolute() {
                    file.to_path_buf()
                } else {
                    self.file.parent().unwrap_or(Path::new("")).join(file)
                };
                // Read now so a missing or garbled file is a config error, not a failed
                // backend later; the backend reads it again when it starts.
                crate::runtime::tls::read_ca_file(&file)
                    .map_err(|e| self.bad_value(&ca_path, e))?;
                *ca = file.into_os_string().into_string().map_err(|_| {
                    self.bad_value(
                        &ca_path,
                        "resolves to a path that is not UTF-8; move the file to a UTF-8 path"
                            .to_string(),
                    )
                })?;
            }
        }
        let cwd = cwd.map(|dir| {
            if disabled || dir.is_absolute() {
                dir
            } else {
                let base = self.file.parent().unwrap_or(Path::new(""));
                base.join(dir)
            }
        });
        let mut vars = found.refs;
        vars.sort();
        vars.dedup();

        Ok(Some(BackendConfig {
            name: name.to_string(),
            command: command_text,
            args,
            env,
            cwd,
            description,
            timeout,
            startup_timeout,
            client_request_timeout,
            idle_timeout,
            disabled,
            prefix,
            tools,
            expose,
            direct,
            scope,
            keep_warm,
            remote,
            sse,
            disabled_reason,
            env_remove: Vec::new(),
            vars,
        }))
    }

    /// Whether a server reached by URL speaks the HTTP+SSE transport of 2024-11-05: its
    /// `type` (or Cline's `transportType`) is "sse". Any other value than "http",
    /// "streamable-http", "streamableHttp" or "stdio" is refused with the ones accepted.
    fn remote_transport(&self, path: &str, obj: &Map<String, Value>) -> Result<bool, ConfigError> {
        for key in ["type", "transportType"] {
            match obj.get(key) {
                None => {}
                Some(Value::String(t)) if t == "sse" => return Ok(true),
                Some(Value::String(t))
                    if matches!(t.as_str(), "http" | "streamable-http" | "streamableHttp") => {}
                Some(other) => {
                    return Err(self.bad_value(
                        &child(path, key),
                        format!(
                            "is {other}; a server reached by \"url\" takes \"http\" (Streamable HTTP, the default) or \"sse\" (the HTTP+SSE transport of 2024-11-05)"
                        ),
                    ))
                }
            }
        }
        Ok(false)
    }

    /// The transport a Claude Desktop-shape server asks for when it is not stdio: its
    /// `type` or `transportType` (Cline), or "url"/"httpUrl" for a server with a URL and
    /// no `command`.
    fn transport(
        &self,
        path: &str,
        obj: &Map<String, Value>,
    ) -> Result<Option<String>, ConfigError> {
        for key in ["type", "transportType"] {
            match obj.get(key) {
                None => {}
                Some(Value::String(t)) if t == "stdio" => {}
                Some(Value::String(t)) => return Ok(Some(t.clone())),
                Some(other) => {
                    return Err(self.wrong_type(&child(path, key), "the string \"stdio\"", other))
                }
            }
        }
        if obj.contains_key("command") {
            return Ok(None);
        }
        Ok(["url", "httpUrl"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .map(str::to_string))
    }

    /// A server gangway cannot run, disabled with `reason`; only its name, description
    /// and timeouts are read (the rest belongs to the client that can run it).
    fn unrunnable(
        &self,
        name: &str,
        obj: &Map<String, Value>,
        defaults: &Defaults,
        reason: String,
    ) -> BackendConfig {
        BackendConfig {
            name: name.to_string(),
            command: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            description: obj
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            timeout: defaults.timeout,
            startup_timeout: defaults.startup_timeout,
            client_request_timeout: defaults.client_request_timeout,
            idle_timeout: defaults.idle_timeout,
            disabled: true,
            prefix: name.to_string(),
            tools: ToolFilter::default(),
            expose: defaults.expose,
            direct: Vec::new(),
            scope: Scope::Shared,
            keep_warm: 0,
            remote: false,
            sse: false,
            disabled_reason: Some(reason),
            env_remove: Vec::new(),
            vars: Vec::new(),
        }
    }

    /// Notes the keys of other MCP clients in server `path` (see [`Config::notes`]).
    fn note_foreign_keys(&self, path: &str, obj: &Map<String, Value>, used: &[&str]) {
        let foreign: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| FOREIGN_BACKEND_KEYS.contains(k) && !used.contains(k))
            .collect();
        if foreign.is_empty() {
            return;
        }
        let keys: Vec<String> = foreign.iter().map(|k| quoted(k)).collect();
        self.notes.borrow_mut().push(format!(
            "{path}: ignoring {} (another MCP client's setting, not gangway's)",
            keys.join(", ")
        ));
    }

    /// Expands one field of `backend` (`None` for a top-level setting) with `lookup`
    /// (`None` keeps `raw` as written), recording what it references in `found`.
    fn expand(
        &self,
        backend: Option<&str>,
        path: &str,
        raw: &str,
        lookup: Lookup<'_>,
        found: &mut Expansion,
    ) -> Result<String, ConfigError> {
        let text = expand_vars(raw, lookup, path, found);
        if text.contains('\0') {
            // The OS takes C strings: a NUL would make the spawn (or the file's opening)
            // fail, far from the cause.
            let how = if raw.contains('\0') {
                ""
            } else {
                " after expanding variables"
            };
            let use_ = if backend.is_some() {
                "be passed to a program"
            } else {
                "be part of a file path"
            };
            return Err(self.bad_value(
                path,
                format!("contains a NUL character{how}, which cannot {use_}; remove it"),
            ));
        }
        Ok(text)
    }

    /// The top-level `catalog` (`None` when absent): the file the tool catalog is kept in.
    fn catalog(&self, v: Option<&Value>) -> Result<Option<PathBuf>, ConfigError> {
        const PATH: &str = "catalog";
        match v {
            None | Some(Value::Bool(true)) => Ok(self.default_catalog()),
            Some(Value::Bool(false) | Value::Null) => Ok(None),
            Some(Value::String(raw)) => {
                if raw.is_empty() {
                    return Err(self.bad_value(
                        PATH,
                        "is empty; give a file path, true for the default place, or false to \
                         keep no catalog"
                            .to_string(),
                    ));
                }
                let mut found = Expansion::default();
                let text = self.expand(None, PATH, raw, Some(self.lookup), &mut found)?;
                if let Some((var, _)) = found.unset.into_iter().next() {
                    return Err(ConfigError::UnsetVariable {
                        file: self.file.to_path_buf(),
                        backend: None,
                        path: PATH.to_string(),
                        var,
                    });
                }
                let file = PathBuf::from(text);
                if file.as_os_str().is_empty() {
                    return Err(self.bad_value(
                        PATH,
                        "is empty after expanding variables; set the variable it uses to a \
                         file path, or set \"catalog\" to false to keep no catalog"
                            .to_string(),
                    ));
                }
                if file.is_absolute() {
                    Ok(Some(file))
                } else {
                    let base = self.file.parent().unwrap_or(Path::new(""));
                    Ok(Some(base.join(file)))
                }
            }
            Some(other) => Err(self.wrong_type(
                PATH,
                "a file path, true (the default place) or false (no catalog)",
                other,
            )),
        }
    }

    /// Where the catalog goes when the file does not say: the XDG cache directory.
    fn default_catalog(&self) -> Option<PathBuf> {
        // A NUL could never reach a file name; such a variable is as good as unset.
        let usable = |v: &String| !v.is_empty() && !v.contains('\0');
        // The XDG base directory spec says a relative value is to be ignored.
        if let Some(cache) =
            (self.lookup)("XDG_CACHE_HOME").filter(|v| usable(v) && Path::new(v).is_absolute())
        {
            return Some(Path::new(&cache).join("gangway").join("catalog.json"));
        }
        if let Some(home) = (self.lookup)("HOME").filter(usable) {
            return Some(
                Path::new(&home)
                    .join(".cache")
                    .join("gangway")
                    .join("catalog.json"),
            );
        }
        log::warn!(
            "{}: the tool catalog is off: neither XDG_CACHE_HOME (an absolute path) nor HOME \
             is set in gangway's environment; set one of them, or set \"catalog\" to a file \
             path (or to false to turn the catalog off without this warning)",
            self.file.display()
        );
        None
    }

    /// `keep_warm`: a boolean, or for a session-scoped backend a number of spare
    /// processes (at most 16).
    fn keep_warm(&self, path: &str, v: &Value, scope: Scope) -> Result<u32, ConfigError> {
        match (v, scope) {
            (Value::Bool(b), _) => Ok(u32::from(*b)),
            (Value::Number(n), Scope::Session) => match n.as_u64() {
                Some(k) if k <= 16 => Ok(k as u32),
                _ => Err(self.bad_value(path, "must be true, false or a number of spare processes from 0 to 16".to_string())),
            },
            (Value::Number(_), Scope::Shared) => Err(self.bad_value(
                path,
                "is a number only for a backend with \"scope\": \"session\" (spare processes); use true or false".to_string(),
            )),
            (other, _) => Err(self.wrong_type(path, "true, false, or a number of spare processes", other)),
        }
    }

    fn scope(&self, path: &str, v: &Value) -> Result<Scope, ConfigError> {
        match self.string(path, v)? {
            "shared" => Ok(Scope::Shared),
            "session" => Ok(Scope::Session),
            other => Err(self.bad_value(
                path,
                format!(
                    "{} is not a valid value; use \"shared\" (one process for every client) or \"session\" (one per client)",
                    quoted(other)
                ),
            )),
        }
    }

    fn expose(&self, path: &str, v: &Value) -> Result<Expose, ConfigError> {
        match self.string(path, v)? {
            "meta" => Ok(Expose::Meta),
            "tools" => Ok(Expose::Tools),
            "both" => Ok(Expose::Both),
            other => Err(self.bad_value(
                path,
                format!(
                    "{} is not a valid value; use \"meta\", \"tools\" or \"both\"",
                    quoted(other)
                ),
            )),
        }
    }

    /// A `separator` or `prefix`: up to `max` characters of `A-Z a-z 0-9 _ -`, since it goes
    /// into exposed tool names; `what` names it and `goes_into` says where, for the error.
    fn name_part(
        &self,
        path: &str,
        v: &Value,
        max: usize,
        what: &str,
        goes_into: &str,
    ) -> Result<String, ConfigError> {
        let s = self.string(path, v)?;
        if is_name_text(s, max) {
            return Ok(s.to_string());
        }
        Err(self.bad_value(
            path,
            format!(
                "{} is not a valid {what}; use 0 to {max} characters, each a letter, digit, \
                 '_' or '-', because it goes into {goes_into}, and clients accept only names \
                 matching ^[A-Za-z0-9_-]{{1,64}}$",
                quoted(s)
            ),
        ))
    }

    /// A backend's `tools` object.
    fn tool_filter(&self, path: &str, v: &Value) -> Result<ToolFilter, ConfigError> {
        let Value::Object(obj) = v else {
            return Err(self.wrong_type(
                path,
                "an object with \"allow\" and/or \"deny\" arrays of globs",
                v,
            ));
        };
        self.check_keys(path, obj, TOOLS_KEYS)?;
        let mut filter = ToolFilter::default();
        if let Some(v) = obj.get("allow") {
            filter.allow = self.globs(&child(path, "allow"), v)?;
        }
        if let Some(v) = obj.get("deny") {
            filter.deny = self.globs(&child(path, "deny"), v)?;
        }
        Ok(filter)
    }

    /// An array of glob strings, compiled.
    fn globs(&self, path: &str, v: &Value) -> Result<Vec<glob::Pattern>, ConfigError> {
        let Value::Array(items) = v else {
            return Err(self.wrong_type(path, "an array of glob strings such as \"get_*\"", v));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let text = self.string(&item_path, item)?;
            match glob::Pattern::new(text) {
                Ok(pattern) => out.push(pattern),
                Err(e) => {
                    return Err(self.bad_value(
                        &item_path,
                        format!(
                            "{} is not a valid glob ({e}); fix it: '*' matches any run of \
                             characters, '?' one character, \"[abc]\" one of a set, and \
                             \"[*]\" a literal '*'",
                            quoted(text)
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }

    fn check_keys(
        &self,
        path: &str,
        obj: &Map<String, Value>,
        valid: &'static [&'static str],
    ) -> Result<(), ConfigError> {
        self.check_keys_ignoring(path, obj, valid, &[])
    }

    /// Like `check_keys`, with `ignored` keys allowed too (not suggested for typos).
    fn check_keys_ignoring(
        &self,
        path: &str,
        obj: &Map<String, Value>,
        valid: &'static [&'static str],
        ignored: &[&str],
    ) -> Result<(), ConfigError> {
        let unknown = |k: &&String| !valid.contains(&k.as_str()) && !ignored.contains(&k.as_str());
        match obj.keys().find(unknown) {
            None => Ok(()),
            Some(key) => Err(ConfigError::UnknownKey {
                file: self.file.to_path_buf(),
                path: path.to_string(),
                key: key.clone(),
                valid,
                suggestion: closest(key, valid),
            }),
        }
    }

    fn check_name(&self, path: &str, name: &str) -> Result<(), ConfigError> {
        if !name.is_empty() && is_name_text(name, MAX_NAME_LEN) {
            Ok(())
        } else {
            Err(ConfigError::BadName {
                file: self.file.to_path_buf(),
                path: path.to_string(),
                name: name.to_string(),
            })
        }
    }

    fn string<'v>(&self, path: &str, v: &'v Value) -> Result<&'v str, ConfigError> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(path, "a string", other)),
        }
    }

    fn boolean(&self, path: &str, v: &Value) -> Result<bool, ConfigError> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong_type(path, "true or false", other)),
        }
    }

    /// A non-negative, finite number of seconds (fractions allowed).
    fn seconds(&self, path: &str, v: &Value, rule: &'static str) -> Result<f64, ConfigError> {
        let Value::Number(n) = v else {
            return Err(self.wrong_type(path, "a number of seconds", v));
        };
        match n.as_f64() {
            Some(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
            _ => Err(self.bad_number(path, n, rule)),
        }
    }

    fn timeout(&self, path: &str, v: &Value) -> Result<Duration, ConfigError> {
        const RULE: &str = "a number of seconds greater than 0 (fractions such as 0.5 are allowed)";
        let secs = self.seconds(path, v, RULE)?;
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.bad_number_value(path, v, RULE)),
        }
    }

    fn idle_timeout(&self, path: &str, v: &Value) -> Result<Option<Duration>, ConfigError> {
        const RULE: &str =
            "a number of seconds, 0 (never stop an idle backend) or more, and not absurdly large or small";
        let secs = self.seconds(path, v, RULE)?;
        if secs == 0.0 {
            return Ok(None);
        }
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(self.bad_number_value(path, v, RULE)),
        }
    }

    fn max_message_bytes(&self, path: &str, v: &Value) -> Result<usize, ConfigError> {
        const RULE: &str = "a whole number of bytes, at least 1024";
        let Value::Number(n) = v else {
            return Err(self.wrong_type(path, "a whole number of bytes", v));
        };
        match n.as_u64().map(usize::try_from) {
            Some(Ok(bytes)) if bytes >= MIN_MAX_MESSAGE_BYTES => Ok(bytes),
            _ => Err(self.bad_number(path, n, RULE)),
        }
    }

    fn bad_number(&self, path: &str, n: &serde_json::Number, rule: &'static str) -> ConfigError {
        ConfigError::BadNumber {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            value: n.to_string(),
            rule,
        }
    }

    fn bad_number_value(&self, path: &str, v: &Value, rule: &'static str) -> ConfigError {
        ConfigError::BadNumber {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            value: v.to_string(),
            rule,
        }
    }

    fn bad_value(&self, path: &str, problem: String) -> ConfigError {
        ConfigError::BadValue {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            problem,
        }
    }

    fn missing(&self, path: &str, key: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            key,
        }
    }

    fn wrong_type(&self, path: &str, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            file: self.file.to_path_buf(),
            path: path.to_string(),
            expected,
            found: type_name(found),
        }
    }
}

/// How variables are looked up; `None` keeps the text as written.
type Lookup<'a> = Option<&'a dyn Fn(&str) -> Option<String>>;

/// What expanding fields found: the variables referenced, and those unset without a
/// default (with the JSON path of the field).
#[derive(Default)]
struct Expansion {
    refs: Vec<String>,
    unset: Vec<(String, String)>,
}

/// Expands `${NAME}` and `${NAME:-default}` in `raw` (the field at `path`), where NAME is
/// a valid variable name, and turns the escape `$${` into a literal `${`. Everything else
/// is kept as written: `$$`, a lone `$` or `${`, `${}` and `${1X}` are literal, so values
/// written for clients that expand nothing (Claude Desktop) pass unchanged. Without
/// `lookup` the text is returned as written; references are recorded in `found` either way.
fn expand_vars(raw: &str, lookup: Lookup<'_>, path: &str, found: &mut Expansion) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let at = &rest[dollar..];
        if let Some(tail) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        if let Some((name, default, tail)) = var_reference(at) {
            found.refs.push(name.to_string());
            match lookup.map(|l| l(name)) {
                None => out.push_str(&at[..at.len() - tail.len()]),
                Some(value) => match (value, default) {
                    (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => {
                        found.unset.push((name.to_string(), path.to_string()));
                        out.push_str(&at[..at.len() - tail.len()]);
                    }
                },
            }
            rest = tail;
        } else {
            out.push('$');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    if lookup.is_some() {
        out
    } else {
        raw.to_string()
    }
}

/// The reference `${NAME}` or `${NAME:-default}` at the start of `s` (which starts with
/// `$`): its name, its default and the text after it; `None` when `s` does not start with
/// a well-formed reference.
fn var_reference(s: &str) -> Option<(&str, Option<&str>, &str)> {
    let body_and_tail = s.strip_prefix("${")?;
    let end = body_and_tail.find('}')?;
    let body = &body_and_tail[..end];
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    is_var_name(name).then_some((name, default, &body_and_tail[end + 1..]))
}

/// Why a backend whose variables are unset is disabled (names and paths only, no value).
fn unset_reason(unset: &[(String, String)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in unset {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let refs: Vec<String> = names.iter().map(|n| format!("${{{n}}}")).collect();
    let (verb, pronoun) = if names.len() == 1 {
        ("is", "it")
    } else {
        ("are", "them")
    };
    let first = names.first().copied().unwrap_or("VAR");
    format!(
        "{} (in {}) {verb} not set in gangway's environment; set {pronoun} in the \"env\" of \
         gangway's own entry in your MCP client's config (a client starts gangway with a \
         minimal environment), or give a default with ${{{first}:-default}}",
        refs.join(", "),
        unset
            .iter()
            .map(|(_, p)| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Variables every backend inherits even when a `${VAR}` references them: the basics a
/// process needs to run at all (the MCP SDKs' default inherited list), never secrets.
pub const ALWAYS_INHERITED: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// Sets each backend's `env_remove`: the variables some backend's `${VAR}` references
/// (except [`ALWAYS_INHERITED`]) that this backend does not reference itself, so a secret
/// pulled in for one backend is never inherited by another.
fn isolate(backends: &mut [BackendConfig]) {
    let mut referenced: Vec<String> = backends
        .iter()
        .flat_map(|b| b.vars.iter())
        .filter(|v| !ALWAYS_INHERITED.contains(&v.as_str()))
        .cloned()
        .collect();
    referenced.sort();
    referenced.dedup();
    for b in backends {
        b.env_remove = referenced
            .iter()
            .filter(|v| !b.vars.contains(v))
            .cloned()
            .collect();
    }
}

/// Whether `s` is at most `max` characters, each a letter, digit, '_' or '-': the
/// characters allowed in exposed tool names.
fn is_name_text(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `command` runs gangway itself (by file name; a wrapper such as `docker` is not
/// seen through).
fn is_self(command: &str) -> bool {
    Path::new(command)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| SELF_NAMES.contains(&n))
}

fn json_error(file: &Path, e: &serde_json::Error) -> ConfigError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    // serde_json appends the position, which the message already states.
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ConfigError::Json {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// How a JSON value's type reads in an error message ("a string", "an array", ...).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The valid key `key` is most likely a typo of: edit distance at most 2, ignoring case,
/// and less than the key's own length (so "ab" does not suggest "args").
fn closest(key: &str, valid: &[&'static str]) -> Option<&'static str> {
    if key.chars().count() > 64 {
        return None;
    }
    let key_lower = key.to_lowercase();
    let key_len = key_lower.chars().count();
    valid
        .iter()
        .map(|v| (edit_distance(&key_lower, &v.to_lowercase()), *v))
        .filter(|(d, _)| *d <= 2 && *d < key_len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance, counted in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `s` quoted and escaped for a message, shortened if long: input may be arbitrary text.
fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

fn list_keys(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut list: Vec<String> = keys.iter().take(SHOWN).map(|k| quoted(k)).collect();
    if keys.len() > SHOWN {
        list.push(format!("and {} more", keys.len() - SHOWN));
    }
    list.join(", ")
}

/// A JSON path for messages; the top level has the empty path.
fn at(path: &str) -> &str {
    if path.is_empty() {
        "top level"
    } else {
        path
    }
}

fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
    if plain && parent.is_empty() {
        key.to_string()
    } else if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", quoted(key))
    }
}

fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/gangway/test.json"), &no_env)
    }

    fn parse_with(
        text: &str,
        vars: &'static [(&'static str, &'static str)],
    ) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/gangway/test.json"), &env_of(vars))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn err_with(text: &str, vars: &'static [(&'static str, &'static str)]) -> String {
        match parse_with(text, vars) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_has(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{part:?} not in message: {message}");
        }
    }

    fn backend<'c>(c: &'c Config, name: &str) -> &'c BackendConfig {
        match c.backends.iter().find(|b| b.name == name) {
            Some(b) => b,
            None => panic!("no backend {name} in {c:?}"),
        }
    }

    #[test]
    fn gangway_shape_with_all_fields() {
        let c = parse_with(
            r#"{
              "$schema": "https://example.invalid/gangway.schema.json",
              "expose": "both",
              "timeout": 12,
              "startup_timeout": 300,
              "idle_timeout": 0,
              "max_message_bytes": 2048,
              "backends": {
                "zeta": {"command": "z"},
                "github": {
                  "command": "docker",
                  "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
                  "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GH_TOKEN}", "B": "plain"},
                  "cwd": "/srv/work",
                  "description": "GitHub",
                  "timeout": 0.5,
                  "startup_timeout": 7,
                  "idle_timeout": 60,
                  "disabled": false
                },
                "off": {"command": "x", "disabled": true}
              }
            }"#,
            &[("GH_TOKEN", "ghp_secret")],
        )
        .unwrap();
        assert_eq!(c.path, Path::new("/etc/gangway/test.json"));
        assert_eq!(c.expose, Expose::Both);
        assert_eq!(c.max_message_bytes, 2048);
        let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["github", "off", "zeta"],
            "object forms are sorted by name"
        );
        let enabled: Vec<&str> = c.enabled().map(|b| b.name.as_str()).collect();
        assert_eq!(enabled, ["github", "zeta"]);

        let g = backend(&c, "github");
        assert_eq!(g.command, "docker");
        assert_eq!(g.args.len(), 6);
        assert_eq!(g.args[5], "ghcr.io/github/github-mcp-server");
        assert_eq!(
            g.env,
            vec![
                ("B".to_string(), "plain".to_string()),
                (
                    "GITHUB_PERSONAL_ACCESS_TOKEN".to_string(),
                    "ghp_secret".to_string()
                )
            ]
        );
        assert_eq!(g.cwd.as_deref(), Some(Path::new("/srv/work")));
        assert_eq!(g.description.as_deref(), Some("GitHub"));
        assert_eq!(g.timeout, Duration::from_millis(500));
        assert_eq!(g.startup_timeout, Duration::from_secs(7));
        assert_eq!(g.idle_timeout, Some(Duration::from_secs(60)));
        assert!(!g.disabled);

        let z = backend(&c, "zeta");
        assert_eq!(
            z.timeout,
            Duration::from_secs(12),
            "top-level timeout is the default"
        );
        assert_eq!(z.startup_timeout, Duration::from_secs(300));
        assert_eq!(z.idle_timeout, None, "top-level idle_timeout 0 means never");
        assert!(backend(&c, "off").disabled);
    }

    #[test]
    fn mcpware_list_shape_with_all_fields() {
        // The shape of mcpware's README example: `command` is an array, program first.
        let c = parse_with(
            r#"{
              "backends": [
                {
                  "name": "github",
                  "command": ["docker", "run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
                  "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"},
                  "description": "GitHub MCP Server",
                  "timeout": 30
                },
                {
                  "name": "example",
                  "command": ["npx", "-y", "@modelcontextprotocol/server-memory"],
                  "description": "Example Memory MCP Server",
                  "timeout": 45
                },
                {
                  "name": "all-fields",
                  "command": ["python", "-u"],
                  "args": ["server.py"],
                  "cwd": "relative/dir",
                  "idle_timeout": 7,
                  "disabled": false
                },
                {"name": "a_string", "command": "node", "args": ["index.js"]}
              ],
              "expose": "tools",
              "idle_timeout": 100
            }"#,
            &[("GITHUB_PERSONAL_ACCESS_TOKEN", "tok")],
        )
        .unwrap();
        let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["github", "example", "all-fields", "a_string"],
            "list form keeps file order"
        );
        assert_eq!(c.expose, Expose::Tools);

        let g = &c.backends[0];
        assert_eq!(g.command, "docker");
        assert_eq!(
            g.args,
            [
                "run",
                "-i",
                "--rm",
                "-e",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghcr.io/github/github-mcp-server"
            ]
        );
        assert_eq!(
            g.env,
            vec![(
                "GITHUB_PERSONAL_ACCESS_TOKEN".to_string(),
                "tok".to_string()
            )]
        );
        assert_eq!(g.timeout, Duration::from_secs(30));
        assert_eq!(g.idle_timeout, Some(Duration::from_secs(100)));

        let e = &c.backends[1];
        assert_eq!(e.command, "npx");
        assert_eq!(e.description.as_deref(), Some("Example Memory MCP Server"));
        assert_eq!(e.timeout, Duration::from_secs(45));

        let a = &c.backends[2];
        assert_eq!(a.command, "python");
        assert_eq!(
            a.args,
            ["-u", "server.py"],
            "args follow the command array's arguments"
        );
        assert_eq!(
            a.cwd.as_deref(),
            Some(Path::new("/etc/gangway/relative/dir"))
        );
        assert_eq!(a.idle_timeout, Some(Duration::from_secs(7)));

        let s = &c.backends[3];
        assert_eq!(
            (s.command.as_str(), s.args.as_slice()),
            ("node", &["index.js".to_string()][..])
        );
    }

    #[test]
    fn claude_desktop_shape() {
        let c = parse_with(
            r#"{
              "globalShortcut": "Ctrl+Space",
              "preferences": {"menuBarEnabled": false},
              "mcpServers": {
                "filesystem": {
                  "command": "npx",
                  "args": ["-y", "@modelcontextprotocol/server-filesystem", "${HOME}/Desktop"],
                  "env": {"DEBUG": "1"}
                },
                "code": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"],
                         "cwd": "/repo", "description": "git", "timeout": 5, "idle_timeout": 0, "disabled": true},
                "remote": {"type": "http", "url": "https://example.invalid/mcp", "headers": {"X": "y"}, "disabled": true},
                "cursorish": {"url": "https://example.invalid/sse", "disabled": true}
              }
            }"#,
            &[("HOME", "/home/u")],
        )
        .unwrap();
        let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["code", "cursorish", "filesystem", "remote"],
            "servers reached by URL are backends too (disabled here, as the file says)"
        );
        assert!(backend(&c, "remote").remote && backend(&c, "remote").disabled);
        assert_eq!(c.expose, Expose::Meta);
        assert_eq!(c.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        let f = backend(&c, "filesystem");
        assert_eq!(f.args[2], "/home/u/Desktop");
        assert_eq!(f.env, vec![("DEBUG".to_string(), "1".to_string())]);
        assert_eq!(f.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(
            f.startup_timeout,
            Duration::from_secs(DEFAULT_STARTUP_TIMEOUT_SECS)
        );
        let code = backend(&c, "code");
        assert!(code.disabled);
        assert_eq!(code.timeout, Duration::from_secs(5));
        assert_eq!(code.idle_timeout, None);
    }

    #[test]
    fn claude_desktop_ignores_gangway_top_level_settings() {
        let c =
            parse(r#"{"mcpServers": {"a": {"command": "x"}}, "expose": "tools", "timeout": 1}"#)
                .unwrap();
        assert_eq!(c.expose, Expose::Meta);
        assert_eq!(
            c.backends[0].timeout,
            Duration::from_secs(DEFAULT_TIMEOUT_SECS)
        );
    }

    #[test]
    fn claude_desktop_disables_servers_of_other_transports_and_keeps_the_rest() {
        let c = parse(
            r#"{"mcpServers": {
                "sse": {"type": "sse", "url": "https://x.invalid", "headers": {"A": "b"}},
                "url": {"url": "https://x.invalid", "description": "remote"},
                "gem": {"httpUrl": "https://x.invalid"},
                "cline": {"transportType": "sse", "url": "https://x.invalid"},
                "off": {"type": "http", "url": "https://x.invalid", "disabled": true},
                "local": {"command": "npx", "type": "stdio"}}}"#,
        )
        .unwrap();
        let url = backend(&c, "url");
        assert!(url.remote, "a URL without a type is Streamable HTTP");
        assert!(!url.disabled, "https is reachable");
        assert_eq!(url.disabled_reason, None);
        assert_eq!(url.command, "https://x.invalid");
        for name in ["sse", "cline"] {
            let b = backend(&c, name);
            assert!(b.remote && b.sse, "{name}: the HTTP+SSE transport");
        }
        assert!(!url.sse, "a URL without a type is Streamable HTTP");
        let gem = backend(&c, "gem");
        assert!(gem.disabled, "Gemini's httpUrl");
        let reason = gem.disabled_reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("\"httpUrl\"") && reason.contains("cannot run yet"),
            "{reason}"
        );
        assert_eq!(backend(&c, "url").description.as_deref(), Some("remote"));
        assert!(
            backend(&c, "off").disabled && backend(&c, "off").remote,
            "a disabled http server is listed, disabled"
        );
        assert!(!backend(&c, "local").disabled);
        assert_eq!(
            c.enabled().count(),
            4,
            "local, the https server and the two sse ones"
        );
        let m = err(r#"{"mcpServers": {"remote": {"type": 3, "command": "x"}}}"#);
        assert_has(&m, &["mcpServers.remote.type", "\"stdio\"", "a number"]);
    }

    #[test]
    fn other_clients_keys_are_ignored_with_a_note_and_typos_stay_errors() {
        let c = parse(
            r#"{"mcpServers": {
                "cline": {"command": "x", "autoApprove": ["a"], "disabled": false, "timeout": 60},
                "roo": {"command": "x", "alwaysAllow": [], "watchPaths": [], "disabledTools": []}}}"#,
        )
        .unwrap();
        assert_eq!(c.enabled().count(), 2);
        assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
        assert_has(
            &c.notes[0],
            &["mcpServers.cline", "\"autoApprove\"", "another MCP client"],
        );
        assert_has(
            &c.notes[1],
            &["\"alwaysAllow\"", "\"watchPaths\"", "\"disabledTools\""],
        );
        assert_has(
            &err(r#"{"mcpServers": {"a": {"comand": "x", "autoApprove": []}}}"#),
            &[
                "mcpServers.a: unknown key \"comand\"",
                "did you mean \"command\"?",
            ],
        );
        // gangway's own shapes stay strict.
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "autoApprove": []}}}"#),
            &["backends.a: unknown key \"autoApprove\""],
        );
    }

    #[test]
    fn claude_desktop_disables_gangways_own_container() {
        let c = parse(
            r#"{"mcpServers": {
                "gw": {"command": "docker", "args": ["run", "-i", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "${HOME}/c.json:/config.json", "ghcr.io/x/gangway:0.1", "--config", "/config.json"]},
                "time": {"command": "docker", "args": ["run", "-i", "--rm", "mcp/time"]}}}"#,
        )
        .unwrap();
        let gw = backend(&c, "gw");
        assert!(gw.disabled);
        assert_has(
            gw.disabled_reason.as_deref().unwrap_or_default(),
            &["gangway's own container image", "recursively"],
        );
        assert!(!backend(&c, "time").disabled);
    }

    #[test]
    fn claude_desktop_disables_gangway_itself() {
        let c = parse(
            r#"{"mcpServers": {"gw": {"command": "/usr/local/bin/gangway", "args": ["--config", "${UNSET}"]},
                               "other": {"command": "npx"}}}"#,
        )
        .unwrap();
        assert!(backend(&c, "gw").disabled);
        assert_has(
            backend(&c, "gw")
                .disabled_reason
                .as_deref()
                .unwrap_or_default(),
            &["runs gangway itself"],
        );
        assert_eq!(
            backend(&c, "gw").args[1],
            "${UNSET}",
            "disabled backends are not expanded"
        );
        assert!(!backend(&c, "other").disabled);
        // In gangway's own shape nesting is deliberate.
        let c = parse(r#"{"backends": {"gw": {"command": "gangway"}}}"#).unwrap();
        assert!(!c.backends[0].disabled);
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"backends": {"a": {"command": "x"}}}"#).unwrap();
        assert_eq!(c.expose, Expose::Meta);
        assert_eq!(c.max_message_bytes, 16 * 1024 * 1024);
        let a = &c.backends[0];
        assert!(a.args.is_empty() && a.env.is_empty());
        assert_eq!(a.cwd, None);
        assert_eq!(a.description, None);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(a.idle_timeout, Some(Duration::from_secs(300)));
        assert!(!a.disabled);
        assert_eq!(Expose::default(), Expose::Meta);
    }

    #[test]
    fn no_backends_is_not_an_error() {
        for text in [
            "{}",
            r#"{"backends": {}}"#,
            r#"{"backends": []}"#,
            r#"{"mcpServers": {}}"#,
            r#"{"expose": "tools"}"#,
            "\u{feff}{}",
        ] {
            let c = parse(text).unwrap();
            assert!(c.backends.is_empty(), "{text}");
        }
    }

    #[test]
    fn unreadable_file() {
        let path = Path::new("/nonexistent/gangway/dir/config.json");
        let e = Config::load(path, &no_env).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(std::error::Error::source(&e).is_some());
        assert_has(
            &e.to_string(),
            &[
                "cannot read config file",
                "/nonexistent/gangway/dir/config.json",
                "check the path",
            ],
        );
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("gangway-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.json");
        std::fs::write(
            &file,
            r#"{"backends": {"a": {"command": "x", "cwd": "sub"}}}"#,
        )
        .unwrap();
        let c = Config::load(&file, &no_env).unwrap();
        assert_eq!(c.path, file);
        assert_eq!(
            c.backends[0].cwd.as_deref(),
            Some(dir.join("sub").as_path())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_json() {
        let e =
            parse("{\n  \"backends\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}").unwrap_err();
        let ConfigError::Json { line, column, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!((*line, *column), (3, 26));
        assert_has(
            &e.to_string(),
            &[
                "/etc/gangway/test.json",
                "invalid JSON at line 3, column 26",
                "trailing commas",
            ],
        );
        assert!(
            !e.to_string().contains("at line 3 column 26"),
            "position stated once"
        );
        assert_has(&err(""), &["invalid JSON at line 1"]);
    }

    #[test]
    fn no_recognised_shape() {
        let m = err(r#"{"foo": 1, "bar": 2}"#);
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "not a gangway config",
                "\"bar\", \"foo\"",
                "\"backends\"",
                "\"mcpServers\"",
            ],
        );
        assert_has(
            &err(r#"{"mcp_servers": {}}"#),
            &["did you mean \"mcpServers\""],
        );
        assert_has(&err(r#"{"backend": {}}"#), &["did you mean \"backends\""]);
        assert_has(
            &err(r#"{"servers": {}, "inputs": []}"#),
            &["VS Code", "rename \"servers\" to \"mcpServers\""],
        );
        assert_has(&err("[1, 2]"), &["top level must be a JSON object"]);
        assert_has(&err("null"), &["top level must be a JSON object"]);
    }

    #[test]
    fn wrong_types() {
        let m = err(r#"{"backends": {"github": {"command": "x", "args": ["a", "b", 5]}}}"#);
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "backends.github.args[2] must be a string",
                "a number",
            ],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": "x"}, {"name": "b", "command": 5}]}"#),
            &[
                "backends[1].command must be a string, or an array",
                "a number",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": ["x", "y"]}}}"#),
            &[
                "backends.a.command must be a string naming the program",
                "\"args\"",
                "an array",
            ],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": ["x", null]}]}"#),
            &["backends[0].command[1] must be a string", "null"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "env": {"K": 1}}}}"#),
            &["backends.a.env.K must be a string"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "env": []}}}"#),
            &["backends.a.env must be an object"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "timeout": "30"}}}"#),
            &["backends.a.timeout must be a number of seconds", "a string"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "disabled": "yes"}}}"#),
            &["backends.a.disabled must be true or false"],
        );
        assert_has(
            &err(r#"{"backends": {"a": "x"}}"#),
            &["backends.a must be an object"],
        );
        assert_has(
            &err(r#"{"backends": 3}"#),
            &["backends must be an object of backends"],
        );
        assert_has(
            &err(r#"{"backends": [3]}"#),
            &["backends[0] must be an object"],
        );
        assert_has(
            &err(r#"{"mcpServers": []}"#),
            &["mcpServers must be an object"],
        );
        assert_has(&err(r#"{"$schema": 1}"#), &["$schema must be a string"]);
        assert_has(
            &err(r#"{"backends": [{"name": 1, "command": "x"}]}"#),
            &["backends[0].name must be a string"],
        );
    }

    #[test]
    fn unknown_keys() {
        let m = err(r#"{"backends": {"github": {"command": "x", "tiemout": 3}}}"#);
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "backends.github: unknown key \"tiemout\"",
                "did you mean \"timeout\"?",
                "Valid keys here: args, ca_file, client_request_timeout, command, cwd, description, direct, disabled, env, expose, headers, idle_timeout, keep_warm, prefix, scope, startup_timeout, timeout, tools, type, url.",
            ],
        );
        let m = err(r#"{"backends": {}, "max_msg_bytes": 5}"#);
        assert_has(
            &m,
            &[
                "top level: unknown key \"max_msg_bytes\"",
                "$schema, backends, catalog, client_request_timeout, expose",
            ],
        );
        assert!(!m.contains("did you mean"), "not an obvious typo: {m}");
        assert_has(
            &err(r#"{"backends": {}, "Expose": "meta"}"#),
            &["did you mean \"expose\"?"],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": "x", "nmae": "b"}]}"#),
            &[
                "backends[0]: unknown key \"nmae\"",
                "did you mean \"name\"?",
                "name, prefix, scope, startup_timeout, timeout, tools",
            ],
        );
        assert_has(
            &err(r#"{"mcpServers": {"a": {"command": "x", "autoApprov": []}}}"#),
            &["mcpServers.a: unknown key \"autoApprov\"", "type"],
        );
        assert_has(
            &err(r#"{"backends": {}, "mcpServers": {}}"#),
            &["unknown key \"mcpServers\"", "not both"],
        );
        assert_has(
            &err(r#"{"backends": [], "security_policy": {}}"#),
            &["security_policy", "remove it"],
        );
        // `type` says a transport: "stdio" with a command, "http" or "sse" with a url.
        assert!(parse(r#"{"backends": {"a": {"command": "x", "type": "stdio"}}}"#).is_ok());
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "type": "sse"}}}"#),
            &["backends.a.type", "\"stdio\"", "\"url\""],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"url": "http://h/mcp", "type": "websocket"}}}"#),
            &["backends.a.type", "\"http\"", "\"sse\""],
        );
        let c = parse(r#"{"backends": {"a": {"url": "http://h/sse", "type": "sse"}, "b": {"url": "http://h/mcp", "type": "http"}}}"#).unwrap();
        assert!(backend(&c, "a").sse && !backend(&c, "b").sse);
    }

    #[test]
    fn missing_keys() {
        assert_has(
            &err(r#"{"backends": {"a": {"args": []}}}"#),
            &["backends.a: missing required key \"command\""],
        );
        assert_has(
            &err(r#"{"backends": [{"command": "x"}]}"#),
            &["backends[0]: missing required key \"name\""],
        );
    }

    #[test]
    fn names() {
        let long = "a".repeat(64);
        let ok = format!(
            r#"{{"backends": {{"{long}": {{"command": "x"}}, "A-b_9": {{"command": "x"}}}}}}"#
        );
        assert_eq!(parse(&ok).unwrap().backends.len(), 2);
        let too_long = format!(r#"{{"backends": {{"{long}a": {{"command": "x"}}}}}}"#);
        assert_has(
            &err(&too_long),
            &[
                "invalid backend name",
                "1 to 64 characters",
                "letter, digit, '_' or '-'",
            ],
        );
        let m = err(r#"{"backends": {"my server": {"command": "x"}}}"#);
        assert_has(
            &m,
            &["backends[\"my server\"]: invalid backend name \"my server\""],
        );
        assert_has(
            &err(r#"{"backends": {"": {"command": "x"}}}"#),
            &["invalid backend name \"\""],
        );
        assert_has(
            &err(r#"{"mcpServers": {"a.b": {"command": "x"}}}"#),
            &["invalid backend name \"a.b\""],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "é", "command": "x"}]}"#),
            &["backends[0].name: invalid backend name"],
        );
        // Disabled backends are validated too.
        assert_has(
            &err(r#"{"backends": {"a b": {"command": "x", "disabled": true}}}"#),
            &["invalid backend name"],
        );
    }

    #[test]
    fn duplicate_names_in_list_form() {
        let m = err(
            r#"{"backends": [{"name": "a", "command": "x"}, {"name": "b", "command": "x"}, {"name": "a", "command": "y"}]}"#,
        );
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "backends[2].name",
                "\"a\" is already used at backends[0].name",
                "unique",
            ],
        );
    }

    #[test]
    fn duplicate_keys_in_object_keep_the_last() {
        // Documented limitation: serde_json keeps the last of duplicate keys.
        let c = parse(r#"{"backends": {"a": {"command": "first"}, "a": {"command": "second"}}}"#)
            .unwrap();
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.backends[0].command, "second");
    }

    #[test]
    fn empty_command() {
        assert_has(
            &err(r#"{"backends": {"a": {"command": ""}}}"#),
            &[
                "backends.a.command: the command is empty",
                "give the program",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "  "}}}"#),
            &["the command is empty"],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": []}]}"#),
            &["backends[0].command: the command is empty"],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": ["", "x"]}]}"#),
            &["backends[0].command[0]: the command is empty"],
        );
        assert_has(
            &err_with(
                r#"{"backends": {"a": {"command": "${CMD}"}}}"#,
                &[("CMD", "")],
            ),
            &["backends.a.command: the command is empty after expanding variables"],
        );
        // Disabled backends are validated too.
        assert_has(
            &err(r#"{"backends": {"a": {"command": "", "disabled": true}}}"#),
            &["the command is empty"],
        );
    }

    #[test]
    fn bad_numbers() {
        let m = err(r#"{"backends": {"a": {"command": "x", "timeout": 0}}}"#);
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "backends.a.timeout: 0 is out of range",
                "greater than 0",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "timeout": -1}}}"#),
            &["-1 is out of range"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "timeout": 1e300}}}"#),
            &["backends.a.timeout", "out of range"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "timeout": 1e-300}}}"#),
            &["backends.a.timeout", "out of range"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "idle_timeout": -0.5}}}"#),
            &[
                "backends.a.idle_timeout: -0.5 is out of range",
                "0 (never stop",
            ],
        );
        assert_has(
            &err(r#"{"timeout": 0}"#),
            &["test.json: timeout: 0 is out of range"],
        );
        assert_has(
            &err(r#"{"max_message_bytes": 1023}"#),
            &["max_message_bytes: 1023 is out of range", "at least 1024"],
        );
        assert_has(&err(r#"{"max_message_bytes": 2048.5}"#), &["whole number"]);
        assert_has(&err(r#"{"max_message_bytes": -4096}"#), &["out of range"]);
        assert_has(
            &err(r#"{"max_message_bytes": "big"}"#),
            &["max_message_bytes must be a whole number"],
        );
        assert_eq!(
            parse(r#"{"max_message_bytes": 1024}"#)
                .unwrap()
                .max_message_bytes,
            1024
        );
        let c =
            parse(r#"{"backends": {"a": {"command": "x", "timeout": 0.25, "idle_timeout": 1.5}}}"#)
                .unwrap();
        assert_eq!(c.backends[0].timeout, Duration::from_millis(250));
        assert_eq!(
            c.backends[0].idle_timeout,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bad_values() {
        assert_has(
            &err(r#"{"expose": "all"}"#),
            &[
                "expose: \"all\" is not a valid value",
                "\"meta\", \"tools\" or \"both\"",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "cwd": ""}}}"#),
            &["backends.a.cwd: is empty"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "env": {"A=B": "v"}}}}"#),
            &["backends.a.env[\"A=B\"]", "environment variable name"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "args": ["a\u0000b"]}}}"#),
            &["backends.a.args[0]: contains a NUL"],
        );
        assert_has(
            &err_with(
                r#"{"backends": {"a": {"command": "x", "args": ["${V}"]}}}"#,
                &[("V", "a\0b")],
            ),
            &["contains a NUL character after expanding variables"],
        );
    }

    #[test]
    fn expansion() {
        let c = parse_with(
            r#"{"backends": {"a": {
                "command": "${BIN}",
                "args": ["--token=${TOKEN}", "${MISSING:-fallback}", "${EMPTY:-was-empty}", "${EMPTY}",
                         "$$HOME", "cost $5", "end$", "${TOKEN}${TOKEN}", "${A:-x:-y}", "$${NOT}", "${A_1:-}",
                         "abc$$def", "${", "a${b", "${}", "${1X}", "${A-b}", "$$${TOKEN}", "x${TOKEN"],
                "env": {"T": "${TOKEN}"},
                "cwd": "${DIR}/sub",
                "description": "${TOKEN}"
            }}}"#,
            &[("BIN", "/usr/bin/tool"), ("TOKEN", "t0k"), ("EMPTY", ""), ("DIR", "/data")],
        )
        .unwrap();
        let a = &c.backends[0];
        assert_eq!(a.command, "/usr/bin/tool");
        assert_eq!(
            a.args,
            [
                "--token=t0k",
                "fallback",
                "was-empty",
                "",
                "$$HOME",
                "cost $5",
                "end$",
                "t0kt0k",
                "x:-y",
                "${NOT}",
                "",
                "abc$$def",
                "${",
                "a${b",
                "${}",
                "${1X}",
                "${A-b}",
                "$${TOKEN}",
                "x${TOKEN"
            ]
        );
        assert_eq!(a.env, vec![("T".to_string(), "t0k".to_string())]);
        assert_eq!(a.cwd.as_deref(), Some(Path::new("/data/sub")));
        assert_eq!(
            a.description.as_deref(),
            Some("${TOKEN}"),
            "descriptions are not expanded"
        );
    }

    #[test]
    fn expanded_values_are_not_expanded_again() {
        let c = parse_with(
            r#"{"backends": {"a": {"command": "${X}"}}}"#,
            &[("X", "${Y}")],
        )
        .unwrap();
        assert_eq!(c.backends[0].command, "${Y}");
    }

    #[test]
    fn unset_variable_disables_only_that_backend() {
        let c = parse(
            r#"{"backends": {"github": {"command": "x", "args": ["${GH_TOKEN}"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GH_TOKEN}", "B": "${B}"}},
                             "ok": {"command": "y", "args": ["${NOPE:-fine}"]}}}"#,
        )
        .unwrap();
        let gh = backend(&c, "github");
        assert!(gh.disabled);
        let reason = gh.disabled_reason.as_deref().unwrap_or_default();
        assert_has(
            reason,
            &[
                "${GH_TOKEN}, ${B} (in backends.github.args[0], backends.github.env.B, \
                 backends.github.env.GITHUB_PERSONAL_ACCESS_TOKEN) are not set",
                "backends.github.env.GITHUB_PERSONAL_ACCESS_TOKEN",
                "are not set in gangway's environment",
                "\"env\" of gangway's own entry",
                "${GH_TOKEN:-default}",
            ],
        );
        assert_eq!(gh.env[1].1, "${GH_TOKEN}", "kept as written");
        let ok = backend(&c, "ok");
        assert!(!ok.disabled && ok.disabled_reason.is_none());
        assert_eq!(ok.args, ["fine"]);

        let c = parse(r#"{"backends": [{"name": "w", "command": ["${NOPE}"]}]}"#).unwrap();
        assert_has(
            c.backends[0].disabled_reason.as_deref().unwrap_or_default(),
            &["${NOPE} (in backends[0].command[0]) is not set"],
        );
        let c = parse(r#"{"mcpServers": {"m": {"command": "x", "cwd": "${WHERE}"}}}"#).unwrap();
        assert_eq!(c.enabled().count(), 0);
        // A file that disables the backend itself gives no reason.
        let c = parse(r#"{"backends": {"a": {"command": "${X}", "disabled": true}}}"#).unwrap();
        assert!(c.backends[0].disabled_reason.is_none());
    }

    #[test]
    fn referenced_variables_reach_only_the_backends_that_reference_them() {
        let c = parse_with(
            r#"{"backends": {
                "a": {"command": "x", "env": {"T": "${SECRET_A}"}, "cwd": "${HOME}"},
                "b": {"command": "x", "args": ["${SECRET_B:-d}", "${SECRET_A}"]},
                "c": {"command": "x", "env": {"SECRET_A": "its own"}}}}"#,
            &[("SECRET_A", "a"), ("SECRET_B", "b"), ("HOME", "/h")],
        )
        .unwrap();
        assert_eq!(backend(&c, "a").vars, ["HOME", "SECRET_A"]);
        assert_eq!(backend(&c, "a").env_remove, ["SECRET_B"]);
        assert!(backend(&c, "b").env_remove.is_empty());
        assert_eq!(backend(&c, "c").env_remove, ["SECRET_A", "SECRET_B"]);
        assert!(
            c.backends
                .iter()
                .all(|b| !b.env_remove.contains(&"HOME".to_string())),
            "the basics are always inherited"
        );
    }

    #[test]
    fn malformed_references_are_literal() {
        let c = parse_with(
            r#"{"backends": {"a": {"command": "x", "env": {"K": "secret${TOKEN", "L": "${}", "M": "é${1X}", "N": "${A-b}"}}}}"#,
            &[("TOKEN", "t")],
        )
        .unwrap();
        let env: Vec<&str> = c.backends[0].env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(env, ["secret${TOKEN", "${}", "é${1X}", "${A-b}"]);
        assert!(!c.backends[0].disabled);
    }

    #[test]
    fn disabled_backends_skip_expansion() {
        let c = parse(r#"{"backends": {"a": {"command": "${BIN}", "args": ["${X}"], "env": {"K": "${SECRET}"}, "cwd": "${D}", "disabled": true}}}"#).unwrap();
        let a = &c.backends[0];
        assert!(a.disabled);
        assert_eq!(a.command, "${BIN}");
        assert_eq!(a.args, ["${X}"]);
        assert_eq!(a.env[0].1, "${SECRET}");
        assert_eq!(a.cwd.as_deref(), Some(Path::new("${D}")));
        assert_eq!(c.enabled().count(), 0);
    }

    #[test]
    fn debug_hides_env_values() {
        let c = parse_with(
            r#"{"backends": {"a": {"command": "x", "env": {"API_KEY": "${K}", "OTHER": "hunter2"}}}}"#,
            &[("K", "sk-very-secret")],
        )
        .unwrap();
        for text in [
            format!("{:?}", c.backends[0]),
            format!("{c:?}"),
            format!("{c:#?}"),
        ] {
            assert!(text.contains("API_KEY") && text.contains("OTHER"), "{text}");
            assert!(
                !text.contains("sk-very-secret") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }

    #[test]
    fn process_env_reads_the_environment() {
        assert_eq!(process_env(""), None);
        assert_eq!(process_env("A=B"), None);
        assert_eq!(process_env("GANGWAY_SURELY_UNSET_VARIABLE_42"), None);
        if let Ok(path) = std::env::var("PATH") {
            assert_eq!(process_env("PATH"), Some(path));
        }
    }

    #[test]
    fn closest_key_suggestions() {
        assert_eq!(closest("comand", BACKEND_KEYS), Some("command"));
        assert_eq!(closest("ENV", BACKEND_KEYS), Some("env"));
        assert_eq!(closest("ab", BACKEND_KEYS), None);
        assert_eq!(closest("alwaysAllow", BACKEND_KEYS), None);
        assert_eq!(closest(&"x".repeat(1000), BACKEND_KEYS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    /// Parses with the file at `/etc/gangway/test.json` and the given variables.
    fn catalog_of(text: &str, vars: &'static [(&'static str, &'static str)]) -> Option<PathBuf> {
        parse_with(text, vars).unwrap().catalog
    }

    fn globs(texts: &[&str]) -> Vec<glob::Pattern> {
        texts
            .iter()
            .map(|t| glob::Pattern::new(t).unwrap())
            .collect()
    }

    #[test]
    fn naming_and_exposure_defaults() {
        let c = parse(r#"{"backends": {"github": {"command": "x"}}}"#).unwrap();
        assert_eq!(c.separator, "__");
        let g = &c.backends[0];
        assert_eq!(
            g.prefix, "github",
            "the prefix defaults to the backend's name"
        );
        assert!(g.tools.is_open());
        assert_eq!(g.expose, Expose::Meta);
        assert!(g.direct.is_empty());
        let c = parse(r#"{"mcpServers": {"m": {"command": "x"}}}"#).unwrap();
        assert_eq!(c.separator, "__");
        assert_eq!(c.backends[0].prefix, "m");
    }

    #[test]
    fn catalog_defaults_to_the_cache_directory() {
        let text = r#"{"backends": {}}"#;
        assert_eq!(
            catalog_of(text, &[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/xdg/gangway/catalog.json"))
        );
        assert_eq!(
            catalog_of(text, &[("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.cache/gangway/catalog.json"))
        );
        assert_eq!(
            catalog_of(
                text,
                &[("XDG_CACHE_HOME", "rel/cache"), ("HOME", "/home/u")]
            ),
            Some(PathBuf::from("/home/u/.cache/gangway/catalog.json")),
            "a relative XDG_CACHE_HOME is ignored, as the XDG spec says"
        );
        assert_eq!(
            catalog_of(text, &[("XDG_CACHE_HOME", ""), ("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.cache/gangway/catalog.json"))
        );
        assert_eq!(catalog_of(text, &[("HOME", "")]), None);
        assert_eq!(catalog_of(text, &[]), None, "neither variable: no catalog");
        assert_eq!(
            catalog_of(r#"{"catalog": true}"#, &[("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/gangway/catalog.json"))
        );
        // Shape 3 cannot set it, but still gets the default.
        assert_eq!(
            catalog_of(r#"{"mcpServers": {}}"#, &[("XDG_CACHE_HOME", "/c")]),
            Some(PathBuf::from("/c/gangway/catalog.json"))
        );
    }

    #[test]
    fn catalog_can_be_turned_off_or_placed() {
        let home = &[("HOME", "/home/u")];
        assert_eq!(catalog_of(r#"{"catalog": false}"#, home), None);
        assert_eq!(catalog_of(r#"{"catalog": null}"#, home), None);
        assert_eq!(
            catalog_of(r#"{"catalog": "/var/cache/g.json"}"#, home),
            Some(PathBuf::from("/var/cache/g.json"))
        );
        assert_eq!(
            catalog_of(r#"{"catalog": "state/catalog.json"}"#, home),
            Some(PathBuf::from("/etc/gangway/state/catalog.json")),
            "relative to the config file's directory, like cwd"
        );
        assert_eq!(
            catalog_of(r#"{"catalog": "~/c.json"}"#, home),
            Some(PathBuf::from("/etc/gangway/~/c.json")),
            "~ is not special"
        );
        assert_eq!(
            catalog_of(
                r#"{"backends": [], "catalog": "${STATE:-/tmp}/${NAME}.json"}"#,
                &[("NAME", "cat")]
            ),
            Some(PathBuf::from("/tmp/cat.json"))
        );
        assert_eq!(
            catalog_of(r#"{"catalog": "${HOME}/c.json"}"#, home),
            Some(PathBuf::from("/home/u/c.json"))
        );
        assert_has(
            &err(r#"{"catalog": "${NOPE}/c.json"}"#),
            &[
                "/etc/gangway/test.json: catalog: this value uses ${NOPE}",
                "export NOPE",
            ],
        );
        assert_eq!(
            catalog_of(r#"{"catalog": "/c/${NOPE"}"#, &[]),
            Some(PathBuf::from("/c/${NOPE")),
            "a lone ${{ is literal"
        );
        assert_has(
            &err(r#"{"catalog": 5}"#),
            &[
                "catalog must be a file path, true (the default place) or false",
                "a number",
            ],
        );
        assert_has(&err(r#"{"catalog": ""}"#), &["catalog: is empty"]);
        assert_has(
            &err_with(r#"{"catalog": "${E}"}"#, &[("E", "")]),
            &["catalog: is empty after expanding variables"],
        );
        assert_has(
            &err_with(r#"{"catalog": "${E}"}"#, &[("E", "a\0b")]),
            &["catalog: contains a NUL character after expanding variables"],
        );
    }

    #[test]
    fn separator_and_prefix() {
        let c = parse(
            r#"{"separator": "-", "backends": [{"name": "github", "command": "x", "prefix": "gh"},
                                                {"name": "mem", "command": "x", "prefix": ""}]}"#,
        )
        .unwrap();
        assert_eq!(c.separator, "-");
        assert_eq!(c.backends[0].prefix, "gh");
        assert_eq!(c.backends[1].prefix, "", "an empty prefix is allowed");
        assert_eq!(parse(r#"{"separator": ""}"#).unwrap().separator, "");
        assert_eq!(
            parse(r#"{"separator": "_-Az09_-"}"#).unwrap().separator,
            "_-Az09_-"
        );
        let m = err(r#"{"separator": "."}"#);
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json: separator: \".\" is not a valid separator",
                "0 to 8 characters",
                "letter, digit, '_' or '-'",
                "^[A-Za-z0-9_-]{1,64}$",
            ],
        );
        assert_has(
            &err(r#"{"separator": "_________"}"#),
            &["not a valid separator", "0 to 8 characters"],
        );
        assert_has(&err(r#"{"separator": "é"}"#), &["not a valid separator"]);
        assert_has(&err(r#"{"separator": 1}"#), &["separator must be a string"]);
        let long = "p".repeat(64);
        let ok = format!(r#"{{"backends": {{"a": {{"command": "x", "prefix": "{long}"}}}}}}"#);
        assert_eq!(parse(&ok).unwrap().backends[0].prefix, long);
        let too_long =
            format!(r#"{{"backends": {{"a": {{"command": "x", "prefix": "{long}p"}}}}}}"#);
        assert_has(
            &err(&too_long),
            &["backends.a.prefix", "0 to 64 characters"],
        );
        assert_has(
            &err(r#"{"mcpServers": {"a": {"command": "x", "prefix": "a.b"}}}"#),
            &[
                "mcpServers.a.prefix: \"a.b\" is not a valid prefix",
                "letter, digit, '_' or '-'",
                "^[A-Za-z0-9_-]{1,64}$",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "prefix": null}}}"#),
            &["backends.a.prefix must be a string"],
        );
        // Disabled backends are validated too, and keep their prefix as written.
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "prefix": "a b", "disabled": true}}}"#),
            &["not a valid prefix"],
        );
        let c = parse(r#"{"backends": {"a": {"command": "x", "prefix": "q", "disabled": true}}}"#)
            .unwrap();
        assert_eq!(c.backends[0].prefix, "q");
    }

    #[test]
    fn tool_filter() {
        let c = parse(
            r#"{"backends": {"a": {"command": "x",
                 "tools": {"allow": ["get_*", "list_?"], "deny": ["get_secret*"]}}}}"#,
        )
        .unwrap();
        let f = &c.backends[0].tools;
        assert!(!f.is_open());
        for (name, offered) in [
            ("get_issue", true),
            ("get_", true),
            ("list_x", true),
            ("list_xy", false),
            ("get_secret", false),
            ("get_secret_token", false),
            ("create_issue", false),
            ("Get_issue", false),
            ("", false),
        ] {
            assert_eq!(f.permits(name), offered, "{name}");
        }
        let deny_only = ToolFilter {
            allow: vec![],
            deny: globs(&["delete_*"]),
        };
        assert!(deny_only.permits("get_issue") && !deny_only.permits("delete_repo"));
        assert!(!deny_only.is_open());
        let open = ToolFilter::default();
        assert!(open.is_open() && open.permits("anything") && open.permits(""));
        // `*` crosses '/' and '.', which tool names may contain.
        assert!(ToolFilter {
            allow: globs(&["fs*"]),
            deny: vec![]
        }
        .permits("fs/read.file"));

        let c = parse(
            r#"{"backends": [{"name": "a", "command": "x", "tools": {"allow": [], "deny": []}},
                             {"name": "b", "command": "x", "tools": {}}]}"#,
        )
        .unwrap();
        assert!(c.backends.iter().all(|b| b.tools.is_open()));
    }

    #[test]
    fn bad_tool_filters() {
        let m = err(
            r#"{"mcpServers": {"github": {"command": "x", "tools": {"deny": ["ok", "[abc"]}}}}"#,
        );
        assert_has(
            &m,
            &[
                "/etc/gangway/test.json",
                "mcpServers.github.tools.deny[1]: \"[abc\" is not a valid glob",
                "Pattern syntax error",
                "'*' matches any run",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "tools": {"alow": ["x"]}}}}"#),
            &[
                "backends.a.tools: unknown key \"alow\"",
                "did you mean \"allow\"?",
                "Valid keys here: allow, deny.",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "tools": {"deni": []}}}}"#),
            &["did you mean \"deny\"?"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "tools": ["x"]}}}"#),
            &[
                "backends.a.tools must be an object with \"allow\" and/or \"deny\"",
                "an array",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "tools": {"allow": "get_*"}}}}"#),
            &[
                "backends.a.tools.allow must be an array of glob strings",
                "a string",
            ],
        );
        assert_has(
            &err(r#"{"backends": [{"name": "a", "command": "x", "tools": {"allow": [1]}}]}"#),
            &["backends[0].tools.allow[0] must be a string", "a number"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "direct": ["a", "b", "***"]}}}"#),
            &["backends.a.direct[2]: \"***\" is not a valid glob"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "direct": "a"}}}"#),
            &["backends.a.direct must be an array"],
        );
        // Disabled backends are validated too.
        assert_has(
            &err(
                r#"{"backends": {"a": {"command": "x", "disabled": true, "tools": {"allow": ["[x"]}}}}"#,
            ),
            &["backends.a.tools.allow[0]", "not a valid glob"],
        );
    }

    #[test]
    fn backend_expose_overrides_and_inherits() {
        let c = parse(
            r#"{"expose": "tools", "backends": {"own": {"command": "x", "expose": "meta"},
                                                "both": {"command": "x", "expose": "both"},
                                                "inherit": {"command": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(c.expose, Expose::Tools);
        assert_eq!(backend(&c, "own").expose, Expose::Meta);
        assert_eq!(backend(&c, "both").expose, Expose::Both);
        assert_eq!(
            backend(&c, "inherit").expose,
            Expose::Tools,
            "the top-level expose is the default"
        );
        let c = parse(
            r#"{"backends": [{"name": "a", "command": "x", "expose": "tools"}, {"name": "b", "command": "x"}]}"#,
        )
        .unwrap();
        assert_eq!(c.backends[0].expose, Expose::Tools);
        assert_eq!(c.backends[1].expose, Expose::Meta);
        let c = parse(r#"{"mcpServers": {"a": {"command": "x", "expose": "both"}}}"#).unwrap();
        assert_eq!(c.backends[0].expose, Expose::Both);
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "expose": "all"}}}"#),
            &[
                "backends.a.expose: \"all\" is not a valid value",
                "\"meta\", \"tools\" or \"both\"",
            ],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "expose": true}}}"#),
            &["backends.a.expose must be a string"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "expsoe": "meta"}}}"#),
            &["did you mean \"expose\"?"],
        );
        assert_has(
            &err(r#"{"backends": {"a": {"command": "x", "prefx": "p"}}}"#),
            &["did you mean \"prefix\"?"],
        );
        assert_has(
            &err(r#"{"backends": {}, "seperator": "-"}"#),
            &["did you mean \"separator\"?"],
        );
        assert_has(
            &err(r#"{"backends": {}, "catalogue": "-"}"#),
            &["did you mean \"catalog\"?"],
        );
    }

    #[test]
    fn direct_in_meta_and_is_direct() {
        let c = parse(
            r#"{"backends": {
                 "m": {"command": "x", "direct": ["search_*", "get_me"],
                       "tools": {"deny": ["search_secret"]}},
                 "t": {"command": "x", "expose": "tools", "tools": {"allow": ["get_*"]}},
                 "b": {"command": "x", "expose": "both"}}}"#,
        )
        .unwrap();
        let m = backend(&c, "m");
        assert_eq!(m.direct, globs(&["search_*", "get_me"]));
        assert!(m.in_meta());
        assert!(m.is_direct("search_code") && m.is_direct("get_me"));
        assert!(!m.is_direct("get_issue"), "not pinned, and expose is meta");
        assert!(
            !m.is_direct("search_secret"),
            "filtered tools are never direct"
        );
        let t = backend(&c, "t");
        assert!(!t.in_meta());
        assert!(t.is_direct("get_issue"));
        assert!(
            !t.is_direct("create_issue"),
            "filtered tools are never direct"
        );
        let b = backend(&c, "b");
        assert!(b.in_meta() && b.is_direct("anything"));
    }

    #[test]
    fn spawn_differs() {
        let c = parse_with(
            r#"{"backends": {"a": {"command": "x", "args": ["1"], "env": {"K": "${V}"}, "cwd": "/w",
                                  "description": "one", "timeout": 5, "prefix": "p"}}}"#,
            &[("V", "v1")],
        )
        .unwrap();
        let a = &c.backends[0];
        assert!(!a.spawn_differs(a));
        let changed = |f: &dyn Fn(&mut BackendConfig)| {
            let mut b = a.clone();
            f(&mut b);
            a.spawn_differs(&b)
        };
        assert!(changed(&|b| b.env[0].1 = "v2".to_string()), "env value");
        assert!(changed(&|b| b.env[0].0 = "L".to_string()), "env name");
        assert!(
            changed(&|b| b.env.push(("Z".into(), "z".into()))),
            "env added"
        );
        assert!(changed(&|b| b.command = "y".to_string()), "command");
        assert!(changed(&|b| b.args.push("2".to_string())), "args");
        assert!(changed(&|b| b.cwd = None), "cwd");
        assert!(!changed(&|b| b.description = Some("two".to_string())));
        assert!(!changed(&|b| b.timeout = Duration::from_secs(9)));
        assert!(!changed(&|b| b.prefix = "q".to_string()));
        assert!(!changed(&|b| b.expose = Expose::Tools));
        assert!(!changed(&|b| b.direct = globs(&["x"])));
        // Equality covers every field, so a reload can tell any change apart.
        let mut b = a.clone();
        assert_eq!(a, &b);
        b.description = Some("two".to_string());
        assert_ne!(a, &b);
        let again = parse_with(
            r#"{"backends": {"a": {"command": "x", "args": ["1"], "env": {"K": "${V}"}, "cwd": "/w",
                                  "description": "one", "timeout": 5, "prefix": "p"}}}"#,
            &[("V", "v1")],
        )
        .unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn debug_shows_filters_as_written() {
        let c = parse(
            r#"{"backends": {"a": {"command": "x", "prefix": "pre", "tools": {"allow": ["get_*"], "deny": ["get_secret"]}, "direct": ["pin_*"]}}}"#,
        )
        .unwrap();
        let text = format!("{:?}", c.backends[0]);
        assert_has(
            &text,
            &[
                "prefix: \"pre\"",
                "tools_allow: [\"get_*\"]",
                "tools_deny: [\"get_secret\"]",
                "direct: [\"pin_*\"]",
                "expose: Meta",
            ],
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let seeds = [
            r#"{"backends": {"a": {"command": "${X:-y}", "args": ["$$", "${"], "env": {"K": "v"}, "timeout": 1}}}"#,
            r#"{"backends": [{"name": "a", "command": ["x", "y"], "idle_timeout": 0, "prefix": "p", "expose": "tools"}], "expose": "both", "separator": "_"}"#,
            r#"{"catalog": "${C:-c}/x", "backends": {"a": {"command": "x", "tools": {"allow": ["a*"], "deny": ["[b]"]}, "direct": ["?"]}}}"#,
            r#"{"mcpServers": {"a": {"type": "stdio", "command": "x"}, "b": {"type": "http"}}, "z": [1, {"q": null}]}"#,
        ];
        // A small xorshift so the test is deterministic without a rand dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "{}[]\":,$-_ 0123456789.eE\\nulltruefalse\u{0}é\u{feff}"
            .chars()
            .collect();
        for seed in seeds {
            assert!(parse(seed).is_ok() || parse(seed).is_err());
            let chars: Vec<char> = seed.chars().collect();
            for _ in 0..3000 {
                let mut mutated = chars.clone();
                for _ in 0..(next() % 4 + 1) {
                    let pos = (next() % (mutated.len() as u64 + 1)) as usize;
                    let c = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 if pos < mutated.len() => mutated[pos] = c,
                        1 if pos < mutated.len() => {
                            mutated.remove(pos);
                        }
                        _ => mutated.insert(pos, c),
                    }
                }
                let text: String = mutated.into_iter().collect();
                let lookup = |name: &str| (name.len() % 2 == 0).then(|| name.to_string());
                if let Err(e) = Config::parse(&text, Path::new("f.json"), &lookup) {
                    let _ = e.to_string();
                }
            }
        }
    }

    #[test]
    fn rate_limit_and_http_settings_are_read_and_checked() {
        let c = parse(r#"{"rate_limit": {"requests_per_second": 2.5}, "http": {"listen": "127.0.0.1:9", "tokens": ["a"], "session_timeout": 60}}"#)
            .expect("valid");
        let limit = c.rate_limit.expect("a limit");
        assert_eq!((limit.per_second, limit.burst), (2.5, 3));
        assert_eq!(c.http.listen.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(c.http.session_timeout, Some(Duration::from_secs(60)));
        assert!(
            !format!("{:?}", c.http).contains("\"a\""),
            "tokens are hidden from Debug"
        );
        assert!(err(r#"{"rate_limit": {"requests_per_second": 0}}"#)
            .contains("rate_limit.requests_per_second"));
        assert!(
            err(r#"{"rate_limit": {"requests_per_second": 1, "burst": 0}}"#)
                .contains("rate_limit.burst")
        );
        assert!(err(r#"{"rate_limit": {"rps": 1}}"#).contains("unknown key"));
        assert!(err(r#"{"http": {"tokens": [""]}}"#).contains("http.tokens[0]"));
        assert!(err(r#"{"http": {"max_sessions": 0}}"#).contains("http.max_sessions"));
    }

    #[test]
    fn servers_reached_by_url_in_every_shape() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret-token".to_string());
        let c = Config::parse(
            r#"{"backends": {
                "own": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}, "timeout": 7},
                "nokey": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${NO_SUCH_VAR}"}}}}"#,
            Path::new("/etc/gangway/test.json"),
            &lookup,
        )
        .expect("valid");
        let own = backend(&c, "own");
        assert!(own.remote && !own.disabled);
        assert_eq!(own.command, "http://127.0.0.1:8000/mcp");
        assert_eq!(
            own.env,
            vec![(
                "Authorization".to_string(),
                "Bearer s3cret-token".to_string()
            )]
        );
        assert_eq!(own.timeout, Duration::from_secs(7));
        assert!(
            !format!("{own:?}").contains("s3cret"),
            "header values stay out of Debug"
        );
        let nokey = backend(&c, "nokey");
        assert!(
            nokey.disabled,
            "an unset variable in a header disables only that backend"
        );
        let code = parse(r#"{"mcpServers": {"api": {"type": "http", "url": "http://h:1/mcp", "headers": {"X-Key": "k"}}}}"#)
            .expect("Claude Code's .mcp.json shape");
        assert!(backend(&code, "api").remote && !backend(&code, "api").disabled);
        assert!(
            err(r#"{"backends": {"a": {"url": "http://h/mcp", "args": ["x"]}}}"#)
                .contains("backends.a.args")
        );
        assert!(err(r#"{"backends": {"a": {"url": "ftp://h/mcp"}}}"#).contains("backends.a.url"));
    }

    #[test]
    fn ca_file_is_read_with_the_config_and_resolved_against_its_directory() {
        let dir = std::env::temp_dir().join(format!("gangway-ca-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
        let file = dir.join("gangway.json");
        let lookup = |name: &str| (name == "CA_DIR").then(|| dir.display().to_string());
        let parse_in = |text: &str| Config::parse(text, &file, &lookup);

        let c = parse_in(
            r#"{"backends": {
                "rel": {"url": "https://127.0.0.1:1/mcp", "ca_file": "ca.pem"},
                "var": {"url": "https://127.0.0.1:1/mcp", "ca_file": "${CA_DIR}/ca.pem"},
                "none": {"url": "https://127.0.0.1:1/mcp"}}}"#,
        )
        .expect("valid");
        assert_eq!(
            backend(&c, "rel").ca_file(),
            Some(dir.join("ca.pem").as_path())
        );
        assert_eq!(
            backend(&c, "var").ca_file(),
            Some(dir.join("ca.pem").as_path())
        );
        assert_eq!(backend(&c, "none").ca_file(), None);
        let desktop = parse_in(
            r#"{"mcpServers": {"api": {"type": "http", "url": "https://h/mcp", "ca_file": "ca.pem"}}}"#,
        )
        .expect("a client file's entry takes ca_file too");
        assert_eq!(
            backend(&desktop, "api").ca_file(),
            Some(dir.join("ca.pem").as_path())
        );

        let missing =
            parse_in(r#"{"backends": {"a": {"url": "https://h/mcp", "ca_file": "nope.pem"}}}"#)
                .unwrap_err()
                .to_string();
        assert_has(
            &missing,
            &["backends.a.ca_file", "nope.pem", "PEM file of the CA"],
        );
        let junk =
            parse_in(r#"{"backends": {"a": {"url": "https://h/mcp", "ca_file": "junk.pem"}}}"#)
                .unwrap_err()
                .to_string();
        assert_has(
            &junk,
            &["backends.a.ca_file", "junk.pem", "no PEM certificate"],
        );
        let stdio = parse_in(r#"{"backends": {"a": {"command": "x", "ca_file": "ca.pem"}}}"#)
            .unwrap_err()
            .to_string();
        assert_has(
            &stdio,
            &["backends.a.ca_file", "https \"url\"", "remove it"],
        );
        let stdio = parse_in(r#"{"mcpServers": {"a": {"command": "x", "ca_file": "ca.pem"}}}"#)
            .unwrap_err()
            .to_string();
        assert_has(&stdio, &["mcpServers.a.ca_file", "remove it"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
