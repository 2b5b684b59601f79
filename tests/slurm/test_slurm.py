"""The SLURM profile: its structure, a dry run with it, and a run on a real local cluster.

The end-to-end test (tests/slurm/run_local_slurm.sh: installs and starts a one-node SLURM
cluster, runs a tiny cohort locally and through SLURM, compares the tables) runs only when
CACFLOW_SLURM_TEST=1 (CI sets it) or when a local test cluster made by
tests/slurm/start_local_slurm.sh is configured on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from wf import REPO, copy_config, run_snakemake

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
HERE = Path(__file__).resolve().parent


def _script(name: str) -> ModuleType:
    """A helper script of this folder, imported by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_folders = _script("compare_tables").compare_folders
table_differences = _script("compare_tables").table_differences
fit_profile = _script("fit_profile").fit_profile
PLUGIN = "snakemake-executor-plugin-slurm"
PLUGIN_VERSION = "2.8.0"
LOCAL_CLUSTER_MARKER = "# cacflow local test cluster"


def _profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def _rule_names() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^(?:rule|checkpoint)\s+(\w+):", text, flags=re.MULTILINE))


def test_plugin_is_pinned_and_installed() -> None:
    pins = (REPO / "envs" / "requirements.txt").read_text().splitlines()
    assert f"{PLUGIN}=={PLUGIN_VERSION}" in pins
    assert version(PLUGIN) == PLUGIN_VERSION


def test_profile_names_real_rules_and_groups() -> None:
    profile = _profile()
    rules = _rule_names()
    assert profile["executor"] == "slurm"
    for key in ("set-threads", "set-resources", "groups"):
        unknown = set(profile[key]) - rules
        assert not unknown, f"{key} names rules the workflow lacks: {unknown}"
    # every per-series rule is grouped, and each group has a component count
    assert {"convert", "resample", "reference", "infer", "score"} <= set(profile["groups"])
    assert set(profile["group-components"]) == set(profile["groups"].values())
    for name, res in profile["set-resources"].items():
        assert res["mem_mb"] > 0 and res["runtime"] > 0, name
    assert profile["default-resources"]["cpus_per_task"] == "threads"
    assert profile["rerun-incomplete"] is True and profile["latency-wait"] >= 30


