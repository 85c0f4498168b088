# Every target works on a fresh machine: it builds .venv from the project's own files.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install serve test lint format bench train eval clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e '.[inference,test,dev]'
	touch $@

install: $(STAMP)

serve: install
	$(VENV)/bin/visiongate serve

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check gateway inference tests bench
	$(VENV)/bin/ruff format --check gateway inference tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix gateway inference tests bench
	$(VENV)/bin/ruff format gateway inference tests bench

bench: install
	$(PY) -m bench.triton_bench
	$(PY) -m bench.gateway_bench
	$(PY) -m bench.limits_bench
	$(PY) -m bench.guided_bench
	$(PY) -m bench.media_bench
	$(PY) -m bench.http_protocol_bench
	$(PY) -m inference.evaluate

# Retrain the shipped default model, tiny-vlm (inference/weights/tiny-vlm; about 20 min
# alone on one core of a 2-core machine, 22-31 with other work beside it); `make eval` prints
# its accuracy per task and tokens/s.
train: install
	$(PY) -m inference.train

eval: install
	$(PY) -m inference.evaluate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
