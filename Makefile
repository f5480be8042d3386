# agent-dispatch — build, install, test.
PREFIX ?= $(HOME)/.local
CARGO ?= cargo
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_BIN := target/$(HOST)/release/agent-dispatch

.PHONY: build install static test test-faults test-soak test-client test-e2e test-conformance lint demo bench bench-compare

build:
	$(CARGO) build --release

install: build
	install -d $(PREFIX)/bin
	install -m 0755 target/release/agent-dispatch $(PREFIX)/bin/agent-dispatch

# glibc's static CRT needs no extra target; --target keeps crt-static away from proc-macros.
static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(HOST)
	@ldd $(STATIC_BIN) 2>&1 | grep -q 'statically linked' || { ldd $(STATIC_BIN); echo 'not static' >&2; exit 1; }
	@echo "static binary: $(STATIC_BIN)"

test:
	$(CARGO) test --all-targets

# Only the fault-injection suite (also part of `make test`, where the concurrent-editing soak runs
# for 5 s). FAULTS_SOAK_SECS sets the soak's length; `make test-soak` runs it for two minutes.
test-faults:
	$(CARGO) test --test all faults::

test-soak:
	FAULTS_SOAK_SECS=$${FAULTS_SOAK_SECS:-120} $(CARGO) test --test all faults::three_servers -- --nocapture

# The official Python MCP SDK (PyPI `mcp`, pinned) drives the server as a real client would.
# The virtualenv lives under target/ so `cargo clean` removes it too.
CLIENT_VENV := target/mcp-venv
MCP_SDK := mcp==2.3.0 jsonschema==4.26.0

$(CLIENT_VENV)/.installed:
	python3 -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install --quiet --disable-pip-version-check $(MCP_SDK)
	touch $@

test-client: $(CLIENT_VENV)/.installed
	$(CARGO) build
	$(CLIENT_VENV)/bin/python tests/client/smoke_client.py target/debug/agent-dispatch fixtures/fake-claude

