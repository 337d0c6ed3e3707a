"""The one settings object. Every field can be overridden by an environment variable.

`SLMFLOW_<FIELD>` overrides a field; nested fields use `__` (e.g. `SLMFLOW_VLLM__MAX_MODEL_LEN`).
A handful of fields also honour the names their ecosystems already use (`RAY_ADDRESS`,
`QDRANT_URL`, `QDRANT_API_KEY`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slmflow.core.prices import Price
from slmflow.core.prices import price_for as _price_for

BUNDLED = "bundled"
EmbeddingRuntime = Literal["auto", "onnx", "onnx-int8", "torch"]


def _default_data_dir() -> Path:
    """`shared/data` beside the checkout: third-party evaluation data is read in place, never copied
    into the repository. An installed wheel has no checkout: set SLMFLOW_DATA_DIR."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slmflow"


class VLLMSettings(BaseModel):
    """Engine arguments every fleet member starts from; a member's `engine_args` override them."""

    max_model_len: int = 2048
    enforce_eager: bool = True  # torch.compile costs 70-130 s of start-up on CPU for ~30% speed
    kv_cache_gib: int = 1  # CPU only: VLLM_CPU_KVCACHE_SPACE
    # For an engine with a whole GPU; one with a share of a GPU (num_gpus < 1) gets this times its share.
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)


class HardwarePrices(BaseModel):
    """What the hardware a fleet engine holds costs per hour; a unit pays for the engine time it
    used (docs/costs.md). Set these to your own rates; a fleet member's `usd_per_hour` overrides."""

    # Roughly an on-demand NVIDIA L4 in a public cloud (2025 list prices run $0.70-0.90).
    gpu_hour_usd: float = Field(0.80, ge=0)
    # One CPU engine slot (the `slmflow_engine` resource): two cores and their memory.
    cpu_engine_hour_usd: float = Field(0.10, ge=0)


