#!/usr/bin/env bash
# Runs one fuzz target for N minutes with libFuzzer, on the stable toolchain.
#
#   scripts/fuzz.sh TARGET MINUTES      e.g. scripts/fuzz.sh rrule 10
#   scripts/fuzz.sh list                the targets
#
# Targets: fuzz/src/lib.rs (rrule, cron, template, condition, manifest, mcp_result).
# Coverage instrumentation is rustc's own SanitizerCoverage pass through stable `-C` flags
# (`-Cpasses=sancov-module` + `-Cllvm-args=-sanitizer-coverage-*`), exactly what cargo-fuzz
# passes, and libfuzzer-sys builds libFuzzer from source with the system C++ compiler: no
# nightly toolchain, no RUSTC_BOOTSTRAP, no cargo-fuzz or AFL++ install. No AddressSanitizer
# (that one needs nightly): the code under test forbids `unsafe`, so panics, hangs
# (-timeout) and memory blow-ups (-rss_limit_mb) are what there is to find.
#
# New inputs go to fuzz/work/TARGET (not committed); the committed seeds in
# fuzz/corpus/TARGET are read only. A crash is written to fuzz/artifacts/TARGET/: copy it to
# fuzz/regressions/TARGET/ with the fix, and `cargo test -p ordinaut-fuzz` replays it forever.
# With MERGE=1 the run ends by merging what it found into fuzz/corpus/TARGET (minimized).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(rrule cron template condition manifest mcp_result)
if [[ "${1:-}" == "list" || $# -lt 2 ]]; then
    echo "usage: scripts/fuzz.sh TARGET MINUTES   (targets: ${targets[*]})" >&2
    [[ "${1:-}" == "list" ]] && exit 0 || exit 2
fi
target=$1
minutes=$2
if [[ ! " ${targets[*]} " =~ " ${target} " ]]; then
    echo "unknown target '$target' (targets: ${targets[*]})" >&2
    exit 2
fi

# A target directory of its own: instrumented builds must not evict the normal ones.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/fuzz}"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks -Cdebuginfo=1"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they must not be
# instrumented: nothing links libFuzzer into them).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release -p ordinaut-fuzz --features libfuzzer --bin "$target" --target "$host"
bin="$CARGO_TARGET_DIR/$host/release/$target"

# MINUTES=0 only builds (libFuzzer's -max_total_time=0 would mean "forever").
if [[ "$minutes" == "0" ]]; then
    echo "built $bin"
    exit 0
fi
work=fuzz/work/$target
artifacts=fuzz/artifacts/$target
mkdir -p "$work" "$artifacts"
set +e
"$bin" "$work" "fuzz/corpus/$target" \
    -max_total_time=$((minutes * 60)) \
    -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix="$artifacts/" -print_final_stats=1
status=$?
set -e
if [[ "${MERGE:-0}" == "1" ]]; then
    "$bin" -merge=1 "fuzz/corpus/$target" "$work"
fi
exit $status
