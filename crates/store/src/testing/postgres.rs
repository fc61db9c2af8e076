//! A private PostgreSQL server on a free port, for tests that stop and restart the database
//! (fault tests, the chaos suite). It is started from the local binaries (`initdb`,
//! `pg_ctl`: PATH, else Debian's `/usr/lib/postgresql/<version>/bin`); as root it runs as
//! the `postgres` account through `setpriv`, as PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How [`PrivatePostgres::stop`] shuts the server down (`pg_ctl stop -m <mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Clients are disconnected with 57P01 (admin shutdown); in-flight transactions roll back.
    Fast,
    /// The server processes are killed; it recovers from its WAL at the next start.
    Immediate,
}

/// A PostgreSQL cluster in a temporary folder, stopped and removed when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Initializes a cluster and starts it. Panics with the reason when it cannot.
    pub fn start() -> Self {
        let bin = find_bin().unwrap_or_else(|| {
            panic!("no initdb/pg_ctl found (PATH, /usr/lib/postgresql/*/bin); install PostgreSQL")
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir =
            std::env::temp_dir().join(format!("ordinaut-pg-{}", uuid::Uuid::new_v4().simple()));
        let pg = Self {
            port,
            dir,
            bin,
            as_postgres: is_root(),
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        pg.restart();
        pg
    }

    /// The admin URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .expect("connect to the private PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        self.url(name)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200 -c fsync=off",
            self.port
        );
        let log = format!("{}/postgres.log", self.dir.display());
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &opts,
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with `mode` and waits until it is down.
    pub fn stop(&self, mode: Shutdown) {
        let m = match mode {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        };
        self.run(
            "pg_ctl",
            &["stop", "-w", "-t", "60", "-D", &self.data(), "-m", m],
        );
    }

    /// Stops every process of the server with SIGSTOP: connections stay open and statements
    /// never answer (a hung database). [`PrivatePostgres::resume`] continues them.
    pub fn pause(&self) {
        self.signal_all("STOP");
    }

    /// Continues the processes [`PrivatePostgres::pause`] stopped.
    pub fn resume(&self) {
        self.signal_all("CONT");
    }

    /// Sends `sig` to the postmaster and its children (by process id).
    fn signal_all(&self, sig: &str) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: the command may hold spaces; read after the last ')'.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let ppid = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster)
                && let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>()
            {
                pids.push(pid);
            }
        }
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .args(pids.iter().map(u32::to_string))
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {pids:?} failed");
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        if self.as_postgres && !self.dir.exists() {
            // initdb creates the data folder; its parent must belong to the server's account.
            std::fs::create_dir_all(&self.dir).expect("create the cluster folder");
            let status = Command::new("chown")
                .args(["postgres:postgres", &self.dir.to_string_lossy()])
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of {} failed", self.dir.display());
        } else if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir).expect("create the cluster folder");
        }
        let out = cmd
            .args(args)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}): {}{}\nserver log: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["stop", "-w", "-D", data.as_str(), "-m", "immediate"];
        let _ = if self.as_postgres {
            Command::new("setpriv")
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(&exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        } else {
            Command::new(&exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The folder holding `initdb` and `pg_ctl`: PATH first, then the newest Debian version.
fn find_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(d) = std::env::split_paths(&path).find(|d| has(d))
    {
        return Some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().map(|(_, d)| d).find(|d| has(d))
}
