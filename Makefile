# capplan: the two commands a new user needs are `make report` and `make test`.
# Set-up is idempotent: .venv is rebuilt only when requirements or pyproject change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.capplan-installed
DEV_STAMP := $(VENV)/.capplan-dev-installed
PARAMS ?= params/demo.yaml
OUTPUTS ?=
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup setup-dev report test lab bench clean help

help:
	@echo "make report   run the demo capacity report (no server needed); prints report.html"
	@echo "make test     run the whole test suite (needs PostgreSQL and Redis, see README)"
	@echo "make lab      open JupyterLab on notebooks/ with the project's kernel"
	@echo "make bench    run the speed benchmarks under bench/"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (capplan)" >/dev/null
	@touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

report: $(STAMP)
	$(BIN)/capplan run $(PARAMS) $(if $(OUTPUTS),--outputs $(OUTPUTS))

test: $(DEV_STAMP)
	@bash .ci/install-system-deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# root (containers, CI) needs --allow-root; nobody else gets it
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

bench: $(DEV_STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs/_lab
