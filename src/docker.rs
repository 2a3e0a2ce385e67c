//! Docker backends: a backend whose command is `docker run …` gets a container name and
//! labels that say which gangway instance and which backend started it, so gangway can
//! remove the container on every way the backend stops (`docker rm -f NAME`) and, at its
//! next start, remove containers left by an instance that was killed.
//!
//! Pure argument and text handling lives here; the runtime runs the commands.

use crate::config::BackendConfig;
use std::collections::HashSet;
use std::process::{Command, Stdio};

/// Label naming the gangway instance that started a container.
pub const LABEL_INSTANCE: &str = "gangway.instance";
/// Label naming the backend a container serves.
pub const LABEL_BACKEND: &str = "gangway.backend";
/// Label describing the process that owns the instance, so another gangway can tell
/// whether it still runs: `HOST/BOOT/PIDNS/PID/STARTTIME`.
pub const LABEL_OWNER: &str = "gangway.owner";
/// Label with the id of the container gangway itself runs in, when it runs in one.
pub const LABEL_CONTAINER: &str = "gangway.container";

/// `docker` global options that take a value as the next argument.
const GLOBAL_VALUE_OPTS: &[&str] = &[
    "-H",
    "--host",
    "-c",
    "--context",
    "--config",
    "-l",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];
/// `docker run` long options that take no value (every other long option takes one).
const RUN_BOOL_LONG: &[&str] = &[
    "--detach",
    "--interactive",
    "--tty",
    "--rm",
    "--privileged",
    "--init",
    "--publish-all",
    "--read-only",
    "--no-healthcheck",
    "--oom-kill-disable",
    "--sig-proxy",
    "--disable-content-trust",
    "--quiet",
    "--help",
    "--use-api-socket",
];
/// `docker run` short options that take no value.
const RUN_BOOL_SHORT: &[char] = &['d', 'i', 't', 'P', 'q'];

/// Who this gangway process is, as written into the labels of the containers it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Random id of this run, 12 hex digits; part of every generated container name.
    pub id: String,
    /// The owning process: `HOST/BOOT/PIDNS/PID/STARTTIME` (see [`LABEL_OWNER`]).
    pub owner: String,
    /// The id of the container gangway runs in, if it runs in one.
    pub container: Option<String>,
    /// The nesting depth its containers get as `GANGWAY_DEPTH` (see
    /// [`crate::runtime::guard`]): a gangway image run as a backend counts as nested too.
    pub child_depth: u32,
}

impl Instance {
    /// This process's identity, read from /proc. Never fails: what cannot be read is left
    /// empty, which only makes other instances treat ours as alive.
    pub fn current() -> Instance {
        let pid = std::process::id();
        let start = proc_start_time(pid).map_or_else(String::new, |t| t.to_string());
        let owner = format!(
            "{}/{}/{}/{pid}/{start}",
            hostname(),
            boot_id(),
            pid_namespace()
        );
        let container = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| own_container_id(&m));
        Instance {
            id: random_id(),
            owner,
            container,
            child_depth: crate::runtime::guard::child_depth(),
        }
    }
}

/// A container gangway starts for a backend, and how to reach the daemon that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The docker executable (the backend's command).
    pub program: String,
    /// Global options given before `run` (`--context`, `-H`, …), reused for `rm` and `ps`.
    pub global: Vec<String>,
    /// The container's name.
    pub name: String,
    /// Whether the user chose the name (`--name`); then a restart must wait until the old
    /// container is removed, or docker refuses the name.
    pub user_named: bool,
}

impl Container {
    /// `docker [global] rm -f NAME`, with its output discarded: removes the container,
    /// killing it first if it still runs. Fails harmlessly when it is already gone.
    pub fn remove_command(&self) -> Command {
        self.remove_id_command(&self.name)
    }

    /// `docker [global] rm -f ID`, like [`Container::remove_command`] for another
    /// container of the same daemon.
    pub fn remove_id_command(&self, id: &str) -> Command {
        let mut cmd = docker_command(&self.program, &self.global);
        cmd.args(["rm", "-f", id]);
        cmd
    }

