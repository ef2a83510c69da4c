#!/usr/bin/env bash
# `make run`: with no database configured, a private PostgreSQL cluster under
# ./var/ (created once, started if stopped); then migrate, print a dev ingest
# key and read key (created once, kept in ./var/), and serve in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
VGC=build/vgcollector
PG_BIN=${VGC_PG_BIN:-/usr/lib/postgresql/15/bin}
VAR=$PWD/var

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -z "${VGC_DB:-}" ] && [ -z "${PGHOST:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
  mkdir -p "$VAR/pg" "$VAR/run"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$VAR/pg" "$VAR/run"
  pguser=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)
  if [ ! -f "$VAR/pg/PG_VERSION" ]; then
    echo "make run: creating a private PostgreSQL cluster in $VAR/pg"
    as_pg "$PG_BIN/initdb" -D "$VAR/pg" -A trust -U "$pguser" -E UTF8 --locale=C >/dev/null
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$VAR/pg" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -w -D "$VAR/pg" -l "$VAR/run/postgres.log" \
      -o "-k $VAR/run -c listen_addresses=''" start >/dev/null
    echo "make run: PostgreSQL started (socket in $VAR/run, log in $VAR/run/postgres.log)"
  fi
  export VGC_DB="host=$VAR/run dbname=vgcollector user=$pguser"
  if ! as_pg "$PG_BIN/../bin/psql" -h "$VAR/run" -U "$pguser" -d postgres -tAc \
       "SELECT 1 FROM pg_database WHERE datname = 'vgcollector'" 2>/dev/null | grep -q 1; then
    as_pg /usr/bin/createdb -h "$VAR/run" -U "$pguser" vgcollector
  fi
fi

"$VGC" migrate

mkdir -p "$VAR"
keys="$VAR/dev-keys-$(printf '%s' "$VGC_DB" | sha256sum | cut -c1-12)"
if [ ! -s "$keys" ]; then
  ingest=$("$VGC" keys create --role ingest --name dev-ingest | head -n1)
  read=$("$VGC" keys create --role read --name dev-read | head -n1)
  umask 077
  printf 'ingest %s\nread %s\n' "$ingest" "$read" > "$keys"
fi
listen=${VGC_LISTEN:-127.0.0.1:8080}
# Budget webhooks may not reach loopback by default (webhook_allow); a dev
# receiver usually runs on this machine, so allow it here unless set already.
export VGC_WEBHOOK_ALLOW=${VGC_WEBHOOK_ALLOW-127.0.0.0/8,::1}
echo
echo "  database:   $VGC_DB"
echo "  ingest key: $(awk '$1 == "ingest" {print $2}' "$keys")"
echo "  read key:   $(awk '$1 == "read" {print $2}' "$keys")"
echo "  try:        curl -s -H 'Authorization: Bearer <ingest key>' -d '[]' http://$listen/v1/ingest"
echo "  dashboard:  http://$listen/#key=$(awk '$1 == "read" {print $2}' "$keys")   (the read key, in the fragment: never sent)"
echo
exec "$VGC" serve --listen "$listen"
