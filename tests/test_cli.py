"""The `cacflow` command as users call it (the installed entry point, in a subprocess):
`--help` on every step, and bad input -> non-zero exit with one error line naming the
file or key, never a traceback (CONTRACT.md section 1)."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cacflow.cli import EXIT_BAD_INPUT, build_parser
from wf import BIN

CACFLOW = str(BIN / "cacflow")


def _steps() -> list[str]:
    """Every subcommand of the parser (a new command is covered without editing this file);
    aliases (``gather`` for ``tables``) are left out: they run the same handler."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.dest for action in sub._choices_actions)


def _cacflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CACFLOW, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


BadInput = Callable[[Path], tuple[list[str], str]]
"""tmp folder -> (arguments after the step name, text the error line must name)."""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_INPUTS: dict[str, BadInput] = {
    "synth": lambda t: ([str(t / "out"), "--fov-p", "0.5", "0.5"], "--fov-p"),
    "insert": lambda t: ([str(t / "out"), "--background", str(t / "missing")], "missing"),
    "discover": lambda t: ([str(t / "missing"), "--out", str(t / "m.parquet")], "missing"),
    "convert": lambda t: ([str(t / "missing"), str(t / "out")], "missing"),
    "resample": lambda t: (
        [str(t), str(t / "out"), "--thickness", "3", "--scorable", '{"noise_hu": 1}'],
        "scorable.noise_hu",
    ),
    "reference": lambda t: (
        [str(t), str(_write(t / "ann.csv", "a,b\n1,2\n")), str(t / "out")],
        "ann.csv",
    ),
    "infer": lambda t: (["hu-threshold", str(t), str(t / "out"), "--scoring", "{bad"], "--scoring"),
    "score": lambda t: (
        [str(t), str(t), "--scans", str(_write(t / "scans.parquet", "not parquet"))]
        + ["--method", "m", "--scores", str(t / "s.parquet"), "--lesions", str(t / "l.parquet")],
        "scans.parquet",
    ),
    "tables": lambda t: (["--settings", "[1, 2]", "--out-dir", str(t)], "--settings"),
    "stats": lambda t: ([str(t), "--settings", "{}"], "scores.parquet"),
    "study": lambda t: (["simulate", str(t), "--settings", "{}"], "--out"),
    "report": lambda t: ([str(t / "missing"), "--settings", "{}", "--out", "r.html"], "missing"),
    "seg": lambda t: (
        [str(t / "missing"), str(t / "m.parquet"), "--scans", str(t), "--scores", str(t)]
        + ["--settings", "{}", "--out", str(t / "seg")],
        "missing",
    ),
    "train-direct": lambda t: (
        ["--images", str(t / "missing"), "--labels", str(t), "--out", str(t / "m.pt")],
        "missing",
    ),
    "train-segment": lambda t: (
        ["--images", str(t / "missing"), "--labels", str(t), "--out", str(t / "m.pt")],
        "missing",
    ),
    "triage": lambda t: ([str(t / "missing"), "--out", str(t / "triage.parquet")], "missing"),
}


def test_every_step_has_a_bad_input_case() -> None:
    assert sorted(BAD_INPUTS) == _steps()


def test_top_level_help_lists_every_step() -> None:
    proc = _cacflow("--help")
    assert proc.returncode == 0, proc.stderr
    for step in _steps():
        assert step in proc.stdout


def test_no_step_is_a_usage_error() -> None:
    proc = _cacflow()
    assert proc.returncode == EXIT_BAD_INPUT
    assert proc.stderr.splitlines()[-1].startswith("cacflow: error:")


@pytest.mark.parametrize("step", _steps())
def test_help(step: str) -> None:
    proc = _cacflow(step, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: cacflow {step}")


@pytest.mark.parametrize("step", _steps())
def test_bad_input_is_one_error_line(step: str, tmp_path: Path) -> None:
    args, named = BAD_INPUTS[step](tmp_path)
    proc = _cacflow(step, *args, cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if "error:" in line]
    assert errors == [lines[-1]], proc.stderr  # argparse may print its usage lines first
    assert errors[0].startswith(f"cacflow {step}: error: "), errors[0]
    assert named in errors[0], errors[0]


@pytest.mark.parametrize("step,section", [("train-direct", "direct"), ("train-segment", "segment")])
def test_training_options_default_to_the_schema(step: str, section: str) -> None:
    from cacflow.cli import build_parser
    from cacflow.config import default_of

    a = build_parser().parse_args([step, "--images", "i", "--labels", "l", "--out", "o.pt"])
    schema = default_of(section)
    given = {k: v for k, v in vars(a).items() if k in schema}
    assert {"epochs", "seed", "patience", "validation_fraction"} <= set(given)
    assert given == {k: schema[k] for k in given}
