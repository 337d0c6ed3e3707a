#!/usr/bin/env bash
# Run pytest from the project venv, then print one line on what was skipped and why.
#
# Tests marked own_cluster start Ray clusters of their own (a declared-GPU cluster in this process,
# a head that a driver joins, a wheel's private fleet); next to the session's fleet and stand-in
# engines, Ray's driver-to-node resolution and startup time out on 2 cores. They run first, in a
# pytest process of their own; the rest run in a second one. SLMFLOW_TEST_MARK narrows both (e.g.
# "not slow"). Exit code 5 ("no tests collected") fails the run unless the other part ran tests.
set -u
cd "$(dirname "$0")/.."
mark=${SLMFLOW_TEST_MARK:-}
summary=$(mktemp)
status=0
ran=0
for part in "own_cluster" "not own_cluster"; do
  part_summary=$(mktemp)
  SLMFLOW_SKIP_SUMMARY="$part_summary" .venv/bin/python -m pytest -m "$part${mark:+ and ($mark)}" "$@"
  rc=$?
  case "$rc" in
    0) ran=1 ;;
    5) ;;
    *) ran=1; status=$rc ;;
  esac
  [ -s "$part_summary" ] && echo "$part: $(cat "$part_summary")" >> "$summary"
  rm -f "$part_summary"
done
if [ "$ran" -eq 0 ]; then
  echo "pytest collected no tests" >&2
  status=1
fi
[ -s "$summary" ] && cat "$summary"
rm -f "$summary"
exit "$status"
