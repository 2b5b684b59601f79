"""cacflow.study.table1: medians [IQR] and n (%) by category, by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from cacflow.study.table1 import table1


def test_table1_hand_case() -> None:
    cohort = pd.DataFrame(
        {
            "age": [50.0, 60.0, 70.0, 80.0, 40.0],
            "sex": ["F", "M", "M", "F", None],
            "category": [0, 0, 1, 1, 1],
        }
    )
    t = table1(cohort, ["age", "sex"], ["0", "1-99"])
    age = t[t["covariate"] == "age"].set_index("category")
    assert age.loc["all", "median"] == 60.0
    assert age.loc["all", "q1"] == 50.0 and age.loc["all", "q3"] == 70.0
    assert age.loc["1-99", "text"] == "70.0 [55.0, 75.0]"
    sex = t[(t["covariate"] == "sex") & (t["category"] == "1-99")].set_index("level")
    assert sex.loc["F", "n"] == 1 and sex.loc["F", "percent"] == pytest.approx(50.0)
    n = t[t["covariate"] == "participants"].set_index("category")["n"]
    assert n.to_dict() == {"all": 5, "0": 2, "1-99": 3}
