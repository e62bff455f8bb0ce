# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# `make run` listens on loopback only, unless ADDRESS (or STREAMLIT_SERVER_ADDRESS) says otherwise
ADDRESS ?= $(or $(STREAMLIT_SERVER_ADDRESS),127.0.0.1)
# proxies whose X-Forwarded-For / -Proto the server believes (uvicorn's setting); none unless set
FORWARDED_ALLOW_IPS ?=

.PHONY: run test demo worker lint bench screenshots schema clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

## run: create the virtualenv, install, migrate, start the dashboard (and its sync worker) on ADDRESS:PORT
run: $(VENV)/.installed
	$(PY) -m lib.cli migrate
	$(PY) -m lib.cli demo --resume
	FORWARDED_ALLOW_IPS="$(FORWARDED_ALLOW_IPS)" $(PY) -m streamlit run serve.py --server.port $(PORT) --server.address $(ADDRESS)

## test: the whole suite (SQLite, plus PostgreSQL and Chromium where available), test files spread over 2 processes
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile

## demo: start the local exchange simulator and load demo clients into the database
demo: $(VENV)/.installed
	$(PY) -m lib.cli migrate
	$(PY) -m lib.cli demo

## worker: a standalone sync worker (production: one or more beside the app)
worker: $(VENV)/.installed
	$(PY) -m lib.cli worker

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

## bench: print the benchmark figures (JSON)
bench: $(VENV)/.installed
	$(PY) bench/bench_pnl.py
	$(PY) bench/bench_sync.py
	$(PY) bench/bench_pages.py

## screenshots: regenerate the README's images from the end-to-end flow
screenshots: $(VENV)/.installed
	SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest -q tests/e2e

## schema: regenerate the initial migration from lib/models.py (development only)
schema: $(VENV)/.installed
	rm -f migrations/versions/0001_initial.py /tmp/schema-gen.db
	DATABASE_URL=sqlite:////tmp/schema-gen.db $(PY) -c "from alembic import command; from lib.db import alembic_config; command.revision(alembic_config(), message='initial', autogenerate=True, rev_id='0001')"
	rm -f /tmp/schema-gen.db

clean:
	rm -rf $(VENV) .pytest_cache
