#!/usr/bin/env bash
# shopfloor developer entry point. Installs what is missing on Debian 12 (apt packages,
# a venv with the project), then:
#   ./dev.sh up      run the whole system locally (broker, database, simulated machines,
#                    edge agent, collector, API) in the background, under ./run
#   ./dev.sh down    stop exactly what `up` started
#   ./dev.sh test    run the test suite (starts its own services on free loopback ports)
#   ./dev.sh bench   run the benchmarks (see docs/performance.md)
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(mosquitto mosquitto-clients influxdb influxdb-client socat victoria-metrics python3-venv chromium chromium-driver)
VENV=.venv
PLANT="${SHOPFLOOR_PLANT:-deploy/plant.example.yaml}"   # which plant `up` runs
RUN_DIR="${SHOPFLOOR_RUN_DIR:-run}"                     # logs, data and pid files of `up`

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> apt: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The packages start system services where systemd runs; ours run on their own ports.
}

install_venv() {
  local stamp="$VENV/.installed" want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> venv: creating $VENV"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> venv: installing shopfloor and its dependencies"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[test]'
    echo "$want" > "$stamp"
  fi
}

bootstrap() { install_apt; install_venv; }

cmd="${1:-help}"
shift || true
case "$cmd" in
  up)    bootstrap; exec "$VENV/bin/shopfloor" local up "$PLANT" --run-dir "$RUN_DIR" "$@" ;;
  down)  exec "$VENV/bin/shopfloor" local down --run-dir "$RUN_DIR" "$@" ;;
  # Three workers on two cores: most tests wait on real services (outages, restarts).
  test)  bootstrap; exec "$VENV/bin/python" -m pytest -n "${SHOPFLOOR_TEST_WORKERS:-3}" "$@" ;;
  bench) bootstrap; exec "$VENV/bin/python" -m benchmarks "$@" ;;
  *)     sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
