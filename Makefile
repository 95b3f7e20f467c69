# capplan: the two commands a new user needs are `make report` and `make test`.
# Dependencies are declared once, in pyproject.toml; constraints.txt pins the exact versions CI
# tested, so `make` installs exactly those.  requirements.txt is generated from pyproject.toml.
# Set-up is idempotent: .venv is updated only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.capplan-installed
LAB_STAMP := $(VENV)/.capplan-lab-installed
DEV_STAMP := $(VENV)/.capplan-dev-installed
PARAMS ?= params/demo.yaml
OUTPUTS ?=
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup setup-lab setup-dev report test lab bench requirements constraints clean help

help:
	@echo "make report       run the demo capacity report (no server needed); prints report.html"
	@echo "make test         run the whole test suite (needs PostgreSQL and Redis, see README)"
	@echo "make lab          open JupyterLab on notebooks/ with the project's kernel"
	@echo "make bench        run the speed benchmarks under bench/ (some read ../shared)"
	@echo "make requirements regenerate requirements.txt from pyproject.toml"
	@echo "make constraints  re-pin constraints.txt to what .venv holds (after a green make test)"

$(STAMP): pyproject.toml constraints.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (capplan)" >/dev/null
	@touch $@

$(LAB_STAMP): $(STAMP)
	$(PIP) -e ".[lab]"
	@touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) -e ".[dev]"
	@touch $(LAB_STAMP) $@

setup: $(STAMP)

setup-lab: $(LAB_STAMP)

setup-dev: $(DEV_STAMP)

report: $(STAMP)
	$(BIN)/capplan run $(PARAMS) $(if $(OUTPUTS),--outputs $(OUTPUTS))

test: $(DEV_STAMP)
	@bash .ci/install-system-deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# root (containers, CI) needs --allow-root; nobody else gets it
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

bench: $(DEV_STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# requirements.txt: the runtime list of pyproject.toml, for tools that read requirements files
requirements:
	$(PYTHON) -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print("# Generated from pyproject.toml by `make requirements`; edit pyproject.toml instead."); \
	print("# Exact tested versions: constraints.txt."); print("\n".join(d["dependencies"]))' > requirements.txt

constraints: $(DEV_STAMP)
	{ echo "# The exact set of the .venv the tests run in (pip freeze; python $$($(BIN)/python -c 'import platform; print(platform.python_version())'))."; \
	  echo "# Regenerate with \`make constraints\`; the Makefile installs with -c constraints.txt."; \
	  $(BIN)/python -m pip freeze --exclude-editable --all | grep -v -i -E '^(capplan|pip)=='; } > constraints.txt

clean:
	rm -rf $(VENV) outputs/_lab
