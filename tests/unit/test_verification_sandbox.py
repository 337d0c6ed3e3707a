"""The program-of-thought sandbox: a correct program's result is read back; a program that reaches
for the network, for files outside its directory, for endless CPU or for huge memory is stopped."""

from __future__ import annotations

import time

import pytest

from verification.independent import printed_number, program_from
from verification.sandbox import Limits, isolation, run_python

FAST = Limits(timeout_s=4.0, cpu_s=1)


def test_a_correct_program_runs_and_its_result_is_read() -> None:
    result = run_python("from fractions import Fraction\nboxes = 3 * 4\nprint(Fraction(boxes - 2, 4))", FAST)
    assert result.ok and result.error == ""
    assert printed_number(result.stdout) == 2.5


@pytest.mark.parametrize(
    "program",
    [
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)",
        "__import__('urllib.request').request.urlopen('http://example.com')",
        "import _socket",
    ],
)
def test_network_is_stopped(program: str) -> None:
    result = run_python(program, FAST)
    assert not result.ok and "not allowed" in result.error


def test_network_namespace_is_used_where_available() -> None:
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("no unshare on this machine")
    # Where unprivileged namespaces work (they do on the CI and dev machines), they are used.
    assert "network namespace" in isolation() or "uid" in isolation()


@pytest.mark.parametrize(
    "program",
    [
        "print(open('/etc/hostname').read())",
        "print(open('../../../../etc/passwd').read())",
        "print(open(b'/etc/passwd').read())",
        "import posix\nfd = posix.open('/etc/passwd', 0)\nprint(posix.read(fd, 100))",
        "import io\nprint(io.FileIO('/etc/passwd').read())",
        "import os\nprint(os.listdir('/'))",
        "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda x: str\n"
        "print(open('/etc/hostname').read())",
        "try:\n    open('/etc/passwd')\nexcept PermissionError as e:\n    print(e.__traceback__.tb_frame.f_locals)",
        "import sys\nsys.settrace(lambda *a: None)",
    ],
)
def test_files_outside_the_working_directory_are_out_of_reach(program: str) -> None:
    result = run_python(program, FAST)
    assert not result.ok and "sandbox:" in result.error
    assert "root:" not in result.stdout


def test_files_inside_the_working_directory_are_usable_and_the_environment_is_empty(monkeypatch) -> None:
    monkeypatch.setenv("SLMFLOW_FRONTIER_API_KEY", "sekrit")
    result = run_python(
        "open('notes.txt', 'w').write('42')\nimport posix\nprint(dict(posix.environ))\nprint(open('notes.txt').read())",
        FAST,
    )
    assert result.ok, result.error
    assert "sekrit" not in result.stdout and printed_number(result.stdout) == 42


def test_subprocesses_are_stopped() -> None:
    result = run_python("import posix\nposix.system('echo escaped')", FAST)
    assert not result.ok and "os.system is not allowed" in result.error and "escaped" not in result.stdout


def test_an_endless_loop_is_stopped_at_the_cpu_limit() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass", FAST)
    assert not result.ok and "CPU limit" in result.error
    assert time.monotonic() - start < 4


def test_a_loop_that_ignores_the_cpu_signal_is_still_killed() -> None:
    result = run_python("import _signal\n_signal.signal(24, _signal.SIG_IGN)\nwhile True:\n    pass", FAST)
    assert not result.ok and result.error


def test_a_sleeping_program_is_stopped_at_the_wall_clock_limit() -> None:
    result = run_python("import time\ntime.sleep(60)", Limits(timeout_s=1.0, cpu_s=1))
    assert not result.ok and "timed out" in result.error


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(10 ** 10)\nprint(len(x))",
        "x = [0] * (10 ** 9)\nprint(len(x))",
        "x = 'a' * (2 ** 34)\nprint(len(x))",
    ],
)
def test_huge_memory_is_stopped(program: str) -> None:
    result = run_python(program, FAST)
    assert not result.ok and "MemoryError" in result.error


def test_an_output_flood_is_cut_off() -> None:
    result = run_python("while True:\n    print('x' * 10000)", FAST)
    assert not result.ok and len(result.stdout) <= 64 * 1024


def test_a_crash_is_reported_not_raised() -> None:
    result = run_python("print(1 / 0)", FAST)
    assert not result.ok and "ZeroDivisionError" in result.error
    result = run_python("def f(:\n", FAST)
    assert not result.ok and "SyntaxError" in result.error


@pytest.mark.parametrize(
    "reply,code_has",
    [
        ("Here it is:\n```python\nprint(2 + 3)\n```\nDone.", "print(2 + 3)"),
        ("```py\ndef solution():\n    return 7\n```", "print(solution())"),
        ("```python\nx = 4\nprint(x)", "print(x)"),  # cut off before the closing fence
        ("x = 4\nprint(x * 2)", "print(x * 2)"),
    ],
)
def test_program_is_taken_from_a_model_reply(reply: str, code_has: str) -> None:
    assert code_has in program_from(reply)


def test_prose_is_no_program() -> None:
    assert program_from("The answer is 42.") == ""


@pytest.mark.parametrize(
    "stdout,value",
    [
        ("42\n", 42.0),
        ("Total: $1,250.50\n", 1250.5),
        ("7/2\n", 3.5),
        ("step 1\n\n-3\n", -3.0),
        ("done\n", None),
        ("", None),
    ],
)
def test_printed_number(stdout: str, value: float | None) -> None:
    assert printed_number(stdout) == value


def test_the_program_cannot_lift_its_limits() -> None:
    result = run_python("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))", FAST)
    assert not result.ok and "resource.setrlimit is not allowed" in result.error


def test_programs_run_safely_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda n: run_python(f"print({n} * 2)", FAST), range(8)))
    assert [printed_number(r.stdout) for r in results] == [n * 2 for n in range(8)]
