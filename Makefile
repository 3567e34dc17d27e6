# tinsnip: `make demo` runs the whole flow on the built-in lab; `make test` runs every test.
# Both install what they need first: the Debian packages of .ci/lab-deps.sh (the lab's tools and
# python3-venv), then tinsnip with its test extra into the project's virtual environment .venv.
# Nothing is installed into the system's Python; every command runs with .venv/bin/python.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: install demo test test-fast test-kernel unit lint lab-down

$(VENV)/.installed: pyproject.toml .ci/lab-deps.sh .ci/test-deps.sh
	bash .ci/lab-deps.sh
	sh .ci/test-deps.sh
	test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PYTHON) -m invoke demo

# The test session starts from a fresh lab whatever was left up before (the demo's, say).
# Every tier, in two workers (pytest-xdist): the kernel hosts' tier (QEMU) in one, every other
# tier in the other, each with a lab of its own (gw0 the slot given, gw1 the next, in .lab-gw1/).
test: install lint
	$(PYTHON) -m pytest -q -n 2

# Every tier but the kernel hosts', in one process.
test-fast: install lint
	$(PYTHON) -m pytest -q -m "not kernel"

# The kernel hosts' tier alone.
test-kernel: install
	$(PYTHON) -m pytest -q -m kernel

# pyflakes' checks and misplaced imports, configured in pyproject.toml
lint: install
	$(PYTHON) -m ruff check .

unit: install
	$(PYTHON) -m pytest -q tests/unit

lab-down: install
	$(PYTHON) -m invoke lab.down
