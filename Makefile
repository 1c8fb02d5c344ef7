# The README's two commands call `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench bench-real clean

$(BIN)/cratedig: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/cratedig

system-deps:
	@command -v ffmpeg >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg)

demo: system-deps install
	$(BIN)/cratedig demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: system-deps install lint
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/truthset.py
	$(BIN)/python bench/accuracy.py

# Real music from Debian packages (needs hydrogen, musescore3, ffmpeg, apt-get): bench/README.md
bench-real: install
	$(BIN)/pip install -q -e '.[bench,bench-peers]'
	$(BIN)/python bench/realset.py
	$(BIN)/python bench/accuracy.py --set real --split dev

clean:
	rm -rf $(VENV) demo-library bench/out
