# Two entry points, each sets up .venv on first use:
#   make demo   train ALGD on the built-in task and print the result
#   make test   type-check algd (mypy), then run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow install clean

demo: $(STAMP)
	$(BIN)/algd train

test: $(STAMP)
	$(BIN)/python -m mypy algd
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

install: $(STAMP)

# torch is installed from requirements/cpu.txt first (the CPU build), so resolving the package's
# own `torch>=2.2` requirement never pulls a multi-GB CUDA build. The extras (MuJoCo, MP4 video,
# Safety-Gymnasium) are installed too, so their tests run; safety-gymnasium itself goes in
# without its pins (they cannot be satisfied on Python 3.11, see README "Benchmark tasks").
$(STAMP): pyproject.toml requirements/cpu.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements/cpu.txt
	$(BIN)/pip install -q -e ".[dev,mujoco,safety,ray,video]"
	$(BIN)/pip install -q --no-deps safety-gymnasium==1.0.0
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
