"""Property tests: whatever a user feeds the spec loader, it either builds a job or raises
SpecError with a message; nothing else escapes, and the CLI never shows a traceback."""

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.spec import SpecError, build_job
from slmflow.cli.app import app

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

task = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "1bad", ""]),
        "kind": st.sampled_from(["classify", "extract", "answer", "summarise"]),
        "prompt": st.sampled_from(["{{ item.text }}", "{{ upstream.a }}", "{{ nope }}", "{% for", "", "hi"]),
    },
    optional={
        "depends_on": st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=3),
        "choices": st.lists(st.text(max_size=5), max_size=3),
        "schema": json_values,
        "grounding": st.fixed_dictionaries({"collection": st.sampled_from(["kb", "other"])}),
        "max_tokens": st.integers(-5, 10_000),
    },
)

spec = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["job", "", "bad name"]),
        "inputs": st.fixed_dictionaries(
            {"items": st.lists(st.dictionaries(st.sampled_from(["id", "text"]), json_values, max_size=2), max_size=3)}
        ),
        "tasks": st.lists(task, max_size=4),
    },
    optional={"collections": st.just({"kb": {"path": "."}}), "extra": json_values},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec)
def test_spec_loader_never_raises_anything_but_spec_error(raw):
    try:
        build_job(raw, Path("."))
    except SpecError as exc:
        assert str(exc)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_arbitrary_yaml_documents(raw):
    try:
        build_job(raw, Path("."))
    except SpecError as exc:
        assert str(exc)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_cli_validate_bytes_exits_1_without_traceback(tmp_path, data):
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert "error:" in result.output


def test_cli_validate_reports_the_field(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "j",
                "inputs": {"items": [{"text": "x"}]},
                "tasks": [{"id": "t", "kind": "classify", "prompt": "{{ item.txt }}", "choices": ["a", "b"]}],
            }
        )
    )
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "task 't'" in result.output and "txt" in result.output
