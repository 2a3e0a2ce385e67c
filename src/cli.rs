//! Command-line interface.

use argh::FromArgs;
use std::path::PathBuf;

/// gangway: one stdio MCP server that fronts many. Run it from an MCP client (Claude
/// Desktop, Claude Code, ...) in place of your MCP servers; it starts each backend on
/// first use and stops it when idle.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// config file (default: $GANGWAY_CONFIG, else ./config.json)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,

    /// log level for stderr: error, warn, info, debug or trace (default: info; RUST_LOG
    /// takes precedence when set)
    #[argh(option)]
    pub log_level: Option<String>,

    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
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
}
