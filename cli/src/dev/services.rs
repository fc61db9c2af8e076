//! PostgreSQL and Redis for `ordinaut dev`: the URLs given; else the servers on the local
//! default ports when they answer (in a database of our own, `ordinaut_dev`); else private
//! servers started from the local `initdb`/`postgres` and `redis-server` binaries under the
//! data folder, on free ports, stopped when `ordinaut dev` exits. When neither is possible,
//! one message says what to install.
//!
//! PostgreSQL refuses to run as root, so as root the private server runs as the `postgres`
//! (else `nobody`) account, through `setpriv`. Every private server runs in its own process
//! group (a Ctrl-C in the terminal reaches only `ordinaut dev`, which stops the servers after
//! the last run is recorded) with a parent-death signal (they also stop if it is killed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::anyhow;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use super::output::Printer;
use crate::CliError;

/// Where the services come from (the flags of `ordinaut dev`).
pub struct ServiceArgs<'a> {
    pub database_url: Option<&'a str>,
    pub redis_url: Option<&'a str>,
    pub pg_port: u16,
    pub redis_port: u16,
    pub data_dir: &'a Path,
}

/// A server `ordinaut dev` started and must stop.
pub struct PrivateService {
    pub name: &'static str,
    pub port: u16,
    pub pid: u32,
    child: Child,
    stop_signal: Signal,
}

/// The services to use.
pub struct Services {
    pub database_url: String,
    pub redis_url: String,
    pub private: Vec<PrivateService>,
}

enum Plan {
    Use(String),
    Start(PathBuf),
    Missing(String),
}

/// Finds or starts PostgreSQL and Redis.
pub async fn resolve(args: &ServiceArgs<'_>, printer: &Printer) -> Result<Services, CliError> {
    let pg = match args.database_url {
        Some(url) => {
            check_postgres(url).await.map_err(|e| {
                CliError::failed(anyhow!(
                    "cannot reach PostgreSQL at {} (--database-url/DATABASE_URL): {e}. Check the URL \
                     and that the server is running, or leave the URL unset: `ordinaut dev` then \
                     uses the server on 127.0.0.1:{} or starts its own",
                    ordinaut_store::redact_url(url),
                    args.pg_port
                ))
            })?;
            printer.service("PostgreSQL", &ordinaut_store::redact_url(url), "given");
            Plan::Use(url.to_string())
        }
        None => match default_postgres(args.pg_port).await {
            Ok(url) => {
                printer.service("PostgreSQL", &url, "found on the default port");
                Plan::Use(url)
            }
            Err(why) => match find_postgres() {
                Some(bin) => {
                    printer.note(&format!("{why}; starting a private PostgreSQL"));
                    Plan::Start(bin)
                }
                None => Plan::Missing(why),
            },
        },
    };
    let redis = match args.redis_url {
        Some(url) => {
            if !ordinaut_events::ping_redis(url, Duration::from_secs(3)).await {
                return Err(CliError::failed(anyhow!(
                    "cannot reach Redis at {url} (--redis-url/REDIS_URL). Check the URL and that the \
                     server is running, or leave the URL unset: `ordinaut dev` then uses the server \
                     on 127.0.0.1:{} or starts its own",
                    args.redis_port
                )));
            }
            printer.service("Redis", url, "given");
            Plan::Use(url.to_string())
        }
        None => {
            let url = format!("redis://127.0.0.1:{}", args.redis_port);
            if answers(args.redis_port).await
                && ordinaut_events::ping_redis(&url, Duration::from_secs(2)).await
            {
                printer.service("Redis", &url, "found on the default port");
                Plan::Use(url)
            } else {
                let why = format!("nothing answers on 127.0.0.1:{}", args.redis_port);
                match find_program("redis-server", &["/usr/bin", "/usr/sbin", "/usr/local/bin"]) {
                    Some(bin) => {
                        printer.note(&format!("{why}; starting a private Redis"));
                        Plan::Start(bin)
                    }
                    None => Plan::Missing(why),
                }
            }
        }
    };
    let mut missing = Vec::new();
    if let Plan::Missing(why) = &pg {
        missing.push(format!(
            "PostgreSQL: {why}, and no `initdb`/`postgres` binaries were found (looked in PATH \
             and /usr/lib/postgresql/*/bin). Install PostgreSQL (Debian/Ubuntu: `apt-get install \
             postgresql`; macOS: `brew install postgresql`) or pass --database-url"
        ));
    }
    if let Plan::Missing(why) = &redis {
        missing.push(format!(
            "Redis: {why}, and no `redis-server` binary was found in PATH. Install Redis \
             (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) or pass \
             --redis-url"
        ));
    }
    if !missing.is_empty() {
        return Err(CliError::failed(anyhow!(
            "`ordinaut dev` needs PostgreSQL and Redis:\n  {}",
            missing.join("\n  ")
        )));
    }
    let mut services = Services {
        database_url: String::new(),
        redis_url: String::new(),
        private: Vec::new(),
    };
    std::fs::create_dir_all(args.data_dir).map_err(|e| {
        CliError::failed(anyhow!(
            "cannot create the data folder {}: {e}",
            args.data_dir.display()
        ))
    })?;
    services.database_url = match pg {
        Plan::Use(url) => url,
        Plan::Start(bin) => {
            let (service, url) = start_postgres(&bin, args.data_dir, printer).await?;
            services.private.push(service);
            url
        }
        Plan::Missing(_) => String::new(),
    };
    services.redis_url = match redis {
        Plan::Use(url) => url,
        Plan::Start(bin) => match start_redis(&bin, args.data_dir, printer).await {
            Ok((service, url)) => {
                services.private.push(service);
                url
            }
            Err(e) => {
                services.stop().await;
                return Err(e);
            }
        },
        Plan::Missing(_) => String::new(),
    };
    Ok(services)
}

