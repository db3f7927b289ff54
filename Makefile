# The two commands of the README:  `make run`  and  `make test`.
# Each creates/refreshes .venv from the pinned lock file, so a fresh machine
# with nothing but Python 3.11+ is enough.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: venv run test lint typecheck unit slow bench clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

## The main job: a one-minute paper live-session on the mock source, then its report.
run: venv
	$(BIN)/python -m laptop_agents.run --mode live-session --async --source mock --duration 1 $(RUN_ARGS)

## The full test suite: lint, types, every test including the slow ones
## (the real one-minute smoke session). Soak tests only with LA_SOAK=1.
test: venv lint typecheck
	LA_SLOW=1 $(BIN)/pytest -q -n 2 --dist loadgroup

lint: venv
	$(BIN)/ruff check src tests bench examples

typecheck: venv
	$(BIN)/mypy

## The quick loop while developing: no slow tests.
unit: venv
	$(BIN)/pytest -q -n 2 --dist loadgroup

slow: venv
	LA_SLOW=1 $(BIN)/pytest -q -n 2 --dist loadgroup -m slow

bench: venv
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
