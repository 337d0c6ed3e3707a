"""benchmarks/unit_mode.py: reading the previous release's output, and the table it prints."""

from __future__ import annotations

from benchmarks.unit_mode import LABEL, parse_previous, table

# What the previous release's benchmarks/scale.py printed (commit e429eeb), Prefect's noise included.
PREVIOUS_OUTPUT = """\
asyncio.exceptions.CancelledError: Cancelled via cancel scope 7f94a30f34c0

NULL ENGINE (no inference): orchestration cost only
  tasks  seconds  ms/task  accepted  driver peak RSS MiB
   1000     16.2    16.22      1000                  302
  10000    201.4    20.14      9998                  649
growth 1000->10000 tasks (10x): time 12.4x, ms/task 1.24x, peak RSS 2.15x
"""


def test_the_previous_scripts_row_for_the_size_is_read() -> None:
    assert parse_previous(PREVIOUS_OUTPUT, 10_000) == {"seconds": 201.4, "accepted": 9998}
    assert parse_previous(PREVIOUS_OUTPUT, 1000) == {"seconds": 16.2, "accepted": 1000}


def test_a_size_the_previous_script_did_not_print_is_none() -> None:
    assert parse_previous(PREVIOUS_OUTPUT, 2000) is None
    assert parse_previous("Traceback (most recent call last):\n", 10_000) is None


def test_the_table_gives_medians_spread_and_the_ratio_to_the_previous_release() -> None:
    text = table({"previous": [20.0, 19.0, 30.0], "current": [18.0, 17.0, 40.0]}, 10_000, "e429eeb")
    assert text.startswith(LABEL)
    assert "| previous release (e429eeb) | 20.00 (19.00-30.00) | 50 | **1.00** |" in text
    assert "| this checkout | 18.00 (17.00-40.00) | 56 | **0.90** |" in text
