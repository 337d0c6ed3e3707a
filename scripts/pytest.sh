#!/usr/bin/env bash
# Run pytest from the project venv, then print one line on what was skipped and why.
# Exit code 5 ("no tests collected") is a failure here too, reported as such rather than as a crash.
set -u
cd "$(dirname "$0")/.."
summary=$(mktemp)
SLMFLOW_SKIP_SUMMARY="$summary" .venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  rc=1
fi
[ -s "$summary" ] && cat "$summary"
rm -f "$summary"
exit "$rc"
