#!/bin/sh
# Builds warden in release mode and runs the side-by-side benchmark against node_exporter.
# Usage: scripts/bench.sh [bench.py options…]   (see BENCHMARKS.md)
# CARGO_TARGET_DIR is honoured; the release binary is taken from it.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
target_dir="${CARGO_TARGET_DIR:-target}"
exec python3 scripts/bench.py --warden "$target_dir/release/warden" "$@"
