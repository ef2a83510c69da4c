#!/usr/bin/env bash
# Installs the Debian 12 packages vgcollector needs to build, run and test,
# skipping the ones already installed. Used by `make run`, `make test` and CI.
set -euo pipefail

pkgs=(
  gcc make pkg-config
  libevent-dev libpq-dev libssl-dev libcjson-dev zlib1g-dev   # build
  postgresql-15 postgresql-client-15                          # private dev cluster, tests
  openssl                                                     # test certificates
  clang libclang-rt-14-dev                                    # libFuzzer target
  clang-format                                                # make format-check
  python3 python3-pytest python3-httpx python3-psycopg2       # integration tests
  python3-pip python3-dev                                     # the vgsink Python package
  chromium python3-websocket                                  # dashboard tests (headless, CDP)
  prometheus                                                  # promtool check metrics
  systemd                                                     # systemd-analyze verify
  pgbouncer haproxy                                           # make test-scale, bench-pooled
  patroni etcd-server                                         # make test-ha
  libprotobuf-c-dev protobuf-c-compiler                       # OTLP/HTTP protobuf (build)
)

missing=()
for p in "${pkgs[@]}"; do
  case "$p" in \#*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# node and npm for the OpenTelemetry JS SDK tests: Debian's, unless a node
# with its own npm is already there (Debian's npm would conflict with it).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The OpenTelemetry JS SDK and exporters tests/test_otlp.py drives, at the
# versions tests/otel/package-lock.json pins, into tests/otel/node_modules.
# Skipped when the tree was installed from this very lock file (the copy
# node_modules/.vgc-lock.json left by the last install).
otel="$(cd "$(dirname "$0")/../tests/otel" && pwd)"
if ! cmp -s "$otel/package-lock.json" "$otel/node_modules/.vgc-lock.json" 2>/dev/null; then
  echo "install-deps: npm ci in tests/otel"
  (cd "$otel" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
    cp package-lock.json node_modules/.vgc-lock.json)
fi
