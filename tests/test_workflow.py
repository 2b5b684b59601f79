"""The workflow as a workflow: lint, dry run, and a CPU end-to-end run on a tiny cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import ndimage

from cacflow.contract import TABLES as CONTRACT_TABLES
from cacflow.contract import check_table
from cacflow.provenance import read_meta
from cacflow.volume import read_volume
from wf import REPO, copy_config, run_snakemake

PRIVATE_MARKERS = ("Synthname", "PatientName", "PatientBirthDate")


def _tiny_config(workdir: Path, *, thicknesses: list[float], resample: dict | None) -> Path:
    copy_config(workdir)
    user = {
        "datasets": {
            "tiny": {
                "synthetic": {
                    "n_scans": 6,
                    "seed": 7,
                    "matrix": 96,
                    "thicknesses_mm": thicknesses,
                },
                "resample": resample,
            }
        },
        "run": ["tiny"],
        "batch_size": 4,
        "stats": {"n_boot": 50},
    }
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(user))
    return path


def test_lint_is_clean(tmp_path: Path) -> None:
    copy_config(tmp_path)
    proc = run_snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _independent_agatston(vol, points: pd.DataFrame, threshold: float = 130.0) -> dict:
    """Reference Agatston per artery computed without cacflow's scoring code.

    scipy 26-connected components of >= threshold voxels that contain an annotated point
    (points taken at their nearest voxel centre); per slice area x weight of the slice peak;
    times increment / 3.
    """
    hu = vol.array.astype(float)
    comps, _ = ndimage.label(hu >= threshold, structure=np.ones((3, 3, 3)))
    g = vol.geometry
    per_artery = {"LAD": 0.0, "LCX": 0.0, "RCA": 0.0}
    seen: set[int] = set()
    for p in points.itertuples():
        i, j, k = np.rint(g.world_to_index(np.array([p.x, p.y, p.z]))).astype(int)
        c = comps[k, j, i]
        if c == 0 or c in seen or p.label not in ("LAD", "LM", "LCX", "RCA"):
            continue
        seen.add(c)
        artery = "LAD" if p.label == "LM" else p.label
        for z in range(hu.shape[0]):
            sl = comps[z] == c
            if not sl.any():
                continue
            peak = hu[z][sl].max()
            weight = 1 + (peak >= 200) + (peak >= 300) + (peak >= 400)
            per_artery[artery] += sl.sum() * g.pixel_area_mm2 * weight
    factor = g.increment_mm / 3.0
    return {a: v * factor for a, v in per_artery.items()}


TINY_GEOMETRY = {"thickness_mm": 3.0, "increment_mm": 3.0}
TABLES = ("scans", "scores", "lesions", "reference_points", "agreement", "confusion", "detection")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CPU end-to-end run of a 6-scan cohort (3 mm and 1 mm series, two batches)."""
    workdir = tmp_path_factory.mktemp("tiny")
    cfg = _tiny_config(workdir, thicknesses=[3.0, 1.0], resample=TINY_GEOMETRY)
    run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    return workdir


