# pinterest-data-pipeline: one entry point for setting up, running and testing the project.
#   make demo   set everything up and run the pipeline end to end on embedded defaults
#   make test   the whole test suite against the real local stack
#   make dev    the Dagster UI on http://127.0.0.1:3000
#   make bench  the side-by-side benchmarks (Dagster vs the tools one would otherwise use)
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
JARS := .local/jars
PYTEST_ARGS ?=
# Runs started by `make demo` and `make dev` share one Dagster instance, so the UI shows them all.
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster
# The instance `make up` puts there: infra/dagster/dagster-postgres.yaml keeps it in PostgreSQL (docs/configuration.md).
DAGSTER_YAML ?= infra/dagster/dagster.yaml
# `make dev` and `make demo` run Spark work on the Spark Connect server `make up` starts: a run then
# connects in 0.4 s to a warm JVM instead of starting a cold one (measured in docs/benchmarks.md).
LOCAL_SPARK_REMOTE := sc://127.0.0.1:15002

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

check-tools: ## check that Python 3.11+, Java 17+ and Maven are installed
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "error: Python 3.11 or newer is required (python3)"; exit 1; }
	@command -v java >/dev/null || { echo "error: Java 17 is required for Kafka and Spark: apt-get install openjdk-17-jdk-headless"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven is required to fetch the Kafka/Spark jars: apt-get install maven"; exit 1; }

$(VENV)/.installed: pyproject.toml requirements.lock
	@python3 -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	# Compiled now, once: a process importing uncompiled Dagster spends most of a second in compile().
	$(UV) pip sync -q --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	@touch $@

install: check-tools $(VENV)/.installed ## create .venv with the locked dependencies

lock: ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

$(JARS)/%/.copied: infra/pom.xml
	@rm -rf $(JARS)/$*
	@echo "fetching $* jars with Maven (infra/pom.xml, profile $*)"
	@mvn -q -B -f infra/pom.xml -P $* dependency:copy-dependencies
	@touch $@

jars: check-tools $(JARS)/kafka/.copied $(JARS)/spark/.copied $(JARS)/s3/.copied $(JARS)/profiler/.copied ## copy Kafka, Spark, S3 and profiler jars into .local/jars

# Only the services the settings point at on this machine: with KAFKA_BOOTSTRAP_SERVERS, SOURCE_DB_URL or
# SPARK_REMOTE naming another host, that one is left to it (pinterest_dagster/local_stack.py).
up: install jars ## start Kafka, MariaDB and Spark Connect on 127.0.0.1 (those not remote) and create the topics
	@mkdir -p $(DAGSTER_HOME) && cp $(DAGSTER_YAML) $(DAGSTER_HOME)/dagster.yaml
	@services="$$($(PY) -m pinterest_dagster.local_stack)" && if [ -n "$$services" ]; then infra/stack.sh up $$services; fi
	@$(PY) -m emulator topics

# PostgreSQL is not in `up`: only the Postgres instance tests need it, and they start it themselves.
down: ## stop the local services
	@infra/stack.sh down kafka kafka-cluster mariadb spark-connect spark-cluster postgres

status: ## show which local services run
	@infra/stack.sh status kafka kafka-cluster mariadb spark-connect spark-cluster postgres

lint: install ## static checks (ruff)
	$(VENV)/bin/ruff check .

test: up lint ## run the test suite against the local stack
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: up ## seed, post, stream with the daemon (realtime tables), then batch_job and the nine tables
	$(PY) -m emulator seed
	$(PY) -m emulator post --posts 2000 --rate 0 --quiet
	SPARK_REMOTE=$${SPARK_REMOTE:-$(LOCAL_SPARK_REMOTE)} $(PY) -m pinterest_dagster.demo --stream 60 --rate 100

dev: up ## run the Dagster UI (http://127.0.0.1:3000) on the workspace
	SPARK_REMOTE=$${SPARK_REMOTE:-$(LOCAL_SPARK_REMOTE)} $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

screenshot: install ## after make demo: the UI's lineage and kafka/pin's plots into docs/images (needs chromium, chromium-driver)
	$(PY) -m pinterest_dagster_tests.ui.screenshot docs/images

# The benchmarks use the running stack (`make up`) with their own topics, lakes and DAGSTER_HOMEs, and
# the default source database (seeded here if missing).
bench: install ## side-by-side benchmarks at full size (stack from make up); rewrites the README block; SOAK=1 adds the 20-min soak
	@test -f .local/pinterest.db || $(PY) -m emulator seed
	SPARK_REMOTE=$${SPARK_REMOTE:-$(LOCAL_SPARK_REMOTE)} $(PY) -m benchmarks $(if $(SOAK),--soak)

bench-quick: install ## the same benchmarks at small sizes (CI runs it with SOAK=1 when it can start within 50 min): checks the harness, not the figures; SOAK=1 adds a 2-min soak
	@test -f .local/pinterest.db || $(PY) -m emulator seed
	SPARK_REMOTE=$${SPARK_REMOTE:-$(LOCAL_SPARK_REMOTE)} $(PY) -m benchmarks --quick $(if $(SOAK),--soak)

migrate: install jars ## bring a lake written by an earlier version up to date (stop the daemon first)
	$(PY) -m pinterest_dagster.migrate

clean: down ## stop services and delete .local (data, logs, jars) and .venv
	rm -rf .local $(VENV)

.PHONY: help check-tools install lock jars up down status lint test demo dev screenshot bench bench-quick migrate clean
