"""Write a copy of the SLURM profile that fits a small test node.

Usage: python tests/slurm/fit_profile.py SOURCE_DIR DEST_DIR --cores N --mem-mb M

Only sizes change: ``cores`` (the width of a SLURM job) becomes N, every ``cpus_per_task`` is
capped at N (as Snakemake caps threads at ``cores``) and every ``mem_mb`` (default and per
rule) at M // 2, so that two jobs fit side by side on the node.
Everything else (executor, groups, group components, threads, runtimes, polling) is kept,
so a run with the copy exercises the shipped profile's structure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

JOBS_PER_NODE = 2
"""Jobs that must fit on the node at once (a rule job beside a group job)."""


def fit_profile(profile: dict[str, Any], cores: int, mem_mb: int) -> dict[str, Any]:
    """A copy of ``profile`` with ``cores`` = ``cores``, every cpus_per_task <= ``cores`` and
    every mem_mb <= ``mem_mb`` // 2."""
    cap = mem_mb // JOBS_PER_NODE
    out = yaml.safe_load(yaml.safe_dump(profile))  # deep copy of plain YAML data
    out["cores"] = cores
    for resources in [out.get("default-resources", {}), *out.get("set-resources", {}).values()]:
        if "mem_mb" in resources:
            resources["mem_mb"] = min(int(resources["mem_mb"]), cap)
        if isinstance(resources.get("cpus_per_task"), int):
            resources["cpus_per_task"] = min(resources["cpus_per_task"], cores)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--mem-mb", type=int, required=True)
    args = parser.parse_args(argv)
    profile = yaml.safe_load((args.source / "config.yaml").read_text())
    fitted = fit_profile(profile, args.cores, args.mem_mb)
    args.dest.mkdir(parents=True, exist_ok=True)
    header = (
        f"# {args.source / 'config.yaml'} fitted to a test node "
        f"({args.cores} CPUs, {args.mem_mb} MB) by tests/slurm/fit_profile.py\n"
    )
    text = header + yaml.safe_dump(fitted, sort_keys=False)
    (args.dest / "config.yaml").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
