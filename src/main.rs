//! Process entry: parse the command line, load the config, run the gateway, and map the
//! outcome to an exit code (0 clean shutdown, 1 runtime failure, 2 usage or config error).

use gangway::cli::{self, Cli};
use gangway::config::{self, Config};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    if cli.version {
        println!("gangway {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_level.as_deref());
    let (path, tried) = cli::config_path(cli.config, std::env::var("GANGWAY_CONFIG").ok());
    if !path.exists() {
        eprintln!(
            "gangway: no config file at {} (tried {}). Create one (see config.example.json) or pass --config PATH",
            path.display(),
            tried.join(", ")
        );
        return ExitCode::from(2);
    }
    let config = match Config::load(&path, &config::process_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gangway: {e}");
            return ExitCode::from(2);
        }
    };
    log::info!(
        "gangway {} serving {} backend(s) from {}",
        env!("CARGO_PKG_VERSION"),
        config.enabled().count(),
        path.display()
    );
    match gangway::runtime::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gangway: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: Option<&str>) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Info);
    if let Some(level) = level {
        builder.parse_filters(level);
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        builder.parse_filters(&env);
    }
    builder
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(
                buf,
                "gangway {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
}
