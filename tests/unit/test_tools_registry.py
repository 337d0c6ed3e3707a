"""The tool registry: schemas derived from signatures, registration by decorator or import path,
and allowlists checked when a job spec is loaded."""

from pathlib import Path

import pytest

from flows.spec import SpecError, build_job
from tests.support import sample_tools
from tools import FINAL_ANSWER, NO_TOOL, ToolError, ToolRegistry, call_schema, from_callable, tool


def test_schema_is_derived_from_signature_and_docstring():
    t = from_callable(sample_tools.add)
    assert t.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["a", "b"],
        "properties": {
            "a": {"type": "integer", "description": "the first addend."},
            "b": {"type": "integer", "description": "the second addend."},
        },
    }
    assert t.description == "Add two integers."
    assert t.openai()["function"]["name"] == "add"
    assert t.source == "python:tests.support.sample_tools:add"


def test_pydantic_parameters_and_validation():
    t = from_callable(sample_tools.norm)
    assert "$defs" in t.parameters and t.parameters["required"] == ["p"]
    assert t.validate({"p": {"x": "3", "y": 4}}) == {"p": {"x": 3.0, "y": 4.0}}
    with pytest.raises(ToolError, match="norm: invalid arguments: p.y"):
        t.validate({"p": {"x": 1}})
    with pytest.raises(ToolError, match="q: Extra inputs"):
        t.validate({"p": {"x": 1, "y": 1}, "q": 1})


def test_decorator_marks_without_wrapping():
    assert sample_tools.add(2, 3) == 5  # still a plain callable
    assert from_callable(sample_tools.append_ledger).side_effects
    assert from_callable(sample_tools.run_shell_privileged).allow_shell
    assert from_callable(sample_tools.slow).timeout_s == 0.5


def test_registration_by_module_and_import_path():
    by_module = ToolRegistry()
    by_module.add_module("tests.support.sample_tools")
    assert {"add", "norm", "append_ledger"} <= set(by_module.names)
    by_path = ToolRegistry()
    t = by_path.add_function("tests.support.sample_tools:add")
    assert by_path.names == ["add"] and t == by_module.get("add")
    with pytest.raises(ToolError, match="looks like"):
        by_path.add_function("tests.support.sample_tools")
    with pytest.raises(ToolError, match="has no 'nope'"):
        by_path.add_function("tests.support.sample_tools:nope")
    with pytest.raises(ToolError, match="cannot import"):
        by_path.add_module("tests.support.no_such_module")
    with pytest.raises(ToolError, match=r"unknown tools \['delete_all'\]"):
        by_module.select(["add", "delete_all"])


def test_bad_tools_are_refused():
    def untyped(x):
        return x

    def variadic(*args: int):
        return args

    with pytest.raises(ToolError, match="needs a type annotation"):
        from_callable(untyped)
    with pytest.raises(ToolError, match=r"\*args"):
        from_callable(variadic)
    for reserved in (NO_TOOL, FINAL_ANSWER):

        def fn(x: int) -> int:
            return x

        with pytest.raises(ToolError, match="not allowed"):
            from_callable(tool(name=reserved)(fn))


def test_call_schema_allows_exactly_the_offered_tools():
    from jsonschema import Draft202012Validator

    schema = call_schema([from_callable(sample_tools.add)])
    v = Draft202012Validator(schema)
    assert v.is_valid({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert not v.is_valid({"name": "delete_all", "arguments": {}})
    assert not v.is_valid({"name": "add", "arguments": {"a": "one", "b": 2}})


def _spec(**task):
    return {
        "name": "t",
        "inputs": {"items": [{"id": "1", "q": "2 + 3"}]},
        "tools": {"sources": [{"module": "tests.support.sample_tools"}]},
        "tasks": [{"id": "calc", "kind": "tool_call", "prompt": "{{ item.q }}", **task}],
    }


def test_job_allowlists_are_checked_at_load():
    job = build_job(_spec(tools=["add"]), Path("."))
    assert job.spec.task("calc").tools == ["add"]
    with pytest.raises(SpecError, match=r"task 'calc', field 'tools': unknown tools \['delete_all'\]"):
        build_job(_spec(tools=["add", "delete_all"]), Path("."))
    with pytest.raises(SpecError, match="need an allowlist"):
        build_job(_spec(), Path("."))
    with pytest.raises(SpecError, match="offered automatically"):
        build_job(_spec(tools=["add", NO_TOOL]), Path("."))
    raw = _spec(tools=["add"])
    del raw["tools"]
    with pytest.raises(SpecError, match="declares no 'tools' sources"):
        build_job(raw, Path("."))
    raw = _spec(tools=["add"])
    raw["tools"]["sources"] = [{"module": "tests.support.sample_tools", "function": "x:y"}]
    with pytest.raises(SpecError, match="exactly one of"):
        build_job(raw, Path("."))
    with pytest.raises(SpecError, match="only agent tasks take agent limits"):
        build_job(_spec(tools=["add"], agent={"max_steps": 3}), Path("."))
    with pytest.raises(SpecError, match="only tool_call and agent tasks take tools"):
        build_job(
            {
                **_spec(),
                "tasks": [{"id": "a", "kind": "classify", "choices": ["x", "y"], "prompt": "p", "tools": ["add"]}],
            },
            Path("."),
        )


def test_order_desk_demo_spec_loads():
    job_path = Path(__file__).resolve().parents[2] / "deployments" / "order_desk" / "job.yaml"
    from flows.spec import load_job, python_registry

    job = load_job(job_path)
    assert set(python_registry(job).names) == {"lookup_order", "refund_eligibility", "issue_refund"}
    assert python_registry(job).get("issue_refund").side_effects
