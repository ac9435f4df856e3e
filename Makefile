# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medchat-installed
# torch first and pinned: an unpinned torch makes pip fetch a multi-GB CUDA build
TORCH  := torch==2.13.0

.PHONY: setup run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e '.[dev]'
	touch $@

setup: $(STAMP)

run: setup
	$(BIN)/medchat serve --sample-if-empty

# pytest exits 5 when it collects no test: that is not a failure, anything else non-zero is
test: setup
	# browser tests use Debian's chromium; they skip with a reason where it cannot be installed
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || true
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# bench/ is code we run and publish numbers from: linted and type-checked like the package
lint: setup
	$(BIN)/ruff check chatbot ingestion prompts tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
