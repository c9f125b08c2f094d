# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PG_BIN ?= $(firstword $(wildcard /usr/lib/postgresql/*/bin))
STAMP  := $(VENV)/.installed
# Compiled in place by setup.py (mypyc): after an edit the old extension would still be
# imported, so an edit reinstalls. The list is setup.py's HOT_PATH (one quoted path a line)
# and its hand-written C.
HOT_PATH := $(shell sed -n 's/^ *"\(\(bridge\|connectors\)\/[^"]*\.py\)",$$/\1/p' setup.py)
NATIVE   := $(wildcard connectors/*.c)

.PHONY: demo test unit bench check-rules typecheck system-deps clean

$(STAMP): pyproject.toml setup.py $(HOT_PATH) $(NATIVE)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the real-service tests and the demo need: PostgreSQL server
# binaries (initdb) and Prometheus (promtool + server for the scrape test).
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing postgresql (initdb missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
	@if ! command -v promtool >/dev/null 2>&1; then \
	  echo "installing prometheus (promtool missing)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  systemctl disable --now prometheus >/dev/null 2>&1 || true; pkill -x prometheus || true; fi

demo: $(STAMP) system-deps
	$(VENV)/bin/onestop-bridge demo

check-rules: system-deps
	promtool check rules deploy/prometheus/*.rules.yml
	promtool test rules deploy/prometheus/tests/*.test.yml

# The annotations are also what mypyc compiles the hot path from (setup.py).
# The tests are checked a folder at a time, with the helper folders on the path as
# tests/conftest.py puts them for pytest: several folders hold a conftest.py, and
# tests/connectors must not stand in for the connectors package.
TEST_DIRS := $(patsubst %/,%,$(filter-out tests/fixtures/,$(wildcard tests/*/)))
space := $(subst ,, )
TEST_PATH := $(subst $(space),:,tests $(TEST_DIRS))
typecheck: $(STAMP)
	$(PY) -m mypy --ignore-missing-imports bridge connectors bench
	@for d in $(TEST_DIRS) "$(wildcard tests/*.py)"; do echo "mypy $$d"; \
	  MYPYPATH=$(TEST_PATH) $(PY) -m mypy --config-file tests/mypy.ini $$d || exit 1; done

test: $(STAMP) system-deps check-rules typecheck
	$(PY) -m pytest -q

unit: $(STAMP)
	$(PY) -m pytest -q -m "not services and not slow"

bench: $(STAMP) system-deps
	$(PY) bench/render.py
	$(PY) bench/capture.py
	$(PY) bench/capture_hotpath.py
	$(PY) bench/delivery.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .mypy_cache
	find bridge connectors -name '*.so' -delete; rm -f onestop_bridge__mypyc.*
