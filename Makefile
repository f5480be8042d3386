# agent-dispatch — build, install, test.
PREFIX ?= $(HOME)/.local
CARGO ?= cargo

.PHONY: build install test lint bench

build:
	$(CARGO) build --release

install: build
	install -d $(PREFIX)/bin
	install -m 0755 target/release/agent-dispatch $(PREFIX)/bin/agent-dispatch

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Dispatch overhead against a bare spawn of the fake claude; results go in BENCHMARKS.md.
bench:
	$(CARGO) bench --bench bench