    /// `docker [global] ps -aq --no-trunc` filtered to the container of this name that
    /// carries instance `instance`'s label: how a user-named container is found before it
    /// is removed, since a container of that name may belong to someone else (the name was
    /// taken, and `docker run` failed). Its output, read by [`container_ids`], goes to
    /// stdout, which the caller sets.
    pub fn lookup_command(&self, instance: &str) -> Command {
        let mut cmd = docker_command(&self.program, &self.global);
        // Docker matches the name filter as a regular expression against the name with or
        // without its leading slash; names hold only [A-Za-z0-9_.-].
        let name = self.name.trim_start_matches('/').replace('.', "\\.");
        cmd.args(["ps", "-aq", "--no-trunc", "--filter"])
            .arg(format!("label={LABEL_INSTANCE}={instance}"))
            .arg("--filter")
            .arg(format!("name=^/?{name}$"));
        cmd
    }
}

/// At most this many ids are taken from a lookup's output (a name matches one container;
/// the bound only keeps a misbehaving `docker` from making gangway start many commands).
pub const LOOKUP_MAX_IDS: usize = 4;

/// The container ids in the output of [`Container::lookup_command`]: lines of hex digits,
/// at most [`LOOKUP_MAX_IDS`].
pub fn container_ids(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.len() <= 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .take(LOOKUP_MAX_IDS)
        .map(str::to_string)
        .collect()
}

/// For docker's stderr line saying a `--name` is taken (`Conflict. The container name
/// "/X" is already in use by container "ID"`), a sentence for the user saying so, that
/// gangway leaves that container alone, and what to do; `None` for any other line.
pub fn name_conflict(line: &str, backend: &str) -> Option<String> {
    let name = between(line, "The container name \"", "\"")?;
    let id = between(line, "is already in use by container \"", "\"")?;
    let name = name.trim_start_matches('/');
    let short = &id[..id.len().min(12)];
    Some(format!(
        "gangway: the container name \"{name}\" is already taken by container {short}, which this \
         gangway did not start and will not remove. Give backend '{backend}' another --name in \
         the config (or none: gangway then generates a unique one), or remove or rename that \
         container yourself (docker rm -f {name})"
    ))
}

fn between<'a>(line: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = line.find(start)? + start.len();
    let len = line[from..].find(end)?;
    Some(&line[from..from + len]).filter(|s| !s.is_empty())
}

/// A backend's command line as gangway runs it: `args` (rewritten for `docker run`), and
/// the container when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The arguments to give the backend's command.
    pub args: Vec<String>,
    /// The container the command starts, for `docker run` backends.
    pub container: Option<Container>,
}

/// Where `docker run` (or `docker container run`) sits in a docker command line.
struct RunCommand {
    /// Global options before the subcommand.
    global: Vec<String>,
    /// Index of the first argument after `run`.
    options_start: usize,
}

/// Whether `cfg` runs `docker run` (its command is `docker`, by name or path).
pub fn is_docker_run(cfg: &BackendConfig) -> bool {
    find_run(&cfg.command, &cfg.args).is_some()
}

/// Whether `cfg` runs `docker run` with a container name the user chose (`--name`): every
/// start then reuses that one name, which docker refuses while the last start's container
/// still exists. A generated name differs at every start.
pub fn has_fixed_name(cfg: &BackendConfig) -> bool {
    find_run(&cfg.command, &cfg.args).is_some_and(|run| {
        scan_run_options(&cfg.args[run.options_start..])
            .name
            .is_some()
    })
}

/// The command line for start number `seq` of backend `cfg`. For `docker run`, gangway
/// adds right after `run`: `--name gangway-BACKEND-INSTANCE-SEQ` (unless the user gave
/// `--name`), the labels, `--env GANGWAY_DEPTH=N` (nesting is counted inside containers
/// too), `-i` when missing (MCP needs stdin) and `--rm` when missing (and
/// no `--restart` policy forbids it). Other commands are returned unchanged.
pub fn launch(cfg: &BackendConfig, instance: &Instance, seq: u64) -> Launch {
    let Some(run) = find_run(&cfg.command, &cfg.args) else {
        return Launch {
            args: cfg.args.clone(),
            container: None,
        };
    };
    let opts = scan_run_options(&cfg.args[run.options_start..]);
    let (name, user_named) = match opts.name {
        Some(n) => (n, true),
        None => (
            format!("gangway-{}-{}-{seq}", sanitize_name(&cfg.name), instance.id),
            false,
        ),
    };
    let mut added: Vec<String> = Vec::new();
    if !user_named {
        added.extend(["--name".to_string(), name.clone()]);
    }
    let mut label = |k: &str, v: &str| {
        added.push("--label".to_string());
        added.push(format!("{k}={v}"));
    };
    label(LABEL_INSTANCE, &instance.id);
    label(LABEL_BACKEND, &cfg.name);
    label(LABEL_OWNER, &instance.owner);
    if let Some(c) = &instance.container {
        label(LABEL_CONTAINER, c);
    }
    added.push("--env".to_string());
    added.push(format!(
        "{}={}",
        crate::runtime::guard::DEPTH_VAR,
        instance.child_depth
    ));
    if !opts.interactive {
        added.push("--interactive".to_string());
    }
    if !opts.rm && !opts.restart {
        added.push("--rm".to_string());
    }
    let mut args = cfg.args[..run.options_start].to_vec();
    args.extend(added);
    args.extend_from_slice(&cfg.args[run.options_start..]);
    Launch {
        args,
        container: Some(Container {
            program: cfg.command.clone(),
            global: run.global,
            name,
            user_named,
        }),
    }
}

