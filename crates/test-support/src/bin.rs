//! Finding a workspace binary from a test in another crate, where `env!("CARGO_BIN_EXE_…")`
//! does not exist.

use std::path::PathBuf;

/// The path of the binary `name` built into the same profile directory as this test:
/// the test runs as `target/<profile>/deps/<test>-<hash>`, cargo puts a package's binaries
/// in `target/<profile>/` and builds them before that package's integration tests.
pub fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let dir = if deps.ends_with("deps") {
        deps.parent().unwrap()
    } else {
        deps
    };
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: the binary `{name}` is built for its own package's integration tests",
        bin.display()
    );
    bin
}
