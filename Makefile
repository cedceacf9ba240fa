# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
SAMPLE := build/sample/events.jsonl
CONTACTS := build/sample/contacts.jsonl
DEMO_NOW ?= 2017-12-10T00:00:00Z
# the demo runs a pass at 08:00 and 20:00 each day of the Taobao slice's week, as cron would, so
# most emails go out (and are credited) before the orders that follow them; then a last pass
DEMO_DAYS ?= 2017-11-26 2017-11-27 2017-11-28 2017-11-29 2017-11-30 2017-12-01 2017-12-02 \
	2017-12-03 2017-12-04

.PHONY: run test lint bench bench-ingest bench-campaigns bench-service bench-service-profile bench-reports clean

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
	$(BIN)/followup simulate --events docs/examples/stories/events.jsonl --summary --report build/stories-report.html
	@echo "Passes at 08:00 and 20:00 over the sample's last week, as cron would run followup tick:"
	@for day in $(DEMO_DAYS); do for hour in 08 20; do \
		$(BIN)/followup tick --now $${day}T$${hour}:00:00Z || exit 1; done; done
	$(BIN)/followup tick --now $(DEMO_NOW) --summary
	@echo "One cart the demo recovered, decision by decision:"
	$(BIN)/followup explain --customer tb-1000028 --campaign abandoned-cart
	$(BIN)/followup report --format html --out build/report.html

# The Mailchimp contract tests serve the vendor specs with Stoplight Prism, pinned by
# tests/mailchimp/package-lock.json; without npm they skip (fail under FOLLOWUP_REQUIRE_SERVICES=1).
PRISM_STAMP := tests/mailchimp/node_modules/.installed

$(PRISM_STAMP): tests/mailchimp/package-lock.json
	npm ci --prefix tests/mailchimp --no-audit --no-fund && touch $@ \
		|| echo "npm ci failed: the Mailchimp contract tests will not find Prism"

# Two processes (pytest-xdist), each with its own PostgreSQL database; the Mailchimp tests stay on
# one of them, so Prism starts once.
test: $(VENV)/.installed | $(PRISM_STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: bench-ingest bench-campaigns bench-service bench-reports

# followup report over 1M sends and 100k orders beside plain GROUP BYs; BENCH_ARGS, e.g.
# BENCH_ARGS="--sends 100000 --backends sqlite" for a quick run.
bench-reports: $(VENV)/.installed
	$(BIN)/python -m benchmarks.reports.run $(BENCH_ARGS)

bench-ingest: $(VENV)/.installed
	$(BIN)/python -m benchmarks.ingest.run

# followup against the floor (a bare FastAPI bulk insert), by file and over HTTP, with events in
# time order and shuffled. BENCH_ARGS, e.g. BENCH_ARGS="--backends sqlite --duration 10".
bench-service: $(VENV)/.installed
	$(BIN)/python -m benchmarks.service.run $(BENCH_ARGS)

# followup serve under the shuffled load, sampled by py-spy (installed into the venv only for it).
# BENCH_ARGS, e.g. BENCH_ARGS="--backend postgresql --seconds 20".
$(VENV)/.bench-service: benchmarks/service/requirements.txt | $(VENV)/.installed
	$(BIN)/pip install --quiet -r benchmarks/service/requirements.txt
	touch $@

bench-service-profile: $(VENV)/.installed $(VENV)/.bench-service
	$(BIN)/python -m benchmarks.service.profile $(BENCH_ARGS)

# The campaign benchmark's peers (durable-rules, rule-engine) and pyinstrument go into the venv
# only for it. BENCH_ARGS, e.g. BENCH_ARGS="--events 100000" for a quick run.
$(VENV)/.bench-campaigns: benchmarks/campaigns/requirements.txt | $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps -r benchmarks/campaigns/requirements.txt
	touch $@

bench-campaigns: $(VENV)/.installed $(VENV)/.bench-campaigns $(SAMPLE)
	$(BIN)/python -m benchmarks.campaigns.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build outbox followup.db followup.db-wal followup.db-shm followup.db.upgrade-lock
