"""Numbers printed in the source papers, for tests that reproduce them.

Seed 000 (de Vos et al. 2019) Table III: risk-category confusion matrices of the direct
ConvNet against the reference, scheme A ({<1, [1,10), [10,100), [100,400), >=400});
rows = reference category, columns = ConvNet category. Published linearly weighted kappa
0.95 (cardiac) and 0.93 (chest), accuracy 0.93 and 0.90 (statsmodels gives 0.9502 and
0.9267 on these tables).
"""

import numpy as np

DEVOS_TABLE_III_CARDIAC = np.array(
    [[259, 0, 1, 0, 0], [9, 36, 4, 0, 0], [2, 3, 82, 2, 0], [0, 1, 2, 65, 2], [0, 0, 0, 11, 51]]
)
DEVOS_TABLE_III_CHEST = np.array(
    [[118, 6, 4, 0, 0], [8, 29, 5, 0, 0], [3, 8, 85, 3, 0], [1, 1, 7, 99, 4], [0, 0, 0, 3, 122]]
)
DEVOS_KAPPA = {"cardiac": 0.9502, "chest": 0.9267}
DEVOS_ACCURACY = {"cardiac": 0.93, "chest": 0.90}
