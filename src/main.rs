//! Process entry: parse the command line, load the config, then either serve MCP on stdio
//! or run one of the setup commands (`check`, `tools`, `call`, `install-service`,
//! `uninstall-service`), and map the outcome to an exit code (0 success, 1 runtime or
//! backend failure, 2 usage or config error, 130 interrupted).

use gangway::cli::{self, Cli, Command};
use gangway::config::{self, Config};
use gangway::logfmt::{self, LogFormat};
use gangway::runtime::guard;
use gangway::setup::{self, Outcome};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli.version {
        println!("gangway {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = guard::init() {
        eprintln!("gangway: {e}");
        return ExitCode::from(2);
    }
    // The setup commands print reports; the backends' chatter belongs under debug there.
    let default_level = match cli.command {
        None | Some(Command::Serve(_)) => log::LevelFilter::Info,
        Some(_) => log::LevelFilter::Warn,
    };
    let level = cli.command.as_ref().and_then(Command::log_level);
    // A setup command reports every backend failure itself, in its table or message, so
    // the gateway's own log of them would say it twice (unless a level is asked for).
    let quiet = matches!(
        cli.command,
        Some(Command::Check(_) | Command::Tools(_) | Command::Call(_))
    )
    .then_some("gangway::gateway=off");
    let format = cli
        .command
        .as_ref()
        .and_then(Command::log_format)
        .or(cli.log_format)
        .unwrap_or_default();
    init_logging(
        default_level,
        quiet,
        level.or(cli.log_level.as_deref()),
        format,
    );
    // The service commands set up systemd; they load no config.
    if let Some(c @ (Command::InstallService(_) | Command::UninstallService(_))) = &cli.command {
        return service(c);
    }
    let flag = cli
        .command
        .as_ref()
        .and_then(Command::config)
        .cloned()
        .or(cli.config);
    let (path, tried) = cli::config_path(flag, std::env::var("GANGWAY_CONFIG").ok());
    if !path.exists() {
        report(&format!(
            "no config file at {} (tried {}). Create one (see config.example.json) or pass --config PATH",
            path.display(),
            tried.join(", ")
        ));
        return ExitCode::from(2);
    }
    let config = match Config::load(&path, &config::process_env) {
        Ok(c) => c,
        Err(e) => {
            report(&e.to_string());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = guard::start_watchdog() {
        log::warn!("could not start the watchdog ({e}); if gangway is killed with SIGKILL, processes its backends started may keep running");
    }
    match cli.command {
        None => serve(&config, &path),
        Some(Command::Serve(args)) => serve_http(&config, &path, &args),
        Some(command) => run_setup(&command, &config),
    }
}

/// Parses the command line as `argh::from_env` does, except that a usage error exits
/// with 2, like every other usage error.
fn parse_args() -> Result<Cli, ExitCode> {
    let mut strings = Vec::new();
    for arg in std::env::args_os() {
        match arg.into_string() {
            Ok(s) => strings.push(s),
            Err(bad) => {
                eprintln!(
                    "gangway: argument {:?} is not valid UTF-8; gangway's arguments must be",
                    bad.to_string_lossy()
                );
                return Err(ExitCode::from(2));
            }
        }
    }
    let cmd = strings
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("gangway")
        .to_string();
    let args: Vec<&str> = strings.iter().skip(1).map(String::as_str).collect();
    argh::FromArgs::from_args(&[cmd.as_str()], &args).map_err(|exit: argh::EarlyExit| {
        match exit.status {
            Ok(()) => {
                println!("{}", exit.output);
                ExitCode::SUCCESS
            }
            Err(()) => {
                eprintln!("{}\nRun {cmd} --help for more information.", exit.output);
                ExitCode::from(2)
            }
        }
    })
}

fn serve(config: &Config, path: &Path) -> ExitCode {
    log::info!(
        "gangway {} serving {} backend(s) from {}",
        env!("CARGO_PKG_VERSION"),
        config.enabled().count(),
        path.display()
    );
    match gangway::runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e.to_string());
            ExitCode::from(1)
        }
    }
}

