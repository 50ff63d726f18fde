#!/bin/sh
# The compose stack's secrets, generated at the first `docker compose up` by the one-shot
# `secrets` service into the `secrets` volume (mounted at /secrets here, read-only at
# /run/secrets/warden in the services). Nothing secret is in the repository; existing files
# are kept, so the values survive restarts and `docker compose down` (not `down -v`).
#
#   warden-token              bearer token for warden's endpoints: warden checks it, Prometheus
#                             (scrapes) and Alertmanager (webhook) send it; root:10002 0440,
#                             the three services carry group 10002 (compose `group_add`)
#   warden.dsn                warden's PostgreSQL DSN (role `warden`); 10001 (warden) 0400
#   postgres-password         the `postgres` superuser's password; 999 (postgres) 0400
#   postgres-warden-password  the `warden` role's password, set by postgres-init.sh; 999 0400
#   grafana-admin-password    Grafana's `admin` password; 472 (grafana) 0400
#
# Read one:  docker compose exec warden cat /run/secrets/warden/warden-token
set -eu
umask 077
cd /secrets

secret() { # NAME OWNER MODE
  if [ ! -s "$1" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1.tmp"
    mv "$1.tmp" "$1"
    echo "secrets: generated $1"
  fi
  chown "$2" "$1"
  chmod "$3" "$1"
}

secret warden-token 0:10002 0440
secret postgres-password 999:999 0400
secret postgres-warden-password 999:999 0400
secret grafana-admin-password 472:0 0400

if [ ! -s warden.dsn ]; then
  printf 'postgres://warden:%s@postgres:5432/app?sslmode=disable\n' \
    "$(cat postgres-warden-password)" >warden.dsn.tmp
  mv warden.dsn.tmp warden.dsn
  echo "secrets: generated warden.dsn"
fi
chown 10001:10001 warden.dsn
chmod 0400 warden.dsn
chmod 0755 /secrets
