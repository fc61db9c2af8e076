//! PostgreSQL and Redis for `ordinaut dev`: the URLs given; else the servers on the local
//! default ports when they answer (in a database of our own, `ordinaut_dev`); else private
//! servers ([`private`]) started from the local `initdb`/`postgres` and `redis-server`
//! binaries under the data folder, on free ports, reachable by the current user only, stopped
//! when `ordinaut dev` exits. When neither is possible, one message says what to install.

mod private;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::process::Child;
use tokio::time::timeout;

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
    let pg = plan_postgres(args, printer).await?;
    let redis = plan_redis(args, printer).await?;
    refuse_missing(&pg, &redis)?;
    create_data_dir(args.data_dir)?;
    let mut services = Services {
        database_url: String::new(),
        redis_url: String::new(),
        private: Vec::new(),
    };
    services.database_url = match pg {
        Plan::Start(bin) => {
            let (service, url) = private::start_postgres(&bin, args.data_dir, printer).await?;
            services.private.push(service);
            url
        }
        Plan::Use(url) | Plan::Missing(url) => url,
    };
    services.redis_url = match redis {
        Plan::Start(bin) => match private::start_redis(&bin, args.data_dir, printer).await {
            Ok((service, url)) => {
                services.private.push(service);
                url
            }
            Err(e) => {
                services.stop().await;
                return Err(e);
            }
        },
        Plan::Use(url) | Plan::Missing(url) => url,
    };
    Ok(services)
}

/// The PostgreSQL given, else the one on the default port, else a private one to start.
async fn plan_postgres(args: &ServiceArgs<'_>, printer: &Printer) -> Result<Plan, CliError> {
    if let Some(url) = args.database_url {
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
        return Ok(Plan::Use(url.to_string()));
    }
    Ok(match default_postgres(args.pg_port).await {
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
    })
}

/// The Redis given, else the one on the default port, else a private one to start.
async fn plan_redis(args: &ServiceArgs<'_>, printer: &Printer) -> Result<Plan, CliError> {
    if let Some(url) = args.redis_url {
        let shown = ordinaut_store::redact_url(url);
        if !ordinaut_events::ping_redis(url, Duration::from_secs(3)).await {
            return Err(CliError::failed(anyhow!(
                "cannot reach Redis at {shown} (--redis-url/REDIS_URL). Check the URL and that \
                 the server is running, or leave the URL unset: `ordinaut dev` then uses the \
                 server on 127.0.0.1:{} or starts its own",
                args.redis_port
            )));
        }
        printer.service("Redis", &shown, "given");
        return Ok(Plan::Use(url.to_string()));
    }
    let url = format!("redis://127.0.0.1:{}", args.redis_port);
    if answers(args.redis_port).await
        && ordinaut_events::ping_redis(&url, Duration::from_secs(2)).await
    {
        printer.service("Redis", &url, "found on the default port");
        return Ok(Plan::Use(url));
    }
    let why = format!("nothing answers on 127.0.0.1:{}", args.redis_port);
    Ok(
        match find_program("redis-server", &["/usr/bin", "/usr/sbin", "/usr/local/bin"]) {
            Some(bin) => {
                printer.note(&format!("{why}; starting a private Redis"));
                Plan::Start(bin)
            }
            None => Plan::Missing(why),
        },
    )
}

/// One message naming everything that is neither reachable nor installed.
fn refuse_missing(pg: &Plan, redis: &Plan) -> Result<(), CliError> {
    let mut missing = Vec::new();
    if let Plan::Missing(why) = pg {
        missing.push(format!(
            "PostgreSQL: {why}, and no `initdb`/`postgres` binaries were found (looked in PATH \
             and /usr/lib/postgresql/*/bin). Install PostgreSQL (Debian/Ubuntu: `apt-get install \
             postgresql`; macOS: `brew install postgresql`) or pass --database-url"
        ));
    }
    if let Plan::Missing(why) = redis {
        missing.push(format!(
            "Redis: {why}, and no `redis-server` binary was found in PATH. Install Redis \
             (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) or pass \
             --redis-url"
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(CliError::failed(anyhow!(
        "`ordinaut dev` needs PostgreSQL and Redis:\n  {}",
        missing.join("\n  ")
    )))
}

/// The data folder, created readable by its owner only (an existing one is left as it is).
fn create_data_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            CliError::failed(anyhow!(
                "cannot create the data folder {}: {e}",
                dir.display()
            ))
        })
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

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(anyhow!("{what}: {e}"))
}
