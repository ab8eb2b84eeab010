#!/usr/bin/env bash
# shopfloor developer entry point. Installs what is missing on Debian 12 (apt packages,
# a venv with the project), then:
#   ./dev.sh up              run the whole system locally (broker, database, simulated
#                            machines with the last hours of history, edge agent, collector,
#                            API; Grafana where installed) in the background, under ./run
#   ./dev.sh status          what `up` started and whether it is alive
#   ./dev.sh down            stop exactly what `up` started
#   ./dev.sh shopfloor ARGS  the `shopfloor` command of the venv (e.g. `shopfloor oee ...`)
#   ./dev.sh test [ARGS]     run the test suite (starts its own services on free ports)
#   ./dev.sh bench NAME      run a benchmark (see docs/performance.md)
set -euo pipefail
cd "$(dirname "$0")"

# What running needs; `test` and `bench` add the rest (curl: the README's examples).
RUN_APT=(mosquitto mosquitto-clients influxdb influxdb-client python3-venv curl)
TEST_APT=(socat victoria-metrics chromium chromium-driver)
VENV="${SHOPFLOOR_VENV:-.venv}"                        # the venv (a test may share its own)
PLANT="${SHOPFLOOR_PLANT:-deploy/plant.example.yaml}"   # which plant `up` runs
RUN_DIR="${SHOPFLOOR_RUN_DIR:-run}"                     # logs, data and pid files of `up`

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> apt: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The packages start system services where systemd runs; ours run on their own ports.
}

# install_venv EXTRA: the project with `pip install -e .[EXTRA]` ("" = what running needs).
# A stamp per extra remembers the pyproject.toml it was installed from; the test extra
# includes everything running needs.
install_venv() {
  local extra="$1" want
  want=$(sha256sum < pyproject.toml | cut -c1-16)
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> venv: creating $VENV"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$VENV/.installed-${extra:-run}" 2>/dev/null)" = "$want" ] ||
     { [ -z "$extra" ] && [ "$(cat "$VENV/.installed-test" 2>/dev/null)" = "$want" ]; }; then
    return
  fi
  if [ -n "${SHOPFLOOR_NO_INSTALL:-}" ]; then
    echo "==> venv: $VENV was installed from another pyproject.toml (SHOPFLOOR_NO_INSTALL set: using it)"
    return
  fi
  echo "==> venv: installing shopfloor${extra:+[$extra]} and its dependencies"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".${extra:+[$extra]}"
  echo "$want" > "$VENV/.installed-${extra:-run}"
}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
# `python -m shopfloor.cli`, not the console script: the code of this checkout, whichever
# venv runs it.
shopfloor() { exec "$VENV/bin/python" -m shopfloor.cli "$@"; }

cmd="${1:-help}"
shift || true
case "$cmd" in
  up)        install_apt "${RUN_APT[@]}"; install_venv ""
             shopfloor local up "$PLANT" --run-dir "$RUN_DIR" "$@" ;;
  down)      shopfloor local down --run-dir "$RUN_DIR" "$@" ;;
  status)    shopfloor local status --run-dir "$RUN_DIR" "$@" ;;
  shopfloor) install_venv ""; shopfloor "$@" ;;
  # Three workers on two cores: most tests wait on real services (outages, restarts).
  test)      install_apt "${RUN_APT[@]}" "${TEST_APT[@]}"; install_venv test
             exec "$VENV/bin/python" -m pytest -n "${SHOPFLOOR_TEST_WORKERS:-3}" "$@" ;;
  bench)     install_apt "${RUN_APT[@]}" "${TEST_APT[@]}"; install_venv test
             exec "$VENV/bin/python" -m benchmarks "$@" ;;
  help|-h|--help) usage ;;
  *)         echo "dev.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
