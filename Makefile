# Two entry points, each sets up .venv on first use:
#   make demo   train ALGD on the built-in task and print the result
#   make test   run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all install clean

demo: $(STAMP)
	$(BIN)/algd train

test: $(STAMP)
	$(BIN)/python -m pytest -q

install: $(STAMP)

# torch is installed from requirements/cpu.txt first (the CPU build), so resolving the package's
# own `torch>=2.2` requirement never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements/cpu.txt
	$(BIN)/pip install -q -e ".[dev,ray]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