impl Services {
    /// Stops the servers `ordinaut dev` started: PostgreSQL with a fast shutdown (SIGINT),
    /// Redis with SIGTERM; a server still there after 15 s is killed.
    pub async fn stop(&mut self) {
        for mut service in self.private.drain(..) {
            let pid = Pid::from_raw(i32::try_from(service.pid).unwrap_or(i32::MAX));
            let _ = kill(pid, service.stop_signal);
            match timeout(Duration::from_secs(15), service.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = service.child.kill().await;
                }
            }
        }
    }
}

/// Connects and runs a trivial query, within a few seconds.
async fn check_postgres(url: &str) -> Result<(), String> {
    let attempt = async {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await
    };
    match timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// Something accepts TCP connections on 127.0.0.1:`port`.
async fn answers(port: u16) -> bool {
    matches!(
        timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// The server on the default port, with our database created in it when missing.
async fn default_postgres(port: u16) -> Result<String, String> {
    if !answers(port).await {
        return Err(format!("nothing answers on 127.0.0.1:{port}"));
    }
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let url = format!("postgres://postgres@127.0.0.1:{port}/ordinaut_dev");
    create_database(&admin, "ordinaut_dev").await.map_err(|e| {
        format!(
            "PostgreSQL on 127.0.0.1:{port} did not let user `postgres` in without a password ({e})"
        )
    })?;
    Ok(url)
}

/// Creates `name` through the admin URL unless it exists.
async fn create_database(admin: &str, name: &str) -> Result<(), String> {
    let attempt = async {
        let mut conn = PgConnection::connect(admin).await?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut conn)
            .await?;
        if exists.is_none() {
            let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await;
            match created {
                // Another process created it meanwhile.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        conn.close().await
    };
    match timeout(Duration::from_secs(10), attempt).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

/// A program on PATH or in one of `extra` directories.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The directory holding both `initdb` and `postgres`: PATH first, then Debian's
/// versioned directories (newest first).
fn find_postgres() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, d)| d));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

/// The account a private PostgreSQL runs as when we are root.
struct RunAs {
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
        "running as root: PostgreSQL refuses to run as root and there is no `postgres` or          `nobody` account to run it as; run `ordinaut dev` as a normal user or pass --database-url"
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
                "running as root: PostgreSQL must run as another user and `setpriv` (util-linux)                  is missing; install util-linux, run as a normal user, or pass --database-url"
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

fn log_to(path: &Path) -> Result<(Stdio, Stdio), CliError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CliError::failed(anyhow!("cannot open {}: {e}", path.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| CliError::failed(anyhow!("cannot open {}: {e}", path.display())))?;
    Ok((Stdio::from(file), Stdio::from(err)))
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

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(anyhow!("{what}: {e}"))
}

/// Where the private cluster lives: `<data dir>/postgres`, or, as root when the account
/// that runs it cannot reach that folder (e.g. under a private home), a folder under
/// `/var/lib/ordinaut/` named after the data folder.
async fn pg_data_dir(data_dir: &Path, user: Option<&RunAs>) -> Result<PathBuf, CliError> {
    let preferred = data_dir.join("postgres");
    let Some(u) = user else {
        return Ok(preferred);
    };
    let absolute = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in absolute.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let fallback = PathBuf::from(format!("/var/lib/ordinaut/dev-{h:016x}/postgres"));
    for dir in [&preferred, &fallback] {
        if std::fs::create_dir_all(dir).is_err() {
            continue;
        }
        let _ = std::os::unix::fs::chown(dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()));
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
        "running as root: PostgreSQL must run as `{}`, who can reach neither {} nor {}; pass \
         --data-dir under a folder every user may enter, run as a normal user, or pass \
         --database-url",
        u.name,
        preferred.display(),
        fallback.display()
    )))
}

