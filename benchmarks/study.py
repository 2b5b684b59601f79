"""Benchmark: study tables at NLST scale (issue 17).

50,000 participants x 3 exams (half of the exams with a second, sharp-kernel
reconstruction: ~225,000 series): exam selection with timepoints and CAC-DRS,
progression between consecutive exams per artery, and the outcome tables (table 1, five
Cox models with PH checks, Harrell's C with 200 bootstrap resamples, Kaplan–Meier).
Target: <= 60 s on 2 cores. Prints wall times per step and their ratio to the target;
never asserts a time in a test.
"""

from __future__ import annotations

import argparse
import time

from cacflow.conventions import DEFAULT_SCHEMES
from cacflow.study.run import StudyConfig, build_study, outcome_tables
from cacflow.study.simulate import simulate_cohort

N_PARTICIPANTS = 50_000
N_EXAMS = 3
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=N_PARTICIPANTS)
    parser.add_argument("--exams", type=int, default=N_EXAMS)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    sim = simulate_cohort(args.participants, args.exams, seed=0, min_exams=args.exams)
    cfg = StudyConfig.from_settings({"study": {"n_boot": args.n_boot}})
    times = {}
    t0 = time.perf_counter()
    tables = build_study(sim.scans, sim.scores, cfg, DEFAULT_SCHEMES, sim.exam_table)
    times["selection + progression"] = time.perf_counter() - t0
    exams = tables["exams"]
    labels = ["0", "1-99", "100-299", ">=300"]
    cat = exams["cac_drs_a"].to_numpy()
    t0 = time.perf_counter()
    outcome_tables(exams, cat, labels, sim.clinical, cfg)
    times["outcomes"] = time.perf_counter() - t0
    total = sum(times.values())
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    print(
        f"study benchmark: {args.participants} participants x {args.exams} exams "
        f"({len(sim.scans)} series, {len(exams)} exams, {len(tables['progression'])} "
        f"progression rows), n_boot={args.n_boot}: {parts}; total {total:.1f} s "
        f"= {total / TARGET_S:.2f} x the {TARGET_S:.0f} s target"
    )
    if total > TARGET_S:
        raise SystemExit(f"study benchmark too slow: {total:.1f} s > {TARGET_S:.0f} s")


if __name__ == "__main__":
    main()
