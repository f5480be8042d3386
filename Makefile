# agent-dispatch — build, install, test.
PREFIX ?= $(HOME)/.local
CARGO ?= cargo
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_BIN := target/$(HOST)/release/agent-dispatch

.PHONY: build install static test test-faults test-client lint demo bench

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

# Only the fault-injection suite (also part of `make test`). FAULTS_SOAK_SECS sets the length of
# the concurrent-editing soak (default 30).
test-faults:
	$(CARGO) test --test faults

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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# A tour in a throw-away HOME, with the fake claude standing in for the real one.
demo:
	$(CARGO) build
	./scripts/demo.sh target/debug/agent-dispatch

# Dispatch overhead against a bare spawn of the fake claude; results go in BENCHMARKS.md.
bench:
	$(CARGO) bench --bench bench
