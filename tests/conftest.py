"""Shared test setup: single-threaded BLAS.

On a small, busy machine (2 cores here, load ~5) multi-threaded OpenBLAS spins
and thrashes: the 500-epoch ReLU seed (64x1000 @ 1000x100) took 1.2 s to 13 s
per run of fastnn.reference.train with default threads and a steady 0.46 s with
OPENBLAS_NUM_THREADS=1 (fastnn.train: 0.9-3.8 s vs 0.38 s). The variables must
be set before NumPy / SciPy load OpenBLAS, which is why they live here;
setdefault keeps any value the caller chose.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
