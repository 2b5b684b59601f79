"""Study tables for epidemiologists (issue 17): one score per exam, timepoints and
progression, CAC-DRS, baseline table and outcomes (Cox proportional hazards, Harrell's C,
Kaplan–Meier).

One module per concept: :mod:`.exams` (series → exam selection), :mod:`.timepoints`,
:mod:`.progression`, :mod:`.cacdrs`, :mod:`.table1`, :mod:`.outcomes`, :mod:`.simulate`
(synthetic cohorts with known hazard ratios) and :mod:`.run` (the workflow step).
Dates never leave this package: exams carry days since the participant's first exam.
"""
