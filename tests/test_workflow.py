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
from wf import REPO, copy_config, run_snakemake, tiny_config

PRIVATE_MARKERS = ("Synthname", "PatientName", "PatientBirthDate")


def test_lint_is_clean(tmp_path: Path) -> None:
    copy_config(tmp_path)
    proc = run_snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_plain_run_finds_the_workstation_profile(tmp_path: Path) -> None:
    """No --workflow-profile: Snakemake takes profiles/default beside the Snakefile; the
    old path workflow/profiles/default still names the same profile."""
    copy_config(tmp_path)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1")
    profile = REPO / "profiles" / "default"
    assert f"workflow specific profile {profile} " in proc.stderr, proc.stderr[:2000]
    old = REPO / "workflow" / "profiles" / "default"
    assert (old / "config.yaml").resolve() == (profile / "config.yaml").resolve()


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


TABLES = ("scans", "scores", "lesions", "reference_points", "agreement", "confusion", "detection")


def _results(run: Path) -> Path:
    return run / "results" / "tiny"


def _reference_vs_truth(run: Path) -> pd.DataFrame:
    """Reference score rows of the tiny run beside the generator's truth (``*_truth``)."""
    scores = pd.read_parquet(_results(run) / "scores.parquet")
    truth = pd.read_csv(run / "data" / "tiny" / "truth.csv")
    return scores[scores["method"] == "reference"].merge(
        truth, on=["series_uid", "artery"], suffixes=("", "_truth")
    )


@pytest.mark.slow
def test_tables_match_the_contract_schemas(tiny_run: Path) -> None:
    for name, schema in CONTRACT_TABLES.items():  # every contract table, checked against its schema
        check_table(pq.read_table(_results(tiny_run) / f"{name}.parquet"), schema, name)


@pytest.mark.slow
def test_tables_carry_provenance(tiny_run: Path) -> None:
    for name in ("scans", "scores", "lesions", "agreement", "confusion"):
        meta = read_meta(_results(tiny_run) / f"{name}.parquet")
        assert meta["version"] and meta["config_hash"], name
        assert "threshold_hu" in meta["conventions"], name


@pytest.mark.slow
def test_report_shows_the_first_batch_feedback_maps(tiny_run: Path) -> None:
    page = (_results(tiny_run) / "report.html").read_text()
    feedback = page[page.index('<section id="feedback">') :]
    feedback = feedback[: feedback.index("</section>")]
    assert feedback.count("<img ") == 3  # the first batch's decision-feedback maps


@pytest.mark.slow
def test_report_shows_scan_qc_pictures_without_paths(tiny_run: Path) -> None:
    page = (_results(tiny_run) / "report.html").read_text()
    qc = page[page.index('<section id="qc">') :]
    qc = qc[: qc.index("</section>")]
    assert 1 <= qc.count("<img ") <= 6  # outliers + a sample of 4 of the 6 scans
    assert "Scan QC pictures" in qc and str(tiny_run) not in page and ".nii" not in page


@pytest.mark.slow
def test_every_series_is_ok_once(tiny_run: Path) -> None:
    scans = pd.read_parquet(_results(tiny_run) / "scans.parquet")
    assert len(scans) == 6
    assert scans["series_uid"].is_unique
    assert (scans["status"] == "ok").all(), scans[["series_uid", "status", "reason"]]


@pytest.mark.slow
def test_four_rows_per_series_and_source_with_total_the_sum(tiny_run: Path) -> None:
    scans = pd.read_parquet(_results(tiny_run) / "scans.parquet")
    scores = pd.read_parquet(_results(tiny_run) / "scores.parquet")
    assert set(scores["method"]) == {"reference", "hu-threshold", "direct"}
    # four coronary rows per ok series and source; total = LAD + LCX + RCA
    coronary = scores[scores["artery"].isin(["LAD", "LCX", "RCA", "total"])]
    counts = coronary.groupby(["method", "series_uid"]).size()
    assert (counts == 4).all() and len(counts) == 3 * len(scans)
    # region rows (TAC, AV, MV) only for the reference, one per series for each region the
    # annotations use; the two methods label no region
    regions = scores[~scores.index.isin(coronary.index)]
    used = set(pd.read_csv(tiny_run / "data" / "tiny" / "annotations.csv")["label"])
    assert set(regions["method"]) <= {"reference"}
    assert set(regions["artery"]) == used & {"TAC", "AV", "MV"}
    assert (regions.groupby("artery").size() == len(scans)).all()
    wide = scores.pivot_table(index=["method", "series_uid"], columns="artery", values="agatston")
    np.testing.assert_allclose(wide["total"], wide[["LAD", "LCX", "RCA"]].sum(axis=1))


@pytest.mark.slow
def test_reference_equals_truth_on_native_3mm_series(tiny_run: Path) -> None:
    ref = _reference_vs_truth(tiny_run)
    native3 = ref[ref["slice_thickness_mm"] == 3.0]
    assert len(native3) >= 4
    for col in ("agatston", "volume_mm3", "mass_mg", "n_lesions"):
        np.testing.assert_allclose(native3[col], native3[f"{col}_truth"], rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_thin_series_reference_equals_an_independent_agatston(tiny_run: Path) -> None:
    """1 mm series are scored on their resampled 3 mm volume: compare with
    :func:`_independent_agatston` on that volume."""
    res = _results(tiny_run)
    ref = _reference_vs_truth(tiny_run)
    ann = pd.read_csv(tiny_run / "data" / "tiny" / "annotations.csv")
    scans = pd.read_parquet(res / "scans.parquet")
    thin = scans[scans["slice_thickness_mm"] < 3.0]
    assert len(thin) >= 1
    for uid in thin["series_uid"]:
        (path,) = (res / "work" / "resampled").glob(f"*/{uid}.nii")
        expected = _independent_agatston(read_volume(path), ann[ann["series_uid"] == uid])
        got = ref[ref["series_uid"] == uid].set_index("artery")["agatston"]
        for artery, value in expected.items():
            assert got[artery] == pytest.approx(value, rel=1e-9, abs=1e-9), (uid, artery)


@pytest.mark.slow
def test_no_identifier_reaches_results_or_logs(tiny_run: Path) -> None:
    """No PatientName / PatientBirthDate value of the input DICOM in any written file."""
    identifiers = _identifiers(tiny_run / "data" / "tiny" / "dicom")
    assert len(identifiers) >= 6
    for root in (tiny_run / "results", tiny_run / "logs"):
        for f in root.rglob("*"):
            if f.is_file():
                blob = f.read_bytes()
                for marker in PRIVATE_MARKERS:
                    assert marker.encode() not in blob, (f, marker)
                for value in identifiers:
                    assert value.encode() not in blob, (f, "identifier")


@pytest.mark.slow
def test_second_run_has_nothing_to_do(tiny_run: Path) -> None:
    cfg = tiny_run / "tiny.yaml"
    proc = run_snakemake(tiny_run, "--cores", "2", "--configfile", str(cfg), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_snakemake_report_of_the_run(tiny_run: Path, tmp_path: Path) -> None:
    """`snakemake --report` on a finished run: a self-contained HTML file that holds the
    outputs marked for the report (category "Reports": the dataset's report.html)."""
    out = tmp_path / "snakemake_report.html"
    cfg = tiny_run / "tiny.yaml"
    run_snakemake(tiny_run, "--report", str(out), "--configfile", str(cfg))
    page = out.read_text(encoding="utf-8")
    assert "Reports" in page and "report.html" in page


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

    cfg = tiny_config(tmp_path)
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
        a = pd.read_parquet(_results(tiny_run) / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "results" / "tiny" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
