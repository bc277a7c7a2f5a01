# make run   — create .venv, install clerk, check the example group, show the plan, run the worker
# make test  — install what the tests need and run the whole suite against a PostgreSQL, Postfix
#              and Dovecot of its own, stopped at the end (tests/run.sh)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/clerk check
	$(BIN)/clerk plan
	$(BIN)/clerk -v run

test: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy
	bash tests/setup.sh
	bash tests/run.sh $(BIN)/python

bench: $(STAMP)
	$(BIN)/python bench/idle_tick.py
	$(BIN)/python bench/help_time.py
	$(BIN)/python bench/smtp_throughput.py
	$(BIN)/python bench/plan_scale.py --groups 50

clean:
	rm -rf $(VENV) state outbox
