"""The fleet's decisions, without Ray or a model: engine arguments checked against vLLM's own
`AsyncEngineArgs`, placement derived from them, whether a fleet fits a cluster, routing, the
engine time a request is charged, the chat template with tools, prices and provider parameters.
(The same decisions on a Ray cluster with fake GPUs: tests/integration/test_fleet_placement.py.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from flows.ledger import Ledger
from slmflow.core.prices import Price, UnpricedModelError
from slmflow.core.records import Draft, GenerationRequest, Message
from slmflow.core.settings import Settings, VLLMSettings
from workers.cluster import ENGINE_RESOURCE
from workers.engine_args import EngineArgsError, validate_engine_args
from workers.engines import prompt_tokens
from workers.fleet import FleetConfig, SmallModelSpec, hourly_usd
from workers.placement import fit_problems
from workers.request_params import RequestParams, adapted, params_for, refused_param
from workers.routing import Router
from workers.serving import ServedEngine

# --- engine arguments ------------------------------------------------------------------------------


def test_engine_args_pass_through_when_vllm_takes_them() -> None:
    args = {
        "tensor_parallel_size": 2,
        "max_model_len": 8192,
        "quantization": "awq",
        "dtype": "bfloat16",
        "enable_prefix_caching": True,
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4},
        "max_num_seqs": None,
    }
    assert validate_engine_args("qwen", args) is args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"max_modl_len": 4096},
            "engine_args.max_modl_len: not an argument of vLLM's AsyncEngineArgs (did you mean 'max_model_len'?)",
        ),
        ({"max_model_len": "4k"}, "engine_args.max_model_len: Input should be a valid integer"),
        ({"enforce_eager": "yes"}, "engine_args.enforce_eager: Input should be a valid boolean"),
        ({"dtype": "bf16"}, "engine_args.dtype: Input should be 'auto', 'half'"),
        ({"tensor_parallel_size": 2.0}, "engine_args.tensor_parallel_size: Input should be a valid integer"),
    ],
)
def test_a_bad_engine_argument_names_the_model_and_the_field(args: dict, message: str) -> None:
    with pytest.raises(EngineArgsError) as err:
        validate_engine_args("qwen3-4b", args)
    assert str(err.value).startswith("fleet member 'qwen3-4b': ") and message in str(err.value)


def test_a_fleet_file_with_a_bad_engine_argument_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "small": [
                    {"name": "qwen3-4b", "model": "Qwen/Qwen3-4B", "num_gpus": 1, "engine_args": {"max_num_seq": 8}}
                ]
            }
        )
    )
    with pytest.raises(ValidationError) as err:
        FleetConfig.load(Settings(fleet_file=path))
    text = str(err.value)
    assert "fleet member 'qwen3-4b' (Qwen/Qwen3-4B)" in text and "engine_args.max_num_seq" in text
    assert "did you mean 'max_num_seqs'?" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"num_gpus": 2}, "num_gpus 2 reserves 2 GPUs for an engine that uses one"),
        ({"num_gpus": 1, "engine_args": {"tensor_parallel_size": 2}}, "set num_gpus: 2 (one GPU per shard)"),
        ({"engine_args": {"tensor_parallel_size": 2}}, "need GPUs"),
        ({"num_gpus": 1.5}, "above 1 it must be whole"),
        ({"num_gpus": 0.5, "engine_args": {"gpu_memory_utilization": 0.8}}, "more than the 0.5 GPU this member shares"),
        ({"engine_args": {"model": "other"}}, "engine_args.model: set the model with the member's `model:`"),
        ({"engine_args": {"data_parallel_size": 2}}, "use `replicas`"),
        ({"base_url": "http://x/v1"}, "model: name the model the endpoint serves"),
        ({"model": "m", "base_url": "http://x/v1", "num_gpus": 1}, "an endpoint member runs none"),
        ({"model": "m", "base_url": "http://x/v1", "structured_output": "none"}, "need structured output"),
        ({"api_key_env": "KEY"}, "apply to endpoint members"),
    ],
)
def test_inconsistent_members_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match="fleet member 'm'") as err:
        SmallModelSpec(name="m", **spec)
    assert message in str(err.value)


def test_member_names_are_distinct() -> None:
    with pytest.raises(ValidationError, match="repeated: \\['a'\\]"):
        FleetConfig(small=[SmallModelSpec(name="a"), SmallModelSpec(name="a")])


def test_merged_engine_args_keep_todays_defaults_and_add_the_members() -> None:
    vllm = VLLMSettings()
    assert SmallModelSpec(name="m").merged_engine_args(vllm) == {
        "max_model_len": 2048,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.85,
    }
    tp = SmallModelSpec(name="m", num_gpus=2, engine_args={"tensor_parallel_size": 2, "max_model_len": 8192})
    assert tp.merged_engine_args(vllm) == {
        "max_model_len": 8192,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.85,
        "tensor_parallel_size": 2,
        "distributed_executor_backend": "ray",
    }
    # Two engines sharing a GPU each get their share of the default, not 85 % each.
    assert SmallModelSpec(name="m", num_gpus=0.5).merged_engine_args(vllm)["gpu_memory_utilization"] == 0.425


# --- placement ---------------------------------------------------------------------------------------


def test_placement_follows_the_engine_arguments() -> None:
    cpu = SmallModelSpec(name="m").placement()
    assert cpu.actor_options() == {"num_cpus": 0, "resources": {ENGINE_RESOURCE: 1}} and cpu.memory_share is None
    one = SmallModelSpec(name="m", num_gpus=1).placement()
    assert one.actor_options() == {"num_cpus": 0, "num_gpus": 1} and one.memory_share == 0.85
    quarter = SmallModelSpec(name="m", num_gpus=0.25).placement(default_share=0.8)
    assert quarter.actor_options() == {"num_cpus": 0, "num_gpus": 0.25} and quarter.memory_share == pytest.approx(0.2)
    tp = SmallModelSpec(name="m", num_gpus=4, engine_args={"tensor_parallel_size": 4}).placement()
    assert tp.bundles == [{"GPU": 1.0}] * 4 and tp.strategy == "STRICT_PACK" and tp.gpus == 4
    pp = SmallModelSpec(name="m", num_gpus=4, engine_args={"tensor_parallel_size": 2, "pipeline_parallel_size": 2})
    assert pp.placement().strategy == "PACK"  # pipeline stages may span nodes
    endpoint = SmallModelSpec(name="m", model="Qwen/Qwen3-8B", base_url="http://vllm:8000/v1").placement()
    assert (endpoint.gpus, endpoint.bundles, endpoint.resources) == (0, [], {})


def test_a_sharded_replica_asks_for_no_gpu_itself_and_runs_in_its_placement_group() -> None:
    ray = pytest.importorskip("ray")
    tp = SmallModelSpec(name="m", num_gpus=2, engine_args={"tensor_parallel_size": 2}).placement()
    options = tp.actor_options(placement_group=None)
    assert options["num_gpus"] == 0 and options["num_cpus"] == 0
    strategy = options["scheduling_strategy"]
    assert isinstance(strategy, ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy)
    assert strategy.placement_group_capture_child_tasks  # vLLM's workers land in the bundles


def _replicas(*specs: dict) -> list:
    return FleetConfig(small=[SmallModelSpec(name=f"m{i}", **s) for i, s in enumerate(specs)]).replicas()


def test_a_fleet_that_fits_is_accepted() -> None:
    replicas = _replicas(
        {"num_gpus": 2, "engine_args": {"tensor_parallel_size": 2}},
        {"num_gpus": 0.5, "replicas": 2},  # two engines share one GPU
        {"num_gpus": 1},
        {},  # a CPU engine
        {"model": "x", "base_url": "http://x/v1"},  # an endpoint needs nothing
    )
    assert fit_problems(replicas, [{"GPU": 4, "CPU": 16, ENGINE_RESOURCE: 1}]) == []


def test_a_fleet_that_does_not_fit_names_the_member_and_what_is_missing() -> None:
    replicas = _replicas({"num_gpus": 4, "engine_args": {"tensor_parallel_size": 4}}, {"num_gpus": 1, "replicas": 2})
    problems = fit_problems(replicas, [{"GPU": 2}, {"GPU": 2}])
    assert problems[0] == ("m0 needs 4 GPUs on one node (a placement group of 4 x 1 GPU); the largest node has 2 GPUs")
    assert problems[-1] == "missing in all: 2 GPU (the fleet needs 6, the cluster has 4)"
    assert fit_problems(_replicas({"replicas": 2}), [{ENGINE_RESOURCE: 1}]) == [
        f"m0 needs 1 {ENGINE_RESOURCE}",
        f"missing in all: 1 {ENGINE_RESOURCE} (the fleet needs 2, the cluster has 1)",
    ]


def test_shares_of_a_gpu_pack_onto_one_gpu_and_no_further() -> None:
    assert fit_problems(_replicas({"num_gpus": 0.5, "replicas": 2}), [{"GPU": 1}]) == []
    assert (
        fit_problems(_replicas({"num_gpus": 0.5, "replicas": 3}), [{"GPU": 1}])[0]
        == "m0 needs 0.5 GPU (a share of one GPU)"
    )
    # A share left on one GPU cannot host a whole-GPU engine.
    assert fit_problems(_replicas({"num_gpus": 1}, {"num_gpus": 0.5}), [{"GPU": 1}, {"GPU": 1}]) == []
    assert fit_problems(_replicas({"num_gpus": 1, "replicas": 2}, {"num_gpus": 0.5}), [{"GPU": 2}]) != []


# --- routing -----------------------------------------------------------------------------------------


def test_requests_go_to_the_replica_with_the_fewest_in_flight() -> None:
    router = Router({"answer": ["a", "b"]}, {"a": "A", "b": "B"})
    with router.lease("answer") as first:
        with router.lease("answer") as second:
            assert {first, second} == {"A", "B"}
            with router.lease("answer") as third, router.lease("answer") as fourth:
                assert {third, fourth} == {"A", "B"}
                assert router.in_flight() == {"a": 2, "b": 2}
        # `second`'s replica is free again: it takes the next request, whatever the turn.
        free = {"A": "a", "B": "b"}[second]
        assert [router.choose("answer") for _ in range(3)] == ["AB"[free == "b"]] * 3
    assert router.in_flight() == {"a": 0, "b": 0}


def test_a_failed_request_is_no_longer_counted_and_ties_take_turns() -> None:
    router = Router({"answer": ["a", "b"], "extract": ["b"]}, {"a": "A", "b": "B"})
    with pytest.raises(RuntimeError), router.lease("answer"):
        raise RuntimeError("engine died")
    assert router.in_flight() == {"a": 0, "b": 0}
    picks = [router.choose("answer") for _ in range(4)]
    assert sorted(picks[:2]) == ["A", "B"] and picks[2:] == picks[:2]
    assert router.choose("extract") == "B"
    with pytest.raises(KeyError, match="no small model serves 'classify'"):
        router.choose("classify")


# --- engine time -------------------------------------------------------------------------------------


class _ScriptedEngine:
    """Answers when the test releases a request; time is the test's clock."""

    model = "m"

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}

    async def generate(self, request: GenerationRequest) -> Draft:
        key = request.messages[0].content
        self.release[key] = asyncio.Event()
        await self.release[key].wait()
        return Draft(model="m", text="x", output="x", tokens_in=3, tokens_out=2, latency_s=0)


