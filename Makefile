# The one entry point: CI runs the same targets.
CARGO ?= cargo

.PHONY: run test build deps deps-run deps-test services lint fmt clean

## Start the whole fleet locally on the embedded defaults (and the sample task when no model
## endpoint is configured). Installs only what running needs.
run: deps-run build
	./target/debug/cap up

## Run every test (unit, integration, end-to-end on SQLite and PostgreSQL). Installs what
## running needs and every test toolchain.
test: deps-test services build
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace; \
	else \
	  $(CARGO) test --workspace; \
	fi

build:
	$(CARGO) build --workspace --bins

## What `make run` needs (scripts/deps.d/00-19): git, bubblewrap, the disk limit's tools, pytest.
deps-run:
	./scripts/install-deps.sh run

## What `make test` needs: the above and every test toolchain (scripts/deps.d/*).
deps-test:
	./scripts/install-deps.sh test

deps: deps-test

services:
	./scripts/start-services.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf .cap-data
