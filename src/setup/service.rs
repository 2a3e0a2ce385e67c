//! `gangway install-service` and `gangway uninstall-service`: the systemd unit shipped in
//! `dist/systemd/gangway.service`, rendered with this binary's path, the config path and
//! the scope, written where the user's or the system's service manager looks, and removed
//! again.
//!
//! The unit as shipped is the user unit. For the system scope, [`render`] replaces the
//! user scope's user namespace and writable paths with a user of the service's own
//! (`DynamicUser=yes`) in the `docker` group, whose home is its state directory, and
//! installs it for `multi-user.target`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Outcome;

/// The unit as shipped (the user scope's), compiled in.
pub const UNIT: &str = include_str!("../../dist/systemd/gangway.service");
/// The unit's file name.
pub const UNIT_NAME: &str = "gangway.service";

/// The lines of [`UNIT`] that only the user scope has (see [`render`]).
const USER_ONLY: [&str; 4] = [
    "PrivateUsers=yes",
    "Environment=XDG_CACHE_HOME=%C",
    "CacheDirectory=gangway",
    "ReadWritePaths=",
];
/// What the system scope has in their place.
const SYSTEM_ONLY: &str = "DynamicUser=yes\n\
SupplementaryGroups=docker\n\
StateDirectory=gangway\n\
Environment=HOME=%S/gangway\n";

/// Which service manager the unit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The user's own (`systemctl --user`), running as the user.
    User,
    /// The system's (`systemctl`), running as a user of its own.
    System,
}

impl Scope {
    /// The scope the flags ask for: `--user` (the default) or `--system`.
    ///
    /// # Errors
    ///
    /// When both are given.
    pub fn from_flags(user: bool, system: bool) -> Result<Scope, String> {
        match (user, system) {
            (true, true) => Err("give --user or --system, not both".to_string()),
            (_, true) => Ok(Scope::System),
            _ => Ok(Scope::User),
        }
    }

    /// `systemctl` with this scope's flag and `args`, as typed by a person.
    fn command_line(self, args: &str) -> String {
        match self {
            Scope::User => format!("systemctl --user {args}"),
            Scope::System => format!("systemctl {args}"),
        }
    }

