# Two commands a newcomer needs: `make run` (set up + main job) and `make test` (set up + whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Point the project at real data (MNIST, samples...). CI sets it to ../shared/data.
DLHW_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export DLHW_DATA

.PHONY: install run test notebooks bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install          ## the main job: HPO on digits with all four searchers
	$(PY) -m hw7_hpo.run $(ARGS)

test: install         ## every test, doctest and notebook (quick profile)
	DLHW_PROFILE=$${DLHW_PROFILE:-quick} $(PY) -m pytest $(PYTEST_ARGS)

notebooks: install    ## execute every notebook headless, write executed copies + HTML under build/notebooks
	DLHW_PROFILE=$${DLHW_PROFILE:-quick} $(PY) -m common.notebooks --out build/notebooks

bench: install        ## every benchmark (about an hour on 2 CPU cores; see README "Measured")
	$(PY) benchmarks/bench_batches.py
	$(PY) benchmarks/bench_hpo.py
	$(PY) benchmarks/bench_clip.py
	$(PY) benchmarks/bench_lora_merge.py --clock cpu --threads 1

clean:
	rm -rf build .pytest_cache