def test_batched_requests_share_the_engine_time_and_idle_time_is_nobodys() -> None:
    now = [0.0]
    engine = _ScriptedEngine()
    served = ServedEngine(engine, usd_per_hour=3.6, clock=lambda: now[0])

    def req(name: str) -> GenerationRequest:
        return GenerationRequest(kind="answer", messages=[Message(role="user", content=name)])

    async def scenario() -> tuple[Draft, Draft, Draft]:
        a = asyncio.create_task(served.generate(req("a")))
        await asyncio.sleep(0)
        now[0] = 2.0  # a alone for 2 s
        b = asyncio.create_task(served.generate(req("b")))
        await asyncio.sleep(0)
        now[0] = 6.0  # a and b together for 4 s: 2 s each
        engine.release["a"].set()
        first = await a
        now[0] = 7.0  # b alone for 1 s
        engine.release["b"].set()
        second = await b
        now[0] = 100.0  # idle
        c = asyncio.create_task(served.generate(req("c")))
        await asyncio.sleep(0)
        now[0] = 100.5
        engine.release["c"].set()
        return first, second, await c

    a, b, c = asyncio.run(scenario())
    assert (a.engine_s, b.engine_s, c.engine_s) == (pytest.approx(4.0), pytest.approx(3.0), pytest.approx(0.5))
    assert served.busy_s == pytest.approx(7.5) == a.engine_s + b.engine_s + c.engine_s
    assert a.usd_per_hour == 3.6
    settings = Settings()
    assert Ledger(settings, "gpt-4o").draft_usd(a) == pytest.approx(4.0 * 3.6 / 3600)


