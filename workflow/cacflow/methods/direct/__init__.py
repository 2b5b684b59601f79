"""Direct coronary calcium scoring (de Vos et al. 2019, IEEE TMI; paper 000).

Heart localisation, then a slice-scoring ConvNet, no segmentation:

1. the heart box (:mod:`.localise`): the classical heart localiser
   :func:`cacflow.heart.find_heart` selects the slices and the window round the heart
   (:mod:`.register`). The paper's atlas-registration network (:mod:`.atlas`,
   :class:`.model.RegistrationNet`: six affine parameters aligning a scan with an atlas of
   the training scans, trained without supervision on normalised cross-correlation) is
   only the fallback for a scan in which no heart is found: trained on phantoms, it
   mislocated the heart on real CT;
2. a 2-D scoring network (:class:`.model.ScoringNet`) regresses each selected axial
   slice's pseudo-Agatston score per artery (LAD incl. LM, LCX, RCA; :mod:`.targets`) on
   a log scale; a scan's score is the sum of its slice scores times the increment factor.

Entry points: :func:`.infer.infer_dir` (workflow rule ``infer``),
:func:`.predictions.scores_from_predictions` (score step, torch-free), :func:`.train.train` (rule
``train_direct``), :func:`.evaluate.score_pairs` (held-out evaluation, model card).
"""
