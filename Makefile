# agent-dispatch — build, install, test.
PREFIX ?= $(HOME)/.local
CARGO ?= cargo
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC_BIN := target/$(HOST)/release/agent-dispatch

.PHONY: build install static test lint demo bench

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