def test_an_endpoints_drafts_keep_their_tokens_to_be_priced_by() -> None:
    engine = _ScriptedEngine()
    served = ServedEngine(engine, usd_per_hour=None)

    async def one() -> Draft:
        task = asyncio.create_task(
            served.generate(GenerationRequest(kind="answer", messages=[Message(role="user", content="q")]))
        )
        await asyncio.sleep(0)
        engine.release["q"].set()
        return await task

    draft = asyncio.run(one())
    assert draft.engine_s is None and draft.usd_per_hour is None


def test_hardware_prices_follow_the_placement() -> None:
    settings = Settings()
    rate = settings.hardware
    assert hourly_usd(SmallModelSpec(name="m"), settings) == rate.cpu_engine_hour_usd
    assert hourly_usd(SmallModelSpec(name="m", num_gpus=0.5), settings) == rate.gpu_hour_usd / 2
    tp = SmallModelSpec(name="m", num_gpus=2, engine_args={"tensor_parallel_size": 2})
    assert hourly_usd(tp, settings) == 2 * rate.gpu_hour_usd
    assert hourly_usd(SmallModelSpec(name="m", num_gpus=1, usd_per_hour=2.5), settings) == 2.5
    assert hourly_usd(SmallModelSpec(name="m", model="null"), settings) == 0
    assert hourly_usd(SmallModelSpec(name="m", model="x", base_url="http://x/v1"), settings) is None


