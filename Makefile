# Tugboat: the README's two commands are `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: up test lint bench deps build fmt

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace

# The single-node cluster in the foreground (data in /var/lib/tugboat as root).
up: deps
	$(CARGO) run --release -p tugboat-ctl --bin tug -- up

test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@if command -v cargo-nextest >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: deps
	$(CARGO) bench -p tugboat-store --bench store
	$(CARGO) bench -p tugboat-e2e --bench api
	$(CARGO) bench -p tugboat-scheduler --bench scheduling
	$(CARGO) bench -p tugboat-e2e --bench metrics
	$(CARGO) bench -p tugboat-e2e --bench controllers
	$(CARGO) bench -p tugboat-e2e --bench podstart
	$(CARGO) bench -p tugboat-e2e --bench failover
