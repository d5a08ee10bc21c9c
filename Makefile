# The README's commands live here. `make test` works on a fresh clone: it creates .venv when it
# is missing, installs what the tests need, builds the extension and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.qwen25-deps
# what `make wheel` and its tests add to the venv (see wheel-deps)
WHEEL_DEPS := $(VENV)/.qwen25-wheel-deps
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all venv build test test-rust test-python stubtest demo bench lint wheel sdist wheel-deps \
	aarch64-toolchain clean

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

test-python: build $(WHEEL_DEPS)
	$(PY) -m pytest -q

stubtest: build
	$(PY) -m mypy.stubtest qwen25._native --allowlist stubtest_allowlist.txt

test: build test-rust test-python stubtest

demo: build
	$(PY) -m qwen25.cli demo

# the whole recipe small on the CPU (qwen25.eval.e2e): data, pre-training + ABF, SFT, RM + DPO, eval
E2E_OUT ?= out/e2e
.PHONY: demo-e2e
demo-e2e: build
	$(PY) -m qwen25.cli demo e2e --out $(E2E_OUT)

bench: build
	$(PY) benches/bench_tokenizer.py

lint: build
	cargo clippy --workspace -q -- -D warnings
	$(PY) -m mypy python/qwen25

# -- wheels and the sdist (tests/unit/test_wheel.py builds and checks both) -----------------------
# `make wheel` builds abi3 wheels (one per architecture, any CPython >= 3.10) tagged manylinux2014
# (glibc >= 2.17) into $(DIST): x86_64, and aarch64 where an aarch64 Rust std can be had. A plain
# build links against this machine's glibc and would be tagged for it (manylinux_2_34 on glibc
# 2.36), which pip refuses on older systems, so both link with zig (PyPI's ziglang), which carries
# glibc 2.17's symbol versions. macOS, Windows and musllinux wheels come from
# .github/workflows/release.yml.
DIST ?= dist
ZIG_BUILD := $(VENV)/bin/maturin build --release --zig --compatibility manylinux2014 -o $(DIST)
# rustup here has only the x86_64 std and cannot fetch others. Debian ships its rustc-web with the
# std of every architecture (libstd-rust-web-dev:arm64): `make aarch64-toolchain` unpacks those
# packages into $(A64_TC) (apt-get download + dpkg -x with a private package list: nothing is
# installed system-wide), and `make wheel` builds the aarch64 wheel with that rustc.
A64_TC ?= target/aarch64-toolchain
A64_ROOT = $(abspath $(A64_TC))/sysroot/usr
A64_APT = -qq -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 \
	-o Dir::State::Lists=$(abspath $(A64_TC))/apt/lists -o Dir::Cache=$(abspath $(A64_TC))/apt/cache \
	-o Debug::NoLocking=1 -o APT::Sandbox::User=root

# zig for the manylinux2014 link; check-jsonschema validates the release workflow in the tests.
$(WHEEL_DEPS): $(STAMP)
	$(PY) -m pip install -q "ziglang>=0.17,<0.18" "check-jsonschema>=0.29"
	@touch $@

wheel-deps: $(WHEEL_DEPS)

wheel: $(WHEEL_DEPS)
	$(ZIG_BUILD)
	@$(MAKE) --no-print-directory aarch64-toolchain || true
	@if [ -f $(A64_TC)/.done ]; then \
		echo "make wheel: aarch64 with Debian's rustc-web ($$(LD_LIBRARY_PATH=$(A64_ROOT)/lib/x86_64-linux-gnu $(A64_ROOT)/bin/rustc -V))"; \
		RUSTC=$(A64_ROOT)/bin/rustc LD_LIBRARY_PATH=$(A64_ROOT)/lib/x86_64-linux-gnu \
			$(ZIG_BUILD) --target aarch64-unknown-linux-gnu; \
	else \
		echo "make wheel: built x86_64 only: no aarch64 wheel, because this rustc has no aarch64 std"; \
		echo "  (rustup cannot download one here) and 'make aarch64-toolchain' could not unpack Debian's"; \
		echo "  rustc-web with libstd-rust-web-dev:arm64 (it needs apt-get and dpkg on x86_64 Debian)."; \
		echo "  The release workflow builds aarch64 on an arm64 runner."; \
	fi

sdist: $(STAMP)
	$(VENV)/bin/maturin sdist -o $(DIST)

aarch64-toolchain: $(A64_TC)/.done

$(A64_TC)/.done:
	@command -v apt-get >/dev/null && command -v dpkg >/dev/null && [ "$$(dpkg --print-architecture)" = amd64 ] \
		|| { echo "make aarch64-toolchain: needs apt-get and dpkg on x86_64 Debian"; exit 1; }
	rm -rf $(A64_TC)
	mkdir -p $(A64_TC)/apt/lists/partial $(A64_TC)/apt/cache/archives/partial $(A64_TC)/debs $(A64_TC)/sysroot
	@echo "make aarch64-toolchain: Debian's rustc-web and its x86_64 + aarch64 std into $(A64_TC)"
	@apt-get $(A64_APT) update
	@set -e; cd $(A64_TC)/debs; \
	ver=$$(apt-cache $(A64_APT) policy rustc-web | awk '/Candidate:/ {print $$2}'); \
	mm=$$(echo "$$ver" | cut -d. -f1-2); \
	llvm=$$(apt-cache $(A64_APT) depends libstd-rust-web-$$mm:amd64 | grep -o 'libllvm[0-9]*' | head -1); \
	[ -n "$$ver" ] && [ -n "$$llvm" ] || { echo "make aarch64-toolchain: no rustc-web in the package lists"; exit 1; }; \
	echo "  rustc-web $$ver, $$llvm"; \
	apt-get $(A64_APT) download rustc-web:amd64=$$ver libstd-rust-web-$$mm:amd64=$$ver \
		libstd-rust-web-dev:amd64=$$ver libstd-rust-web-dev:arm64=$$ver $$llvm:amd64; \
	for d in *.deb; do dpkg -x $$d ../sysroot; done
	LD_LIBRARY_PATH=$(A64_ROOT)/lib/x86_64-linux-gnu $(A64_ROOT)/bin/rustc -V
	test -d "$$(LD_LIBRARY_PATH=$(A64_ROOT)/lib/x86_64-linux-gnu $(A64_ROOT)/bin/rustc --print target-libdir --target aarch64-unknown-linux-gnu)"
	rm -rf $(A64_TC)/debs $(A64_TC)/apt
	@touch $@

clean:
	rm -rf target dist $(VENV)
