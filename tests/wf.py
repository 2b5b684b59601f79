"""Helpers for tests that run the workflow (import as `from wf import ...`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _real_ct() -> Path:
    """The shared real CAC-free chest CTs (read-only; CC BY, see their README)."""
    for root in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        if (root / "data" / "real_ct").is_dir():
            return root / "data" / "real_ct"
    return REPO.parent / "shared" / "data" / "real_ct"


REAL_CT = _real_ct()
REAL_SERIES = {
    "lidc_1mm_D": REAL_CT / "lidc-idri-0314",
    "a0001_5mm_B": REAL_CT / "lung-pet-ct-dx-a0001" / "B_soft_5mm",
    "a0001_5mm_L": REAL_CT / "lung-pet-ct-dx-a0001" / "L_lung_5mm",
    "a0002_8mm_B40f": REAL_CT / "lung-pet-ct-dx-a0002" / "B40f_8mm",
    "a0002_8mm_B70f": REAL_CT / "lung-pet-ct-dx-a0002" / "B70f_8mm",
}
"""The five shared real series by a short name (README of real_ct: facts and heart z)."""


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the repository's workflow with ``workdir`` as working directory; ``env`` adds
    environment variables (the jobs inherit them)."""
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    full_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    full_env |= dict(env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_config(workdir: Path) -> Path:
    """Give ``workdir`` the repository's config/ folder (what --configfile merges over)."""
    shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    return workdir / "config" / "config.yaml"


TINY_GEOMETRY = {"thickness_mm": 3.0, "increment_mm": 3.0}
"""Analysis geometry of the tiny run: 3 mm slices every 3 mm (3 mm series are an identity)."""


def tiny_config(
    workdir: Path, *, thicknesses: tuple[float, ...] = (3.0, 1.0), resample: dict | None = None
) -> Path:
    """Write ``workdir/tiny.yaml``: a 6-scan synthetic cohort (96² matrix, seed 7, batches of
    4, so two batches) of the given slice thicknesses (mm), resampled to ``resample``
    (default :data:`TINY_GEOMETRY`), with the repository's config/ beside it."""
    copy_config(workdir)
    user = {
        "datasets": {
            "tiny": {
                "synthetic": {
                    "n_scans": 6,
                    "seed": 7,
                    "matrix": 96,
                    "thicknesses_mm": list(thicknesses),
                },
                "resample": TINY_GEOMETRY if resample is None else resample,
            }
        },
        "run": ["tiny"],
        "batch_size": 4,
        "stats": {"n_boot": 50},
    }
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(user))
    return path


SEGMENT_WEIGHTS = REPO / "resources" / "models" / "segment.pt"


def _background(path: str) -> str:
    """A shipped config's inserted-calcium background made absolute: one under
    ``../shared/data/real_ct`` is taken from :data:`REAL_CT` (where the tests' guards look for
    the shared series, also when the checkout does not lie beside ``shared/``), any other
    relative path from the repository."""
    p = Path(path)
    if p.is_absolute():
        return path
    try:
        return str(REAL_CT / p.relative_to(Path("..") / "shared" / "data" / "real_ct"))
    except ValueError:
        return str((REPO / p).resolve())


def run_dataset(
    workdir: Path,
    name: str,
    spec: dict | None,
    *,
    methods: list[str],
    targets: list[str],
) -> Path:
    """``results/<name>`` of a workflow run in ``workdir`` on one dataset with ``methods``
    (shipped weights, 50 bootstrap resamples), building ``targets`` (files of
    ``results/<name>/``). ``spec``: the dataset's entry (None: config/config.yaml's of that
    name, its inserted-calcium backgrounds made absolute)."""
    config = yaml.safe_load(copy_config(workdir).read_text())
    ds = spec if spec is not None else config["datasets"][name]
    inserted = ds.get("inserted")
    if inserted:  # the shipped config names the backgrounds relative to the repository
        inserted["backgrounds"] = [_background(b) for b in inserted["backgrounds"]]
    user = {
        "datasets": {name: ds},
        "run": [name],
        "methods": methods,
        "segment": {"weights": str(SEGMENT_WEIGHTS)},
        "stats": {"n_boot": 50},
    }
    (workdir / "user.yaml").write_text(yaml.safe_dump(user))
    paths = [f"results/{name}/{t}" for t in targets]
    run_snakemake(workdir, "--cores", "2", *paths, "--configfile", "user.yaml")
    return workdir / "results" / name
