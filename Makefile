# Care Inbox — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := run
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-stressed install uv chromium lint dev migrate bench bench-http bench-realtime bench-fanout bench-ingest faults

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		{ echo "Installing uv with pip…"; $(PYTHON) -m pip install --quiet --disable-pip-version-check uv; }

install: uv
	@$(UV) sync --frozen

chromium:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian chromium for the browser tests…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Embedded default: SQLite under var/, in-memory channel layer, eager Celery. DATABASE_URL / REDIS_URL switch to
# PostgreSQL and Redis. DEBUG defaults to on here so the demo works over plain http://127.0.0.1.
# Inbound works out of the box: demo webhook secrets (var/demo-secrets.json) and the SMTP receiver inside the web
# process on SMTP_HOST:SMTP_PORT (INBOX_EMBEDDED_SMTP=0 turns it off).
run: install
	@export DEBUG=$${DEBUG:-1} PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} \
		INBOX_EMBEDDED_SMTP=$${INBOX_EMBEDDED_SMTP:-1} SMTP_HOST=$${SMTP_HOST:-127.0.0.1} SMTP_PORT=$${SMTP_PORT:-2525}; \
	$(UV) run python manage.py migrate --noinput && \
	$(UV) run python manage.py collectstatic --noinput -v 0 && \
	$(UV) run python manage.py seed_demo --if-empty --no-logins && \
	$(UV) run python manage.py demo_logins && \
	echo "Care Portal: http://$(HOST):$(PORT)/" && \
	echo "Patient simulator: http://$(HOST):$(PORT)/demo/patient/" && \
	echo "Inbound SMTP: $$SMTP_HOST:$$SMTP_PORT (in this process; webhooks under /hooks/, demo secrets in var/demo-secrets.json)" && \
	exec $(UV) run daphne -b $(HOST) -p $(PORT) inbox_project.asgi:application

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

# The whole suite: lint, migrations in sync, unit + integration + browser tests (headless Debian Chromium).
# pytest exits 5 when nothing ran; make treats any non-zero exit as failure.
test: install chromium lint
	DEBUG=1 $(UV) run python manage.py makemigrations --check --dry-run
	$(UV) run pytest

# Production-like processes from the Procfile against PostgreSQL and Redis: web (gunicorn, WEB_CONCURRENCY uvicorn
# worker processes on one port, default two per core), worker, beat and the SMTP receiver.
dev: install
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" || { echo "make dev needs DATABASE_URL and REDIS_URL"; exit 2; }
	DEBUG=$${DEBUG:-1} $(UV) run python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(UV) run python manage.py collectstatic --noinput -v 0
	DEBUG=$${DEBUG:-1} $(UV) run honcho start

# Inbox benchmark on PostgreSQL (10k and 1M communications by default; BENCH_SIZES=10000,100000 for a quick run).
bench: install
	$(UV) run python tests/benchmarks/bench_inbox.py

# Pages over HTTP from the production web command (gunicorn, Procfile web) on bench's databases vs a bare /healthz.
bench-http: install
	$(UV) run python tests/benchmarks/bench_http.py

# Real-time benchmark on PostgreSQL and Redis: send/inbound SMS → DOM latency across two daphne web processes, and
# memory per connection with 2,000 idle WebSockets on one (BENCH_SAMPLES, BENCH_SOCKETS, BENCH_REDIS_URL to tune).
bench-realtime: install chromium
	$(UV) run python tests/benchmarks/bench_realtime.py

# Real-time fan-out on private PostgreSQL and Redis: N tabs over two web processes × R inbound SMS/s (FANOUT_TABS, FANOUT_RATES, FANOUT_SECONDS to tune).
bench-fanout: install
	$(UV) run python tests/benchmarks/bench_fanout.py

# Ingestion benchmark on a private PostgreSQL (port 5499) and Redis (port 6399) started for the run: SMS webhook ack
# latency against a bare Django view, and webhook → stored → linked throughput with one Celery worker.
bench-ingest: install
	$(UV) run python tests/benchmarks/bench_ingest.py

# Fault run on the same private services: 10,000 inbound SMS/emails while the worker is SIGKILLed, Redis and
# PostgreSQL restarted; fails unless exactly 10,000 messages arrive, none lost or duplicated (FAULT_ITEMS to tune).
faults: install
	$(UV) run python tests/benchmarks/faults.py

# The flake check: CI's run (.ci/run) STRESS_RUNS times in a row (default 5) while stress-ng keeps every core busy.
test-stressed:
	.ci/stressed
