//! `ordinaut dev`'s private PostgreSQL and Redis are reachable by the current user only:
//! passwords generated (PostgreSQL's kept in a 0600 file, Redis's given on its standard
//! input, on no command line), connections without them refused, both listening on
//! 127.0.0.1 alone (no wildcard address, no Unix socket), files not readable by others, and,
//! as root, the servers run as another account.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use ordinaut_test_support::cli::*;
use sqlx::Connection;

struct Started {
    dev: Dev,
    database_url: String,
    redis_url: String,
    /// (pid, port) of PostgreSQL, then Redis.
    private: Vec<(u32, u16)>,
}

fn start_dev(dir: &Path, data: &Path) -> Started {
    let mut cmd = ordinaut(&["dev", &dir.display().to_string()]);
    cmd.args(["--pg-port", &unused_port().to_string()])
        .args(["--redis-port", &unused_port().to_string()])
        .args(["--data-dir", &data.display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "watching ", Duration::from_secs(120));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev.json")).unwrap()).unwrap();
    let private = state["private"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_u64().unwrap() as u32,
                p["port"].as_u64().unwrap() as u16,
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(private.len(), 2, "{state}");
    Started {
        dev,
        database_url: state["databaseUrl"].as_str().unwrap().to_string(),
        redis_url: state["redisUrl"].as_str().unwrap().to_string(),
        private,
    }
}

/// The password in `scheme://user:password@…`.
fn password(url: &str) -> String {
    let rest = &url[url.find("://").unwrap() + 3..url.rfind('@').unwrap()];
    rest.split_once(':').unwrap().1.to_string()
}

fn pg_connect(url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = tokio::time::timeout(
            Duration::from_secs(20),
            sqlx::postgres::PgConnection::connect(url),
        )
        .await
        .map_err(|_| "no answer within 20 s".to_string())?;
        conn.map(|_| ()).map_err(|e| e.to_string())
    })
}

/// Sends one inline Redis command, returns the first reply line.
fn redis_say(port: u16, command: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Local addresses (hex `ADDR:PORT` as /proc shows them) listening on `port`, IPv4 and IPv6.
fn listeners(port: u16) -> Vec<String> {
    let suffix = format!(":{port:04X}");
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&suffix) {
                out.push(cols[1].to_string());
            }
        }
    }
    out
}

fn assert_private_mode(path: &Path) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
}

/// Every file and folder under `dir` (not `dir` itself) is closed to other users.
fn assert_nothing_world_readable(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        assert_eq!(
            meta.permissions().mode() & 0o007,
            0,
            "{} is open to other users ({:o})",
            entry.path().display(),
            meta.permissions().mode() & 0o777
        );
        if meta.is_dir() {
            assert_nothing_world_readable(&entry.path());
        }
    }
}

fn check_servers(s: &Started, data: &Path) {
    let (pg_port, redis_port) = (s.private[0].1, s.private[1].1);
    let pg_password = password(&s.database_url);
    let redis_password = password(&s.redis_url);
    assert!(
        pg_password.len() >= 32 && redis_password.len() >= 32,
        "{} {}",
        s.database_url,
        s.redis_url
    );

    // PostgreSQL: the URL ordinaut dev uses works; no password or a wrong one is refused.
    pg_connect(&s.database_url).unwrap();
    for url in [
        format!("postgres://postgres@127.0.0.1:{pg_port}/ordinaut"),
        format!("postgres://postgres:wrong@127.0.0.1:{pg_port}/postgres"),
    ] {
        let refused = pg_connect(&url).unwrap_err();
        assert!(refused.contains("password"), "{url}: {refused}");
    }
    // Redis: nothing without the password.
    assert!(redis_say(redis_port, "PING").starts_with("-NOAUTH"));
    assert!(redis_say(redis_port, "AUTH wrong-password").starts_with("-WRONGPASS"));
    assert_eq!(
        redis_say(redis_port, &format!("AUTH {redis_password}")),
        "+OK"
    );

    // Loopback only, no wildcard address, no Unix socket.
    for port in [pg_port, redis_port] {
        let l = listeners(port);
        assert!(!l.is_empty(), "nothing listens on {port}");
        assert!(
            l.iter().all(|a| a == &format!("0100007F:{port:04X}")),
            "port {port}: {l:?}"
        );
    }
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap();
    assert!(
        !unix.contains(&format!(".s.PGSQL.{pg_port}")),
        "PostgreSQL has a Unix socket"
    );

    // No password on a command line; as root, neither server runs as root.
    for (pid, _) in &s.private {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains(&pg_password) && !cmdline.contains(&redis_password),
            "{cmdline}"
        );
        let uid = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
        if nix::unistd::geteuid().is_root() {
            assert_ne!(uid, 0, "server {pid} runs as root");
        }
    }

    // Files: the password file and dev.json for the owner only, nothing open to others.
    let stored = std::fs::read_to_string(data.join("postgres.password")).unwrap();
    assert_eq!(stored.trim(), pg_password);
    for f in [
        "postgres.password",
        "dev.json",
        "postgres.log",
        "redis.log",
        "postgres",
        "redis",
    ] {
        assert_private_mode(&data.join(f));
    }
    assert_nothing_world_readable(data);
    let printed = s.dev.output();
    assert!(
        !printed.contains(&pg_password) && !printed.contains(&redis_password),
        "{printed}"
    );
}

#[test]
fn private_servers_refuse_connections_without_their_generated_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // As root the private servers run as another account, which must reach the folder.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(dir.path(), "tick.yaml", &task("tick", "every: 2s"));

    let mut first = start_dev(dir.path(), data.path());
    first
        .dev
        .wait_line(0, "run default/tick succeeded", Duration::from_secs(30));
    check_servers(&first, data.path());
    assert!(
        first
            .dev
            .stop(Signal::SIGTERM, Duration::from_secs(60))
            .success()
    );

    // A second start reuses the cluster and its password; Redis gets a new one.
    let mut second = start_dev(dir.path(), data.path());
    assert_eq!(
        password(&second.database_url),
        password(&first.database_url)
    );
    assert_ne!(password(&second.redis_url), password(&first.redis_url));
    check_servers(&second, data.path());
    assert!(
        second
            .dev
            .stop(Signal::SIGTERM, Duration::from_secs(60))
            .success()
    );

    // A cluster without a password file (made by an older `ordinaut dev`, with trust
    // authentication) gets a new password: the old one no longer opens it.
    std::fs::remove_file(data.path().join("postgres.password")).unwrap();
    let mut third = start_dev(dir.path(), data.path());
    assert_ne!(password(&third.database_url), password(&first.database_url));
    check_servers(&third, data.path());
    let old = format!(
        "postgres://postgres:{}@127.0.0.1:{}/ordinaut",
        password(&first.database_url),
        third.private[0].1
    );
    assert!(pg_connect(&old).is_err(), "the old password still works");
    assert!(
        third
            .dev
            .stop(Signal::SIGTERM, Duration::from_secs(60))
            .success()
    );
}
