#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new environment: install cacflow itself from
# the repository (CACFLOW_SRC is set by workflow/rules/common.smk), without touching the
# pinned dependencies of the env file.
set -euo pipefail
pip install --no-deps -e "${CACFLOW_SRC:?CACFLOW_SRC is not set}"
# lifelines declares pandas<3; it runs on the pinned pandas 3.1.1 (envs/requirements-nodeps.txt)
pip install --no-deps -r "${CACFLOW_SRC}/envs/requirements-nodeps.txt"