/// `gangway serve`: listens, then serves every HTTP client until a signal stops it.
fn serve_http(config: &Config, path: &Path, args: &cli::ServeArgs) -> ExitCode {
    let http = &config.http;
    let listen = args
        .listen
        .clone()
        .or_else(|| http.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            report(&format!("cannot listen on {listen:?}: give an IP address and port, such as 127.0.0.1:8000 or [::1]:8000"));
            return ExitCode::from(2);
        }
    };
    if !addr.ip().is_loopback() && http.tokens.is_empty() && !args.allow_unauthenticated {
        report(&format!("refusing to listen on {addr}, which is not a loopback address, without authentication: anyone who reaches it could use every backend. Set \"http\": {{\"tokens\": [\"${{GANGWAY_TOKEN}}\"]}} in {}, or pass --allow-unauthenticated if a proxy in front authenticates", path.display()));
        return ExitCode::from(2);
    }
    let listener = match mio::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            report(&format!("cannot listen on {addr}: {e}. Is another gangway (or another server) using that port? Pick another with --listen"));
            return ExitCode::from(1);
        }
    };
    let front = gangway::http::HttpFront::new(gangway::http::Settings::from_config(config));
    let local = listener.local_addr().unwrap_or(addr);
    log::info!(
        "gangway {} serving {} backend(s) from {} on http://{local}/mcp{}",
        env!("CARGO_PKG_VERSION"),
        config.enabled().count(),
        path.display(),
        if http.tokens.is_empty() {
            ""
        } else {
            " (bearer tokens required)"
        }
    );
    match gangway::runtime::run_serve(config, listener, front) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e.to_string());
            ExitCode::from(1)
        }
    }
}

fn run_setup(command: &Command, config: &Config) -> ExitCode {
    if let Err(e) = setup::handle_interrupts() {
        log::warn!("cannot handle Ctrl-C ({e}); interrupting may leave docker containers until gangway's next start");
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut err = io::stderr();
    let result = match command {
        Command::Check(_) => setup::check(config, &mut out, &mut err),
        Command::Tools(a) => setup::tools(config, a.backend.as_deref(), &mut out, &mut err),
        Command::Call(a) => setup::call(
            config,
            &a.backend,
            &a.tool,
            a.json_args.as_deref(),
            &mut out,
            &mut err,
        ),
        // Dispatched before this; kept total for the compiler.
        Command::Serve(_) | Command::InstallService(_) | Command::UninstallService(_) => {
            return ExitCode::from(2)
        }
    };
    setup_exit(result.and_then(|outcome| out.flush().map(|()| outcome)))
}

/// `gangway install-service` and `gangway uninstall-service`: see [`setup::service`].
fn service(command: &Command) -> ExitCode {
    use setup::service::{self, InstallRequest, Scope};
    let (name, user, system) = match command {
        Command::InstallService(a) => ("install-service", a.user, a.system),
        Command::UninstallService(a) => ("uninstall-service", a.user, a.system),
        _ => return ExitCode::from(2),
    };
    let scope = match Scope::from_flags(user, system) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gangway {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut out, mut err) = (io::stdout().lock(), io::stderr());
    let result = match command {
        Command::InstallService(a) => {
            let req = InstallRequest {
                scope,
                config: a.config.as_deref(),
                listen: a.listen.as_deref(),
                dry_run: a.dry_run,
                enable: a.enable,
            };
            service::install(&req, &mut out, &mut err)
        }
        Command::UninstallService(a) => service::uninstall(scope, a.dry_run, &mut out, &mut err),
        _ => return ExitCode::from(2),
    };
    setup_exit(result)
}

/// The exit code of a setup command that wrote its report to stdout (flushed here).
fn setup_exit(result: io::Result<Outcome>) -> ExitCode {
    match result.and_then(|outcome| io::stdout().flush().map(|()| outcome)) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        // The reader went away (`gangway tools | head`): nothing left to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gangway: cannot write the output: {e}");
            ExitCode::from(Outcome::Failed.code())
        }
    }
}

/// The log format chosen on the command line, for [`report`].
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Reports an error that ends gangway on stderr: `gangway: MESSAGE`, or a JSON log line
/// (level error) with `--log-format json`, so a log collector sees why it stopped.
fn report(message: &str) {
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => eprintln!("gangway: {message}"),
        LogFormat::Json => eprintln!(
            "{}",
            logfmt::json_line(
                std::time::SystemTime::now(),
                log::Level::Error,
                "gangway",
                message
            )
        ),
    }
}

/// Logs to stderr at `default` level (`quiet` filters applied unless a `level` is given;
/// `RUST_LOG` wins over both), each record as one line in `format`.
fn init_logging(
    default: log::LevelFilter,
    quiet: Option<&str>,
    level: Option<&str>,
    format: LogFormat,
) {
    let _ = FORMAT.set(format);
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default);
    if let (Some(quiet), None) = (quiet, level) {
        builder.parse_filters(quiet);
    }
    if let Some(level) = level {
        builder.parse_filters(level);
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        builder.parse_filters(&env);
    }
    builder
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let message = record.args().to_string();
            let line = match format {
                LogFormat::Text => logfmt::text_line(record.level(), &message),
                LogFormat::Json => logfmt::json_line(
                    std::time::SystemTime::now(),
                    record.level(),
                    record.target(),
                    &message,
                ),
            };
            writeln!(buf, "{line}")
        })
        .init();
}
