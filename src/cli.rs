//! Command-line interface: the top-level flags (which serve MCP on stdio) and the
//! subcommands: `serve` (HTTP), those for the person setting gangway up (`check`, `tools`,
//! `call`), and the systemd unit's `install-service` and `uninstall-service`.

use crate::logfmt::LogFormat;
use argh::FromArgs;
use std::path::PathBuf;

/// gangway: one stdio MCP server that fronts many. Run it from an MCP client (Claude
/// Desktop, Claude Code, ...) in place of your MCP servers; it starts each backend on
/// first use and stops it when idle. Without a command it serves MCP on stdin/stdout.
#[derive(FromArgs, Debug)]
#[argh(
    example = "Serve MCP on stdio (what an MCP client runs):\n  {command_name} --config ~/.config/gangway/config.json\n\nTry the config from a shell:\n  {command_name} check --config config.json\n  {command_name} tools github\n  {command_name} call everything echo '{{\"message\": \"hi\"}}'",
    error_code(
        1,
        "a backend failed (check, tools, call) or gangway failed while serving"
    ),
    error_code(2, "bad usage, or the config file is missing or invalid"),
    error_code(130, "a command was interrupted; every backend was stopped")
)]
pub struct Cli {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr: error, warn, info, debug or trace (default: info when
    /// serving, warn for the commands; RUST_LOG takes precedence when set)
    #[argh(option)]
    pub log_level: Option<String>,

    /// log line format on stderr: text (the default) or json (one object per line: time,
    /// level, target, backend, session, message)
    #[argh(option)]
    pub log_format: Option<LogFormat>,

    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,

    /// a tool for setting gangway up; none: serve MCP on stdio
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// `gangway check`
    Check(CheckArgs),
    /// `gangway tools`
    Tools(ToolsArgs),
    /// `gangway call`
    Call(CallArgs),
    /// `gangway serve`
    Serve(ServeArgs),
    /// `gangway install-service`
    InstallService(InstallServiceArgs),
    /// `gangway uninstall-service`
    UninstallService(UninstallServiceArgs),
}

impl Command {
    /// The `--log-level` given to the subcommand, if any.
    pub fn log_level(&self) -> Option<&str> {
        match self {
            Command::Check(a) => a.log_level.as_deref(),
            Command::Tools(a) => a.log_level.as_deref(),
            Command::Call(a) => a.log_level.as_deref(),
            Command::Serve(a) => a.log_level.as_deref(),
            Command::InstallService(_) | Command::UninstallService(_) => None,
        }
    }

    /// The `--log-format` given to the subcommand, if any.
    pub fn log_format(&self) -> Option<LogFormat> {
        match self {
            Command::Serve(a) => a.log_format,
            _ => None,
        }
    }

    /// The `--config` given to the subcommand for gangway to load, if any
    /// (`install-service`'s names the service's config, which it does not load).
    pub fn config(&self) -> Option<&PathBuf> {
        match self {
            Command::Check(a) => a.config.as_ref(),
            Command::Tools(a) => a.config.as_ref(),
            Command::Call(a) => a.config.as_ref(),
            Command::Serve(a) => a.config.as_ref(),
            Command::InstallService(_) | Command::UninstallService(_) => None,
        }
    }
}

/// start every enabled backend once and report on each: status, start time, tools, error
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "check",
    note = "Validates the config; when a backend runs `docker run`, checks that the Docker \
daemon answers (and says how to fix it when not); then starts every enabled backend at the \
same time, runs initialize and tools/list, stops it, and prints a table: backend, status \
(ok, failed, disabled, skipped), start time (until the initialize answer), tool count and \
error (the gateway's own, with the backend's last stderr lines).",
    example = "{command_name} --config ~/.config/gangway/config.json",
    error_code(1, "a backend failed, or Docker is needed and not reachable"),
    error_code(2, "bad usage, or the config file is missing or invalid"),
    error_code(130, "interrupted; every backend was stopped")
)]
pub struct CheckArgs {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr, as before the command (error, warn, info, debug, trace)
    #[argh(option)]
    pub log_level: Option<String>,
}

/// list the tools of every enabled backend, or of one, with their descriptions
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "tools",
    note = "Starts the backends, lists their tools grouped by backend and stops them. Each \
line shows the name a client calls through gangway (BACKEND__TOOL), the backend's own name \
for the tool (what use_tool and `gangway call` take) and the first line of its description.",
    example = "{command_name}\n{command_name} --config config.json github",
    error_code(1, "a backend failed to start or to list its tools"),
    error_code(2, "unknown backend, bad usage, or a missing or invalid config"),
    error_code(130, "interrupted; every backend was stopped")
)]
pub struct ToolsArgs {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr, as before the command (error, warn, info, debug, trace)
    #[argh(option)]
    pub log_level: Option<String>,

