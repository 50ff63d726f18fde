#!/usr/bin/env bash
# The PostgreSQL matrix: runs the PostgreSQL collector, user-query, SQL-action and
# check-config tests against PostgreSQL 13, 14, 15, 16, 17 and 18, one pass per version, with
# the server binaries scripts/pg-versions.sh installs (WARDEN_TEST_PG_BIN points the test
# harness at them). Without the matrix the tests use Debian's cluster (15).
#
# postgres_exporter's comparison (compat::pg_families_*) runs up to 16 only: Debian's
# postgres_exporter 0.11 cannot read pg_stat_bgwriter from 17 on. The backup tests stay on
# Debian's 15: its pg_dump refuses newer servers (check-config --connect says so, which the
# matrix tests).
#
# Usage: scripts/pg-matrix.sh [MAJOR...]   (default: 13 14 15 16 17 18)
# Prints one line per version with its result and time, and exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
((${#majors[@]})) || majors=(13 14 15 16 17 18)

# The PostgreSQL tests (test name prefixes): the collector, user SQL and the harness with the
# family list, the SQL actions, check-config --connect, and the comparison with
# postgres_exporter (below 17).
tests=(postgres:: postgres_harness:: actions_kinds::sql_ check_config::connect_)
compat=compat::pg_families_

declare -A bins=()
while read -r major bin; do
  bins[$major]=$bin
done < <(scripts/pg-versions.sh "${majors[@]}")

# cargo-nextest when installed (a process per test, timings), else cargo test, as test.sh.
run() {
  if command -v cargo-nextest >/dev/null 2>&1; then
    local expression
    expression=$(printf ' | test(/^%s/)' "$@")
    cargo nextest run --locked --test it --no-fail-fast -E "${expression# | }"
  else
    cargo test --locked --test it -- "$@"
  fi
}

# Build once, outside the timed passes.
cargo test --locked --test it --no-run

results=()
failed=0
for major in "${majors[@]}"; do
  selected=("${tests[@]}")
  ((major < 17)) && selected+=("$compat")
  echo "pg-matrix.sh: PostgreSQL $major (${bins[$major]})"
  started=$(date +%s)
  if WARDEN_TEST_PG_BIN="${bins[$major]}" run "${selected[@]}"; then
    outcome=passed
  else
    outcome=FAILED
    failed=1
  fi
  results+=("PostgreSQL $major: $outcome in $(($(date +%s) - started))s")
done
printf 'pg-matrix.sh: %s\n' "${results[@]}"
exit "$failed"
