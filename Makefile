# kexp: `make run` trains the default experiment, `make test` runs the test suite.
# TF=gpu installs the CUDA build of TensorFlow instead of the CPU one; keep it in its own
# venv (make run TF=gpu VENV=.venv-gpu): the two builds cannot share one.
PYTHON ?= python3
VENV ?= .venv
TF ?= cpu
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 5000
TB_PORT ?= 6006

.PHONY: install dev run test lint ui tensorboard zoo-report bench-tune bench bench-gan bench-lm bench-seq2seq docs report clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# reinstall when the project's dependencies change
$(VENV)/.installed-$(TF): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[$(TF)]"
	touch $@

$(VENV)/.installed-dev-$(TF): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[$(TF),dev]"
	touch $@ $(VENV)/.installed-$(TF)

install: $(VENV)/.installed-$(TF)

dev: $(VENV)/.installed-dev-$(TF)

run: install
	$(PY) -m kexp $(ARGS)

# two test processes: most tests wait on subprocess start-up and TensorFlow imports
# (TEST_WORKERS=0 runs them in this process, e.g. to debug one test); a test file's tests stay
# in one process, so a module's trained fixture (a GAN, a default run, the quick benchmark) is
# built once, not once per process
TEST_WORKERS ?= 2
test: dev
	$(PY) -m pytest -n $(TEST_WORKERS) $(if $(filter 0,$(TEST_WORKERS)),,--dist loadfile) \
		$(PYTEST_ARGS)

# the checks of .pre-commit-config.yaml over the whole tree, without pre-commit:
# ruff, trailing whitespace and end-of-file newlines, docs/configuration.md up to date
lint: dev
	$(BIN)/ruff check kexp tests tools
	$(PY) tools/check_whitespace.py
	$(PY) -m kexp.config.reference --check

ui: install
	$(BIN)/mlflow ui --host 127.0.0.1 --port $(PORT) \
		--backend-store-uri sqlite:///$(abspath logs)/mlflow.db

# every run's event files (logger=tensorboard or logger=[mlflow,tensorboard]) under logs/
tensorboard: install
	$(BIN)/tensorboard --logdir logs --host 127.0.0.1 --port $(TB_PORT)

# every model preset: parameters, FLOPs and the reference it was checked against
zoo-report: install
	$(PY) -m kexp.models.zoo_report

# Hyperband against random search at the same epoch budget (MLP on digits, offline)
bench-tune: install
	$(PY) -m kexp.tuning.tuner_bench $(ARGS)

# training images/s: plain Keras vs tf.data best practice vs kexp (docs/benchmarks.md);
# ARGS=--quick is the reduced CI mode
bench: install
	$(PY) -m kexp.bench $(ARGS)

# GAN training images/s: hand-written keras-io DCGAN vs kexp task=gan, and kexp's per-epoch
# scoring cost (docs/benchmarks.md, "GAN (task=gan)"); ARGS=--quick is the reduced mode
bench-gan: install
	$(PY) -m kexp.tasks.gan.bench $(ARGS)

# language-model training tokens/s: hand-written Keras vs kexp task=language_model, the same
# layers and batch (docs/benchmarks.md, "Language models"); ARGS="--model gpt_mini --steps 20",
# ARGS="--text FILE", ARGS=--quick
bench-lm: install
	$(PY) -m kexp.tasks.language_model.bench $(ARGS)

# training target tokens/s of task=seq2seq model=rnn_seq2seq against a hand-written Keras
# encoder-decoder of the same layers and batch (docs/benchmarks.md, "Translation");
# ARGS="--pairs ../shared/data/fra-eng-first20k.tsv", ARGS=--quick is the reduced mode
bench-seq2seq: install
	$(PY) -m kexp.tasks.seq2seq.bench $(ARGS)

# one self-contained HTML page of an experiment's runs (ARGS="experiment=NAME format=md ...")
report: install
	$(PY) -m kexp.report $(ARGS)

# docs/configuration.md from conf/ (tests/test_docs.py fails when it is out of date)
docs: install
	$(PY) -m kexp.config.reference

clean:
	rm -rf logs outputs multirun .pytest_cache
