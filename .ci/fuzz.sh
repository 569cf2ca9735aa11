#!/usr/bin/env bash
# Builds ward's fuzz targets and runs each for FUZZ_SECONDS (default 60) from the seed
# corpus (fuzz/seed). Exits non-zero if any target crashes, times out or runs out of
# memory; libFuzzer leaves the input under fuzz/artifacts/<target>/.
# One in-process job per target (libFuzzer's default; `-jobs=N` would fork workers).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=(token config path patterns check exchange dpop jwe)

cargo run --quiet --manifest-path fuzz/Cargo.toml -p ward-fuzz-seed
cargo +nightly fuzz build -s none -a

failed=()
for t in "${targets[@]}"; do
    echo "--- fuzz $t for ${seconds}s"
    if ! cargo +nightly fuzz run -s none -a "$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 \
        > "fuzz/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "fuzz/$t.log"
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "fuzz/$t.log" || true
done

if ((${#failed[@]})); then
    echo "fuzzing failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: all ${#targets[@]} targets ran ${seconds}s without a crash"
