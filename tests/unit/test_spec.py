from pathlib import Path

import pytest
import yaml

from flows.spec import SpecError, build_job, load_job

DEMO = Path(__file__).resolve().parents[2] / "deployments" / "support_inbox" / "job.yaml"


def spec(**overrides):
    base = {
        "name": "t",
        "inputs": {"items": [{"id": "a", "text": "hello"}, {"id": "b", "text": "world"}]},
        "tasks": [
            {"id": "label", "kind": "classify", "choices": ["x", "y"], "prompt": "{{ item.text }}"},
            {
                "id": "fields",
                "kind": "extract",
                "prompt": "{{ item.text }} {{ upstream.label }}",
                "depends_on": ["label"],
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        ],
    }
    base.update(overrides)
    return base


def error_of(raw) -> str:
    with pytest.raises(SpecError) as exc:
        build_job(raw, Path("."))
    return str(exc.value)


def test_demo_spec_is_valid():
    job = load_job(DEMO)
    assert job.count >= 20
    assert job.spec.dag.order.index("triage") < job.spec.dag.order.index("reply")


def test_valid_spec_builds_dag():
    job = build_job(spec(), Path("."))
    assert job.spec.dag.roots == ["label"]
    assert job.spec.dag.dependents["label"] == ["fields"]
    assert [i.id for i in job.iter_items()] == ["a", "b"]


def test_cycle_is_rejected_naming_the_cycle():
    raw = spec()
    raw["tasks"][0]["depends_on"] = ["fields"]
    raw["tasks"][0]["prompt"] = "{{ item.text }}"
    msg = error_of(raw)
    assert "cycle" in msg and "label" in msg and "fields" in msg


def test_unknown_dependency_names_task_and_field():
    raw = spec()
    raw["tasks"][1]["depends_on"] = ["label", "nope"]
    msg = error_of(raw)
    assert "task 'fields'" in msg and "depends_on" in msg and "nope" in msg


def test_template_unknown_variable_names_task_and_field():
    raw = spec()
    raw["tasks"][0]["prompt"] = "{{ itme.text }}"
    msg = error_of(raw)
    assert "task 'label'" in msg and "prompt" in msg and "itme" in msg


def test_template_upstream_must_be_a_dependency():
    raw = spec()
    raw["tasks"][1]["depends_on"] = []
    msg = error_of(raw)
    assert "task 'fields'" in msg and "upstream.label" in msg


def test_template_missing_item_field_names_item():
    raw = spec()
    raw["inputs"]["items"][1] = {"id": "b", "body": "no text field"}
    msg = error_of(raw)
    assert "task 'label'" in msg and "item 'b'" in msg and "text" in msg


def test_invalid_json_schema_is_rejected():
    raw = spec()
    raw["tasks"][1]["schema"] = {"type": "objekt"}
    msg = error_of(raw)
    assert "task 'fields'" in msg and "schema" in msg and "JSON Schema" in msg


def test_classify_needs_choices():
    raw = spec()
    del raw["tasks"][0]["choices"]
    msg = error_of(raw)
    assert "task 'label'" in msg and "choices" in msg


def test_answer_needs_declared_collection():
    raw = spec()
    raw["tasks"].append(
        {"id": "reply", "kind": "answer", "prompt": "{{ item.text }}", "grounding": {"collection": "kb"}}
    )
    msg = error_of(raw)
    assert "task 'reply'" in msg and "kb" in msg


def test_duplicate_task_ids():
    raw = spec()
    raw["tasks"][1]["id"] = "label"
    assert "duplicate" in error_of(raw)


def test_unknown_field_is_rejected():
    raw = spec()
    raw["tasks"][0]["temprature"] = 0.3
    assert "temprature" in error_of(raw)


def test_jsonl_inputs_errors(tmp_path):
    (tmp_path / "items.jsonl").write_text('{"id": 1, "text": "a"}\nnot json\n')
    raw = spec(inputs={"path": "items.jsonl"})
    with pytest.raises(SpecError, match="line 2: invalid JSON"):
        build_job(raw, tmp_path)
    (tmp_path / "items.jsonl").write_bytes(b'{"id": 1, "text": "\xff"}\n')
    with pytest.raises(SpecError, match="not UTF-8"):
        build_job(raw, tmp_path)
    (tmp_path / "items.jsonl").write_text("\n")
    with pytest.raises(SpecError, match="no items"):
        build_job(raw, tmp_path)


def test_duplicate_item_ids():
    raw = spec(inputs={"items": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]})
    assert "duplicate item id 'a'" in error_of(raw)


def test_not_a_mapping():
    assert "mapping" in error_of(["a"])


def test_load_job_missing_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_job(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="YAML"):
        load_job(bad)


def test_limit_keeps_first_items():
    job = build_job(yaml.safe_load(yaml.safe_dump(spec())), Path("."), limit=1)
    assert [i.id for i in job.iter_items()] == ["a"]