class VerifierSettings(BaseModel):
    # The learned P(correct) of free-text answers (verification/weights/answer.json), on top of the
    # rule checks. On by default: it beats the rules on held-out real outputs (docs/verifier.md).
    # `slmflow verify --rules-only` and a task's own `verify.min_support` use the rules instead.
    learned: bool = True
    # Alternatives for the cross-check: answers by the fleet's small model to the same request
    # (math, classify, extract, tool_call), compared with the draft (verification.agreement).
    # 0 = off: on CPU each one costs a small-model generation; see docs/verifier.md.
    alternatives: int = Field(0, ge=0, le=8)
    # Sampling temperature of the alternatives: above 0, samples of one model differ.
    alternatives_temperature: float = Field(0.7, ge=0, le=2)
    classify_min_confidence: float = Field(0.5, ge=0, le=1)
    extract_min_grounded: float = Field(0.75, ge=0, le=1)
    answer_min_support: float = Field(0.6, ge=0, le=1)
    # Flow tool calls: share of argument values that must appear in the prompt, evidence or
    # earlier observations. 1.0: a model may not invent an order number or an amount.
    tool_call_min_grounded: float = Field(1.0, ge=0, le=1)
    # Where `slmflow verifier train` and `calibrate` write weights, and where the verifier looks
    # for them first; a kind with no weights here uses those shipped in the package. Settings
    # fill in <cache_dir>/verifier: an installed package's own folder may not be writable.
    weights_dir: Path | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLMFLOW_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    results_dir: Path = Path("runs")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="evaluation data (GSM8K, BFCL, BEGIN, ...) for eval, benchmarks and verifier training",
    )
    fleet_file: Path | None = Field(
        None, description="YAML fleet config; without it, one bundled small model serves every kind."
    )

    # Small model used by the default fleet: "bundled" (SmolLM2-135M-Instruct, prepared offline),
    # a hub id, or a local HF folder.
    small_model: str = BUNDLED
    vllm: VLLMSettings = VLLMSettings()

    # Frontier: any OpenAI-compatible endpoint. Unset base_url = start the local stand-in.
    frontier_base_url: str | None = None
    frontier_model: str | None = None
    frontier_api_key: SecretStr | None = None
    frontier_api_key_block: str | None = Field(
        None, description="name of a Prefect Secret block holding the key (instead of the env)"
    )
    frontier_rpm: int = Field(600, ge=1, description="frontier requests/minute across all flows")
    frontier_timeout_s: float = Field(60.0, gt=0)
    frontier_max_wait_s: float = Field(
        60.0, gt=0, description="the longest retry-after a provider may ask for; a longer one fails the request"
    )
    standin_port: int = 8765

    ray_address: str | None = Field(None, validation_alias=AliasChoices("SLMFLOW_RAY_ADDRESS", "RAY_ADDRESS"))
    ray_namespace: str = "slmflow"
    ray_port: int = Field(6390, description="GCS port of the head `slmflow up` starts (+1 client, +2 agent)")
    engine_slots: int = Field(1, ge=1, description="model engines per CPU-only node (one per 2 cores)")
    placement_timeout_s: float = Field(
        120.0, gt=0, description="how long a sharded engine's placement group may take to be ready"
    )
    metrics_port: int = Field(
        6398,
        description="Ray's Prometheus endpoint on 127.0.0.1, exported by the head `slmflow up` starts; a "
        "private per-run cluster exports there only when SLMFLOW_METRICS_PORT is set",
    )
    worker_health_port: int = 8791

    prefect_port: int = 4200
    prefect_auth: SecretStr | None = Field(
        None,
        description="'user:password' basic auth for the Prefect API: `up` makes its server "
        "require it and its worker send it; this process sends it too",
    )
    prefect_database_url: SecretStr | None = Field(
        None, description="PostgreSQL for the Prefect server `up` starts (postgresql+asyncpg://...); default SQLite"
    )
    task_concurrency: int = Field(32, ge=1, description="Prefect task threads = requests in flight")
    # Large jobs (docs/scale.md): above `batch_above` units, one Prefect task run covers a batch of
    # `batch_items` items instead of each unit being a task run of its own.
    batch_above: int = Field(5000, ge=1, description="units above which a job runs in batches")
    batch_items: int = Field(1000, ge=1, description="items per batch")
    batches_in_flight: int = Field(2, ge=1, description="batches a run (or shard) works on at once")
    work_pool: str = Field("local", description="Prefect process work pool of job, review and deployment runs")
    shard_pool: str = Field("slmflow-shards", description="Prefect work pool whose workers run a job's shards")
    shard_workers: int = Field(0, ge=0, description="workers `slmflow up` starts on the shard pool")
    tool_hosts: int = Field(2, ge=1, le=32, description="sandboxed tool processes per privilege set")
    task_retries: int = Field(2, ge=0)
    open_reviews: bool = Field(
        True, description="open a Prefect review run (suspended, awaiting a decision) per needs_review unit"
    )
    review_runs_max: int = Field(1000, ge=0, description="review runs opened per job run at most")
    alert_webhook: str | None = Field(
        None, description="`up` installs the alert automations (deployments/automations) to POST here"
    )
    alert_max_review: int = Field(10, ge=0, description="alert when a run leaves more units than this for review")

    qdrant_url: str | None = Field(None, validation_alias=AliasChoices("SLMFLOW_QDRANT_URL", "QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLMFLOW_QDRANT_API_KEY", "QDRANT_API_KEY")
    )
    embedding_model: str = BUNDLED  # packaged all-MiniLM-L6-v2, or a sentence-transformers path
    embedding_runtime: EmbeddingRuntime = Field(
        "auto",
        description="onnx: the ONNX Runtime export `slmflow models prepare` builds (required); onnx-int8: "
        "its int8-weight form (a query in about two thirds of the time, vectors within cosine 0.98 of torch's; "
        "required); torch: sentence-transformers; auto: the export when it is there, else torch with a warning",
    )

    verifier: VerifierSettings = VerifierSettings()

    # Token prices come from LiteLLM's price map (slmflow/core/prices.py); these override it (USD
    # per million tokens; null = unpriced on purpose). The bundled model's entry prices replayed
    # logs (`slmflow eval`), which carry tokens but no engine time; a fleet engine's drafts are
    # priced by the engine time they used (`hardware`). docs/costs.md has the whole cost model.
    prices: dict[str, Price | None] = {"smollm2-135m": Price(input_per_m=0.03, output_per_m=0.06)}
    # Priced (and tokenized) as another model: the stand-in as the frontier it stands in for, so
    # savings figures mean what they would in production.
    price_aliases: dict[str, str] = {"frontier-standin": "gpt-4o"}
    hardware: HardwarePrices = HardwarePrices()

    # Defaults under cache_dir; set separately to share converted models between environments
    # while keeping state apart (as the tests do).
    models_dir: Path = Field(None, validate_default=False)  # type: ignore[assignment]
    state_dir: Path = Field(None, validate_default=False)  # type: ignore[assignment]
    qdrant_dir: Path = Field(None, validate_default=False)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _derive_dirs(self) -> Settings:
        for name in ("models", "state", "qdrant"):
            if getattr(self, f"{name}_dir") is None:
                setattr(self, f"{name}_dir", self.cache_dir / name)
        if self.verifier.weights_dir is None:
            self.verifier = self.verifier.model_copy(update={"weights_dir": self.cache_dir / "verifier"})
        return self

    @property
    def verifier_weights_dir(self) -> Path:
        """`verifier.weights_dir`, which `_derive_dirs` always fills in."""
        assert self.verifier.weights_dir is not None
        return self.verifier.weights_dir

    @property
    def uses_standin(self) -> bool:
        return not self.frontier_base_url

    def price_for(self, model: str) -> Price | None:
        """`model`'s token price; None when it is unpriced on purpose. Raises
        `slmflow.core.prices.UnpricedModelError` for a model nobody priced."""
        return _price_for(model, self.prices, self.price_aliases)


@lru_cache
def get_settings() -> Settings:
    return Settings()