/// `docker [global] ps -a --no-trunc --format …`: every container, one per line as
/// `ID<TAB>STATE<TAB>INSTANCE<TAB>OWNER<TAB>CONTAINER` (labels empty when absent), which
/// [`stale_containers`] reads.
pub fn scan_command(program: &str, global: &[String]) -> Command {
    let mut cmd = docker_command(program, global);
    let format = format!(
        "{{{{.ID}}}}\t{{{{.State}}}}\t{{{{.Label \"{LABEL_INSTANCE}\"}}}}\t{{{{.Label \"{LABEL_OWNER}\"}}}}\t{{{{.Label \"{LABEL_CONTAINER}\"}}}}"
    );
    cmd.args(["ps", "-a", "--no-trunc", "--format", &format]);
    cmd
}

/// The ids of containers in `scan` (the output of [`scan_command`]) that a gangway
/// instance other than `me` started and whose owner is known to be gone: a process in
/// our PID namespace that no longer runs (or is another process now), an owner container
/// that is not running, or an owner on this host from before a reboot. Containers whose
/// owner cannot be judged from here (another host, another PID namespace without a
/// container) are left alone. `start_time(pid)` reads a process's start time.
pub fn stale_containers(
    scan: &str,
    me: &Instance,
    start_time: &dyn Fn(u32) -> Option<u64>,
) -> Vec<String> {
    let rows: Vec<Vec<&str>> = scan
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() >= 5)
        .collect();
    let running: HashSet<&str> = rows
        .iter()
        .filter(|f| f[1] == "running")
        .map(|f| f[0])
        .collect();
    let mine = Owner::parse(&me.owner);
    rows.iter()
        .filter(|f| !f[2].is_empty() && f[2] != me.id && !f[3].is_empty())
        .filter(|f| {
            let alive = match (Owner::parse(f[3]), &mine) {
                (Some(o), Some(m)) => o.alive(m, f[4], &running, start_time),
                _ => None,
            };
            alive == Some(false)
        })
        .map(|f| f[0].to_string())
        .collect()
}

/// The parts of an owner label.
struct Owner<'a> {
    host: &'a str,
    boot: &'a str,
    pidns: &'a str,
    pid: u32,
    start: u64,
}