async fn start_postgres(
    bin: &Path,
    data_dir: &Path,
    printer: &Printer,
) -> Result<(PrivateService, String), CliError> {
    let user = run_as()?;
    let pgdata = pg_data_dir(data_dir, user.as_ref()).await?;
    let pgdata_s = pgdata.to_string_lossy().to_string();
    if !pgdata.join("PG_VERSION").exists() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&pgdata, std::fs::Permissions::from_mode(0o700));
        printer.note(&format!(
            "initializing a private PostgreSQL in {pgdata_s} (first start only)"
        ));
        let log = data_dir.join("postgres-init.log");
        let (out, err) = log_to(&log)?;
        let status = command(
            &bin.join("initdb"),
            &[
                "-D",
                &pgdata_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            user.as_ref(),
            "KILL",
        )?
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .map_err(|e| failed("cannot run initdb", e))?;
        if !status.success() {
            return Err(CliError::failed(anyhow!(
                "initdb failed ({status}); its log ({}):\n  {}",
                log.display(),
                tail(&log)
            )));
        }
    }
    let port = free_port()?;
    let log = data_dir.join("postgres.log");
    let (out, err) = log_to(&log)?;
    let port_s = port.to_string();
    let mut child = command(
        &bin.join("postgres"),
        &[
            "-D",
            &pgdata_s,
            "-p",
            &port_s,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ],
        user.as_ref(),
        "INT",
    )?
    .stdout(out)
    .stderr(err)
    .spawn()
    .map_err(|e| failed("cannot start postgres", e))?;
    let pid = child.id().unwrap_or_default();
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::failed(anyhow!(
                "the private PostgreSQL exited at start ({status}); its log ({}):\n  {}",
                log.display(),
                tail(&log)
            )));
        }
        if check_postgres(&admin).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(CliError::failed(anyhow!(
                "the private PostgreSQL did not accept connections within 60 s; its log ({}):\n  {}",
                log.display(),
                tail(&log)
            )));
        }
        sleep(Duration::from_millis(100)).await;
    }
    if let Err(e) = create_database(&admin, "ordinaut").await {
        let _ = child.kill().await;
        return Err(failed(
            "cannot create the database in the private PostgreSQL",
            e,
        ));
    }
    let url = format!("postgres://postgres@127.0.0.1:{port}/ordinaut");
    printer.service("PostgreSQL", &url, &format!("private, data in {pgdata_s}"));
    Ok((
        PrivateService {
            name: "PostgreSQL",
            port,
            pid,
            child,
            stop_signal: Signal::SIGINT,
        },
        url,
    ))
}

async fn start_redis(
    bin: &Path,
    data_dir: &Path,
    printer: &Printer,
) -> Result<(PrivateService, String), CliError> {
    let dir = data_dir.join("redis");
    std::fs::create_dir_all(&dir).map_err(|e| failed("cannot create the Redis folder", e))?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let port = free_port()?;
    let log = data_dir.join("redis.log");
    let (out, err) = log_to(&log)?;
    let port_s = port.to_string();
    let dir_s = dir.to_string_lossy().to_string();
    let mut child = command(
        bin,
        &[
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir_s,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        None,
        "TERM",
    )?
    .stdout(out)
    .stderr(err)
    .spawn()
    .map_err(|e| failed("cannot start redis-server", e))?;
    let pid = child.id().unwrap_or_default();
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::failed(anyhow!(
                "the private Redis exited at start ({status}); its log ({}):\n  {}",
                log.display(),
                tail(&log)
            )));
        }
        if ordinaut_events::ping_redis(&url, Duration::from_millis(500)).await {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(CliError::failed(anyhow!(
                "the private Redis did not answer within 20 s; its log ({}):\n  {}",
                log.display(),
                tail(&log)
            )));
        }
        sleep(Duration::from_millis(100)).await;
    }
    printer.service("Redis", &url, "private");
    Ok((
        PrivateService {
            name: "Redis",
            port,
            pid,
            child,
            stop_signal: Signal::SIGTERM,
        },
        url,
    ))
}
