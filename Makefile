# One task runner. Every target builds what it needs from nothing: venv, packages, Kafka jars.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CONFIG ?= deploy/local/breakwater.toml
BW := $(BIN)/breakwater --config $(CONFIG)

.DEFAULT_GOAL := help
.PHONY: help venv kafka-jars run test test-unit test-integration test-chaos test-scale lint schemas bench bench-edge bench-outbound bench-pipeline flood soak clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,tooling]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv and install Breakwater with its test and tooling extras (flood, benchmarks)

kafka-jars: venv ## Fetch the Apache Kafka jars from Maven Central (cached in ~/.cache/breakwater)
	$(BW) kafka fetch

run: venv kafka-jars ## Run the whole system on this machine: Kafka, topics, edge, worker (Ctrl-C stops)
	$(BW) up

test: venv kafka-jars ## The default suite: unit, integration and chaos tests on a real broker
	$(BIN)/pytest -m "not scale"

test-unit: venv ## Unit tests only (no broker, seconds)
	$(BIN)/pytest tests/unit

test-integration: venv kafka-jars ## Integration tests on a real broker
	$(BIN)/pytest tests/integration

test-chaos: venv kafka-jars ## Kill-and-restart tests on a real broker
	$(BIN)/pytest tests/chaos

test-scale: venv kafka-jars ## Scale-out: three brokers, two edges, several workers; a broker or worker lost mid-storm
	$(BIN)/pytest tests/scale -m scale

lint: venv ## ruff check, ruff format --check, mypy --strict over the code, the tests and the benchmarks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services schemas streams tests benchmarks

schemas: venv ## Regenerate the committed JSON Schema files from the models
	$(BW) schemas export

bench-edge: venv kafka-jars ## Edge throughput and latency vs a bare ASGI app, same run
	$(BIN)/python -m benchmarks.bench_edge

bench-outbound: venv ## Outbound client overhead per call vs bare httpx, same run
	$(BIN)/python -m benchmarks.bench_outbound

flood: venv kafka-jars ## The Cyber Monday storm: scripted flood, report + plot in flood-report.json/.png
	$(BIN)/breakwater flood

bench-pipeline: venv kafka-jars ## Pipeline events/s (EOS) vs a raw aiokafka transactional loop; worker RSS on a 1M backlog
	$(BIN)/python -m benchmarks.bench_pipeline

soak: venv kafka-jars ## Ten minutes of storm: RSS of every process, minute two vs the last minute
	$(BIN)/python -m benchmarks.soak

bench: venv kafka-jars ## Every benchmark and the storm, then one table of figures against same-run baselines
	$(BIN)/python -m benchmarks.bench_all

clean: ## Remove the venv and local state (not the Kafka jar cache)
	rm -rf $(VENV) .breakwater .pytest_cache .mypy_cache .ruff_cache
