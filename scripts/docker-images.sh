#!/usr/bin/env bash
# Builds, from Debian's packages only, the images docker-compose.yml names, for machines that
# cannot reach an image registry (the test machines): tests/it/compose.rs runs the shipped
# compose file against them unchanged.
#
#   warden-test/bookworm:base   debootstrap --variant=minbase bookworm, `docker import`ed
#   debian:bookworm-slim        the same image (the Dockerfile's runtime base)
#   postgres:15-bookworm        Debian's postgresql-15 behind an entrypoint that honours the
#                               official image's POSTGRES_* variables and initdb.d scripts
#   prom/prometheus:v2.42.0     Debian's prometheus (2.42.0)
#   prom/alertmanager:v0.25.0   Debian's prometheus-alertmanager (0.25.0)
#   rust:1.95-bookworm          only with --rust: this machine's rustup toolchain on the base,
#                               so `docker build .` can build warden from source
#
# Recipes are in docker/test-images/. An image that exists is kept when its label
# org.warden.test-image.hash matches the recipe (so reruns cost nothing); an image of that
# name WITHOUT the label is a real one pulled from a registry and is never replaced.
#
# Usage: scripts/docker-images.sh [--rust] [--force]
# Needs root (debootstrap), the debootstrap package, a running dockerd, and deb.debian.org
# (from the host and from containers).
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/.."

recipes=docker/test-images
label=org.warden.test-image.hash
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
with_rust=0
force=0
for arg in "$@"; do
  case "$arg" in
    --rust) with_rust=1 ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--rust] [--force]" >&2; exit 2 ;;
  esac
done

# Runs a command showing its output only when it fails (docker build's legacy-builder notice
# is noise otherwise).
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "failed: $*"
  fi
}
log() { printf 'docker-images: %s\n' "$*" >&2; }
die() { printf 'docker-images: %s\n' "$*" >&2; exit 1; }

if ! command -v docker >/dev/null 2>&1; then
  die "no docker command; install Debian's engine: apt-get install docker.io docker-compose debootstrap"
fi
if ! docker info >/dev/null 2>&1; then
  die "cannot reach the Docker engine ($(docker info 2>&1 | grep -m1 -i error || echo 'docker info failed')); start it: dockerd >/var/log/dockerd.log 2>&1 &  (or systemctl start docker)"
fi

# One build at a time on this machine (parallel test runs share the engine's images).
exec 9>/var/tmp/warden-docker-images.lock
flock 9

# The recipe hash of an image: this script's content, its recipe directory (paths relative to
# the repository) and its parent's hash.
recipe_hash() {
  local dir=$1 parent=${2:-}
  {
    sha256sum <"$self"
    find "$recipes/$dir" -type f -print0 | sort -z | xargs -0 sha256sum
    echo "$parent"
  } | sha256sum | cut -c1-16
}

# "ours" (label matches), "stale" (our label, other hash), "foreign" (no label), "missing".
state() {
  local image=$1 want=$2 have
  if ! have=$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null); then
    echo missing
  elif [[ "$have" == "$want" ]]; then
    echo ours
  elif [[ -z "$have" || "$have" == "<no value>" ]]; then
    echo foreign
  else
    echo stale
  fi
}

needs_build() {
  local image=$1 hash=$2 current
  current=$(state "$image" "$hash")
  case "$current" in
    ours) [[ $force -eq 1 ]] && return 0; log "$image is up to date"; return 1 ;;
    foreign) log "$image exists and is not ours (a real image?): kept"; return 1 ;;
    *) return 0 ;;
  esac
}

build() {
  local image=$1 dir=$2 hash=$3 started
  started=$(date +%s)
  log "building $image from $recipes/$dir"
  quiet docker build -q --label "$label=$hash" -t "$image" "$recipes/$dir"
  log "built $image in $(($(date +%s) - started)) s"
}

# 1. The Debian base, made with debootstrap.
base_hash=$(recipe_hash base)
if needs_build warden-test/bookworm:base "$base_hash"; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: apt-get install debootstrap"
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
  started=$(date +%s)
  rootfs=$(mktemp -d /var/tmp/warden-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; die "debootstrap failed (log above)"; }
  rm -f "$rootfs.log"
  cp "$recipes/base/sources.list" "$rootfs/etc/apt/sources.list"
  cp "$recipes/base/policy-rc.d" "$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  cp "$recipes/base/apt-slim.conf" "$rootfs/etc/apt/apt.conf.d/90warden-slim"
  cp "$recipes/base/dpkg-slim.cfg" "$rootfs/etc/dpkg/dpkg.cfg.d/90warden-slim"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" --numeric-owner -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - warden-test/bookworm:rootfs >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  # A one-line build on top only to carry the recipe label.
  echo 'FROM warden-test/bookworm:rootfs' >"$rootfs.Dockerfile"
  quiet docker build -q --label "$label=$base_hash" -t warden-test/bookworm:base -f "$rootfs.Dockerfile" "$recipes/base"
  rm -f "$rootfs.Dockerfile"
  docker rmi warden-test/bookworm:rootfs >/dev/null
  log "built warden-test/bookworm:base in $(($(date +%s) - started)) s"
fi
# debian:bookworm-slim is the base itself (unless a real one is there).
if [[ $(state debian:bookworm-slim "$base_hash") != foreign ]]; then
  docker tag warden-test/bookworm:base debian:bookworm-slim
fi

# 2. The services, each on the base.
for spec in postgres:postgres:15-bookworm prometheus:prom/prometheus:v2.42.0 \
  alertmanager:prom/alertmanager:v0.25.0; do
  dir=${spec%%:*}
  image=${spec#*:}
  hash=$(recipe_hash "$dir" "$base_hash")
  if needs_build "$image" "$hash"; then
    build "$image" "$dir" "$hash"
  fi
done

# 3. Optionally the Rust build image, from this machine's toolchain.
if [[ $with_rust -eq 1 ]]; then
  hash=$(recipe_hash rust "$base_hash")
  if needs_build rust:1.95-bookworm "$hash"; then
    rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    toolchain=$(ls -d "$rustup_home"/toolchains/1.95*-x86_64-unknown-linux-gnu 2>/dev/null | head -1)
    [[ -n "$toolchain" ]] || die "no 1.95 toolchain under $rustup_home/toolchains (rustup toolchain install 1.95)"
    context=$(mktemp -d /var/tmp/warden-rust.XXXXXX)
    trap 'rm -rf "$context"' EXIT
    cp "$recipes/rust/Dockerfile" "$context/"
    # This machine's extra CAs (an egress proxy that re-signs TLS), for cargo's downloads.
    mkdir -p "$context/extra-ca"
    cp /usr/local/share/ca-certificates/*.crt "$context/extra-ca/" 2>/dev/null || true
    # Only what builds: the compiler, cargo and the standard library (no docs, no sources).
    mkdir -p "$context/toolchain"
    cp -a "$toolchain/bin" "$toolchain/lib" "$context/toolchain/"
    rm -rf "$context/toolchain/lib/rustlib/"*/analysis "$context/toolchain/lib/rustlib/src"
    started=$(date +%s)
    quiet docker build -q --label "$label=$hash" -t rust:1.95-bookworm "$context"
    rm -rf "$context"
    trap - EXIT
    log "built rust:1.95-bookworm in $(($(date +%s) - started)) s"
  fi
fi
