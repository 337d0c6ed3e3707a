#!/usr/bin/env bash
# The shape of the code, checked before the tests: lint, format, the import floors, types.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
$BIN/ruff check .
$BIN/ruff format --check .
$BIN/lint-imports
$BIN/mypy