def test_group_components_give_a_few_hundred_jobs_at_50k() -> None:
    """SLURM jobs for 50,000 series at the default batch size, one method, from the profile."""
    profile = _profile()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    n_batches = -(-50_000 // config["batch_size"])
    comps = profile["group-components"]
    per_method = len(config["methods"])
    # reference + each method are scored: one score job per source and batch
    n_jobs = (
        -(-n_batches // comps["series"])
        + per_method * -(-n_batches // comps["infer-{method}"])
        + -(-(n_batches * (1 + per_method)) // comps["scoring"])
        + 1  # the dataset group: tables, stats, report
    )
    ungrouped = n_batches * (3 + per_method + 1 + per_method) + 3
    assert 100 <= n_jobs <= 500 < ungrouped


def test_fit_profile_changes_sizes_only() -> None:
    profile = _profile()
    fitted = fit_profile(profile, cores=2, mem_mb=8000)
    assert fitted["cores"] == 2
    mems = [r["mem_mb"] for r in fitted["set-resources"].values()]
    assert max(mems) <= 4000 and fitted["default-resources"]["mem_mb"] <= 4000
    assert any(r["mem_mb"] > 4000 for r in profile["set-resources"].values())  # it did cap

    def strip(p: dict) -> dict:
        p = yaml.safe_load(yaml.safe_dump(p))
        p.pop("cores")
        p["default-resources"].pop("mem_mb")
        for r in p["set-resources"].values():
            r.pop("mem_mb")
        return p

    assert strip(fitted) == strip(profile)


def test_table_differences() -> None:
    a = pd.DataFrame({"series_uid": ["u1", "u2", "u3"], "agatston": [0.0, 12.5, 401.25]})
    shuffled = a.iloc[[2, 0, 1]].reset_index(drop=True)
    assert table_differences(a, shuffled) == []
    noise = a.assign(agatston=a["agatston"] + np.array([1e-14, 0.0, 0.0]))
    assert table_differences(a, noise) == []
    changed = a.assign(agatston=[0.0, 12.5, 401.5])
    (diff,) = table_differences(a, changed)
    assert "agatston" in diff and "1 rows differ" in diff
    assert table_differences(a, a.iloc[:2]) == ["row counts differ: 3 vs 2"]
    assert "columns differ" in table_differences(a, a.rename(columns={"agatston": "x"}))[0]
    other_uid = a.assign(series_uid=["u1", "u2", "u4"])
    assert "series_uid" in " ".join(table_differences(a, other_uid))


def test_compare_folders(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        d.mkdir()
        pd.DataFrame({"v": [1.0, 2.0]}).to_parquet(d / "scores.parquet")
    pd.DataFrame({"files": ["/a/1"]}).to_parquet(first / "manifest.parquet")
    pd.DataFrame({"files": ["/b/1"]}).to_parquet(second / "manifest.parquet")
    assert compare_folders(first, second, exclude=("manifest",)) == []
    assert any(p.startswith("manifest") for p in compare_folders(first, second))
    pd.DataFrame({"v": [1.0]}).to_parquet(first / "lesions.parquet")
    assert compare_folders(first, second, exclude=("manifest",)) == [
        f"lesions: missing {second / 'lesions.parquet'}"
    ]


def test_dry_run_with_slurm_profile(tmp_path: Path) -> None:
    """The workflow plans with the profile: per-rule resources, cpus_per_task = threads."""
    copy_config(tmp_path)
    uids = [f"1.2.3.{i}" for i in range(6)]
    pd.DataFrame({"series_uid": uids}).to_parquet(tmp_path / "manifest.parquet")
    (tmp_path / "points.csv").write_text("series_uid,x,y,z,label\n1.2.3.0,0,0,0,LAD\n")
    user = {
        "datasets": {"big": {"manifest": "manifest.parquet", "annotations": "points.csv"}},
        "run": ["big"],
        "batch_size": 2,
    }
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(user))
    proc = run_snakemake(
        tmp_path, "-n", "--workflow-profile", str(PROFILE.parent), "--configfile", "big.yaml"
    )
    out = proc.stdout + proc.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE))
    assert counts["convert"] == "3" and counts["score"] == "6", counts
    profile = _profile()
    convert = profile["set-resources"]["convert"]
    threads = profile["set-threads"]["convert"]
    match = re.search(r"rule convert:\n(?:\s+\w+: .*\n)*?\s+resources: (.*)", out)
    assert match, out[-3000:]
    resources = dict(kv.split("=", 1) for kv in match.group(1).split(", "))
    assert resources["mem_mb"] == str(convert["mem_mb"])
    assert resources["runtime"] == str(convert["runtime"])
    assert resources["cpus_per_task"] == str(threads)


def _local_slurm_enabled() -> bool:
    if os.environ.get("CACFLOW_SLURM_TEST") == "1":
        return True
    conf = Path("/etc/slurm/slurm.conf")
    return conf.exists() and LOCAL_CLUSTER_MARKER in conf.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.skipif(
    not _local_slurm_enabled(),
    reason="local SLURM cluster test: set CACFLOW_SLURM_TEST=1 (needs root or sudo)",
)
def test_local_slurm_cluster_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(HERE / "run_local_slurm.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tables_equal"] is True
    assert summary["not_completed"] == 0
    assert summary["slurm_jobs"] == summary["expected_slurm_jobs"]
    assert summary["slurm_jobs"] < summary["workflow_jobs"]
    for table in ("scans", "scores", "lesions", "agreement", "confusion"):
        assert (tmp_path / "slurm" / "results" / "tiny" / f"{table}.parquet").exists()