impl<'a> Owner<'a> {
    fn parse(s: &'a str) -> Option<Owner<'a>> {
        let mut it = s.split('/');
        let (host, boot, pidns) = (it.next()?, it.next()?, it.next()?);
        let pid = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        if it.next().is_some() || host.is_empty() || boot.is_empty() || pidns.is_empty() {
            return None;
        }
        Some(Owner {
            host,
            boot,
            pidns,
            pid,
            start,
        })
    }

    /// Whether the owner still runs, judged from `me`; `None` when it cannot be told.
    fn alive(
        &self,
        me: &Owner<'_>,
        container: &str,
        running: &HashSet<&str>,
        start_time: &dyn Fn(u32) -> Option<u64>,
    ) -> Option<bool> {
        if self.host == me.host && self.boot == me.boot && self.pidns == me.pidns {
            return Some(start_time(self.pid) == Some(self.start));
        }
        if !container.is_empty() {
            return Some(running.contains(container));
        }
        if self.host == me.host && self.boot != me.boot {
            return Some(false);
        }
        None
    }
}

/// The docker command for `program` with `global` options, output discarded, no stdin.
fn docker_command(program: &str, global: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(global)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn find_run(command: &str, args: &[String]) -> Option<RunCommand> {
    let program = std::path::Path::new(command).file_name()?.to_str()?;
    if program != "docker" && program != "docker.exe" {
        return None;
    }
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "run" {
            return Some(RunCommand {
                global: args[..i].to_vec(),
                options_start: i + 1,
            });
        }
        if a == "container" && args.get(i + 1).is_some_and(|n| n == "run") {
            return Some(RunCommand {
                global: args[..i].to_vec(),
                options_start: i + 2,
            });
        }
        if !a.starts_with('-') {
            return None;
        }
        if GLOBAL_VALUE_OPTS.contains(&a) {
            i += 1;
        }
        i += 1;
    }
    None
}

/// What the options of a `docker run` (before the image) already say.
#[derive(Default)]
struct RunOptions {
    name: Option<String>,
    interactive: bool,
    rm: bool,
    restart: bool,
    /// Index of the image among the scanned arguments.
    image: Option<usize>,
}

/// Whether `command args` is a `docker run` of gangway's own image (`gangway`,
/// `gangway:TAG`, `REGISTRY/PATH/gangway[:TAG][@DIGEST]`), for the config's guard against
/// a file that makes gangway start itself.
pub fn runs_gangway_image(command: &str, args: &[String]) -> bool {
    let Some(run) = find_run(command, args) else {
        return false;
    };
    let rest = args.get(run.options_start..).unwrap_or_default();
    let image = scan_run_options(rest).image.and_then(|i| rest.get(i));
    image.is_some_and(|image| {
        let image = image.split_once('@').map_or(image.as_str(), |(i, _)| i);
        let last = image.rsplit('/').next().unwrap_or(image);
        last.split_once(':').map_or(last, |(n, _)| n) == "gangway"
    })
}

/// Reads `docker run` options up to the image (the first argument that is not an option
/// or an option's value), so the image's own arguments are never mistaken for options.
fn scan_run_options(args: &[String]) -> RunOptions {
    let mut o = RunOptions::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" || !a.starts_with('-') || a == "-" {
            o.image = Some(if a == "--" { i + 1 } else { i });
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (key, inline) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (long, None),
            };
            let flag = format!("--{key}");
            let takes_value = !RUN_BOOL_LONG.contains(&flag.as_str());
            let value = match (inline, takes_value) {
                (Some(v), _) => Some(v.to_string()),
                (None, true) => {
                    i += 1;
                    args.get(i).cloned()
                }
                (None, false) => None,
            };
            let on = value.as_deref() != Some("false");
            match key {
                "name" => o.name = value,
                "interactive" => o.interactive = on,
                "rm" => o.rm = on,
                "restart" => o.restart = value.as_deref().is_some_and(|v| v != "no"),
                _ => {}
            }
        } else {
            // A cluster of short flags (`-it`); the first that takes a value ends it,
            // with the rest of the cluster or the next argument as its value.
            for (pos, c) in a.char_indices().skip(1) {
                if RUN_BOOL_SHORT.contains(&c) {
                    o.interactive |= c == 'i';
                    continue;
                }
                if pos + c.len_utf8() == a.len() {
                    i += 1;
                }
                break;
            }
        }
        i += 1;
    }
    o
}

/// A backend name as a docker name part: `[A-Za-z0-9_.-]`, other characters become `-`.
fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The id of the container this process runs in, from its mount table: docker bind-mounts
/// `/etc/hostname` from `…/containers/<64 hex>/hostname`.
fn own_container_id(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) != Some(&"/etc/hostname") {
            return None;
        }
        let root = fields.get(3)?;
        let rest = &root[root.find("/containers/")? + "/containers/".len()..];
        let id = rest.split('/').next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

