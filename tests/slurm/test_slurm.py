"""The SLURM profile: its structure, a dry run with it, and a run on a real local cluster.

The end-to-end test (tests/slurm/run_local_slurm.sh: installs and starts a one-node SLURM
cluster, runs a tiny cohort locally and through SLURM, compares the tables) runs only when
CACFLOW_SLURM_TEST=1 (CI sets it): it needs root or sudo, writes /etc/slurm and takes a few
minutes, so it never starts by itself on a developer machine.
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
    rules = _rule_names() - {"all"}
    assert profile["executor"] == "slurm"
    # every rule has its threads and resources here, with --cpus-per-task = threads
    assert set(profile["set-threads"]) == rules
    assert set(profile["set-resources"]) == rules
    for name, res in profile["set-resources"].items():
        assert res["mem_mb"] > 0 and res["runtime"] > 0, name
        assert res["cpus_per_task"] == profile["set-threads"][name], name
    assert profile["set-threads"]["infer"] == profile["cores"]  # one inference per group job
    unknown = set(profile["groups"]) - rules
    assert not unknown, f"groups name rules the workflow lacks: {unknown}"
    assert {"convert", "resample", "reference", "infer", "score"} <= set(profile["groups"])
    assert set(profile["group-components"]) == set(profile["groups"].values())
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
        + 3  # tables, the dataset group (stats) and the report
    )
    ungrouped = n_batches * (3 + per_method + 1 + per_method) + 3
    assert 100 <= n_jobs <= 500 < ungrouped


def test_fit_profile_changes_sizes_only() -> None:
    profile = _profile()
    fitted = fit_profile(profile, cores=2, mem_mb=8000)
    assert fitted["cores"] == 2
    resources = fitted["set-resources"].values()
    assert max(r["mem_mb"] for r in resources) == 4000
    assert max(r["cpus_per_task"] for r in resources) == 2
    assert fitted["set-resources"]["score"] == profile["set-resources"]["score"]  # fits already

    def strip(p: dict) -> dict:
        p = yaml.safe_load(yaml.safe_dump(p))
        p.pop("cores")
        for r in p["set-resources"].values():
            r.pop("mem_mb")
            r.pop("cpus_per_task")
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


def _job_resources(out: str, rule: str, wildcards: str) -> dict[str, str]:
    """Resources of the job of ``rule`` with ``wildcards`` in a dry run's log."""
    pattern = rf"rule {rule}:\n(?:\s+\w+: .*\n)*?\s+wildcards: {re.escape(wildcards)}\n"
    match = re.search(pattern + r"(?:\s+\w+: .*\n)*?\s+resources: (.*)", out)
    assert match, f"no {rule} job with {wildcards}"
    return dict(kv.split("=", 1) for kv in match.group(1).split(", "))


def test_dry_run_with_slurm_profile(tmp_path: Path) -> None:
    """The workflow plans with the profile: per-rule resources, cpus_per_task = threads, and
    one GPU for the inference of a GPU method only (`direct`, with the shipped weights)."""
    copy_config(tmp_path)
    uids = [f"1.2.3.{i}" for i in range(6)]
    pd.DataFrame({"series_uid": uids}).to_parquet(tmp_path / "manifest.parquet")
    (tmp_path / "points.csv").write_text("series_uid,x,y,z,label\n1.2.3.0,0,0,0,LAD\n")
    user = {
        "datasets": {"big": {"manifest": "manifest.parquet", "annotations": "points.csv"}},
        "run": ["big"],
        "methods": ["hu-threshold", "direct"],
        "batch_size": 2,
    }
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(user))
    proc = run_snakemake(
        tmp_path, "-n", "--workflow-profile", str(PROFILE.parent), "--configfile", "big.yaml"
    )
    out = proc.stdout + proc.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE))
    assert counts["convert"] == "3" and counts["infer"] == "6" and counts["score"] == "9"
    profile = _profile()
    convert = _job_resources(out, "convert", "ds=big, batch=b0000")
    assert convert["mem_mb"] == str(profile["set-resources"]["convert"]["mem_mb"])
    assert convert["runtime"] == str(profile["set-resources"]["convert"]["runtime"])
    assert convert["cpus_per_task"] == str(profile["set-threads"]["convert"])
    gpu = _job_resources(out, "infer", "ds=big, method=direct, batch=b0001")
    cpu = _job_resources(out, "infer", "ds=big, method=hu-threshold, batch=b0001")
    assert gpu["gpu"] == "1" and cpu["gpu"] == "0"
    assert gpu["cpus_per_task"] == cpu["cpus_per_task"] == str(profile["set-threads"]["infer"])


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CACFLOW_SLURM_TEST") != "1",
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
