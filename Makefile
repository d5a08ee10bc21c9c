# The README's commands live here. `make test` works on a fresh clone: it creates .venv when it
# is missing, installs what the tests need, builds the extension and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.qwen25-deps
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all venv build test test-rust test-python stubtest demo bench lint wheel clean

all: test

$(STAMP): requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

build: $(STAMP)
	$(VENV)/bin/maturin develop --release -q

test-rust:
	cargo test --workspace -q

test-python: build
	$(PY) -m pytest -q

stubtest: build
	$(PY) -m mypy.stubtest qwen25._native --allowlist stubtest_allowlist.txt

test: build test-rust test-python stubtest

demo: build
	$(PY) -m qwen25.cli demo

bench: build
	$(PY) benches/bench_tokenizer.py

lint: build
	cargo clippy --workspace -q -- -D warnings
	$(PY) -m mypy python/qwen25

wheel: $(STAMP)
	$(VENV)/bin/maturin build --release -o dist

clean:
	rm -rf target dist $(VENV)
