# agent-dispatch — build, install, test.
PREFIX ?= $(HOME)/.local
CARGO ?= cargo

.PHONY: build install test lint

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
