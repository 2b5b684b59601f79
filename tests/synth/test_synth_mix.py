"""The cohort mix: severity and valve-calcium chances reach the drawn scenes, the default
mix keeps the usual cohorts' UIDs, and the config block becomes `cacflow synth` options."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from cacflow.cli import build_parser
from cacflow.config import SEVERITY_KEYS, synth_arguments
from cacflow.synth import CohortMix
from cacflow.synth import scene as sc
from cacflow.synth.cohort import DEFAULT_MIX, wanted_calcifications


def _draws(mix: CohortMix, n: int = 40) -> list[tuple[str, list[str]]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([7, i])
        anatomy = sc.sample_anatomy(rng)
        severity, wanted = wanted_calcifications(rng, anatomy, 0.0, False, mix)
        out.append((severity, [p.keywords.get("label", "TAC") for p in wanted]))
    return out


def test_extensive_with_valves_only() -> None:
    mix = CohortMix(severity_p=(0, 0, 0, 5), av_p=1.0, mv_p=0.0)
    for severity, labels in _draws(mix):
        assert severity == "extensive"
        coronary = [lab for lab in labels if lab in sc.CORONARY_LABELS]
        assert 10 <= len(coronary) <= 16  # the extensive range in scene.SEVERITIES
        assert 1 <= labels.count("AV") <= 3
        assert "MV" not in labels


def test_no_valves_and_mild_only() -> None:
    for severity, labels in _draws(CohortMix(severity_p=(1, 0, 0, 0), av_p=0.0, mv_p=0.0)):
        assert severity == "mild"
        assert not {"AV", "MV"} & set(labels)


def test_default_mix_draws_like_the_generator_constants() -> None:
    assert CohortMix(severity_p=sc.SEVERITY_P, av_p=0.25, mv_p=0.15) == DEFAULT_MIX
    assert DEFAULT_MIX.key() == ()
    assert CohortMix(av_p=0.5).key() != ()
    # the default draws the same scenes as before the mix existed
    assert _draws(DEFAULT_MIX, 10) == _draws(CohortMix(), 10)
    severities = [s for s, _ in _draws(DEFAULT_MIX, 200)]
    assert set(severities) == set(sc.SEVERITIES)


@pytest.mark.parametrize(
    "kw",
    [
        {"severity_p": (1, 1, 1)},
        {"severity_p": (0, 0, 0, 0)},
        {"severity_p": (1, -1, 1, 1)},
        {"av_p": 1.5},
        {"mv_p": -0.1},
    ],
)
def test_bad_mix_fails(kw: dict) -> None:
    with pytest.raises(ValueError):
        CohortMix(**kw)


def test_weights_are_normalised() -> None:
    assert CohortMix(severity_p=(2, 2, 0, 0)).severity_p == (0.5, 0.5, 0.0, 0.0)


def test_config_block_becomes_synth_options() -> None:
    assert SEVERITY_KEYS == tuple(sc.SEVERITIES)
    spec = {
        "n_scans": 12,
        "seed": 3,
        "thicknesses_mm": [3],
        "zero_cac_fraction": 0.1,
        "severity_p": {"mild": 1, "moderate": 2, "severe": 3, "extensive": 4},
        "valve_p": {"MV": 0.5},
    }
    args = build_parser().parse_args(["synth", "out", *synth_arguments(spec)])
    assert isinstance(args, argparse.Namespace)
    assert (args.n_scans, args.seed, args.matrix, args.thickness) == (12, 3, 256, [3.0])
    assert args.zero_cac_fraction == 0.1
    assert args.severity_p == [1.0, 2.0, 3.0, 4.0]
    assert (args.av_p, args.mv_p) == (None, 0.5)
    plain = build_parser().parse_args(["synth", "out", *synth_arguments({"n_scans": 2, "seed": 1})])
    assert (plain.severity_p, plain.av_p, plain.mv_p, plain.zero_cac_fraction) == (
        None,
        None,
        None,
        0.2,
    )


def test_v2_config_block_becomes_synth_options() -> None:
    import yaml

    from cacflow.config import ConfigError, check_schema

    spec = {
        "n_scans": 4,
        "seed": 9,
        "domain": "v2",
        "fov_p": {"chest": 1, "cardiac": 3},
        "kernel_p": {"soft": 1, "medium": 0, "sharp": 0, "lung": 1},
        "gated_p": 0.7,
        "stent_p": 0.2,
        "kernels": ["Philips/B", "SIEMENS/B35f"],
    }
    base = yaml.safe_load(open("config/config.yaml"))
    base["datasets"]["v2"] = {"synthetic": spec}
    check_schema(base)
    args = build_parser().parse_args(["synth", "out", *synth_arguments(spec)])
    assert (args.domain, args.matrix, args.fov_p, args.kernel_p) == (
        "v2",
        512,
        [1.0, 3.0],
        [1.0, 0.0, 0.0, 1.0],
    )
    assert args.thickness == [0.625, 1.0, 1.5, 2.5, 3.0, 5.0]
    assert (args.gated_p, args.stent_p, args.kernels) == (0.7, 0.2, ["Philips/B", "SIEMENS/B35f"])
    plain = build_parser().parse_args(["synth", "out", *synth_arguments({"n_scans": 2, "seed": 1})])
    assert plain.domain == "v1" and plain.kernels is None
    base["datasets"]["v2"]["synthetic"]["domain"] = "v3"
    with pytest.raises(ConfigError, match="domain"):
        check_schema(base)