    /// the backend to list (default: every enabled backend)
    #[argh(positional)]
    pub backend: Option<String>,
}

/// call one tool of one backend and print the result
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "call",
    note = "Starts BACKEND, calls its tool TOOL with JSON_ARGS (a JSON object; quote it for \
the shell), prints the result's content (text as text, anything else as one line of JSON) \
and stops the backend: try a backend from the shell without an MCP client. The backend's \
\"tools\" filter does not apply (a note says when it refuses TOOL to clients).",
    example = "{command_name} everything echo '{{\"message\": \"hello\"}}'\n{command_name} --config config.json time get_current_time '{{\"timezone\": \"UTC\"}}'",
    error_code(
        1,
        "the tool returned an error (isError), or the backend or the call failed"
    ),
    error_code(
        2,
        "invalid JSON_ARGS, unknown backend, bad usage, or a missing or invalid config"
    ),
    error_code(130, "interrupted; the backend was stopped")
)]
pub struct CallArgs {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr, as before the command (error, warn, info, debug, trace)
    #[argh(option)]
    pub log_level: Option<String>,

    /// the backend, as named in the config
    #[argh(positional)]
    pub backend: String,

    /// the tool, by the backend's own name (`echo`, not `BACKEND__echo`)
    #[argh(positional)]
    pub tool: String,

    /// the tool's arguments as a JSON object (default: an empty object)
    #[argh(positional)]
    pub json_args: Option<String>,
}

/// serve MCP over HTTP to every client that connects (Streamable HTTP on /mcp, HTTP+SSE on /sse)
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "serve",
    note = "One shared gateway for every client on the machine: clients connect to \
http://HOST:PORT/mcp (Streamable HTTP) or /sse (the older HTTP+SSE transport), each gets a \
session of its own, and all share the backends. Settings come from the config's \"http\" \
object (listen, tokens, allowed_origins, session_timeout, max_connections, max_sessions); \
--listen overrides its address. gangway refuses a non-loopback address without tokens \
unless --allow-unauthenticated is given.",
    example = "{command_name} --config config.json\n{command_name} --listen 127.0.0.1:9000\nclaude mcp add --transport http gangway http://127.0.0.1:8000/mcp",
    error_code(1, "the address cannot be listened on, or serving failed"),
    error_code(2, "bad usage, or a missing or invalid config")
)]
pub struct ServeArgs {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr, as before the command (error, warn, info, debug, trace)
    #[argh(option)]
    pub log_level: Option<String>,

    /// log line format on stderr, as before the command: text or json
    #[argh(option)]
    pub log_format: Option<LogFormat>,

    /// address to listen on, HOST:PORT (default: http.listen from the config, else
    /// 127.0.0.1:8000)
    #[argh(option)]
    pub listen: Option<String>,

    /// listen on a non-loopback address without http.tokens (anyone who can reach the
    /// port can use every backend)
    #[argh(switch)]
    pub allow_unauthenticated: bool,
}

/// install `gangway serve` as a systemd service (a unit file for the user's or the system's manager)
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "install-service",
    note = "Writes gangway.service, running this gangway binary as `gangway serve` (Type=notify, \
restart on failure, a watchdog, hardening; see dist/systemd/gangway.service), to \
~/.config/systemd/user/ (--user, the default) or /etc/systemd/system/ (--system, as root; the \
service runs as a user of its own in the docker group), runs `systemctl daemon-reload` and \
prints the command that starts it. --dry-run prints the unit instead, and changes nothing.",
    example = "{command_name} --config ~/.config/gangway/config.json\n{command_name} --dry-run > gangway.service\nsudo {command_name} --system --listen 127.0.0.1:8000",
    error_code(1, "the unit could not be written, or systemctl failed"),
    error_code(2, "bad usage")
)]
pub struct InstallServiceArgs {
    /// for your user's service manager (systemctl --user; the default)
    #[argh(switch)]
    pub user: bool,

    /// for the system's service manager (needs root)
    #[argh(switch)]
    pub system: bool,

    /// the config the service reads (default: ~/.config/gangway/config.json for --user,
    /// /etc/gangway/config.json for --system)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// the address the service listens on, HOST:PORT (default: http.listen from the
    /// config, else 127.0.0.1:8000)
    #[argh(option)]
    pub listen: Option<String>,

    /// print the unit to stdout; write nothing, run nothing
    #[argh(switch)]
    pub dry_run: bool,

    /// also enable and start the service (systemctl enable --now gangway)
    #[argh(switch)]
    pub enable: bool,
}

