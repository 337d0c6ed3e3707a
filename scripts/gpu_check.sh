#!/usr/bin/env bash
# The GPU check: what the CPU development machine cannot show, measured on a machine with NVIDIA
# GPUs (3 or more; the fleet below needs 1 + TP of them). It
#   1. installs with ENGINE=gpu (vllm, CUDA) into .venv and prepares the bundled model,
#   2. serves the frontier stand-in on GPU 0 with a small memory share (or uses the frontier you
#      configured with SLMFLOW_FRONTIER_BASE_URL / _MODEL / _API_KEY),
#   3. starts the stack with a two-model fleet: Qwen3-1.7B on half a GPU, and Qwen3-4B sharded over
#      TP GPUs (tensor parallel, a placement group of TP one-GPU bundles),
#   4. runs the demo job, and
#   5. prints the figures docs/benchmarks.md ("On a GPU") expects: placement per replica, tokens/s,
#      KV-cache use, outcomes, cost against all-frontier; then stops everything it started.
#
#   scripts/gpu_check.sh                 # TP=2, the demo job's 24 tickets
#   TP=4 LIMIT=8 scripts/gpu_check.sh    # four shards, 8 tickets
#
# Needs network access for pip and the Hugging Face hub (the two Qwen models, ~12 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

TP=${TP:-2}
LIMIT=${LIMIT:-24}
WORK=${WORK:-$(mktemp -d -t slmflow-gpu-XXXXXX)}
PY=.venv/bin/python
slmflow() { .venv/bin/slmflow "$@"; }

command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this check needs NVIDIA GPUs" >&2; exit 2; }
GPUS=$(nvidia-smi --list-gpus | wc -l)
NEED=$((TP + 1))
if [ "$GPUS" -lt "$NEED" ]; then
  echo "this fleet needs $NEED GPUs (half of one for the 1.7B model, $TP for the sharded 4B); found $GPUS" >&2
  exit 2
fi
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader

echo "== 1. install (ENGINE=gpu) and prepare the bundled model"
make install model ENGINE=gpu

# State, results and Ray's files apart from any other slmflow on this machine; models shared.
export SLMFLOW_CACHE_DIR="$WORK/cache" SLMFLOW_MODELS_DIR="${SLMFLOW_MODELS_DIR:-$HOME/.cache/slmflow/models}"
export SLMFLOW_RESULTS_DIR="$WORK/runs"
export SLMFLOW_METRICS_PORT=${SLMFLOW_METRICS_PORT:-6398}
# CUDA graphs: a slower engine start for faster decoding, as production would run.
export SLMFLOW_VLLM__ENFORCE_EAGER=false

STANDIN_PID=""
cleanup() {
  slmflow down || true
  if [ -n "$STANDIN_PID" ]; then kill "$STANDIN_PID" 2>/dev/null || true; wait "$STANDIN_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

echo "== 2. frontier"
if [ -z "${SLMFLOW_FRONTIER_BASE_URL:-}" ]; then
  # The stand-in on GPU 0, outside Ray's accounting: it takes 10 % of that GPU's memory, so the
  # fleet's members below leave room for it (the 1.7B model asks for 42.5 %, the shards 80 %).
  PORT=8765
  CUDA_VISIBLE_DEVICES=0 $PY -m vllm.entrypoints.openai.api_server \
    --model "$($PY -c 'from slmflow.core.settings import get_settings; from slmflow.core.models import resolve_model; print(resolve_model(get_settings())[1])')" \
    --served-model-name frontier-standin --host 127.0.0.1 --port $PORT \
    --gpu-memory-utilization 0.10 --max-model-len 2048 \
    --enable-auto-tool-choice --tool-call-parser pythonic >"$WORK/standin.log" 2>&1 &
  STANDIN_PID=$!
  until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
    kill -0 "$STANDIN_PID" 2>/dev/null || { tail -30 "$WORK/standin.log"; exit 1; }
    sleep 2
  done
  export SLMFLOW_FRONTIER_BASE_URL="http://127.0.0.1:$PORT/v1" SLMFLOW_FRONTIER_MODEL=frontier-standin
  echo "local stand-in for a frontier model (priced as gpt-4o)"
else
  echo "frontier: ${SLMFLOW_FRONTIER_MODEL:-gpt-4o} at $SLMFLOW_FRONTIER_BASE_URL"
fi

echo "== 3. the fleet: a half-GPU model and a model sharded over $TP GPUs"
cat >"$WORK/fleet.yaml" <<EOF
small:
  - name: qwen3-1b7
    model: Qwen/Qwen3-1.7B
    kinds: [classify, extract]
    num_gpus: 0.5
    engine_args: {max_model_len: 4096, enable_prefix_caching: true}
  - name: qwen3-4b-tp
    model: Qwen/Qwen3-4B-Instruct-2507
    kinds: [answer, tool_call]
    num_gpus: $TP
    engine_args: {tensor_parallel_size: $TP, max_model_len: 8192, gpu_memory_utilization: 0.8}
EOF
export SLMFLOW_FLEET_FILE="$WORK/fleet.yaml"
start=$(date +%s)
slmflow up
echo "fleet up in $(( $(date +%s) - start )) s"

echo "== 4. the demo job ($LIMIT tickets)"
slmflow run deployments/support_inbox/job.yaml --limit "$LIMIT" --recompute | tee "$WORK/run.log"

echo "== 5. figures"
slmflow status --json >"$WORK/status.json"
curl -sf "http://127.0.0.1:$SLMFLOW_METRICS_PORT/metrics" >"$WORK/metrics.txt"
$PY - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from prometheus_client.parser import text_string_to_metric_families

work = Path(sys.argv[1])
status = json.loads((work / "status.json").read_text())
for row in status["fleet"]:
    if row["actor"].startswith("small:"):
        print(f"{row['actor']:<24} gpus={row.get('gpus')} shards={row.get('placement_group')} "
              f"CUDA_VISIBLE_DEVICES={row.get('cuda_visible_devices')} "
              f"gpu_memory_utilization={row.get('gpu_memory_utilization')} served={row.get('served')} "
              f"tokens_out={row.get('tokens_out')} busy_s={row.get('busy_s')}")
samples = {}
for family in text_string_to_metric_families((work / "metrics.txt").read_text()):
    for s in family.samples:
        samples.setdefault(s.name, []).append(s)
def total(name, **labels):
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))
for row in status["fleet"]:
    if row["actor"].startswith("small:") and row.get("busy_s"):
        print(f"{row['actor']:<24} {row['tokens_out'] / row['busy_s']:.0f} generated tokens per busy second")
kv = [s.value for s in samples.get("ray_vllm_kv_cache_usage_perc", [])]
print(f"KV-cache use now: {', '.join(f'{v:.1%}' for v in kv) or 'n/a'}")
print(f"vLLM generated tokens in all: {total('ray_vllm_generation_tokens_total'):.0f}")
for s in samples.get("ray_slmflow_units_total", []):
    print(f"units {s.labels['kind']:<10} {s.labels['status']:<13} {s.value:.0f}")
print(f"frontier spend ${total('ray_slmflow_frontier_usd_total'):.6f}, all costs ${total('ray_slmflow_cost_usd_total'):.6f}, "
      f"all-frontier ${total('ray_slmflow_counterfactual_usd_total'):.6f}")
PY
echo "logs and figures in $WORK"
