"""Method ``segment``: calcium label masks from a 3D U-Net ensemble (seeds 002, 004, 003).

A small MONAI 3D U-Net sees a heart-centred crop of the analysis image on a coarse grid of
about 3 mm (:mod:`.data`) and predicts, per coarse voxel, background, LAD, LCX, RCA, LM,
AV, MV, TAC or other calcium. As in seed 002 only candidate voxels (>= the calcium
threshold of the analysis grid) can receive a calcium label: the class probabilities are
interpolated back to the analysis grid at candidate voxels only. ``k`` models trained on
different validation folds and seeds vote per voxel (seed 004), and each 26-connected
candidate component takes the majority label of its voxels (:mod:`.infer`). The masks go
through the one scoring engine like every method. A scan-level "any coronary calcium"
score with an operating point chosen on each model's validation split gives the
CAC-negative triage (seed 003, :mod:`.triage`).

Modules: :mod:`.data` (grid, crop, inputs, targets, voting), :mod:`.model` (network and
weights file), :mod:`.train` (the ``train_segment`` rule), :mod:`.infer` (the registry's
``infer`` entry point), :mod:`.triage` (operating point and triage table).
"""
