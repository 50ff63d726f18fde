# warden's container image: non-root, with PostgreSQL's client tools (pg_dump, pg_restore) for
# postgres backups.
#
#   docker build -t warden .                       # builds warden from source (the last stage)
#   cargo build --release --locked && docker build --target prebuilt -t warden .
#                                                  # packages a binary built outside instead
#
# The runtime stage is Debian bookworm (the glibc the binary links against), so a binary built
# on Debian 12 or in the build stage below runs unchanged. The image runs as user `warden`,
# uid and gid 10001: files it reads (config, token, SQLite databases) must be readable by that
# uid, and its state and backup directories writable by it.
#
# Written for both BuildKit and Docker's legacy builder (Debian's docker.io 20.10 and
# docker-compose 1.29 use the latter, which builds every stage before the target): the
# `prebuilt` stage therefore succeeds without a prebuilt binary, and only its image is then
# unusable.

# pg_dump and pg_restore are PostgreSQL 15's (Debian bookworm's): they back up servers up to 15
# and refuse newer ones. For a newer server, install that version's client here (from
# apt.postgresql.org) instead.

# ---- runtime: the base every final image shares ------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 warden \
 && useradd --system --uid 10001 --gid warden --home-dir /var/lib/warden --no-create-home \
      --shell /usr/sbin/nologin warden \
 && mkdir -p /etc/warden /var/lib/warden /var/backups/warden \
 && chown warden:warden /var/lib/warden /var/backups/warden \
 && chmod 0750 /var/lib/warden /var/backups/warden
# pg_dump and pg_restore come from /usr/lib/postgresql/15/bin (warden looks there first).
ENV WARDEN_CONFIG=/etc/warden/warden.yml \
    WARDEN_LOG_FORMAT=json
WORKDIR /var/lib/warden
USER 10001:10001
EXPOSE 9798
ENTRYPOINT ["/usr/local/bin/warden"]
CMD ["serve"]

# ---- prebuilt: packages a binary built outside -------------------------------------------------
# `docker build --target prebuilt --build-arg WARDEN_BINARY=path/in/context .`; the default is
# `cargo build --release`'s output (.dockerignore lets target/release/warden through). The
# Dockerfile is copied along so that the COPY succeeds when there is no such binary, for the
# legacy builder's sake (it builds this stage on the way to the last one); it is removed
# again. The binary goes straight to its place, so the image holds it once.
FROM runtime AS prebuilt
ARG WARDEN_BINARY=target/release/warden
COPY Dockerfile ${WARDEN_BINARY}* /usr/local/bin/
USER root
RUN rm -f /usr/local/bin/Dockerfile \
 && if [ ! -x /usr/local/bin/warden ]; then \
      echo "prebuilt: no binary at the build argument WARDEN_BINARY; this stage's image has no warden" >&2; \
    fi
USER 10001:10001

# ---- build: warden from source ------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY crates ./crates
# Cargo.toml names the integration-test target; an empty stand-in keeps the manifest valid
# without copying the tests.
RUN mkdir -p tests/it && touch tests/it/main.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/warden /usr/local/bin/warden

# ---- the image: from source (last, so a plain `docker build .` gives it) -----------------------
FROM runtime
COPY --from=build /usr/local/bin/warden /usr/local/bin/warden
