#!/usr/bin/env bash
# Run pytest from the project venv. Exit code 5 ("no tests collected") is a failure here too,
# but reported as such rather than as a crash.
set -u
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
