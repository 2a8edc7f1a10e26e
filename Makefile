# Two entry points for a fresh machine: `make demo` and `make test`. Each builds .venv when missing.
# `make test-swift` runs the ms-swift tests in their own environment (.venv-swift: ms-swift pins older
# transformers/trl/peft than the dev pins); .ci/run runs it after `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hardmine-installed
SWIFT_VENV := .venv-swift
SWIFT_STAMP := $(SWIFT_VENV)/.hardmine-installed

.PHONY: demo demo-plain test swift-env test-swift bench bench-quality docs lint clean

$(STAMP): pyproject.toml constraints-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-dev.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints-dev.txt -e ".[dev,hf,report,docs]"
	touch $(STAMP)

# the main demo: a tiny Qwen3-VL detection SFT through HardMiningTrainer (about 2-3 minutes on 2 CPU cores)
demo: $(STAMP)
	$(PY) examples/qwen3_vl_detection_sft.py

# the same idea in a plain PyTorch loop (seconds)
demo-plain: $(STAMP)
	$(PY) examples/plain_loop.py

# pytest exits 5 when it collected nothing: that is a failure here, as is any other non-zero code.
test: $(STAMP)
	$(PY) -m pytest

# ms-swift 4.6 and its pins (constraints-swift.txt), hardmine editable, pytest: about 2.5 minutes, 2 GB
$(SWIFT_STAMP): pyproject.toml constraints-swift.txt
	test -x $(SWIFT_VENV)/bin/python || $(PYTHON) -m venv $(SWIFT_VENV)
	$(SWIFT_VENV)/bin/python -m pip install -q --upgrade pip
	$(SWIFT_VENV)/bin/python -m pip install -q -c constraints-swift.txt torch==2.13.0
	$(SWIFT_VENV)/bin/python -m pip install -q -c constraints-swift.txt ms-swift pytest -e ".[hf]"
	touch $(SWIFT_STAMP)

swift-env: $(SWIFT_STAMP)

# the real ms-swift on a tiny Qwen3 (tests/swift; skipped by `make test`, which has no ms-swift)
test-swift: $(SWIFT_STAMP)
	$(SWIFT_VENV)/bin/python -m pytest tests/swift

bench: $(STAMP)
	$(PY) benchmarks/bench_sampler.py
	$(PY) benchmarks/bench_ledger.py
	$(PY) benchmarks/bench_end_epoch.py
	$(PY) benchmarks/bench_fusion.py
	$(PY) benchmarks/bench_hf_overhead.py
	$(PY) benchmarks/bench_gather.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_trl_overhead.py

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# mining quality (issue 12): uniform, class-balanced, RFS, old and new defaults on 4 tasks x 0/20/40% noise,
# 5 held-out seeds x 3 learning rates (CPU, 2 workers; 11 minutes on the idle 2-core VM, 15 under load: docs/benchmarks.md)
bench-quality: $(STAMP)
	$(PY) -m benchmarks.quality

lint: $(STAMP)
	$(VENV)/bin/ruff check hardmine tests examples benchmarks docs/_ext
	$(VENV)/bin/mypy hardmine

clean:
	rm -rf $(VENV) $(SWIFT_VENV) site .pytest_cache .hypothesis .mypy_cache .ruff_cache
