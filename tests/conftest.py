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


import pytest  # noqa: E402  (after the variables above)


@pytest.fixture(params=[False, True], ids=["whole", "chunks"])
def chunked(request, monkeypatch):
    """Run a test as is, and again with every generic step of more than 3 rows taken in chunks
    of 3 rows (what batches beyond the cache get), so that small tests cover the chunking."""
    if request.param:
        from fastnn import _state
        monkeypatch.setattr(_state, "CHUNK_ABOVE", 0)
        monkeypatch.setattr(_state, "CHUNK_BYTES", 1)
        monkeypatch.setattr(_state, "MIN_CHUNK_ROWS", 3)
    return request.param
