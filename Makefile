# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test bench train-qa clean

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

# The bundled QA reader's recipe (docs/qa.md): two readers, one fine-tuned from a third's export,
# averaged into one SavedModel. Run again after an interruption: each run resumes from its backups.
QA_TRAIN := $(BIN)/python -m training qa train --quiet --extra-train drcd/DRCD_dev.json --extra-train drcd/DRCD_test.json \
	--t2s --crop-rate 0.3 --ema 0.999 --span-loss softmax

train-qa: install  ## train the bundled QA reader from scratch into models/qa (~3.5 h on 2 cores)
	$(QA_TRAIN) --run-dir runs/qa_w2v --epochs 8 --word2vec-epochs 5 --crop-negative-rate 1
	test -d runs/qa_w2v/export/qa/1 || $(BIN)/python -m training qa export --run-dir runs/qa_w2v --model-root runs/qa_w2v/export
	$(QA_TRAIN) --run-dir runs/qa_ft --epochs 1 --learning-rate 5e-4 --init-from runs/qa_w2v/export/qa/1
	$(QA_TRAIN) --run-dir runs/qa_cw2v --epochs 4 --word2vec-epochs 5 --word2vec-extra ner --word2vec-extra headline \
		--char-word2vec --seed 8
	$(BIN)/python -m training qa export --run-dir runs/qa_cw2v --ensemble runs/qa_ft --int8-embeddings --prune

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
