//! Running the built `ordinaut` binary as a real process (feature `cli`): `ordinaut dev` in
//! the background with its output collected line by line, stopped with real signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use crate::{free_port as unused_port, redis_url, wait_blocking as wait_for};

/// The path of the built `ordinaut` binary (next to the test executable).
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| crate::cargo_bin("ordinaut").to_string_lossy().into_owned())
}

/// A command for the binary with the environment cleared of what would change its services.
pub fn ordinaut(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("ORDINAUT_DATA_DIR")
        .env_remove("ORDINAUT_OUTPUT");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running `ordinaut dev`.
pub struct Dev {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Dev {
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for (stream, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                lines.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), errors.clone()),
        ] {
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            child,
            lines,
            errors,
            readers,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.errors.lock().unwrap().join("\n")
        )
    }

    /// Waits for a stdout line containing `needle` after the first `skip` lines; returns its
    /// index.
    pub fn wait_line(&mut self, skip: usize, needle: &str, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self
                .lines()
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, l)| l.contains(needle))
                .map(|(i, _)| i)
            {
                return i;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ordinaut dev exited ({status}) before printing `{needle}`\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no line with `{needle}` within {within:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop(&mut self, signal: Signal, within: Duration) -> std::process::ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader threads take the last lines until the pipes close (a service
                // `dev` started may hold them a little longer: wait, but not forever).
                let closed = Instant::now() + Duration::from_secs(10);
                while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < closed {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ordinaut dev did not exit within {within:?} of {signal}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn write(dir: &Path, name: &str, text: &str) {
    // Write then rename, as editors do, so a half-written file is never read.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A Task YAML running `core.echo` on `schedule` (a flow mapping's content).
pub fn task(name: &str, schedule: &str) -> String {
    format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schedule: {{{schedule}}}\n  pipeline:\n    steps:\n      - id: hi\n        uses: core.echo\n        with: {{message: \"hi from ${{task.name}}\"}}\n"
    )
}
