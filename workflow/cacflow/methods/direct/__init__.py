"""Direct coronary calcium scoring (de Vos et al. 2019, IEEE TMI; paper 000).

Two ConvNets in sequence, no segmentation:

1. an atlas-registration network (:mod:`.atlas`, :class:`.model.RegistrationNet`) predicts
   the six parameters of an affine transform (translations, rotation about z, in-plane and
   z scale) aligning a scan with an atlas built from the training scans; trained without
   supervision on normalised cross-correlation. It selects the slices and the window
   around the heart (:mod:`.register`);
2. a 2-D scoring network (:class:`.model.ScoringNet`) regresses each selected axial
   slice's pseudo-Agatston score per artery (LAD incl. LM, LCX, RCA; :mod:`.targets`) on
   a log scale; a scan's score is the sum of its slice scores times the increment factor.

Entry points: :func:`.infer.infer_dir` (workflow rule ``infer``),
:func:`.infer.scores_from_predictions` (score step), :func:`.train.train` (rule
``train_direct``), :func:`.evaluate.score_pairs` (held-out evaluation, model card).
"""
