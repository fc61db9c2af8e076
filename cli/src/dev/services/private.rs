//! The private PostgreSQL and Redis `ordinaut dev` starts when none is given or found:
//! reachable by the current user only. PostgreSQL listens on 127.0.0.1 alone (no Unix
//! socket) and requires a password (SCRAM) generated at first start and kept in
//! `<data dir>/postgres.password` (mode 0600); Redis listens on 127.0.0.1 alone and requires
//! a password generated at each start, handed to it on its standard input (never on its
//! command line, never in a file). The URLs holding the passwords are written only to
//! `dev.json` (0600); what is printed hides them. Data folders are 0700, logs 0600.
//!
//! PostgreSQL refuses to run as root, so as root both servers run as the `postgres` (else
//! `nobody`) account, through `setpriv`. Every private server runs in its own process
//! group (a Ctrl-C in the terminal reaches only `ordinaut dev`, which stops the servers after
//! the last run is recorded) with a parent-death signal (they also stop if it is killed).

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::anyhow;
use nix::sys::signal::Signal;
use nix::unistd::User;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use super::{PrivateService, check_postgres, create_database, failed, find_program};
use crate::CliError;
use crate::dev::output::Printer;

/// The private PostgreSQL's superuser password file, under the data folder.
pub const PG_PASSWORD_FILE: &str = "postgres.password";

/// What the private PostgreSQL accepts: password (SCRAM) connections over TCP from
/// 127.0.0.1, nothing else (there is no Unix socket).
const PG_HBA: &str = "# Written by `ordinaut dev` at each start: password (SCRAM) connections \
                      from 127.0.0.1 only.\nhost all all 127.0.0.1/32 scram-sha-256\n";

/// The account the private servers run as when we are root.
pub struct RunAs {
    name: String,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

fn run_as() -> Result<Option<RunAs>, CliError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(u)) = User::from_name(name) {
            return Ok(Some(RunAs {
                name: name.to_string(),
                uid: u.uid,
                gid: u.gid,
            }));
        }
    }
    Err(CliError::failed(anyhow!(
        "running as root: PostgreSQL refuses to run as root and there is no `postgres` or \
         `nobody` account to run it as; run `ordinaut dev` as a normal user or pass --database-url"
    )))
}

/// A command for `program`, through `setpriv` (when present) for a parent-death signal and,
/// as root, to drop to `user`.
fn command(
    program: &Path,
    args: &[&str],
    user: Option<&RunAs>,
    death: &str,
) -> Result<Command, CliError> {
    let setpriv = find_program("setpriv", &["/usr/bin", "/bin"]);
    let mut cmd = match (&setpriv, user) {
        (Some(sp), _) => {
            let mut c = Command::new(sp);
            if let Some(u) = user {
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .arg("--clear-groups");
            }
            c.arg("--pdeathsig").arg(death).arg("--").arg(program);
            c
        }
        (None, Some(_)) => {
            return Err(CliError::failed(anyhow!(
                "running as root: the private servers must run as another user and `setpriv` \
                 (util-linux) is missing; install util-linux, run as a normal user, or pass \
                 --database-url and --redis-url"
            )));
        }
        (None, None) => Command::new(program),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    Ok(cmd)
}

/// A log file readable by its owner only (stdout and stderr of a server).
fn log_to(path: &Path) -> Result<(Stdio, Stdio), CliError> {
    let open = || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // A log left by an older version may be world-readable.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let err = file.try_clone()?;
        Ok::<_, std::io::Error>((Stdio::from(file), Stdio::from(err)))
    };
    open().map_err(|e| CliError::failed(anyhow!("cannot open {}: {e}", path.display())))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n  ")
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::failed(anyhow!("cannot find a free port: {e}")))
}

