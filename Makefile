# cacflow — developer entry points. Every target creates .venv on first use.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
CORES   ?= 2
STAMP   := $(VENV)/.installed

.PHONY: demo test lint bench clean venv slurm-test

venv: $(STAMP)

$(STAMP): envs/requirements.txt envs/requirements-nodeps.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r envs/requirements.txt
	$(BIN)/pip install -q --no-deps -r envs/requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# Snakemake finds the workstation profile profiles/default/ by itself (its default
# workflow profile), so no --workflow-profile here.
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	@echo "report: results/demo/report.html"

# The test suite and the package's doctests (pytest options in pyproject.toml:
# --strict-markers --strict-config --doctest-modules).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests workflow/cacflow

# The style guide's gates (STYLE.md); snakefmt reads [tool.snakefmt] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check workflow tests benchmarks
	$(BIN)/ruff format --check workflow tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

slurm-test: $(STAMP)
	tests/slurm/run_local_slurm.sh

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results logs .snakemake