# The real `claude` CLI, offline: Node and @anthropic-ai/claude-code from npm, pinned and cached
# under target/e2e/ (one directory per version, like the SDK virtualenv), against the model API
# stand-in in tests/e2e/. `make test-e2e CLAUDE_CODE_VERSION=x.y.z` tries a newer CLI.
# The CLI needs Node >= 22, and npm picks the CLI version for the Node it runs under, so npm
# runs with the pinned Node first on PATH.
E2E_DIR := target/e2e
E2E_NODE_VERSION ?= 22.23.3
CLAUDE_CODE_VERSION ?= 2.1.330
E2E_NODE_ARCH := $(shell uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')
E2E_NODE := $(E2E_DIR)/node-$(E2E_NODE_VERSION)
E2E_NODE_BIN := $(E2E_NODE)/lib/node_modules/node-linux-$(E2E_NODE_ARCH)/bin
E2E_CLAUDE := $(E2E_DIR)/claude-code-$(CLAUDE_CODE_VERSION)
# The Codex and Gemini backends' CLIs, the same way. `make test-e2e CODEX_VERSION=x.y.z` (or
# GEMINI_CLI_VERSION) tries a newer one. If npm cannot install one, its stamp records why and the
# run skips that backend's scenarios instead of failing (the claude CLI has no such escape).
CODEX_VERSION ?= 0.169.0
GEMINI_CLI_VERSION ?= 0.61.0
E2E_CODEX := $(E2E_DIR)/codex-$(CODEX_VERSION)
E2E_GEMINI := $(E2E_DIR)/gemini-cli-$(GEMINI_CLI_VERSION)
E2E_NPM := npm install --global --no-audit --no-fund --loglevel=error
# A hard stop for the whole run; every wait inside has its own, shorter deadline.
E2E_TIMEOUT ?= 900

$(E2E_NODE)/.installed:
	rm -rf $(E2E_NODE)
	$(E2E_NPM) --prefix $(E2E_NODE) node-linux-$(E2E_NODE_ARCH)@$(E2E_NODE_VERSION)
	$(E2E_NODE_BIN)/node --version
	touch $@

$(E2E_CLAUDE)/.installed: $(E2E_NODE)/.installed
	rm -rf $(E2E_CLAUDE)
	PATH="$(abspath $(E2E_NODE_BIN)):$$PATH" $(E2E_NPM) --prefix $(E2E_CLAUDE) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	touch $@

# An install that fails leaves `.unavailable` (npm's last words) beside the stamp; delete
# the directory to try again.
$(E2E_CODEX)/.installed: $(E2E_NODE)/.installed
	rm -rf $(E2E_CODEX)
	mkdir -p $(E2E_CODEX)
	PATH="$(abspath $(E2E_NODE_BIN)):$$PATH" $(E2E_NPM) --prefix $(E2E_CODEX) @openai/codex@$(CODEX_VERSION) \
		2>$(E2E_CODEX)/npm.log && PATH="$(abspath $(E2E_NODE_BIN)):$$PATH" $(E2E_CODEX)/bin/codex --version 2>>$(E2E_CODEX)/npm.log \
		|| { tail -n 5 $(E2E_CODEX)/npm.log > $(E2E_CODEX)/.unavailable; cat $(E2E_CODEX)/.unavailable >&2; }
	touch $@

$(E2E_GEMINI)/.installed: $(E2E_NODE)/.installed
	rm -rf $(E2E_GEMINI)
	mkdir -p $(E2E_GEMINI)
	PATH="$(abspath $(E2E_NODE_BIN)):$$PATH" $(E2E_NPM) --prefix $(E2E_GEMINI) @google/gemini-cli@$(GEMINI_CLI_VERSION) \
		2>$(E2E_GEMINI)/npm.log && PATH="$(abspath $(E2E_NODE_BIN)):$$PATH" $(E2E_GEMINI)/bin/gemini --version 2>>$(E2E_GEMINI)/npm.log \
		|| { tail -n 5 $(E2E_GEMINI)/npm.log > $(E2E_GEMINI)/.unavailable; cat $(E2E_GEMINI)/.unavailable >&2; }
	touch $@

test-e2e: $(CLIENT_VENV)/.installed $(E2E_CLAUDE)/.installed $(E2E_CODEX)/.installed $(E2E_GEMINI)/.installed
	$(CARGO) build
	timeout --kill-after=10 $(E2E_TIMEOUT) $(CLIENT_VENV)/bin/python tests/e2e/run_e2e.py \
		--binary target/debug/agent-dispatch --claude $(E2E_CLAUDE)/bin/claude \
		--node-bin $(E2E_NODE_BIN) --fake fixtures/fake-claude \
		--codex $(E2E_CODEX)/bin/codex --gemini $(E2E_GEMINI)/bin/gemini

# MCP conformance scenarios from the npm package, pinned; installed under target/ like the venv.
# 0.1.13 is the newest release that runs on Node 20 (later ones import fs.globSync, Node 22+).
# The CLI tests servers over Streamable HTTP only, so tests/conformance/run.py bridges it to our
# stdio server on 127.0.0.1.
CONFORMANCE_DIR := target/conformance
CONFORMANCE_PKG := @modelcontextprotocol/conformance@0.1.13
CONFORMANCE_SCENARIOS := resources-list prompts-list

$(CONFORMANCE_DIR)/.installed:
	mkdir -p $(CONFORMANCE_DIR)
	npm install --prefix $(CONFORMANCE_DIR) --no-audit --no-fund --silent $(CONFORMANCE_PKG)
	touch $@

test-conformance: $(CONFORMANCE_DIR)/.installed
	$(CARGO) build
	python3 tests/conformance/run.py target/debug/agent-dispatch $(CONFORMANCE_DIR)/node_modules/.bin/conformance $(CONFORMANCE_SCENARIOS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# A tour in a throw-away HOME, with the fake claude standing in for the real one.
demo:
	$(CARGO) build
	./scripts/demo.sh target/debug/agent-dispatch

# Benchmarks through the MCP interface with the fake claude as the child (and the fake codex and
# gemini for `backend_overhead`); results go in
# BENCHMARKS.md. `BENCH_ONLY=<figure id>` runs one figure (ids: benches/bench/workloads.rs).
# The overhead figures (`*_compiled`) build their own stand-in claude with rustc into
# target/bench-stand-in/ (benches/stand-in/claude.rs), so Python's start-up is not in them.
bench:
	$(CARGO) build --release
	BENCH_SERVERS=ours $(CARGO) bench --bench bench

# The same workloads against the Python reference in one run: 0.6.0 (the SPEC's target; it was
# released against mcp 1.27 and does not start with mcp 2.x) and 0.16.0 (what a user installs
# today; it declares mcp[cli]<2, and 1.30.0 is the newest 1.x). One virtualenv each under target/.
REF_06 := target/ref-0.6.0
REF_16 := target/ref-0.16.0

$(REF_06)/.installed:
	python3 -m venv $(REF_06)
	$(REF_06)/bin/pip install --quiet --disable-pip-version-check 'agent-dispatch==0.6.0' 'mcp[cli]==1.27.0'
	touch $@

$(REF_16)/.installed:
	python3 -m venv $(REF_16)
	$(REF_16)/bin/pip install --quiet --disable-pip-version-check 'agent-dispatch==0.16.0' 'mcp[cli]==1.30.0'
	touch $@

bench-compare: $(REF_06)/.installed $(REF_16)/.installed
	$(CARGO) build --release
	BENCH_SERVERS=ours,ref-0.6.0,ref-0.16.0 $(CARGO) bench --bench bench