/// stop and remove the systemd service that install-service installed
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "uninstall-service",
    note = "Stops and disables gangway.service (when systemctl is there), removes its unit \
file and runs `systemctl daemon-reload`. A unit that is not installed is not an error.",
    example = "{command_name}\nsudo {command_name} --system",
    error_code(1, "the unit could not be removed, or systemctl failed"),
    error_code(2, "bad usage")
)]
pub struct UninstallServiceArgs {
    /// the user's service (the default)
    #[argh(switch)]
    pub user: bool,

    /// the system's service (needs root)
    #[argh(switch)]
    pub system: bool,

    /// print what would be done; change nothing
    #[argh(switch)]
    pub dry_run: bool,
}

/// Where the config file is, following `--config`, then `$GANGWAY_CONFIG`, then
/// `./config.json`. Returns the candidate and a description of every place tried.
pub fn config_path(flag: Option<PathBuf>, env: Option<String>) -> (PathBuf, Vec<String>) {
    if let Some(p) = flag {
        let tried = vec![format!("--config {}", p.display())];
        return (p, tried);
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        let tried = vec![format!("$GANGWAY_CONFIG={p}")];
        return (PathBuf::from(p), tried);
    }
    (
        PathBuf::from("config.json"),
        vec!["./config.json (no --config given, $GANGWAY_CONFIG not set)".to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, argh::EarlyExit> {
        Cli::from_args(&["gangway"], args)
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let (p, _) = config_path(Some("a.json".into()), Some("b.json".into()));
        assert_eq!(p, PathBuf::from("a.json"));
        let (p, tried) = config_path(None, Some("b.json".into()));
        assert_eq!(p, PathBuf::from("b.json"));
        assert!(tried[0].contains("GANGWAY_CONFIG"));
        let (p, _) = config_path(None, Some(String::new()));
        assert_eq!(p, PathBuf::from("config.json"));
    }

    #[test]
    fn no_subcommand_still_serves() {
        let cli = parse(&["--config", "x.json", "--log-level", "debug"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.config, Some(PathBuf::from("x.json")));
    }

    #[test]
    fn subcommands_take_their_own_config_and_positionals() {
        let cli = parse(&["check", "-c", "a.json"]).expect("parses");
        assert!(matches!(&cli.command, Some(Command::Check(_))));
        assert_eq!(
            cli.command.as_ref().and_then(Command::config),
            Some(&PathBuf::from("a.json"))
        );

        let cli = parse(&["tools"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Tools(ToolsArgs { backend: None, .. }))
        ));

        let cli =
            parse(&["-c", "top.json", "call", "alpha", "echo", "{\"text\":1}"]).expect("parses");
        assert_eq!(cli.config, Some(PathBuf::from("top.json")));
        let Some(Command::Call(call)) = cli.command else {
            panic!("a call command");
        };
        assert_eq!(
            (call.backend.as_str(), call.tool.as_str()),
            ("alpha", "echo")
        );
        assert_eq!(call.json_args.as_deref(), Some("{\"text\":1}"));

        assert!(parse(&["call", "alpha"]).is_err(), "TOOL is required");
    }

    #[test]
    fn log_format_is_taken_before_the_command_or_after_serve() {
        let cli = parse(&["--log-format", "json"]).expect("parses");
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        let cli = parse(&["serve", "--log-format", "json"]).expect("parses");
        assert_eq!(
            cli.command.as_ref().and_then(Command::log_format),
            Some(LogFormat::Json)
        );
        assert!(parse(&["--log-format", "xml"]).is_err());
    }

    #[test]
    fn service_commands_take_a_scope_and_load_no_config() {
        let cli = parse(&[
            "install-service",
            "--system",
            "-c",
            "/etc/g.json",
            "--dry-run",
        ])
        .expect("parses");
        let Some(Command::InstallService(a)) = &cli.command else {
            panic!("install-service");
        };
        assert!(a.system && !a.user && a.dry_run && !a.enable);
        assert_eq!(a.config, Some(PathBuf::from("/etc/g.json")));
        assert_eq!(cli.command.as_ref().and_then(Command::config), None);
        let cli = parse(&["uninstall-service", "--user"]).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::UninstallService(UninstallServiceArgs {
                user: true,
                ..
            }))
        ));
    }

    #[test]
    fn log_level_is_accepted_after_the_subcommand_too() {
        for args in [
            &["check", "--log-level", "debug"][..],
            &["tools", "--log-level", "debug", "alpha"],
            &["call", "alpha", "echo", "--log-level", "debug"],
        ] {
            let cli = parse(args).expect("parses");
            let level = cli.command.as_ref().and_then(Command::log_level);
            assert_eq!(level, Some("debug"), "{args:?}");
        }
    }
}
