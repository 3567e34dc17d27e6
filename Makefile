# tinsnip: `make demo` runs the whole flow on the built-in lab; `make test` runs every test.
# Both install what they need first (Debian packages for the lab, then this package).
PYTHON ?= python3

.PHONY: install demo test unit lab-down

install:
	bash .ci/lab-deps.sh
	$(PYTHON) -m pip install -q -e .

demo: install
	inv demo

test: install
	$(PYTHON) -m pytest -q

unit:
	$(PYTHON) -m pytest -q tests/unit

lab-down:
	inv lab.down
