# Every target builds .venv/ on first use and reinstalls when pyproject.toml changes.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: run test bench lint format clean

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV_STAMP)

run: $(VENV_STAMP)
	.venv/bin/harmony serve --demo

test: $(VENV_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV_STAMP)
	$(PY) -m bench $(BENCH)

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: $(VENV_STAMP)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

clean:
	rm -rf .venv .pytest_cache .mypy_cache harmony.db*