/// The start time of process `pid` in clock ticks since boot (field 22 of its stat).
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname").replace('/', "_")
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
        .chars()
        .take(8)
        .collect()
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// 12 random hex digits from the kernel, or from the clock and pid if that fails.
pub fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mixed.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn backend(command: &str, args: &[&str]) -> BackendConfig {
        BackendConfig {
            name: "gh".to_string(),
            command: command.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            description: None,
            timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(120),
            client_request_timeout: Duration::from_secs(600),
            idle_timeout: None,
            disabled: false,
            prefix: "gh".to_string(),
            tools: Default::default(),
            expose: crate::config::Expose::Meta,
            direct: vec![],
            scope: crate::config::Scope::Shared,
            keep_warm: 0,
            remote: false,
            sse: false,
            disabled_reason: None,
            env_remove: vec![],
            vars: vec![],
        }
    }

    fn me() -> Instance {
        Instance {
            id: "abcdef012345".to_string(),
            owner: "host/b00t/4026531836/100/5000".to_string(),
            container: None,
            child_depth: 1,
        }
    }

    #[test]
    fn docker_run_gets_name_labels_and_keeps_image_arguments() {
        let cfg = backend(
            "docker",
            &[
                "run",
                "-i",
                "--rm",
                "-e",
                "TOKEN",
                "ghcr.io/x/y",
                "--name",
                "z",
            ],
        );
        let l = launch(&cfg, &me(), 3);
        let c = l.container.expect("a docker run backend");
        assert_eq!(c.name, "gangway-gh-abcdef012345-3");
        assert!(!c.user_named);
        assert!(
            !has_fixed_name(&cfg),
            "a --name after the image is the server's"
        );
        assert!(c.global.is_empty());
        assert_eq!(
            l.args,
            [
                "run",
                "--name",
                "gangway-gh-abcdef012345-3",
                "--label",
                "gangway.instance=abcdef012345",
                "--label",
                "gangway.backend=gh",
                "--label",
                "gangway.owner=host/b00t/4026531836/100/5000",
                "--env",
                "GANGWAY_DEPTH=1",
                "-i",
                "--rm",
                "-e",
                "TOKEN",
                "ghcr.io/x/y",
                "--name",
                "z"
            ]
        );
    }

    #[test]
    fn user_name_global_options_and_missing_flags() {
        let cfg = backend(
            "/usr/bin/docker",
            &[
                "--context",
                "remote",
                "container",
                "run",
                "--name=mine",
                "img",
            ],
        );
        let l = launch(&cfg, &me(), 1);
        let c = l.container.expect("docker container run is a docker run");
        assert_eq!(c.name, "mine");
        assert!(c.user_named);
        assert!(has_fixed_name(&cfg));
        assert!(has_fixed_name(&backend(
            "docker",
            &["run", "--name", "x", "img"]
        )));
        assert!(!has_fixed_name(&backend(
            "podman",
            &["run", "--name", "x", "img"]
        )));
        assert_eq!(c.global, ["--context", "remote"]);
        assert_eq!(&l.args[..3], ["--context", "remote", "container"]);
        assert_eq!(l.args[3], "run");
        assert!(l.args.contains(&"--interactive".to_string()));
        assert!(l.args.contains(&"--rm".to_string()));
        assert!(!l.args.contains(&"--name".to_string()));
        assert_eq!(l.args.last().map(String::as_str), Some("img"));
    }

    #[test]
    fn short_flag_clusters_and_restart_policies_are_read() {
        let o = scan_run_options(&["-it".into(), "-eX=1".into(), "img".into()]);
        assert!(o.interactive && !o.rm);
        let o = scan_run_options(&["-e".into(), "-i".into(), "img".into(), "-i".into()]);
        assert!(!o.interactive, "-i is the value of -e here");
        let o = scan_run_options(&["--restart".into(), "always".into(), "img".into()]);
        assert!(o.restart);
        let l = launch(
            &backend("docker", &["run", "--restart=always", "i"]),
            &me(),
            1,
        );
        assert!(!l.args.contains(&"--rm".to_string()));
    }

    #[test]
    fn gangways_own_image_is_recognised_in_every_spelling() {
        let runs = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            runs_gangway_image("docker", &args)
        };
        let sock = "/var/run/docker.sock:/var/run/docker.sock";
        assert!(runs(&["run", "-i", "--rm", "-v", sock, "gangway"]));
        assert!(runs(&[
            "run",
            "-i",
            "--rm",
            "-v",
            sock,
            "gangway:0.1",
            "--config",
            "/c.json"
        ]));
        assert!(runs(&[
            "--context",
            "x",
            "container",
            "run",
            "-i",
            "ghcr.io/o/gangway:latest"
        ]));
        assert!(runs(&["run", "-i", "localhost:5000/gangway@sha256:abc"]));
        assert!(!runs(&["run", "-i", "--rm", "-e", "gangway", "mcp/time"]));
        assert!(!runs(&["run", "-i", "mcp/gangway-helper", "gangway"]));
        assert!(!runs_gangway_image(
            "podman",
            &["run".into(), "gangway".into()]
        ));
    }

    #[test]
    fn other_commands_are_untouched() {
        for (cmd, args) in [
            ("npx", vec!["-y", "server"]),
            ("docker", vec!["compose", "run", "x"]),
            ("docker", vec!["ps"]),
            ("dockerd", vec!["run"]),
        ] {
            let cfg = backend(cmd, &args);
            let l = launch(&cfg, &me(), 1);
            assert!(l.container.is_none(), "{cmd} {args:?}");
            assert_eq!(l.args, cfg.args);
        }
    }

    #[test]
    fn stale_containers_are_those_whose_owner_is_known_gone() {
        let me = me();
        let starts = |pid: u32| match pid {
            100 => Some(5000),
            200 => Some(7000),
            _ => None,
        };
        let scan = [
            // ours
            "c1\trunning\tabcdef012345\thost/b00t/4026531836/100/5000\t",
            // same namespace, process alive with the same start time
            "c2\trunning\tother1\thost/b00t/4026531836/200/7000\t",
            // same namespace, pid reused by another process
            "c3\texited\tother2\thost/b00t/4026531836/200/6999\t",
            // same namespace, process gone
            "c4\trunning\tother3\thost/b00t/4026531836/300/1\t",
            // another container namespace; owner container running
            "c5\trunning\tother4\tx/b00t/999/1/9\townerA",
            // owner container gone
            "c6\trunning\tother5\tx/b00t/998/1/9\townerB",
            // this host before a reboot
            "c7\texited\tother6\thost/0ld0/4026531836/100/5000\t",
            // another host: cannot tell
            "c8\trunning\tother7\telsewhere/b00t/1/1/1\t",
            // not gangway's
            "ownerA\trunning\t\t\t",
            "c9\trunning\tother8\tgarbage\t",
        ]
        .join("\n");
        assert_eq!(
            stale_containers(&scan, &me, &starts),
            ["c3", "c4", "c6", "c7"]
        );
    }

    #[test]
    fn container_id_comes_from_the_hostname_mount() {
        let id = "a".repeat(64);
        let info = format!(
            "600 500 0:52 /var/lib/docker/containers/{id}/mounts/shm /dev/shm rw - tmpfs shm rw\n\
             601 500 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(own_container_id(&info), Some(id));
        let host = format!(
            "600 500 0:52 / /var/lib/docker/containers/{}/mounts/shm rw - tmpfs shm rw\n",
            "b".repeat(64)
        );
        assert_eq!(own_container_id(&host), None);
    }

    #[test]
    fn a_user_named_container_is_looked_up_by_this_instances_label_and_exact_name() {
        let cfg = backend(
            "docker",
            &["--context", "c", "run", "--name", "my.db", "img"],
        );
        let c = launch(&cfg, &me(), 1)
            .container
            .expect("a docker run backend");
        let cmd = c.lookup_command("abcdef012345");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--context",
                "c",
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                "label=gangway.instance=abcdef012345",
                "--filter",
                "name=^/?my\\.db$"
            ]
        );
        let out = format!("{}\n\nnot-an-id\n{}\n", "a".repeat(64), "b".repeat(64));
        assert_eq!(container_ids(&out), ["a".repeat(64), "b".repeat(64)]);
        let many = format!("{}\n", "c".repeat(12)).repeat(10);
        assert_eq!(container_ids(&many).len(), LOOKUP_MAX_IDS);
    }

    #[test]
    fn dockers_name_conflict_becomes_a_sentence_saying_whose_the_name_is() {
        let line = "docker: Error response from daemon: Conflict. The container name \"/db\" is already in use by container \"0123456789abcdef0123\". You have to remove (or rename) that container to be able to reuse that name.";
        let s = name_conflict(line, "gh").expect("a conflict line");
        for part in [
            "\"db\" is already taken by container 0123456789ab",
            "will not remove",
            "backend 'gh'",
            "docker rm -f db",
        ] {
            assert!(s.contains(part), "{part:?} missing in: {s}");
        }
        assert_eq!(
            name_conflict("docker: Conflict. something else", "gh"),
            None
        );
    }

    #[test]
    fn this_process_has_a_parseable_owner() {
        let me = Instance::current();
        assert_eq!(me.id.len(), 12);
        let o = Owner::parse(&me.owner).expect("owner label parses");
        assert_eq!(o.pid, std::process::id());
        assert_eq!(proc_start_time(o.pid), Some(o.start));
    }
}