# --- chat template -----------------------------------------------------------------------------------

# The tools part of Qwen2.5's published chat template (Qwen3 and Llama 3.x format tools the same
# way, in the system turn), shortened to what the test needs.
QWEN_TOOLS_TEMPLATE = """
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within '
    '<tool_call></tool_call> XML tags.<|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages if message.role != 'system' %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def _tokenizer():
    """A byte-level tokenizer (any text round-trips) carrying the tool-aware template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core)
    tokenizer.chat_template = QWEN_TOOLS_TEMPLATE
    return tokenizer


TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


def test_the_chat_template_lays_out_the_tools_itself() -> None:
    tokenizer = _tokenizer()
    messages = [Message(role="system", content="You route tickets."), Message(role="user", content="Where is NB-1?")]
    request = GenerationRequest(kind="tool_call", messages=messages, tools=[TOOL])
    text = tokenizer.decode(prompt_tokens(tokenizer, request))
    tools = text[text.index("<tools>\n") : text.index("\n</tools>")]  # the block, not the sentence naming it
    assert '"name": "get_order"' in tools and '"order_id"' in tools
    assert text.index("You route tickets.") < text.index("<tools>\n") < text.index("Where is NB-1?")
    assert text.endswith("<|im_start|>assistant\n")
    plain = tokenizer.decode(prompt_tokens(tokenizer, request.model_copy(update={"tools": None})))
    assert "<tools>" not in plain and plain.startswith("<|im_start|>system\nYou route tickets.<|im_end|>")


# --- prices ------------------------------------------------------------------------------------------


def test_frontier_prices_come_from_litellms_map_with_overrides_and_aliases() -> None:
    settings = Settings()
    assert settings.price_for("gpt-4o") == Price(input_per_m=2.5, output_per_m=10.0)
    assert settings.price_for("frontier-standin") == settings.price_for("gpt-4o")  # priced as it stands in
    contract = Settings(prices={"gpt-4o": Price(input_per_m=1, output_per_m=4)})
    assert contract.price_for("gpt-4o") == Price(input_per_m=1, output_per_m=4)
    assert Settings(prices={"in-house": None}).price_for("in-house") is None  # unpriced on purpose


def test_an_unknown_model_is_an_error_naming_it_not_a_default_price() -> None:
    with pytest.raises(UnpricedModelError, match="no price for model 'acme-llm-9'") as err:
        Settings().price_for("acme-llm-9")
    assert "SLMFLOW_PRICES" in str(err.value) and "null" in str(err.value)
    with pytest.raises(UnpricedModelError):
        Ledger(Settings(), "acme-llm-9")  # before any unit runs


def test_an_endpoint_member_nobody_priced_stops_the_fleet_at_start() -> None:
    from workers.fleet import check_priced

    member = SmallModelSpec(name="team-b", model="acme/llm-9b", base_url="http://x/v1", kinds=["answer"])
    config = FleetConfig(small=[SmallModelSpec(name="local"), member])
    with pytest.raises(UnpricedModelError, match="no price for model 'acme/llm-9b'"):
        check_priced(config, Settings())
    check_priced(config, Settings(price_aliases={"acme/llm-9b": "gpt-4o-mini"}))  # priced as a listed model
    check_priced(config, Settings(prices={"acme/llm-9b": None}))  # unpriced on purpose


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-3.5-turbo", "claude-3-5-sonnet-20240620", "llama-3-70b"])
def test_token_counts_are_litellms(model: str) -> None:
    """count_tokens skips LiteLLM's per-call tokenizer lookup; its counts must stay token_counter's,
    for short and long texts (LiteLLM extrapolates long ones), names and tool calls."""
    from slmflow.core.prices import count_tokens, litellm_module

    token_counter = litellm_module().token_counter
    long = "Parcels ship within two working days; refunds take five. " * 400
    call = {"id": "c1", "type": "function", "function": {"name": "refund", "arguments": '{"order": "A-17"}'}}
    conversations = [
        [],
        [{"role": "user", "content": "How do refunds work?"}],
        [{"role": "system", "content": "Answer from the evidence only."}, {"role": "user", "content": long}],
        [
            {"role": "system", "content": "You run the order desk."},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "name": "refund", "content": '{"ok": true}'},
        ],
    ]
    for messages in conversations:
        assert count_tokens(model, {}, messages=messages) == token_counter(model=model, messages=messages)
    for text in ["", "a", "Crème brûlée costs €4.50", long]:
        assert count_tokens(model, {}, text=text) == (token_counter(model=model, text=text) if text else 0)


