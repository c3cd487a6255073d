#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
# Services (PostgreSQL, MariaDB, Redis) are started when they are not already running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/services

# tests/integration/test_deploy.py checks deploy/ with systemd-analyze (Debian's `systemd`
# package) and logrotate; install whichever is missing (root, or sudo without a password).
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -x /usr/sbin/logrotate ] || command -v logrotate >/dev/null 2>&1 || missing+=(logrotate)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    echo "== installing ${missing[*]} (for the deploy/ checks)"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,mysql,postgres]'

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
