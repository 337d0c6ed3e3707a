"""Running tools for real (sandboxed child interpreters, a SQLite side-effect ledger): allowlist,
timeouts, errors as observations, the sandbox's rules, and at-most-once side effects."""

import pytest

from slmflow.core.records import ToolCall
from tools import ToolRegistry
from tools.effects import UNKNOWN_OUTCOME, EffectLedger
from tools.executor import ToolExecutor

SCOPE = "job/item-1/task"


@pytest.fixture(scope="module")
def registry():
    r = ToolRegistry()
    r.add_module("tests.support.sample_tools")
    return r


@pytest.fixture
def executor(registry, tmp_path):
    with ToolExecutor(registry, tmp_path / "work", EffectLedger(tmp_path / "effects.sqlite")) as ex:
        yield ex


def call(ex, tool_name, allowed=None, scope=SCOPE, **arguments):
    return ex.call(ToolCall(name=tool_name, arguments=arguments), allowed or ex.registry.names, scope)


def test_calls_return_observations(executor):
    assert call(executor, "add", a=2, b=3).content == 5
    assert call(executor, "norm", p={"x": 3, "y": 4}).content == 5.0  # pydantic argument
    assert call(executor, "chatty").content == "quiet answer"  # prints cannot corrupt the protocol
    failed = call(executor, "fail", message="boom")
    assert not failed.ok and failed.error.startswith("ValueError: boom")
    bad = call(executor, "add", a="two", b=3)
    assert not bad.ok and "a: Input should be a valid integer" in bad.error


def test_allowlist_is_enforced_at_execution_too(executor, tmp_path):
    refused = call(executor, "append_ledger", allowed=["add"], entry="x")
    assert not refused.ok and "not allowed for this task" in refused.error
    assert not (tmp_path / "work" / "ledger.txt").exists()
    unknown = call(executor, "delete_all", allowed=["delete_all"])
    assert not unknown.ok and "no tool named 'delete_all'" in unknown.error


def test_timeout_kills_the_host_and_the_next_call_works(executor):
    slow = call(executor, "slow", seconds=5)
    assert not slow.ok and slow.error == "timed out after 0.5 s" and slow.duration_s < 3
    assert call(executor, "add", a=1, b=1).content == 2


def test_sandbox_keeps_tools_inside_their_directory(executor, tmp_path):
    assert call(executor, "write_file", path="notes.txt", text="hi").ok
    assert call(executor, "read_file", path="notes.txt").content == "hi"
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    for name, args in (
        ("read_file", {"path": str(outside)}),
        ("read_file", {"path": "../outside.txt"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("write_file", {"path": str(tmp_path / "new.txt"), "text": "x"}),
    ):
        o = call(executor, name, **args)
        assert not o.ok and "outside the tool directory" in o.error, (name, args, o)
    assert not (tmp_path / "new.txt").exists()
    (tmp_path / "work" / "link").symlink_to(outside)
    o = call(executor, "read_file", path="link")  # a link out of the directory is outside too
    assert not o.ok and "outside the tool directory" in o.error


def test_sandbox_has_no_shell_unless_declared(executor, tmp_path):
    o = call(executor, "run_shell", command=f"touch {tmp_path}/pwned")
    assert not o.ok and "no shell" in o.error
    assert not (tmp_path / "pwned").exists()
    assert call(executor, "run_shell_privileged", command="echo hi").content.strip() == "hi"


def test_tools_see_no_secrets_from_the_environment(executor, monkeypatch):
    monkeypatch.setenv("SLMFLOW_FRONTIER_API_KEY", "sk-test-should-not-leak")
    assert call(executor, "environment", name="SLMFLOW_FRONTIER_API_KEY").content is None


def test_side_effects_run_at_most_once_per_item_and_arguments(registry, tmp_path):
    ledger_file = tmp_path / "effects.sqlite"
    with ToolExecutor(registry, tmp_path / "work", EffectLedger(ledger_file)) as ex:
        first = call(ex, "append_ledger", entry="refund A")
        again = call(ex, "append_ledger", entry="refund A")
        other_item = call(ex, "append_ledger", scope="job/item-2/task", entry="refund A")
    assert first.content == 1 and not first.replayed
    assert again.replayed and again.content == 1  # the recorded observation, not a second run
    assert other_item.content == 2 and not other_item.replayed
    # A new process (a resumed run) sees the same ledger.
    with ToolExecutor(registry, tmp_path / "work", EffectLedger(ledger_file)) as ex:
        assert call(ex, "append_ledger", entry="refund A").replayed
    assert (tmp_path / "work" / "ledger.txt").read_text().splitlines() == ["refund A", "refund A"]


def test_a_side_effect_with_unknown_outcome_is_not_retried(executor):
    first = call(executor, "slow_effect", entry="z")
    assert not first.ok and first.error.startswith("timed out")
    retry = call(executor, "slow_effect", entry="z")
    assert not retry.ok and retry.error == UNKNOWN_OUTCOME


def test_a_side_effect_whose_host_died_is_not_retried(executor):
    first = call(executor, "crash_effect", entry="z")
    assert not first.ok and first.error.startswith("tool host exited (code 3)")
    retry = call(executor, "crash_effect", entry="z")
    assert not retry.ok and retry.error == UNKNOWN_OUTCOME
    assert call(executor, "add", a=1, b=1).content == 2  # the pool replaced the dead host


def test_concurrent_calls_share_a_bounded_pool(executor):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: call(executor, "add", a=i, b=i).content, range(24)))
    assert results == [2 * i for i in range(24)]
    assert len(executor._all) <= 2