@pytest.mark.slow
def test_end_to_end_reference_equals_truth(tiny_run: Path) -> None:
    tmp_path = tiny_run
    cfg = tmp_path / "tiny.yaml"
    res = tmp_path / "results" / "tiny"
    for name, schema in CONTRACT_TABLES.items():  # every contract table, checked against its schema
        check_table(pq.read_table(res / f"{name}.parquet"), schema, name)
    for name in ("scans", "scores", "lesions", "agreement", "confusion"):
        assert (res / f"{name}.parquet").exists(), name
        meta = read_meta(res / f"{name}.parquet")
        assert meta["version"] and meta["config_hash"]
        assert "threshold_hu" in meta["conventions"]
    assert (res / "report.html").exists()
    page = (res / "report.html").read_text()
    feedback = page[page.index('<section id="feedback">') :]
    feedback = feedback[: feedback.index("</section>")]
    assert feedback.count("<img ") == 3  # the first batch's decision-feedback maps
    qc = page[page.index('<section id="qc">') :]
    qc = qc[: qc.index("</section>")]
    assert 1 <= qc.count("<img ") <= 6  # outliers + a sample of 4 of the 6 scans
    assert "Scan QC pictures" in qc and str(tmp_path) not in page and ".nii" not in page

    scans = pd.read_parquet(res / "scans.parquet")
    assert scans["series_uid"].is_unique
    assert (scans["status"] == "ok").all(), scans[["series_uid", "status", "reason"]]
    scores = pd.read_parquet(res / "scores.parquet")
    assert set(scores["method"]) == {"reference", "hu-threshold", "direct"}
    # four coronary rows per ok series and source; total = LAD + LCX + RCA
    coronary = scores[scores["artery"].isin(["LAD", "LCX", "RCA", "total"])]
    counts = coronary.groupby(["method", "series_uid"]).size()
    assert (counts == 4).all() and len(counts) == 3 * len(scans)
    # region rows (TAC, AV, MV) only for the reference, one per series for each region the
    # annotations use; the two methods label no region
    regions = scores[~scores.index.isin(coronary.index)]
    used = set(pd.read_csv(tmp_path / "data" / "tiny" / "annotations.csv")["label"])
    assert set(regions["method"]) <= {"reference"}
    assert set(regions["artery"]) == used & {"TAC", "AV", "MV"}
    assert (regions.groupby("artery").size() == len(scans)).all()
    wide = scores.pivot_table(index=["method", "series_uid"], columns="artery", values="agatston")
    np.testing.assert_allclose(wide["total"], wide[["LAD", "LCX", "RCA"]].sum(axis=1))

    truth = pd.read_csv(tmp_path / "data" / "tiny" / "truth.csv")
    ref = scores[scores["method"] == "reference"].merge(
        truth, on=["series_uid", "artery"], suffixes=("", "_truth")
    )
    native3 = ref[ref["slice_thickness_mm"] == 3.0]
    assert len(native3) >= 4
    for col in ("agatston", "volume_mm3", "mass_mg", "n_lesions"):
        np.testing.assert_allclose(native3[col], native3[f"{col}_truth"], rtol=1e-9, atol=1e-9)

    # thin-slice series: compare with an independent computation on the resampled volume
    ann = pd.read_csv(tmp_path / "data" / "tiny" / "annotations.csv")
    thin = scans[scans["slice_thickness_mm"] < 3.0]
    assert len(thin) >= 1
    for uid in thin["series_uid"]:
        (path,) = (res / "work" / "resampled").glob(f"*/{uid}.nii")
        expected = _independent_agatston(read_volume(path), ann[ann["series_uid"] == uid])
        got = ref[ref["series_uid"] == uid].set_index("artery")["agatston"]
        for artery, value in expected.items():
            assert got[artery] == pytest.approx(value, rel=1e-9, abs=1e-9), (uid, artery)

    # privacy: no PatientName / birth date reaches results/ or logs/
    identifiers = _identifiers(tmp_path / "data" / "tiny" / "dicom")
    assert len(identifiers) >= 6
    for root in (tmp_path / "results", tmp_path / "logs"):
        for f in root.rglob("*"):
            if f.is_file():
                blob = f.read_bytes()
                for marker in PRIVATE_MARKERS:
                    assert marker.encode() not in blob, (f, marker)
                for value in identifiers:
                    assert value.encode() not in blob, (f, "identifier")

    # a second run does nothing; tables are stable
    proc = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _identifiers(dicom_dir: Path) -> set[str]:
    """PatientName and PatientBirthDate values actually written in the input DICOM files."""
    import pydicom

    values = set()
    for f in sorted(p for p in dicom_dir.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # the corpus also holds non-DICOM files
            continue
        for keyword in ("PatientName", "PatientBirthDate"):
            if ds.get(keyword):
                values.add(str(ds.get(keyword)))
    return values


def test_report_settings_are_json(tmp_path: Path) -> None:
    """The settings passed to steps are plain JSON (what the shell lines quote)."""
    from cacflow.config import dataset_settings

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert json.loads(json.dumps(dataset_settings(cfg, "demo")))["dataset"] == "demo"


@pytest.mark.slow
def test_killed_run_resumes_to_identical_tables(tiny_run: Path, tmp_path: Path) -> None:
    """SIGKILL mid-run, resume with --rerun-incomplete: the same table contents."""
    import os
    import signal
    import subprocess
    import time

    from wf import BIN

    cfg = _tiny_config(tmp_path, thicknesses=[3.0, 1.0], resample=TINY_GEOMETRY)
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--cores",
        "2",
        "--configfile",
        str(cfg),
    ]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((tmp_path / "results" / "tiny" / "work").glob("resampled/*")):
        assert proc.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "results" / "tiny" / "report.html").exists()
    # a killed Snakemake leaves its lock behind: unlock, then resume
    run_snakemake(tmp_path, "--configfile", str(cfg), "--unlock")
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg), "--rerun-incomplete")
    for name in TABLES:
        a = pd.read_parquet(tiny_run / "results" / "tiny" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "results" / "tiny" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
