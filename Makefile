# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test test-slow check-deploy bench train-qa clean

install: $(VENV)/.installed  ## create .venv with everything `run`, `test` and training need

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]' -e ./clients/python
	touch $@

run: install  ## serve the bundled models on $(HOST):$(PORT)
	$(BIN)/python -m app.server --host $(HOST) --port $(PORT)

test: install  ## the fast tier, a few minutes (fails on "no tests collected", pytest's exit 5)
	$(BIN)/pytest -m "not slow"

test-slow: install  ## the slow tier: train→export runs, servers, browser, nginx, Redis, fuzzing (.ci/run runs both)
	$(BIN)/pytest -m slow

# Scanners for the deployment and the service's code, in a venv of their own (checkov pins
# dependencies the service's would conflict with). docs/security.md says what each checks.
CHECKS := .venv-checks
$(CHECKS)/.installed:
	$(PYTHON) -m venv $(CHECKS)
	$(CHECKS)/bin/pip install --quiet checkov==3.3.30 kubernetes-validate==1.37.0 bandit==1.9.4
	touch $@

check-deploy: $(CHECKS)/.installed  ## checkov over k8s/ and the Dockerfile, kubernetes-validate, bandit over app/
	$(CHECKS)/bin/checkov --quiet --compact --skip-download --framework kubernetes -d k8s
	$(CHECKS)/bin/checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile
	$(CHECKS)/bin/kubernetes-validate --strict k8s/*.yaml
	$(CHECKS)/bin/bandit --quiet --recursive app

bench: install  ## serving benchmark (batching on/off vs the raw SavedModel, on loopback; a few minutes), then headline decoding
	$(BIN)/python -m bench.serve --with-two-versions --plots docs/images/bench
	$(BIN)/python -m bench.headline_decode

# The bundled QA reader's recipe (docs/qa.md): two readers (seeds 11 and 12) with passage-to-question
# attention and word2vec-started tables, exported as one (start/end logits averaged) with its decoding
# and calibration fitted on dev's calibration half. Run again after an interruption: each run
# resumes from its epoch backups.
QA_TRAIN := $(BIN)/python -m training qa train --quiet --extra-train drcd/DRCD_dev.json --extra-train drcd/DRCD_test.json \
	--t2s --crop-rate 0.3 --ema 0.999 --span-loss softmax

QA_READER = $(QA_TRAIN) --run-dir runs/qa_qattn_s$(1) --epochs 4 --word2vec-epochs 5 --word2vec-extra ner \
	--word2vec-extra headline --char-word2vec --question-attention --crop-negative-rate 0.3 --seed $(1)

# The two readers train side by side (sharing the cores), then are exported as one.
train-qa: install  ## train the bundled QA reader from scratch into models/qa (about 1 h 45 min on 2 idle cores)
	$(call QA_READER,11) & pid=$$!; $(call QA_READER,12) || { kill $$pid; exit 1; }; wait $$pid
	$(BIN)/python -m training qa export --run-dir runs/qa_qattn_s11 --ensemble runs/qa_qattn_s12 --int8-embeddings --prune

clean:
	rm -rf $(VENV) $(CHECKS) .pytest_cache .hypothesis
