"""Study statistics: agreement with the reference, risk categories, detection, subgroups.

Inputs are the long tables of CONTRACT §3. Every table returned has the columns
``method, artery, statistic, value, ci_low, ci_high, n`` (subgroups add ``group_by,
group`` in front), where ``n`` is the number of series used. Statistic names:

- agreement (:mod:`cacflow.stats.agreement`): ``icc`` = ICC(A,1), ``pearson``,
  ``spearman``, ``ba_bias``, ``ba_loa_low``, ``ba_loa_high`` (+ ``_log`` variants on
  ln(x + 1)), ``kappa_linear:<scheme>``, ``accuracy:<scheme>`` (total only);
- detection (:mod:`cacflow.stats.detection`): ``lesion_*``, ``fp_*``, ``fn_*``,
  ``volume_sensitivity``, ``ruleout_*``.
"""

from cacflow.stats.agreement import (
    ICC_FORM,
    Estimate,
    accuracy_statistic,
    agreement_metadata,
    agreement_table,
    bland_altman,
    empty_agreement,
    icc_a1,
    kappa_statistic,
)
from cacflow.stats.categories import (
    categorize,
    confusion_matrix,
    n_categories,
    representative_scores,
    scores_from_confusion,
)
from cacflow.stats.confusion import confusion_table, empty_confusion, matrix_from_table
from cacflow.stats.detection import MATCH_RADIUS_MM, detection_table, match_lesions
from cacflow.stats.kappa import accuracy, linear_kappa
from cacflow.stats.subgroups import subgroup_table

__all__ = [
    "ICC_FORM",
    "MATCH_RADIUS_MM",
    "Estimate",
    "accuracy",
    "accuracy_statistic",
    "agreement_metadata",
    "agreement_table",
    "bland_altman",
    "categorize",
    "confusion_matrix",
    "confusion_table",
    "detection_table",
    "empty_agreement",
    "empty_confusion",
    "icc_a1",
    "kappa_statistic",
    "linear_kappa",
    "match_lesions",
    "matrix_from_table",
    "n_categories",
    "representative_scores",
    "scores_from_confusion",
    "subgroup_table",
]