/// 32 hexadecimal digits from the kernel's random source (safe in a URL as written).
fn generate_password() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| failed("cannot read /dev/urandom for a password", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` to a new file readable by its owner only (replacing any file there).
fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let write = || {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    };
    write().map_err(|e| CliError::failed(anyhow!("cannot write {}: {e}", path.display())))
}

/// Creates `dir` (mode 0700) or tightens it to 0700, owned by `user` when given.
fn private_folder(dir: &Path, user: Option<&RunAs>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(u) = user {
        std::os::unix::fs::chown(dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Where a private server keeps its files: `<data dir>/<name>`, or, as root when the account
/// that runs it cannot reach that folder (e.g. under a private home), a folder under
/// `/var/lib/ordinaut/` named after the data folder. Mode 0700, owned by that account.
async fn server_dir(
    data_dir: &Path,
    user: Option<&RunAs>,
    name: &str,
) -> Result<PathBuf, CliError> {
    let preferred = data_dir.join(name);
    let Some(u) = user else {
        private_folder(&preferred, None)
            .map_err(|e| failed(&format!("cannot create {}", preferred.display()), e))?;
        return Ok(preferred);
    };
    let absolute = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in absolute.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let fallback = PathBuf::from(format!("/var/lib/ordinaut/dev-{h:016x}/{name}"));
    for dir in [&preferred, &fallback] {
        if private_folder(dir, Some(u)).is_err() {
            continue;
        }
        let mut probe = command(
            Path::new("test"),
            &["-w", &dir.to_string_lossy()],
            Some(u),
            "KILL",
        )?;
        if probe.status().await.is_ok_and(|s| s.success()) {
            return Ok(dir.clone());
        }
    }
    Err(CliError::failed(anyhow!(
        "running as root: the private {name} server must run as `{}`, who can reach neither {} \
         nor {}; pass --data-dir under a folder every user may enter, run as a normal user, or \
         pass --database-url and --redis-url",
        u.name,
        preferred.display(),
        fallback.display()
    )))
}

/// Runs `cmd` to completion with `input` on its standard input and its output in `log`.
async fn run_logged(mut cmd: Command, input: &str, log: &Path, what: &str) -> Result<(), CliError> {
    let (out, err) = log_to(log)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| failed(&format!("cannot run {what}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| failed(&format!("cannot write to {what}"), e))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| failed(&format!("cannot run {what}"), e))?;
    if status.success() {
        return Ok(());
    }
    Err(CliError::failed(anyhow!(
        "{what} failed ({status}); its log ({}):\n  {}",
        log.display(),
        tail(log)
    )))
}

/// Creates the cluster on first start, gives the superuser a generated password (on first
/// start, or once for a cluster an older `ordinaut dev` created with trust authentication)
/// and allows only password connections from 127.0.0.1. Returns the password.
async fn prepare_cluster(
    bin: &Path,
    pgdata: &Path,
    data_dir: &Path,
    user: Option<&RunAs>,
    printer: &Printer,
) -> Result<String, CliError> {
    let pgdata_s = pgdata.to_string_lossy().to_string();
    let password_file = data_dir.join(PG_PASSWORD_FILE);
    let fresh = !pgdata.join("PG_VERSION").exists();
    if fresh {
        printer.note(&format!(
            "initializing a private PostgreSQL in {pgdata_s} (first start only)"
        ));
        let args = [
            "-D",
            &pgdata_s,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ];
        let initdb = command(&bin.join("initdb"), &args, user, "KILL")?;
        run_logged(initdb, "", &data_dir.join("postgres-init.log"), "initdb").await?;
    }
    let stored = std::fs::read_to_string(&password_file)
        .ok()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let password = match stored {
        Some(p) if !fresh => p,
        _ => {
            // Single-user mode: no listening socket while the password is set.
            let password = generate_password()?;
            let args = [
                "--single",
                "-D",
                &pgdata_s,
                "-c",
                "password_encryption=scram-sha-256",
                "postgres",
            ];
            let single = command(&bin.join("postgres"), &args, user, "KILL")?;
            let sql = format!("ALTER ROLE postgres PASSWORD '{password}';\n");
            let log = data_dir.join("postgres-init.log");
            run_logged(
                single,
                &sql,
                &log,
                "setting the private PostgreSQL's password",
            )
            .await?;
            write_private(&password_file, &password)?;
            password
        }
    };
    // Existing file: keeps its owner (the server's account) and mode.
    std::fs::write(pgdata.join("pg_hba.conf"), PG_HBA)
        .map_err(|e| failed(&format!("cannot write {}/pg_hba.conf", pgdata.display()), e))?;
    Ok(password)
}

/// Waits until `ready` answers, the child exits (an error with its log) or 60 s pass.
async fn wait_started<F, Fut>(
    child: &mut Child,
    log: &Path,
    what: &str,
    ready: F,
) -> Result<(), CliError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::failed(anyhow!(
                "the private {what} exited at start ({status}); its log ({}):\n  {}",
                log.display(),
                tail(log)
            )));
        }
        if ready().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(CliError::failed(anyhow!(
                "the private {what} did not answer within 60 s; its log ({}):\n  {}",
                log.display(),
                tail(log)
            )));
        }
        sleep(Duration::from_millis(100)).await;
    }
}

pub async fn start_postgres(
    bin: &Path,
    data_dir: &Path,
    printer: &Printer,
) -> Result<(PrivateService, String), CliError> {
    let user = run_as()?;
    let pgdata = server_dir(data_dir, user.as_ref(), "postgres").await?;
    let password = prepare_cluster(bin, &pgdata, data_dir, user.as_ref(), printer).await?;
    let port = free_port()?;
    let log = data_dir.join("postgres.log");
    let (out, err) = log_to(&log)?;
    let (pgdata_s, port_s) = (pgdata.to_string_lossy().to_string(), port.to_string());
    let args = [
        "-D",
        &pgdata_s,
        "-p",
        &port_s,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "password_encryption=scram-sha-256",
    ];
    let mut child = command(&bin.join("postgres"), &args, user.as_ref(), "INT")?
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| failed("cannot start postgres", e))?;
    let pid = child.id().unwrap_or_default();
    let admin = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
    wait_started(&mut child, &log, "PostgreSQL", || async {
        check_postgres(&admin).await.is_ok()
    })
    .await?;
    if let Err(e) = create_database(&admin, "ordinaut").await {
        let _ = child.kill().await;
        return Err(failed(
            "cannot create the database in the private PostgreSQL",
            e,
        ));
    }
    let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/ordinaut");
    let shown = ordinaut_store::redact_url(&url);
    printer.service(
        "PostgreSQL",
        &shown,
        &format!("private, data in {pgdata_s}"),
    );
    let service = PrivateService {
        name: "PostgreSQL",
        port,
        pid,
        child,
        stop_signal: Signal::SIGINT,
    };
    Ok((service, url))
}

/// The private Redis's configuration, given on its standard input.
fn redis_config(port: u16, dir: &Path, password: &str) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir \"{}\"\n\
         save \"\"\nappendonly no\ndaemonize no\nrequirepass {password}\n",
        dir.display()
    )
}

pub async fn start_redis(
    bin: &Path,
    data_dir: &Path,
    printer: &Printer,
) -> Result<(PrivateService, String), CliError> {
    let user = run_as()?;
    let dir = server_dir(data_dir, user.as_ref(), "redis").await?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let port = free_port()?;
    let password = generate_password()?;
    let log = data_dir.join("redis.log");
    let (out, err) = log_to(&log)?;
    // `-`: the configuration comes from standard input, so the password is on no command line.
    let mut child = command(bin, &["-"], user.as_ref(), "TERM")?
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| failed("cannot start redis-server", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let config = redis_config(port, &dir, &password);
        stdin
            .write_all(config.as_bytes())
            .await
            .map_err(|e| failed("cannot configure redis-server", e))?;
    }
    let pid = child.id().unwrap_or_default();
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    wait_started(&mut child, &log, "Redis", || {
        ordinaut_events::ping_redis(&url, Duration::from_millis(500))
    })
    .await?;
    printer.service("Redis", &ordinaut_store::redact_url(&url), "private");
    let service = PrivateService {
        name: "Redis",
        port,
        pid,
        child,
        stop_signal: Signal::SIGTERM,
    };
    Ok((service, url))
}
