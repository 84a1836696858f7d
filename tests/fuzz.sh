#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time (UFORGE_FUZZ_SECONDS, default 60 each),
# starting from the seed corpus in fuzz/corpus. cargo-fuzz is installed once, cached by
# version under /var/cache/uforge-tools. The toolchain is stable: RUSTC_BOOTSTRAP lets it take
# the -Z flags cargo fuzz passes for the sanitizer instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.13.1
root=/var/cache/uforge-tools/cargo-fuzz-$version
if [ ! -x "$root/bin/cargo-fuzz" ]; then
    cargo install --locked --root "$root" --version "$version" cargo-fuzz
fi
export PATH=$root/bin:$PATH RUSTC_BOOTSTRAP=1
seconds=${UFORGE_FUZZ_SECONDS:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd fuzz
for target in $(cargo fuzz list); do
    # The seeds stay as they are; what the run finds goes to a scratch corpus.
    mkdir -p "$work/$target"
    echo "fuzzing $target for $seconds s"
    cargo fuzz run --release "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
