"""The ``many`` group: K = 64 networks per call (``fastnn.train_many``).

Cases: ``many:mlp3_gd-64`` (64 networks like the seed workload mlp3_gd, each from
its own seeded initial point, shared data) and ``many:digits-64`` (64 networks
1797x64 -> 64 -> 10 on scikit-learn's digits, softmax_ce, plain SGD with
learning rates np.geomspace(1e-3, 1e-1, 64), batch_size=32, shuffled, seed 0).

Rows: ``fastnn-many`` (one train_many call), ``fastnn-many-1thread``
(FASTNN_THREADS=1), ``fastnn-sequential`` (64 ``fastnn.train`` calls with the
seeds train_many documents), ``jax-vmap`` and ``torch-vmap`` when importable.
Every row is checked network by network against fastnn.reference before timing.

Run: ``pytest bench/bench_many.py --benchmark-only`` (~2 minutes here).
"""

import pytest

import _groups as G

CASES = G.many_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_many(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)
