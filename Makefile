# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
SAMPLE := build/sample/events.jsonl
CONTACTS := build/sample/contacts.jsonl
DEMO_NOW ?= 2017-12-10T00:00:00Z

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(SAMPLE): $(VENV)/.installed
	$(BIN)/followup samples build --from $(SHARED_DATA) --out $(SAMPLE)

$(CONTACTS): $(SAMPLE)
	$(BIN)/followup samples contacts --from $(SAMPLE) --out $(CONTACTS)

# The main job on the embedded default: the sample through ingest and the example campaigns.
run: $(VENV)/.installed $(SAMPLE) $(CONTACTS)
	$(BIN)/followup ingest $(SAMPLE)
	$(BIN)/followup ingest $(CONTACTS)
	$(BIN)/followup customers list --limit 10
	$(BIN)/followup customers show tb-1 --events 8
	$(BIN)/followup customers show cdnow-00002 --events 8
	$(BIN)/followup validate
	$(BIN)/followup simulate --events docs/examples/stories/events.jsonl --summary
	$(BIN)/followup tick --now $(DEMO_NOW) --summary

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.ingest.run

clean:
	rm -rf $(VENV) build outbox followup.db followup.db-wal followup.db-shm
