#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new environment: install cacflow itself from
# the repository (CACFLOW_SRC is set by workflow/rules/common.smk), without touching the
# pinned dependencies of the env file.
set -euo pipefail
pip install --no-deps -e "${CACFLOW_SRC:?CACFLOW_SRC is not set}"