def test_first_token_counts_from_concurrent_tasks_all_succeed() -> None:
    """A job's first units count tokens from several task threads while LiteLLM is not yet
    imported. A text count importing LiteLLM's tokenizer module while a chat count imports the
    package once deadlocked in importlib: one count failed, the other kept a half-built LiteLLM
    that broke every later count in the process. A fresh interpreter, so the import is a first."""
    script = textwrap.dedent(
        """
        import threading, time
        from slmflow.core.prices import count_tokens
        counts = {}
        def chat():
            counts["chat"] = count_tokens("gpt-4o", {}, messages=[{"role": "user", "content": "hello there"}])
        def text():
            counts["text"] = count_tokens("gpt-4o", {}, text="hello there")
        first = threading.Thread(target=chat)
        first.start()
        time.sleep(0.3)  # the package import is under way when the second count starts
        second = threading.Thread(target=text)
        second.start()
        first.join(); second.join()
        print(counts["chat"], counts["text"])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    chat, text = map(int, done.stdout.split())
    assert chat > text > 0


def test_an_unpriced_model_costs_nothing_and_says_so() -> None:
    from slmflow.core.records import Attempt, Verdict

    ledger = Ledger(Settings(prices={"in-house": None}), "gpt-4o")
    draft = Draft(model="in-house", text="hi", output="hi", tokens_in=10, tokens_out=2, latency_s=0)
    request = GenerationRequest(kind="answer", messages=[Message(role="user", content="hello")])
    entry = ledger.entry(
        [Attempt(role="small", draft=draft, verdict=Verdict(accept=True, score=1, checks=[]))], request
    )
    assert entry.usd == 0 and entry.unpriced == ["in-house"] and entry.counterfactual_usd > 0


# --- provider parameters -----------------------------------------------------------------------------


def test_parameters_follow_what_each_model_accepts() -> None:
    assert params_for("gpt-4o") == RequestParams()
    for reasoning in ("o3-mini", "gpt-5"):
        assert params_for(reasoning) == RequestParams(
            token_limit="max_completion_tokens", sampling=False, logprobs=False
        ), reasoning
    assert params_for("some-model-litellm-has-never-heard-of") == RequestParams()
    assert RequestParams(token_limit="max_completion_tokens", sampling=False, logprobs=False).kwargs(64, 0.0) == {
        "max_completion_tokens": 64
    }


def test_a_refused_parameter_is_dropped_or_renamed_once() -> None:
    message = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    )
    assert refused_param(None, message) == "max_tokens"
    assert refused_param("temperature", "whatever") == "temperature"
    assert refused_param(None, "logprobs are not supported") == "logprobs"
    assert refused_param(None, "messages must not be empty") is None
    params = RequestParams()
    for name in ("max_tokens", "temperature", "top_logprobs"):
        params = adapted(params, name)
    assert params == RequestParams(token_limit="max_completion_tokens", sampling=False, logprobs=False)
    assert all(adapted(params, name) is None for name in ("max_tokens", "temperature", "logprobs", None))


def test_up_refuses_a_bad_fleet_file_before_starting_anything(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from slmflow.cli import app as cli
    from slmflow.cli import stack

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"small": [{"name": "qwen", "model": "Qwen/Qwen3-4B", "num_gpus": 2}]}))
    started = []
    monkeypatch.setattr(stack, "ensure_prefect_server", lambda settings: started.append("prefect"))
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(fleet_file=fleet, state_dir=tmp_path / "state"))
    result = CliRunner().invoke(cli.app, ["up"])
    assert result.exit_code == 1 and started == []
    assert "fleet member 'qwen' (Qwen/Qwen3-4B)" in result.output and "reserves 2 GPUs" in result.output
    assert "Traceback" not in result.output
