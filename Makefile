# The one entry point: CI runs the same targets.
CARGO ?= cargo

.PHONY: run test build deps services lint fmt clean

## Start the whole fleet locally on the embedded defaults (and the sample task when no model
## endpoint is configured).
run: deps build
	./target/debug/cap up

## Run every test (unit, integration, end-to-end on SQLite and PostgreSQL).
test: deps services build
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace; \
	else \
	  $(CARGO) test --workspace; \
	fi

build:
	$(CARGO) build --workspace --bins

deps:
	./scripts/install-deps.sh

services:
	./scripts/start-services.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf .cap-data