    /// Runs `systemctl` with this scope's flag and `args`; Ok(None) when it is not
    /// installed, else whether it succeeded and what it wrote to stderr.
    fn systemctl(self, args: &[&str]) -> io::Result<Option<(bool, String)>> {
        let mut cmd = Command::new("systemctl");
        if self == Scope::User {
            cmd.arg("--user");
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match out {
            Ok(o) => Ok(Some((
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Where `scope`'s unit file goes: `$XDG_CONFIG_HOME/systemd/user/` (an absolute
/// `XDG_CONFIG_HOME`), else `$HOME/.config/systemd/user/` for the user, and
/// `/etc/systemd/system/` for the system. `env` looks up environment variables.
///
/// # Errors
///
/// For the user scope when neither variable gives an absolute path.
pub fn unit_path(scope: Scope, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    if scope == Scope::System {
        return Ok(Path::new("/etc/systemd/system").join(UNIT_NAME));
    }
    let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let config = env("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| env("HOME").and_then(absolute).map(|h| h.join(".config")))
        .ok_or("neither XDG_CONFIG_HOME nor HOME is an absolute path, so the user's unit folder is unknown; set HOME, or use --system")?;
    Ok(config.join("systemd").join("user").join(UNIT_NAME))
}

/// `arg` as one word of a systemd `ExecStart=` line: `%` and `$` doubled (systemd would
/// expand them), quoted when it holds a space, a quote or a backslash.
///
/// # Errors
///
/// When `arg` holds a control character (a newline would end the directive).
fn exec_word(arg: &str) -> Result<String, String> {
    if arg.chars().any(char::is_control) {
        return Err(format!(
            "{arg:?} holds a control character, which a unit file cannot carry; use another path"
        ));
    }
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty() || escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        Ok(format!(
            "\"{}\"",
            escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(escaped)
    }
}

/// The unit for `scope`: [`UNIT`] with `ExecStart=` running `exe serve`, with `--config
/// config` (default: `%E/gangway/config.json`, that is `~/.config/gangway/config.json` for
/// the user, `/etc/gangway/config.json` for the system) and `--listen listen` when given.
/// For the system scope, the user scope's own lines become the system-only lines
/// and the unit is wanted by `multi-user.target` instead of `default.target`.
///
/// # Errors
///
/// When a path is not UTF-8 or holds a control character.
pub fn render(
    scope: Scope,
    exe: &Path,
    config: Option<&Path>,
    listen: Option<&str>,
) -> Result<String, String> {
    let text = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not UTF-8, which a unit file needs", p.display()))
    };
    let mut exec = format!("ExecStart={} serve --config ", exec_word(&text(exe)?)?);
    match config {
        Some(c) => exec.push_str(&exec_word(&text(c)?)?),
        None => exec.push_str("%E/gangway/config.json"),
    }
    if let Some(listen) = listen {
        let _ = write!(exec, " --listen {}", exec_word(listen)?);
    }
    let mut out = String::with_capacity(UNIT.len() + 256);
    for line in UNIT.lines() {
        let system = scope == Scope::System;
        if line.starts_with("ExecStart=") {
            out.push_str(&exec);
            out.push('\n');
        } else if system && USER_ONLY.iter().any(|u| line.starts_with(u)) {
            // All of them are replaced by the system's lines, once, at the first.
            if line.starts_with(USER_ONLY[0]) {
                out.push_str(SYSTEM_ONLY);
            }
        } else if system && line == "WantedBy=default.target" {
            out.push_str("WantedBy=multi-user.target\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// What `install-service` was asked to do.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    /// The service manager.
    pub scope: Scope,
    /// The config the service reads (default: `%E/gangway/config.json`).
    pub config: Option<&'a Path>,
    /// The address it listens on (default: the config's, else 127.0.0.1:8000).
    pub listen: Option<&'a str>,
    /// Print the unit to `out` instead of installing it.
    pub dry_run: bool,
    /// Also run `systemctl enable --now`.
    pub enable: bool,
}

/// `gangway install-service`: renders the unit for this binary (see [`render`]) and, unless
/// a dry run, writes it to [`unit_path`], runs `systemctl daemon-reload` (and `enable
/// --now` when asked), and prints the commands that start and follow the service. A dry
/// run prints the unit alone to `out`. Problems and notes go to `err`.
///
/// # Errors
///
/// When `out` or `err` cannot be written. Everything else is reported on `err` and
/// returned as an [`Outcome`]: usage errors as `Usage`, a failed write or `systemctl` as
/// `Failed`.
pub fn install(
    req: &InstallRequest,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            writeln!(
                err,
                "gangway: cannot find gangway's own binary for ExecStart: {e}"
            )?;
            return Ok(Outcome::Failed);
        }
    };
    if let Some(listen) = req.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            writeln!(err, "gangway: cannot listen on {listen:?}: give an IP address and port, such as 127.0.0.1:8000")?;
            return Ok(Outcome::Usage);
        }
    }
    // The service does not start in this folder: a relative path must be made whole.
    let config = match req.config {
        Some(c) if c.is_relative() => match std::env::current_dir() {
            Ok(dir) => Some(dir.join(c)),
            Err(e) => {
                writeln!(
                    err,
                    "gangway: cannot make {} absolute ({e}); give an absolute --config",
                    c.display()
                )?;
                return Ok(Outcome::Usage);
            }
        },
        other => other.map(Path::to_path_buf),
    };
    let unit = match render(req.scope, &exe, config.as_deref(), req.listen) {
        Ok(u) => u,
        Err(e) => {
            writeln!(err, "gangway: cannot write the unit: {e}")?;
            return Ok(Outcome::Usage);
        }
    };
    let path = match unit_path(req.scope, &|k| std::env::var(k).ok()) {
        Ok(p) => p,
        Err(e) => {
            writeln!(err, "gangway: {e}")?;
            return Ok(Outcome::Usage);
        }
    };
    if req.scope == Scope::System && (exe.starts_with("/home") || exe.starts_with("/root")) {
        writeln!(err, "gangway: note: {} is in a home folder, which the service's own user cannot reach; copy it to /usr/local/bin and run install-service from there", exe.display())?;
    }
    if let Some(c) = config.as_deref().filter(|c| !c.exists()) {
        writeln!(
            err,
            "gangway: note: {} does not exist yet; create it before starting the service",
            c.display()
        )?;
    }
    if req.dry_run {
        out.write_all(unit.as_bytes())?;
        writeln!(
            err,
            "gangway: dry run: this unit would be written to {}",
            path.display()
        )?;
        return Ok(Outcome::Success);
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, &unit));
    if let Err(e) = written {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            "; the system scope needs root: sudo gangway install-service --system"
        } else {
            ""
        };
        writeln!(err, "gangway: cannot write {}: {e}{hint}", path.display())?;
        return Ok(Outcome::Failed);
    }
    writeln!(out, "wrote {}", path.display())?;
    let scope = req.scope;
    let Some(reloaded) = run_systemctl(scope, &["daemon-reload"], err)? else {
        writeln!(err, "gangway: note: systemctl is not installed here; the unit takes effect on a machine with systemd after `{}`", scope.command_line("daemon-reload"))?;
        if req.enable {
            writeln!(err, "gangway: cannot enable the service without systemctl")?;
            return Ok(Outcome::Failed);
        }
        return Ok(Outcome::Success);
    };
    if !reloaded {
        return Ok(Outcome::Failed);
    }
    if req.enable {
        if run_systemctl(scope, &["enable", "--now", UNIT_NAME], err)? != Some(true) {
            return Ok(Outcome::Failed);
        }
        writeln!(out, "enabled and started gangway")?;
    } else {
        writeln!(
            out,
            "start it now and at every boot or login:\n  {}",
            scope.command_line("enable --now gangway")
        )?;
    }
    let journal = match scope {
        Scope::User => "journalctl --user -u gangway -f",
        Scope::System => "journalctl -u gangway -f",
    };
    writeln!(
        out,
        "see how it is doing:\n  {}\n  {journal}",
        scope.command_line("status gangway")
    )?;
    if scope == Scope::User {
        writeln!(
            out,
            "keep it running while you are logged out:\n  loginctl enable-linger \"$USER\""
        )?;
    }
    Ok(Outcome::Success)
}

/// Runs `systemctl ARGS` for `scope`, reporting a failure on `err`. Returns None when
/// systemctl is not installed, else whether it succeeded.
fn run_systemctl(scope: Scope, args: &[&str], err: &mut dyn Write) -> io::Result<Option<bool>> {
    let line = scope.command_line(&args.join(" "));
    match scope.systemctl(args) {
        Ok(None) => Ok(None),
        Ok(Some((true, _))) => Ok(Some(true)),
        Ok(Some((false, stderr))) => {
            writeln!(err, "gangway: `{line}` failed: {stderr}")?;
            Ok(Some(false))
        }
        Err(e) => {
            writeln!(err, "gangway: cannot run `{line}`: {e}")?;
            Ok(Some(false))
        }
    }
}

/// `gangway uninstall-service`: stops and disables the service when systemctl is there,
/// removes the unit file from [`unit_path`] and runs `systemctl daemon-reload`. A dry run
/// prints what it would do. A unit that is not installed is not an error.
///
/// # Errors
///
/// When `out` or `err` cannot be written; everything else is reported on `err` and
/// returned as an [`Outcome`].
pub fn uninstall(
    scope: Scope,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Outcome> {
    let path = match unit_path(scope, &|k| std::env::var(k).ok()) {
        Ok(p) => p,
        Err(e) => {
            writeln!(err, "gangway: {e}")?;
            return Ok(Outcome::Usage);
        }
    };
    if dry_run {
        writeln!(out, "{}", scope.command_line("disable --now gangway"))?;
        writeln!(out, "rm {}", path.display())?;
        writeln!(out, "{}", scope.command_line("daemon-reload"))?;
        return Ok(Outcome::Success);
    }
    // A unit that was never started is not loaded, and says so: that is fine here.
    let systemd = match scope.systemctl(&["disable", "--now", UNIT_NAME]) {
        Ok(None) => false,
        Ok(Some(_)) => true,
        Err(e) => {
            writeln!(
                err,
                "gangway: note: cannot run systemctl ({e}); the service may still run"
            )?;
            false
        }
    };
    match std::fs::remove_file(&path) {
        Ok(()) => writeln!(out, "removed {}", path.display())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            writeln!(out, "no unit at {}; nothing to remove", path.display())?;
        }
        Err(e) => {
            let hint = if e.kind() == io::ErrorKind::PermissionDenied {
                "; the system scope needs root: sudo gangway uninstall-service --system"
            } else {
                ""
            };
            writeln!(err, "gangway: cannot remove {}: {e}{hint}", path.display())?;
            return Ok(Outcome::Failed);
        }
    }
    if systemd && run_systemctl(scope, &["daemon-reload"], err)? == Some(false) {
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_user_unit_goes_under_the_config_home_and_the_system_one_under_etc() {
        let at = |vars: &[(&str, &str)]| unit_path(Scope::User, &env(vars));
        assert_eq!(
            at(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Ok(PathBuf::from("/x/systemd/user/gangway.service"))
        );
        assert_eq!(
            at(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]),
            Ok(PathBuf::from("/h/.config/systemd/user/gangway.service")),
            "a relative XDG_CONFIG_HOME is ignored"
        );
        assert!(at(&[]).is_err_and(|e| e.contains("HOME")));
        assert_eq!(
            unit_path(Scope::System, &env(&[])),
            Ok(PathBuf::from("/etc/systemd/system/gangway.service"))
        );
    }

    #[test]
    fn exec_start_runs_this_binary_with_the_config_and_address() {
        let unit = render(
            Scope::User,
            Path::new("/opt/gw/gangway"),
            Some(Path::new("/home/u/My Configs/gw%1.json")),
            Some("127.0.0.1:9000"),
        )
        .expect("renders");
        let exec: Vec<&str> = unit
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(
            exec,
            ["ExecStart=/opt/gw/gangway serve --config \"/home/u/My Configs/gw%%1.json\" --listen 127.0.0.1:9000"]
        );
        let default = render(Scope::User, Path::new("/g"), None, None).expect("renders");
        assert!(default.contains("\nExecStart=/g serve --config %E/gangway/config.json\n"));
        // The rest is the shipped unit, line for line.
        assert_eq!(default.lines().count(), UNIT.lines().count());
        assert!(
            default.contains("\nType=notify\n") && default.contains("\nWantedBy=default.target\n")
        );
    }

    #[test]
    fn the_system_unit_runs_as_a_user_of_its_own_in_the_docker_group() {
        let unit = render(
            Scope::System,
            Path::new("/usr/local/bin/gangway"),
            None,
            None,
        )
        .expect("renders");
        for line in SYSTEM_ONLY.lines() {
            assert_eq!(
                unit.matches(&format!("\n{line}\n")).count(),
                1,
                "{line}: {unit}"
            );
        }
        for user in USER_ONLY {
            assert!(
                UNIT.contains(&format!("\n{user}")),
                "the shipped unit has {user}"
            );
            assert!(!unit.contains(&format!("\n{user}")), "{user}: {unit}");
        }
        assert!(unit.contains("\nWantedBy=multi-user.target\n"));
        assert!(!unit.contains("default.target"));
    }

    #[test]
    fn exec_words_survive_systemds_parsing() {
        assert_eq!(
            exec_word("/usr/bin/gangway"),
            Ok("/usr/bin/gangway".to_string())
        );
        assert_eq!(exec_word("/a b"), Ok("\"/a b\"".to_string()));
        assert_eq!(exec_word("/a\"b\\c"), Ok("\"/a\\\"b\\\\c\"".to_string()));
        assert_eq!(exec_word("/$HOME/%h"), Ok("/$$HOME/%%h".to_string()));
        assert!(exec_word("/a\nExecStartPre=/bin/evil").is_err());
        assert!(render(Scope::User, Path::new("/g\n"), None, None).is_err());
    }

    #[test]
    fn one_of_user_or_system() {
        assert_eq!(Scope::from_flags(false, false), Ok(Scope::User));
        assert_eq!(Scope::from_flags(true, false), Ok(Scope::User));
        assert_eq!(Scope::from_flags(false, true), Ok(Scope::System));
        assert!(Scope::from_flags(true, true).is_err());
    }
}
