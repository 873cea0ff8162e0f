# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test bench clean

install: $(VENV)/.installed  ## create .venv with everything `run`, `test` and training need

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]' -e ./clients/python
	touch $@

run: install  ## serve the bundled models on $(HOST):$(PORT)
	$(BIN)/python -m app.server --host $(HOST) --port $(PORT)

test: install  ## run the test suite (fails on "no tests collected", pytest's exit 5)
	$(BIN)/pytest

bench: install  ## serving benchmark (batching on/off vs the raw SavedModel, on loopback; a few minutes), then headline decoding
	$(BIN)/python -m bench.serve --plots docs/images/bench
	$(BIN)/python -m bench.headline_decode

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
