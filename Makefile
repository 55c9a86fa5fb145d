# ctpaper: `make paper` regenerates the paper from raw data; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# Optional extra pip index for torch's CPU wheel on machines where PyPI's torch==2.13.0 is the CUDA
# build, e.g. make paper TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP_EXTRA := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
# A verified offline copy of the raw data (see README); used when it exists.
CTPAPER_RAW_MIRROR ?= $(if $(wildcard ../shared/data/raw),$(abspath ../shared/data/raw),)
export CTPAPER_RAW_MIRROR

.PHONY: env paper smoke report test test-fast bench dryrun config-docs format clean
env: $(VENV)/.installed

# The pinned packages exist for Python 3.11 and 3.12 (both known to work); check before pip runs.
PY_CHECK := import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 12) else \
	"$(PYTHON) is Python %d.%d; ctpaper needs Python 3.11 or 3.12 (known to work): run e.g. make paper PYTHON=python3.11" % v)

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || command -v $(PYTHON) >/dev/null || \
		{ echo "$(PYTHON) not found; ctpaper needs Python 3.11 or 3.12: run make PYTHON=/path/to/python3.11 ..."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -c '$(PY_CHECK)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_EXTRA) -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

paper: env
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) paper

smoke: env
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) paper --configfile config/config.yaml config/smoke.yaml

# snakemake's report of the last run: every table and figure with captions, the workflow, runtimes.
report: env
	$(BIN)/snakemake --profile profiles/default --report results/report.html

# config/README.md from the schema's descriptions and config/config.yaml's defaults.
config-docs: env
	$(BIN)/python workflow/config_readme.py

# snakefmt (pinned in requirements.txt) over every Snakemake file.
format: env
	$(BIN)/snakefmt .

dryrun: env
	$(BIN)/snakemake -n --profile profiles/slurm --configfile config/config.yaml

test: env
	$(BIN)/python -m pytest

test-fast: env
	$(BIN)/python -m pytest -m "not slow and not slurm"

bench: env
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_julia_rng.py
	$(BIN)/python bench/bench_stack.py

clean:
	rm -rf results .snakemake
