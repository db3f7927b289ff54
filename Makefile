# The two commands of the README:  `make run`  and  `make test`.
# Each creates/refreshes .venv from the pinned lock file, so a fresh machine
# with nothing but Python 3.11+ is enough.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: venv run smoke test lint typecheck unit slow bench clean postgres chromium compiled pure

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

## The main job: a paper live-session on the mock market -- three simulated hours
## in 90 seconds (--speed 120), so you see the bot trade -- with the web dashboard
## on 127.0.0.1 (its URL is printed) and the live panel; it ends by itself with
## exit 0, the summary and the report.
run: venv
	$(BIN)/python -m laptop_agents.run --mode live-session --async --source mock --duration 180 --speed 120 --dashboard $(RUN_ARGS)

## The seed's exact one-minute command: the smoke test (one real-time minute).
smoke: venv
	$(BIN)/python -m laptop_agents.run --mode live-session --async --source mock --duration 1 $(RUN_ARGS)

## The full test suite: lint, types, every test including the slow ones
## (the real one-minute smoke session, a study on a real PostgreSQL server).
## It runs on the compiled core when a C compiler is there (see `compiled`),
## with the parity test against the pure one. Soak tests only with LA_SOAK=1.
test: venv lint typecheck postgres chromium compiled
	LA_SLOW=1 $(BIN)/pytest -q -n 2 --dist loadgroup

## The optional compiled core: the deterministic modules built with mypyc, in
## place under src/ (about a minute; nothing to do when the build matches the
## sources). Without a C compiler one line says it skipped and the pure-Python
## core runs. `make pure` removes the build; LA_PURE=1 ignores it for one command.
compiled: venv
	@$(BIN)/python scripts/build_compiled.py

pure:
	@test ! -x $(BIN)/python || $(BIN)/python scripts/build_compiled.py --clean

lint: venv
	$(BIN)/ruff check src tests bench examples
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

## The quick loop while developing: no slow tests.
unit: venv
	$(BIN)/pytest -q -n 2 --dist loadgroup

slow: venv postgres chromium
	LA_SLOW=1 $(BIN)/pytest -q -n 2 --dist loadgroup -m slow

## Debian's PostgreSQL server for the optimize storage test: nothing to do when it
## is installed; else apt-get installs it (as root, or through sudo without a
## password); else one line says what is missing and the target fails.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  echo "installing Debian's postgresql package (the optimize storage test needs a real server)"; \
	  command -v apt-get >/dev/null 2>&1 \
	    && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
	    && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
	    && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; \
	} || { echo "make: cannot install PostgreSQL (needs apt-get and root or passwordless sudo): install Debian's postgresql package, then run make test again" >&2; exit 1; }

## Debian's chromium for the dashboard's browser tests (driven by Playwright's
## python package with executable_path /usr/bin/chromium; `playwright install`
## is never used): nothing to do when it is installed; else apt-get installs it
## (as root, or through sudo without a password); else one line and the target fails.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  echo "installing Debian's chromium package (the dashboard's browser tests need a real browser)"; \
	  command -v apt-get >/dev/null 2>&1 \
	    && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
	    && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    && command -v chromium >/dev/null 2>&1; \
	} || { echo "make: cannot install chromium (needs apt-get and root or passwordless sudo): install Debian's chromium package, then run make test again" >&2; exit 1; }

bench: venv
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean: pure
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build/mypyc
