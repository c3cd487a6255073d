#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
# Services (PostgreSQL, MariaDB, Redis) are started when they are not already running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/services

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
