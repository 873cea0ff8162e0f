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

# The bundled QA reader's recipe (docs/qa.md): three readers with passage-to-question attention and
# word2vec-started tables, trained with answerless foreign passages — seed 13 on CMRC, DRCD and
# WebQA for 3 epochs, seeds 12 and 11 with DuReader too for 4 and 3 — exported as one (start/end logits
# averaged, weights float16, tables int8) with its decoding and calibration fitted on dev's
# calibration half. Run again after an interruption: each run resumes from its epoch backups.
QA_TRAIN := $(BIN)/python -m training qa train --quiet --extra-train drcd/DRCD_dev.json --extra-train drcd/DRCD_test.json \
	--extra-train webqa_train/me_test_minus_webqa_sample.json --t2s --crop-rate 0.3 --ema 0.999 --span-loss softmax \
	--word2vec-epochs 5 --word2vec-extra ner --word2vec-extra headline --char-word2vec --question-attention \
	--crop-negative-rate 0.3 --foreign-passage-rate 0.3

QA_READER = $(QA_TRAIN) --run-dir runs/$(1) --seed $(2) --epochs $(3) $(4)
QA_WEB_READER = $(call QA_READER,qa_web_s$(1)_fps,$(1),$(2),--extra-train dureader_robust/dev.json)

# Two readers train side by side (sharing the cores), then the third; then they are exported as one.
train-qa: install  ## train the bundled QA reader from scratch into models/qa (about 2 h 20 min on 2 idle cores)
	$(call QA_READER,qa_webqa_s13_fps,13,3) & pid=$$!; $(call QA_WEB_READER,12,4) || { kill $$pid; exit 1; }; wait $$pid
	$(call QA_WEB_READER,11,3)
	$(BIN)/python -m training qa export --run-dir runs/qa_webqa_s13_fps --ensemble runs/qa_web_s12_fps runs/qa_web_s11_fps \
		--int8-embeddings --float16-weights --prune

clean:
	rm -rf $(VENV) $(CHECKS) .pytest_cache .hypothesis
