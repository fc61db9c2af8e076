//! Replays every committed corpus file (`fuzz/corpus/<target>/*`) and every crash found and
//! fixed (`fuzz/regressions/<target>/*`) through its target, so the normal test suite (and
//! CI) keeps what fuzzing found.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(folder: &str, must_exist: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    for (name, target) in ordinaut_fuzz::TARGETS {
        let dir = root.join(name);
        if !dir.exists() && !must_exist {
            continue;
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            !must_exist || !files.is_empty(),
            "{} is empty",
            dir.display()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            eprintln!("{name}: {}", file.display());
            target(&data);
        }
    }
}

#[test]
fn every_corpus_file_replays_through_its_target() {
    replay("corpus", true);
}

#[test]
fn every_fixed_crash_replays_through_its_target() {
    replay("regressions", false);
}
